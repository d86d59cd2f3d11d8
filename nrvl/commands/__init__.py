"""The ``nrvl`` subcommands, one module per command, plus what they share.

Every command module exposes ``add_parser(subparsers)`` and ``run(args) -> int``
and imports nothing heavy at module level: torch, the kernels and the decoders
are imported inside ``run``, so ``nrvl --help`` and argument errors stay fast.

Temporary files and folders the commands make are hidden and named
``.<name>.<host>-<pid>.<random>.tmp`` (``.old`` for an output moved aside while
it is replaced), so a later run can tell ours from anything else and remove
those whose process is gone (a run killed with SIGKILL, or a power cut).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
from pathlib import Path
from typing import Iterator

from nrvl.atomic import HOST, pid_alive, temp_name

__all__ = ["CommandError", "ratio_arg", "positive_int", "seed_arg", "select_noises", "resolve_device",
           "staged_dir", "check_input_file", "check_out_dir", "check_out_file", "probe_writable",
           "public_file", "current_umask", "temp_name", "remove_stale_temps", "make_dirs", "remove_dirs",
           "classify_out_dir", "new_temp_dir", "land", "OUR_TEMP"]


class CommandError(Exception):
    """A user-facing error: the CLI prints its message as one line and exits with code 2."""


def ratio_arg(text: str) -> float:
    """argparse type: a float in [0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1], got {text!r}") from None
    if not 0.0 <= value <= 1.0:  # also rejects nan
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {text}")
    return value


def positive_int(text: str) -> int:
    """argparse type: an int >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def seed_arg(text: str) -> int:
    """argparse type: an int in [0, 2**63)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if not 0 <= value < 2**63:
        raise argparse.ArgumentTypeError(f"must be in [0, 2**63), got {value}")
    return value


def select_noises(specs: str | list[str]) -> list[str]:
    """Noise names from ``"all"``, family names and noise names (comma-separated or a list).

    Returns the names in the registry's order, without repeats.

    Raises:
        CommandError: for a word that is neither ``all``, a family nor a noise.
    """
    import nrvl.kernels as K

    words = [specs] if isinstance(specs, str) else list(specs)
    words = [w.strip() for word in words for w in word.split(",") if w.strip()]
    if not words:
        raise CommandError("no noise given; use a noise name, a family, or 'all' (see 'nrvl list')")
    chosen: set[str] = set()
    for w in words:
        if w == "all":
            chosen.update(K.list_noises())
        elif w in K.FAMILIES:
            chosen.update(K.list_noises(w))
        elif w in K.NOISES:
            chosen.add(w)
        else:
            import difflib

            close = difflib.get_close_matches(w, list(K.NOISES) + list(K.FAMILIES), n=3, cutoff=0.5)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise CommandError(f"unknown noise {w!r}{hint}; use a noise name, a family "
                               f"({', '.join(K.FAMILIES)}) or 'all' (see 'nrvl list')")
    return [n for n in K.list_noises() if n in chosen]


