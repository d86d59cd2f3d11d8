"""Batching pays: one call on 8 clips vs 8 calls, and the training augmentation per step."""
from __future__ import annotations

import pytest
import torch

import nrvl.kernels as K
from conftest import DEVICES, device_name, natural_clip, timed

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
    """``VideoCorruption`` on a [16, 8, 3, 224, 224] uint8 batch, per step (all noises but target_block)."""
    v = torch.cat([clips(device), clips(device)])
    aug = K.VideoCorruption(noises="all", ratios=(0.3, 0.6, 0.9), seed=0)
    benchmark.group = f"training-augmentation:{device}"
    benchmark.extra_info.update(noise="VideoCorruption(all)", device=device, device_name=device_name(device), mode="eager", frames=128)
    timed(benchmark, device, lambda: aug(v), 3 if device == "cpu" else 10)
