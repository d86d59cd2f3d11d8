"""Weather family maths: rainy, foggy, snow, frost, reflect, shadow (issue 4).

The registry-wide contract (shape, dtype, seeds, batching, replay) is in
test_contract.py; these tests check what each noise alone does, mostly on flat
grey clips where the reference's formulas give exact expected values.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import nrvl.kernels as K
from nrvl.kernels import _procedural as proc
from nrvl.kernels import random as rng
from nrvl.kernels import weather as Wm


def grey(value, b=1, t=4, h=36, w=48, dtype=torch.uint8):
    return torch.full((b, t, 3, h, w), value, dtype=torch.float32).to(dtype)


def chosen(out, params):
    """The chosen frames of a one-clip batch: ``[n, 3, H, W]``."""
    return out[0, params["frame_idx"][0]]


# ============================================================================ rainy


def test_rain_drop_count_is_five_per_hundred_pixels():
    assert Wm.rain_geometry(720, 1280, slant=0.13, drop_length=22, density=5)[0] == 46080
    n, lo, span, dx = Wm.rain_geometry(37, 53, slant=0.13, drop_length=22, density=5)
    assert (n, lo, lo + span - 1) == (5 * 37 * 53 // 100, 11, 43)
    assert dx.tolist() == [int(0.13 * L) for L in range(44)]


def test_rain_drop_statistics():
    H, W = 200, 300
    n, lo, span, dx = Wm.rain_geometry(H, W, slant=0.13, drop_length=22, density=5)
    key = rng.keys(torch.tensor([3]), "rainy/drops")
    x0, y0, L, x1, y1 = Wm.rain_drops(key, H, W, n_drops=n, len_lo=lo, len_span=span, dx_table=dx)
    assert x0.shape == (1, n)
    assert L.min() == 11 and L.max() == 43
    assert torch.bincount(L.flatten() - 11).min() > n / 33 * 0.8  # every length, about uniformly
    assert abs(L.float().mean().item() - 27.0) < 0.3
    assert x0.min() >= 0 and x0.max() == W - 1 and abs(x0.float().mean().item() - (W - 1) / 2) < 3
    assert y0.min() >= 0 and y0.max() == H - 1 and abs(y0.float().mean().item() - (H - 1) / 2) < 3
    free = (y0 + L <= H - 1) & (x0 + (0.13 * L).floor().long() <= W - 1)
    assert torch.equal((y1 - y0)[free], L[free])  # falls L rows...
    assert torch.equal((x1 - x0)[free], (0.13 * L[free].double()).floor().long())  # ...slanting int(0.13 L) right
    assert (y1 <= H - 1).all() and (x1 <= W - 1).all()


def test_single_streak_has_length_slant_and_fading_intensity():
    H, W = 400, 400
    n, lo, span, dx = Wm.rain_geometry(H, W, slant=0.13, drop_length=22, density=100 / (H * W))
    assert n == 1
    checked = 0
    for seed in range(12):
        key = rng.keys(torch.tensor([seed]), "rainy/drops")
        x0, y0, L, x1, y1 = (v.item() for v in Wm.rain_drops(key, H, W, n_drops=1, len_lo=lo, len_span=span,
                                                             dx_table=dx))
        if y0 + L > H - 1:
            continue
        m = Wm.rain_streaks_torch(key, H, W, n_drops=1, len_lo=lo, len_span=span, dx_table=dx)[0]
        ys, xs = torch.nonzero(m, as_tuple=True)
        assert ys.min() == y0 and ys.max() == y0 + L and xs.min() == x0 and xs.max() == x0 + int(0.13 * L)
        assert len(ys) == L  # one point per row: slant < 1
        assert m[y0, x0] == pytest.approx(0.7) and m[y0 + L, x0 + int(0.13 * L)] == pytest.approx(0.2)
        col = m[ys, xs]
        assert (col[1:] < col[:-1]).all()  # 0.7 at the top fading to 0.2 at the bottom
        checked += 1
    assert checked >= 6


def test_rain_streaks_in_blocks_of_drops_equal_one_block():
    key = rng.keys(torch.tensor([1, 2]), "rainy/drops")
    n, lo, span, dx = Wm.rain_geometry(37, 53, slant=0.13, drop_length=22, density=5)
    whole = Wm.rain_streaks_torch(key, 37, 53, n_drops=n, len_lo=lo, len_span=span, dx_table=dx)
    blocks = Wm.rain_streaks_torch(key, 37, 53, n_drops=n, len_lo=lo, len_span=span, dx_table=dx, chunk_points=500)
    assert torch.equal(whole, blocks)


def test_rainy_composite_on_flat_grey():
    video = grey(100, b=2, h=40, w=56)
    out, params = K.corrupt(video, "rainy", 1.0, seed=4, return_params=True)
    r = Wm.rain_map(params["key"], 40, 56, slant=0.13, drop_length=22, density=5, blur_sigma=0.5)
    expected = (0.85 * 100 + 18 + 80 * r).clamp(0, 255).round().to(torch.uint8)
    assert torch.equal(out, expected[:, None, None].expand_as(out))
    assert r.max() <= 0.7 and (r == 0).any()  # haze-only pixels are exactly 0.85x + 18 = 103
    assert (out == 103).any() and out.max() <= 103 + 56


def test_rain_map_is_one_per_clip_keyed_by_the_clip_seed():
    video = grey(90, b=2, t=8)
    out, params = K.corrupt(video, "rainy", 0.9, seed=torch.tensor([11, 12]), return_params=True)
    frames = [chosen(out[i:i + 1], {"frame_idx": params["frame_idx"][i:i + 1]}) for i in range(2)]
    assert all(torch.equal(f[0], f[j]) for f in frames for j in range(1, len(f)))  # same streaks on every frame
    assert not torch.equal(frames[0][0], frames[1][0])
    # The streaks depend on the clip seed alone, not on which frames were drawn or on T.
    _, p4 = K.corrupt(grey(90, t=4), "rainy", 0.5, seed=torch.tensor([11]), return_params=True)
    assert torch.equal(p4["key"][0], params["key"][0])


def test_rain_blur_is_scipy_gaussian_filter_sigma_half():
    m = torch.zeros(1, 9, 9)
    m[0, 0, 0] = m[0, 4, 4] = 1.0
    b = proc.separable_blur(m, proc.gaussian_kernel1d(5, 0.5, dtype=torch.float32), "symmetric")
    k = np.exp(-0.5 * np.arange(-2, 3) ** 2 / 0.25)
    k /= k.sum()
    assert b[0, 4, 4].item() == pytest.approx(k[2] ** 2, rel=1e-6)
    assert b[0, 2, 4].item() == pytest.approx(k[0] * k[2], rel=1e-6)
    # scipy 'reflect' (half-sample symmetric): a corner impulse keeps (k2 + k1)^2 + ... at the corner
    assert b[0, 0, 0].item() == pytest.approx((k[2] + k[1]) ** 2, rel=1e-6)


# ============================================================================ foggy


def test_plasma_is_normalized_deterministic_and_seeded():
    a = proc.plasma_fractal(torch.tensor([1, 2]), "t", 64, 1.4)
    assert a.shape == (2, 64, 64)
    assert torch.allclose(a.amin(dim=(1, 2)), torch.zeros(2)) and torch.allclose(a.amax(dim=(1, 2)), torch.ones(2))
    assert torch.equal(a, proc.plasma_fractal(torch.tensor([1, 2]), "t", 64, 1.4))
    assert not torch.equal(a[0], a[1])
    # Smooth at the large scale: neighbours are strongly correlated, a smaller decay is rougher.
    def roughness(m):
        return (m[:, 1:] - m[:, :-1]).abs().mean().item()
    assert roughness(a) < 0.05 < roughness(proc.plasma_fractal(torch.tensor([1]), "t", 64, 0.7))


def test_foggy_on_flat_grey_matches_the_imagenet_c_formula():
    video = grey(128, h=40, w=56)
    out, params = K.corrupt(video, "foggy", 0.5, seed=8, return_params=True)
    f = Wm.fog_map(params["seed"], 40, 56, wibble_decay=1.4)[0]
    m = 128 / 255
    expected = (((m + 3.0 * f) * (m / (m + 3.0))).clamp(0, 1) * 255).round().to(torch.uint8)
    sel = chosen(out, params)
    assert all(torch.equal(s, expected.expand(3, -1, -1)) for s in sel)  # one map per clip
    lo, hi = m * m / (m + 3) * 255, 128
    assert sel.min() >= math.floor(lo) and sel.max() <= hi  # darkened to between ~18 and 128
    assert sel.float().mean() < 128


def test_fog_map_size_is_next_power_of_two_crop():
    seeds = torch.tensor([5])
    full = proc.plasma_fractal(seeds, "foggy/plasma", 64, 1.4)
    assert torch.equal(Wm.fog_map(seeds, 40, 56, wibble_decay=1.4), full[:, :40, :56])


# ============================================================================ snow


@pytest.mark.parametrize("angle", [-135.0, -110.0, -90.0, -60.0, -45.0])
def test_snow_taps_are_the_normalized_one_sided_motion_kernel(angle):
    dy, dx, w = Wm.snow_taps(torch.tensor([angle]), 1000, 1000, radius=12, sigma=12.0)
    assert dy.shape == (1, 25)
    assert w.sum().item() == pytest.approx(1.0, abs=1e-6)  # the intended kernel (the reference's sums to ~0.025)
    i = torch.arange(25.0)
    assert torch.allclose(w[0], torch.exp(-i * i / 288) / torch.exp(-i * i / 288).sum())
    assert (dy[0, 0], dx[0, 0]) == (0, 0)
    a = math.radians(angle)
    assert dy[0].tolist() == [-math.ceil(k * math.sin(a) - 0.5) for k in range(25)]
    assert dx[0].tolist() == [-math.ceil(k * math.cos(a) - 0.5) for k in range(25)]
    assert (dy >= 0).all() and (dy[0, 1:] >= dy[0, :-1]).all()


def test_snow_taps_stop_where_the_reference_breaks():
    dy, dx, w = Wm.snow_taps(torch.tensor([-90.0]), 10, 100, radius=12, sigma=12.0)
    assert (w[0, :10] > 0).all() and (w[0, 10:] == 0).all()  # |dy| >= 10 rows ends the loop


def test_snow_blur_of_a_full_field_is_one_inside():
    field = torch.ones(2, 40, 50)
    dy, dx, w = Wm.snow_taps(torch.tensor([-90.0, -60.0]), 40, 50, radius=12, sigma=12.0)
    s = Wm.snow_blur_torch(field, dy, dx, w, 40, 50)
    assert torch.allclose(s[:, 30:, 20:30], torch.ones(1), atol=1e-5)
    assert s[:, 0, :].max() < 0.2  # nothing above the first row to trail in from


def test_snow_on_flat_grey_whitens_and_adds_flakes():
    v = 77
    video = grey(v, h=72, w=96)
    out, params = K.corrupt(video, "snow", 0.5, seed=2, return_params=True)
    g = v / 255
    base = round((0.55 * g + 0.45 * max(g, 1.5 * g + 0.5)) * 255)  # the whitened frame: 151
    sel = chosen(out, params).float()
    assert sel.min() >= base - 1 and sel.max() == 255
    # Streaks, not a uniform veil: some pixels untouched, a good share bright (the reference's
    # unnormalized blur left flakes at <= 6/255; the normalized kernel makes them visible).
    clear = (sel[:, 0] <= base + 1).float().mean(dim=(1, 2))
    bright = (sel[:, 0] > base + 40).float().mean(dim=(1, 2))
    assert ((clear > 0.05) & (bright > 0.05) & (bright < 0.5)).all(), (clear, bright)
    assert (sel.mean() - v) > 70  # ImageNet-C snow 5 brightens strongly
    assert not torch.equal(sel[0], sel[1])  # fresh flakes per frame


def test_snow_layer_is_quantized_and_symmetric_composite():
    key = rng.keys(torch.tensor([1, 2]), "snow/flakes")
    s = Wm.snow_layer(key, torch.tensor([-100.0, -70.0]), 36, 48, mean=0.55, std=0.3, zoom=2.5, threshold=0.85,
                      radius=12, sigma=12.0, use_triton=False)
    assert torch.allclose(s * 255, (s * 255).round(), atol=1e-4)
    assert s.min() >= 0 and s.max() <= 1


# ============================================================================ frost


def test_frost_textures_are_crystalline_not_flat():
    tex = proc.frost_textures(2, 96, 128, seed=0).float()
    assert tex.shape == (2, 3, 96, 128)
    lum = tex.mean(1)
    assert 70 < lum.mean() < 160 and lum.std() > 25
    assert ((lum > 200).float().mean() > 0.01) and ((lum < 80).float().mean() > 0.05)  # bright crystals on haze
    edges = (lum[:, :, 1:] - lum[:, :, :-1]).abs().mean()
    assert edges > 8  # fine structure (a flat or blurred noise texture scores ~1-3)
    assert (tex[:, 2] >= tex[:, 0]).all()  # cold tint
    assert torch.equal(proc.frost_textures(2, 96, 128, seed=0), tex.to(torch.uint8))
    assert not torch.equal(proc.frost_textures(2, 96, 128, seed=1), tex.to(torch.uint8))


def test_frost_composite_on_flat_grey_uses_a_random_crop_per_frame():
    video = grey(100, t=6, h=36, w=48)
    out, params = K.corrupt(video, "frost", 1.0, seed=3, return_params=True)
    bank, sizes = Wm.frost_bank(36, 48, "cpu")
    k = (params["pick"][0] * bank.shape[0]).floor().long()
    room = sizes[k] - torch.tensor([36, 48])
    off = (params["crop"][0] * room).floor().long()
    for t in range(6):
        crop = bank[k[t], :, off[t, 0]:off[t, 0] + 36, off[t, 1]:off[t, 1] + 48].float()
        assert torch.equal(out[0, t], (0.6 * 100 + 0.75 * crop).clamp(0, 255).round().to(torch.uint8))
    assert len({tuple(o) for o in off.tolist()}) > 1


def test_frost_reference_rescale_rule():
    # ImageNet-C frost1.png (900x600) and frost4.jpg (527x350) on a 720p frame.
    assert Wm._cover_size(600, 900, 720, 1280) == (math.ceil(600 * 1280 / 900 * 1.1), math.ceil(900 * 1280 / 900 * 1.1))
    h, w = Wm._cover_size(350, 527, 720, 1280)
    assert h > 720 and w > 1280
    assert Wm._cover_size(1000, 2000, 720, 1280) == (1100, 2200)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torchvision's PNG writer, test set-up only
def test_frost_texture_dir(tmp_path):
    from torchvision.io import write_png
    img = torch.empty(3, 30, 40, dtype=torch.uint8)
    img[0], img[1], img[2] = 10, 100, 200
    write_png(img, str(tmp_path / "a.png"))
    write_png(img, str(tmp_path / "b.png"))
    (tmp_path / "notes.txt").write_text("not an image")
    video = grey(50, h=36, w=48)
    out, params = K.corrupt(video, "frost", 0.5, seed=1, texture_dir=str(tmp_path), return_params=True)
    expected = (0.6 * 50 + 0.75 * torch.tensor([10.0, 100.0, 200.0])).round().to(torch.uint8)
    sel = chosen(out, params)
    assert torch.equal(sel, expected[None, :, None, None].expand_as(sel))
    bank, sizes = Wm.frost_bank(36, 48, "cpu", texture_dir=str(tmp_path))
    assert bank.shape[0] == 2 and (sizes > torch.tensor([36, 48])).all()


def test_frost_texture_dir_errors(tmp_path):
    video = grey(50)
    with pytest.raises(ValueError, match="texture_dir"):
        K.corrupt(video, "frost", 0.5, seed=1, texture_dir=str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="no images"):
        K.corrupt(video, "frost", 0.5, seed=1, texture_dir=str(tmp_path))


# ============================================================================ reflect


def _noise2_ref(x, y, base=0):
    """The ``noise`` package's C ``noise2`` on NumPy float32 scalars (repeat 1024, independent port)."""
    f = np.float32
    perm = list(proc._PERM) * 2
    grad = proc._GRAD2
    x, y = f(x), f(y)
    i, j = int(np.floor(np.fmod(x, f(1024)))), int(np.floor(np.fmod(y, f(1024))))
    ii, jj = int(np.fmod(f(i + 1), f(1024))), int(np.fmod(f(j + 1), f(1024)))
    i, j, ii, jj = (i & 255) + base, (j & 255) + base, (ii & 255) + base, (jj & 255) + base
    x, y = f(x - np.floor(x)), f(y - np.floor(y))
    fx = x * x * x * (x * (x * f(6) - f(15)) + f(10))
    fy = y * y * y * (y * (y * f(6) - f(15)) + f(10))

    def g(h, a, b):
        gx, gy = grad[perm[h] & 15]
        return f(a * f(gx) + b * f(gy))

    def lerp(t, a, b):
        return f(a + t * (b - a))

    A, B = perm[i], perm[ii]
    return lerp(fy, lerp(fx, g(perm[A + j], x, y), g(perm[B + j], x - f(1), y)),
                lerp(fx, g(perm[A + jj], x, y - f(1)), g(perm[B + jj], x - f(1), y - f(1))))


