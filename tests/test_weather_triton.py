"""Triton rain and snow kernels against their torch references, same seeds (issue 4).

Runs under ``TRITON_INTERPRET=1`` on CPU tensors (conftest sets it when there is no
GPU) on odd sizes with big tiles, and compiled on CUDA when a GPU is present.
"""
from __future__ import annotations

import pytest
import torch

pytest.importorskip("triton")

import nrvl.kernels as K  # noqa: E402
from nrvl.kernels import random as rng  # noqa: E402
from nrvl.kernels import weather as Wm  # noqa: E402
from nrvl.kernels.triton.rain import rain_streaks_triton  # noqa: E402
from nrvl.kernels.triton.snow import snow_blur_triton, snow_field_triton  # noqa: E402

DEV = "cuda" if torch.cuda.is_available() else "cpu"


@pytest.mark.parametrize("H,W,length,slant", [(37, 53, 22, 0.13), (20, 31, 8, 0.05), (5, 70, 22, 0.13)],
                         ids=["37x53", "20x31-sev1", "5x70-clipped"])
def test_rain_kernel_is_bit_identical_to_the_torch_reference(H, W, length, slant):
    key = rng.keys(torch.tensor([5, -7, 2**40], device=DEV), "rainy/drops")
    n, lo, span, dx = Wm.rain_geometry(H, W, slant=slant, drop_length=length, density=5, device=DEV)
    ref = Wm.rain_streaks_torch(key, H, W, n_drops=n, len_lo=lo, len_span=span, dx_table=dx)
    tri = rain_streaks_triton(key, H, W, n_drops=n, len_lo=lo, len_span=span, dx_table=dx)
    assert torch.equal(tri, ref)
    assert (ref > 0).any() and ref.max() <= 0.7


def test_rain_kernel_small_blocks_match_too():
    key = rng.keys(torch.tensor([1], device=DEV), "rainy/drops")
    n, lo, span, dx = Wm.rain_geometry(37, 53, slant=0.13, drop_length=22, density=5, device=DEV)
    a = rain_streaks_triton(key, 37, 53, n_drops=n, len_lo=lo, len_span=span, dx_table=dx, block=32)
    b = Wm.rain_streaks_torch(key, 37, 53, n_drops=n, len_lo=lo, len_span=span, dx_table=dx)
    assert torch.equal(a, b)


def test_rain_map_dispatch_gives_the_same_map():
    key = rng.keys(torch.tensor([9, 10], device=DEV), "rainy/drops")
    kw = dict(slant=0.13, drop_length=22, density=5, blur_sigma=0.5)
    assert torch.equal(Wm.rain_map(key, 37, 53, use_triton=True, **kw), Wm.rain_map(key, 37, 53, use_triton=False, **kw))


def _snow_inputs(H=37, W=53, zoom=2.5):
    key = rng.keys(torch.tensor([1, 2, 3], device=DEV), "snow/flakes")
    angle = torch.tensor([-134.0, -90.0, -47.0], device=DEV)
    return key, angle, Wm._zoom_geometry(H, W, zoom)


def test_snow_field_kernel_matches_the_reference():
    key, _, (ch, cw, Hz, Wz, sy, sx) = _snow_inputs()
    kw = dict(mean=0.55, std=0.3, threshold=0.85)
    ref = Wm.snow_field_torch(key, ch, cw, Hz, Wz, sy, sx, **kw)
    tri = snow_field_triton(key, ch, cw, Hz, Wz, sy, sx, **kw)
    # Box-Muller's log/cos differ by ~1 float32 ulp between Triton/NumPy and torch.
    assert torch.allclose(tri, ref, atol=1e-6, rtol=0)
    assert (ref > 0).any() and (ref == 0).any()


def test_snow_blur_kernel_matches_the_fft_reference():
    key, angle, (ch, cw, Hz, Wz, sy, sx) = _snow_inputs()
    field = Wm.snow_field_torch(key, ch, cw, Hz, Wz, sy, sx, mean=0.55, std=0.3, threshold=0.85)
    dy, dx, w = Wm.snow_taps(angle, Hz, Wz, radius=12, sigma=12.0)
    ref = Wm.snow_blur_torch(field, dy, dx, w, 37, 53)
    tri = snow_blur_triton(field, dy, dx, w, 37, 53)
    assert torch.allclose(tri, ref, atol=1e-5, rtol=0)


def test_snow_layer_paths_agree_to_a_rare_quantization_step():
    key, angle, _ = _snow_inputs()
    kw = dict(mean=0.55, std=0.3, zoom=2.5, threshold=0.85, radius=12, sigma=12.0)
    a = Wm.snow_layer(key, angle, 37, 53, use_triton=True, **kw)
    b = Wm.snow_layer(key, angle, 37, 53, use_triton=False, **kw)
    diff = (a - b).abs()
    assert diff.max() <= 1 / 255 + 1e-6 and (diff > 0).float().mean() < 1e-3


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_corrupt_on_cuda_uses_the_kernels_and_matches_cpu():
    g = torch.Generator().manual_seed(0)
    video = torch.randint(0, 256, (2, 4, 3, 37, 53), generator=g, dtype=torch.uint8)
    seeds = torch.tensor([3, 4])
    for name in ("rainy", "snow"):
        cpu = K.corrupt(video, name, 0.5, seed=seeds)
        gpu = K.corrupt(video.cuda(), name, 0.5, seed=seeds.cuda()).cpu()
        assert (cpu.int() - gpu.int()).abs().max() <= 1
