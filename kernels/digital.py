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
