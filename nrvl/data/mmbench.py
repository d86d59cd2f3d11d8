"""MMBench-Video from the Hugging Face hub (``opencompass/MMBench-Video``).

What VLMEvalKit does (``reference/mmbench-video.md`` 1.1), made safe:

* the snapshot comes from :func:`huggingface_hub.snapshot_download`, so the HF
  cache (``HF_HUB_CACHE``/``HF_HOME``) is reused and ``HF_HUB_OFFLINE=1`` is
  honoured: nothing is fetched, and a missing cache is a one-line error;
* ``MMBench-Video.tsv`` must have md5 ``98f7df3eb1007fc375ea6fe88a98e2ff``;
* the videos ship as pickle chunks (``video_pkl/video_chunk_<k>.pkl``), each a
  dict from video name to mp4 bytes. Loading a pickle can run arbitrary code,
  so :class:`NoGlobalsUnpickler` refuses every global (and persistent id): a
  dict of str to bytes needs none, and anything else is rejected before it can
  run. Each video is written to ``<snapshot>/video/<name>.mp4`` atomically, and
  a chunk is recorded as done only after all its videos are on disk, so an
  interrupted unpack resumes (VLMEvalKit skips the step if ``video/`` exists,
  so a partial folder is never repaired there).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import pickletools
import re
from pathlib import Path
from typing import Optional

from nrvl.atomic import atomic_write_bytes, atomic_write_text
from nrvl.data import DatasetError, DatasetSpec, read_tsv, video_filename

logger = logging.getLogger(__name__)

REPO_ID = "opencompass/MMBench-Video"
TSV_NAME = "MMBench-Video.tsv"
TSV_MD5 = "98f7df3eb1007fc375ea6fe88a98e2ff"
CHUNK_DIR = "video_pkl"
VIDEO_DIR = "video"
MARKER = ".nrvl-unpacked.json"
# YouTube ids and the like; anything with a path separator or a leading dot is refused.
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_\-][A-Za-z0-9_\-.]{0,200}$")


class NoGlobalsUnpickler(pickle.Unpickler):
    """An unpickler that refuses every global and persistent id.

    Plain containers, str, bytes, numbers load as usual (protocol 3+ stores
    bytes natively); any class, function or reducer (``os.system``,
    ``builtins.eval``, ``numpy`` arrays, ...) raises
    :class:`pickle.UnpicklingError` before anything is called.
    """

    def find_class(self, module, name):  # noqa: D102
        raise pickle.UnpicklingError(f"refusing to load global {module}.{name} (only plain data is allowed)")

    def persistent_load(self, pid):  # noqa: D102
        raise pickle.UnpicklingError("refusing to load a persistent id (only plain data is allowed)")


# The opcodes a pickled {str: bytes} dict is made of, and the size of each one's length field
# (None: a fixed-size argument of that many bytes follows; the payload of a length is skipped).
_PLAIN_OPS = {
    b"\x80": ("PROTO", 1, None), b"\x95": ("FRAME", 8, None), b"}": ("EMPTY_DICT", 0, None),
    b"(": ("MARK", 0, None), b"s": ("SETITEM", 0, None), b"u": ("SETITEMS", 0, None),
    b"\x94": ("MEMOIZE", 0, None), b"q": ("BINPUT", 1, None), b"r": ("LONG_BINPUT", 4, None),
    b"h": ("BINGET", 1, None), b"j": ("LONG_BINGET", 4, None), b".": ("STOP", 0, None),
    b"\x8c": ("SHORT_BINUNICODE", 0, 1), b"X": ("BINUNICODE", 0, 4), b"\x8d": ("BINUNICODE8", 0, 8),
    b"C": ("SHORT_BINBYTES", 0, 1), b"B": ("BINBYTES", 0, 4), b"\x8e": ("BINBYTES8", 0, 8),
    b"\x96": ("BYTEARRAY8", 0, 8),
}


# Opcodes that look up a global, a persistent id or an extension: NoGlobalsUnpickler refuses each
# by name when it reaches it, and nothing after it is loaded, so the scan hands over there.
_GLOBAL_OPS = {b"c", b"\x93", b"i", b"P", b"Q", b"\x82", b"\x83", b"\x84"}


def _check_plain_opcodes(fh) -> None:
    """Refuse a pickle that uses any opcode a flat ``{str: bytes}`` dict does not need.

    Tuples, lists, ints and the rest can build structures whose loading or hashing recurses
    past the C stack (a crash, not an exception); globals are refused by the unpickler too.
    Payloads are skipped by seeking, so a multi-GB chunk costs a few reads.
    """
    while True:
        op = fh.read(1)
        if not op:
            raise pickle.UnpicklingError("pickle data ended before STOP")
        if op in _GLOBAL_OPS:  # the unpickler refuses these by name before anything is called
            fh.seek(0)
            return
        entry = _PLAIN_OPS.get(op)
        if entry is None:
            known = pickletools.code2op.get(op.decode("latin-1"))
            raise pickle.UnpicklingError(f"refusing opcode {known.name if known else repr(op)} (only a dict of "
                                         "video names to mp4 bytes is allowed: no globals, objects or nesting)")
        name, fixed, length = entry
        if name == "STOP":
            fh.seek(0)
            return
        if fixed and len(fh.read(fixed)) != fixed:
            raise pickle.UnpicklingError(f"pickle data ended inside {name}")
        if length:
            raw = fh.read(length)
            if len(raw) != length:
                raise pickle.UnpicklingError(f"pickle data ended inside {name}")
            fh.seek(int.from_bytes(raw, "little"), os.SEEK_CUR)


def load_video_chunk(path: os.PathLike | str) -> dict[str, bytes]:
    """Load one video chunk with :class:`NoGlobalsUnpickler` and check its shape.

    Returns:
        ``{video name: mp4 bytes}``.

    Raises:
        DatasetError: the file holds a global, is not a dict of str to bytes,
            has an unsafe name, or is not a pickle.
    """
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            _check_plain_opcodes(fh)
            obj = NoGlobalsUnpickler(fh).load()
    except pickle.UnpicklingError as e:
        raise DatasetError(f"unsafe or corrupt video chunk {path}: {e}") from None
    except (EOFError, ValueError, TypeError, IndexError, KeyError, AttributeError, MemoryError, OverflowError,
            RecursionError) as e:
        raise DatasetError(f"corrupt video chunk {path}: {type(e).__name__}: {e}") from None
    if not isinstance(obj, dict):
        raise DatasetError(f"video chunk {path} must hold a dict of name -> mp4 bytes, got {type(obj).__name__}")
    for name, data in obj.items():
        if not isinstance(name, str) or not _SAFE_NAME.fullmatch(name) or ".." in name:
            shown = repr(name)[:80] if isinstance(name, str) else type(name).__name__
            raise DatasetError(f"video chunk {path}: unsafe video name {shown}")
        if not isinstance(data, (bytes, bytearray)):
            raise DatasetError(f"video chunk {path}: video {name!r} is {type(data).__name__}, not bytes")
    return obj


def file_md5(path: os.PathLike | str) -> str:
    h = hashlib.md5()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _offline() -> bool:
    # As huggingface_hub: TRANSFORMERS_OFFLINE means offline too.
    return any(os.environ.get(v, "").strip().upper() in {"1", "ON", "YES", "TRUE"}
               for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def _cache_dir(cache_dir) -> Optional[str]:
    # Read at call time: huggingface_hub reads its variables once, at import.
    # Expanded as huggingface_hub expands them (~ and $VARS).
    if cache_dir:
        return str(cache_dir)
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return os.path.expandvars(os.path.expanduser(os.environ[var]))
    if os.environ.get("HF_HOME"):
        return os.path.join(os.path.expandvars(os.path.expanduser(os.environ["HF_HOME"])), "hub")
    return None


def snapshot_path(*, cache_dir=None, download: bool = True) -> Path:
    """The local snapshot folder of ``opencompass/MMBench-Video``.

    The cached snapshot is used when there is one; otherwise, unless offline
    or ``download=False``, the whole dataset repo (about 13.4 GB) is fetched.

    Raises:
        DatasetError: not cached and downloading is not allowed or fails.
    """
    from huggingface_hub import snapshot_download

    cache = _cache_dir(cache_dir)
    try:
        return Path(snapshot_download(REPO_ID, repo_type="dataset", cache_dir=cache, local_files_only=True))
    except Exception as e:  # LocalEntryNotFoundError and friends
        cached_error = e
    where = cache or "the default Hugging Face cache"
    partial = getattr(cached_error, "snapshot_path", None)  # huggingface_hub's IncompleteSnapshotError
    if (not download or _offline()) and partial and os.path.isdir(partial):
        # An interrupted download: what it holds may be all a run needs (prepare checks the TSV's
        # md5 and every video it asks for), so use it rather than call it missing.
        missing = re.search(r"\d+ file\(s\) are missing", str(cached_error))
        logger.warning("the cached snapshot %s is incomplete (%s); using the files it holds (run once online "
                       "to finish the download)", partial, missing.group(0) if missing else "files are missing")
        return Path(partial)
    if not download or _offline():
        why = "HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) is set" if _offline() else "downloading is not allowed here"
        raise DatasetError(f"{REPO_ID} is not in {where} and {why}; run once online (about 13.4 GB) "
                           f"or point HF_HUB_CACHE at a cache that holds it ({type(cached_error).__name__})")
    logger.warning("downloading %s (about 13.4 GB) into %s", REPO_ID, where)
    try:
        return Path(snapshot_download(REPO_ID, repo_type="dataset", cache_dir=cache))
    except Exception as e:  # network, auth, disk
        raise DatasetError(f"cannot download {REPO_ID}: {type(e).__name__}: {' '.join(str(e).split())[:300]}") from None


def _wanted_videos(table) -> list[str]:
    return sorted({video_filename(r) for r in table.to_dict("records")})


def _missing(video_dir: Path, names) -> list[str]:
    return [n for n in names if not (video_dir / n).is_file()]


def unpack_videos(root: Path, wanted: Optional[list[str]] = None) -> int:
    """Unpack ``<root>/video_pkl/*.pkl`` into ``<root>/video/<name>.mp4``; resumable.

    Chunks are taken in sorted file order. The marker file ``video/.nrvl-unpacked.json``
    lists each unpacked chunk with the files it holds; a listed chunk is skipped unless one
    of its files is ``wanted`` and missing (deleted since), and in the chunks that are read,
    videos already on disk with the right size are kept (they were written atomically). When
    every ``wanted`` file exists, nothing is loaded at all.

    Returns:
        The number of mp4 files written.

    Raises:
        DatasetError: an unsafe or corrupt chunk.
    """
    video_dir = root / VIDEO_DIR
    missing = None if wanted is None else set(_missing(video_dir, wanted))
    if missing is not None and not missing:
        return 0
    chunks = sorted((root / CHUNK_DIR).glob("*.pkl")) if (root / CHUNK_DIR).is_dir() else []
    if not chunks:
        return 0
    video_dir.mkdir(parents=True, exist_ok=True)
    marker = video_dir / MARKER
    try:
        done = json.loads(marker.read_text(encoding="utf-8")) if marker.is_file() else {}
    except (OSError, json.JSONDecodeError):
        done = {}
    if not isinstance(done, dict):  # a damaged marker: unpack again
        done = {}
    listed = {n for files in done.values() if isinstance(files, list) for n in files}

    def needed(chunk: Path) -> bool:
        files = done.get(chunk.name)
        if files is None or missing is None:
            return files is None
        if isinstance(files, list):  # read again only for a file of it that is gone
            return not missing.isdisjoint(files)
        return bool(missing - listed)  # an older marker (a count): any missing file may be in it

    written = 0
    for chunk in chunks:
        if not needed(chunk):
            continue
        logger.warning("unpacking %s", chunk)
        videos = load_video_chunk(chunk)
        for name, data in videos.items():
            target = video_dir / f"{name}.mp4"
            if target.is_file() and target.stat().st_size == len(data):
                continue
            atomic_write_bytes(target, bytes(data))
            written += 1
        done[chunk.name] = sorted(f"{name}.mp4" for name in videos)
        listed.update(done[chunk.name])
        atomic_write_text(marker, json.dumps(done, indent=1, sort_keys=True))
        del videos
    return written


def prepare(spec: DatasetSpec, *, cache_dir=None, expected_md5: Optional[str] = None, download: bool = True) -> Path:
    """Locate (or download) the snapshot, check the TSV, unpack the videos.

    ``expected_md5`` defaults to :data:`TSV_MD5` (read at call time).

    Returns:
        The snapshot folder.

    Raises:
        DatasetError: offline without a cache, md5 mismatch, bad TSV, bad chunk,
            videos still missing after unpacking.
    """
    root = snapshot_path(cache_dir=cache_dir, download=download)
    tsv = root / TSV_NAME
    if not tsv.is_file():
        raise DatasetError(f"{TSV_NAME} not found in the snapshot {root}")
    md5 = file_md5(tsv)
    expected_md5 = TSV_MD5 if expected_md5 is None else expected_md5
    if expected_md5 and md5 != expected_md5:
        raise DatasetError(f"{tsv} has md5 {md5}, expected {expected_md5}; delete the cached snapshot and rerun")
    table = read_tsv(tsv)
    wanted = _wanted_videos(table)
    unpack_videos(root, wanted)
    missing = _missing(root / VIDEO_DIR, wanted)
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise DatasetError(f"video {root / VIDEO_DIR / missing[0]}{more} is in neither {VIDEO_DIR}/ nor "
                           f"any chunk of {root / CHUNK_DIR}")
    return root


def locate(spec: DatasetSpec, *, cache_dir=None, **_ignored) -> tuple[Path, Path]:
    """``(tsv path, video folder)`` of the cached snapshot; never downloads."""
    root = snapshot_path(cache_dir=cache_dir, download=False)
    return root / TSV_NAME, root / VIDEO_DIR
