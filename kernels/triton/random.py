"""The counter-based random function of ``nrvl.kernels.random``, written in Triton.

Kernels call ``bits``/``uniform``/``normal`` with the per-frame key ``(k0, k1)``
(computed by ``nrvl.kernels.random.keys`` on the torch side and passed in as
int32 values) and an element index, and get the very same numbers the torch
reference draws, so a fused kernel never materialises a noise tensor.

Bits are identical to the torch version (tested under ``TRITON_INTERPRET=1`` and,
when a GPU is present, compiled). ``uniform`` is exact too (24-bit integer times
2**-24); ``normal`` agrees to float32 rounding of ``log``/``cos``/``sqrt``.

Nothing here compiles at import; import this module only where Triton is used
(set ``TRITON_INTERPRET=1`` before importing it to run kernels on CPU tensors).
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from . import device_guard

__all__ = ["mix32", "bits", "uniform", "normal", "draw_bits"]


@triton.jit
def mix32(x):
    """lowbias32 on uint32 (logical shifts, wrapping multiplies)."""
    x = x ^ (x >> 16)
    x = x * 0x7FEB352D
    x = x ^ (x >> 15)
    x = x * 0x846CA68B
    x = x ^ (x >> 16)
    return x


@triton.jit
def bits(k0, k1, index):
    """32 random bits (uint32) for element ``index`` of the stream keyed ``(k0, k1)`` (int32)."""
    i = index.to(tl.uint32, bitcast=True)
    a = k0.to(tl.uint32, bitcast=True)
    b = k1.to(tl.uint32, bitcast=True)
    return mix32(mix32(i + a) ^ b)


@triton.jit
def uniform(k0, k1, index):
    """Uniform float32 in [0, 1) with 24 bits, equal to the torch version bit for bit."""
    return (bits(k0, k1, index) >> 8).to(tl.float32) * (1.0 / 16777216.0)


@triton.jit
def normal(k0, k1, index):
    """Standard normal by Box-Muller from counters ``2*index`` and ``2*index + 1``."""
    i2 = index * 2
    u1 = 1.0 - uniform(k0, k1, i2)
    u2 = uniform(k0, k1, i2 + 1)
    # sqrt_rn: correctly rounded, as torch's sqrt (tl.sqrt is the fast approximate one on GPUs).
    return tl.sqrt_rn(-2.0 * tl.log(u1)) * tl.cos(6.283185307179586 * u2)


@triton.jit
def _draw_kernel(key_ptr,     # int32 [R, 2]: one key per row
                 out_bits_ptr,  # int32 [R, N]: the bits, reinterpreted as int32
                 out_u_ptr,     # float32 [R, N]: uniform
                 out_n_ptr,     # float32 [R, N]: normal
                 N,             # elements per row
                 BLOCK: tl.constexpr):
    row = tl.program_id(1)  # rows on axis 1 (at most 65535); element blocks on axis 0
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    m = offs < N
    k0 = tl.load(key_ptr + row * 2)
    k1 = tl.load(key_ptr + row * 2 + 1)
    idx = offs.to(tl.int32)
    b = bits(k0, k1, idx)
    at = row.to(tl.int64) * N + offs  # R * N may pass 2**31
    tl.store(out_bits_ptr + at, b.to(tl.int32, bitcast=True), mask=m)
    tl.store(out_u_ptr + at, uniform(k0, k1, idx), mask=m)
    tl.store(out_n_ptr + at, normal(k0, k1, idx), mask=m)


def draw_bits(key: torch.Tensor, n: int, block: int = 1024):
    """Launch a kernel that writes ``bits``, ``uniform`` and ``normal`` for indices ``0..n-1``.

    Args:
        key: int32 ``[R, 2]`` keys (from ``nrvl.kernels.random.keys``).
        n: elements per key.

    Returns:
        ``(bits int32 [R, n], uniform float32 [R, n], normal float32 [R, n])``; used by
        the tests to prove the Triton and torch functions draw the same numbers.
    """
    key = key.reshape(-1, 2).to(torch.int32).contiguous()
    R = key.shape[0]
    out_b = torch.empty(R, n, dtype=torch.int32, device=key.device)
    out_u = torch.empty(R, n, dtype=torch.float32, device=key.device)
    out_n = torch.empty(R, n, dtype=torch.float32, device=key.device)
    if R == 0 or n == 0:
        return out_b, out_u, out_n
    with device_guard(key):
        for s in range(0, R, 65535):  # rows on grid axis 1: CUDA allows 65535 a launch
            e = min(s + 65535, R)
            _draw_kernel[(triton.cdiv(n, block), e - s)](key[s:e], out_b[s:e], out_u[s:e], out_n[s:e], n,
                                                         BLOCK=block)
    return out_b, out_u, out_n
