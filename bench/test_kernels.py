"""Throughput of every registered noise on uint8 clips at ratio 0.9.

* CPU: one 8-frame and one 16-frame 1280x720 clip in the default mode (``NRVL_COMPILE=auto``: the fused
  compiled path for pointwise noises on clips this size, eager torch otherwise), plus the
  eager reference of the pointwise noises. ``NRVL_BENCH_FULL=1`` adds 1080p.
* CUDA (when present): 8 and 16 frames at 720p and 1080p, timed with CUDA events after a
  warm-up, with the peak extra memory and the ratio to the copy-bandwidth floor (one read
  and one write of the clip at the bandwidth of a device-to-device copy, measured in the
  same run).

Each result carries ``extra_info`` (noise, device, mode, frames, size, frames/s ...). No
timing is asserted anywhere.
"""
from __future__ import annotations

import math
import os

import pytest
import torch

import nrvl.kernels as K
from conftest import DEVICES, REUSE_CPU_MEMORY, device_name, natural_clip, sync
from noise_inputs import extra_params

NAMES = K.list_noises()
FULL = os.environ.get("NRVL_BENCH_FULL") == "1"
SIZES = [(8, 720, 1280), (16, 720, 1280), (8, 1080, 1920), (16, 1080, 1920)]
_clips: dict = {}
_bandwidth: dict = {}


def clip(T, H, W, device):
    key = (T, H, W, device)
    if key not in _clips:
        _clips.clear()  # keep one clip in memory at a time
        _clips[key] = natural_clip(T=T, H=H, W=W, device=device)
    return _clips[key]


def copy_bandwidth(device) -> float:
    """Bytes/s of a device-to-device copy of a 256 MB buffer (read + write counted)."""
    if device not in _bandwidth:
        x = torch.empty(256 * 2**20, dtype=torch.uint8, device=device)
        y = torch.empty_like(x)
        for _ in range(3):
            y.copy_(x)
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(20):
            y.copy_(x)
        end.record()
        torch.cuda.synchronize()
        _bandwidth[device] = 2 * x.numel() * 20 / (start.elapsed_time(end) / 1e3)
    return _bandwidth[device]


def _bench(benchmark, name, size, device, mode):
    T, H, W = size
    video = clip(T, H, W, device)
    kw = extra_params(name, video)
    K.set_compile({"default": "auto", "eager": "never", "compiled": "always"}[mode])
    try:
        def call():
            out = K.corrupt(video, name, 0.9, seed=0, **kw)
            sync(device)
            return out

        call()  # warm-up (and compilation where the mode compiles)
        # NRVL_WORK_MEMORY=inf (one chunk, fewer launches) is reported as its own mode.
        label = (mode + ("-one-chunk" if math.isinf(K.work_memory()[0]) else "")
                 + ("-reuse" if REUSE_CPU_MEMORY and device == "cpu" else ""))
        info = dict(noise=name, device=str(device), mode=label, frames=T, height=H, width=W,
                    device_name=device_name(device), pointwise=K.NOISES[name].pointwise)
        benchmark.group = f"{device}-{T}f-{H}p-{mode}"
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
            call()
            info["peak_extra_MB"] = (torch.cuda.max_memory_allocated() - base) / 2**20
            info["floor_ms"] = 2 * video.numel() * video.element_size() / copy_bandwidth(device) * 1e3
        benchmark.extra_info.update(info)
        benchmark.pedantic(call, rounds=5 if device == "cpu" else 50, iterations=1, warmup_rounds=1)
        median = benchmark.stats.stats.median
        benchmark.extra_info["frames_per_s"] = T / median if median else None
        if "floor_ms" in info and median:
            benchmark.extra_info["x_floor"] = median * 1e3 / info["floor_ms"]
    finally:
        K.set_compile("auto")


@pytest.mark.quick
@pytest.mark.parametrize("name", NAMES)
def test_noise_cpu_8f_720p(benchmark, name):
    _bench(benchmark, name, SIZES[0], "cpu", "default")


@pytest.mark.parametrize("name", NAMES)
def test_noise_cpu_16f_720p(benchmark, name):
    _bench(benchmark, name, SIZES[1], "cpu", "default")


@pytest.mark.skipif(not FULL, reason="NRVL_BENCH_FULL=1 adds 1080p on the CPU")
@pytest.mark.parametrize("size", SIZES[2:], ids=lambda s: f"{s[0]}f-{s[1]}p")
@pytest.mark.parametrize("name", NAMES)
def test_noise_cpu_1080p(benchmark, name, size):
    _bench(benchmark, name, size, "cpu", "default")


@pytest.mark.parametrize("name", [n for n in NAMES if K.NOISES[n].pointwise])
def test_noise_cpu_8f_720p_eager_reference(benchmark, name):
    """The eager torch reference of the pointwise noises, to set beside the fused default."""
    _bench(benchmark, name, SIZES[0], "cpu", "eager")


@pytest.mark.skipif("cuda" not in DEVICES, reason="needs a CUDA device")
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}f-{s[1]}p")
@pytest.mark.parametrize("name", NAMES)
def test_noise_cuda(benchmark, name, size):
    _bench(benchmark, name, size, "cuda", "default")
