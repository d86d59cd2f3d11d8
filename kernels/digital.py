"""Digital family: random_pixel, color_quantized (and the resampling/edge noises)."""
from __future__ import annotations

import torch

from . import random as rng
from .core import Context, pixel_index, register_frame_noise


def _random_pixel_draw(ctx: Context, frame_idx, **p):
    """``key``: int32 ``[B, n, 2]`` for the mask, ``value_key``: the same for the colours."""
    return {"key": rng.keys(ctx.seeds, "random_pixel/mask", frame_idx),
            "value_key": rng.keys(ctx.seeds, "random_pixel/value", frame_idx)}


def _random_pixel(x, fp, *, probs):
    mask = rng.uniform(fp["key"][:, None, None, None, :], pixel_index(x.shape, x.device, False), x.dtype) < probs
    # Integers uniform on 0..255 for every channel (the reference drew U[0,255) and truncated).
    val = torch.floor(256.0 * rng.uniform(fp["value_key"][:, None, None, None, :],
                                          pixel_index(x.shape, x.device, True), x.dtype))
    return torch.where(mask, val, x)


register_frame_noise(
    "random_pixel", family="digital", transform=_random_pixel, draw=_random_pixel_draw,
    defaults={"probs": 0.8},
    description="80% of pixel positions replaced by uniform random RGB",
    severities=[{"probs": q} for q in (0.05, 0.1, 0.2, 0.4, 0.8)],
)


def _color_quantized(x, fp, *, bits):
    step = 255.0 / (2 ** int(bits) - 1)
    return torch.round(x / step) * step


register_frame_noise(
    "color_quantized", family="digital", transform=_color_quantized,
    defaults={"bits": 3},
    description="posterize to 2^3 = 8 evenly spaced levels per channel",
    severities=[{"bits": b} for b in (6, 5, 4, 3, 2)],
)


# ----------------------------------------------------------------------------- resampling, edges, elastic
#
# resolution_degrade, stretch_squish, edge_sawtooth and elastic (issue 3). Shared
# filters live in ``_filters``; parameters are validated where they enter
# (``draw`` at sampling, the transform at apply/replay) with a ValueError naming them.

import math
from functools import lru_cache

import torch.nn.functional as F

from ._checks import float_param, int_param, validating_draw
from ._filters import gaussian_kernel1d, gaussian_radius, separable_correlate2d


# resolution_degrade ----------------------------------------------------------


def _check_resolution(*, scale_factor):
    return float_param("scale_factor", scale_factor, 0.0, 1.0)


def _resolution_degrade(x, fp, *, scale_factor):
    s = _check_resolution(scale_factor=scale_factor)
    H, W = x.shape[-2:]
    # The reference's int(0.1 H) x int(0.1 W); at least 1 px (it crashed below 10 px).
    small = F.interpolate(x, size=(max(1, int(H * s)), max(1, int(W * s))), mode="bicubic", align_corners=False)
    return F.interpolate(small, size=(H, W), mode="bicubic", align_corners=False)


register_frame_noise(
    "resolution_degrade", family="digital", transform=_resolution_degrade, compilable=False,
    draw=validating_draw(_check_resolution),
    defaults={"scale_factor": 0.1}, pointwise=False, deterministic=True,
    description="bicubic down to 0.1x (no antialias) and back up",
    # ImageNet-C pixelate's factors (it resamples with a box filter; we keep bicubic).
    severities=[{"scale_factor": c} for c in (0.6, 0.5, 0.4, 0.3, 0.25)],
)


# stretch_squish ---------------------------------------------------------------


def _check_stretch(*, stretch_ratio):
    return float_param("stretch_ratio", stretch_ratio, 0.0, 1.0)


def _resize_matrix(n_in: int, n_out: int, device, dtype) -> torch.Tensor:
    """``[n_in, n_out]``: ``v @ R`` is ``F.interpolate``'s bicubic resize of the last axis of ``v``.

    Built by resizing the identity, so the weights (including the clamped taps
    at the borders) are torch's own. Cached per size, device and dtype.
    """
    return _resize_matrix_cached(int(n_in), int(n_out), str(torch.device(device)), dtype)


