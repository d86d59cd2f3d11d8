"""Snow flakes in Triton: draw the zoomed, thresholded flake field, then motion-blur it.

Two kernels, each one program per tile of one frame:

* ``_snow_field_kernel`` draws, for every pixel of the zoomed field, the four
  N(mean, std) grid values around it in registers (counter ``r*cw + c`` of the
  frame's key, the same numbers as the torch reference), interpolates them
  bilinearly (``align_corners``, ImageNet-C's ``scipy.ndimage.zoom(order=1)``),
  zeroes values below the threshold and clips to [0, 1].
* ``_snow_blur_kernel`` sums the frame's motion-blur taps
  ``w_i * field[y - dy_i, x - dx_i]`` (zero outside the field) for each output pixel.

References: ``nrvl.kernels.weather.snow_field_torch`` and ``snow_blur_torch``.
How close: the uniforms and integer maths are bit-identical, but Box-Muller's
``log``/``cos`` differ by about one float32 ulp between Triton (or NumPy in the
interpreter) and torch, the torch zoom is ``F.interpolate`` (the same weights in
another order) and the torch blur an FFT convolution. The layers agree to ~1e-6,
so after the reference's quantization to 1/255 a rare pixel lands one level apart.

Memory traffic: the field kernel writes ``Hz*Wz`` floats per frame and reads
nothing; the blur reads ``K`` (25) field values per output pixel (cached tiles)
and writes ``H*W`` floats.

Nothing compiles at import. Set ``TRITON_INTERPRET=1`` before importing to run on CPU tensors.
"""
from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

from . import device_guard
from .random import normal

__all__ = ["snow_field_triton", "snow_blur_triton"]

_INTERPRET = os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


@triton.jit
def _grid_value(k0, k1, r, c, cw, mean, std):
    return mean + std * normal(k0, k1, r * cw + c)


@triton.jit
def _snow_field_kernel(key_ptr,     # int32 [M, 2]: per-frame key of the "snow/flakes" stream
                       field_ptr,   # float32 [M, Hz, Wz]: output
                       ch, cw,      # the N(mean, std) grid before zooming
                       Hz, Wz,      # the zoomed field
                       sy, sx,      # float32 (ch-1)/(Hz-1), (cw-1)/(Wz-1)
                       mean, std, threshold,
                       BH: tl.constexpr, BW: tl.constexpr):
    m = tl.program_id(0)
    oy = tl.program_id(1) * BH + tl.arange(0, BH)[:, None]
    ox = tl.program_id(2) * BW + tl.arange(0, BW)[None, :]
    inside = (oy < Hz) & (ox < Wz)
    k0 = tl.load(key_ptr + m * 2)
    k1 = tl.load(key_ptr + m * 2 + 1)
    fy = oy.to(tl.float32) * sy
    fx = ox.to(tl.float32) * sx
    y0 = tl.minimum(tl.floor(fy).to(tl.int32), ch - 1)
    x0 = tl.minimum(tl.floor(fx).to(tl.int32), cw - 1)
    wy = fy - y0.to(tl.float32)
    wx = fx - x0.to(tl.float32)
    y1 = tl.minimum(y0 + 1, ch - 1)
    x1 = tl.minimum(x0 + 1, cw - 1)
    v00 = _grid_value(k0, k1, y0, x0, cw, mean, std)
    v10 = _grid_value(k0, k1, y1, x0, cw, mean, std)
    v01 = _grid_value(k0, k1, y0, x1, cw, mean, std)
    v11 = _grid_value(k0, k1, y1, x1, cw, mean, std)
    c0 = v00 + (v10 - v00) * wy
    c1 = v01 + (v11 - v01) * wy
    val = c0 + (c1 - c0) * wx
    val = tl.where(val < threshold, 0.0, val)
    val = tl.minimum(tl.maximum(val, 0.0), 1.0)
    tl.store(field_ptr + m.to(tl.int64) * Hz * Wz + oy * Wz + ox, val, mask=inside)


@triton.jit
def _snow_blur_kernel(field_ptr,   # float32 [M, Hz, Wz]: flake field
                      dy_ptr,      # int32 [M, K]: row shift of each tap
                      dx_ptr,      # int32 [M, K]: column shift of each tap
                      w_ptr,       # float32 [M, K]: tap weights (0 for dropped taps)
                      out_ptr,     # float32 [M, H, W]: blurred layer
                      Hz, Wz, H, W, K,
                      BH: tl.constexpr, BW: tl.constexpr):
    m = tl.program_id(0)
    oy = tl.program_id(1) * BH + tl.arange(0, BH)[:, None]
    ox = tl.program_id(2) * BW + tl.arange(0, BW)[None, :]
    inside = (oy < H) & (ox < W)
    src = field_ptr + m.to(tl.int64) * Hz * Wz
    acc = tl.zeros((BH, BW), dtype=tl.float32)
    for i in range(K):
        dy = tl.load(dy_ptr + m * K + i)
        dx = tl.load(dx_ptr + m * K + i)
        w = tl.load(w_ptr + m * K + i)
        sy = oy - dy
        sx = ox - dx
        ok = inside & (sy >= 0) & (sy < Hz) & (sx >= 0) & (sx < Wz)
        acc += w * tl.load(src + sy * Wz + sx, mask=ok, other=0.0)
    tl.store(out_ptr + m.to(tl.int64) * H * W + oy * W + ox, acc, mask=inside)


def _tiles(h: int, w: int):
    if _INTERPRET:  # the interpreter pays per program: few, big tiles
        return max(16, triton.next_power_of_2(h)), max(16, triton.next_power_of_2(w))
    return 16, 64


def snow_field_triton(key: torch.Tensor, ch: int, cw: int, Hz: int, Wz: int, sy: float, sx: float, *,
                      mean: float, std: float, threshold: float) -> torch.Tensor:
    """Flake field per frame, float32 ``[M, Hz, Wz]`` (see ``weather.snow_field_torch``).

    Args:
        key: int32 ``[M, 2]`` per-frame keys.
    """
    M = key.shape[0]
    out = torch.empty(M, Hz, Wz, dtype=torch.float32, device=key.device)
    if M == 0 or Hz * Wz == 0:
        return out
    BH, BW = _tiles(Hz, Wz)
    grid = (M, triton.cdiv(Hz, BH), triton.cdiv(Wz, BW))
    with device_guard(key):
        _snow_field_kernel[grid](key.to(torch.int32).contiguous(), out, ch, cw, Hz, Wz, float(sy), float(sx),
                                 float(mean), float(std), float(threshold), BH=BH, BW=BW)
    return out


def snow_blur_triton(field: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, w: torch.Tensor,
                     H: int, W: int) -> torch.Tensor:
    """``out[y, x] = sum_i w_i field[y - dy_i, x - dx_i]``, float32 ``[M, H, W]``
    (see ``weather.snow_blur_torch``)."""
    M, Hz, Wz = field.shape
    K = dy.shape[1]
    out = torch.empty(M, H, W, dtype=torch.float32, device=field.device)
    if M == 0 or H * W == 0:
        return out
    BH, BW = _tiles(H, W)
    grid = (M, triton.cdiv(H, BH), triton.cdiv(W, BW))
    with device_guard(field):
        _snow_blur_kernel[grid](field.contiguous(), dy.to(torch.int32).contiguous(), dx.to(torch.int32).contiguous(),
                                w.to(torch.float32).contiguous(), out, Hz, Wz, H, W, K, BH=BH, BW=BW)
    return out
