"""Digital family: random_pixel, color_quantized (and the resampling/edge noises)."""
from __future__ import annotations

import torch

from . import random as rng
from ._checks import float_param, int_param, range_param, validating_draw
from .core import Context, pixel_index, register_frame_noise


def _random_pixel_draw(ctx: Context, frame_idx, *, probs, value_range):
    """``key``: int32 ``[B, n, 2]`` for the mask, ``value_key``: the same for the colours."""
    float_param("probs", probs, 0.0, 1.0, strict=False)
    range_param("value_range", value_range, 0, 255, integers=True)
    return {"key": ctx.keys("random_pixel/mask", frame_idx),
            "value_key": ctx.keys("random_pixel/value", frame_idx)}


def _random_pixel(x, fp, *, probs, value_range):
    lo, hi = value_range
    mask = rng.uniform(fp["key"][:, None, None, None, :], pixel_index(x.shape, x.device, False), x.dtype) < probs
    # Integers uniform on lo..hi (default 0..255) for every channel (the reference drew U[0,255) and truncated).
    val = lo + torch.floor((hi - lo + 1.0) * rng.uniform(fp["value_key"][:, None, None, None, :],
                                                        pixel_index(x.shape, x.device, True), x.dtype))
    return torch.where(mask, val, x)


register_frame_noise(
    "random_pixel", family="digital", transform=_random_pixel, draw=_random_pixel_draw,
    defaults={"probs": 0.8, "value_range": (0, 255)},
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
import sys
from functools import lru_cache

import torch.nn.functional as F

from ._filters import gaussian_kernel1d, gaussian_radius, separable_correlate2d


# resolution_degrade ----------------------------------------------------------


def _check_resolution(*, scale_factor):
    return float_param("scale_factor", scale_factor, 0.0, 1.0)


def _small_size(H: int, W: int, s: float) -> tuple:
    # The reference's int(0.1 H) x int(0.1 W); at least 1 px (it crashed below 10 px).
    return max(1, int(H * s)), max(1, int(W * s))


def _downsample(x: torch.Tensor, h: int, w: int, dtype) -> torch.Tensor:
    """``F.interpolate(x, (h, w), bicubic)`` without antialias, as two thin products.

    Without antialias a bicubic shrink reads at most 4 taps per output, so only those
    rows and columns of ``x`` are gathered (about 4h of H); ``x`` may be uint8 (only the
    gathered pixels become float).
    """
    H, W = x.shape[-2:]
    rows, dh = _used_taps(H, h, x.device, dtype)  # [r], [r, h]
    cols, dw = _used_taps(W, w, x.device, dtype)  # [c], [c, w]
    taps = x.index_select(-2, rows).index_select(-1, cols).to(dtype)
    return dh.t() @ taps @ dw


def _degrade_stages(x, scale_factor, dtype) -> tuple:
    """``(mid, up)``: the shrunk frames already widened back (``[M, C, h, W]``) and the ``[H, h]``
    matrix of the last resize. Both bicubic resizes are separable matrix products with torch's
    own weights (up-sampling by 10 costs ~80 multiply-adds per output pixel in a GEMM, ~3x
    faster than upsample_bicubic2d)."""
    s = _check_resolution(scale_factor=scale_factor)
    H, W = x.shape[-2:]
    h, w = _small_size(H, W, s)
    mid = _downsample(x, h, w, dtype) @ _resize_matrix(w, W, x.device, dtype)
    return mid, _resize_matrix(h, H, x.device, dtype).t()


def _resolution_degrade(x, fp, *, scale_factor):
    mid, up = _degrade_stages(x, scale_factor, x.dtype)
    return up @ mid


def _resolution_degrade_u8(x, fp, *, scale_factor):
    # uint8 CPU input: the float work is the small image and one reused block of output
    # planes (fresh clip-sized float buffers cost more in page faults than the GEMM itself).
    if x.device.type != "cpu":
        return NotImplemented
    M, C, H, W = x.shape
    mid, up = _degrade_stages(x, scale_factor, torch.float32)
    mid = mid.reshape(M * C, -1, W)
    out = torch.empty((M * C, H, W), dtype=torch.uint8)
    k = max(1, (4 << 20) // (H * W))  # planes per block: ~16 MiB of float32
    buf = torch.empty((min(k, M * C), H, W))
    for i in range(0, M * C, k):
        n = min(k, M * C - i)
        y = torch.matmul(up, mid[i:i + n], out=buf[:n])
        out[i:i + n].copy_(y.clamp_(0.0, 255.0).round_())
    return out.reshape(M, C, H, W)


register_frame_noise(
    "resolution_degrade", family="digital", transform=_resolution_degrade, compilable=False,
    draw=validating_draw(_check_resolution), uint8_transform=_resolution_degrade_u8,
    defaults={"scale_factor": 0.1}, pointwise=False, deterministic=True,
    work_bytes=10, channelwise=True,
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


def _used_taps(n_in: int, n_out: int, device, dtype) -> tuple:
    """``(idx, R)``: the input positions a shrink from ``n_in`` to ``n_out`` reads and the rows of
    ``_resize_matrix`` for them (``v[..., idx] @ R`` is the resize); cached like it."""
    return _used_taps_cached(int(n_in), int(n_out), str(torch.device(device)), dtype)


@lru_cache(maxsize=32)
def _used_taps_cached(n_in: int, n_out: int, device: str, dtype) -> tuple:
    r = _resize_matrix_cached(n_in, n_out, "cpu", torch.float64)
    idx = r.ne(0).any(1).nonzero().squeeze(1)  # on the host: no device sync
    return idx.to(device), r.index_select(0, idx).to(device=device, dtype=dtype)


def _stretch_draw(ctx: Context, frame_idx, *, stretch_ratio):
    """``horizontal``: bool ``[B, n]``, one coin per clip (True: squeeze the width, else the height)."""
    _check_stretch(stretch_ratio=stretch_ratio)
    key = ctx.keys("stretch_squish/axis")  # [B, 2]: one draw per clip, not per frame
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
    # On the CPU reading the axes is no device sync: resize each frame along its clip's axis only.
    horizontal = fp["horizontal"].reshape(-1)
    flags = set(horizontal.tolist())
    if len(flags) == 1:  # one axis for the whole chunk (always so for a single clip): no gather
        size = (H, nw) if flags.pop() else (nh, W)
        return F.interpolate(F.interpolate(x, size=size, mode="bicubic", align_corners=False), size=(H, W),
                             mode="bicubic", align_corners=False)
    out = torch.empty_like(x)
    for sel, size in ((horizontal, (H, nw)), (~horizontal, (nh, W))):  # the two axes, each batched
        i = sel.nonzero().squeeze(1)
        if i.numel():
            small = F.interpolate(x.index_select(0, i), size=size, mode="bicubic", align_corners=False)
            out.index_copy_(0, i, F.interpolate(small, size=(H, W), mode="bicubic", align_corners=False))
    return out


register_frame_noise(
    "stretch_squish", family="digital", transform=_stretch_squish, compilable=False, draw=_stretch_draw,
    work_bytes=4, channelwise=True,
    uint8_transform=_stretch_squish_u8,
    defaults={"stretch_ratio": 1.0 / 30.0}, pointwise=False,
    description="one axis per clip squeezed to 1/30 (bicubic) and stretched back",
    severities=[{"stretch_ratio": s} for s in (0.5, 0.25, 0.125, 1.0 / 16.0, 1.0 / 30.0)],
)


# edge_sawtooth ----------------------------------------------------------------

# The Canny machinery lives in _canny; imported here by name (tests use nrvl.kernels.digital.canny etc.).
from ._canny import _TG22, _dilate, _gray_like_opencv, _hysteresis, canny  # noqa: E402,F401


def _check_edge(*, low_threshold, high_threshold, dilate_size, surround_noise_ratio):
    lo = float_param("low_threshold", low_threshold, 0.0, strict=False)
    hi = float_param("high_threshold", high_threshold, 0.0, strict=False)
    k = int_param("dilate_size", dilate_size, 1, 15)
    q = float_param("surround_noise_ratio", surround_noise_ratio, 0.0, 1.0, strict=False)
    return lo, hi, k, q


def _edge_draw(ctx: Context, frame_idx, **p) -> dict:
    """``mask_key``, ``value_key``: int32 ``[B, n, 2]`` per-frame keys of the surround coin and the colours."""
    _check_edge(**p)
    return {"mask_key": ctx.keys("edge_sawtooth/mask", frame_idx),
            "value_key": ctx.keys("edge_sawtooth/value", frame_idx)}


def _edge_mask(x, fp, lo, hi, k, q, coin_dtype):
    """bool ``[M, H, W]``: the dilated Canny edges plus the neighbours whose coin is below ``q``."""
    mask = _dilate(canny(_gray_like_opencv(x), lo, hi), k)  # [M, H, W]
    surround = _dilate(mask, 3)  # the 8 neighbours (and the pixel itself, already in the edges)
    # The coin is rng.uniform(...) < q, compared in integers: the uniform is its 24-bit integer
    # times 2**-24 (exact in float32/64), and torch rounds q to the uniform's dtype first.
    coin = rng.bits(fp["mask_key"][:, None, None, :], pixel_index(x.shape, x.device, False)[:, 0])
    coin = coin.bitwise_right_shift_(8).bitwise_and_(0xFFFFFF)
    below = math.ceil(float(torch.tensor(q, dtype=coin_dtype)) * 2.0 ** 24)
    heads = coin.sub_(below).bitwise_right_shift_(31).to(torch.bool)  # coin < below, by its sign bit
    return mask.logical_or_(surround.logical_and_(heads))


def _edge_values(x, fp):
    """The replacement colours ``[M, 3, H, W]`` (uint8 view): uniform integers 0..255 per channel
    (the reference's randint(0, 256)), bytes 0, 1, 2 of one hash per pixel."""
    b = rng.bits(fp["value_key"][:, None, None, :], pixel_index(x.shape, x.device, False)[:, 0])  # [M, H, W]
    if sys.byteorder == "little":  # byte j of the int32 is (b >> 8j) & 255
        return b.view(torch.uint8).view(*b.shape, 4).permute(0, 3, 1, 2)[:, :3]
    return torch.stack([b & 255, (b >> 8) & 255, (b >> 16) & 255], dim=1).to(torch.uint8)


def _edge_sawtooth(x, fp, *, low_threshold, high_threshold, dilate_size, surround_noise_ratio):
    lo, hi, k, q = _check_edge(low_threshold=low_threshold, high_threshold=high_threshold,
                               dilate_size=dilate_size, surround_noise_ratio=surround_noise_ratio)
    mask = _edge_mask(x, fp, lo, hi, k, q, x.dtype)
    return torch.where(mask[:, None], _edge_values(x, fp).to(x.dtype), x)


def _edge_sawtooth_u8(x, fp, *, low_threshold, high_threshold, dilate_size, surround_noise_ratio):
    """The same on uint8 frames, without the float round trip (every step is exact in integers)."""
    lo, hi, k, q = _check_edge(low_threshold=low_threshold, high_threshold=high_threshold,
                               dilate_size=dilate_size, surround_noise_ratio=surround_noise_ratio)
    mask = _edge_mask(x, fp, lo, hi, k, q, torch.float32)  # the float path's working dtype for uint8
    # x ^ ((x ^ value) & 0xFF/0x00): a bitwise select, exact, and ~100x faster than torch.where on the CPU.
    sel = mask.view(torch.uint8).mul(255)[:, None]
    return (x ^ _edge_values(x, fp)).bitwise_and_(sel).bitwise_xor_(x)


register_frame_noise(
    "edge_sawtooth", family="digital", transform=_edge_sawtooth, compilable=False, draw=_edge_draw,
    uint8_transform=_edge_sawtooth_u8, work_bytes=8,
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
    return {"key": ctx.keys("elastic/field", frame_idx)}


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
    work_bytes=17,
    defaults={"alpha": 30.0, "sigma": 0.01, "amplitude": 0.005}, pointwise=False,
    description="elastic warp: uniform field +-0.005H, Gaussian sigma 0.01(H,W), x30, bilinear, reflect",
    # imagecorruptions elastic_transform alpha = 250 * (.05, .065, .085, .10, .12).
    severities=[{"alpha": 250.0 * c} for c in (0.05, 0.065, 0.085, 0.10, 0.12)],
)