@lru_cache(maxsize=32)
def _resize_matrix_cached(n_in: int, n_out: int, device: str, dtype) -> torch.Tensor:
    eye = torch.eye(n_in, dtype=torch.float64, device=device).reshape(n_in, 1, 1, n_in)
    r = F.interpolate(eye, size=(1, n_out), mode="bicubic", align_corners=False)
    return r.reshape(n_in, n_out).to(dtype)


def _stretch_draw(ctx: Context, frame_idx, *, stretch_ratio):
    """``horizontal``: bool ``[B, n]``, one coin per clip (True: squeeze the width, else the height)."""
    _check_stretch(stretch_ratio=stretch_ratio)
    key = rng.keys(ctx.seeds, "stretch_squish/axis")  # [B, 2]: one draw per clip, not per frame
    u = rng.uniform(key, torch.zeros((), dtype=torch.int32, device=ctx.device))
    return {"horizontal": (u > 0.5)[:, None].expand(frame_idx.shape).contiguous()}


def _stretch_squish(x, fp, *, stretch_ratio):
    r = _check_stretch(stretch_ratio=stretch_ratio)
    H, W = x.shape[-2:]
    nh, nw = max(1, int(H * r)), max(1, int(W * r))
    # Both resizes are separable bicubic along one axis, i.e. two thin matrix products
    # (exactly F.interpolate's weights); every frame gets both and keeps its clip's axis.
    wide = (x @ _resize_matrix(W, nw, x.device, x.dtype)) @ _resize_matrix(nw, W, x.device, x.dtype)
    down_h = _resize_matrix(H, nh, x.device, x.dtype).t()
    up_h = _resize_matrix(nh, H, x.device, x.dtype).t()
    tall = up_h @ (down_h @ x)
    return torch.where(fp["horizontal"].reshape(-1, 1, 1, 1), wide, tall)


def _stretch_squish_u8(x, fp, *, stretch_ratio):
    # The reference's own path for uint8 CPU input: torch's uint8 bicubic kernel (rounds and
    # saturates the squeezed image), ~6x faster than the float path; elsewhere the float transform.
    if x.device.type != "cpu":
        return NotImplemented
    r = _check_stretch(stretch_ratio=stretch_ratio)
    H, W = x.shape[-2:]
    nh, nw = max(1, int(H * r)), max(1, int(W * r))
    wide = F.interpolate(F.interpolate(x, size=(H, nw), mode="bicubic", align_corners=False),
                         size=(H, W), mode="bicubic", align_corners=False)
    tall = F.interpolate(F.interpolate(x, size=(nh, W), mode="bicubic", align_corners=False),
                         size=(H, W), mode="bicubic", align_corners=False)
    return torch.where(fp["horizontal"].reshape(-1, 1, 1, 1), wide, tall)


register_frame_noise(
    "stretch_squish", family="digital", transform=_stretch_squish, compilable=False, draw=_stretch_draw,
    uint8_transform=_stretch_squish_u8,
    defaults={"stretch_ratio": 1.0 / 30.0}, pointwise=False,
    description="one axis per clip squeezed to 1/30 (bicubic) and stretched back",
    severities=[{"stretch_ratio": s} for s in (0.5, 0.25, 0.125, 1.0 / 16.0, 1.0 / 30.0)],
)


# edge_sawtooth ----------------------------------------------------------------

_TG22 = 13573  # OpenCV canny: round(tan(22.5 deg) * 2**15)


def _check_edge(*, low_threshold, high_threshold, dilate_size, surround_noise_ratio):
    lo = float_param("low_threshold", low_threshold, 0.0, strict=False)
    hi = float_param("high_threshold", high_threshold, 0.0, strict=False)
    k = int_param("dilate_size", dilate_size, 1, 15)
    q = float_param("surround_noise_ratio", surround_noise_ratio, 0.0, 1.0, strict=False)
    return lo, hi, k, q


