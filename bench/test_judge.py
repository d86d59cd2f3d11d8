"""Judge throughput: judge_table against the local fake judge with 200 ms latency, 32 in flight.

The issue asks for >= 100 judgments/s. The ceiling is nproc / latency = 32 / 0.2 s
= 160/s; what is lost below it is the client's own overhead (openai request
building, HTTP, JSON, one fsynced cache append per reply). The server runs in
its own process so its threads do not compete with the client for the GIL, as
a remote judge would not. Nothing is asserted about speed; the rate goes to
``extra_info['judgments_per_s']`` of the benchmark JSON and to stdout.

Run: ``python -m pytest -q bench/test_judge.py --benchmark-json=out.json``.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from nrvl.judge import build_judge, judge_table

ROOT = Path(__file__).resolve().parents[1]
LATENCY_S = 0.2
NPROC = 32
N_ROWS = 640  # 20 waves of 32: long enough that ramp-up and tail are small

pytestmark = pytest.mark.quick


@pytest.fixture(scope="module")
def judge_url():
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "judge_server.py"), "--latency", str(LATENCY_S), "--lifetime", "300"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        line = proc.stdout.readline()
        if not line.startswith("PORT "):
            raise RuntimeError(f"judge server did not start: {line!r}")
        yield f"http://127.0.0.1:{int(line.split()[1])}/v1"
    finally:
        proc.stdin.close()  # the server exits when its stdin closes
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _table(n: int) -> pd.DataFrame:
    return pd.DataFrame({
        "index": range(n),
        "question": [f"What does the person in clip {i} do after opening the door?" for i in range(n)],
        "answer": [f"They walk into the kitchen {i}" for i in range(n)],
        "prediction": [f"The person walks into the kitchen {i}" for i in range(n)],
    })


def test_judge_throughput(benchmark, judge_url, tmp_path):
    table = _table(N_ROWS)
    judge = build_judge("gpt-4o", base_url=judge_url, api_key="bench-key", nproc=NPROC, env={},
                        dotenv_path=tmp_path / "none.env")
    rounds = iter(range(1_000))

    def fresh_cache():
        # Every round starts from an empty cache, or it would judge nothing.
        return (tmp_path / f"cache_{next(rounds)}.jsonl",), {}

    def run(cache_path):
        return judge_table(table, judge, cache_path, progress=False)

    out = benchmark.pedantic(run, setup=fresh_cache, rounds=3, iterations=1, warmup_rounds=0)
    assert len(out) == N_ROWS and (out["score"] >= 0).all()  # every row judged, none failed

    rate = N_ROWS / benchmark.stats.stats.mean
    benchmark.extra_info.update({
        "judgments_per_s": round(rate, 1),
        "target_judgments_per_s": 100,
        "ceiling_judgments_per_s": NPROC / LATENCY_S,
        "latency_s": LATENCY_S,
        "nproc": NPROC,
        "rows": N_ROWS,
    })
    print(f"\njudge throughput: {rate:.1f} judgments/s (target >= 100, ceiling {NPROC / LATENCY_S:.0f})")
