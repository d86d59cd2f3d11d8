"""Benchmark set-up: generated inputs, fixed seeds, CPU always and CUDA when present."""
import os
import sys
import time

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))

# NRVL_REUSE_CPU_MEMORY=1: the allocator setting the nrvl command uses (nrvl.kernels.reuse_cpu_memory);
# rows measured so are labelled "-reuse". Unset, the library as a script importing it gets it.
REUSE_CPU_MEMORY = os.environ.get("NRVL_REUSE_CPU_MEMORY") == "1"
if REUSE_CPU_MEMORY:
    import nrvl.kernels

    if not nrvl.kernels.reuse_cpu_memory():
        raise RuntimeError("NRVL_REUSE_CPU_MEMORY=1 but this platform has no glibc mallopt")

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def pytest_configure(config):
    config.addinivalue_line("markers", "quick: the subset run by `make bench-quick`")
    config.addinivalue_line("markers", "decode: video decode benchmarks")


def sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def timed(benchmark, device, fn, rounds: int, warmup_rounds: int = 1):
    """``benchmark.pedantic`` of ``fn`` with the device synchronised inside each round.

    The first warm-up call is timed on its own (``extra_info["first_call_ms"]``: what a user's
    first call costs, compilation and JIT included); the medians start after the warm-up.
    """
    def call():
        out = fn()
        sync(device)
        return out

    first_call(benchmark, call)
    benchmark.pedantic(call, rounds=rounds, iterations=1, warmup_rounds=max(warmup_rounds - 1, 0))


def first_call(benchmark, call):
    """Run ``call()`` once (the warm-up), storing its wall time as ``extra_info["first_call_ms"]``."""
    t0 = time.perf_counter()
    out = call()
    benchmark.extra_info["first_call_ms"] = round((time.perf_counter() - t0) * 1e3, 3)
    return out


_cuda_aids: dict = {}


def _spin_cycles_per_ms() -> float:
    """Cycles of ``torch.cuda._sleep`` per ms on this GPU (measured once, with CUDA events)."""
    if "cycles_per_ms" not in _cuda_aids:
        torch.cuda._sleep(1000)
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        torch.cuda._sleep(2_000_000)
        end.record()
        torch.cuda.synchronize()
        _cuda_aids["cycles_per_ms"] = 2_000_000 / max(start.elapsed_time(end), 1e-3)
    return _cuda_aids["cycles_per_ms"]


def cuda_device_ms(fn, rounds: int, host_ms: float) -> list[float]:
    """The GPU's time for ``fn()`` in each of ``rounds`` rounds, in ms, from CUDA events.

    ``torch.cuda.Event.elapsed_time`` between events recorded just before and just after the
    call. Before each round the L2 cache is flushed (a 256 MB write, as ``triton.testing.do_bench``
    does: the floor assumes the clip comes from memory) and a spin kernel of about
    ``1.5 * host_ms + 0.5`` ms (``host_ms``: the call's wall time) is queued, so the host has queued
    the whole call before the GPU reaches the first event: the events then bracket the call's kernels
    back to back and the host's fixed cost per call (launches, Python) is left out, except where the
    call itself waits for the GPU (a host sync inside it).
    """
    if "flush" not in _cuda_aids:
        _cuda_aids["flush"] = torch.empty(256 * 2**20, dtype=torch.uint8, device="cuda")
    flush = _cuda_aids["flush"]
    spin = getattr(torch.cuda, "_sleep", None)
    cycles = int(min(1.5 * host_ms + 0.5, 50.0) * _spin_cycles_per_ms()) if spin else 0
    times = []
    for _ in range(rounds):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize()
        flush.zero_()
        if cycles:
            spin(cycles)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return times


def device_name(device) -> str:
    """``"cpu"``, or the GPU's model (what the report names a CUDA row by)."""
    return torch.cuda.get_device_name(torch.device(device)) if torch.device(device).type == "cuda" else "cpu"


def natural_clip(T=8, H=720, W=1280, device="cpu", seed=0):
    """A smooth, photo-like uint8 clip (low-frequency colour fields plus mild texture)."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(T, 3, H // 40 + 1, W // 40 + 1, generator=g)
    x = torch.nn.functional.interpolate(low, size=(H, W), mode="bicubic", align_corners=False)
    x = x * 200 + 25 + torch.randn(T, 3, H, W, generator=g) * 8
    return x.clamp(0, 255).to(torch.uint8).to(device)