def _gray_like_opencv(x: torch.Tensor) -> torch.Tensor:
    """float ``[M, H, W]`` of integers: ``cv2.cvtColor(frame, COLOR_BGR2GRAY)`` on RGB data, bit-exact.

    The reference passed RGB frames to the BGR conversion, so channel 0 (red) gets
    blue's weight 0.114 and channel 2 (blue) gets red's 0.299. OpenCV's uint8 path
    works in 15-bit fixed point, ``(3735 c0 + 19235 c1 + 9798 c2 + 2**14) >> 15``
    (checked against cv2 4.11 on every sampled colour). Exact in float32: every
    intermediate is an integer below 2**24 and the shift is a division by a power of two.
    """
    v = x.clamp(0.0, 255.0).round()
    return torch.floor((v[:, 0] * 3735.0 + v[:, 1] * 19235.0 + v[:, 2] * 9798.0 + 16384.0) * (1.0 / 32768.0))


def _hysteresis(strong: torch.Tensor, weak: torch.Tensor) -> torch.Tensor:
    """Strong pixels plus the weak ones 8-connected to a strong one through weak pixels (exact).

    Connected components of the weak pixels by Shiloach-Vishkin style hooking and
    pointer jumping on the compacted weak pixels, over the edge list of 8-neighbour
    pairs; after each round the edges whose ends already share a label are dropped,
    so later rounds only touch the unfinished part (about 2x faster on textured
    720p video than looping over every edge). A component is kept when one of its
    pixels touches a strong one. Exactness makes the result the same on every device.
    Host syncs: one ``nonzero`` up front and one edge filter per round; the number of
    rounds grows roughly with the log of the longest chain.
    """
    M, H, W = weak.shape
    idx = weak.reshape(-1).nonzero().squeeze(1)  # int64 [N], ascending
    N = idx.numel()
    if N == 0:
        return strong
    seed = (weak & _dilate(strong, 3)).reshape(-1)[idx]
    ids = torch.full((weak.numel(),), -1, dtype=torch.int64, device=weak.device)
    ids[idx] = torch.arange(N, device=weak.device)
    r = torch.div(idx, W, rounding_mode="floor") % H
    c = idx % W
    own = torch.arange(N, device=weak.device)
    us, vs = [], []
    for dr, dc in ((0, 1), (1, -1), (1, 0), (1, 1)):  # the 4 forward 8-neighbours cover every edge once
        ok = (r + dr < H) & (c + dc >= 0) & (c + dc < W)
        q = ids[(idx + dr * W + dc).clamp(0, weak.numel() - 1)]
        present = ok & (q >= 0)
        us.append(own[present])
        vs.append(q[present])
    u, v = torch.cat(us), torch.cat(vs)
    f = own.clone()
    # Pointers only go to smaller indices, so a tree's root is its minimum. Only roots are
    # hooked, so trees only ever merge: two ends that once share a label stay in one tree,
    # and their edge can be dropped. Labels only decrease, so the loop ends.
    while u.numel():
        fu, fv = f[u], f[v]
        hi, lo = torch.maximum(fu, fv), torch.minimum(fu, fv)
        root = f[hi] == hi
        f = f.scatter_reduce(0, hi[root], lo[root], reduce="amin")
        f = f[f][f]  # pointer jumping, twice
        live = f[u] != f[v]
        u, v = u[live], v[live]
    while True:  # every component is one tree now: compress it to its root
        g = f[f]
        if torch.equal(g, f):
            break
        f = g
    hit = torch.zeros(N, dtype=torch.int32, device=weak.device).scatter_reduce(0, f, seed.to(torch.int32), reduce="amax")
    keep = hit[f] > 0
    out = strong.reshape(-1).clone()
    out[idx] = keep
    return out.reshape(M, H, W)


