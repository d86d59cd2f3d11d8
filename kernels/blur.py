"""Blur family: gaussian_blur, motion_blur, defocus_blur, glass_blur, zoom_blur.

Each is a deterministic filter on the chosen frames (only glass_blur draws
random numbers), batched over all chosen frames of all clips at once:

* gaussian_blur: the reference's 101x101, sigma 20 Gaussian with zero padding
  (the dark border is part of its look), run as two 101-tap 1-D passes.
* motion_blur: the reference's 101x101 line kernel at 45 degrees (72 cells of
  1/72), zero padding, run by FFT (any angle, cost independent of the size).
* defocus_blur: ImageNet-C's anti-aliased disk (radius 10, alias sigma 0.5),
  reflect-101 borders, by FFT.
* glass_blur: Gaussian sigma 1.5 -> local pixel shuffle (max offset 4, 2
  iterations) -> Gaussian sigma 1.5 (ImageNet-C severity 5). The shuffle is a
  custom Triton kernel on CUDA (``nrvl.kernels.triton.glass``) and the pure-torch
  ``glass_shuffle_reference`` everywhere else; both draw the same numbers.
* zoom_blur: the mean of the frame and its 11 centre-crop zooms 1.00..1.30.

The float work copy is on the 0..255 scale; the framework clamps and rounds.
Kernels are built on the host from parameters (never from data) and are the
reference's kernels up to float rounding (tests compare them).
"""
from __future__ import annotations

import math
from functools import lru_cache

import torch
import torch.nn.functional as F

from . import random as rng
from ._checks import float_param, int_param, validating_draw
from ._filters import fft_correlate2d, gaussian_kernel1d, gaussian_radius, separable_correlate2d
from .core import Context, register_frame_noise
from .triton import enabled as triton_enabled

__all__ = [
    "GLASS_TABLE_BITS",
    "disk_kernel",
    "gaussian_kernel2d",
    "glass_offset_table",
    "glass_shuffle",
    "glass_shuffle_reference",
    "glass_source_law",
    "motion_kernel",
    "zoom_factors",
]


# ----------------------------------------------------------------------------- validation


# ----------------------------------------------------------------------------- gaussian_blur


def _check_gaussian(*, kernel_size, sigma):
    return int_param("kernel_size", kernel_size, 1, odd=True), float_param("sigma", sigma)


