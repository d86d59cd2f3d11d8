"""Rain streak map in Triton: one program per block of drops, ``atomic_max`` into the map.

The reference (``nrvl.kernels.weather.rain_streaks_torch``) draws the same
drops with the same counter-based random function and composites them with
``scatter_reduce(amax)``. Every quantity is integer or a single correctly
rounded float32 division, and ``max`` is exact, so the two maps are bit-identical
(checked under ``TRITON_INTERPRET=1``). Intensities are positive, so their
float32 bit patterns order like int32 and the atomic works on int32 bits.

Per drop ``d`` of clip ``b`` (counters ``3d``, ``3d+1``, ``3d+2`` of the clip's key):
``x0 ~ U{0..W-1}``, ``y0 ~ U{0..H-1}``, ``L ~ U{len_lo..len_lo+len_span-1}``, end
``(min(x0 + dx[L], W-1), min(y0 + L, H-1))``, ``L`` points
``x0 + floor(j (x1-x0)/(L-1))`` (same for y) with intensity ``0.7 -> 0.2``.

Memory traffic: the map is written once (``B*H*W`` int32 zeros) plus one atomic
per streak point (``5*H*W/100 * ~27`` per clip); nothing is read from the video.

Nothing compiles at import. Set ``TRITON_INTERPRET=1`` before importing to run on CPU tensors.
"""
from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

from . import device_guard
from .random import bits

_MAX_GRID_YZ = 65535  # CUDA's limit on grid axes 1 and 2

__all__ = ["rain_streaks_triton"]

_INTERPRET = os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


@triton.jit
def _randint(k0, k1, counter, n):
    """Uniform integer in [0, n): the top 24 bits times n, shifted down (exact, as in torch)."""
    u = (bits(k0, k1, counter) >> 8).to(tl.int64)
    return ((u * n) >> 24).to(tl.int32)


@triton.jit
def _rain_streak_kernel(key_ptr,    # int32 [B, 2]: per-clip key of the "rainy/drops" stream
                        dx_ptr,     # int32 [len_lo + len_span]: int(slant * L) for each length L
                        map_ptr,    # int32 [B, H*W]: float32 bits of the map, zero-initialised
                        n_drops,    # drops per clip
                        H, W,       # map size
                        len_lo,     # shortest streak
                        len_span,   # number of possible lengths
                        BLOCK: tl.constexpr,    # drops per program
                        MAXLEN: tl.constexpr):  # len_lo + len_span - 1, the longest streak
    b = tl.program_id(1)  # clips on axis 1 (at most 65535 programs); drop blocks on axis 0
    d = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    live = d < n_drops
    k0 = tl.load(key_ptr + b * 2)
    k1 = tl.load(key_ptr + b * 2 + 1)
    c = d * 3
    x0 = _randint(k0, k1, c, W)
    y0 = _randint(k0, k1, c + 1, H)
    L = len_lo + _randint(k0, k1, c + 2, len_span)
    x1 = tl.minimum(x0 + tl.load(dx_ptr + L, mask=live, other=0), W - 1)
    y1 = tl.minimum(y0 + L, H - 1)
    den = tl.maximum(L - 1, 1)
    base = map_ptr + b.to(tl.int64) * H * W
    for j in range(MAXLEN):
        on = live & (j < L)
        y = y0 + (j * (y1 - y0)) // den
        x = x0 + (j * (x1 - x0)) // den
        # Correctly rounded, as torch divides: a plain ``/`` compiles to an approximate
        # division on NVIDIA GPUs (up to 2 ulp), and the map must be the reference's bits.
        v = tl.div_rn((7 * den - 5 * j).to(tl.float32), (10 * den).to(tl.float32))
        tl.atomic_max(base + y * W + x, v.to(tl.int32, bitcast=True), mask=on)


def rain_streaks_triton(key: torch.Tensor, H: int, W: int, *, n_drops: int, len_lo: int, len_span: int,
                        dx_table: torch.Tensor, block: int | None = None) -> torch.Tensor:
    """The un-blurred streak map of each clip, float32 ``[B, H, W]`` in [0, 0.7].

    Args:
        key: int32 ``[B, 2]`` keys of the ``"rainy/drops"`` stream (one per clip).
        n_drops, len_lo, len_span: drop count and length range ``[len_lo, len_lo+len_span)``.
        dx_table: int32 ``[len_lo + len_span]``, horizontal run of a streak of each length.
        block: drops per program (default 256 on GPU, 8192 when interpreting: the
            interpreter pays per program).
    """
    B = key.shape[0]
    out = torch.zeros(B, H * W, dtype=torch.int32, device=key.device)
    if B == 0 or n_drops == 0 or H * W == 0:
        return out.view(torch.float32).reshape(B, H, W)
    if block is None:
        block = 8192 if _INTERPRET else 256
    key = key.to(torch.int32).contiguous()
    dx_table = dx_table.to(device=key.device, dtype=torch.int32).contiguous()
    with device_guard(key):
        for s in range(0, B, _MAX_GRID_YZ):  # clips on grid axis 1, at most 65535 a launch
            e = min(s + _MAX_GRID_YZ, B)
            _rain_streak_kernel[(triton.cdiv(n_drops, block), e - s)](
                key[s:e], dx_table, out[s:e], n_drops, H, W, len_lo, len_span,
                BLOCK=block, MAXLEN=len_lo + len_span - 1)
    return out.view(torch.float32).reshape(B, H, W)
