"""Quality family: gaussian, impulse, speckle, poisson (per-pixel noise on the chosen frames).

Each per-pixel field comes from the counter-based hash keyed by
``(clip seed, stream, frame index)``; ``draw`` only returns those keys.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from . import random as rng
from .core import Context, pixel_index, register_frame_noise


def _pixel_key(stream: str):
    def draw(ctx: Context, frame_idx: torch.Tensor, **p) -> dict:
        """``key``: int32 ``[B, n, 2]``, the per-frame key of the per-pixel field."""
        return {"key": ctx.keys(stream, frame_idx)}
    return draw


def _k(fp: dict) -> torch.Tensor:
    return fp["key"][:, None, None, None, :]  # [M, 1, 1, 1, 2] to broadcast over pixels


def _gaussian(x, fp, *, std):
    n = rng.normal(_k(fp), pixel_index(x.shape, x.device, per_channel=True), x.dtype)
    return x + std * n


register_frame_noise(
    "gaussian", family="quality", transform=_gaussian, draw=_pixel_key("gaussian/noise"),
    defaults={"std": 100.0},
    description="additive Gaussian noise, std 100 on 0..255, per pixel and channel",
    # ImageNet-C gaussian_noise c = .08 .. .38 on [0, 1], here on 0..255.
    severities=[{"std": c * 255.0} for c in (0.08, 0.12, 0.18, 0.26, 0.38)],
)


def _impulse(x, fp, *, prob):
    u = rng.uniform(_k(fp), pixel_index(x.shape, x.device, per_channel=False), x.dtype)
    out = torch.where(u < prob / 2, torch.zeros_like(x), x)
    return torch.where((u >= prob / 2) & (u < prob), torch.full_like(x, 255.0), out)


register_frame_noise(
    "impulse", family="quality", transform=_impulse, draw=_pixel_key("impulse/mask"),
    defaults={"prob": 0.7},
    description="salt and pepper: 35% of pixel positions black, 35% white, all channels",
    severities=[{"prob": a} for a in (0.03, 0.06, 0.09, 0.17, 0.27)],
)


def _speckle(x, fp, *, intensity, grain_size):
    M, C, H, W = x.shape
    g = int(grain_size)
    h, w = (max(1, H // g), max(1, W // g)) if g > 1 else (H, W)
    idx = torch.arange(h * w, dtype=torch.int32, device=x.device).reshape(1, 1, h, w)
    n = rng.normal(_k(fp), idx, x.dtype)  # [M, 1, h, w], one field shared by the channels
    if (h * g, w * g) == (H, W) and g > 1:
        # Nearest up-sampling by an exact factor is a broadcast over g x g blocks: the same values
        # as F.interpolate, and under inductor the small field stays small (interpolate's gather
        # made it store a full-size float32 field).
        y = x.reshape(M, C, h, g, w, g) * (1.0 + intensity * n.reshape(M, 1, h, 1, w, 1))
        return y.reshape(M, C, H, W)
    if (h, w) != (H, W):
        n = F.interpolate(n, size=(H, W), mode="nearest")
    return x * (1.0 + intensity * n)


register_frame_noise(
    "speckle", family="quality", transform=_speckle, draw=_pixel_key("speckle/noise"),
    defaults={"intensity": 0.7, "grain_size": 2},
    description="multiplicative noise x*(1+0.7n), n on a 2x2-pixel grain shared by the channels",
    severities=[{"intensity": c} for c in (0.15, 0.20, 0.35, 0.45, 0.60)],
)


def _poisson(x, fp, *, gain):
    lam = x * gain
    k = rng.poisson(_k(fp), pixel_index(x.shape, x.device, per_channel=True), lam, max_lam=255.0 * gain)
    return k / gain


register_frame_noise(
    "poisson", family="quality", transform=_poisson, draw=_pixel_key("poisson/noise"),
    defaults={"gain": 0.01},
    description="Poisson(0.01x)/0.01: values quantized to multiples of 100, clamped to 255",
    # ImageNet-C shot_noise c = 60 .. 3 photons per unit on [0, 1].
    severities=[{"gain": c / 255.0} for c in (60, 25, 12, 5, 3)],
)
