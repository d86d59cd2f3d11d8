"""Benchmark set-up: generated inputs, fixed seeds, CPU always and CUDA when present."""
import os
import sys

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


def timed(benchmark, device, fn, rounds: int):
    """``benchmark.pedantic`` of ``fn`` with the device synchronised inside each round (one warm-up)."""
    def call():
        out = fn()
        sync(device)
        return out

    benchmark.pedantic(call, rounds=rounds, iterations=1, warmup_rounds=1)


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
