"""The maths of the 12 pointwise noises against the reference formulas (nrvl-noises.md 2.1, 2.4, 2.6)."""
from __future__ import annotations

import colorsys
import math

import pytest
import torch

from nrvl.kernels import corrupt, sample_params


def flat(value, t=8, h=64, w=64, dtype=torch.float32, b=1):
    return torch.full((b, t, 3, h, w), float(value), dtype=dtype)


def chosen(out, params):
    """The chosen frames of clip 0 as float ``[n, 3, H, W]``."""
    return out[0, params["frame_idx"][0]].float()


def test_gaussian_std_100_before_clamp():
    video = flat(128.0)
    out, p = corrupt(video, "gaussian", 1.0, seed=0, return_params=True)
    x = chosen(out, p)
    # clamp at 0 and 255: P(128 + 100 n < 0) = Phi(-1.28)
    assert abs(float((x == 0).float().mean()) - 0.1003) < 0.01
    assert abs(float((x == 255).float().mean()) - 0.1020) < 0.01
    small = corrupt(video, "gaussian", 1.0, seed=0, std=20.0)[0].float() - 128
    assert abs(float(small.std()) - 20) < 0.3 and abs(float(small.mean())) < 0.3
    # the default's unclamped residual is the same normal field scaled by 100: std 100 before clamping
    big = x - 128
    inside = (x > 0) & (x < 255)
    assert torch.allclose(big[inside], 5 * small[inside], atol=1e-2)
    # independent per channel
    ch = small[0]
    r = torch.corrcoef(torch.stack([ch[0].flatten(), ch[1].flatten()]))[0, 1]
    assert abs(float(r)) < 0.05


def test_impulse_hits_70_percent_of_positions_with_equal_channels():
    video = flat(100, dtype=torch.uint8)
    out, p = corrupt(video, "impulse", 1.0, seed=1, return_params=True)
    x = chosen(out, p)
    black = (x == 0).all(1)
    white = (x == 255).all(1)
    kept = (x == 100).all(1)
    assert torch.equal(black | white | kept, torch.ones_like(kept))  # channels always agree
    assert abs(float(black.float().mean()) - 0.35) < 0.01
    assert abs(float(white.float().mean()) - 0.35) < 0.01


def test_speckle_grain_is_2x2_shared_by_channels():
    video = flat(100.0)
    out = corrupt(video, "speckle", 1.0, seed=2, intensity=0.1)[0].float()
    f = out[0]
    assert torch.equal(f[0], f[1]) and torch.equal(f[1], f[2])
    g = f[0]
    assert torch.equal(g[0::2, 0::2], g[1::2, 1::2]) and torch.equal(g[0::2, 0::2], g[0::2, 1::2])
    assert not torch.equal(g[0::2, 0::2], g[0::2, 2::2].roll(1, 1))
    rel = out[:, 0, ::2, ::2] / 100 - 1
    assert abs(float(rel.std()) - 0.1) < 0.005
    # default intensity 0.7 clamps negative gains to black: P(n < -1/0.7)
    d = corrupt(video, "speckle", 1.0, seed=2)[0].float()
    assert abs(float((d == 0).float().mean()) - 0.0766) < 0.01


def test_poisson_quantizes_to_multiples_of_100_and_clamps():
    video = flat(100, dtype=torch.uint8, h=128, w=128)
    out = corrupt(video, "poisson", 1.0, seed=3)[0].float()
    assert set(torch.unique(out).tolist()) <= {0.0, 100.0, 200.0, 255.0}
    # lambda = 1: E[min(100k, 255)]
    p = [math.exp(-1) / math.factorial(k) for k in range(3)]
    expect = 100 * p[1] + 200 * p[2] + 255 * (1 - sum(p))
    assert abs(float(out.mean()) - expect) < 1.5
    white = corrupt(flat(255, dtype=torch.uint8), "poisson", 1.0, seed=3)
    assert int(white.max()) == 255  # clamped, never wrapped


def test_random_pixel_replaces_80_percent_with_uniform_colours():
    video = flat(7, dtype=torch.uint8, h=128, w=128)
    out = corrupt(video, "random_pixel", 1.0, seed=4)[0]
    replaced = (out != 7).any(1)
    assert abs(float(replaced.float().mean()) - 0.8) < 0.01
    vals = out.permute(1, 0, 2, 3)[:, replaced].flatten().float()
    assert abs(float(vals.mean()) - 127.5) < 1.0 and vals.min() == 0 and vals.max() == 255


