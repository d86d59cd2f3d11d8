"""Batching pays: one call on 8 clips vs 8 calls, and the training augmentation per step."""
from __future__ import annotations

import pytest
import torch

import nrvl.kernels as K
from conftest import DEVICES, device_name, first_call, natural_clip, sync, timed
from noise_inputs import extra_params

NOISES = ["gaussian", "contrast", "color_shift", "impulse"]
_clips = {}
ROUNDS = {"cpu": 5, "cuda": 20}


def clips(device):
    if _clips.get("device") != device:
        _clips.update(device=device, b=torch.stack([natural_clip(T=8, H=224, W=224, seed=i) for i in range(8)]).to(device))
    return _clips["b"]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", NOISES)
def test_batched_8_clips_one_call(benchmark, name, device):
    v = clips(device)
    seeds = torch.arange(8, dtype=torch.int64)
    benchmark.group = f"batching:{name}:{device}"
    benchmark.extra_info.update(noise=name, device=device, device_name=device_name(device), mode="batched", frames=64)
    timed(benchmark, device, lambda: K.corrupt(v, name, 0.9, seed=seeds), ROUNDS[device])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", NOISES)
def test_per_clip_8_calls(benchmark, name, device):
    v = clips(device)
    seeds = torch.arange(8, dtype=torch.int64)
    benchmark.group = f"batching:{name}:{device}"
    benchmark.extra_info.update(noise=name, device=device, device_name=device_name(device), mode="per-clip", frames=64)
    timed(benchmark, device, lambda: [K.corrupt(v[i], name, 0.9, seed=seeds[i:i + 1]) for i in range(8)],
          ROUNDS[device])


@pytest.mark.quick
@pytest.mark.parametrize("device", DEVICES)
def test_video_corruption_training_step(benchmark, device):
    """``VideoCorruption`` on a [16, 8, 3, 224, 224] uint8 batch, per step (all noises but target_block).

    Eager, set explicitly (``set_compile("never")``): each step draws new (noise, ratio) groups of
    new sizes, and with ``auto`` on CUDA every noise compiles on its first groups (and again once
    shapes turn dynamic), which a long training run amortises but a few timed rounds would not.
    On CUDA every noise the module can draw is run once before the timing (Triton JIT, cuFFT
    plans, allocator), then three warm-up steps. ``first_call_ms`` is the first step of all.
    """
    v = torch.cat([clips(device), clips(device)])
    aug = K.VideoCorruption(noises="all", ratios=(0.3, 0.6, 0.9), seed=0)
    benchmark.group = f"training-augmentation:{device}"
    benchmark.extra_info.update(noise="VideoCorruption(all)", device=device, device_name=device_name(device),
                                mode="eager", frames=128)
    K.set_compile("never")
    try:
        if device == "cpu":
            timed(benchmark, device, lambda: aug(v), 3)
            return
        first_call(benchmark, lambda: (aug(v), sync(device)))
        seeds = torch.arange(2, dtype=torch.int64)
        for name in aug.noises:  # every noise it can draw, on a 2-clip group
            K.corrupt(v[:2], name, 0.9, seed=seeds, **extra_params(name, v[:2]))
        sync(device)
        benchmark.pedantic(lambda: (aug(v), sync(device)), rounds=10, iterations=1, warmup_rounds=3)
    finally:
        K.set_compile("auto")
