"""Weather and scene family: rainy, foggy, snow, frost, reflect, shadow.

Reference: NoisyVideo/NRVL ``scene_interference.py`` (see
``reference/nrvl-noises.md`` 2.5) with ImageNet-C's formulas and 5-level tables.

* rainy, foggy: one map per clip (drawn from the clip seed alone, as the
  reference draws one per video) composited onto the clip's chosen frames;
  ``register_noise`` with their own ``sample``/``apply``.
* snow, frost, reflect, shadow: per-frame transforms (``register_frame_noise``).
* The rain streaks and the snow flakes have Triton kernels
  (``nrvl.kernels.triton.rain`` / ``.snow``) used for CUDA tensors; the torch
  references here run everywhere else and are what the kernels are tested against
  (``NRVL_NO_TRITON=1`` forces the references on CUDA too).
"""
from __future__ import annotations

import math
import os
from typing import Mapping

import torch

from . import _procedural as proc
from . import random as rng
from .core import Context, apply_to_chosen, base_params, frame_uniform, from_work, register_frame_noise, to_work
from .registry import register_noise
from .triton import enabled as triton_enabled

__all__ = [
    "rain_geometry", "rain_drops", "rain_streaks_torch", "rain_map", "fog_map",
    "snow_taps", "snow_field_torch", "snow_blur_torch", "snow_layer",
    "frost_bank", "perlin_map",
]

def _compiler_disable(fn):
    """Marks helpers that must stay out of torch.compile; their noises register with compilable=False.

    (``torch.compiler.disable`` itself would import torch._dynamo at import time: ~4 s.)
    """
    return fn




def _check(cond: bool, name: str, noise: str, expected: str, got) -> None:
    if not cond:
        raise ValueError(f"{noise}: {name} must be {expected}, got {got!r}")


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


# Working set of rainy's and foggy's fn per element of the frames it gets: the float copy and
# the clip map gathered per frame (one plane), updated in place.
_MAP_WORK_BYTES = 8.0


def _apply_selected(video: torch.Tensor, params: Mapping, inplace: bool, make_fn) -> torch.Tensor:
    """Run ``fn(frames float [m, C, H, W] on 0..255, clip int64 [m]) -> float`` on the chosen frames.

    ``make_fn()`` builds ``fn`` (and the clip maps it reads), only when some frame is chosen.
    ``fn`` may work in place on its frames (a gathered copy) and is given them in
    memory-bounded chunks (``core.apply_chunked``); ``clip`` says which clip each frame is of.
    """
    def chunk_fn():
        fn = make_fn()
        return lambda sel, part: from_work(fn(to_work(sel), part["clip"]), video.dtype, reuse=True)

    return apply_to_chosen(video, params, inplace, chunk_fn, work_bytes=_MAP_WORK_BYTES)


# ============================================================================ rainy


