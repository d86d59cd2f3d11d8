"""``bench/report.py``: pytest-benchmark JSON in, the markdown tables of bench/REPORT.md out.

Synthetic results with known medians, so every ratio and verdict the report prints is checked.
"""
from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys

import pytest

REPORT = os.path.join(os.path.dirname(__file__), "..", "bench", "report.py")
H100 = "NVIDIA H100 80GB HBM3"


def _module():
    """bench/report.py as a module (stdlib only: no torch, no bench conftest)."""
    spec = importlib.util.spec_from_file_location("nrvl_bench_report", REPORT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _bench(name, median_s, group="", iqr_s=0.0, **info):
    return {"name": name, "group": group, "stats": {"median": median_s, "iqr": iqr_s}, "extra_info": info}


def _noise(name, device, ms, frames=8, mode="default", **extra):
    return _bench(f"test_noise_{device}[{name}]", ms / 1e3, noise=name, device=device, mode=mode, frames=frames,
                  height=720, width=1280, device_name=H100 if device == "cuda" else "cpu", **extra)


def _write(tmp_path, name, benchmarks, cpu="Test CPU"):
    path = tmp_path / name
    path.write_text(json.dumps({"machine_info": {"cpu": {"brand_raw": cpu}}, "benchmarks": benchmarks}))
    return path


def _run(tmp_path, *inputs):
    out = tmp_path / "REPORT.md"
    r = subprocess.run([sys.executable, REPORT, *map(str, inputs), "--out", str(out)], capture_output=True, text=True)
    return r, (out.read_text() if out.exists() else None)


def _row(text, first_cells):
    """The table row that starts with ``first_cells`` (a list), split into cells."""
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[:len(first_cells)] == first_cells:
            return cells
    raise AssertionError(f"no row {first_cells} in:\n{text}")


def test_cpu_report_tables(tmp_path):
    f = _write(tmp_path, "cpu.json", [
        _noise("gaussian", "cpu", 51.0),           # NRVL-0: 153 ms -> 3.0x
        _noise("gaussian", "cpu", 90.0, frames=16),
        _bench("test_ours[cpu-gaussian]", 0.020, noise="gaussian", device="cpu", device_name="cpu", side="ours",
               relation="same", note="n"),
        _bench("test_kornia[cpu-gaussian]", 0.080, noise="gaussian", device="cpu", device_name="cpu",
               side="kornia", relation="same", note="n"),
        _bench("test_batched", 0.010, noise="contrast", device="cpu", mode="batched", frames=64),
        _bench("test_per_clip", 0.035, noise="contrast", device="cpu", mode="per-clip", frames=64),
        _bench("test_peak", 0.0, kind="peak-memory", device="cpu", frames=8, height=720,
               peak_x_clip={"gaussian": 1.0, "glass_blur": 4.5}),
        _bench("test_peak16", 0.0, kind="peak-memory", device="cpu", frames=16, height=720,
               peak_x_clip={"gaussian": 1.25, "glass_blur": 3.5}),
        _bench("test_decode", 0.4, group="decode-720p-8f", iqr_s=0.025, backend="torchcodec"),
    ])
    r, text = _run(tmp_path, f)
    assert r.returncode == 0, r.stderr
    assert "CPU: Test CPU" in text and "No GPU was available" in text
    row = _row(text, ["gaussian", "153.0"])
    assert row[2:6] == ["51.0", "90.0", "157", "3.0×"]  # 8f ms, 16f ms (columns by frames), frames/s = 8 / 51 ms, speed-up
    assert len(row) == 6  # no first-call column when no run recorded one
    assert "did not record it" in text
    assert _row(text, ["gaussian", "cpu", "same"])[5] == "0.25"  # ours / kornia
    assert _row(text, ["contrast", "cpu"])[4] == "3.50"  # per-clip / batched
    assert _row(text, ["glass_blur"])[1:] == ["**4.50**", "3.50"]  # over the 4x memory target; 16f column
    assert _row(text, ["gaussian", "1.00"])[1:] == ["1.00", "1.25"]
    assert "Largest: cpu 8f 720p: 4.50×, cpu 16f 720p: 3.50× (bold: over 4×)." in text  # the max per column
    assert _row(text, ["test_decode", "decode-720p-8f"])[2:4] == ["400.0", "25.0"]  # median, IQR


def test_nrvl0_estimates_are_marked_and_first_calls_shown(tmp_path):
    f = _write(tmp_path, "cpu.json", [
        _noise("motion_blur", "cpu", 100.0, first_call_ms=2500.0),
        _noise("gaussian", "cpu", 51.0, first_call_ms=16900.0),
    ])
    r, text = _run(tmp_path, f)
    assert r.returncode == 0, r.stderr
    # motion_blur's NRVL-0 time is an estimate in nrvl0-speed.md: shown as one, and so is its speed-up
    assert _row(text, ["motion_blur"])[1:] == ["≈700,000.0 (estimate)", "100.0", "80", "≈7000.0×", "2,500.0"]
    assert _row(text, ["gaussian"])[1:] == ["153.0", "51.0", "157", "3.0×", "16,900.0"]  # measured: no ≈
    assert 'motion_blur: "≈700, not re-run"' in text and "first call ms (CPU default, 8f 720p)" in text


def test_cuda_targets_and_a_gpu_named(tmp_path):
    # Wall times carry ~1 ms of host cost per call; device times (CUDA events) and x_floor = device / floor.
    f = _write(tmp_path, "cuda.json", [
        _noise("gaussian", "cuda", 1.10, pointwise=True, device_ms=0.10, floor_ms=0.04, x_floor=2.5,
               peak_extra_MB=22.4, first_call_ms=4200.0),
        _noise("contrast", "cuda", 0.95, pointwise=True, device_ms=0.06, floor_ms=0.04, x_floor=1.5, peak_extra_MB=22),
        _noise("glass_blur", "cuda", 2.40, pointwise=False, device_ms=1.70, floor_ms=0.04, x_floor=42.5,
               peak_extra_MB=60),
        _noise("glass_blur", "cuda", 1.30, mode="default-one-chunk", pointwise=False, device_ms=0.90, floor_ms=0.04,
               x_floor=22.5, peak_extra_MB=200),
        _noise("glass_blur", "cuda", 3.5, frames=16, pointwise=False, device_ms=3.0, floor_ms=0.08, x_floor=37.5,
               peak_extra_MB=90),
        # an older row without a device time is judged on its wall time
        _noise("impulse", "cuda", 0.07, pointwise=True, floor_ms=0.04, x_floor=1.75, peak_extra_MB=30),
        _bench("test_decode_8_frames_gpu[qwen]", 0.05, group="decode-720p-8f", backend="torchcodec",
               device="cuda", device_name=H100),
        _bench("test_glass_shuffle[cuda]", 0.0002, group="glass-shuffle-cuda", device="cuda", device_name=H100),
    ])
    r, text = _run(tmp_path, f)
    assert r.returncode == 0, r.stderr
    assert "No GPU was available" not in text
    assert f"Devices: {H100}." in text  # every GPU row names the GPU: "cuda" is no second device
    head = _row(text, ["noise", "GPU"])
    assert head[5:11] == ["wall ms", "device ms", "floor ms", "× floor", "peak extra MB", "first call ms"]
    # wall, device, floor, x floor, peak MB, first call, target: 0.1 ms on the device but 2.5x the floor
    assert _row(text, ["gaussian", H100, "default", "8"])[5:] == ["1.10", "0.100", "0.040", "2.50", "22",
                                                                   "4,200.0", "**no**"]
    assert _row(text, ["contrast", H100, "default", "8"])[5:] == ["0.950", "0.060", "0.040", "1.50", "22", "–",
                                                                  "yes"]
    assert _row(text, ["glass_blur", H100, "default", "8"])[-1] == "**no**"  # over 1 ms on the device
    assert _row(text, ["glass_blur", H100, "default-one-chunk", "8"])[5:] == ["1.30", "0.900", "0.040", "22.50",
                                                                              "200", "–", "yes"]
    assert _row(text, ["glass_blur", H100, "default", "16"])[-1] == "–"  # no target at 16 frames
    assert _row(text, ["impulse", H100, "default", "8"])[5:8] == ["0.070", "–", "0.040"]
    assert _row(text, ["impulse", H100, "default", "8"])[-1] == "yes"
    assert "Missed at 8f 720p (device time): gaussian (default), glass_blur (default)." in text
    assert "The CUDA table's first-call column shows it for the GPU rows." in text
    assert ("Over 1 ms wall per call at 8f 720p (the host's cost of a call; batching clips into one call "
            "spreads it): gaussian (default, 1.10 ms), glass_blur (default, 2.40 ms), "
            "glass_blur (default-one-chunk, 1.30 ms).") in text


def test_floor_arithmetic():
    rep = _module()
    # 20 copies of a 256 MiB buffer in 3.58 ms: read + write counted
    bw = rep.copy_bandwidth(256 * 2**20, 20, 3.58)
    assert bw == pytest.approx(2 * 256 * 2**20 * 20 / 3.58e-3)
    assert 2.9e12 < bw < 3.1e12
    clip = 8 * 3 * 720 * 1280  # one 8-frame 720p uint8 clip
    assert rep.floor_ms(clip, 3.0e12) == pytest.approx(2 * clip / 3.0e12 * 1e3)  # ~0.0147 ms
    assert rep.floor_ms(clip, bw) == pytest.approx(2 * clip * 3.58 / (2 * 256 * 2**20 * 20))
    assert rep.times_floor(0.0295, rep.floor_ms(clip, 3.0e12)) == pytest.approx(2.0, rel=1e-3)
    assert rep.times_floor(None, 0.01) is None and rep.times_floor(1.0, 0.0) is None
    for bad in ((0, 20, 1.0), (1, 0, 1.0), (1, 20, 0.0), (1, 20, math.nan)):
        with pytest.raises(ValueError):
            rep.copy_bandwidth(*bad)
    with pytest.raises(ValueError):
        rep.floor_ms(clip, 0.0)


def test_no_results_is_a_clear_error_and_writes_nothing(tmp_path):
    empty = tmp_path / "results"
    empty.mkdir()
    r, text = _run(tmp_path, empty)
    assert r.returncode == 2 and "no benchmark results" in r.stderr and text is None


def test_call_overhead_section_lists_each_noise_per_device(tmp_path):
    rows = [_bench(f"test_call_overhead[{d}-{n}]", ms / 1e3, kind="call-overhead", noise=n, device=d,
                   device_name=H100 if d == "cuda" else "cpu", frames=8, height=32, width=32)
            for n, d, ms in [("gaussian", "cpu", 0.512), ("gaussian", "cuda", 0.25), ("contrast", "cpu", 12.5)]]
    r, text = _run(tmp_path, _write(tmp_path, "cpu.json", rows))
    assert r.returncode == 0, r.stderr
    section = text.split("## Fixed cost of a call", 1)[1].split("\n## ", 1)[0]
    assert "1×8×3×32×32" in section
    assert f"| noise | cpu ms | {H100} ms |" in section
    assert "| gaussian | 0.512 | 0.250 |" in section and "| contrast | 12.5 | – |" in section
    assert "test_call_overhead" not in text.split("## Other benchmarks", 1)[-1] or "## Other benchmarks" not in text
