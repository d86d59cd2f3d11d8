"""How the Triton kernels are launched: grid axes within CUDA's limits, the tensor's device
made current, the ``NRVL_NO_TRITON`` switch, and the compile fallback's error handling.

The interpreter enforces no grid limit and has one device, so these record the launches
(a stand-in kernel object) instead of relying on a GPU to fail.
"""
from __future__ import annotations

import contextlib
import threading
import types

import pytest
import torch

pytest.importorskip("triton")

import nrvl.kernels as K  # noqa: E402
from nrvl.kernels import _compile, blur, weather  # noqa: E402
from nrvl.kernels import triton as T  # noqa: E402
from nrvl.kernels.triton import glass, rain, snow  # noqa: E402
from nrvl.kernels.triton import random as trandom  # noqa: E402

CUDA_AXIS_YZ = 65535


class Recorder:
    """Stands in for a ``@triton.jit`` kernel: records each launch's grid and whether the
    device guard was entered around it."""

    def __init__(self, guard_state):
        self.grids = []
        self.guarded = []
        self.args = []
        self._state = guard_state

    def __getitem__(self, grid):
        def launch(*args, **kw):
            self.grids.append(tuple(grid))
            self.guarded.append(self._state["inside"])
            self.args.append(args)
        return launch


@pytest.fixture
def guard(monkeypatch):
    state = {"inside": False, "devices": []}

    @contextlib.contextmanager
    def recording_guard(t):
        state["devices"].append(t.device)
        state["inside"] = True
        try:
            yield
        finally:
            state["inside"] = False

    for mod in (glass, rain, snow, trandom):
        monkeypatch.setattr(mod, "device_guard", recording_guard)
    return state


def _within_limits(grid):
    return all(g <= CUDA_AXIS_YZ for g in grid[1:]) and grid[0] <= 2**31 - 1


def test_glass_puts_frames_on_axis_0(monkeypatch, guard):
    rec = Recorder(guard)
    monkeypatch.setattr(glass, "_glass_shuffle_kernel", rec)
    M = 70_000  # more frames than grid axes 1 and 2 allow
    x = torch.zeros(M, 3, 2, 3, dtype=torch.uint8)
    glass.glass_shuffle_triton(x, torch.zeros(M, 2, dtype=torch.int32), torch.zeros(4, dtype=torch.int32))
    assert rec.grids and all(_within_limits(g) for g in rec.grids)
    assert rec.grids[0][0] == M and rec.guarded == [True]


