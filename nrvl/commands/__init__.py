"""The ``nrvl`` subcommands, one module per command, plus what they share.

Every command module exposes ``add_parser(subparsers)`` and ``run(args) -> int``
and imports nothing heavy at module level: torch, the kernels and the decoders
are imported inside ``run``, so ``nrvl --help`` and argument errors stay fast.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

__all__ = ["CommandError", "ratio_arg", "positive_int", "seed_arg", "select_noises", "resolve_device",
           "staged_dir", "check_input_file", "check_out_dir", "public_file", "current_umask"]


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


def check_out_dir(path: str, force: bool) -> Path:
    """The output folder: it must not exist, be empty, or ``force`` must be set (then it is replaced)."""
    p = Path(path)
    if p.exists():
        if not p.is_dir():
            raise CommandError(f"--out: {path} exists and is not a folder")
        if any(p.iterdir()) and not force:
            raise CommandError(f"--out: folder {path} exists and is not empty (use --force to replace it)")
    above = p.absolute().parent
    while not above.exists() and above != above.parent:
        above = above.parent
    if not above.is_dir():
        raise CommandError(f"--out: {path} cannot be made, {above} is a file, not a folder")
    return p


def current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def public_file(path: Path) -> None:
    """Give a file written through a private temp file (0600) the usual umask permissions."""
    with contextlib.suppress(OSError):
        os.chmod(path, 0o666 & ~current_umask())


@contextlib.contextmanager
def staged_dir(final: Path) -> Iterator[Path]:
    """Yield a temporary folder beside ``final``; on success it becomes ``final``, on failure it is removed.

    The temporary folder is created in ``final``'s parent so the rename stays on one
    file system. An existing ``final`` is moved aside and deleted only after the new
    folder is in place, so a failure never leaves a half-written ``final``. Parent
    folders created here are removed again on failure when they are empty.
    """
    final = Path(final).absolute()
    created = []
    parent = final.parent
    while not parent.exists():
        created.append(parent)
        parent = parent.parent
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    try:
        os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp makes it private (0700)
        yield tmp
        old = None
        if final.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".old", dir=final.parent))
            os.replace(final, old / final.name)
        os.replace(tmp, final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        for d in created:  # innermost first
            with contextlib.suppress(OSError):
                d.rmdir()
        raise
