"""Crash-safe file writes: whole files by temp file + rename, records by fsynced appends.

A reader never sees half a file written with :func:`atomic_write_text` or
:func:`atomic_write_bytes`: the bytes go to a temporary file in the same
directory (so the rename stays on one filesystem), are fsynced, and the temp
file is renamed over the target with :func:`os.replace`, which is atomic on
POSIX and Windows. The directory is fsynced too where the OS allows it, so the
rename itself survives a power cut. The file is created with mode 0o666 and the
kernel applies the process's umask at that moment, as ``open()`` would (mkstemp
would make it 0600). A writer killed before the rename leaves a hidden
``.<name>.<host>-<pid>.<random>.tmp``; the next successful write of the same
file on that host removes those whose process is gone.

JSON Lines stores grow by :func:`append_jsonl`, one record per line, flushed and
fsynced before it returns. A process killed mid-write can leave at most one
truncated last line; :func:`read_jsonl` skips it, so the store stays readable and
the lost record is simply redone on the next run.

Records are JSON only: reading a store never runs code.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import socket
from pathlib import Path
from typing import Any, Iterable, Iterator, Union

from nrvl import _faults

PathLike = Union[str, "os.PathLike[str]"]

__all__ = ["atomic_write_bytes", "atomic_write_text", "append_jsonl", "read_jsonl", "iter_jsonl"]


HOST = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:40] or "host"


def temp_name(name: str, kind: str = "tmp") -> str:
    """A fresh hidden name for a temporary entry beside ``name``: ``.<name>.<host>-<pid>.<8 hex>.<kind>``
    (the host and pid tell a later run whether its writer is gone, :func:`pid_alive`)."""
    return f".{name}.{HOST}-{os.getpid()}.{secrets.token_hex(4)}.{kind}"


def _create_temp(path: Path) -> tuple[int, str]:
    """A new hidden temp file beside ``path``: (fd, name). Mode 0o666 less the umask, as open() gives."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = path.parent / temp_name(path.name)
        try:
            return os.open(tmp, flags, 0o666), str(tmp)
        except FileExistsError:
            continue
    raise FileExistsError(f"cannot create a temporary file beside {path}")


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` of this host exists (EPERM: it does, under another user)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _remove_stale_temps(path: Path) -> None:
    # Temp files of this target left by a process of this host that no longer exists (killed mid-write).
    prefix = f".{path.name}.{HOST}-"
    try:
        names = [n for n in os.listdir(path.parent) if n.startswith(prefix) and n.endswith(".tmp")]
    except OSError:
        return
    for name in names:
        pid = name[len(prefix):].split(".", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not pid_alive(int(pid)):
            try:
                os.unlink(path.parent / name)
            except OSError:
                pass


def _fsync_dir(directory: Path) -> None:
    # Persist the rename; directories cannot be opened this way on Windows.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _make_parents(path: Path) -> None:
    """Create ``path``'s missing parent folders; fsync the folder holding each new one, once,
    so the new folders (and what goes in them) survive a power cut."""
    parent = path.parent
    missing = []
    where = parent
    while not where.is_dir() and where != where.parent:
        missing.append(where)
        where = where.parent
    if not missing:
        return
    parent.mkdir(parents=True, exist_ok=True)
    for folder in reversed(missing):  # top down: each new folder's entry lives in its parent
        _fsync_dir(folder.parent)


def _name_the_file(e: OSError, path: Path, always: bool = False) -> OSError:
    """``e`` with ``filename`` set to ``path`` when the OS left it out (a failed write or fsync),
    or ``always`` (the OS named our hidden temp file), and marked as a write, so the one-line
    error can say which file could not be written."""
    if always or getattr(e, "filename", None) is None:
        if e.errno is None:  # raised with only a message: setting filename would turn str(e) into "[Errno None]"
            e.nrvl_path = str(path)
        else:
            # A new error naming only ``path``: assigning ``filename2 = None`` to the OS's error would
            # print "... -> None" (CPython tests the slot, not its value). OSError(errno, ...) picks the
            # subclass (PermissionError, IsADirectoryError, ...) as the OS's would.
            e = OSError(e.errno, e.strerror, str(path))
    e.nrvl_write = True
    return e


def atomic_write_bytes(path: PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temp file in the same dir, fsync, rename).

    Args:
        path: target file; its parent directory is created if missing (and the folders
            above each new one fsynced).
        data: the complete new content.

    Returns:
        The target path.

    Raises:
        OSError: the write failed (disk full, permission, a folder in the way); its
            ``filename`` is the target (a folder that could not be made names itself).
    """
    path = Path(path)
    try:
        _make_parents(path)
    except OSError as e:
        raise _name_the_file(e, path)
    try:
        fd, tmp = _create_temp(path)
    except OSError as e:
        raise _name_the_file(e, path, always=True)
    try:
        with os.fdopen(fd, "wb") as fh:
            _write_durably(fh, data, "atomic.torn")  # tests: killed with half the bytes in the temp file
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError):
            raise _name_the_file(e, path, always=True)
        raise
    _fsync_dir(path.parent)
    _remove_stale_temps(path)
    return path


def atomic_write_text(path: PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically; see :func:`atomic_write_bytes`.

    The text is encoded as given: no newline translation, so the bytes on disk
    are the same on every platform.
    """
    return atomic_write_bytes(path, text.encode(encoding))


def append_jsonl(path: PathLike, records: Union[dict, Iterable[dict]]) -> None:
    """Append one record (a dict) or several as JSON lines, then flush and fsync.

    Each record becomes one line of ``json.dumps(record, ensure_ascii=False)``.
    All lines of one call go out in a single write. If the file ends in a
    truncated line (a killed writer), a newline is written first so the new
    record starts on a line of its own.

    The call that creates the file (and any missing folder above it) also fsyncs
    the folder that holds each new entry, so after a power cut the file is
    there with every record that was fsynced into it.

    Raises:
        OSError: the write failed; ``filename`` is ``path`` when the OS gave none.
    """
    if isinstance(records, dict):
        records = [records]
    payload = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    if not payload:
        return
    path = Path(path)
    try:
        _make_parents(path)
        created = not os.path.lexists(path)
        with open(path, "ab") as fh:
            if fh.tell() > 0:
                with open(path, "rb") as probe:
                    probe.seek(-1, os.SEEK_END)
                    if probe.read(1) != b"\n":
                        payload = "\n" + payload
            data = payload.encode("utf-8")
            _write_durably(fh, data, "jsonl.torn")  # tests: killed half way through a record
        if created:  # the new file's directory entry: once, when the file is made
            _fsync_dir(path.parent)
    except OSError as e:
        raise _name_the_file(e, path)
    _faults.kill_point("jsonl.appended")


def _write_durably(fh, data: bytes, torn_point: str) -> None:
    """Write, flush and fsync; the test-only fault ``torn_point`` kills the process half way."""
    if _faults.hit(torn_point):
        fh.write(data[: len(data) // 2])
        fh.flush()
        _faults.kill()
    fh.write(data)
    fh.flush()
    os.fsync(fh.fileno())


def read_jsonl(path: PathLike) -> list[dict[str, Any]]:
    """Read every complete record of a JSON Lines file; a missing file gives ``[]``.

    Blank lines are skipped, and so is a line that does not parse, which is what
    a writer killed mid-record leaves behind. Lines that are not JSON objects are
    skipped as well.
    """
    return list(iter_jsonl(path))


def iter_jsonl(path: PathLike) -> Iterator[dict[str, Any]]:
    """Yield the records of :func:`read_jsonl` one by one."""
    path = Path(path)
    if not path.exists():
        return
    with open(path, "rb") as fh:
        for raw in fh:
            line = raw.strip()
            if not line:
                continue
            try:
                record = json.loads(line.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                continue
            if isinstance(record, dict):
                yield record
