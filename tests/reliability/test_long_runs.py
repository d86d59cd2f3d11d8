"""Long runs: decoding videos over and over does not grow memory or open files without bound.

Decoders are known to leak (a context or frame pool per open file). Each backend decodes 8 frames
of the demo clips 200 times, opening the file every time, in a fresh process; after a warm-up of
20 decodes the resident set size (``/proc/<pid>/statm``) of the process, and of the decord worker
process, must stay flat, and the count of open file descriptors must not change.
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
from rel_util import REPO, subprocess_env

MB = 1 << 20
GROWTH_LIMIT = 32 * MB  # over the whole loop, after warm-up
LATE_GROWTH_LIMIT = 16 * MB  # over its second half: a leak grows linearly, noise does not


def decode_loop(backend, n, files, cache_dir, **env):
    cmd = [sys.executable, str(REPO / "tests" / "reliability" / "decode_loop.py"), backend, str(n), *map(str, files)]
    proc = subprocess.run(cmd, env=subprocess_env(cache_dir, **env), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def growth(samples, key):
    values = [s[key] for s in samples]
    half = values[len(values) // 2:]
    return max(values) - values[0], max(half) - half[0]


def check_flat(result):
    samples = result["samples"]
    keys = ["rss"] + (["worker_rss"] if samples[0]["worker_rss"] is not None else [])
    for key in keys:
        total, late = growth(samples, key)
        assert total < GROWTH_LIMIT and late < LATE_GROWTH_LIMIT, \
            f"{key} grew {total / MB:.1f} MB ({late / MB:.1f} MB in the second half): {samples}"
    for key in ("fds", "worker_fds"):
        assert len({s[key] for s in samples}) == 1, f"open files changed: {[s[key] for s in samples]}"
    assert result["same_worker"]  # decord's worker neither died nor was restarted


@pytest.fixture(scope="module")
def clips(demo_ready):
    return sorted((demo_ready / "video").glob("*.mp4"))


@pytest.mark.parametrize("backend", ["torchcodec", "decord"])
def test_200_decodes_do_not_grow_memory(backend, clips, cache_dir):
    result = decode_loop(backend, 200, clips, cache_dir)
    if result["backend"] != backend:
        pytest.skip(f"{backend} is not usable here (fell back to {result['backend']})")
    check_flat(result)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["torchcodec", "decord"])
def test_2000_decodes_do_not_grow_memory(backend, clips, cache_dir):
    result = decode_loop(backend, 2000, clips, cache_dir)
    if result["backend"] != backend:
        pytest.skip(f"{backend} is not usable here")
    check_flat(result)


@pytest.mark.slow
def test_the_measure_sees_a_leak(clips, cache_dir):
    """Keeping every decoded clip alive (1.8 MB each) must fail the check: the test can fail."""
    result = decode_loop("torchcodec", 200, clips, cache_dir, NRVL_TEST_LEAK=1)
    with pytest.raises(AssertionError, match="rss grew"):
        check_flat(result)
