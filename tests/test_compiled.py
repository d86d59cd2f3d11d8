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


@pytest.mark.parametrize("gamma", [(0.0, 0.0), (0.6, 0.9), (1.1, 1.4)])
def test_fused_exposure_power_matches_pow_at_black_and_at_gamma_zero(gamma):
    # The fused kernel computes b^g as exp2(g*log2(b)); b = 0 (black minus delta) must still give
    # pow's 0 for g > 0 and 1 for g = 0 on every pixel.
    video = torch.arange(256, dtype=torch.uint8).reshape(1, 1, 1, 16, 16).expand(1, 4, 3, 16, 16).contiguous()
    try:
        K.set_compile("never")
        eager = K.corrupt(video, "underexposure", 1.0, seed=1, gamma=gamma)
        K.set_compile("always")
        fused = K.corrupt(video, "underexposure", 1.0, seed=1, gamma=gamma)
    finally:
        K.set_compile("auto")
    assert (eager[..., 0, 0] == (1 if gamma == (0.0, 0.0) else 0)).all()  # the black pixel
    diff = (fused.int() - eager.int()).abs()
    assert diff.max() <= 1 and (diff > 0).float().mean() < 0.002
    assert torch.equal(fused[..., 0, :2], eager[..., 0, :2])


@pytest.mark.parametrize("name", FAST)
def test_fused_equals_eager(name, compiled):
    _check(name)


@pytest.mark.slow
@pytest.mark.parametrize("name", SLOW)
def test_fused_equals_eager_all_pointwise(name, compiled):
    _check(name)


def test_compile_failure_falls_back_to_eager_with_one_warning(monkeypatch):
    from nrvl.kernels import _compile

    def broken_compile(fn, **kw):
        def run(*a, **k):
            raise RuntimeError("no C++ compiler")
        return run

    monkeypatch.setattr(torch, "compile", broken_compile)
    monkeypatch.setattr(_compile, "_cache", {})
    monkeypatch.setattr(_compile, "_broken", set())
    video = torch.randint(0, 256, (1, 4, 3, 8, 8), dtype=torch.uint8)
    K.set_compile("never")
    want = K.corrupt(video, "color_shift", 0.5, seed=1)
    K.set_compile("always")
    try:
        with pytest.warns(RuntimeWarning, match="torch.compile failed"):
            got = K.corrupt(video, "color_shift", 0.5, seed=1)
        assert torch.equal(got, want)
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert torch.equal(K.corrupt(video, "color_shift", 0.5, seed=1), want)  # no second warning
    finally:
        K.set_compile("auto")


def test_auto_mode_compiles_only_large_cpu_inputs():
    from nrvl.kernels._compile import AUTO_CPU_MIN_ELEMENTS, use_compiled

    K.set_compile("auto")
    cpu = torch.device("cpu")
    assert not use_compiled(cpu, 8 * 3 * 64 * 64)
    assert use_compiled(cpu, 8 * 3 * 720 * 1280) and 8 * 3 * 720 * 1280 >= AUTO_CPU_MIN_ELEMENTS
    assert use_compiled(torch.device("cuda"), 1)
    K.set_compile("never")
    assert not use_compiled(torch.device("cuda"), 10**9)
    K.set_compile("auto")


def test_dynamo_limits_are_raised_only_while_our_kernels_run(monkeypatch):
    """Our kernels share one code object, so dynamo must hold one entry per noise and shape while
    they run; a user's own compiled model keeps torch's limits before and after."""
    import torch._dynamo

    from nrvl.kernels import _compile

    seen = []

    def recording_compile(fn, **kw):
        def run(*a, **k):
            seen.append(torch._dynamo.config.recompile_limit)
            return fn(*a, **k)
        return run

    monkeypatch.setattr(torch, "compile", recording_compile)
    monkeypatch.setattr(_compile, "_cache", {})
    monkeypatch.setattr(_compile, "_broken", set())
    video = torch.randint(0, 256, (1, 4, 3, 8, 8), dtype=torch.uint8)
    K.set_compile("always")
    # config.patch, not monkeypatch: undoing a monkeypatch on a config module deletes the entry.
    with torch._dynamo.config.patch(recompile_limit=8):
        try:
            K.corrupt(video, "contrast", 0.5, seed=1)
        finally:
            K.set_compile("auto")
        assert seen and min(seen) >= 512
        assert torch._dynamo.config.recompile_limit == 8
