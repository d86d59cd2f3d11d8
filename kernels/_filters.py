"""Shared pieces of the blur and digital families: padding, separable and FFT filtering, kernels.

All filters here are *correlations* on ``[..., H, W]`` float tensors (what
``torch.conv2d`` computes, which is what the reference called), with a
``'same'`` output size and one of four border rules:

* ``"zeros"``: zero padding (``conv2d(padding=k//2)``; the reference's
  gaussian/motion blur, whose dark border is part of their look);
* ``"reflect101"``: ``d c b | a b c d | c b a`` (OpenCV ``BORDER_REFLECT_101``,
  torch ``"reflect"``);
* ``"symmetric"``: ``c b a | a b c d | d c b`` (SciPy/skimage ``mode="reflect"``);
* ``"replicate"``: ``a a a | a b c d | d d d`` (SciPy ``mode="nearest"``).

Padding is done with index maps, so any pad width works on any frame size
(torch's own reflect padding refuses pads wider than the frame).

Large kernels never run as dense 2-D convolutions: separable kernels run as two
1-D passes, each a blocked Toeplitz matrix product (one GEMM, which BLAS and
cuBLAS run near peak), and non-separable ones (disk, motion line) by FFT.
"""
from __future__ import annotations

import math
from functools import lru_cache

import torch
import torch.nn.functional as F

__all__ = [
    "PAD_MODES",
    "correlate1d",
    "fast_fft_size",
    "fft_correlate2d",
    "gaussian_kernel1d",
    "gaussian_radius",
    "pad2d",
    "pad_index",
    "separable_correlate2d",
]

PAD_MODES = ("zeros", "reflect101", "symmetric", "replicate")


def _check_mode(mode: str) -> None:
    if mode not in PAD_MODES:
        raise ValueError(f"padding mode must be one of {PAD_MODES}, got {mode!r}")


@lru_cache(maxsize=256)
def _pad_index_list(n: int, before: int, after: int, mode: str) -> tuple:
    idx = []
    for i in range(-before, n + after):
        if mode == "replicate":
            j = min(max(i, 0), n - 1)
        elif n == 1:
            j = 0
        elif mode == "reflect101":
            period = 2 * (n - 1)
            j = i % period
            j = period - j if j >= n else j
        else:  # symmetric
            period = 2 * n
            j = i % period
            j = period - 1 - j if j >= n else j
        idx.append(j)
    return tuple(idx)


def pad_index(n: int, before: int, after: int, mode: str, device=None) -> torch.Tensor:
    """int64 ``[before + n + after]``: the source index of every padded position (not ``"zeros"``)."""
    _check_mode(mode)
    if mode == "zeros":
        raise ValueError("pad_index has no index map for 'zeros'; use pad2d")
    return torch.tensor(_pad_index_list(n, before, after, mode), dtype=torch.int64, device=device)


def pad2d(x: torch.Tensor, top: int, bottom: int, left: int, right: int, mode: str) -> torch.Tensor:
    """Pad the last two dims of ``x`` with the border rule ``mode`` (a new tensor)."""
    _check_mode(mode)
    if mode == "zeros":
        return F.pad(x, (left, right, top, bottom))
    H, W = x.shape[-2:]
    if mode == "symmetric" and max(top, bottom) <= H and max(left, right) <= W:
        # c b a | a b c d | d c b: mirrored slices, concatenated (no gather)
        if top or bottom:
            x = torch.cat([x[..., :top, :].flip(-2), x, x[..., H - bottom:, :].flip(-2)], dim=-2)
        if left or right:
            x = torch.cat([x[..., :left].flip(-1), x, x[..., W - right:].flip(-1)], dim=-1)
        return x
    if mode != "symmetric" and top < H and bottom < H and left < W and right < W and x.dim() in (3, 4) \
            and x.is_floating_point():
        # torch's own kernels (reflect = reflect101) are faster than a gather when the pad fits
        if x.dim() == 3:
            return F.pad(x[None], (left, right, top, bottom), mode="reflect" if mode == "reflect101" else mode)[0]
        return F.pad(x, (left, right, top, bottom), mode="reflect" if mode == "reflect101" else mode)
    if top or bottom:
        x = x.index_select(-2, pad_index(H, top, bottom, mode, x.device))
    if left or right:
        x = x.index_select(-1, pad_index(W, left, right, mode, x.device))
    return x


def _pad_for_blocks(x: torch.Tensor, dim: int, before: int, after: int, mode: str) -> torch.Tensor:
    """Pad one axis in a single copy; ``after`` includes the block tail, whose outputs are cropped."""
    if dim == -1:
        return pad2d(x, 0, 0, before, after, mode)
    return pad2d(x, before, after, 0, 0, mode)


