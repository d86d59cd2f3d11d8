"""The fixed cost of one ``corrupt`` call: every noise on a tiny clip (one 8-frame 32x32 clip).

At this size the pixels cost nothing, so the time is the host's: argument checks, the random
draws' keys and frame choice, and the launches of each op. On a GPU that host time, not the
kernels, decides whether a noise meets the 1 ms per 8-frame 720p clip target at batch 1, so it
is shown on its own. ``seed`` is an int, as the evaluation passes it (the seeds are known on the
host, so small draws are hashed there: ``Context.host_seeds``).
"""
from __future__ import annotations

import pytest
import torch

import nrvl.kernels as K
from conftest import DEVICES, device_name, first_call, sync
from noise_inputs import extra_params

SHAPE = (1, 8, 3, 32, 32)


@pytest.mark.quick
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", K.list_noises())
def test_call_overhead(benchmark, name, device):
    g = torch.Generator().manual_seed(0)
    video = torch.randint(0, 256, SHAPE, generator=g, dtype=torch.uint8).to(device)
    kw = extra_params(name, video)
    seeds = iter(range(10**6))

    def call():
        out = K.corrupt(video, name, 0.9, seed=next(seeds), **kw)
        sync(device)
        return out

    first_call(benchmark, call)
    benchmark.group = f"{device}-call-overhead"
    benchmark.extra_info.update(noise=name, device=str(device), device_name=device_name(device),
                                kind="call-overhead", frames=SHAPE[1], height=SHAPE[3], width=SHAPE[4],
                                pointwise=K.NOISES[name].pointwise)
    benchmark.pedantic(call, rounds=30, iterations=1, warmup_rounds=3)
