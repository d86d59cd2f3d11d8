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




# ----------------------------------------------------------------------------------- forked runs

_PRELOAD = ["torch", "transformers", "openai", "nrvl.kernels", "nrvl.evaluate", "nrvl.judge", "nrvl.models.qwen",
            "nrvl.data", "nrvl.store", "nrvl.video", "rel_util"]
_forkserver = None


def _forkserver_context():
    """A multiprocessing forkserver that has imported torch, transformers and nrvl once.

    A fresh ``python eval/run.py`` spends seconds importing; a child forked from this
    server starts in milliseconds and is still a separate process that SIGKILL ends
    with no cleanup. The server only imports (it never runs torch ops or threads),
    so forking it is safe.
    """
    global _forkserver
    if _forkserver is None:
        import multiprocessing

        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(_PRELOAD)
        _forkserver = ctx
    return _forkserver


def _child_main(argv, env, cwd) -> None:  # runs in the forked child
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    for fd, name in ((1, "child.out"), (2, "child.err")):
        target = os.open(os.path.join(cwd, name), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(target, fd)
        os.close(target)
    from nrvl import evaluate

    rc = evaluate.main(list(argv), prog="eval/run.py")
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(rc)


def forked_eval(argv, env, cwd, timeout: float = 180) -> tuple[int, str]:
    """Like :func:`run_eval`, in a process forked from the preloaded server: (exit code, stderr text).

    The exit code is negative for a signal (``-9`` after SIGKILL), as for :func:`run_eval`.
    """
    ctx = _forkserver_context()
    proc = ctx.Process(target=_child_main, args=(list(argv), dict(env), str(cwd)), daemon=True)
    proc.start()
    proc.join(timeout)
    if proc.is_alive():
        proc.kill()
        proc.join()
        raise TimeoutError(f"eval {argv} did not finish within {timeout} s")
    err = Path(cwd) / "child.err"
    return proc.exitcode, err.read_text(errors="replace") if err.exists() else ""


# ----------------------------------------------------------------------------------- corrupted-frame fingerprints

def clip_digests(clips, requests) -> list[dict]:
    """One record per corrupted clip: question index, shape and sha256 of its uint8 bytes."""
    out = []
    for clip, req in zip(clips, requests):
        c = clip.detach().contiguous().cpu()
        out.append({"index": int(req.index), "shape": list(c.shape),
                    "sha256": hashlib.sha256(c.numpy().tobytes()).hexdigest()})
    return out


def install_frame_recorder(sink) -> None:
    """Wrap ``nrvl.models.qwen.corrupt_clips`` so every corrupted clip's digest goes to ``sink(records)``."""
    from nrvl.models import qwen

    real = qwen.corrupt_clips

    def recording(clips, requests, **kw):
        out = real(clips, requests, **kw)
        sink(clip_digests(out, requests))
        return out

    qwen.corrupt_clips = recording