def gaussian_radius(sigma: float, truncate: float) -> int:
    """SciPy's kernel radius ``int(truncate * sigma + 0.5)`` (skimage.filters.gaussian uses it)."""
    return int(truncate * float(sigma) + 0.5)


def gaussian_kernel1d(sigma: float, radius: int, dtype=torch.float64) -> torch.Tensor:
    """``exp(-x^2 / (2 sigma^2))`` on ``x = -radius..radius``, normalised to sum 1 (computed in float64)."""
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (x / float(sigma)) ** 2)
    return (k / k.sum()).to(dtype)


def _toeplitz(k: torch.Tensor, block: int) -> torch.Tensor:
    """``T[j + i, j] = k[i]``: ``[block + K - 1, block]``, so ``rows @ T`` correlates each row with ``k``."""
    K = k.numel()
    i = torch.arange(block + K - 1, device=k.device)[:, None]
    j = torch.arange(block, device=k.device)[None, :]
    d = i - j
    return torch.where((d >= 0) & (d < K), k[d.clamp(0, K - 1)], torch.zeros((), dtype=k.dtype, device=k.device))


def _host_cached(store: dict, limit: int, kernel: torch.Tensor, key: tuple, build):
    """``build()``, cached in ``store`` under the host ``kernel``'s values and ``key`` (at most ``limit``
    entries, oldest dropped); kernels on a device are not cached (reading their values would sync)."""
    if kernel.device.type != "cpu":
        return build()
    full = (tuple(kernel.reshape(-1).tolist()), tuple(kernel.shape)) + key
    hit = store.get(full)
    if hit is None:
        if len(store) >= limit:
            store.pop(next(iter(store)))
        hit = store[full] = build()
    return hit


_TOEPLITZ: dict = {}


def _toeplitz_for(k: torch.Tensor, block: int, dtype: torch.dtype, device) -> torch.Tensor:
    """``_toeplitz`` of a host kernel, cached per kernel, block, dtype and device (built once, not per call)."""
    return _host_cached(_TOEPLITZ, 64, k, (block, dtype, str(torch.device(device))),
                        lambda: _toeplitz(k.to(dtype), block).to(device))


def _block_size(K: int) -> int:
    # Each output costs 2*(B + K - 1) flops in the GEMM: B ~ 2K keeps the overhead
    # near 1.5x the direct tap count while the GEMM stays large enough to run at peak.
    return int(min(512, max(64, 32 * math.ceil(2 * K / 32))))


