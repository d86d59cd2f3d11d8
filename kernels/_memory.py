"""How much working memory a frame noise may take: chunks of the chosen frames.

A non-pointwise noise works on a float32 copy of the frames it changes, and its
filters add a few more (padding, FFT spectra, GEMM blocks): run on all chosen
frames at once that is 10-30 times the uint8 clip. So ``apply`` runs the
transform on chunks of chosen frames (and, for noises whose channels are
independent, of channel planes) whose working set fits a budget of

    ``max(factor * clip_bytes, min_mib MiB)``

(default ``factor = 2.5``, ``min_mib = 32``): with the output tensor that keeps the
peak extra memory near ``3.5x`` the clip, under the ``4x`` target, on every device. Each
noise declares its working set per element (``work_bytes``, measured on 720p frames);
``tests/peak_memory.py`` measures the real peak and the tests hold it to the target.

The chunk plan depends only on shapes, never on values (no host sync), and a
frame-wise transform gives the same result whatever the chunking. Small inputs fit
in one chunk: one launch sequence for the whole stack, as before.

Set with ``set_work_memory(factor=..., min_mib=...)`` or the environment variables
``NRVL_WORK_MEMORY`` (the factor; ``inf`` for no chunking) and ``NRVL_WORK_MEMORY_MIN_MIB``.
"""
from __future__ import annotations

import ctypes
import math
import os
import sys

__all__ = ["set_work_memory", "work_memory", "work_budget", "chunk_plan", "reuse_cpu_memory",
           "DEFAULT_FACTOR", "DEFAULT_MIN_MIB"]

DEFAULT_FACTOR = 2.5
DEFAULT_MIN_MIB = 32.0


def _number(name: str, v, env: str | None = None) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        f = math.nan
    if isinstance(v, bool) or not f >= 0:  # NaN fails too
        where = f" (from ${env})" if env else ""
        raise ValueError(f"{name} must be a number >= 0{where}, got {v!r}")
    return f


_factor = _number("work memory factor", os.environ.get("NRVL_WORK_MEMORY", DEFAULT_FACTOR), "NRVL_WORK_MEMORY")
_min_mib = _number("work memory min_mib", os.environ.get("NRVL_WORK_MEMORY_MIN_MIB", DEFAULT_MIN_MIB),
                   "NRVL_WORK_MEMORY_MIN_MIB")


def set_work_memory(factor: float | None = None, min_mib: float | None = None) -> None:
    """Set the working-memory budget of frame noises (``None`` keeps a value as it is).

    Args:
        factor: working set as a multiple of the clip's bytes (``math.inf``: never chunk).
        min_mib: the budget never goes below this many MiB (small clips stay in one chunk).
    """
    global _factor, _min_mib
    if factor is not None:
        _factor = _number("factor", factor)
    if min_mib is not None:
        _min_mib = _number("min_mib", min_mib)


def work_memory() -> tuple:
    """``(factor, min_mib)`` in force."""
    return _factor, _min_mib


def work_budget(clip_bytes: int) -> float:
    """Bytes of working memory a call on a ``clip_bytes`` clip may use."""
    return max(_factor * clip_bytes, _min_mib * 2**20)


def chunk_plan(M: int, C: int, plane: int, work_bytes: float, clip_bytes: int, channelwise: bool) -> list:
    """Chunks ``(f0, f1, c0, c1)`` (frames ``f0:f1``, channels ``c0:c1``) covering ``M`` frames.

    Whole frames as long as one fits the budget (as many per chunk as fit); else, for
    ``channelwise`` noises, single frames split into groups of planes; else single frames.
    """
    budget = work_budget(clip_bytes)
    per_frame = work_bytes * C * plane
    if M == 0:
        return []
    if per_frame * M <= budget:
        return [(0, M, 0, C)]
    if per_frame <= budget or not channelwise or C == 1:
        m = max(1, int(budget // per_frame)) if per_frame > 0 else M
        m = -(-M // -(-M // m))  # even chunks: ceil(M / number of chunks)
        return [(f, min(f + m, M), 0, C) for f in range(0, M, m)]
    c = max(1, int(budget // (work_bytes * plane)))
    return [(f, f + 1, ch, min(ch + c, C)) for f in range(M) for ch in range(0, C, c)]


# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4


def reuse_cpu_memory(keep_mib: float = 1024) -> bool:
    """Let this process reuse freed large CPU buffers instead of faulting in fresh pages each call.

    glibc's malloc serves every block over 32 MiB (a 16-frame 720p uint8 clip is 44 MiB)
    with a fresh ``mmap`` and unmaps it on free, so each new output clip or float copy
    first-touches every 4 KiB page again: on a 2-core VM that is ~10 ms per 44 MiB,
    more than a cheap noise itself (``frame_repeat`` at 16f 720p: 11 -> 3 ms with this on).
    This sets glibc's ``M_MMAP_MAX`` to 0 (large blocks come from the heap and are reused)
    and ``M_TRIM_THRESHOLD`` to ``keep_mib`` (at most that much free memory is kept at the
    top of the heap; the rest goes back to the OS).

    Process-wide and one-way (it changes how every later ``malloc`` of the process behaves,
    not only nrvl's), so the library never calls it on import: the ``nrvl`` command calls
    it at start (``NRVL_REUSE_CPU_MEMORY=0`` opts out); a training script or DataLoader
    worker may call it itself. CUDA memory is unaffected (torch caches it already).

    Args:
        keep_mib: free heap memory kept for reuse, in MiB, ``0 <= keep_mib <= 2047``.

    Returns:
        True when glibc took both settings; False where there is no glibc (macOS,
        Windows, musl), leaving the allocator as it was.
    """
    if isinstance(keep_mib, bool) or not isinstance(keep_mib, (int, float)) or not 0 <= keep_mib <= 2047:
        raise ValueError(f"keep_mib must be a number of MiB in [0, 2047], got {keep_mib!r}")
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # glibc only: musl's mallopt ignores these parameters
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_TRIM_THRESHOLD, int(keep_mib * 2**20))) and bool(mallopt(_M_MMAP_MAX, 0))
