"""The maths of resolution_degrade, stretch_squish, edge_sawtooth and elastic (nrvl-noises.md 2.4, 2.6).

The registry-wide contract is in test_contract.py; here each noise is compared
with a literal implementation of the reference written in the test.
"""
from __future__ import annotations

import math

import nrvl.kernels as K
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from nrvl.kernels import digital as D


def smooth_video(b=1, t=2, h=40, w=56, seed=0, scale=255.0):
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(b * t, 3, max(2, h // 8), max(2, w // 8), generator=g)
    x = F.interpolate(low, size=(h, w), mode="bicubic", align_corners=False) * scale
    x = x + torch.rand(b * t, 3, h, w, generator=g) * 20
    return x.clamp(0, 255).reshape(b, t, 3, h, w)


# ----------------------------------------------------------------------------- resolution_degrade


def test_resolution_degrade_is_the_references_two_bicubic_resizes():
    video = smooth_video(h=50, w=70)
    out = K.corrupt(video, "resolution_degrade", 1.0, seed=0)
    x = video[0]
    # Against the float64 resizes: ours (two GEMMs per resize) is within 1e-4; torch's own
    # float32 upsample_bicubic2d is ~2e-4 off that same reference.
    ref = F.interpolate(F.interpolate(x.double(), size=(5, 7), mode="bicubic"), size=(50, 70), mode="bicubic")
    assert (out[0].double() - ref.clamp(0, 255)).abs().max() < 1e-4
    u8 = K.corrupt(video.round().to(torch.uint8), "resolution_degrade", 1.0, seed=0)
    ref8 = F.interpolate(F.interpolate(x.round(), size=(5, 7), mode="bicubic"), size=(50, 70), mode="bicubic")
    assert (u8[0].float() - ref8.clamp(0, 255).round()).abs().max() <= 1


@pytest.mark.parametrize("size", [(720, 1280), (97, 203)])
def test_resolution_degrade_uint8_blocks_match_the_float_reference(size, budget):
    # 720p: 6 planes in one chunk run in two blocks of the uint8 path's reused buffer;
    # 97x203: a ratio that is not an integer (9x20 -> 97x203), so the taps are not periodic.
    budget(factor=math.inf)
    H, W = size
    video = smooth_video(t=2, h=H, w=W, seed=3).round().to(torch.uint8)
    out = K.corrupt(video, "resolution_degrade", 1.0, seed=0)
    x = video[0].double()
    small = (max(1, int(H * 0.1)), max(1, int(W * 0.1)))
    ref = F.interpolate(F.interpolate(x, size=small, mode="bicubic"), size=(H, W), mode="bicubic")
    diff = (out[0].double() - ref.clamp(0, 255).round()).abs()
    assert diff.max() <= 1 and (diff > 0).double().mean() < 1e-3
    assert out.dtype == torch.uint8 and out.shape == video.shape


def test_resolution_degrade_keeps_at_least_one_pixel():
    video = torch.randint(0, 256, (3, 3, 6, 9), dtype=torch.uint8)  # int(0.1 * 6) = 0 crashed the reference
    out = K.corrupt(video, "resolution_degrade", 1.0, seed=0)
    assert out.shape == video.shape
    assert (out.float() - out.float().mean((-1, -2), keepdim=True)).abs().max() <= 1  # a 1x1 image, stretched


# ----------------------------------------------------------------------------- stretch_squish


def literal_stretch(x, horizontal, ratio=1 / 30):
    H, W = x.shape[-2:]
    size = (H, int(W * ratio)) if horizontal else (int(H * ratio), W)
    squeezed = F.interpolate(x.double(), size=size, mode="bicubic")
    return F.interpolate(squeezed, size=(H, W), mode="bicubic").clamp(0, 255)


def test_stretch_squish_is_the_references_resize_on_one_axis_per_clip():
    video = smooth_video(b=6, t=3, h=64, w=96)
    out, p = K.corrupt(video, "stretch_squish", 1.0, seed=4, return_params=True)
    horizontal = p["horizontal"]
    assert horizontal.shape == (6, 3) and horizontal.dtype == torch.bool
    assert (horizontal == horizontal[:, :1]).all(), "the axis is chosen once per clip"
    assert horizontal[:, 0].any() and not horizontal[:, 0].all()
    for b in range(6):
        ref = literal_stretch(video[b], bool(horizontal[b, 0]))
        assert (out[b].double() - ref).abs().max() < 1e-3


@pytest.mark.parametrize("clips", [1, 6])
def test_stretch_squish_uint8_is_torchs_uint8_resize(clips, budget):
    # The reference's uint8 CPU path, bit for bit: one clip (one axis per chunk, no gather) and
    # six clips in one chunk (both axes, gathered and scattered back).
    budget(factor=math.inf)
    video = smooth_video(b=clips, t=3, h=64, w=96, seed=2).round().to(torch.uint8)
    out, p = K.corrupt(video, "stretch_squish", 1.0, seed=5, return_params=True)
    if clips > 1:
        assert p["horizontal"][:, 0].any() and not p["horizontal"][:, 0].all()
    for b in range(clips):
        size = (64, 3) if bool(p["horizontal"][b, 0]) else (2, 96)  # int(96/30), int(64/30)
        small = F.interpolate(video[b], size=size, mode="bicubic", align_corners=False)
        assert torch.equal(out[b], F.interpolate(small, size=(64, 96), mode="bicubic", align_corners=False))


def test_stretch_squish_axis_is_a_fair_coin_per_clip():
    video = torch.zeros(200, 2, 3, 8, 8, dtype=torch.uint8)
    p = K.sample_params(video, "stretch_squish", 1.0, seed=1)
    share = float(p["horizontal"][:, 0].float().mean())
    assert 0.4 < share < 0.6


# ----------------------------------------------------------------------------- edge_sawtooth


def literal_canny(gray, low, high):
    """OpenCV's Canny (aperture 3, L1 norm), pixel by pixel, from its algorithm description."""
    H, W = gray.shape
    p = np.pad(gray.astype(np.int64), 1, mode="edge")
    dx = np.zeros((H, W), np.int64)
    dy = np.zeros((H, W), np.int64)
    for i in range(H):
        for j in range(W):
            a = p[i:i + 3, j:j + 3]
            dx[i, j] = (a[0, 2] + 2 * a[1, 2] + a[2, 2]) - (a[0, 0] + 2 * a[1, 0] + a[2, 0])
            dy[i, j] = (a[2, 0] + 2 * a[2, 1] + a[2, 2]) - (a[0, 0] + 2 * a[0, 1] + a[0, 2])
    mag = np.abs(dx) + np.abs(dy)
    m = np.pad(mag, 1)  # zero magnitude outside the frame
    tg22 = int(0.4142135623730950488016887242097 * (1 << 15) + 0.5)
    lo, hi = math.floor(min(low, high)), math.floor(max(low, high))  # OpenCV swaps reversed thresholds
    state = np.zeros((H, W), np.int64)  # 0: no, 1: candidate, 2: strong
    for i in range(H):
        for j in range(W):
            g = mag[i, j]
            if g <= lo:
                continue
            xs, ys = abs(int(dx[i, j])), abs(int(dy[i, j])) << 15
            tg22x = xs * tg22
            if ys < tg22x:
                ok = g > m[i + 1, j] and g >= m[i + 1, j + 2]
            elif ys > tg22x + (xs << 16):
                ok = g > m[i, j + 1] and g >= m[i + 2, j + 1]
            else:
                s = -1 if (int(dx[i, j]) ^ int(dy[i, j])) < 0 else 1
                ok = g > m[i, j + 1 - s] and g > m[i + 2, j + 1 + s]
            if ok:
                state[i, j] = 2 if g > hi else 1
    edges = np.zeros((H, W), bool)
    stack = [tuple(v) for v in np.argwhere(state == 2)]
    while stack:
        i, j = stack.pop()
        if edges[i, j]:
            continue
        edges[i, j] = True
        for di in (-1, 0, 1):
            for dj in (-1, 0, 1):
                a, b = i + di, j + dj
                if 0 <= a < H and 0 <= b < W and state[a, b] and not edges[a, b]:
                    stack.append((a, b))
    return edges


def test_gray_is_bgr2gray_applied_to_rgb_data():
    x = torch.zeros(1, 3, 1, 5)
    x[0, 0, 0, 0] = 255  # red gets blue's weight 0.114
    x[0, 1, 0, 1] = 255  # green
    x[0, 2, 0, 2] = 255  # blue gets red's weight 0.299
    x[0, :, 0, 3] = 255  # white
    x[0, :, 0, 4] = torch.tensor([17.0, 231.0, 137.0])  # 178.5 exactly: OpenCV's 15-bit rounding gives 179
    assert D._gray_like_opencv(x)[0, 0].tolist() == [29, 150, 76, 255, 179]


@pytest.mark.parametrize("seed,low,high", [(0, 50, 150), (1, 50, 150), (2, 20, 90), (3, 150, 50), (4, 49.9, 150.5)])
def test_canny_equals_a_literal_opencv_canny(seed, low, high):
    g = torch.Generator().manual_seed(seed)
    # blocks, a ramp, a disc and noise: every gradient direction and both thresholds occur
    H, W = 30, 41
    yy, xx = torch.meshgrid(torch.arange(H, dtype=torch.float32), torch.arange(W, dtype=torch.float32), indexing="ij")
    img = F.interpolate(torch.rand(1, 1, 4, 5, generator=g), size=(H, W), mode="nearest")[0, 0] * 120
    img = img + 3 * xx + 60 * (((yy - 15) ** 2 + (xx - 20) ** 2) < 64).float()
    img = (img + torch.rand(H, W, generator=g) * 25).clamp(0, 255).round()
    ours = D.canny(img[None], low, high)[0].numpy()
    ref = literal_canny(img.numpy().astype(np.int64), low, high)
    assert ours.any() and (ref != ours).sum() == 0


def test_canny_hysteresis_follows_long_weak_chains():
    # A ring whose edge strength fades from strong to weak along the contour: the weak
    # part is kept only through a long chain of weak pixels (OpenCV follows it to the end).
    H = W = 120
    yy, xx = torch.meshgrid(torch.arange(H, dtype=torch.float32), torch.arange(W, dtype=torch.float32), indexing="ij")
    ang = torch.atan2(yy - 60, xx - 60)
    contrast = 12 + 40 * (0.5 + 0.5 * torch.cos(ang))
    img = (80 + contrast * torch.sigmoid((45 - ((xx - 60) ** 2 + (yy - 60) ** 2).sqrt()) / 1.2)).round()
    ours = D.canny(img[None], 50, 150)[0]
    ref = torch.from_numpy(literal_canny(img.numpy().astype(np.int64), 50, 150))
    assert torch.equal(ours, ref)
    strong_only = D.canny(img[None], 150, 150)[0]
    assert ours.sum() > 3 * strong_only.sum()  # most of the ring comes from hysteresis


def step_video(h=200, w=60, col=30, left=30.0, right=200.0):
    v = torch.full((1, 1, 3, h, w), left)
    v[..., col:] = right
    return v


def test_edge_sawtooth_leaves_flat_frames_alone():
    flat = torch.full((1, 2, 3, 32, 32), 90, dtype=torch.uint8)
    assert torch.equal(K.corrupt(flat, "edge_sawtooth", 1.0, seed=0), flat)


def test_edge_sawtooth_randomises_the_dilated_edge_and_30_percent_of_its_neighbours():
    video = step_video()
    out = K.corrupt(video, "edge_sawtooth", 1.0, seed=3)
    gray = D._gray_like_opencv(video[0])
    edges = D.canny(gray, 50, 150)[0]
    cols = sorted(set(edges.nonzero()[:, 1].tolist()))
    # Columns 29 and 30 tie in magnitude; OpenCV's "> left and >= right" keeps the left one.
    assert cols == [29]
    changed = (out[0, 0] != video[0, 0]).any(0)
    rows = slice(2, 198)  # away from the top and bottom rows
    # 2x2 dilation with OpenCV's default anchor grows edges toward +x: columns 29..30 always change
    dilated = torch.zeros_like(changed)
    dilated[:, 29:31] = True
    assert (changed | ~dilated)[rows].all()
    # their 8-neighbours (columns 28 and 31) change with probability 0.3 each
    share = float(changed[rows][:, [28, 31]].float().mean())
    assert 0.22 < share < 0.38
    assert not changed[:, :28].any() and not changed[:, 32:].any()
    values = out[0, 0][:, dilated].double()
    assert 110 < float(values.mean()) < 145 and float(values.std()) > 60  # uniform 0..255 per channel
    assert float(values.max()) <= 255 and float(values.min()) >= 0 and torch.equal(values, values.round())


def test_edge_sawtooth_surround_ratio_zero_touches_only_the_dilated_edges():
    video = step_video(h=40)
    out = K.corrupt(video, "edge_sawtooth", 1.0, seed=1, surround_noise_ratio=0.0, dilate_size=1)
    changed = (out[0, 0] != video[0, 0]).any(0)
    assert (changed.nonzero()[:, 1].unique().tolist()) == [29]


def test_edge_sawtooth_uint8_path_equals_the_float_path():
    """The uint8 fast path (integer gray, bitwise select) gives the float path's output exactly."""
    video = smooth_video(b=2, t=3, h=37, w=53, seed=4).round().to(torch.uint8)
    for kw in ({}, {"severity": 2}, {"dilate_size": 3, "low_threshold": 10, "high_threshold": 40}):
        ours = K.corrupt(video, "edge_sawtooth", 0.7, seed=5, **kw)
        ref = K.corrupt(video.float(), "edge_sawtooth", 0.7, seed=5, **kw)
        assert ours.dtype == torch.uint8 and torch.equal(ours, ref.to(torch.uint8)) and (ours != video).any()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_edge_coin_in_integers_is_uniform_below_q(dtype):
    """The surround coin compared in integers equals ``rng.uniform(...) < q`` in the working dtype,
    also for q just either side of a float32 rounding boundary (torch rounds q to float32 first)."""
    x = torch.zeros(2, 3, 5, 7, dtype=dtype)  # flat: no edges, so the mask is surround & coin only
    fp = {"mask_key": K.random.keys(torch.tensor([3, 8]), "edge_sawtooth/mask")}
    u = K.random.uniform(fp["mask_key"][:, None, None, :], torch.arange(35, dtype=torch.int32).reshape(1, 5, 7),
                         dtype)
    for c in u.flatten()[:12].tolist() + [0.0, 0.3, 1.0]:
        for q in (c, math.nextafter(c, 2.0), math.nextafter(c, -1.0), c + 2.0 ** -26, c - 2.0 ** -26):
            q = min(max(q, 0.0), 1.0)
            surround_all = D._edge_mask(x + 255.0 * (torch.arange(7) == 3), fp, 50, 150, 1, q, dtype)
            ref = D._dilate(D.canny(D._gray_like_opencv(x + 255.0 * (torch.arange(7) == 3)), 50, 150), 1)
            ref = ref | (D._dilate(ref, 3) & (u < q))
            assert torch.equal(surround_all, ref), (c, q)


def test_canny_pieces_hold_on_strips_and_single_pixels():
    """Frames of one row or column, single pixels and checkerboards (block graph borders, int16 signs)."""
    g = torch.Generator().manual_seed(7)
    for H, W in ((1, 1), (1, 9), (9, 1), (2, 2), (3, 5), (5, 3)):
        for img in (torch.randint(0, 256, (H, W), generator=g).float(),
                    ((torch.arange(H)[:, None] + torch.arange(W)) % 2 * 255).float()):
            for low, high in ((50, 150), (0, 0), (10, 2000)):
                ours = D.canny(img[None], low, high)[0].numpy()
                assert (ours == literal_canny(img.numpy().astype(np.int64), low, high)).all(), (H, W, low, high)


# ----------------------------------------------------------------------------- elastic


def test_elastic_displacement_statistics_at_720p():
    key = K.random.keys(torch.tensor([0]), "elastic/field", torch.arange(2)[None]).reshape(2, 2)
    d = D.elastic_displacement(key, 720, 1280)
    assert d.shape == (2, 2, 720, 1280)
    std = d.std(dim=(-1, -2))
    assert ((std > 1.6) & (std < 2.0)).all(), f"displacement std {std.tolist()}, expected ~1.8 px"
    assert float(d.abs().max()) <= 12.0
    assert float(d.mean().abs()) < 0.1
    # smooth: neighbouring displacements nearly equal; the two components and frames independent
    assert float((d[..., 1:] - d[..., :-1]).abs().max()) < 0.5
    a, b, c = d[0, 0].flatten(), d[0, 1].flatten(), d[1, 0].flatten()
    assert abs(float(torch.corrcoef(torch.stack([a, b]))[0, 1])) < 0.1
    assert abs(float(torch.corrcoef(torch.stack([a, c]))[0, 1])) < 0.1


def test_elastic_field_is_the_smoothed_uniform_field():
    # Unsmoothed (sigma -> 0) the field is alpha * U(-m, m) per pixel, m = 0.005 * H.
    key = torch.tensor([[123, -77]], dtype=torch.int32)
    raw = D.elastic_displacement(key, 400, 300, sigma=1e-9, alpha=1.0)
    m = 0.005 * 400
    assert float(raw.abs().max()) <= m and float(raw.abs().max()) > 0.99 * m
    assert abs(float(raw.std()) - m / math.sqrt(3)) < 0.01


def literal_map_coordinates(img, rows, cols):
    """SciPy's map_coordinates(order=1, mode='reflect') on one [H, W] channel, in NumPy."""
    H, W = img.shape

    def sym(i, n):
        i = np.mod(i, 2 * n)
        return np.where(i >= n, 2 * n - 1 - i, i)

    r0, c0 = np.floor(rows).astype(np.int64), np.floor(cols).astype(np.int64)
    tr, tc = rows - r0, cols - c0
    out = 0.0
    for dr, wr in ((0, 1 - tr), (1, tr)):
        for dc, wc in ((0, 1 - tc), (1, tc)):
            out = out + wr * wc * img[sym(r0 + dr, H), sym(c0 + dc, W)]
    return out


def test_elastic_samples_like_map_coordinates_with_reflect():
    video = smooth_video(h=24, w=31, seed=5)
    params = {"alpha": 400.0, "sigma": 0.05, "amplitude": 0.005}  # large moves, so borders reflect
    out, p = K.corrupt(video, "elastic", 1.0, seed=2, return_params=True, **params)
    key = p["key"].reshape(-1, 2)
    d = D.elastic_displacement(key, 24, 31, **params).double().numpy()
    assert np.abs(d).max() > 3  # some samples land outside the frame
    rows, cols = np.meshgrid(np.arange(24), np.arange(31), indexing="ij")
    for f in range(2):
        for ch in range(3):
            ref = literal_map_coordinates(video[0, f, ch].double().numpy(), rows + d[f, 1], cols + d[f, 0])
            assert np.abs(out[0, f, ch].double().numpy() - np.clip(ref, 0, 255)).max() < 1e-2


def test_elastic_with_zero_alpha_is_the_identity():
    video = smooth_video()
    out = K.corrupt(video, "elastic", 1.0, seed=0, alpha=0.0)
    assert (out - video).abs().max() < 1e-3


# ----------------------------------------------------------------------------- bad parameters


@pytest.mark.parametrize("name,params,match", [
    ("resolution_degrade", {"scale_factor": 0.0}, "scale_factor must be > 0"),
    ("resolution_degrade", {"scale_factor": 1.5}, "scale_factor"),
    ("resolution_degrade", {"scale_factor": "0.1"}, "scale_factor must be a finite number"),
    ("stretch_squish", {"stretch_ratio": -0.1}, "stretch_ratio"),
    ("stretch_squish", {"stretch_ratio": float("nan")}, "stretch_ratio"),
    ("edge_sawtooth", {"low_threshold": -1}, "low_threshold"),
    ("edge_sawtooth", {"high_threshold": float("inf")}, "high_threshold"),
    ("edge_sawtooth", {"dilate_size": 0}, "dilate_size must be an int in \\[1, 15\\]"),
    ("edge_sawtooth", {"dilate_size": 2.0}, "dilate_size"),
    ("edge_sawtooth", {"surround_noise_ratio": 1.5}, "surround_noise_ratio"),
    ("elastic", {"alpha": -1.0}, "alpha"),
    ("elastic", {"sigma": 0.0}, "sigma must be > 0"),
    ("elastic", {"amplitude": None}, "amplitude must be a finite number"),
], ids=lambda v: v if isinstance(v, str) and " " not in v else None)
def test_bad_parameters_are_rejected_by_name(name, params, match):
    video = torch.zeros(4, 3, 16, 16, dtype=torch.uint8)
    with pytest.raises(ValueError, match=match):
        K.corrupt(video, name, 0.5, seed=0, **params)
    with pytest.raises(ValueError, match=match):
        K.corrupt(video, name, 0.0, seed=0, **params)
    _, p = K.corrupt(video, name, 0.5, seed=0, return_params=True)
    with pytest.raises(ValueError, match=match):
        K.apply_params(video, name, p, **params)


def test_hysteresis_equals_a_literal_flood_fill():
    """The edge-dropping union-find keeps exactly the weak pixels a BFS from the strong ones reaches."""
    import collections

    from nrvl.kernels.digital import _hysteresis

    def flood(strong, weak):
        out = strong.clone()
        M, H, W = weak.shape
        for m in range(M):
            seen = torch.zeros(H, W, dtype=torch.bool)
            q = collections.deque((int(i), int(j)) for i, j in zip(*torch.nonzero(strong[m], as_tuple=True)))
            while q:
                i, j = q.popleft()
                for a in (i - 1, i, i + 1):
                    for b in (j - 1, j, j + 1):
                        if 0 <= a < H and 0 <= b < W and weak[m, a, b] and not seen[a, b]:
                            seen[a, b] = True
                            out[m, a, b] = True
                            q.append((a, b))
        return out

    g = torch.Generator().manual_seed(1)
    for t in range(6):  # from sparse to nearly percolating weak sets, odd sizes
        mag = torch.rand(2, 29 + 3 * t, 41 + 2 * t, generator=g)
        strong = mag > 0.95
        weak = (mag > 0.6 - 0.05 * t) & ~strong
        assert torch.equal(_hysteresis(strong, weak), flood(strong, weak)), t
