"""Peak extra memory of ``corrupt`` on the CPU, measured as the process's resident set.

``peak_extra(...)`` runs a child process (this file) that builds a clip, warms each
noise up, then for one call: resets the kernel's peak-RSS counter
(``/proc/self/clear_refs``), runs ``corrupt``, and reads ``VmHWM - VmRSS(before)``.
The child runs with ``MALLOC_MMAP_THRESHOLD_`` fixed at 128 KiB, so every large
buffer is its own mapping, given back when freed: the resident set then follows the
live buffers (torch tensors, and FFT/BLAS scratch, which torch's allocator never sees),
page by page. The output tensor counts: it is memory the call added.

As a command: ``python tests/peak_memory.py --frames 8 --size 720x1280 [noise ...]``
prints one line per noise (the peak as a multiple of the clip's bytes).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
MMAP_THRESHOLD = 128 * 1024


def _status(field: str) -> int:
    with open("/proc/self/status") as f:
        return int(re.search(field + r":\s+(\d+) kB", f.read()).group(1)) * 1024


def supported() -> bool:
    """Linux with a writable ``clear_refs`` (peak-RSS reset)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return _status("VmHWM") > 0
    except OSError:
        return False


def _measure(names, T, H, W, ratio, dtype, seed) -> dict:
    import torch

    sys.path.insert(0, HERE)
    import nrvl.kernels as K
    from noise_inputs import extra_params

    g = torch.Generator().manual_seed(seed)
    low = torch.rand(T, 3, H // 40 + 1, W // 40 + 1, generator=g)
    x = torch.nn.functional.interpolate(low, size=(H, W), mode="bicubic", align_corners=False)
    video = (x * 200 + 25 + torch.randn(T, 3, H, W, generator=g) * 8).clamp(0, 255)
    video = video.to(torch.uint8) if dtype == "uint8" else video.to(getattr(torch, dtype))
    del x, low
    clip_bytes = video.numel() * video.element_size()
    out = {"clip_bytes": clip_bytes, "peak_bytes": {}}
    for name in names:
        kw = extra_params(name, video)
        for _ in range(2):  # warm-up: caches (kernels, textures), lazily loaded code
            K.corrupt(video, name, ratio, seed=seed, **kw)
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        before = _status("VmRSS")
        y = K.corrupt(video, name, ratio, seed=seed, **kw)
        out["peak_bytes"][name] = _status("VmHWM") - before
        del y
    return out


def peak_extra(names, *, frames=8, size=(720, 1280), ratio=0.9, dtype="uint8", seed=0,
               env: dict | None = None, timeout=900) -> dict:
    """``{"clip_bytes": int, "peak_bytes": {noise: int}}`` from a fresh child process.

    Args:
        env: extra environment variables for the child (``NRVL_WORK_MEMORY`` ...).
    """
    cmd = [sys.executable, os.path.abspath(__file__), "--json", "--frames", str(frames),
           "--size", f"{size[0]}x{size[1]}", "--ratio", str(ratio), "--dtype", dtype, "--seed", str(seed),
           *names]
    child_env = dict(os.environ, MALLOC_MMAP_THRESHOLD_=str(MMAP_THRESHOLD), **(env or {}))
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=child_env)
    if r.returncode != 0:
        raise RuntimeError(f"peak-memory child failed ({r.returncode}): {r.stderr[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("names", nargs="*", help="noises (default: all)")
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--size", default="720x1280", help="HxW")
    ap.add_argument("--ratio", type=float, default=0.9)
    ap.add_argument("--dtype", default="uint8")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true", help="one JSON line (used by peak_extra)")
    a = ap.parse_args(argv)
    if os.environ.get("MALLOC_MMAP_THRESHOLD_") != str(MMAP_THRESHOLD):
        env = dict(os.environ, MALLOC_MMAP_THRESHOLD_=str(MMAP_THRESHOLD))
        os.execve(sys.executable, [sys.executable, os.path.abspath(__file__), *(argv or sys.argv[1:])], env)
    H, W = (int(v) for v in a.size.lower().split("x"))
    import nrvl.kernels as K
    names = a.names or K.list_noises()
    res = _measure(names, a.frames, H, W, a.ratio, a.dtype, a.seed)
    if a.json:
        print(json.dumps(res))
        return 0
    cb = res["clip_bytes"]
    for n, b in res["peak_bytes"].items():
        print(f"{n:20s} {b / cb:6.2f}x the clip ({b / 2**20:7.1f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