def gaussian_kernel2d(kernel_size: int = 101, sigma: float = 20.0) -> torch.Tensor:
    """The reference's dense kernel, float64 ``[K, K]``: ``exp(-(x^2+y^2)/(2 sigma^2))``, sum 1.

    It is the outer product of the normalised 1-D kernel with itself, which is
    how ``gaussian_blur`` applies it.
    """
    K, s = _check_gaussian(kernel_size=kernel_size, sigma=sigma)
    g = gaussian_kernel1d(s, K // 2)
    return torch.outer(g, g)


def _gaussian_blur(x, fp, *, kernel_size, sigma):
    K, s = _check_gaussian(kernel_size=kernel_size, sigma=sigma)
    g = gaussian_kernel1d(s, K // 2)
    return separable_correlate2d(x, g, g, "zeros")


register_frame_noise(
    "gaussian_blur", family="blur", transform=_gaussian_blur, compilable=False,
    draw=validating_draw(_check_gaussian),
    defaults={"kernel_size": 101, "sigma": 20.0}, pointwise=False, deterministic=True,
    work_bytes=17, channelwise=True,
    description="101x101 Gaussian blur, sigma 20, zero padding (darkened 50-px border)",
    # ImageNet-C gaussian_blur sigma = 1, 2, 3, 4, 6; kernel radius int(4 sigma + 0.5) like skimage.
    severities=[{"sigma": float(s), "kernel_size": 2 * int(4 * s + 0.5) + 1} for s in (1, 2, 3, 4, 6)],
)


# ----------------------------------------------------------------------------- motion_blur


def _check_motion(*, kernel_size, angle):
    return int_param("kernel_size", kernel_size, 1, odd=True), float_param("angle", angle, -math.inf)


@lru_cache(maxsize=32)
def _motion_cells(kernel_size: int, angle: float) -> tuple:
    centre = (kernel_size - 1) // 2
    t = math.radians(angle)
    c, s = math.cos(t), math.sin(t)
    cells = set()
    for i in range(kernel_size):
        r = int(centre + (i - centre) * c)  # int() truncates toward zero, as in the reference
        col = int(centre + (i - centre) * s)
        if 0 <= r < kernel_size and 0 <= col < kernel_size:
            cells.add((r, col))
    return tuple(sorted(cells)) or ((centre, centre),)


def motion_kernel(kernel_size: int = 101, angle: float = 45.0) -> torch.Tensor:
    """The reference's line kernel, float64 ``[K, K]``.

    For ``i = 0..K-1`` the cell ``(int(c + (i-c) cos a), int(c + (i-c) sin a))``
    (row, column; ``c = (K-1)//2``) is set to 1 (not accumulated), then the
    kernel is normalised. At 101 and 45 degrees: the 72 diagonal cells
    (14, 14)..(85, 85), each 1/72.
    """
    K, a = _check_motion(kernel_size=kernel_size, angle=angle)
    k = torch.zeros(K, K, dtype=torch.float64)
    rows, cols = zip(*_motion_cells(K, a))
    k[list(rows), list(cols)] = 1.0
    return k / k.sum()


def _motion_blur(x, fp, *, kernel_size, angle):
    return fft_correlate2d(x, motion_kernel(kernel_size, angle), "zeros")


register_frame_noise(
    "motion_blur", family="blur", transform=_motion_blur, compilable=False,
    draw=validating_draw(_check_motion),
    defaults={"kernel_size": 101, "angle": 45.0}, pointwise=False, deterministic=True,
    work_bytes=25, channelwise=True,
    description="101-px line blur at 45 degrees (72 cells of 1/72), zero padding",
    # Own table (ImageNet-C's motion blur is a different, Gaussian-weighted kernel): longer smears.
    severities=[{"kernel_size": k} for k in (21, 41, 61, 81, 101)],
)


# ----------------------------------------------------------------------------- defocus_blur


def _check_defocus(*, radius, alias_blur):
    return int_param("radius", radius, 0, 64), float_param("alias_blur", alias_blur)


def disk_kernel(radius: int = 10, alias_blur: float = 0.5) -> torch.Tensor:
    """ImageNet-C's anti-aliased disk, float32 ``[L, L]``.

    Cells with ``x^2 + y^2 <= radius^2`` on the grid ``-R..R`` (``R = max(radius, 8)``)
    are 1, normalised to sum 1, then blurred with OpenCV's Gaussian (5x5, or 3x3
    for radius <= 8; sigma ``alias_blur``; reflect-101 borders, as
    ``cv2.GaussianBlur`` does). At radius 10: 21x21, 317 cells before the blur.
    """
    r, a = _check_defocus(radius=radius, alias_blur=alias_blur)
    return _disk_kernel(r, a).clone()


@lru_cache(maxsize=16)
def _disk_kernel(r: int, a: float) -> torch.Tensor:
    """``disk_kernel``, built once per parameters (~40 ms; callers must not modify it)."""
    R, ksize = (8, 3) if r <= 8 else (r, 5)
    L = torch.arange(-R, R + 1, dtype=torch.float64)
    disk = ((L[:, None] ** 2 + L[None, :] ** 2) <= r * r).to(torch.float64)
    disk = (disk / disk.sum()).to(torch.float32).to(torch.float64)  # the reference builds it in float32
    g = gaussian_kernel1d(a, ksize // 2)
    return separable_correlate2d(disk, g, g, "reflect101").to(torch.float32)


def _defocus_blur(x, fp, *, radius, alias_blur):
    return fft_correlate2d(x, _disk_kernel(*_check_defocus(radius=radius, alias_blur=alias_blur)), "reflect101")


register_frame_noise(
    "defocus_blur", family="blur", transform=_defocus_blur, compilable=False,
    draw=validating_draw(_check_defocus),
    defaults={"radius": 10, "alias_blur": 0.5}, pointwise=False, deterministic=True,
    work_bytes=22, channelwise=True,
    description="disk blur radius 10 (anti-aliased, sigma 0.5), reflect-101 borders",
    severities=[{"radius": r, "alias_blur": a} for r, a in ((3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5))],
)


# ----------------------------------------------------------------------------- glass_blur
#
# The reference shuffles pixels with ~1.8 M *sequential* swaps per 720p frame:
# for each iteration, for h from H-d down to d+1 and w from W-d down to d+1, it
# swaps pixel (h, w) with (h+dy, w+dx), dx, dy uniform in {-d..d-1}. A pixel
# can be carried many times in one sweep, so its travel has a long, skewed tail
# (at d=4, 2 iterations: std 4.7 px, up to ~40 px upward).
#
# That loop cannot run in parallel, but the law of one pixel's travel can be
# computed exactly: at the swap of position p (the raster scan's time), the
# offset d_p is fresh, so the tagged pixel's position is a Markov chain whose
# transition at p is "at p: move to p + d (uniform); at q in p's window: move
# to p with probability 1/(2d)^2". Propagating a point mass through one sweep
# gives the one-iteration law; iterations draw fresh offsets, so n iterations
# are its n-fold convolution. The parallel shuffle then lets every output pixel
# read its source at an offset drawn from that law (one hash, one table look-up
# per pixel): the distribution of how far pixels travel is the reference's,
# exactly in the interior (tests compare it with a literal sequential shuffle).
# Differences: sources are drawn independently, so some pixels are read twice
# and others not at all (after the second Gaussian this is invisible), and
# near the borders sources are clamped to the rows/columns the reference can
# touch (1..H-1, 1..W-1; row 0 and column 0 never change, as in the reference).

GLASS_TABLE_BITS = 20  # quantile table of 2**20 entries: probabilities resolved to 1e-6


def _check_glass(*, sigma, max_delta, iterations):
    return (float_param("sigma", sigma), int_param("max_delta", max_delta, 1, 8),
            int_param("iterations", iterations, 0, 8))


@lru_cache(maxsize=8)
def _glass_step_law(max_delta: int) -> tuple:
    """Law of one pixel's displacement over one sweep: (float64 ``[h, w]``, (row0, col0)) at the origin."""
    d = max_delta
    D2 = float((2 * d) ** 2)
    up, down, side = 24 * d + 16, 2 * d + 2, 20 * d + 16
    pad = d + 1  # unvisited frame around the grid, as the reference's border rows
    Hg, Wg = up + down + 1 + 2 * pad, 2 * side + 1 + 2 * pad
    G = torch.zeros(Hg, Wg, dtype=torch.float64)
    r0, c0 = pad + up, pad + side
    G[r0, c0] = 1.0
    # Only swaps whose window meets the mass matter; track its bounding box on the host.
    top, bottom, left, right = r0, r0, c0, c0
    for h in range(Hg - d, d, -1):
        if h + d - 1 < top or h - d > bottom:
            continue
        for w in range(Wg - d, d, -1):
            if w + d - 1 < left or w - d > right:
                continue
            win = G[h - d:h + d, w - d:w + d]
            at_p = float(G[h, w])
            arriving = (float(win.sum()) - at_p) / D2
            G[h, w] = 0.0
            win.mul_(1.0 - 1.0 / D2).add_(at_p / D2)
            G[h, w] += arriving
            top, bottom = min(top, h - d), max(bottom, h + d - 1)
            left, right = min(left, w - d), max(right, w + d - 1)
    return G, (r0, c0)


@lru_cache(maxsize=16)
def glass_source_law(max_delta: int = 4, iterations: int = 2) -> tuple:
    """The law of ``source - output`` for the reference's shuffle (interior pixels).

    Returns:
        ``(S, (oy, ox))``: float64 ``[h, w]`` probabilities, ``S[oy + dy, ox + dx]`` =
        P(the pixel that ends at ``y`` started at ``y + (dy, dx)``).
    """
    d, n = _check_glass(sigma=1.0, max_delta=max_delta, iterations=iterations)[1:]
    P, (r0, c0) = _glass_step_law(d)
    law, (lr, lc) = torch.ones(1, 1, dtype=torch.float64), (0, 0)
    for _ in range(n):
        fh, fw = law.shape[0] + P.shape[0] - 1, law.shape[1] + P.shape[1] - 1
        law = torch.fft.irfft2(torch.fft.rfft2(law, s=(fh, fw)) * torch.fft.rfft2(P, s=(fh, fw)), s=(fh, fw))
        law = law.clamp_min(0.0)
        lr, lc = lr + r0, lc + c0
    law = law / law.sum()
    # Forward displacement v has law `law` at origin (lr, lc); the source offset is -v.
    S = law.flip(0, 1)
    return S, (S.shape[0] - 1 - lr, S.shape[1] - 1 - lc)


@lru_cache(maxsize=16)
def _glass_offset_table_cpu(max_delta: int, iterations: int) -> torch.Tensor:
    S, (oy, ox) = glass_source_law(max_delta, iterations)
    p = S.reshape(-1)
    cdf = torch.cumsum(p, 0)
    cdf = cdf / cdf[-1]
    u = (torch.arange(2 ** GLASS_TABLE_BITS, dtype=torch.float64) + 0.5) / 2 ** GLASS_TABLE_BITS
    idx = torch.searchsorted(cdf, u).clamp(max=p.numel() - 1)
    dy = torch.div(idx, S.shape[1], rounding_mode="floor") - oy
    dx = idx % S.shape[1] - ox
    return (dy * 65536 + (dx + 32768)).to(torch.int32)


_TABLES: dict = {}


def glass_offset_table(max_delta: int, iterations: int, device) -> torch.Tensor:
    """int32 ``[2**20]`` quantile table of the source offset, packed ``dy << 16 | (dx + 32768)``.

    Entry ``k`` is the offset at quantile ``(k + 0.5) / 2**20``, so indexing it with
    20 random bits draws from ``glass_source_law``. Built once per parameters
    (about 0.2 s for max_delta 4) and cached per device.
    """
    key = (int(max_delta), int(iterations), str(torch.device(device)))
    t = _TABLES.get(key)
    if t is None:
        t = _glass_offset_table_cpu(int(max_delta), int(iterations)).to(device)
        _TABLES[key] = t
    return t


def glass_shuffle_reference(x: torch.Tensor, key: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """The parallel shuffle in torch ops: ``out[m, :, y] = x[m, :, source(y)]``.

    Args:
        x: ``[M, C, H, W]`` (any dtype; values are only moved).
        key: int32 ``[M, 2]`` per-frame keys (stream ``glass_blur/shuffle``).
        table: ``glass_offset_table(...)`` on ``x``'s device.

    The offset of output pixel ``(h, w)`` is ``table[bits(key, h*W + w) >>> 12]``;
    the source is clamped to rows ``1..H-1`` and columns ``1..W-1``, and row 0
    and column 0 keep their pixels (the reference never touches them).
    """
    M, C, H, W = x.shape
    if M == 0 or H * W == 0:
        return x.clone()
    # Written for a small peak (one int32 plane per frame at a time, in-place updates):
    # a 720p frame's offsets would otherwise take ~10 plane-sized temporaries.
    idx = torch.arange(H * W, dtype=torch.int32, device=x.device).reshape(1, H, W)
    b = rng.bits(key.to(torch.int32).reshape(M, 1, 1, 2), idx)  # [M, H, W]
    e = table[b.bitwise_right_shift_(32 - GLASS_TABLE_BITS).bitwise_and_((1 << GLASS_TABLE_BITS) - 1)]
    del b
    hh = torch.arange(H, dtype=torch.int32, device=x.device).reshape(1, H, 1)
    ww = torch.arange(W, dtype=torch.int32, device=x.device).reshape(1, 1, W)
    # source row (e >> 16) + h and column (e & 0xFFFF) - 32768 + w, clamped to 1..H-1 / 1..W-1
    src = (e >> 16).add_(hh).clamp_(1, max(H - 1, 1)).mul_(W)
    src += e.bitwise_and_(0xFFFF).add_(ww - 32768).clamp_(1, max(W - 1, 1))
    del e
    fixed = (hh == 0) | (ww == 0)  # row 0 and column 0 keep their pixels
    src = torch.where(fixed, idx, src).to(torch.int64).reshape(M, 1, H * W).expand(M, C, H * W)
    return x.reshape(M, C, H * W).gather(2, src).reshape(M, C, H, W)


def glass_shuffle(x: torch.Tensor, key: torch.Tensor, max_delta: int, iterations: int) -> torch.Tensor:
    """Shuffle ``[M, C, H, W]`` frames: the Triton kernel on CUDA, ``glass_shuffle_reference`` elsewhere."""
    M, _, H, W = x.shape
    if iterations == 0 or H <= 2 * max_delta or W <= 2 * max_delta:
        return x  # the reference's sweep visits no position
    table = glass_offset_table(max_delta, iterations, x.device)
    key = key.to(device=x.device, dtype=torch.int32).reshape(M, 2).contiguous()
    if triton_enabled(x):
        from .triton.glass import glass_shuffle_triton
        return glass_shuffle_triton(x, key, table)
    return glass_shuffle_reference(x, key, table)


def _glass_draw(ctx: Context, frame_idx, **p) -> dict:
    """``key``: int32 ``[B, n, 2]``, the per-frame key of the shuffle's offsets."""
    _check_glass(**p)
    return {"key": ctx.keys("glass_blur/shuffle", frame_idx)}


def _glass_blur(x, fp, *, sigma, max_delta, iterations):
    s, d, n = _check_glass(sigma=sigma, max_delta=max_delta, iterations=iterations)
    g = gaussian_kernel1d(s, gaussian_radius(s, 4.0))  # skimage.filters.gaussian: truncate 4, mode 'nearest'
    y = separable_correlate2d(x, g, g, "replicate")
    del x  # the work copy is ours alone (register_frame_noise passes it, keeps no reference)
    y = y.clamp_(0.0, 255.0).round_()  # the reference's uint8 intermediate (rounded, like the final cast)
    y = glass_shuffle(y, fp["key"], d, n)
    return separable_correlate2d(y, g, g, "replicate")


register_frame_noise(
    "glass_blur", family="blur", transform=_glass_blur, compilable=False, draw=_glass_draw,
    work_bytes=22,
    defaults={"sigma": 1.5, "max_delta": 4, "iterations": 2}, pointwise=False,
    description="Gaussian 1.5, local pixel shuffle (offsets up to 4, 2 sweeps), Gaussian 1.5",
    severities=[{"sigma": s, "max_delta": d, "iterations": n}
                for s, d, n in ((0.7, 1, 2), (0.9, 2, 1), (1.0, 2, 3), (1.1, 3, 2), (1.5, 4, 2))],
)


# ----------------------------------------------------------------------------- zoom_blur


def _check_zoom(*, zooms):
    if not isinstance(zooms, (tuple, list)) or len(zooms) != 3:
        raise ValueError(f"zooms must be a (start, stop, step) triple like numpy.arange's, got {zooms!r}")
    start = float_param("zooms[0] (start)", zooms[0], 1.0, strict=False)
    stop = float_param("zooms[1] (stop)", zooms[1], start)
    step = float_param("zooms[2] (step)", zooms[2])
    return start, stop, step


def zoom_factors(zooms=(1.0, 1.31, 0.03)) -> list:
    """The zoom factors the reference uses: ``numpy.arange(start, stop, step)`` thinned to <= 10 when longer.

    numpy computes element ``i`` as ``start + i * ((start + step) - start)`` and the
    length as ``ceil((stop - start) / step)``; the reference then keeps every
    ``len // 10``-th factor when there are more than 10 (a no-op for its 11).
    """
    start, stop, step = _check_zoom(zooms=zooms)
    n = max(0, math.ceil((stop - start) / step))
    delta = (start + step) - start
    c = [start + i * delta for i in range(n)]
    if len(c) > 10:
        c = c[::max(1, len(c) // 10)]
    return c


def _zoom_blur(x, fp, *, zooms):
    H, W = x.shape[-2:]
    factors = zoom_factors(zooms)
    out = x.clone()
    for z in factors:  # a loop over the ~11 zoom factors, each batched over all frames
        zh, zw = max(1, int(H / z)), max(1, int(W / z))
        top, left = (H - zh) // 2, (W - zw) // 2
        if top < 0 or left < 0 or top + zh > H or left + zw > W:
            continue  # the reference skips impossible crops but still divides by len + 1
        if (zh, zw) == (H, W):
            out += x  # cv2.resize to the same size is a copy
        else:
            crop = x[..., top:top + zh, left:left + zw]
            out += F.interpolate(crop, size=(H, W), mode="bilinear", align_corners=False)
    return out.div_(len(factors) + 1)


register_frame_noise(
    "zoom_blur", family="blur", transform=_zoom_blur, compilable=False,
    draw=validating_draw(_check_zoom),
    defaults={"zooms": (1.0, 1.31, 0.03)}, pointwise=False, deterministic=True,
    work_bytes=13, channelwise=True,
    description="mean of the frame and its centre zooms 1.00..1.30 (step 0.03), bilinear",
    severities=[{"zooms": z} for z in ((1.0, 1.11, 0.01), (1.0, 1.16, 0.01), (1.0, 1.21, 0.02),
                                       (1.0, 1.26, 0.02), (1.0, 1.31, 0.03))],
)

