"""Throughput of every registered noise on one 8-frame (and 16-frame) 720p uint8 clip at ratio 0.9.

Run with ``make bench``; ``make bench-quick`` runs the 8-frame CPU eager subset.
Each result carries ``extra_info``: noise, device, mode, frames, and frames/s.
No timing is asserted anywhere.
"""
from __future__ import annotations

import pytest
import torch

import nrvl.kernels as K
from conftest import DEVICES, natural_clip, sync
from noise_inputs import extra_params

NAMES = K.list_noises()
_clips: dict = {}


def clip(T, device):
    key = (T, device)
    if key not in _clips:
        _clips[key] = natural_clip(T=T, device=device)
    return _clips[key]


def _bench(benchmark, name, T, device, mode):
    video = clip(T, device)
    kw = extra_params(name, video)
    K.set_compile("always" if mode == "compiled" else "never")
    try:
        def call():
            out = K.corrupt(video, name, 0.9, seed=0, **kw)
            sync(device)
            return out

        call()  # warm-up (and compilation in compiled mode)
        benchmark.group = f"{device}-{T}f-{mode}"
        benchmark.extra_info.update(noise=name, device=str(device), mode=mode, frames=T,
                                    height=video.shape[-2], width=video.shape[-1],
                                    device_name=torch.cuda.get_device_name() if device == "cuda" else "cpu")
        benchmark.pedantic(call, rounds=5 if device == "cpu" else 50, iterations=1, warmup_rounds=1)
    finally:
        K.set_compile("auto")


@pytest.mark.quick
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", NAMES)
def test_noise_8_frames(benchmark, name, device):
    _bench(benchmark, name, 8, device, "eager" if device == "cpu" else "compiled")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", NAMES)
def test_noise_16_frames(benchmark, name, device):
    _bench(benchmark, name, 16, device, "eager" if device == "cpu" else "compiled")


@pytest.mark.parametrize("name", [n for n in NAMES if K.NOISES[n].pointwise])
def test_noise_8_frames_cpu_compiled(benchmark, name):
    """The fused CPU path (inductor C++): one warm-up call pays the ~15 s compilation."""
    _bench(benchmark, name, 8, "cpu", "compiled")
