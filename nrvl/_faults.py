"""Test-only crash points: ``NRVL_TEST_KILL_AT=<point>:<n>[@<rank>]`` SIGKILLs the process.

The reliability tests (``tests/reliability/test_kill_resume.py``) prove that a run
killed anywhere resumes to the same result. Killing a subprocess from outside
hits random moments; these named points hit the moments that matter (mid-record,
mid-rename, between the score and the rating files) every time.

With the variable unset every call is one ``os.environ.get`` and returns. When
it is set, the ``n``-th time (counting from 1, per process) the named point is
reached, on rank ``rank`` when given (``$RANK``, default 0), :func:`hit` returns
True once and the caller kills the process with :func:`kill`, possibly after
leaving a half-written file behind as a real crash would.

Points: ``infer.prepare``, ``infer.generate``, ``jsonl.appended``, ``jsonl.torn``,
``merge``, ``atomic.torn``, ``judge.cached``, ``rating.write``, ``rating.scores_written``.
"""
from __future__ import annotations

import os
import signal
import sys
import threading

ENV = "NRVL_TEST_KILL_AT"

_counts: dict[str, int] = {}
_lock = threading.Lock()


def hit(point: str) -> bool:
    """True exactly when ``$NRVL_TEST_KILL_AT`` names ``point`` and this is its ``n``-th arrival."""
    spec = os.environ.get(ENV)
    if not spec:
        return False
    target, _, rest = spec.partition(":")
    if target != point:
        return False
    count, _, rank = rest.partition("@")
    if rank and rank != (os.environ.get("RANK") or "0"):
        return False
    with _lock:
        _counts[point] = _counts.get(point, 0) + 1
        return str(_counts[point]) == count.strip()


def kill() -> None:
    """SIGKILL this process: no cleanup handler, ``finally`` or atexit runs, as in a power cut or OOM kill."""
    sys.stderr.flush()
    os.kill(os.getpid(), getattr(signal, "SIGKILL", signal.SIGTERM))


def kill_point(point: str) -> None:
    """Kill the process here if ``$NRVL_TEST_KILL_AT`` asks for it (see :func:`hit`)."""
    if hit(point):
        kill()