def correlate1d(x: torch.Tensor, k: torch.Tensor, dim: int, mode: str) -> torch.Tensor:
    """Correlate the last (``dim=-1``) or second-to-last (``dim=-2``) axis of ``x`` with ``k``.

    Args:
        x: float ``[..., H, W]``.
        k: 1-D kernel of odd length ``K`` (its centre tap lands on the output pixel).
        dim: -1 (along W) or -2 (along H).
        mode: border rule, one of ``PAD_MODES``.

    Returns:
        A new tensor of ``x``'s shape: ``out[i] = sum_t k[t] * xpad[i + t - K//2]``.
    """
    if dim not in (-1, -2):
        raise ValueError(f"dim must be -1 or -2, got {dim}")
    K = k.numel()
    if K % 2 != 1:
        raise ValueError(f"kernel length must be odd, got {K}")
    r = K // 2
    if K == 1:
        return x * k.to(device=x.device, dtype=x.dtype)[0]
    L = x.shape[dim]
    if L == 0 or x.numel() == 0:
        return x.clone()
    B = min(_block_size(K), max(L, 1))
    nb = -(-L // B)
    extra = nb * B - L  # zero tail so the last block is whole; those outputs are cropped
    T = _toeplitz_for(k, B, x.dtype, x.device)
    # Each temporary is dropped as soon as the next exists (``del``): the caller's own
    # reference to ``x`` is then the only one left, which keeps the peak of a pass near
    # three copies of the frames.
    if dim == -1:
        xp = _pad_for_blocks(x, -1, r, r + extra, mode)
        del x
        lead = xp.shape[:-1] + (nb,)
        blocks = xp.unfold(-1, B + K - 1, B).reshape(-1, B + K - 1)  # overlapping rows, copied once
        del xp
        out = blocks @ T  # one GEMM: rows x (B+K-1) x B
        del blocks
        return out.reshape(*lead[:-1], nb * B)[..., :L]
    xp = _pad_for_blocks(x, -2, r, r + extra, mode)
    del x
    Wd = xp.shape[-1]
    lead = xp.shape[:-2]
    xp = xp.reshape(-1, xp.shape[-2], Wd)
    N = xp.shape[0]
    blocks = xp.as_strided((N, nb, B + K - 1, Wd), (xp.stride(0), B * Wd, Wd, 1)).reshape(N * nb, B + K - 1, Wd)
    del xp
    out = torch.matmul(T.t(), blocks)  # [N*nb, B, W]
    del blocks
    return out.reshape(*lead, nb * B, Wd)[..., :L, :]


def separable_correlate2d(x: torch.Tensor, kh: torch.Tensor, kw: torch.Tensor, mode: str) -> torch.Tensor:
    """Correlate ``[..., H, W]`` with the outer product ``kh ⊗ kw`` (two 1-D passes)."""
    return correlate1d(correlate1d(x, kw, -1, mode), kh, -2, mode)  # the inner result dies in the outer pass


@lru_cache(maxsize=64)
def fast_fft_size(n: int) -> int:
    """The smallest 7-smooth integer >= n (sizes pocketfft and cuFFT handle fastest)."""
    m = max(int(n), 1)
    while True:
        r = m
        for p in (2, 3, 5, 7):
            while r % p == 0:
                r //= p
        if r == 1:
            return m
        m += 1


_SPECTRA: dict = {}


def _kernel_spectrum(kernel: torch.Tensor, fh: int, fw: int, dtype: torch.dtype, device) -> torch.Tensor:
    """``rfft2`` of the flipped kernel (correlation = convolution with the flip), cached for host kernels.

    Each entry is one frame's spectrum: a few are kept."""
    return _host_cached(_SPECTRA, 16, kernel, (fh, fw, dtype, str(torch.device(device))),
                        lambda: torch.fft.rfft2(kernel.to(device=device, dtype=dtype).flip(0, 1), s=(fh, fw)))


def fft_correlate2d(x: torch.Tensor, kernel: torch.Tensor, mode: str, _spectrum=None) -> torch.Tensor:
    """Correlate ``[..., H, W]`` with a dense 2-D kernel ``[Kh, Kw]`` (odd sizes) by FFT.

    Equal to ``conv2d`` with the same padding up to float32 FFT rounding (about
    1e-5 of the signal's range). Cost is independent of the kernel size.
    ``_spectrum``: the kernel's spectrum for this frame size, when the caller has it.
    """
    Kh, Kw = kernel.shape
    if Kh % 2 != 1 or Kw % 2 != 1:
        raise ValueError(f"kernel sizes must be odd, got {tuple(kernel.shape)}")
    H, W = x.shape[-2:]
    if x.numel() == 0:
        return x.clone()
    if x.device.type == "cpu" and x.numel() > H * W:
        # One plane per transform on the CPU: a plane's spectrum stays in cache (about 1.7x faster
        # than one batched FFT of a 720p clip here), the peak is a plane's, and the result is
        # bit-identical however the planes are batched or chunked (MKL's batched FFT is not).
        flat = x.reshape(-1, H, W)
        out = torch.empty(flat.shape, dtype=x.dtype)
        # The kernel's spectrum once for all planes: looking it up per plane hashed the whole
        # kernel's values each time (~0.2 ms a plane for a motion kernel; most of a small clip's time).
        fh, fw = fast_fft_size(H + Kh - 1), fast_fft_size(W + Kw - 1)
        real = torch.float64 if x.dtype == torch.float64 else torch.float32
        spectrum = _kernel_spectrum(kernel, fh, fw, real, x.device)
        for i in range(flat.shape[0]):
            out[i] = fft_correlate2d(flat[i], kernel, mode, spectrum)
        return out.reshape(x.shape)
    rh, rw = Kh // 2, Kw // 2
    dtype = x.dtype
    xw = x if dtype in (torch.float32, torch.float64) else x.float()
    if mode == "zeros":
        xp, oy, ox = xw, Kh - 1 - rh, Kw - 1 - rw
    else:
        xp, oy, ox = pad2d(xw, rh, Kh - 1 - rh, rw, Kw - 1 - rw, mode), Kh - 1, Kw - 1
    fh, fw = fast_fft_size(H + Kh - 1), fast_fft_size(W + Kw - 1)
    del x, xw  # the caller's reference is the only one left
    spec = torch.fft.rfft2(xp, s=(fh, fw))
    del xp
    spec.mul_(_spectrum if _spectrum is not None else _kernel_spectrum(kernel, fh, fw, spec.real.dtype, spec.device))
    full = torch.fft.irfft2(spec, s=(fh, fw))
    del spec
    return full[..., oy:oy + H, ox:ox + W].to(dtype)
