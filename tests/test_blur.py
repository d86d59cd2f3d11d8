"""The maths of the blur family and jpeg_artifact against the reference (nrvl-noises.md 2.1, issue 3).

The registry-wide contract (shapes, dtypes, seeds, batching) is in test_contract.py;
here: kernels equal the reference's, borders, zoom factors, the glass shuffle's
statistics against a literal sequential implementation, JPEG, bad parameters.
"""
from __future__ import annotations

import io
import math

import nrvl.kernels as K
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from nrvl.kernels import blur
from nrvl.kernels import random as rng
from nrvl.kernels._filters import fft_correlate2d, gaussian_kernel1d, gaussian_radius, separable_correlate2d


def frames_of(out, params):
    """The chosen frames of clip 0, float ``[n, C, H, W]``."""
    return out[0, params["frame_idx"][0]].double()


# ----------------------------------------------------------------------------- gaussian_blur


def reference_gaussian_kernel(kernel_size, sigma):
    """The reference's construction, literally: float32 linspace grid, dense exp, normalised."""
    ax = torch.linspace(-(kernel_size - 1) // 2, (kernel_size - 1) // 2, steps=kernel_size)
    xx, yy = torch.meshgrid(ax, ax, indexing="ij")
    k = torch.exp(-(xx ** 2 + yy ** 2) / (2 * sigma ** 2))
    return k / k.sum()


def test_gaussian_kernel_is_the_references():
    k = blur.gaussian_kernel2d(101, 20.0)
    ref = reference_gaussian_kernel(101, 20.0).double()
    assert k.shape == (101, 101)
    assert torch.allclose(k, ref, rtol=1e-5, atol=1e-10)
    assert abs(float(k.sum()) - 1.0) < 1e-12
    assert torch.equal(k, k.t()) and torch.equal(k, k.flip(0)) and torch.equal(k, k.flip(1))
    assert int(k.argmax()) == 50 * 101 + 50 and float(k.min()) > 0  # full 101x101 support
    assert torch.allclose(blur.gaussian_kernel2d(21, 3.0), reference_gaussian_kernel(21, 3.0).double(), rtol=1e-5)


def test_gaussian_blur_equals_dense_zero_padded_conv():
    g = torch.Generator().manual_seed(0)
    video = torch.rand(1, 2, 3, 40, 57, generator=g) * 255
    out = K.corrupt(video, "gaussian_blur", 1.0, seed=0, kernel_size=21, sigma=5.0)
    k = reference_gaussian_kernel(21, 5.0).double()
    x = video[0].double().reshape(6, 1, 40, 57)
    ref = F.conv2d(x, k.view(1, 1, 21, 21), padding=10).reshape(2, 3, 40, 57).clamp(0, 255)
    assert (out[0].double() - ref).abs().max() < 1e-3


def test_gaussian_blur_darkens_the_border_like_zero_padding():
    video = torch.full((1, 1, 3, 160, 200), 200.0)
    out = K.corrupt(video, "gaussian_blur", 1.0, seed=0)[0, 0, 0].double()
    g = gaussian_kernel1d(20.0, 50)
    half = float(g[50:].sum())  # the kernel mass that stays inside at an edge
    assert abs(float(out[80, 100]) - 200.0) < 1e-3  # >= 50 px from every border: untouched
    assert abs(float(out[80, 0]) - 200.0 * half) < 1e-3  # edge: about half brightness
    assert abs(float(out[0, 0]) - 200.0 * half * half) < 1e-3  # corner: about a quarter
    assert 95 < float(out[80, 0]) < 110 and 45 < float(out[0, 0]) < 60


# ----------------------------------------------------------------------------- motion_blur


def reference_motion_kernel(kernel_size, angle):
    """The reference's construction, literally (float32, cells set to 1, normalised)."""
    kernel = torch.zeros((kernel_size, kernel_size))
    center = (kernel_size - 1) // 2
    theta = math.radians(angle)
    dx, dy = math.cos(theta), math.sin(theta)
    for i in range(kernel_size):
        x = int(center + (i - center) * dx)
        y = int(center + (i - center) * dy)
        if 0 <= x < kernel_size and 0 <= y < kernel_size:
            kernel[x, y] = 1
    if kernel.sum() == 0:
        kernel[center, center] = 1
    return kernel / kernel.sum()


def test_motion_kernel_has_the_72_diagonal_cells():
    k = blur.motion_kernel(101, 45.0)
    cells = (k > 0).nonzero().tolist()
    assert len(cells) == 72
    assert cells == [[r, r] for r in range(14, 86)]
    assert torch.allclose(k[k > 0], torch.full((72,), 1 / 72, dtype=torch.float64))
    assert torch.allclose(k, reference_motion_kernel(101, 45.0).double(), atol=1e-9)


@pytest.mark.parametrize("size,angle", [(101, 0.0), (101, 30.0), (101, 90.0), (101, 135.0), (21, -20.0),
                                        (15, 45.0), (3, 200.0), (1, 10.0)])
def test_motion_kernel_matches_the_reference_for_other_angles(size, angle):
    assert torch.allclose(blur.motion_kernel(size, angle), reference_motion_kernel(size, angle).double(), atol=1e-9)


@pytest.mark.parametrize("angle", [45.0, 30.0])
def test_motion_blur_equals_dense_zero_padded_conv(angle):
    g = torch.Generator().manual_seed(1)
    video = torch.rand(1, 2, 3, 48, 64, generator=g) * 255
    out = K.corrupt(video, "motion_blur", 1.0, seed=0, kernel_size=21, angle=angle)
    k = reference_motion_kernel(21, angle).double()
    ref = F.conv2d(video[0].double().reshape(6, 1, 48, 64), k.view(1, 1, 21, 21), padding=10).reshape(2, 3, 48, 64)
    assert (out[0].double() - ref).abs().max() < 1e-3


def test_motion_blur_smears_along_the_diagonal_and_darkens_borders():
    video = torch.zeros(1, 1, 3, 240, 240)
    video[..., 120, 120] = 255 * 72.0  # one bright dot, smeared over 72 cells of 1/72
    out = K.corrupt(video, "motion_blur", 1.0, seed=0)[0, 0, 0].double()
    nz = (out > 1).nonzero().tolist()
    assert len(nz) == 72 and all(r - c == 0 for r, c in nz)  # a 45-degree line
    assert {r for r, _ in nz} == set(range(120 - 35, 120 + 37))  # 36 px on one side, 35 on the other
    flat = K.corrupt(torch.full((1, 1, 3, 240, 240), 144.0), "motion_blur", 1.0, seed=0)[0, 0, 0].double()
    assert abs(float(flat[120, 120]) - 144) < 1e-3 and abs(float(flat[0, 0]) - 144 * 36 / 72) < 1e-3


# ----------------------------------------------------------------------------- defocus_blur


def reference_disk(radius, alias_blur):
    """ImageNet-C's disk() with cv2.GaussianBlur written out in NumPy (reflect-101 borders)."""
    if radius <= 8:
        L, ksize = np.arange(-8, 8 + 1), 3
    else:
        L, ksize = np.arange(-radius, radius + 1), 5
    X, Y = np.meshgrid(L, L)
    disk = np.array((X ** 2 + Y ** 2) <= radius ** 2, dtype=np.float32)
    disk /= np.sum(disk)
    r = ksize // 2
    t = np.arange(-r, r + 1)
    g = np.exp(-t ** 2 / (2 * alias_blur ** 2))
    g /= g.sum()
    p = np.pad(disk.astype(np.float64), r, mode="reflect")  # numpy 'reflect' is OpenCV's REFLECT_101
    n = disk.shape[0]
    out = np.zeros_like(disk, dtype=np.float64)
    for i in range(ksize):
        for j in range(ksize):
            out += g[i] * g[j] * p[i:i + n, j:j + n]
    return out.astype(np.float32)


@pytest.mark.parametrize("radius,alias", [(10, 0.5), (8, 0.5), (3, 0.1), (6, 0.5)])
def test_disk_kernel_is_imagenet_c(radius, alias):
    k = blur.disk_kernel(radius, alias)
    ref = torch.from_numpy(reference_disk(radius, alias))
    assert k.shape == ref.shape
    assert torch.allclose(k, ref, atol=1e-7)
    assert torch.equal(k, k.t()) and torch.equal(k, k.flip(0))


def test_disk_kernel_radius_10_geometry():
    L = torch.arange(-10, 11)
    assert int(((L[:, None] ** 2 + L[None, :] ** 2) <= 100).sum()) == 317
    k = blur.disk_kernel(10, 0.5)
    # The reference's anti-alias blur reflects (REFLECT_101) the disk's four tips at the
    # grid edge back in, so its kernel sums to 1.0108: defocus brightens by 1.1%, as there.
    assert k.shape == (21, 21) and abs(float(k.double().sum()) - 1.0108) < 1e-4
    assert float(k[10, 10]) == pytest.approx(1 / 317, rel=1e-3)  # the flat middle of the disk


def test_defocus_blur_equals_dense_reflect101_conv():
    g = torch.Generator().manual_seed(2)
    video = torch.rand(1, 2, 3, 40, 45, generator=g) * 255
    out = K.corrupt(video, "defocus_blur", 1.0, seed=0)
    k = blur.disk_kernel(10, 0.5).double()
    x = F.pad(video[0].double().reshape(6, 1, 40, 45), (10, 10, 10, 10), mode="reflect")
    ref = F.conv2d(x, k.view(1, 1, 21, 21)).reshape(2, 3, 40, 45).clamp(0, 255)
    assert (out[0].double() - ref).abs().max() < 1e-3
    flat = K.corrupt(torch.full((1, 1, 3, 30, 30), 90.0), "defocus_blur", 1.0, seed=0)
    assert (flat - 90.0 * float(k.sum())).abs().max() < 1e-3  # reflect-101: no dark border


# ----------------------------------------------------------------------------- zoom_blur


def test_zoom_factors_are_numpys():
    assert blur.zoom_factors() == np.arange(1, 1.31, 0.03).tolist()
    assert len(blur.zoom_factors()) == 11
    assert blur.zoom_factors()[-1] == pytest.approx(1.3)
    for spec in K.NOISES["zoom_blur"].severities:
        assert blur.zoom_factors(spec["zooms"]) == np.arange(*spec["zooms"]).tolist()
    assert len(blur.zoom_factors((1.0, 1.5, 0.01))) == 10  # 50 factors thinned to every 5th


def test_zoom_blur_on_a_ramp_matches_the_closed_form():
    # Bilinear resizing reproduces a linear ramp exactly, so every zoom of x -> x is
    # known: column j of a crop starting at `left` with width zw, stretched to W, reads
    # left + (j + 0.5) * zw / W - 0.5. The mean over the frame (twice: the copy and
    # zoom 1.00) and the 10 other zooms is then a closed form.
    H, W = 60, 400
    ramp = torch.arange(W, dtype=torch.float32).expand(1, 1, 3, H, W) * (255.0 / (W - 1))
    out = K.corrupt(ramp, "zoom_blur", 1.0, seed=0)[0, 0, 0].double()
    j = torch.arange(W, dtype=torch.float64)
    acc = j.clone()
    for z in blur.zoom_factors():
        zw = int(W / z)
        left = (W - zw) // 2
        acc = acc + (left + (j + 0.5) * zw / W - 0.5).clamp(left, left + zw - 1)
    expected = acc / 12 * (255.0 / (W - 1))
    assert (out[H // 2] - expected).abs().max() < 1e-3
    assert (out - out[H // 2]).abs().max() < 1e-3  # a horizontal ramp stays one


def test_zoom_blur_keeps_the_centre_and_streaks_outward():
    video = torch.zeros(1, 1, 3, 101, 101)
    video[..., 50, 50] = 255.0
    video[..., 50, 80] = 255.0
    out = K.corrupt(video, "zoom_blur", 1.0, seed=0)[0, 0, 0].double()
    assert float(out[50, 50]) > 255 * 2 / 12 - 1e-3  # the centre is a fixed point of every zoom
    row = out[50]
    # zoom z shows source column 80 at 50 + 30 z, i.e. columns 80..89: a streak away from the centre
    assert float(row[52:80].abs().max()) < 1e-3
    assert float(row[81:90].min()) > 1 and float(row[91:].abs().max()) < 1e-3


# ----------------------------------------------------------------------------- glass_blur


def literal_glass_shuffle(image, max_delta, iterations, rng_np):
    """The reference's sequential swaps, literally: [H, W] int array in, shuffled copy out."""
    x = image.tolist()
    H, W = image.shape
    for _ in range(iterations):
        for h in range(H - max_delta, max_delta, -1):
            for w in range(W - max_delta, max_delta, -1):
                dx, dy = rng_np.integers(-max_delta, max_delta, size=2)
                hp, wp = h + dy, w + dx
                x[h][w], x[hp][wp] = x[hp][wp], x[h][w]
    return np.array(x)


def parallel_shuffle_ids(n_frames, H, W, max_delta, iterations, seed=0):
    ids = torch.arange(H * W, dtype=torch.float32).reshape(1, 1, H, W).expand(n_frames, 1, H, W)
    key = rng.keys(torch.tensor([seed]), "glass_blur/shuffle", torch.arange(n_frames)[None]).reshape(n_frames, 2)
    table = blur.glass_offset_table(max_delta, iterations, "cpu")
    return blur.glass_shuffle_reference(ids, key, table)[:, 0].long().numpy()


def travel(src, H, W, region):
    """Source offsets (dy, dx) of the output pixels in ``region`` (a boolean [H, W] mask)."""
    yy, xx = np.divmod(np.arange(H * W).reshape(H, W), W)
    sy, sx = np.divmod(src, W)
    return (sy - yy)[..., region], (sx - xx)[..., region]


@pytest.mark.parametrize("max_delta,iterations,frames", [(4, 2, 40), (2, 1, 30)])
def test_parallel_shuffle_keeps_the_sequential_travel_distribution(max_delta, iterations, frames):
    H = W = 64
    rng_np = np.random.default_rng(123)
    ids = np.arange(H * W).reshape(H, W)
    lit = np.stack([literal_glass_shuffle(ids, max_delta, iterations, rng_np) for _ in range(frames)])
    par = parallel_shuffle_ids(frames, H, W, max_delta, iterations)
    inner = np.zeros((H, W), dtype=bool)
    inner[16:48, 16:48] = True  # away from the borders, where the reference's law is stationary
    (ly, lx), (py, px) = travel(lit, H, W, inner), travel(par, H, W, inner)
    ld, pd = np.hypot(ly, lx).ravel(), np.hypot(py, px).ravel()
    bins = np.arange(0, 41)
    hl = np.histogram(ld, bins)[0] / ld.size
    hp = np.histogram(pd, bins)[0] / pd.size
    assert 0.5 * np.abs(hl - hp).sum() < 0.04, "travel-distance distributions differ"
    assert abs(pd.mean() / ld.mean() - 1) < 0.04
    for a, b in ((ly, py), (lx, px)):
        assert abs(b.std() / a.std() - 1) < 0.05 and abs(b.mean() - a.mean()) < 0.3
    # the law itself, not just its sample, agrees: same quantiles of the distance
    assert np.allclose(np.quantile(pd, [0.25, 0.5, 0.75, 0.95]), np.quantile(ld, [0.25, 0.5, 0.75, 0.95]), atol=1.0)


def test_parallel_shuffle_border_rule_matches_the_reference():
    H, W = 40, 50
    rng_np = np.random.default_rng(5)
    ids = np.arange(H * W).reshape(H, W)
    lit = literal_glass_shuffle(ids, 4, 2, rng_np)
    par = parallel_shuffle_ids(3, H, W, 4, 2)
    for img in (lit[None], par):
        assert (img[:, 0, :] == ids[0]).all() and (img[:, :, 0] == ids[:, 0]).all()  # never touched
        sy, sx = np.divmod(img[:, 1:, 1:], W)
        assert (sy >= 1).all() and (sx >= 1).all()  # sources come from rows/columns 1.. only
    tiny = parallel_shuffle_ids(1, 8, 30, 4, 2)  # H <= 2*max_delta: the sweep visits nothing
    assert (blur.glass_shuffle(torch.zeros(1, 1, 8, 30), torch.zeros(1, 2, dtype=torch.int32), 4, 2) == 0).all()
    assert tiny.shape == (1, 8, 30)


def test_offset_table_draws_the_sequential_law():
    S, (oy, ox) = blur.glass_source_law(4, 2)
    assert abs(float(S.sum()) - 1) < 1e-9 and float(S.min()) >= 0
    table = blur.glass_offset_table(4, 2, "cpu")
    dy = (table >> 16).double()
    dx = ((table & 0xFFFF) - 32768).double()
    ys = torch.arange(S.shape[0], dtype=torch.float64) - oy
    xs = torch.arange(S.shape[1], dtype=torch.float64) - ox
    law_dy = (S.sum(1) * ys).sum(), ((S.sum(1) * ys ** 2).sum()) ** 0.5
    law_dx = (S.sum(0) * xs).sum(), ((S.sum(0) * xs ** 2).sum()) ** 0.5
    assert abs(float(dy.mean() - law_dy[0])) < 1e-3 and abs(float(dy.pow(2).mean().sqrt() - law_dy[1])) < 1e-3
    assert abs(float(dx.mean() - law_dx[0])) < 1e-3 and abs(float(dx.pow(2).mean().sqrt() - law_dx[1])) < 1e-3
    # the reference's skew: a source at most 2*max_delta rows above, a long tail below
    assert int(dy.min()) == -8 and int(dy.max()) > 30
    assert 4.5 < float(dy.std()) < 4.8 and 4.6 < float(dx.std()) < 4.95


def radial_power(img):
    """Mean power per radial frequency band of ``[N, H, W]`` images (mean removed per image)."""
    f = np.fft.fft2(img - img.mean(axis=(-2, -1), keepdims=True))
    p = (np.abs(f) ** 2).mean(0)
    H, W = p.shape
    r = np.hypot(np.fft.fftfreq(H)[:, None], np.fft.fftfreq(W)[None, :])
    edges = np.linspace(0, 0.5, 9)
    return np.array([p[(r >= edges[i]) & (r < edges[i + 1])].mean() for i in range(len(edges) - 1)])


def test_glass_blur_spectrum_matches_the_sequential_shuffle():
    # The whole glass blur (Gaussian, uint8, shuffle, Gaussian) with the literal
    # sequential shuffle vs ours, on 64x64 blocky images; spectra of the central 32x32.
    H = W = 64
    n = 32
    g = torch.Generator().manual_seed(0)
    base = F.interpolate(torch.rand(n, 1, 8, 8, generator=g), size=(H, W), mode="nearest") * 200 + 25
    base = base.expand(n, 3, H, W).contiguous()
    k = gaussian_kernel1d(1.5, gaussian_radius(1.5, 4.0))
    pre = separable_correlate2d(base, k, k, "replicate").clamp(0, 255).round()
    rng_np = np.random.default_rng(7)
    shuffled = np.stack([literal_glass_shuffle(pre[i, 0].numpy(), 4, 2, rng_np) for i in range(n)])
    literal = separable_correlate2d(torch.from_numpy(shuffled).float()[:, None], k, k, "replicate")[:, 0].numpy()
    ours = K.corrupt(base[None], "glass_blur", 1.0, seed=torch.tensor([11]))[0, :, 0].double().numpy()
    unshuffled = separable_correlate2d(pre, k, k, "replicate")[:, 0].numpy()
    c = slice(16, 48)
    pl, po, pu = (radial_power(a[:, c, c]) for a in (literal, ours, unshuffled))
    assert np.all(np.abs(po / pl - 1) < 0.15), f"spectra differ: ours/literal = {po / pl}"
    assert np.any(np.abs(pu / pl - 1) > 0.3)  # and the test can tell a shuffle from none


def test_glass_blur_gaussian_is_skimages():
    # skimage.filters.gaussian(sigma=1.5): truncate 4 -> radius int(6.5) = 6, mode 'nearest'.
    assert gaussian_radius(1.5, 4.0) == 6 and gaussian_radius(0.7, 4.0) == 3
    k = gaussian_kernel1d(1.5, 6)
    t = torch.arange(-6, 7, dtype=torch.float64)
    assert torch.allclose(k, torch.exp(-t ** 2 / 4.5) / torch.exp(-t ** 2 / 4.5).sum())
    flat = torch.full((1, 1, 3, 30, 40), 77.0)
    assert torch.equal(K.corrupt(flat, "glass_blur", 1.0, seed=0), flat)  # replicate borders: no drift


def test_glass_blur_moves_pixels_but_keeps_the_mean():
    g = torch.Generator().manual_seed(4)
    video = (F.interpolate(torch.rand(1, 3, 6, 8, generator=g), size=(60, 80), mode="bilinear") * 255)[None]
    out = K.corrupt(video, "glass_blur", 1.0, seed=2)
    assert not torch.equal(out, video)
    assert (out.mean((-1, -2)) - video.mean((-1, -2))).abs().max() < 2  # a local shuffle moves, not adds


# ----------------------------------------------------------------------------- jpeg_artifact


def test_jpeg_is_pils_quality_1_round_trip():
    Image = pytest.importorskip("PIL.Image")
    g = torch.Generator().manual_seed(0)
    smooth = F.interpolate(torch.rand(1, 3, 6, 10, generator=g) * 255, size=(48, 80), mode="bicubic")
    video = (smooth + torch.rand(1, 3, 48, 80, generator=g) * 30).clamp(0, 255).round().to(torch.uint8)[None]
    out = K.corrupt(video, "jpeg_artifact", 1.0, seed=0)
    buf = io.BytesIO()
    Image.fromarray(video[0, 0].permute(1, 2, 0).numpy()).save(buf, "JPEG", quality=1)
    buf.seek(0)
    pil = torch.from_numpy(np.array(Image.open(buf).convert("RGB"))).permute(2, 0, 1)
    assert torch.equal(out[0, 0], pil)


def test_jpeg_output_has_8x8_block_structure_and_differs():
    H, W = 64, 96
    yy, xx = torch.meshgrid(torch.arange(H, dtype=torch.float32), torch.arange(W, dtype=torch.float32),
                            indexing="ij")
    img = 128 + 60 * torch.sin(xx / 7.0) * torch.cos(yy / 9.0) + xx * 0.5
    video = img.clamp(0, 255).round().to(torch.uint8).expand(1, 1, 3, H, W).contiguous()
    out = K.corrupt(video, "jpeg_artifact", 1.0, seed=0)
    assert not torch.equal(out, video)
    y = out[0, 0, 1].double()
    jump = (y[:, 1:] - y[:, :-1]).abs().mean(0)  # mean |difference| between column j and j+1
    at_edges = jump[7::8].mean()  # block boundaries 7|8, 15|16, ...
    inside = torch.cat([jump[i::8] for i in range(7)]).mean()
    assert at_edges > 2 * inside, "no 8x8 block boundaries"
    mild = K.corrupt(video, "jpeg_artifact", 1.0, seed=0, severity=1)  # quality 25
    assert (mild.double() - video.double()).abs().mean() < (out.double() - video.double()).abs().mean()


def test_jpeg_float_input_is_rounded_to_uint8_first():
    g = torch.Generator().manual_seed(3)
    video = torch.rand(1, 2, 3, 16, 24, generator=g) * 255
    a = K.corrupt(video, "jpeg_artifact", 1.0, seed=0)
    b = K.corrupt(video.round().to(torch.uint8), "jpeg_artifact", 1.0, seed=0)
    assert a.dtype == torch.float32 and torch.equal(a, b.float())


# ----------------------------------------------------------------------------- filters


@pytest.mark.parametrize("mode,torch_mode", [("zeros", "constant"), ("reflect101", "reflect"),
                                             ("replicate", "replicate")])
def test_separable_and_fft_filters_equal_dense_conv(mode, torch_mode):
    g = torch.Generator().manual_seed(9)
    x = torch.rand(2, 3, 23, 31, generator=g, dtype=torch.float64) * 255
    kh, kw = torch.rand(7, dtype=torch.float64, generator=g), torch.rand(11, dtype=torch.float64, generator=g)
    xp = F.pad(x.reshape(6, 1, 23, 31), (5, 5, 3, 3), mode=torch_mode)
    ref = F.conv2d(xp, torch.outer(kh, kw).view(1, 1, 7, 11)).reshape(2, 3, 23, 31)
    assert (separable_correlate2d(x, kh, kw, mode) - ref).abs().max() < 1e-9
    assert (fft_correlate2d(x, torch.outer(kh, kw), mode) - ref).abs().max() < 1e-8


def test_symmetric_padding_is_scipys_reflect_and_works_past_the_frame():
    from nrvl.kernels._filters import pad2d
    a = torch.arange(5.0).view(1, 5)
    assert pad2d(a, 0, 0, 7, 7, "symmetric")[0].tolist() == np.pad(np.arange(5.0), 7, mode="symmetric").tolist()
    assert pad2d(a, 0, 0, 7, 7, "reflect101")[0].tolist() == np.pad(np.arange(5.0), 7, mode="reflect").tolist()
    assert pad2d(a, 0, 0, 2, 2, "replicate")[0].tolist() == [0, 0, 0, 1, 2, 3, 4, 4, 4]


def test_tiny_frames_do_not_crash():
    for name in ("gaussian_blur", "motion_blur", "defocus_blur", "glass_blur", "zoom_blur", "jpeg_artifact"):
        for h, w in ((1, 1), (2, 7), (9, 3)):
            v = torch.randint(0, 256, (2, 3, h, w), dtype=torch.uint8)
            assert K.corrupt(v, name, 1.0, seed=0).shape == v.shape


# ----------------------------------------------------------------------------- bad parameters


@pytest.mark.parametrize("name,params,match", [
    ("gaussian_blur", {"kernel_size": 100}, "kernel_size must be an odd int"),
    ("gaussian_blur", {"kernel_size": 0}, "kernel_size"),
    ("gaussian_blur", {"kernel_size": 5.0}, "kernel_size must be an int"),
    ("gaussian_blur", {"sigma": 0.0}, "sigma must be > 0"),
    ("gaussian_blur", {"sigma": float("nan")}, "sigma must be a finite number"),
    ("motion_blur", {"kernel_size": 4}, "kernel_size"),
    ("motion_blur", {"angle": float("inf")}, "angle must be a finite number"),
    ("motion_blur", {"angle": "45"}, "angle"),
    ("defocus_blur", {"radius": -1}, "radius"),
    ("defocus_blur", {"radius": 2.5}, "radius must be an int"),
    ("defocus_blur", {"alias_blur": 0}, "alias_blur must be > 0"),
    ("glass_blur", {"max_delta": 0}, "max_delta must be an int in \\[1, 8\\]"),
    ("glass_blur", {"max_delta": 9}, "max_delta"),
    ("glass_blur", {"iterations": -1}, "iterations"),
    ("glass_blur", {"sigma": -1.5}, "sigma"),
    ("zoom_blur", {"zooms": (1.0, 1.31)}, "zooms must be a \\(start, stop, step\\) triple"),
    ("zoom_blur", {"zooms": (0.5, 1.31, 0.03)}, "start"),
    ("zoom_blur", {"zooms": (1.0, 1.31, 0.0)}, "step"),
    ("zoom_blur", {"zooms": (1.2, 1.1, 0.01)}, "stop"),
    ("jpeg_artifact", {"quality": 0}, "quality must be an int in \\[1, 100\\]"),
    ("jpeg_artifact", {"quality": 101}, "quality"),
    ("jpeg_artifact", {"quality": 50.0}, "quality"),
], ids=lambda v: v if isinstance(v, str) and " " not in v else None)
def test_bad_parameters_are_rejected_by_name(name, params, match):
    video = torch.zeros(4, 3, 16, 16, dtype=torch.uint8)
    with pytest.raises(ValueError, match=match):
        K.corrupt(video, name, 0.5, seed=0, **params)
    with pytest.raises(ValueError, match=match):  # also at ratio 0, where no frame is transformed
        K.corrupt(video, name, 0.0, seed=0, **params)
    _, p = K.corrupt(video, name, 0.5, seed=0, return_params=True)
    with pytest.raises(ValueError, match=match):  # and when replaying params
        K.apply_params(video, name, p, **params)