def resolve_device(name: str):
    """``"auto"`` -> cuda when available, else cpu; anything else must be a torch device that exists."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise CommandError(f"--device: not a torch device: {name!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise CommandError(f"--device {name}: CUDA is not available on this machine")
    return device


def check_input_file(path: str, what: str = "INPUT") -> Path:
    p = Path(path)
    if not p.exists():
        raise CommandError(f"{what}: no such file: {path}")
    if not p.is_file():
        raise CommandError(f"{what}: not a file: {path}")
    return p


# ----------------------------------------------------------------------------- temporary names

#: Any hidden temporary entry of ours (any host): ``.<name>.<host>-<pid>.<8 hex>.tmp|old``.
OUR_TEMP = re.compile(r"\..+\.[A-Za-z0-9-]+-\d+\.[0-9a-f]{8}\.(tmp|old)")


def remove_stale_temps(folder: Path, name: str | None = None) -> list[str]:
    """Remove our temporary entries in ``folder`` (of ``name`` only, if given) whose process is gone.

    Only entries made on this host are considered (a pid means nothing elsewhere); returns the
    names removed.
    """
    stem = re.escape(name) if name is not None else ".+"
    pattern = re.compile(rf"\.{stem}\.{re.escape(HOST)}-(\d+)\.[0-9a-f]{{8}}\.(tmp|old)")
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        m = pattern.fullmatch(entry.name)
        if m is None or int(m[1]) == os.getpid() or pid_alive(int(m[1])):
            continue
        try:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
            removed.append(entry.name)
        except OSError:
            pass
    return removed


# ----------------------------------------------------------------------------- output checks


def _nearest_existing(p: Path) -> Path:
    above = p
    while not above.exists() and above != above.parent:
        above = above.parent
    return above


def check_out_dir(path: str, force: bool, *, inputs: dict[str, str] | None = None,
                  resumable: bool = False) -> tuple[Path, str, dict[str, dict]]:
    """Check ``--out DIR`` before any work: ``(path, state, finished)``.

    ``state`` is ``"new"`` (does not exist), ``"empty"``, ``"single"`` (holds a one-noise
    output) or ``"several"`` (holds per-noise folders, ``index.json``, our temp folders);
    ``finished`` maps each noise folder of a ``"several"`` output to its ``meta.json``.

    Raises:
        CommandError: for an empty name; an ``--out`` that is, or holds, one of ``inputs``
            (``{flag: path}``) or the current folder; a file, or a folder under a file; a
            folder holding anything ``nrvl corrupt`` did not write (never replaced, even with
            ``force``); and an existing output without ``force``, unless ``resumable`` and
            it holds per-noise folders (a run of several noises goes on where it stopped).
    """
    if not path.strip():
        raise CommandError("--out must name a folder, got an empty string")
    p = Path(path)
    here = p.resolve()
    for flag, other in (inputs or {}).items():
        where = Path(other).resolve()
        if where == here:
            raise CommandError(f"--out {path} is the {flag} file itself; name a new folder")
        if where.is_relative_to(here):
            raise CommandError(f"--out {path} holds the {flag} file {other}; name a folder that does not hold it")
    if Path.cwd().resolve().is_relative_to(here):
        raise CommandError(f"--out {path} is the current folder (or holds it); name a new folder")
    if p.exists() and not p.is_dir():
        raise CommandError(f"--out: {path} exists and is not a folder")
    above = _nearest_existing(p.absolute().parent)
    if not above.is_dir():
        raise CommandError(f"--out: {path} cannot be made, {above} is a file, not a folder")
    if p.absolute().parent.is_dir():
        remove_stale_temps(p.absolute().parent, p.absolute().name)
    if not p.exists():
        return p, "new", {}
    remove_stale_temps(p)
    state, finished = classify_out_dir(p)
    if state == "foreign":
        raise CommandError(f"--out: folder {path} holds {finished['entry']!r}, which nrvl corrupt did not write; "
                           f"refusing to write into it or replace it (name a new or empty folder)")
    if state != "empty" and not force and not (resumable and state == "several"):
        raise CommandError(f"--out: folder {path} exists and is not empty (use --force to replace it)")
    return p, state, finished


_FRAME_PNG = re.compile(r"frame_\d+\.png")


def _read_meta(path: Path) -> dict | None:
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) and isinstance(meta.get("noise"), str) else None


def _single_output(folder: Path, entries: list) -> tuple[dict | None, str | None]:
    """``(meta, None)`` for a one-noise output folder (``meta.json``, ``<noise>.mp4``, ``frame_*.png``),
    else ``(None, the first entry that does not belong)``."""
    meta = _read_meta(folder / "meta.json")
    if meta is None:
        return None, "meta.json"
    for e in entries:
        if not e.is_file(follow_symlinks=False) or (
                e.name != "meta.json" and e.name != f"{meta['noise']}.mp4" and not _FRAME_PNG.fullmatch(e.name)):
            return None, e.name
    return meta, None


def classify_out_dir(folder: Path) -> tuple[str, dict]:
    """What an existing folder holds: ``("empty"|"single"|"several", finished)`` or ``("foreign", {"entry": name})``.

    ``"single"`` is a one-noise output (``meta.json``, ``<noise>.mp4``, ``frame_*.png``);
    ``"several"`` holds only ``index.json``, complete noise folders (each a one-noise output
    named after its noise) and our temporary entries; ``finished`` maps those noise
    folders to their ``meta.json``.
    """
    import nrvl.kernels as K

    entries = sorted(os.scandir(folder), key=lambda e: e.name)
    if not entries:
        return "empty", {}
    if any(e.name == "meta.json" for e in entries):
        meta, bad = _single_output(folder, entries)
        return ("single", {}) if meta is not None else ("foreign", {"entry": bad})
    finished: dict[str, dict] = {}
    for e in entries:
        if e.name == "index.json" and e.is_file(follow_symlinks=False):
            continue
        if OUR_TEMP.fullmatch(e.name):
            continue
        if e.name in K.NOISES and e.is_dir(follow_symlinks=False):
            sub = Path(e.path)
            meta, bad = _single_output(sub, list(os.scandir(sub)))
            if meta is not None and meta["noise"] == e.name:
                finished[e.name] = meta
                continue
            return "foreign", {"entry": f"{e.name}/{bad or 'meta.json'}"}
        return "foreign", {"entry": e.name}
    return "several", finished


def check_out_file(path: str) -> Path:
    """``--out FILE``: not empty, not a folder, not under a file, and its folder writable (probed)."""
    if not path.strip():
        raise CommandError("--out must name a file, got an empty string")
    p = Path(path)
    if p.is_dir():
        raise CommandError(f"--out: {path} is a folder")
    above = _nearest_existing(p.absolute().parent)
    if not above.is_dir():
        raise CommandError(f"--out {path}: cannot be made, {above} is a file, not a folder")
    probe_writable(above, f"--out {path}")
    return p


def probe_writable(folder: Path, what: str) -> None:
    """Make and remove a hidden folder in ``folder``: one clear error now, before any long work."""
    probe = Path(folder) / temp_name("nrvl-probe")
    try:
        probe.mkdir()
    except OSError as e:
        raise CommandError(f"{what}: cannot write in {folder} ({e.strerror or e})") from None
    with contextlib.suppress(OSError):
        probe.rmdir()


def current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def public_file(path: Path) -> None:
    """Give a file written through a private temp file (0600) the usual umask permissions."""
    with contextlib.suppress(OSError):
        os.chmod(path, 0o666 & ~current_umask())


def make_dirs(folder: Path) -> list[Path]:
    """``mkdir -p folder``; returns the folders it created, innermost first (for :func:`remove_dirs`)."""
    folder = Path(folder).absolute()
    created = []
    where = folder
    while not where.exists():
        created.append(where)
        where = where.parent
    folder.mkdir(parents=True, exist_ok=True)
    return created


def remove_dirs(created: list[Path]) -> None:
    """Remove the folders :func:`make_dirs` created, innermost first, where they are empty."""
    for d in created:
        with contextlib.suppress(OSError):
            d.rmdir()


def new_temp_dir(parent: Path, name: str) -> Path:
    """A new hidden temporary folder for ``name`` in ``parent``, with the usual permissions."""
    for _ in range(100):
        tmp = Path(parent) / temp_name(name)
        try:
            tmp.mkdir(mode=0o777)  # less the umask, as mkdir gives
            return tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"cannot make a temporary folder for {name} in {parent}")


def land(tmp: Path, final: Path) -> None:
    """Rename the finished folder ``tmp`` to ``final`` (same parent); an existing ``final`` is moved
    aside first and deleted only after the new one is in place."""
    old = None
    if final.exists():
        old = final.parent / temp_name(final.name, "old")
        os.replace(final, old)
    os.replace(tmp, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def staged_dir(final: Path) -> Iterator[Path]:
    """Yield a temporary folder beside ``final``; on success it becomes ``final``, on failure it is removed.

    The temporary folder is created in ``final``'s parent so the rename stays on one
    file system, and at once, so an unwritable parent fails before any work. An existing
    ``final`` is moved aside and deleted only after the new folder is in place, so a
    failure never leaves a half-written ``final``. Parent folders created here are
    removed again on failure when they are empty.
    """
    final = Path(final).absolute()
    created = make_dirs(final.parent)
    try:
        tmp = new_temp_dir(final.parent, final.name)
    except BaseException:
        remove_dirs(created)
        raise
    try:
        yield tmp
        land(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        remove_dirs(created)
        raise
