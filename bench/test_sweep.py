"""The demo sweep in one process: what a sweep saves over one process per (noise, ratio).

``eval/run.py --data MMBench_Video_demo --model tiny-qwen2.5-vl --judge exact_matching
--noise_name gaussian,motion_blur,frame_drop --ratio 0.3,0.6,0.9``: the clean run plus
3 noises x 3 ratios, 12 questions on 6 clips, batch 1. The sweep writes its counts to
``<work-dir>/<model>/<model>_<data>_sweep.json``; they go to ``extra_info`` next to what
the original's one-process-per-run layout costs (a model load per run, a decode per
question per run). Only counts are asserted, never time.

Run: ``python -m pytest -q -s bench/test_sweep.py --benchmark-json=out.json``.
"""
from __future__ import annotations

import json

from nrvl import evaluate

NOISES = "gaussian,motion_blur,frame_drop"
RATIOS = "0.3,0.6,0.9"
MODEL = "tiny-qwen2.5-vl"
DATA = "MMBench_Video_demo"


def test_demo_sweep(benchmark, tmp_path):
    rounds = iter(range(1_000))

    def fresh_work_dir():
        # Every round starts empty, or it would resume and run nothing.
        return (tmp_path / f"round_{next(rounds)}",), {}

    def sweep(work):
        argv = ["--data", DATA, "--model", MODEL, "--judge", "exact_matching", "--noise_name", NOISES,
                "--ratio", RATIOS, "--batch-size", "1", "--work-dir", str(work)]
        assert evaluate.main(argv) == 0
        return work

    work = benchmark.pedantic(sweep, setup=fresh_work_dir, rounds=1, iterations=1, warmup_rounds=0)
    doc = json.loads((work / MODEL / f"{MODEL}_{DATA}_sweep.json").read_text())
    c = doc["counts"]
    assert c["model_loads"] == 1 and c["max_decodes_per_video"] == 1
    variants, samples = c["variants"], doc["samples"]
    benchmark.extra_info.update({
        "variants": variants,
        "samples": samples,
        "videos": doc["videos"],
        "model_loads": c["model_loads"],
        "model_loads_one_process_per_run": variants,
        "decodes": c["decodes"],
        "max_decodes_per_video": c["max_decodes_per_video"],
        "decodes_one_process_per_run": samples * variants,
        "generated": c["generated"],
        "judge_requests": c["judge_requests"],
        "judge_shared": c["judge_shared"],
        "inference_s": c["inference_seconds_per_process"][0],
        "samples_per_s": round(c["generated"] / benchmark.stats.stats.mean, 2),
    })
    print(f"\nsweep of {variants} runs x {samples} samples: {c['model_loads']} model load "
          f"(one process per run: {variants}), {c['decodes']} decodes of {doc['videos']} videos "
          f"(one process per run: {samples * variants}), judge asked {c['judge_requests']}, "
          f"{c['judge_shared']} shared, {benchmark.stats.stats.mean:.1f} s")
