"""``bench/report.py``: pytest-benchmark JSON in, the markdown tables of bench/REPORT.md out.

Synthetic results with known medians, so every ratio and verdict the report prints is checked.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

REPORT = os.path.join(os.path.dirname(__file__), "..", "bench", "report.py")
H100 = "NVIDIA H100 80GB HBM3"


def _bench(name, median_s, group="", **info):
    return {"name": name, "group": group, "stats": {"median": median_s, "iqr": 0.0}, "extra_info": info}


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
        _bench("test_decode", 0.4, group="decode-720p-8f", backend="torchcodec"),
    ])
    r, text = _run(tmp_path, f)
    assert r.returncode == 0, r.stderr
    assert "CPU: Test CPU" in text and "No GPU was available" in text
    row = _row(text, ["gaussian", "153.0"])
    assert row[2:6] == ["51.0", "90.0", "157", "3.0×"]  # 8f ms, 16f ms (columns by frames), frames/s = 8 / 51 ms, speed-up
    assert _row(text, ["gaussian", "cpu", "same"])[5] == "0.25"  # ours / kornia
    assert _row(text, ["contrast", "cpu"])[4] == "3.50"  # per-clip / batched
    assert _row(text, ["glass_blur"])[1] == "**4.50**"  # over the 4x memory target
    assert _row(text, ["test_decode", "decode-720p-8f"])[2] == "400.0"


def test_cuda_targets_and_a_gpu_named(tmp_path):
    f = _write(tmp_path, "cuda.json", [
        _noise("gaussian", "cuda", 0.10, pointwise=True, floor_ms=0.04, x_floor=2.5, peak_extra_MB=22),
        _noise("contrast", "cuda", 0.06, pointwise=True, floor_ms=0.04, x_floor=1.5, peak_extra_MB=22),
        _noise("glass_blur", "cuda", 1.70, pointwise=False, floor_ms=0.04, x_floor=42.5, peak_extra_MB=60),
        _noise("glass_blur", "cuda", 0.90, mode="default-one-chunk", pointwise=False, floor_ms=0.04,
               x_floor=22.5, peak_extra_MB=200),
        _noise("glass_blur", "cuda", 3.0, frames=16, pointwise=False, floor_ms=0.08, x_floor=37.5, peak_extra_MB=90),
    ])
    r, text = _run(tmp_path, f)
    assert r.returncode == 0, r.stderr
    assert "No GPU was available" not in text and H100 in text
    assert _row(text, ["gaussian", H100, "default", "8"])[-1] == "**no**"  # 0.1 ms but 2.5x the floor
    assert _row(text, ["contrast", H100, "default", "8"])[-1] == "yes"
    assert _row(text, ["glass_blur", H100, "default", "8"])[-1] == "**no**"  # over 1 ms
    assert _row(text, ["glass_blur", H100, "default-one-chunk", "8"])[-1] == "yes"
    assert _row(text, ["glass_blur", H100, "default", "16"])[-1] == "–"  # no target at 16 frames
    assert "Missed at 8f 720p: gaussian (default), glass_blur (default)." in text


def test_no_results_is_a_clear_error_and_writes_nothing(tmp_path):
    empty = tmp_path / "results"
    empty.mkdir()
    r, text = _run(tmp_path, empty)
    assert r.returncode == 2 and "no benchmark results" in r.stderr and text is None
