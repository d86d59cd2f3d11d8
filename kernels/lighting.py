"""Lighting and colour family: bright_transform, contrast, color_shift, flicker, over/underexposure.

All draws are per frame (a few scalars), keyed by (clip seed, stream, frame index).
"""
from __future__ import annotations

import math

import torch

from ._checks import float_param, range_param
from .core import Context, frame_uniform, register_frame_noise


def _bright(x, fp, *, c):
    # HSV brightness: V' = clip(V + c, 0, 1) with H, S kept. For fixed H and S the RGB
    # values are linear in V, so RGB' = RGB * V'/V; black (V = 0, S = 0) becomes grey V'.
    v = x.amax(dim=1, keepdim=True) / 255.0
    v2 = (v + c).clamp(0.0, 1.0)
    scaled = x * (v2 / v.clamp_min(1e-12))
    return torch.where(v > 0, scaled, (v2 * 255.0).expand_as(x))


register_frame_noise(
    "bright_transform", family="lighting", transform=_bright,
    defaults={"c": 0.5},
    description="HSV brightness: V + 0.5, clipped (ImageNet-C brightness, severity 5)",
    severities=[{"c": c} for c in (0.1, 0.2, 0.3, 0.4, 0.5)],
)


def _contrast_draw(ctx: Context, frame_idx, *, factor, contrast_range):
    """``factor``: float32 ``[B, n]``, u ~ U(contrast_range) (default (-5, 5)), f = u if u >= 0 else -1/u
    (the reference's rule); a fixed ``factor`` overrides the draw."""
    lo, hi = range_param("contrast_range", contrast_range)
    if factor is not None:
        factor = float_param("factor", factor, -math.inf, strict=False)
    u = frame_uniform(ctx, frame_idx, "contrast/u", lo, hi)
    f = torch.where(u >= 0, u, -1.0 / u)
    if factor is not None:
        f = torch.full_like(f, factor)
    return {"factor": f}


def _contrast(x, fp, *, factor, contrast_range):
    m = x.mean(dim=(2, 3), keepdim=True)
    return m + fp["factor"].to(x.dtype)[:, None, None, None] * (x - m)


register_frame_noise(
    "contrast", family="lighting", transform=_contrast, draw=_contrast_draw,
    defaults={"factor": None, "contrast_range": (-5.0, 5.0)},  # per-frame means: a reduction the fused kernel folds in
    description="per-frame contrast around the channel means, factor u~U(-5,5) (u<0: -1/u)",
    severities=[{"factor": c} for c in (0.4, 0.3, 0.2, 0.1, 0.05)],
)


def _color_shift_draw(ctx: Context, frame_idx, *, shift, per_channel):
    """``gain``: float32 ``[B, n, 3]``, gains U(1 - shift, 1 + shift): one per channel, or with
    ``per_channel=False`` the first one for all three (the reference's single-gain mode)."""
    shift = float_param("shift", shift, 0.0, strict=False)
    if not isinstance(per_channel, bool):
        raise ValueError(f"per_channel must be True or False, got {per_channel!r}")
    gain = frame_uniform(ctx, frame_idx, "color_shift/gain", 1.0 - shift, 1.0 + shift, count=3)
    return {"gain": gain if per_channel else gain[..., :1].expand(gain.shape).contiguous()}


def _color_shift(x, fp, *, shift, per_channel):
    return x * fp["gain"].to(x.dtype)[:, :, None, None]


register_frame_noise(
    "color_shift", family="lighting", transform=_color_shift, draw=_color_shift_draw,
    defaults={"shift": 1.0, "per_channel": True},
    description="per-frame, per-channel gains U(0, 2)",
    severities=[{"shift": s} for s in (0.2, 0.4, 0.6, 0.8, 1.0)],
)


def _flicker_draw(ctx: Context, frame_idx, *, std):
    """``alpha``: float32 ``[B, T]``, 1 + std*N(0, 1) per frame (std defaults to ``ratio``)."""
    from . import random as rng
    s = ctx.ratio if std is None else float(std)
    key = ctx.keys("flicker/alpha", frame_idx)
    n = rng.normal(key, torch.zeros((), dtype=torch.int32, device=ctx.device))
    return {"alpha": 1.0 + s * n}


def _flicker(x, fp, *, std):
    return x * fp["alpha"].to(x.dtype)[:, None, None, None]


register_frame_noise(
    "flicker", family="lighting", transform=_flicker, draw=_flicker_draw, frame_mode="all",
    defaults={"std": None},
    description="every frame times 1 + ratio*N(0,1): ratio is the gain's std, all frames change",
    severities=[{"std": s} for s in (0.1, 0.2, 0.3, 0.6, 0.9)],
)


def _exposure_draw(stream):
    def draw(ctx: Context, frame_idx, *, delta, gamma):
        """``delta``, ``gamma``: float32 ``[B, n]`` drawn from the parameter ranges."""
        delta, gamma = range_param("delta", delta), range_param("gamma", gamma)
        d = frame_uniform(ctx, frame_idx, stream + "/delta", delta[0], delta[1])
        g = frame_uniform(ctx, frame_idx, stream + "/gamma", gamma[0], gamma[1])
        return {"delta": d, "gamma": g}
    return draw


def _exposure(x, fp, *, delta, gamma):
    d = fp["delta"].to(x.dtype)[:, None, None, None]
    g = fp["gamma"].to(x.dtype)[:, None, None, None]
    # The reference's [0, 1]-scale constants applied on 0..255: the power saturates.
    b = (x + d).clamp(0.0, 255.0)
    if torch.compiler.is_compiling():
        # Fused: exp2(g * log2(b)) is ~2x faster than inductor's vectorised pow on a CPU, with the
        # same uint8 output (tests/test_compiled.py). The floor keeps b = 0 exact: 1 for g = 0
        # (pow's 0^0), ~0 for g > 0.
        return torch.exp2(torch.log2(b.clamp_min(1e-30)) * g)
    return torch.pow(b, g)


register_frame_noise(
    "overexposure", family="lighting", transform=_exposure, draw=_exposure_draw("overexposure"),
    defaults={"delta": (0.1, 0.3), "gamma": (1.1, 1.4)},
    description="(x + U(.1,.3))^U(1.1,1.4) on 0..255: pixels above ~52..154 saturate to white",
    severities=[{"gamma": g} for g in ((1.01, 1.03), (1.03, 1.06), (1.06, 1.1), (1.1, 1.2), (1.1, 1.4))],
)
register_frame_noise(
    "underexposure", family="lighting", transform=_exposure, draw=_exposure_draw("underexposure"),
    defaults={"delta": (-0.3, -0.1), "gamma": (0.6, 0.9)},
    description="(x - U(.1,.3))^U(0.6,0.9) on 0..255: dark, compressed frames (max 28..146)",
    severities=[{"gamma": g} for g in ((0.97, 0.99), (0.93, 0.97), (0.88, 0.93), (0.8, 0.9), (0.6, 0.9))],
)