def test_color_quantized_gives_exactly_8_levels():
    ramp = torch.arange(256, dtype=torch.uint8).reshape(1, 1, 1, 16, 16).expand(1, 2, 3, 16, 16).contiguous()
    out = corrupt(ramp, "color_quantized", 1.0, seed=0)
    assert torch.unique(out).tolist() == [0, 36, 73, 109, 146, 182, 219, 255]
    # nearest level: 18 -> 0 (18.2 is the midpoint), 19 -> 36
    flat_ramp = out[0, 0, 0].flatten()
    assert flat_ramp[18] == 0 and flat_ramp[19] == 36


def test_bright_transform_matches_colorsys_hsv():
    g = torch.Generator().manual_seed(0)
    video = torch.randint(0, 256, (1, 1, 3, 16, 16), generator=g).float()
    video[..., 0, 0] = 0  # a black pixel
    out = corrupt(video, "bright_transform", 1.0, seed=0)
    px = video[0, 0].reshape(3, -1).T.tolist()
    got = out[0, 0].reshape(3, -1).T.tolist()
    for (r, g_, b), o in zip(px, got):
        h, s, v = colorsys.rgb_to_hsv(r / 255, g_ / 255, b / 255)
        want = colorsys.hsv_to_rgb(h, s, min(v + 0.5, 1.0))
        assert max(abs(w * 255 - oo) for w, oo in zip(want, o)) < 1e-3


def test_contrast_factor_rule_and_formula():
    video = torch.zeros(64, 8, 3, 4, 4)
    p = sample_params(video, "contrast", 1.0, seed=0)
    f = p["factor"].flatten()
    assert f.min() >= 0
    # u ~ U(-5, 5): P(f < 1) = P(0 <= u < 1) + P(u < -1) = 0.5; P(f >= 5) = P(-0.2 <= u < 0) = 0.02
    assert abs(float((f < 1).float().mean()) - 0.5) < 0.07
    assert float((f > 5).float().mean()) < 0.06
    g = torch.Generator().manual_seed(1)
    clip = torch.randint(50, 200, (1, 2, 3, 8, 8), generator=g).float()
    out, p = corrupt(clip, "contrast", 1.0, seed=3, return_params=True)
    for j in range(2):
        fac = float(p["factor"][0, j])
        m = clip[0, j].mean(dim=(1, 2), keepdim=True)
        assert torch.allclose(out[0, j], (m + fac * (clip[0, j] - m)).clamp(0, 255), atol=1e-3)


def test_color_shift_gains_in_0_2_per_channel():
    video = flat(100.0, b=16)
    out, p = corrupt(video, "color_shift", 1.0, seed=1, return_params=True)
    gain = p["gain"]
    assert gain.shape == (16, 8, 3) and gain.min() >= 0 and gain.max() < 2
    assert abs(float(gain.mean()) - 1) < 0.08
    assert torch.allclose(out[:, :, :, 0, 0], (100 * gain).clamp(max=255), atol=1e-3)


@pytest.mark.parametrize("ratio", [0.3, 0.9])
def test_flicker_uses_ratio_as_gain_std_on_all_frames(ratio):
    video = flat(100.0, b=64)
    out, p = corrupt(video, "flicker", ratio, seed=2, return_params=True)
    alpha = p["alpha"]
    assert p["frames"].all() and alpha.shape == (64, 8)
    assert abs(float(alpha.mean()) - 1) < 0.05 + 0.05 * ratio
    assert abs(float(alpha.std()) - ratio) < 0.08 * ratio + 0.01
    assert torch.allclose(out[:, :, 0, 0, 0], (100 * alpha).clamp(0, 255), atol=1e-3)


def test_overexposure_saturates_and_underexposure_darkens():
    ramp = torch.arange(256, dtype=torch.float32).reshape(1, 1, 1, 16, 16).expand(8, 8, 3, 16, 16).contiguous()
    over, p = corrupt(ramp, "overexposure", 1.0, seed=0, return_params=True)
    d, g = p["delta"], p["gamma"]
    assert d.min() >= 0.1 and d.max() < 0.3 and g.min() >= 1.1 and g.max() < 1.4
    x = ramp[0, 0, 0]
    want = torch.pow((x + d[0, 0]).clamp(0, 255), g[0, 0]).clamp(0, 255)
    assert torch.allclose(over[0, 0, 0], want, atol=1e-3)
    assert (over[:, :, :, 10:] == 255).all()  # every pixel >= 160 saturates even at gamma 1.1
    under, p = corrupt(ramp, "underexposure", 1.0, seed=0, return_params=True)
    g = p["gamma"]
    assert g.min() >= 0.6 and g.max() < 0.9
    assert under.max() <= 255 ** 0.9 + 1e-3
    assert torch.allclose(under[0, 0, 0], torch.pow((x + p["delta"][0, 0]).clamp(0, 255), g[0, 0]), atol=1e-3)


