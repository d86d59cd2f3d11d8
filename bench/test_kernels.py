"""Throughput of every registered noise on uint8 clips at ratio 0.9.

* CPU: one 8-frame and one 16-frame 1280x720 clip in the default mode (``NRVL_COMPILE=auto``: the fused
  compiled path for pointwise noises on clips this size, eager torch otherwise), plus the
  eager reference of the pointwise noises. ``NRVL_BENCH_FULL=1`` adds 1080p.
* CUDA (when present): 8 and 16 frames at 720p and 1080p, every noise. Two times per row:
  the median wall time of a call (pytest-benchmark's clock, the device synchronised inside
  each round), which includes the host's fixed cost of a ``corrupt`` call (about 1 ms), and
  the GPU's own time for the call (``device_ms``: CUDA events around the call, median over
  its rounds, L2 flushed, host launches hidden behind a spin kernel; ``conftest.cuda_device_ms``).
  Also the peak extra memory and ``x_floor``, the device time as a multiple of the
  copy-bandwidth floor (one read and one write of the clip at the bandwidth of a
  device-to-device copy, measured in the same run; ``report.floor_ms``).
  ``NRVL_WORK_MEMORY=inf`` (the "-one-chunk" mode) runs the frame noises only: pointwise
  noises never chunk on CUDA (one fused kernel), so their rows would repeat the default ones.

Each result carries ``extra_info`` (noise, device, mode, frames, size, frames/s,
``first_call_ms`` = the warm-up call, compilation included ...). No timing is asserted anywhere.
"""
from __future__ import annotations

import math
import os
import statistics

import pytest
import torch

import nrvl.kernels as K
from conftest import DEVICES, REUSE_CPU_MEMORY, cuda_device_ms, device_name, first_call, natural_clip, sync
from noise_inputs import extra_params
from report import copy_bandwidth as bandwidth_of, floor_ms, times_floor

NAMES = K.list_noises()
FULL = os.environ.get("NRVL_BENCH_FULL") == "1"
SIZES = [(8, 720, 1280), (16, 720, 1280), (8, 1080, 1920), (16, 1080, 1920)]
DEVICE_ROUNDS = 15  # CUDA-event rounds per row (each: L2 flush, spin, one call)
_clips: dict = {}
_bandwidth: dict = {}


def clip(T, H, W, device):
    """The input clip of one size, made once per size and device.

    The parametrized tests change the size fastest, so one clip per size is kept (at most the
    sizes in ``SIZES``, about 250 MB of uint8 at 1080p); clips of another device are dropped.
    """
    key = (T, H, W, device)
    if key not in _clips:
        for k in [k for k in _clips if k[3] != device]:
            del _clips[k]
        _clips[key] = natural_clip(T=T, H=H, W=W, device=device)
    return _clips[key]


def copy_bandwidth(device) -> float:
    """Bytes/s of a device-to-device copy of a 256 MB buffer (read + write counted), from CUDA events."""
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
        _bandwidth[device] = bandwidth_of(x.numel(), 20, start.elapsed_time(end))
    return _bandwidth[device]


def _bench(benchmark, name, size, device, mode):
    T, H, W = size
    one_chunk = math.isinf(K.work_memory()[0])
    if one_chunk and device == "cuda" and mode == "default" and K.NOISES[name].pointwise:
        pytest.skip("pointwise noises never chunk on CUDA (one fused kernel): the default row is this row")
    video = clip(T, H, W, device)
    kw = extra_params(name, video)
    K.set_compile({"default": "auto", "eager": "never", "compiled": "always"}[mode])
    try:
        def corrupt():
            return K.corrupt(video, name, 0.9, seed=0, **kw)

        def call():
            out = corrupt()
            sync(device)
            return out

        first_call(benchmark, call)  # the warm-up (and compilation where the mode compiles), timed
        # NRVL_WORK_MEMORY=inf (one chunk, fewer launches) is reported as its own mode.
        label = (mode + ("-one-chunk" if one_chunk else "")
                 + ("-reuse" if REUSE_CPU_MEMORY and device == "cpu" else ""))
        info = dict(noise=name, device=str(device), mode=label, frames=T, height=H, width=W,
                    device_name=device_name(device), pointwise=K.NOISES[name].pointwise)
        benchmark.group = f"{device}-{T}f-{H}p-{mode}"
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
            call()
            info["peak_extra_MB"] = (torch.cuda.max_memory_allocated() - base) / 2**20
            info["floor_ms"] = floor_ms(video.numel() * video.element_size(), copy_bandwidth(device))
        benchmark.extra_info.update(info)
        benchmark.pedantic(call, rounds=5 if device == "cpu" else 50, iterations=1, warmup_rounds=1)
        median = benchmark.stats.stats.median if benchmark.stats else None  # None: --benchmark-disable
        benchmark.extra_info["frames_per_s"] = T / median if median else None
        if device == "cuda":
            host_ms = median * 1e3 if median else benchmark.extra_info["first_call_ms"]
            dev = statistics.median(cuda_device_ms(corrupt, DEVICE_ROUNDS, host_ms=host_ms))
            benchmark.extra_info.update(device_ms=dev, device_rounds=DEVICE_ROUNDS,
                                        x_floor=times_floor(dev, info["floor_ms"]))
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