def test_rain_chunks_clips_past_the_axis_limit(monkeypatch, guard):
    rec = Recorder(guard)
    monkeypatch.setattr(rain, "_rain_streak_kernel", rec)
    B = 2 * CUDA_AXIS_YZ + 3
    key = torch.zeros(B, 2, dtype=torch.int32)
    rain.rain_streaks_triton(key, 2, 2, n_drops=10**6, len_lo=1, len_span=2,
                             dx_table=torch.zeros(3, dtype=torch.int32))
    assert all(_within_limits(g) for g in rec.grids) and all(rec.guarded)
    assert sum(g[1] for g in rec.grids) == B            # every clip launched exactly once
    assert [a[0].shape[0] for a in rec.args] == [g[1] for g in rec.grids]
    assert rec.grids[0][0] == -(-10**6 // 256) or rec.grids[0][0] == -(-10**6 // 8192)


def test_draw_bits_chunks_rows_past_the_axis_limit(monkeypatch, guard):
    rec = Recorder(guard)
    monkeypatch.setattr(trandom, "_draw_kernel", rec)
    R = CUDA_AXIS_YZ + 1
    trandom.draw_bits(torch.zeros(R, 2, dtype=torch.int32), 5)
    assert [g[1] for g in rec.grids] == [CUDA_AXIS_YZ, 1] and all(rec.guarded)


def test_snow_launches_are_guarded(monkeypatch, guard):
    field_rec, blur_rec = Recorder(guard), Recorder(guard)
    monkeypatch.setattr(snow, "_snow_field_kernel", field_rec)
    monkeypatch.setattr(snow, "_snow_blur_kernel", blur_rec)
    snow.snow_field_triton(torch.zeros(3, 2, dtype=torch.int32), 2, 2, 4, 4, 2.0, 2.0,
                           mean=0.1, std=0.3, threshold=0.5)
    snow.snow_blur_triton(torch.zeros(3, 4, 4), torch.zeros(3, 2), torch.zeros(3, 2), torch.ones(3, 2), 4, 4)
    assert field_rec.guarded == [True] and blur_rec.guarded == [True]
    assert all(_within_limits(g) for g in field_rec.grids + blur_rec.grids)


def test_device_guard_is_a_no_op_on_cpu():
    with T.device_guard(torch.zeros(1)):
        pass


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_device_guard_makes_the_tensors_gpu_current():
    last = torch.cuda.device_count() - 1
    t = torch.zeros(1, device=f"cuda:{last}")
    with T.device_guard(t):
        assert torch.cuda.current_device() == last


def test_no_triton_switch_is_shared_by_glass_and_weather(monkeypatch):
    fake_cuda = types.SimpleNamespace(is_cuda=True)
    monkeypatch.delenv("NRVL_NO_TRITON", raising=False)
    assert T.enabled(fake_cuda)
    monkeypatch.setenv("NRVL_NO_TRITON", "1")
    assert not T.enabled(fake_cuda)
    assert not T.enabled(torch.zeros(1))  # a CPU tensor never takes the kernels
    assert blur.triton_enabled is T.enabled and weather.triton_enabled is T.enabled


# ----------------------------------------------------------------------------- compile fallback


def _compile_raising(monkeypatch, exc):
    calls = []

    def fake_compile(fn, **kw):
        def run(*a, **k):
            calls.append(1)
            raise exc
        return run

    monkeypatch.setattr(torch, "compile", fake_compile)
    monkeypatch.setattr(_compile, "_cache", {})
    monkeypatch.setattr(_compile, "_broken", set())
    return calls


def test_out_of_memory_in_the_compiled_call_is_raised_and_keeps_the_fast_path(monkeypatch):
    calls = _compile_raising(monkeypatch, torch.OutOfMemoryError("CUDA out of memory"))
    video = torch.randint(0, 256, (1, 4, 3, 8, 8), dtype=torch.uint8)
    K.set_compile("always")
    try:
        for _ in range(2):
            with pytest.raises(torch.OutOfMemoryError):
                K.corrupt(video, "color_shift", 0.5, seed=1)
    finally:
        K.set_compile("auto")
    assert len(calls) == 2 and not _compile._broken  # tried compiled both times; not marked broken


def test_a_compiler_failure_disables_only_that_device_type(monkeypatch):
    _compile_raising(monkeypatch, RuntimeError("no C++ compiler"))

    def fn(x):
        return x + 1

    K.set_compile("always")
    try:
        with pytest.warns(RuntimeWarning, match="torch.compile failed on cpu"):
            assert _compile.maybe_compiled(fn, torch.device("cpu"))(torch.zeros(1)).item() == 1
        assert _compile.maybe_compiled(fn, torch.device("cpu")) is fn
        assert _compile.maybe_compiled(fn, torch.device("cuda")) is not fn  # CUDA still compiles
    finally:
        K.set_compile("auto")


def _overlap(enter, read):
    """Thread a enters, b enters, a leaves while b is inside; returns what b reads then."""
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()
    seen = {}

    def a():
        with enter():
            a_in.set()
            b_in.wait(5)
        a_out.set()

    def b():
        a_in.wait(5)
        with enter():
            b_in.set()
            a_out.wait(5)
            seen["b"] = read()

    ts = [threading.Thread(target=a), threading.Thread(target=b)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(10)
    return seen["b"]


def test_dynamo_limits_with_this_torchs_config_survive_overlapping_threads():
    import torch._dynamo

    # config.patch, not monkeypatch: undoing a monkeypatch on a config module deletes the entry.
    with torch._dynamo.config.patch(recompile_limit=8):
        assert _overlap(_compile._dynamo_limits, lambda: torch._dynamo.config.recompile_limit) >= 512
        assert torch._dynamo.config.recompile_limit == 8


def test_global_dynamo_limits_are_reference_counted_across_threads():
    """An older torch keeps the limits in one global: the raise is shared, and the user's value
    returns only when the last thread leaves (config.patch per thread would leave 512 behind)."""
    cfg = types.SimpleNamespace(recompile_limit=8, cache_size_limit=8)
    assert not _compile._overrides_are_context_local(cfg)
    inside = _overlap(lambda: _compile._dynamo_limits(cfg), lambda: cfg.recompile_limit)
    assert inside >= 512
    assert cfg.recompile_limit == 8 and cfg.cache_size_limit == 8


def test_cpu_allocator_out_of_memory_is_raised_and_keeps_the_fast_path(monkeypatch):
    _compile_raising(monkeypatch, RuntimeError("[enforce fail] DefaultCPUAllocator: can't allocate memory"))

    def fn(x):
        return x + 1

    K.set_compile("always")
    try:
        with pytest.raises(RuntimeError, match="can't allocate memory"):
            _compile.maybe_compiled(fn, torch.device("cpu"))(torch.zeros(1))
    finally:
        K.set_compile("auto")
    assert not _compile._broken