# ---- NRVL-0's parameters that had no counterpart: contrast_range, per_channel, value_range

def _grey_clip(T=8, H=16, W=16):
    g = torch.Generator().manual_seed(7)
    return torch.randint(0, 256, (2, T, 3, H, W), generator=g, dtype=torch.uint8)


@pytest.mark.parametrize("name, explicit", [
    ("contrast", {"contrast_range": (-5.0, 5.0)}),
    ("color_shift", {"per_channel": True}),
    ("random_pixel", {"value_range": (0, 255)}),
])
def test_the_reference_parameters_at_their_defaults_change_nothing(name, explicit):
    v = _grey_clip()
    assert torch.equal(corrupt(v, name, 0.9, seed=2), corrupt(v, name, 0.9, seed=2, **explicit))


def test_contrast_range_sets_the_draw_of_u():
    v = _grey_clip(T=40)
    f_pos = sample_params(v, "contrast", 1.0, seed=1, contrast_range=(1.0, 2.0))["factor"]
    assert f_pos.min() >= 1.0 and f_pos.max() < 2.0 and f_pos.std() > 0.2
    f_neg = sample_params(v, "contrast", 1.0, seed=1, contrast_range=(-2.0, -1.0))["factor"]  # f = -1/u
    assert f_neg.min() >= 0.5 and f_neg.max() <= 1.0 + 1e-6 and f_neg.std() > 0.05


def test_color_shift_single_gain_mode_scales_the_three_channels_alike():
    v = _grey_clip()
    out, p = corrupt(v, "color_shift", 0.9, seed=3, per_channel=False, return_params=True)
    gain = p["gain"]
    assert torch.equal(gain[..., 0], gain[..., 1]) and torch.equal(gain[..., 0], gain[..., 2])
    assert gain[..., 0].std() > 0.2  # still a fresh gain per frame
    t = int(p["frame_idx"][0, 0])  # clip 0's first chosen frame, which takes gain[0, 0]
    want = (v[0, t].double() * float(gain[0, 0, 0])).clamp(0, 255).round()
    assert (out[0, t].double() - want).abs().max() <= 1


def test_random_pixel_value_range_bounds_the_colours():
    v = _grey_clip(T=4, H=64, W=64)
    out, p = corrupt(v, "random_pixel", 1.0, seed=4, probs=1.0, value_range=(10, 13), return_params=True)
    assert set(out.unique().tolist()) == {10, 11, 12, 13}
    counts = torch.bincount(out.flatten().long(), minlength=14)[10:].double()
    assert (counts / counts.sum() - 0.25).abs().max() < 0.01  # uniform on the four levels


@pytest.mark.parametrize("name, bad, message", [
    ("contrast", {"contrast_range": (5.0, -5.0)}, "contrast_range must be a pair"),
    ("contrast", {"contrast_range": (0.0, float("inf"))}, "contrast_range must be a pair"),
    ("contrast", {"factor": "big"}, "factor must be a finite number"),
    ("color_shift", {"per_channel": 1}, "per_channel must be True or False"),
    ("color_shift", {"shift": -0.5}, "shift must be >= 0"),
    ("random_pixel", {"value_range": (0, 256)}, "value_range must be a pair .* within \\[0, 255\\]"),
    ("random_pixel", {"value_range": (0.5, 3)}, "value_range must be a pair .* of ints"),
    ("random_pixel", {"probs": 1.5}, "probs must be >= 0.0 and <= 1.0"),
    ("overexposure", {"gamma": (1.4,)}, "gamma must be a pair"),
    ("underexposure", {"delta": "x"}, "delta must be a pair"),
])
def test_bad_reference_parameters_are_one_clear_error(name, bad, message):
    with pytest.raises(ValueError, match=message):
        corrupt(_grey_clip(), name, 0.9, seed=0, **bad)
