"""Glass blur's pixel shuffle as a Triton kernel, drawing its own random numbers.

Every output pixel reads its source at an offset drawn from the law of the
reference's sequential swaps (``nrvl.kernels.blur.glass_source_law``, tabulated
by ``glass_offset_table``): 32 random bits from the project's counter-based
hash (``nrvl.kernels.triton.random.bits``, keyed by the frame's key and the
pixel index ``h*W + w``), the top 20 of them index the quantile table, and the
packed entry gives ``(dy, dx)``. The pure-torch reference is
``nrvl.kernels.blur.glass_shuffle_reference``; both draw the same bits and do
only integer arithmetic and copies, so their outputs are bit-identical (tested
under ``TRITON_INTERPRET=1``).

Memory traffic per frame: read the table entry (4 B, mostly cache hits) and
C source values, write C values; the torch reference materialises the bits,
the table entries, both coordinate maps and a gather index (about 40 B per
pixel of int32/int64 temporaries) before its gather.

Nothing here compiles at import; ``glass_shuffle_triton`` compiles on first use.
"""
from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

from . import device_guard
from .random import bits

__all__ = ["glass_shuffle_triton"]

TABLE_BITS = 20  # must equal nrvl.kernels.blur.GLASS_TABLE_BITS


@triton.jit
def _glass_shuffle_kernel(
    x_ptr,                    # [M, C, H, W] frames to shuffle (any dtype, any strides)
    out_ptr,                  # [M, C, H, W] output, same dtype
    key_ptr,                  # int32 [M, 2]: the per-frame key (k0, k1) of the offset draws
    table_ptr,                # int32 [2**TABLE_BITS]: packed source offsets (dy << 16) | (dx + 32768)
    H, W,                     # frame size
    sxm, sxc, sxh, sxw,       # strides of x, in elements
    som, soc, soh, sow,       # strides of out, in elements
    C: tl.constexpr,          # channels (3)
    TABLE_BITS: tl.constexpr,  # log2 of the table length
    BLOCK_H: tl.constexpr,    # tile height
    BLOCK_W: tl.constexpr,    # tile width
):
    m = tl.program_id(0).to(tl.int64)  # frames on axis 0: axes 1 and 2 stop at 65535 programs
    pid_h = tl.program_id(1)
    pid_w = tl.program_id(2)
    h = pid_h * BLOCK_H + tl.arange(0, BLOCK_H)[:, None]
    w = pid_w * BLOCK_W + tl.arange(0, BLOCK_W)[None, :]
    inside = (h < H) & (w < W)
    k0 = tl.load(key_ptr + 2 * m)
    k1 = tl.load(key_ptr + 2 * m + 1)
    r = bits(k0, k1, h * W + w)  # uint32, the same bits torch draws for index h*W + w
    slot = (r >> (32 - TABLE_BITS)).to(tl.int32)
    e = tl.load(table_ptr + slot, mask=inside, other=32768)  # padded lanes: offset (0, 0)
    dy = e >> 16
    dx = (e & 0xFFFF) - 32768
    sy = tl.minimum(tl.maximum(h + dy, 1), H - 1)
    sx = tl.minimum(tl.maximum(w + dx, 1), W - 1)
    fixed = (h == 0) | (w == 0)  # row 0 and column 0 never move
    sy = tl.where(fixed, h, sy)
    sx = tl.where(fixed, w, sx)
    src = m * sxm + sy.to(tl.int64) * sxh + sx.to(tl.int64) * sxw
    dst = m * som + h.to(tl.int64) * soh + w.to(tl.int64) * sow
    for c in tl.static_range(C):
        v = tl.load(x_ptr + src + c * sxc, mask=inside)
        tl.store(out_ptr + dst + c * soc, v, mask=inside)


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def glass_shuffle_triton(x: torch.Tensor, key: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """Launch the shuffle: ``out[m, :, y] = x[m, :, source(y)]`` (see ``glass_shuffle_reference``).

    Args:
        x: ``[M, C, H, W]`` on a CUDA device (or CPU under ``TRITON_INTERPRET=1``).
        key: int32 ``[M, 2]`` per-frame keys, same device.
        table: int32 ``[2**20]`` from ``nrvl.kernels.blur.glass_offset_table``, same device.

    Returns:
        A new tensor like ``x``.
    """
    M, C, H, W = x.shape
    out = torch.empty_like(x)
    if out.numel() == 0:
        return out
    if H <= 1 or W <= 1:  # every pixel is in row 0 or column 0
        return out.copy_(x)
    key = key.to(torch.int32).contiguous()
    table = table.to(torch.int32).contiguous()
    # One config. The interpreter pays a fixed cost per program, so it gets big tiles.
    bh, bw = (64, 64) if _interpreting() else (8, 64)
    grid = (M, triton.cdiv(H, bh), triton.cdiv(W, bw))
    with device_guard(x):
        _glass_shuffle_kernel[grid](
            x, out, key, table, H, W, *x.stride(), *out.stride(),
            C=C, TABLE_BITS=TABLE_BITS, BLOCK_H=bh, BLOCK_W=bw,
        )
    return out