def test_perlin_matches_the_noise_package_algorithm():
    xs = torch.tensor([0.0, 0.37, 1.5, 3.999, 12.8, 255.3], dtype=torch.float32)
    ys = torch.tensor([0.0, 0.71, 2.25, 7.2], dtype=torch.float32)
    one = proc.pnoise2_grid(xs, ys, octaves=1)
    for a, y in enumerate(ys.tolist()):
        for b, x in enumerate(xs.tolist()):
            assert one[a, b].item() == pytest.approx(float(_noise2_ref(x, y)), abs=1e-6)
    six = proc.pnoise2_grid(xs, ys, octaves=6)
    x, y = 0.37, 2.25
    total = sum(_noise2_ref(np.float32(x) * np.float32(2 ** o), np.float32(y) * np.float32(2 ** o)) * 0.5 ** o
                for o in range(6))
    assert six[2, 1].item() == pytest.approx(total / 1.96875, abs=1e-6)


def test_perlin_map_is_fixed_and_spans_0_255():
    p = proc.perlin_grid(36, 48)
    assert p.dtype == torch.uint8 and p.min() == 0 and p.max() == 255
    assert torch.equal(p, Wm.perlin_map(36, 48, "cpu"))


@pytest.mark.parametrize("value,lit", [(50, 50.0), (150, 255.0)])
def test_reflect_on_flat_grey(value, lit):
    # gray <= 100: no highlight; gray > 100: 1.5x + 0.5 blur(x) = 2x, clamped to 255.
    video = grey(value, h=36, w=48)
    out, params = K.corrupt(video, "reflect", 0.5, seed=1, return_params=True)
    p = proc.perlin_grid(36, 48).float()
    expected = (0.9 * lit + 0.1 * p).round().to(torch.uint8)
    sel = chosen(out, params)
    assert torch.equal(sel, expected.expand_as(sel))
    assert sel.float().mean().item() == pytest.approx(0.9 * lit + 0.1 * p.mean().item(), abs=0.5)


