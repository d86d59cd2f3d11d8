"""Fixtures of the reliability suite: the session's NRVL cache (tiny model and demo clips, the
same folder the other test modules use), a hermetic environment, and an OpenAI-compatible judge on
127.0.0.1 whose grades vary (0..3). Helpers live in rel_util.py."""
from __future__ import annotations

import pytest
from rel_util import CANARY_KEY, hash_rule


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    # The same folder as tests/test_eval_e2e.py uses: the tiny model and the demo clips are built once.
    return tmp_path_factory.getbasetemp() / "nrvl-cache"


@pytest.fixture(scope="session")
def demo_ready(cache_dir):
    """Build the tiny model and the demo clips before any subprocess needs them (no build races)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("NRVL_CACHE", str(cache_dir))
    try:
        from nrvl.data import prepare_dataset
        from nrvl.models.tiny import ensure_tiny_qwen

        root = prepare_dataset("MMBench_Video_demo")
        ensure_tiny_qwen()
    finally:
        mp.undo()
    return root


@pytest.fixture(autouse=True)
def _env(cache_dir, monkeypatch, tmp_path):
    monkeypatch.setenv("NRVL_CACHE", str(cache_dir))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_API_BASE", "NRVL_TEST_KILL_AT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)  # no .env from the checkout


@pytest.fixture(scope="module")
def judge_server():
    """One judge server per module: key ``CANARY_KEY``, grades by :func:`hash_rule`, no faults by default."""
    from judge_server import FakeJudgeServer

    with FakeJudgeServer(api_key=CANARY_KEY, rule=hash_rule, lifetime_s=1800) as srv:
        yield srv


@pytest.fixture
def judge(judge_server):
    """The module's judge server, reset to no latency and no queued faults for this test."""
    judge_server.latency = 0.0
    with judge_server._lock:
        judge_server._faults.clear()
    yield judge_server
    judge_server.latency = 0.0
