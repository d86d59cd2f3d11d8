"""Peak extra memory of every noise on the CPU, as a multiple of the clip's bytes (target <= 4x).

Measured in a child process by ``tests/peak_memory.py`` (resident memory, large buffers
mapped one by one, so freed memory leaves the count), in the default mode: the fused
compiled path for pointwise noises at 720p, memory-bounded chunks otherwise. One
benchmark entry per clip size; its time is the whole measurement's, and ``extra_info``
holds the peaks (the report's memory table). CUDA peaks come from ``test_kernels.py``.
"""
from __future__ import annotations

import pytest

import nrvl.kernels as K
import peak_memory

SIZES = [(8, 720, 1280), (16, 720, 1280)]


@pytest.mark.skipif(not peak_memory.supported(), reason="needs Linux /proc/self/clear_refs")
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}f-{s[1]}p")
def test_peak_memory_cpu(benchmark, size):
    T, H, W = size
    names = K.list_noises()
    result = {}

    def measure():
        result.update(peak_memory.peak_extra(names, frames=T, size=(H, W), ratio=0.9))

    benchmark.group = "peak-memory-cpu"
    benchmark.pedantic(measure, rounds=1, iterations=1)
    clip = result["clip_bytes"]
    benchmark.extra_info.update(
        kind="peak-memory", device="cpu", frames=T, height=H, width=W, clip_MB=clip / 2**20,
        peak_x_clip={n: round(b / clip, 3) for n, b in result["peak_bytes"].items()})