def rain_geometry(H: int, W: int, *, slant: float, drop_length: int, density: float, device=None):
    """The reference's drop count and length range, and ``int(slant * L)`` per length.

    Returns:
        ``(n_drops, len_lo, len_span, dx_table)``: ``floor(density*H*W/100)`` drops,
        lengths uniform in ``[drop_length//2, 2*drop_length)``, and int32
        ``[len_lo + len_span]`` (Python's ``int(slant * L)``, float64 on the device).
    """
    n_drops = int(density * H * W // 100)
    len_lo = int(drop_length) // 2
    len_hi = int(drop_length) * 2
    L = torch.arange(len_hi, dtype=torch.float64, device=device)
    dx = torch.floor(slant * L).to(torch.int32)
    return n_drops, len_lo, len_hi - len_lo, dx


def rain_drops(key: torch.Tensor, H: int, W: int, *, n_drops: int, len_lo: int, len_span: int,
               dx_table: torch.Tensor):
    """Each clip's drops: start, length and end, int64 ``[B, n_drops]`` each.

    Drop ``d`` uses counters ``3d, 3d+1, 3d+2`` of the clip's key: ``x0 ~ U{0..W-1}``,
    ``y0 ~ U{0..H-1}``, ``L ~ U{len_lo..len_lo+len_span-1}`` (top 24 bits times the
    range, shifted down: exact integers, the same in the Triton kernel); the end is
    ``(min(x0 + dx[L], W-1), min(y0 + L, H-1))`` as in the reference.

    Returns:
        ``(x0, y0, L, x1, y1)``.
    """
    k = key[:, None, :]
    c = torch.arange(n_drops, dtype=torch.int32, device=key.device)[None, :] * 3

    def randint(counter, n):
        u = ((rng.bits(k, counter) >> 8) & 0xFFFFFF).to(torch.int64)
        return (u * n) >> 24

    x0, y0 = randint(c, W), randint(c + 1, H)
    L = len_lo + randint(c + 2, len_span)
    x1 = torch.clamp_max(x0 + dx_table.to(torch.int64)[L], W - 1)
    y1 = torch.clamp_max(y0 + L, H - 1)
    return x0, y0, L, x1, y1


def rain_streaks_torch(key: torch.Tensor, H: int, W: int, *, n_drops: int, len_lo: int, len_span: int,
                       dx_table: torch.Tensor, chunk_points: int = 1 << 22) -> torch.Tensor:
    """Reference streak map (no blur), float32 ``[B, H, W]``: the Triton kernel's twin.

    Drop ``d`` (``rain_drops``) puts ``L`` points ``x0 + floor(j (x1-x0)/(L-1))``
    (same for y) with intensity ``(7(L-1) - 5j) / (10(L-1))`` (0.7 -> 0.2, one
    correctly rounded division) into the map with ``scatter_reduce(amax)``. Every
    point of every drop of every clip goes in one scatter (split into blocks of
    drops of at most ``chunk_points`` points to bound memory): a few large ops
    rather than many small ones, which matters on a busy CPU.
    """
    B = key.shape[0]
    out = torch.zeros(B, H * W, dtype=torch.float32, device=key.device)
    if B == 0 or n_drops == 0 or H * W == 0:
        return out.reshape(B, H, W)
    x0, y0, L, x1, y1 = rain_drops(key, H, W, n_drops=n_drops, len_lo=len_lo, len_span=len_span,
                                   dx_table=dx_table)
    maxlen = len_lo + len_span - 1
    j = torch.arange(maxlen, device=key.device)
    step = max(1, chunk_points // (B * maxlen))
    for s in range(0, n_drops, step):  # blocks of drops, not single drops
        sl = slice(s, s + step)
        Lc, den = L[:, sl, None], (L[:, sl, None] - 1).clamp_min(1)
        on = j < Lc
        pos = ((y0[:, sl, None] + (j * (y1 - y0)[:, sl, None]) // den) * W
               + (x0[:, sl, None] + (j * (x1 - x0)[:, sl, None]) // den))
        v = (7 * den - 5 * j).to(torch.float32) / (10 * den).to(torch.float32)
        out.scatter_reduce_(1, torch.where(on, pos, 0).reshape(B, -1), torch.where(on, v, 0.0).reshape(B, -1),
                            "amax")
    return out.reshape(B, H, W)


def rain_map(key: torch.Tensor, H: int, W: int, *, slant: float, drop_length: int, density: float,
             blur_sigma: float, use_triton: bool | None = None) -> torch.Tensor:
    """The blurred rain map of each clip, float32 ``[B, H, W]``.

    Streaks from the Triton kernel on CUDA (``use_triton=None``), else the torch
    reference; then scipy's ``gaussian_filter(sigma)`` (radius ``int(4*sigma+0.5)``,
    ``reflect`` = symmetric edges).
    """
    n_drops, len_lo, len_span, dx = rain_geometry(H, W, slant=slant, drop_length=drop_length,
                                                  density=density, device=key.device)
    if use_triton is None:
        use_triton = triton_enabled(key)
    if use_triton:
        from .triton.rain import rain_streaks_triton
        m = rain_streaks_triton(key, H, W, n_drops=n_drops, len_lo=len_lo, len_span=len_span, dx_table=dx)
    else:
        m = rain_streaks_torch(key, H, W, n_drops=n_drops, len_lo=len_lo, len_span=len_span, dx_table=dx)
    if blur_sigma > 0:
        r = int(4.0 * blur_sigma + 0.5)
        m = proc.separable_blur(m, proc.gaussian_kernel1d(2 * r + 1, blur_sigma, device=m.device), "symmetric")
    return m


def _rain_check(slant, drop_length, density, brightness, fog, blur_sigma):
    _check(_number(slant) and slant >= 0, "slant", "rainy", "a number >= 0", slant)
    _check(isinstance(drop_length, int) and not isinstance(drop_length, bool) and drop_length >= 1,
           "drop_length", "rainy", "an int >= 1", drop_length)
    _check(_number(density) and density >= 0, "density", "rainy", "a number >= 0 (drops per 100 pixels)", density)
    _check(_number(brightness), "brightness", "rainy", "a finite number", brightness)
    _check(_number(fog) and 0 <= fog <= 1, "fog", "rainy", "in [0, 1]", fog)
    _check(_number(blur_sigma) and blur_sigma >= 0, "blur_sigma", "rainy", "a number >= 0", blur_sigma)


def _rain_sample(ctx: Context, **p) -> dict:
    """``seed``/``frames``/``frame_idx`` plus ``key``: int32 ``[B, 2]``, the clip's drop stream."""
    _rain_check(**p)
    params = base_params(ctx, "selected")
    params["key"] = ctx.keys("rainy/drops")
    return params


def _rain_apply(video, params, *, inplace=False, slant, drop_length, density, brightness, fog, blur_sigma):
    H, W = video.shape[-2:]

    def make_fn():
        r = rain_map(params["key"], H, W, slant=slant, drop_length=drop_length, density=density,
                     blur_sigma=blur_sigma)  # [B, H, W], once for all chunks

        def fn(x, clip):
            # The reference's dead contrast step is left out (its result was overwritten).
            return x.mul_(1.0 - fog).add_(120.0 * fog).add_(r[clip].to(x.dtype)[:, None].mul_(200.0 * brightness))
        return fn

    return _apply_selected(video, params, inplace, make_fn)


register_noise(
    "rainy", family="weather", sample=_rain_sample, apply=_rain_apply,
    defaults={"slant": 0.13, "drop_length": 22, "density": 5, "brightness": 0.4, "fog": 0.15, "blur_sigma": 0.5},
    description="one rain-streak map per clip (5 drops/100 px, 11..43 px, slant 0.13): 0.85x + 18 + 80*map",
    # The reference's own severity table (slant, length, density, brightness, fog).
    severities=[{"slant": s, "drop_length": L, "density": d, "brightness": b, "fog": f}
                for s, L, d, b, f in ((0.05, 8, 1, 0.20, 0.05), (0.07, 10, 2, 0.25, 0.07),
                                      (0.09, 15, 3, 0.30, 0.10), (0.11, 18, 4, 0.35, 0.13),
                                      (0.13, 22, 5, 0.40, 0.15))],
)


# ============================================================================ foggy


def fog_map(seeds: torch.Tensor, H: int, W: int, *, wibble_decay: float) -> torch.Tensor:
    """ImageNet-C plasma of side ``next_pow2(max(H, W))``, top-left ``H x W`` crop: ``[B, H, W]``."""
    size = max(2, proc.next_pow2(max(H, W)))
    return proc.plasma_fractal(seeds, "foggy/plasma", size, wibble_decay)[:, :H, :W]


def _fog_check(strength, wibble_decay):
    _check(_number(strength) and strength >= 0, "strength", "foggy", "a number >= 0", strength)
    _check(_number(wibble_decay) and wibble_decay > 0, "wibble_decay", "foggy", "a number > 0", wibble_decay)


def _fog_sample(ctx: Context, **p) -> dict:
    """``seed``/``frames``/``frame_idx``; the plasma is drawn from ``seed`` in ``apply``."""
    _fog_check(**p)
    return base_params(ctx, "selected")


def _fog_apply(video, params, *, inplace=False, strength, wibble_decay):
    H, W = video.shape[-2:]

    def make_fn():
        f = fog_map(params["seed"], H, W, wibble_decay=wibble_decay)  # [B, H, W], once for all chunks

        def fn(x, clip):
            x = x.div_(255.0)  # x is _apply_selected's working copy
            m = x.amax(dim=(1, 2, 3), keepdim=True)  # per frame, before the fog is added
            x = x.add_(f[clip].to(x.dtype)[:, None], alpha=strength).mul_(m / (m + strength))
            return x.clamp_(0.0, 1.0).mul_(255.0)
        return fn

    return _apply_selected(video, params, inplace, make_fn)


register_noise(
    "foggy", family="weather", sample=_fog_sample, apply=_fog_apply,
    defaults={"strength": 3.0, "wibble_decay": 1.4},
    description="ImageNet-C fog (severity 5): one plasma fractal per clip, (x + 3F)*max/(max + 3)",
    severities=[{"strength": a, "wibble_decay": b} for a, b in ((1.5, 2.0), (2.0, 2.0), (2.5, 1.7), (2.5, 1.5),
                                                                 (3.0, 1.4))],
)


# ============================================================================ snow


def _zoom_geometry(H: int, W: int, zoom: float):
    """ImageNet-C ``clipped_zoom``: a ``ceil(H/z) x ceil(W/z)`` field zoomed to ``round(ch*z)``."""
    ch, cw = max(1, math.ceil(H / zoom)), max(1, math.ceil(W / zoom))
    Hz, Wz = max(H, int(round(ch * zoom))), max(W, int(round(cw * zoom)))
    sy = (ch - 1) / (Hz - 1) if Hz > 1 else 0.0
    sx = (cw - 1) / (Wz - 1) if Wz > 1 else 0.0
    return ch, cw, Hz, Wz, sy, sx


def snow_taps(angle_deg: torch.Tensor, Hz: int, Wz: int, *, radius: float, sigma: float):
    """ImageNet-C's motion-blur taps per frame: integer shifts and normalized weights.

    Tap ``i`` (``0..2*ceil(radius)``) shifts by ``(-ceil(i sin(a) - 0.5), -ceil(i cos(a) - 0.5))``
    with weight ``exp(-i^2 / (2 sigma^2))`` normalized over the taps (the intended
    kernel; the reference's sums to ~0.025, see docs/deviations). Taps from the first
    one that leaves the field on are dropped, as the reference breaks its loop.

    Returns:
        ``(dy, dx, w)``: int32 ``[M, K]``, int32 ``[M, K]``, float32 ``[M, K]``.
    """
    width = max(2, int(2 * math.ceil(radius) + 1))
    dev = angle_deg.device
    i = torch.arange(width, dtype=torch.float64, device=dev)
    a = torch.deg2rad(angle_deg.to(torch.float64))[:, None]
    p0, p1 = width * torch.sin(a), width * torch.cos(a)
    hyp = torch.hypot(p0, p1)
    dy = -torch.ceil(i * p0 / hyp - 0.5)
    dx = -torch.ceil(i * p1 / hyp - 0.5)
    stop = (dy.abs() >= Hz) | (dx.abs() >= Wz)
    alive = torch.cumsum(stop.to(torch.int32), dim=1) == 0
    k = torch.exp(-(i * i) / (2.0 * sigma * sigma))
    w = (k / k.sum()).to(torch.float32) * alive
    return dy.to(torch.int32), dx.to(torch.int32), w


def snow_field_torch(key: torch.Tensor, ch: int, cw: int, Hz: int, Wz: int, sy: float, sx: float, *,
                     mean: float, std: float, threshold: float) -> torch.Tensor:
    """Flakes before the motion blur, float32 ``[M, Hz, Wz]``: N(mean, std) on a
    ``ch x cw`` grid (element ``r*cw + c`` of the frame's key), bilinearly zoomed
    (``align_corners``, scipy ``zoom(order=1)``), zero below ``threshold``, clipped to [0, 1].

    ``sy``, ``sx`` (the zoom's source step) are implied by the sizes here; they are
    the Triton kernel's arguments and kept for a common signature.
    """
    n = rng.normal(key[:, None, None, :], torch.arange(ch * cw, dtype=torch.int32, device=key.device).reshape(ch, cw))
    v = (mean + std * n)[:, None]  # [M, 1, ch, cw]
    val = torch.nn.functional.interpolate(v, size=(Hz, Wz), mode="bilinear", align_corners=True)[:, 0]
    return val.masked_fill_(val < threshold, 0.0).clamp_(0.0, 1.0)


def _fft_size(n: int) -> int:
    """The smallest 2^a 3^b 5^c >= n (fast for pocketfft and cuFFT)."""
    best = proc.next_pow2(n)
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            m = p35
            while m < n:
                m *= 2
            best = min(best, m)
            p35 *= 3
        p5 *= 5
    return best


def snow_blur_torch(field: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, w: torch.Tensor,
                    H: int, W: int) -> torch.Tensor:
    """``out[y, x] = sum_i w_i field[y - dy_i, x - dx_i]`` (zero outside), ``[M, H, W]``.

    Per-frame line kernels, so the sum is one batched FFT convolution (zero-padded
    so nothing wraps) instead of a loop of per-frame shifts; equal to the direct sum
    up to float32 FFT rounding (~1e-6).
    """
    M, Hz, Wz = field.shape
    R = int(max(1, dy.shape[1] - 1))
    Hp, Wp = _fft_size(Hz + R), _fft_size(Wz + R)
    pos = dy.to(torch.int64).remainder(Hp) * Wp + dx.to(torch.int64).remainder(Wp)
    kern = torch.zeros(M, Hp * Wp, dtype=torch.float32, device=field.device)
    kern.scatter_add_(1, pos, w.to(torch.float32))  # coinciding taps add up, as in the direct sum
    spec = torch.fft.rfft2(field, s=(Hp, Wp)) * torch.fft.rfft2(kern.reshape(M, Hp, Wp))
    return torch.fft.irfft2(spec, s=(Hp, Wp))[:, :H, :W]


@_compiler_disable
def snow_layer(key: torch.Tensor, angle: torch.Tensor, H: int, W: int, *, mean: float, std: float,
               zoom: float, threshold: float, radius: float, sigma: float,
               use_triton: bool | None = None) -> torch.Tensor:
    """The motion-blurred flake layer per frame, quantized to 1/255: float32 ``[M, H, W]``.

    Args:
        key: int32 ``[M, 2]`` per-frame keys of the ``"snow/flakes"`` stream.
        angle: ``[M]`` blur angles in degrees.
    """
    M = key.shape[0]
    ch, cw, Hz, Wz, sy, sx = _zoom_geometry(H, W, zoom)
    dy, dx, w = snow_taps(angle, Hz, Wz, radius=radius, sigma=sigma)
    if use_triton is None:
        use_triton = triton_enabled(key)
    if M == 0:
        return torch.zeros(0, H, W, dtype=torch.float32, device=key.device)
    if use_triton:
        from .triton.snow import snow_blur_triton, snow_field_triton
        field = snow_field_triton(key, ch, cw, Hz, Wz, sy, sx, mean=mean, std=std, threshold=threshold)
        s = snow_blur_triton(field, dy, dx, w, H, W)
    else:
        field = snow_field_torch(key, ch, cw, Hz, Wz, sy, sx, mean=mean, std=std, threshold=threshold)
        s = snow_blur_torch(field, dy, dx, w, H, W)
    return torch.round(s * 255.0) / 255.0


def _snow_draw(ctx: Context, frame_idx, *, mean, std, zoom, threshold, radius, sigma, blend):
    """``key``: int32 ``[B, n, 2]`` flake stream per frame; ``angle``: float32 ``[B, n]`` U(-135, -45) degrees."""
    _check(_number(mean), "mean", "snow", "a finite number", mean)
    _check(_number(std) and std >= 0, "std", "snow", "a number >= 0", std)
    _check(_number(zoom) and zoom > 0, "zoom", "snow", "a number > 0", zoom)
    _check(_number(threshold), "threshold", "snow", "a finite number", threshold)
    _check(_number(radius) and radius >= 0, "radius", "snow", "a number >= 0", radius)
    _check(_number(sigma) and sigma > 0, "sigma", "snow", "a number > 0", sigma)
    _check(_number(blend) and 0 <= blend <= 1, "blend", "snow", "in [0, 1]", blend)
    return {"key": ctx.keys("snow/flakes", frame_idx),
            "angle": frame_uniform(ctx, frame_idx, "snow/angle", -135.0, -45.0)}


def _snow(x, fp, *, mean, std, zoom, threshold, radius, sigma, blend):
    H, W = x.shape[-2:]
    s = snow_layer(fp["key"], fp["angle"], H, W, mean=mean, std=std, zoom=zoom, threshold=threshold,
                   radius=radius, sigma=sigma).to(x.dtype)
    # ImageNet-C on [0, 1], written on 0..255: blend*x + (1-blend)*max(x, 1.5*gray + 0.5) + S + rot180(S).
    gray = 0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]  # cv2 RGB2GRAY
    lifted = torch.maximum(x, gray.mul_(1.5).add_(127.5))
    flakes = (s + s.flip(-1, -2)).mul_(255.0)[:, None]  # the layer and its 180-degree rotation
    return (x * blend).add_(lifted, alpha=1.0 - blend).add_(flakes).clamp_(0.0, 255.0)


register_frame_noise(
    "snow", family="weather", compilable=False, transform=_snow, draw=_snow_draw, pointwise=False,
    defaults={"mean": 0.55, "std": 0.3, "zoom": 2.5, "threshold": 0.85, "radius": 12, "sigma": 12.0,
              "blend": 0.55},
    description="ImageNet-C snow (severity 5): zoomed N(.55,.3) flakes > .85, motion-blurred, whitened frame",
    severities=[{"mean": a, "std": b, "zoom": c, "threshold": d, "radius": e, "sigma": f, "blend": g}
                for a, b, c, d, e, f, g in ((0.1, 0.3, 3.0, 0.5, 10, 4.0, 0.8), (0.2, 0.3, 2.0, 0.5, 12, 4.0, 0.7),
                                            (0.55, 0.3, 4.0, 0.9, 12, 8.0, 0.7),
                                            (0.55, 0.3, 4.5, 0.85, 12, 8.0, 0.65),
                                            (0.55, 0.3, 2.5, 0.85, 12, 12.0, 0.55))],
)


# ============================================================================ frost

_IMAGE_EXT = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
_BANKS: dict = {}
_BANK_LIMIT = 4


def _cache_put(cache: dict, key, value, limit: int):
    if len(cache) >= limit:
        cache.pop(next(iter(cache)))
    cache[key] = value
    return value


def _cover_size(h: int, w: int, H: int, W: int):
    """The reference's rescale of a frost photo so a random ``H x W`` crop fits."""
    if h >= H and w >= W:
        s = 1.0
    elif h < H and w >= W:
        s = H / h
    elif h >= H and w < W:
        s = W / w
    else:
        s = max(H / h, W / w)
    s *= 1.1
    nw, nh = int(math.ceil(w * s)), int(math.ceil(h * s))
    if nw <= W or nh <= H:
        extra = max(W / nw, H / nh) * 1.2
        nw, nh = int(math.ceil(nw * extra)), int(math.ceil(nh * extra))
    return nh, nw


def _decode_rgb(path: str) -> torch.Tensor:
    """uint8 ``[3, h, w]``: TorchCodec's image decoder, or torchvision's where TorchCodec is missing."""
    try:
        from torchcodec.decoders import decode_image
        img = decode_image(path, mode="RGB")
    except ImportError:
        from torchvision.io import ImageReadMode, decode_image, read_file
        img = decode_image(read_file(path), mode=ImageReadMode.RGB)
    return img[0] if img.dim() == 4 else img  # first frame of an animated image


def _load_texture_dir(path: str) -> list:
    if not os.path.isdir(path):
        raise ValueError(f"frost: texture_dir must be an existing directory of images, got {path!r}")
    names = sorted(f for f in os.listdir(path) if f.lower().endswith(_IMAGE_EXT))
    if not names:
        raise ValueError(f"frost: texture_dir {path!r} holds no images ({', '.join(_IMAGE_EXT)})")
    out = []
    for name in names:  # a handful of files, decoded once and cached
        try:
            out.append(_decode_rgb(os.path.join(path, name)))
        except (RuntimeError, ValueError) as e:
            raise ValueError(f"frost: could not decode texture {os.path.join(path, name)!r}: {e}") from e
    return out


@_compiler_disable
def frost_bank(H: int, W: int, device, *, texture_dir: str | None = None, num_textures: int = 6,
               texture_seed: int = 0):
    """Frost textures ready to crop for ``H x W`` frames (cached per size and device).

    Returns:
        ``(bank, sizes)``: uint8 ``[K, 3, Hb, Wb]`` and int64 ``[K, 2]`` (valid height
        and width of each texture; user textures differ in size and are padded).
    """
    device = torch.device(device)
    key = (H, W, str(device), os.path.abspath(texture_dir) if texture_dir else None, num_textures, texture_seed)
    hit = _BANKS.get(key)
    if hit is not None:
        return hit
    if texture_dir is None:
        Ht, Wt = H + max(2, math.ceil(0.2 * H)), W + max(2, math.ceil(0.2 * W))
        bank = proc.frost_textures(num_textures, Ht, Wt, seed=texture_seed, device=device)
        sizes = torch.tensor([[Ht, Wt]] * num_textures, dtype=torch.int64).to(device)
        return _cache_put(_BANKS, key, (bank, sizes), _BANK_LIMIT)
    imgs = []
    for img in _load_texture_dir(texture_dir):
        h, w = img.shape[-2:]
        nh, nw = _cover_size(h, w, H, W)
        big = torch.nn.functional.interpolate(img[None].float(), size=(nh, nw), mode="bicubic",
                                              align_corners=False)[0].clamp_(0, 255).round_().to(torch.uint8)
        if nh <= H or nw <= W:  # the reference tiles a texture that is still too small
            th, tw = max(H + 50, nh), max(W + 50, nw)
            big = big.repeat(1, -(-th // nh), -(-tw // nw))[:, :th, :tw]
        imgs.append(big)
    Hb, Wb = max(i.shape[1] for i in imgs), max(i.shape[2] for i in imgs)
    bank = torch.zeros(len(imgs), 3, Hb, Wb, dtype=torch.uint8)
    for k, img in enumerate(imgs):
        bank[k, :, :img.shape[1], :img.shape[2]] = img
    sizes = torch.tensor([[i.shape[1], i.shape[2]] for i in imgs], dtype=torch.int64)
    return _cache_put(_BANKS, key, (bank.to(device), sizes.to(device)), _BANK_LIMIT)


def _frost_draw(ctx: Context, frame_idx, *, frame_weight, frost_weight, texture_dir, num_textures, texture_seed):
    """``pick``: float32 ``[B, n]`` (texture ``floor(pick*K)``); ``crop``: float32 ``[B, n, 2]`` crop offsets as
    fractions of the free room."""
    _check(_number(frame_weight), "frame_weight", "frost", "a finite number", frame_weight)
    _check(_number(frost_weight), "frost_weight", "frost", "a finite number", frost_weight)
    _check(texture_dir is None or isinstance(texture_dir, (str, os.PathLike)), "texture_dir", "frost",
           "None or a directory path", texture_dir)
    if texture_dir is not None and not os.path.isdir(texture_dir):
        raise ValueError(f"frost: texture_dir must be an existing directory of images, got {texture_dir!r}")
    _check(isinstance(num_textures, int) and not isinstance(num_textures, bool) and num_textures >= 1,
           "num_textures", "frost", "an int >= 1", num_textures)
    _check(isinstance(texture_seed, int) and not isinstance(texture_seed, bool), "texture_seed", "frost",
           "an int", texture_seed)
    return {"pick": frame_uniform(ctx, frame_idx, "frost/pick"),
            "crop": frame_uniform(ctx, frame_idx, "frost/crop", count=2)}


@_compiler_disable
def _frost_crops(pick, crop, H, W, device, **bank_args) -> torch.Tensor:
    """Each frame's texture crop, uint8 ``[M, 3, H, W]``.

    A crop row is ``W`` consecutive bytes of the bank, so all rows of all frames are one
    ``index_select`` of row starts from an ``unfold``ed (overlapping, copy-free) view of
    the flat bank: a memory copy per row instead of a gather per pixel.
    """
    bank, sizes = frost_bank(H, W, device, **bank_args)
    K, C, Hb, Wb = bank.shape
    k = (pick * K).floor().to(torch.int64).clamp_(0, K - 1)
    room = torch.stack([sizes[k, 0] - H, sizes[k, 1] - W], -1).clamp_min(0)  # [M, 2] free rows, columns
    off = torch.minimum((crop * room.clamp_min(1)).floor().to(torch.int64), room)
    ch = torch.arange(C, device=device)[None, :, None]
    ys = torch.arange(H, device=device)[None, None, :] + off[:, 0, None, None]
    starts = ((k[:, None, None] * C + ch) * Hb + ys) * Wb + off[:, 1, None, None]  # [M, C, H]
    rows = bank.reshape(-1).unfold(0, W, 1)  # row s is bank.flat[s : s + W]
    return rows.index_select(0, starts.reshape(-1)).reshape(k.shape[0], C, H, W)


def _frost(x, fp, *, frame_weight, frost_weight, texture_dir, num_textures, texture_seed):
    H, W = x.shape[-2:]
    tex = _frost_crops(fp["pick"], fp["crop"], H, W, x.device, texture_dir=texture_dir,
                       num_textures=num_textures, texture_seed=texture_seed)
    return x.mul(frame_weight).add_(tex.to(x.dtype), alpha=frost_weight)


def _frost_u8(x, fp, *, frame_weight, frost_weight, texture_dir, num_textures, texture_seed):
    # The float path's ops and values, one channel plane at a time through two float buffers.
    H, W = x.shape[-2:]
    tex = _frost_crops(fp["pick"], fp["crop"], H, W, x.device, texture_dir=texture_dir,
                       num_textures=num_textures, texture_seed=texture_seed)
    out = torch.empty_like(x)
    buf = torch.empty(x[:, 0].shape, dtype=torch.float32, device=x.device)
    tbuf = torch.empty_like(buf)
    for c in range(x.shape[1]):  # 3 planes, each a whole-batch op
        buf.copy_(x[:, c]).mul_(frame_weight).add_(tbuf.copy_(tex[:, c]), alpha=frost_weight)
        out[:, c].copy_(buf.clamp_(0.0, 255.0).round_())
    return out


register_frame_noise(
    "frost", family="weather", compilable=False, transform=_frost, uint8_transform=_frost_u8, draw=_frost_draw,
    pointwise=False,
    defaults={"frame_weight": 0.6, "frost_weight": 0.75, "texture_dir": None, "num_textures": 6,
              "texture_seed": 0},
    description="ImageNet-C frost (severity 5): 0.6x + 0.75*frost, random procedural ice texture and crop per frame",
    severities=[{"frame_weight": a, "frost_weight": b} for a, b in ((1.0, 0.4), (0.8, 0.6), (0.7, 0.7),
                                                                     (0.65, 0.7), (0.6, 0.75))],
)


# ============================================================================ reflect

_PERLIN: dict = {}


@_compiler_disable
def perlin_map(H: int, W: int, device, *, scale: float = 100.0, octaves: int = 6) -> torch.Tensor:
    """The reference's fixed Perlin map (uint8 ``[H, W]``), cached per size and device."""
    key = (H, W, str(device), float(scale), int(octaves))
    hit = _PERLIN.get(key)
    if hit is None:
        hit = _cache_put(_PERLIN, key, proc.perlin_grid(H, W, scale=scale, octaves=octaves, device=device), 8)
    return hit


def _reflect_draw(ctx: Context, frame_idx, *, threshold, gain, blur_weight, kernel_size, blur_sigma,
                  perlin_weight, scale, octaves):
    """No random draws beyond the frames (the reference's Perlin map is fixed); checks the parameters."""
    _check(_number(threshold), "threshold", "reflect", "a finite number", threshold)
    _check(_number(gain), "gain", "reflect", "a finite number", gain)
    _check(_number(blur_weight), "blur_weight", "reflect", "a finite number", blur_weight)
    _check(isinstance(kernel_size, int) and not isinstance(kernel_size, bool) and kernel_size >= 1
           and kernel_size % 2 == 1, "kernel_size", "reflect", "an odd int >= 1", kernel_size)
    _check(_number(blur_sigma) and blur_sigma > 0, "blur_sigma", "reflect", "a number > 0", blur_sigma)
    _check(_number(perlin_weight) and 0 <= perlin_weight <= 1, "perlin_weight", "reflect", "in [0, 1]",
           perlin_weight)
    _check(_number(scale) and scale > 0, "scale", "reflect", "a number > 0", scale)
    _check(isinstance(octaves, int) and not isinstance(octaves, bool) and octaves >= 1, "octaves", "reflect",
           "an int >= 1", octaves)
    return {}


def _reflect(x, fp, *, threshold, gain, blur_weight, kernel_size, blur_sigma, perlin_weight, scale, octaves):
    H, W = x.shape[-2:]
    mask = x.mean(dim=1, keepdim=True) > threshold
    k = proc.gaussian_kernel1d(kernel_size, blur_sigma, dtype=x.dtype, device=x.device)
    out = torch.empty_like(x)
    for c in range(x.shape[1]):  # 3 planes, each batched over the frames: the blur's temporaries are a plane's
        xc = x[:, c:c + 1]
        lit = (gain * xc).add_(proc.separable_blur(xc, k, "reflect101"), alpha=blur_weight).clamp_(0.0, 255.0)
        torch.where(mask, lit, xc, out=out[:, c:c + 1])
        del lit
    p = perlin_map(H, W, x.device, scale=scale, octaves=octaves).to(x.dtype)
    return out.mul_(1.0 - perlin_weight).add_(p, alpha=perlin_weight)


register_frame_noise(
    "reflect", family="weather", compilable=False, transform=_reflect, draw=_reflect_draw, pointwise=False,
    defaults={"threshold": 100.0, "gain": 1.5, "blur_weight": 0.5, "kernel_size": 15, "blur_sigma": 5.0,
              "perlin_weight": 0.1, "scale": 100.0, "octaves": 6},
    description="specular highlight (gray > 100: 1.5x + 0.5 blur15) then 0.9x + 0.1 Perlin map",
    severities=[{"gain": g, "blur_weight": b, "perlin_weight": p}
                for g, b, p in ((1.1, 0.1, 0.02), (1.2, 0.2, 0.04), (1.3, 0.3, 0.06), (1.4, 0.4, 0.08),
                                (1.5, 0.5, 0.1))],
)


# ============================================================================ shadow


def _shadow_draw(ctx: Context, frame_idx, *, strength, kernel_size):
    """``center``: int64 ``[B, n, 2]`` (x in [W//4, 3W//4], y in [H//4, 3H//4]); ``axes``: int64 ``[B, n, 2]``
    (semi-axes in [W//4, W//2] and [H//4, H//2]); ``angle``: int64 ``[B, n]`` degrees in [0, 180]."""
    _check(_number(strength) and 0 <= strength <= 1, "strength", "shadow", "in [0, 1]", strength)
    _check(isinstance(kernel_size, int) and not isinstance(kernel_size, bool) and kernel_size >= 1
           and kernel_size % 2 == 1, "kernel_size", "shadow", "an odd int >= 1", kernel_size)
    H, W = ctx.shape[-2:]
    u = frame_uniform(ctx, frame_idx, "shadow/ellipse", count=5).to(torch.float64)  # [B, n, 5]
    bounds = ((W // 4, 3 * W // 4), (H // 4, 3 * H // 4), (W // 4, W // 2), (H // 4, H // 2), (0, 180))
    # Integers uniform on inclusive bounds, like random.randint (Python scalars: no host-to-device copies).
    v = torch.stack([(lo + torch.floor(u[..., i] * (hi - lo + 1))).clamp_max(hi) for i, (lo, hi) in
                     enumerate(bounds)], -1).to(torch.int64)
    return {"center": v[..., 0:2].contiguous(), "axes": v[..., 2:4].contiguous(), "angle": v[..., 4]}


def _shadow_keep(fp, H: int, W: int, strength: float, kernel_size: int, dtype) -> torch.Tensor:
    """``1 - strength * clamp(blur(ellipse), 0, 1)`` per frame, ``[M, H, W]`` (cv2 51x51 Gaussian, reflect-101)."""
    mask = proc.ellipse_masks(fp["center"], proc.cv2_fill_axes(fp["axes"]), fp["angle"], H, W, dtype=dtype)
    k = proc.gaussian_kernel1d(kernel_size, 0.0, dtype=dtype, device=mask.device)  # cv2: sigma from ksize
    return proc.separable_blur(mask, k, "reflect101").clamp_(0.0, 1.0).mul_(-strength).add_(1.0)


def _shadow(x, fp, *, strength, kernel_size):
    H, W = x.shape[-2:]
    return x * _shadow_keep(fp, H, W, strength, kernel_size, x.dtype)[:, None]


def _shadow_u8(x, fp, *, strength, kernel_size):
    # The float path's values (keep is in [0, 1], so no clamp is needed), one channel plane
    # at a time through one float buffer: no float copy of the frames.
    H, W = x.shape[-2:]
    keep = _shadow_keep(fp, H, W, strength, kernel_size, torch.float32)
    out = torch.empty_like(x)
    buf = torch.empty_like(keep)
    for c in range(x.shape[1]):  # 3 planes, each a whole-batch op
        buf.copy_(x[:, c]).mul_(keep).round_()
        out[:, c].copy_(buf)
    return out


register_frame_noise(
    "shadow", family="weather", transform=_shadow, uint8_transform=_shadow_u8, draw=_shadow_draw, pointwise=False,
    defaults={"strength": 0.7, "kernel_size": 51},
    description="one random ellipse per frame, softened by a 51x51 Gaussian, darkened by 70%",
    severities=[{"strength": s} for s in (0.3, 0.4, 0.5, 0.6, 0.7)],
)