def canny(gray: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """OpenCV's ``cv2.Canny(gray, low, high)`` (aperture 3, L1 gradient), batched: bool ``[M, H, W]``.

    Sobel with replicated borders, ``|dx| + |dy|``, OpenCV's non-maximum
    suppression (its fixed-point 22.5/67.5 degree sectors and its ``>``/``>=``
    tie rules, zero magnitude outside the frame), thresholds ``mag > floor(low)``
    (candidate) and ``> floor(high)`` (strong), and exact hysteresis along
    8-connected candidates (``_hysteresis``).

    Args:
        gray: integer-valued float ``[M, H, W]`` on 0..255 (all arithmetic below is
            exact in float32).
    """
    lo, hi = sorted((math.floor(low), math.floor(high)))  # OpenCV swaps reversed thresholds
    g = F.pad(gray.to(torch.float32)[:, None], (1, 1, 1, 1), mode="replicate")[:, 0]
    sv = g[:, :-2] + 2.0 * g[:, 1:-1] + g[:, 2:]  # vertical smoothing, [M, H, W+2]
    dx = sv[..., 2:] - sv[..., :-2]
    sh = g[..., :-2] + 2.0 * g[..., 1:-1] + g[..., 2:]  # horizontal smoothing, [M, H+2, W]
    dy = sh[:, 2:] - sh[:, :-2]
    xs, ys = dx.abs(), dy.abs()
    mag = xs + ys
    mp = F.pad(mag, (1, 1, 1, 1))
    # OpenCV: |dy| * 2**15 < |dx| * TG22 -> horizontal; |dy| * 2**15 > |dx| * (TG22 + 2**16) -> vertical.
    # Written so every product is exact in float32 (integers times powers of two, or below 2**24).
    tg22x = xs * float(_TG22)
    horizontal = ys * 32768.0 < tg22x
    vertical = (ys - 2.0 * xs) * 32768.0 > tg22x
    same_sign = (dx >= 0) == (dy >= 0)  # OpenCV's (dx ^ dy) >= 0
    diag = torch.where(same_sign, (mag > mp[:, :-2, :-2]) & (mag > mp[:, 2:, 2:]),
                       (mag > mp[:, :-2, 2:]) & (mag > mp[:, 2:, :-2]))
    local_max = torch.where(horizontal, (mag > mp[:, 1:-1, :-2]) & (mag >= mp[:, 1:-1, 2:]),
                            torch.where(vertical, (mag > mp[:, :-2, 1:-1]) & (mag >= mp[:, 2:, 1:-1]), diag))
    cand = local_max & (mag > lo)
    strong = cand & (mag > hi)
    return _hysteresis(strong, cand & ~strong)


def _dilate(m: torch.Tensor, k: int) -> torch.Tensor:
    """``cv2.dilate`` with a ``k x k`` box and the default anchor ``(k//2, k//2)`` (zero outside)."""
    if k == 1:
        return m
    a = k // 2
    p = F.pad(m.to(torch.uint8), (a, k - 1 - a, a, k - 1 - a))
    H, W = m.shape[-2:]
    rows = p[..., 0:W]
    for j in range(1, k):
        rows = rows | p[..., j:j + W]
    out = rows[..., 0:H, :]
    for i in range(1, k):
        out = out | rows[..., i:i + H, :]
    return out.bool()


def _edge_draw(ctx: Context, frame_idx, **p) -> dict:
    """``mask_key``, ``value_key``: int32 ``[B, n, 2]`` per-frame keys of the surround coin and the colours."""
    _check_edge(**p)
    return {"mask_key": rng.keys(ctx.seeds, "edge_sawtooth/mask", frame_idx),
            "value_key": rng.keys(ctx.seeds, "edge_sawtooth/value", frame_idx)}


def _edge_sawtooth(x, fp, *, low_threshold, high_threshold, dilate_size, surround_noise_ratio):
    lo, hi, k, q = _check_edge(low_threshold=low_threshold, high_threshold=high_threshold,
                               dilate_size=dilate_size, surround_noise_ratio=surround_noise_ratio)
    edges = _dilate(canny(_gray_like_opencv(x), lo, hi), k)  # [M, H, W]
    surround = _dilate(edges, 3)  # the 8 neighbours (and the pixel itself, already in `edges`)
    coin = rng.uniform(fp["mask_key"][:, None, None, :], pixel_index(x.shape, x.device, False)[:, 0], x.dtype)
    mask = edges | (surround & (coin < q))
    # Uniform integers 0..255 per channel (the reference's randint(0, 256)): 8 bits each of one hash.
    b = rng.bits(fp["value_key"][:, None, None, :], pixel_index(x.shape, x.device, False)[:, 0])  # [M, H, W]
    value = torch.stack([b & 255, (b >> 8) & 255, (b >> 16) & 255], dim=1).to(x.dtype)
    return torch.where(mask[:, None], value, x)


register_frame_noise(
    "edge_sawtooth", family="digital", transform=_edge_sawtooth, compilable=False, draw=_edge_draw,
    defaults={"low_threshold": 50.0, "high_threshold": 150.0, "dilate_size": 2, "surround_noise_ratio": 0.3},
    pointwise=False,
    description="Canny(50,150) edges, 2x2-dilated, plus 30% of their neighbours -> random RGB",
    severities=[{"dilate_size": k, "surround_noise_ratio": q}
                for k, q in ((1, 0.0), (1, 0.1), (2, 0.1), (2, 0.2), (2, 0.3))],
)


# elastic ------------------------------------------------------------------------


def _check_elastic(*, alpha, sigma, amplitude):
    return (float_param("alpha", alpha, 0.0, strict=False), float_param("sigma", sigma, 0.0),
            float_param("amplitude", amplitude, 0.0, strict=False))


def elastic_displacement(key: torch.Tensor, H: int, W: int, *, alpha: float = 30.0, sigma: float = 0.01,
                         amplitude: float = 0.005, dtype=torch.float32) -> torch.Tensor:
    """The per-frame displacement fields in pixels: float ``[M, 2, H, W]`` (channel 0: columns, 1: rows).

    Each component is uniform on ``[-amplitude*H, amplitude*H]`` per pixel (both
    use H, as the reference does; 16 bits of one hash per component), smoothed by a Gaussian with
    ``sigma * (H, W)`` (truncate 3, symmetric borders: skimage's ``mode='reflect'``),
    times ``alpha``. At 720p that is a std of about 1.8 px.

    Args:
        key: int32 ``[M, 2]`` per-frame keys (stream ``elastic/field``).
    """
    a, s, amp = _check_elastic(alpha=alpha, sigma=sigma, amplitude=amplitude)
    M = key.shape[0]
    idx = torch.arange(H * W, dtype=torch.int32, device=key.device).reshape(1, H, W)
    b = rng.bits(key.reshape(M, 1, 1, 2), idx)  # [M, H, W]: one hash gives both components
    # 16 bits each, uniform on (k + 0.5) / 2**16: plenty for a field averaged over ~1000 pixels.
    u = torch.stack([b & 0xFFFF, (b >> 16) & 0xFFFF], dim=1).to(dtype).add_(0.5).mul_(1.0 / 65536.0)
    m = amp * H
    field = u.mul_(2.0 * m).sub_(m)
    sy, sx = s * H, s * W
    gy = gaussian_kernel1d(sy, gaussian_radius(sy, 3.0))
    gx = gaussian_kernel1d(sx, gaussian_radius(sx, 3.0))
    return separable_correlate2d(field, gy, gx, "symmetric").mul_(a)


def _elastic_draw(ctx: Context, frame_idx, **p) -> dict:
    """``key``: int32 ``[B, n, 2]``, the per-frame key of the displacement field."""
    _check_elastic(**p)
    return {"key": rng.keys(ctx.seeds, "elastic/field", frame_idx)}


def _elastic(x, fp, *, alpha, sigma, amplitude):
    H, W = x.shape[-2:]
    d = elastic_displacement(fp["key"], H, W, alpha=alpha, sigma=sigma, amplitude=amplitude, dtype=x.dtype)
    cols = torch.arange(W, dtype=x.dtype, device=x.device)
    rows = torch.arange(H, dtype=x.dtype, device=x.device)
    # Sample at (row + dy, col + dx), bilinear; grid_sample's reflection with
    # align_corners=False mirrors about the pixel edges like SciPy's mode='reflect'.
    gx = (2.0 * (cols + d[:, 0]) + 1.0) / W - 1.0
    gy = (2.0 * (rows[:, None] + d[:, 1]) + 1.0) / H - 1.0
    grid = torch.stack([gx, gy], dim=-1)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


register_frame_noise(
    "elastic", family="digital", transform=_elastic, compilable=False, draw=_elastic_draw,
    defaults={"alpha": 30.0, "sigma": 0.01, "amplitude": 0.005}, pointwise=False,
    description="elastic warp: uniform field +-0.005H, Gaussian sigma 0.01(H,W), x30, bilinear, reflect",
    # imagecorruptions elastic_transform alpha = 250 * (.05, .065, .085, .10, .12).
    severities=[{"alpha": 250.0 * c} for c in (0.05, 0.065, 0.085, 0.10, 0.12)],
)
