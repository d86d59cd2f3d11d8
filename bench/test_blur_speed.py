"""The glass-blur shuffle alone (issue 3); the whole-noise timings of the family are in test_kernels.py.

Targets (shown here, never asserted): <= 1.5 s median per noise on a 2-core CPU,
<= 1 ms per clip on an H100. ``test_glass_shuffle`` reports the shuffle's
throughput as GB/s of frame data moved (read + write of the float frames): the
torch reference also materialises about 40 B of int32/int64 temporaries per
pixel (bits, table entries, two coordinate maps, the gather index); the Triton
kernel reads 4 B of table per pixel (cached) and the C source values, and
writes C values. ``-m quick`` runs the CPU subset.
"""
from __future__ import annotations

import pytest
import torch
from conftest import DEVICES, device_name, first_call, natural_clip, sync
from nrvl.kernels import blur
from nrvl.kernels import random as rng

NAMES = ["gaussian_blur", "motion_blur", "defocus_blur", "glass_blur", "zoom_blur", "jpeg_artifact",
         "elastic", "resolution_degrade", "stretch_squish", "edge_sawtooth"]
_clips: dict = {}


def clip(device):
    if device not in _clips:
        _clips[device] = natural_clip(T=8, device=device)
    return _clips[device]


@pytest.mark.parametrize("device", DEVICES)
def test_glass_shuffle(benchmark, device):
    frames = clip(device)[:7].float()  # the 7 chosen frames, as the transform sees them
    M = frames.shape[0]
    key = rng.keys(torch.tensor([0]), "glass_blur/shuffle", torch.arange(M)[None]).reshape(M, 2).to(device)
    table = blur.glass_offset_table(4, 2, device)
    if device == "cuda":
        from nrvl.kernels.triton.glass import glass_shuffle_triton as shuffle
    else:
        shuffle = blur.glass_shuffle_reference

    def call():
        out = shuffle(frames, key, table)
        sync(device)
        return out

    first_call(benchmark, call)  # the warm-up (Triton's JIT on CUDA), timed
    benchmark.group = f"glass-shuffle-{device}"
    benchmark.extra_info.update(device=str(device), device_name=device_name(device),
                                impl="triton" if device == "cuda" else "torch",
                                bytes_moved=2 * frames.numel() * frames.element_size())
    benchmark.pedantic(call, rounds=5 if device == "cpu" else 50, iterations=1, warmup_rounds=1)
    if benchmark.stats:
        mean = benchmark.stats.stats.mean
        benchmark.extra_info["GB/s"] = round(benchmark.extra_info["bytes_moved"] / mean / 1e9, 2)