def test_reflect_highlight_blur_is_torchvision_gaussian_15_sigma_5():
    from torchvision.transforms.v2 import functional as TF
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 30, 41, generator=g) * 255
    k = proc.gaussian_kernel1d(15, 5.0)
    assert torch.allclose(proc.separable_blur(x, k, "reflect101"), TF.gaussian_blur(x, [15, 15], [5.0, 5.0]),
                          atol=1e-3)


# ============================================================================ shadow


def test_the_procedural_frost_covers_the_same_share_of_every_frame_size():
    # The same amount of frost whatever the resolution (Qwen's resized frames, an API model's
    # native ones): crystal counts scale with area / sqrt(area), as their lengths with sqrt(area).
    means = [proc.frost_textures(3, h, w).float().mean().item() / 255 for h, w in ((180, 320), (360, 640), (720, 1280))]
    assert max(means) - min(means) < 0.02, means
    assert 0.38 < means[1] < 0.45


def test_shadow_is_the_blurred_ellipse_darkened_by_at_most_70_percent():
    H, W = 96, 128
    video = grey(200, t=4, h=H, w=W)
    out, params = K.corrupt(video, "shadow", 1.0, seed=5, return_params=True)
    c, a, ang = params["center"][0], params["axes"][0], params["angle"][0]
    assert ((c[:, 0] >= W // 4) & (c[:, 0] <= 3 * W // 4) & (c[:, 1] >= H // 4) & (c[:, 1] <= 3 * H // 4)).all()
    assert ((a[:, 0] >= W // 4) & (a[:, 0] <= W // 2) & (a[:, 1] >= H // 4) & (a[:, 1] <= H // 2)).all()
    assert ((ang >= 0) & (ang <= 180)).all()
    # Independent reference: dense 51x51 Gaussian (cv2 sigma 8, reflect-101 borders).
    mask = proc.ellipse_masks(c, proc.cv2_fill_axes(a), ang, H, W, dtype=torch.float64)
    k = proc.gaussian_kernel1d(51, 8.0, dtype=torch.float64)
    padded = F.pad(mask[:, None], (25, 25, 25, 25), mode="reflect")
    soft = F.conv2d(padded, (k[:, None] * k[None, :])[None, None])[:, 0].clamp(0, 1)
    expected = (200 * (1 - 0.7 * soft)).round().to(torch.uint8)
    assert (out[0].float() - expected[:, None].float()).abs().max() <= 1
    f = out[0].float()
    assert f.min() >= 60 - 1 and f.max() <= 200  # never darker than 30%, never brighter
    cx, cy = c[:, 0], c[:, 1]
    centre = f[torch.arange(4), 0, cy, cx]
    assert (centre <= 62).all()  # deep inside: the full 70%


def test_ellipse_fill_is_close_to_cv2s():
    # Rows cv2 5.1's filled ellipse covers (tests/data/cv2_ellipse_rows.json, made by cv2.ellipse).
    ref = json.loads((Path(__file__).parent / "data" / "cv2_ellipse_rows.json").read_text())
    H, W = ref["height"], ref["width"]
    for e in ref["ellipses"]:
        want = torch.zeros(H, W)
        for y, x0, x1 in e["rows"]:
            want[y, x0:x1 + 1] = 1
        c, a, ang = torch.tensor([e["center"]]), torch.tensor([e["axes"]]), torch.tensor([e["angle"]])
        off = (proc.ellipse_masks(c, proc.cv2_fill_axes(a), ang, H, W)[0] - want).abs().sum()
        exact = (proc.ellipse_masks(c, a, ang, H, W)[0] - want).abs().sum()  # the true ellipse misses cv2's rim
        assert off <= 40 and off < exact / 3, (e["axes"], off, exact)


def test_ellipse_mask_area_and_orientation():
    m = proc.ellipse_masks(torch.tensor([[100, 80]]), torch.tensor([[60, 20]]), torch.tensor([0]), 160, 200)
    assert m.sum().item() == pytest.approx(math.pi * 60 * 20, rel=0.02)
    assert m[0, 80, 155] == 1 and m[0, 105, 100] == 0  # long along x
    r = proc.ellipse_masks(torch.tensor([[100, 80]]), torch.tensor([[60, 20]]), torch.tensor([90]), 160, 200)
    assert r[0, 135, 100] == 1 and r[0, 80, 125] == 0  # rotated 90 degrees: long along y


# ============================================================================ parameters


@pytest.mark.parametrize("name,kw,match", [
    ("rainy", {"drop_length": 0}, "drop_length"),
    ("rainy", {"fog": 1.5}, "fog"),
    ("rainy", {"density": -1}, "density"),
    ("foggy", {"wibble_decay": 0}, "wibble_decay"),
    ("foggy", {"strength": -1.0}, "strength"),
    ("snow", {"zoom": 0}, "zoom"),
    ("snow", {"blend": 2.0}, "blend"),
    ("snow", {"sigma": 0.0}, "sigma"),
    ("frost", {"num_textures": 0}, "num_textures"),
    ("frost", {"frost_weight": float("nan")}, "frost_weight"),
    ("reflect", {"kernel_size": 14}, "kernel_size"),
    ("reflect", {"perlin_weight": 2.0}, "perlin_weight"),
    ("shadow", {"strength": 1.5}, "strength"),
    ("shadow", {"kernel_size": 50}, "kernel_size"),
], ids=lambda v: str(v) if not isinstance(v, dict) else ",".join(v))
def test_bad_parameters_name_themselves(name, kw, match):
    with pytest.raises(ValueError, match=match):
        K.corrupt(grey(100), name, 0.5, seed=0, **kw)


def test_unknown_parameter_is_rejected():
    with pytest.raises(TypeError, match="texture"):
        K.corrupt(grey(100), "snow", 0.5, seed=0, texture_dir="x")


@pytest.mark.parametrize("name", ["rainy", "foggy", "snow", "frost", "reflect", "shadow"])
def test_severity_5_is_the_reference(name):
    video = grey(120, h=24, w=32)
    assert torch.equal(K.corrupt(video, name, 0.5, seed=1), K.corrupt(video, name, 0.5, seed=1, severity=5))
