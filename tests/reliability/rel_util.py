"""Helpers of the reliability suite: constants, subprocess runs of ``eval/run.py``, JSON Lines reading."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEMO = ["--data", "MMBench_Video_demo", "--model", "tiny-qwen2.5-vl"]
NOISE = ["--noise_name", "gaussian", "--ratio", "0.9"]
STEM = "tiny-qwen2.5-vl_MMBench_Video_demo_gaussian_0.9"
#: A canary API key: any file or log holding it is a leak.
CANARY_KEY = "sk-nrvl-canary-7f3a9c1e5b2d4086"


def hash_rule(question: str, answer: str, prediction: str) -> str:
    """Judge grade 0..3 from the prediction text, so the ratings are not all zero (the tiny model is random)."""
    return str(int(hashlib.md5(prediction.encode("utf-8")).hexdigest(), 16) % 4)


def subprocess_env(cache_dir, **extra) -> dict:
    """The environment of a child run: offline, this session's cache, no ambient keys, one thread."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_API_BASE", "NRVL_TEST_KILL_AT")}
    env.update(NRVL_CACHE=str(cache_dir), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false",
               PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
    env.update({k: str(v) for k, v in extra.items()})
    return env


def start_eval(argv, env, cwd) -> subprocess.Popen:
    """``python eval/run.py argv`` in a new process; stdout and stderr to files in ``cwd``."""
    out = open(Path(cwd) / "child.out", "ab")
    err = open(Path(cwd) / "child.err", "ab")
    try:
        return subprocess.Popen([sys.executable, str(REPO / "eval" / "run.py"), *argv], env=env, cwd=cwd,
                                stdout=out, stderr=err)
    finally:
        out.close()
        err.close()


def run_eval(argv, env, cwd, timeout: float = 180) -> tuple[int, str]:
    """Run ``eval/run.py`` to completion (or its death); returns (returncode, stderr text)."""
    proc = start_eval(argv, env, cwd)
    try:
        rc = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise
    return rc, (Path(cwd) / "child.err").read_text(errors="replace")


def complete_records(path: Path) -> list[dict]:
    """The JSON object lines of a JSON Lines file (a torn line is skipped, as the store skips it)."""
    out = []
    if not path.exists():
        return out
    for line in path.read_bytes().splitlines():
        try:
            rec = json.loads(line)
        except (UnicodeDecodeError, json.JSONDecodeError):
            continue
        if isinstance(rec, dict):
            out.append(rec)
    return out


