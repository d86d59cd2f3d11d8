"""The fused path (torch.compile) agrees with the eager reference and keeps the frame contract."""
from __future__ import annotations

import pytest
import torch

import nrvl.kernels as K

FAST = ["gaussian", "contrast", "color_quantized"]
SLOW = [n for n in K.list_noises() if K.NOISES[n].pointwise and n not in FAST]


@pytest.fixture
def compiled():
    K.set_compile("always")
    yield
    K.set_compile("auto")


def _check(name):
    g = torch.Generator().manual_seed(0)
    video = torch.randint(0, 256, (2, 6, 3, 20, 28), generator=g, dtype=torch.uint8)
    K.set_compile("never")
    eager, params = K.corrupt(video, name, 0.5, seed=3, return_params=True)
    K.set_compile("always")
    fused = K.corrupt(video, name, 0.5, seed=3)
    frames = params["frames"]
    assert torch.equal(fused[~frames], video[~frames]), "a frame not chosen changed on the fused path"
    diff = (fused.int() - eager.int()).abs()
    assert diff.max() <= 1 and (diff > 0).float().mean() < 0.002, f"fused differs from eager ({diff.max()})"
    target = video.clone()
    K.corrupt(target, name, 0.5, seed=3, inplace=True)
    assert torch.equal(target, fused)


@pytest.mark.parametrize("name", FAST)
def test_fused_equals_eager(name, compiled):
    _check(name)


@pytest.mark.slow
@pytest.mark.parametrize("name", SLOW)
def test_fused_equals_eager_all_pointwise(name, compiled):
    _check(name)
