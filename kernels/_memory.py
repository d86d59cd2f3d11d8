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

import math
import os

__all__ = ["set_work_memory", "work_memory", "work_budget", "chunk_plan", "DEFAULT_FACTOR", "DEFAULT_MIN_MIB"]

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
