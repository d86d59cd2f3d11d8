"""Batching pays: one call on 8 clips vs 8 calls, and the training augmentation per step."""
from __future__ import annotations

import pytest
import torch

import nrvl.kernels as K
from conftest import natural_clip

NOISES = ["gaussian", "contrast", "color_shift", "impulse"]
_clips = {}


def clips():
    if "b" not in _clips:
        _clips["b"] = torch.stack([natural_clip(T=8, H=224, W=224, seed=i) for i in range(8)])
    return _clips["b"]


@pytest.mark.parametrize("name", NOISES)
def test_batched_8_clips_one_call(benchmark, name):
    v = clips()
    seeds = torch.arange(8, dtype=torch.int64)
    benchmark.group = f"batching:{name}"
    benchmark.extra_info.update(noise=name, device="cpu", mode="batched", frames=64)
    benchmark.pedantic(lambda: K.corrupt(v, name, 0.9, seed=seeds), rounds=5, iterations=1, warmup_rounds=1)


@pytest.mark.parametrize("name", NOISES)
def test_per_clip_8_calls(benchmark, name):
    v = clips()
    seeds = torch.arange(8, dtype=torch.int64)

    def loop():
        return [K.corrupt(v[i], name, 0.9, seed=seeds[i:i + 1]) for i in range(8)]

    benchmark.group = f"batching:{name}"
    benchmark.extra_info.update(noise=name, device="cpu", mode="per-clip", frames=64)
    benchmark.pedantic(loop, rounds=5, iterations=1, warmup_rounds=1)


@pytest.mark.quick
def test_video_corruption_training_step(benchmark):
    """``VideoCorruption`` on a [16, 8, 3, 224, 224] uint8 batch, per step (all noises but target_block)."""
    v = torch.cat([clips(), clips()])
    aug = K.VideoCorruption(noises="all", ratios=(0.3, 0.6, 0.9), seed=0)
    benchmark.group = "training-augmentation"
    benchmark.extra_info.update(noise="VideoCorruption(all)", device="cpu", mode="eager", frames=128)
    benchmark.pedantic(lambda: aug(v), rounds=3, iterations=1, warmup_rounds=1)
