"""Glass blur's Triton shuffle equals its torch reference bit for bit (issue 3).

Runs the kernel under ``TRITON_INTERPRET=1`` on CPU tensors (conftest sets it when
there is no GPU), on odd sizes with big tiles, and compiled on CUDA when present.
"""
from __future__ import annotations

import os

import pytest
import torch

triton = pytest.importorskip("triton")

import nrvl.kernels as K
from nrvl.kernels import blur
from nrvl.kernels import random as rng

CAN_RUN = torch.cuda.is_available() or os.environ.get("TRITON_INTERPRET") == "1"
pytestmark = pytest.mark.skipif(not CAN_RUN, reason="needs a GPU or TRITON_INTERPRET=1")
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def keys(seed, n):
    return rng.keys(torch.tensor([seed]), "glass_blur/shuffle", torch.arange(n)[None]).reshape(n, 2).to(DEVICE)


@pytest.mark.parametrize("max_delta,iterations", [(4, 2), (1, 2), (3, 1)])
@pytest.mark.parametrize("seed", [0, 2**40 + 3])
def test_triton_shuffle_equals_reference(max_delta, iterations, seed):
    from nrvl.kernels.triton.glass import glass_shuffle_triton

    g = torch.Generator().manual_seed(seed % 1000)
    x = torch.randint(0, 256, (2, 3, 37, 53), generator=g).float().to(DEVICE)
    k = keys(seed, 2)
    table = blur.glass_offset_table(max_delta, iterations, DEVICE)
    ref = blur.glass_shuffle_reference(x, k, table)
    out = glass_shuffle_triton(x, k, table)
    assert torch.equal(out, ref)
    assert not torch.equal(out, x)


def test_triton_shuffle_takes_strided_and_uint8_input():
    from nrvl.kernels.triton.glass import glass_shuffle_triton

    g = torch.Generator().manual_seed(1)
    base = torch.randint(0, 256, (1, 3, 41, 66), generator=g, dtype=torch.uint8).to(DEVICE)
    x = base[..., 3:40, 5:58]  # a non-contiguous view, 37 x 53
    k = keys(5, 1)
    table = blur.glass_offset_table(4, 2, DEVICE)
    out = glass_shuffle_triton(x, k, table)
    assert out.dtype == torch.uint8 and out.is_contiguous()
    assert torch.equal(out, blur.glass_shuffle_reference(x.contiguous(), k, table))
    cl = x.float().contiguous(memory_format=torch.channels_last)
    assert torch.equal(glass_shuffle_triton(cl, k, table), blur.glass_shuffle_reference(x.float(), k, table))


def test_triton_shuffle_degenerate_sizes():
    from nrvl.kernels.triton.glass import glass_shuffle_triton

    table = blur.glass_offset_table(4, 2, DEVICE)
    for shape in ((0, 3, 10, 10), (1, 3, 1, 9), (2, 3, 9, 1)):
        x = torch.rand(shape, device=DEVICE)
        k = keys(0, shape[0])
        assert torch.equal(glass_shuffle_triton(x, k, table), blur.glass_shuffle_reference(x, k, table))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_glass_blur_on_cuda_uses_triton_and_matches_cpu():
    g = torch.Generator().manual_seed(3)
    video = torch.randint(0, 256, (2, 4, 3, 37, 53), generator=g, dtype=torch.uint8)
    cpu = K.corrupt(video, "glass_blur", 0.6, seed=9)
    gpu = K.corrupt(video.cuda(), "glass_blur", 0.6, seed=9).cpu()
    # The shuffle is bit-identical; the two Gaussians round differently on the two devices.
    assert (gpu.int() - cpu.int()).abs().max() <= 1
