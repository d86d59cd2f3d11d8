"""Kill and resume: the demo evaluation is SIGKILLed at named points (``NRVL_TEST_KILL_AT``,
see nrvl/_faults.py) and at moments chosen from outside, then rerun. The final predictions,
score and rating files must equal an uninterrupted run's byte for byte; every sample is
stored once and judged once; the rerun redoes only what was lost; and at no time does a
file with a result's name hold anything but the finished result.
"""
from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest
from rel_util import (
    CANARY_KEY,
    DEMO,
    NOISE,
    REPO,
    STEM,
    complete_records,
    forked_eval,
    run_eval,
    start_eval,
    subprocess_env,
)

from nrvl import evaluate

LIMIT = 6
JUDGE = "gpt-4o"
TSV, META = f"{STEM}.tsv", f"{STEM}.tsv.meta.json"  # the predictions and their settings sidecar
SCORES, RATING = f"{STEM}_{JUDGE}_score.tsv", f"{STEM}_{JUDGE}_rating.json"
RESULTS = (TSV, META, SCORES, RATING)  # in the order they are written (atomic.torn:1 .. 4)
STORE = f"{STEM}.rank0.jsonl"
CACHE = f"{STEM}_{JUDGE}_judge.jsonl"


def eval_args(work: Path, base_url: str, *extra) -> list[str]:
    return [*DEMO, *NOISE, "--limit", str(LIMIT), "--batch-size", "2", "--judge", JUDGE,
            "--judge-base-url", base_url, "--judge-key", CANARY_KEY, "--judge-nproc", "2",
            "--device", "cpu", "--work-dir", str(work), *extra]


def folder_of(work: Path) -> Path:
    return work / "tiny-qwen2.5-vl" / "gaussian"


@pytest.fixture(scope="module")
def reference(tmp_path_factory, cache_dir, demo_ready, judge_server):
    """An uninterrupted run with the same flags: the bytes every resumed run must end with."""
    mp = pytest.MonkeyPatch()
    mp.setenv("NRVL_CACHE", str(cache_dir))
    mp.delenv("OPENAI_API_KEY", raising=False)
    work = tmp_path_factory.mktemp("reference")
    mp.chdir(work)
    try:
        assert evaluate.main(eval_args(work, judge_server.base_url)) == 0
    finally:
        mp.undo()
    folder = folder_of(work)
    return {"bytes": {name: (folder / name).read_bytes() for name in RESULTS},
            "listing": sorted(p.name for p in folder.iterdir())}


def check_no_false_result(folder: Path, reference) -> None:
    """Whatever a killed run left: a file under a result's name is the finished result, nothing else."""
    for name in RESULTS:
        path = folder / name
        if path.exists():
            assert path.read_bytes() == reference["bytes"][name], f"{name} exists but is not the final result"
    visible = {p.name for p in folder.iterdir() if not p.name.startswith(".")} if folder.is_dir() else set()
    stores = {p for p in visible if p.startswith(f"{STEM}.rank") and p.endswith(".jsonl")}
    assert visible - stores <= set(RESULTS) | {CACHE}, visible
    for p in (folder.iterdir() if folder.is_dir() else ()):
        if p.name.startswith("."):
            assert p.name.endswith(".tmp"), p  # only hidden temp files, which no reader picks up


def stored_keys(folder: Path) -> list[str]:
    return [str(r["index"]) for r in complete_records(folder / STORE) if not r.get("failed")]


def check_resumed(folder: Path, reference) -> None:
    """The resumed run's files: results equal the reference, once-only store and cache, no leftovers."""
    for name in RESULTS:
        assert (folder / name).read_bytes() == reference["bytes"][name], name
    keys = stored_keys(folder)
    assert sorted(keys, key=int) == [str(i) for i in range(LIMIT)], keys  # every sample exactly once
    cached = [(str(r["index"]), r["prediction_sha256"]) for r in complete_records(folder / CACHE)]
    assert len(cached) == len(set(cached)) == LIMIT, cached  # every answer judged (and cached) once
    assert sorted(p.name for p in folder.iterdir()) == reference["listing"]  # no temp file left behind


def kill_then_resume(tmp_path, cache_dir, judge, reference, prepared, point: str):
    """Run with ``NRVL_TEST_KILL_AT=point``; check it died there; rerun in-process; check the result."""
    work = tmp_path / "work"
    env = subprocess_env(cache_dir, NRVL_TEST_KILL_AT=point)
    rc, err = forked_eval(eval_args(work, judge.base_url), env, tmp_path)
    assert rc == -signal.SIGKILL, f"the run was not killed at {point} (rc {rc}): {err[-2000:]}"
    folder = folder_of(work)
    check_no_false_result(folder, reference)
    left = {p.name for p in folder.iterdir()} if folder.is_dir() else set()
    stored = set(stored_keys(folder))
    judged_before = judge.judged()

    del prepared[:]
    assert evaluate.main(eval_args(work, judge.base_url)) == 0
    # Only the samples that were not stored are run again, in TSV order.
    assert prepared == [i for i in range(LIMIT) if str(i) not in stored]
    check_resumed(folder, reference)
    return {"left": left, "stored": stored, "judged_again": judge.judged() - judged_before}


# ----------------------------------------------------------------------------------- named kill points

INFERENCE_POINTS = [
    ("infer.prepare:2", "prefetch thread, preparing batch 2 while batch 1 generates"),
    ("infer.generate:1", "first batch prepared, nothing stored"),
    ("infer.generate:3", "after two batches"),
    ("jsonl.appended:1", "between the two records of batch 1"),
    ("jsonl.appended:4", "between batches"),
    ("jsonl.torn:3", "half way through writing record 3"),
]


@pytest.mark.parametrize("point, what", INFERENCE_POINTS, ids=[p for p, _ in INFERENCE_POINTS])
def test_killed_during_inference_resumes_to_the_same_result(point, what, tmp_path, cache_dir, judge, reference,
                                                            prepared_indices):
    out = kill_then_resume(tmp_path, cache_dir, judge, reference, prepared_indices, point)
    assert not {n for n in out["left"] if not n.startswith(".")} - {STORE}  # no result before inference ends
    assert out["judged_again"] == LIMIT
    if point.startswith("jsonl."):
        n = int(point.split(":")[1])
        assert len(out["stored"]) == n - (point.startswith("jsonl.torn"))


def test_torn_record_is_skipped_and_the_next_record_starts_on_its_own_line(tmp_path, cache_dir, judge, reference,
                                                                          prepared_indices):
    out = kill_then_resume(tmp_path, cache_dir, judge, reference, prepared_indices, "jsonl.torn:2")
    lines = (folder_of(tmp_path / "work") / STORE).read_bytes().split(b"\n")
    torn = [ln for ln in lines if ln and not ln.endswith(b"}")]
    assert len(torn) == 1 and torn[0].startswith(b'{"index": 1'), torn  # the half record, on a line of its own
    assert out["stored"] == {"0"}


def test_killed_during_the_merge(tmp_path, cache_dir, judge, reference, prepared_indices):
    out = kill_then_resume(tmp_path, cache_dir, judge, reference, prepared_indices, "merge:1")
    assert out["left"] == {STORE} and out["judged_again"] == LIMIT


def test_killed_writing_the_predictions_file(tmp_path, cache_dir, judge, reference, prepared_indices):
    out = kill_then_resume(tmp_path, cache_dir, judge, reference, prepared_indices, "atomic.torn:1")
    temps = [n for n in out["left"] if n.startswith(".")]
    assert len(temps) == 1 and temps[0].startswith(f".{STEM}.tsv.") and temps[0].endswith(".tmp"), out["left"]
    assert f"{STEM}.tsv" not in out["left"]


def test_killed_during_judging_with_a_slow_judge(tmp_path, cache_dir, judge, reference, prepared_indices):
    judge.latency = 0.4  # two requests in flight (--judge-nproc 2) when the second reply is cached
    out = kill_then_resume(tmp_path, cache_dir, judge, reference, prepared_indices, "judge.cached:2")
    assert out["stored"] == {str(i) for i in range(LIMIT)}
    assert out["judged_again"] == LIMIT - 2  # the cached replies are not asked again


def test_killed_writing_a_judge_cache_record(tmp_path, cache_dir, judge, reference, prepared_indices):
    out = kill_then_resume(tmp_path, cache_dir, judge, reference, prepared_indices, f"jsonl.torn:{LIMIT + 3}")
    assert out["judged_again"] == LIMIT - 2
    assert not (folder_of(tmp_path / "work") / CACHE).read_bytes().startswith(b"\n")


def test_killed_before_the_rating_is_written(tmp_path, cache_dir, judge, reference, prepared_indices):
    out = kill_then_resume(tmp_path, cache_dir, judge, reference, prepared_indices, "rating.write:1")
    assert out["judged_again"] == 0 and SCORES not in out["left"]


def test_killed_writing_the_predictions_sidecar(tmp_path, cache_dir, judge, reference, prepared_indices):
    out = kill_then_resume(tmp_path, cache_dir, judge, reference, prepared_indices, "atomic.torn:2")
    assert any(n.startswith(f".{META}.") for n in out["left"]) and META not in out["left"]
    assert TSV in out["left"] and out["judged_again"] == LIMIT


def test_killed_before_the_sidecar_then_eval_merges_again(tmp_path, cache_dir, judge, reference, prepared_indices):
    """Killed between the TSV and its sidecar, then ``--mode eval``: the TSV has no sidecar, the store
    holds the run, so it is merged again and judged; the files end as an uninterrupted run's."""
    work = tmp_path / "work"
    rc, err = forked_eval(eval_args(work, judge.base_url), subprocess_env(cache_dir, NRVL_TEST_KILL_AT="atomic.torn:2"),
                          tmp_path)
    assert rc == -signal.SIGKILL, err[-2000:]
    folder = folder_of(work)
    assert (folder / TSV).is_file() and not (folder / META).exists()
    del prepared_indices[:]
    assert evaluate.main(eval_args(work, judge.base_url, "--mode", "eval")) == 0
    assert prepared_indices == []  # eval never runs the model
    check_resumed(folder, reference)


def test_killed_writing_the_score_file(tmp_path, cache_dir, judge, reference, prepared_indices):
    out = kill_then_resume(tmp_path, cache_dir, judge, reference, prepared_indices, "atomic.torn:3")
    assert any(n.startswith(f".{SCORES}.") for n in out["left"]) and SCORES not in out["left"]
    assert out["judged_again"] == 0


def test_killed_between_the_score_and_the_rating_file(tmp_path, cache_dir, judge, reference, prepared_indices):
    out = kill_then_resume(tmp_path, cache_dir, judge, reference, prepared_indices, "rating.scores_written:1")
    assert SCORES in out["left"] and RATING not in out["left"]


def test_killed_writing_the_rating_file(tmp_path, cache_dir, judge, reference, prepared_indices):
    out = kill_then_resume(tmp_path, cache_dir, judge, reference, prepared_indices, "atomic.torn:4")
    assert any(n.startswith(f".{RATING}.") for n in out["left"]) and RATING not in out["left"]


# ----------------------------------------------------------------------------------- kills from outside

def _kill_when(proc: subprocess.Popen, ready, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None:
            pytest.fail(f"the run ended (rc {proc.returncode}) before the kill moment")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("the kill moment never came")
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL


def test_sigkill_from_outside_once_records_are_stored(tmp_path, cache_dir, judge, reference, prepared_indices):
    work = tmp_path / "work"
    store = folder_of(work) / STORE
    proc = start_eval(eval_args(work, judge.base_url), subprocess_env(cache_dir), tmp_path)
    _kill_when(proc, lambda: store.exists() and store.read_bytes().count(b"\n") >= 3)
    check_no_false_result(folder_of(work), reference)
    stored = set(stored_keys(folder_of(work)))
    del prepared_indices[:]
    assert evaluate.main(eval_args(work, judge.base_url)) == 0
    assert prepared_indices == [i for i in range(LIMIT) if str(i) not in stored]
    check_resumed(folder_of(work), reference)


def test_sigkill_from_outside_while_the_slow_judge_answers(tmp_path, cache_dir, judge, reference, prepared_indices):
    work = tmp_path / "work"
    judge.latency = 0.5
    before = judge.judged()
    proc = start_eval(eval_args(work, judge.base_url), subprocess_env(cache_dir), tmp_path)
    _kill_when(proc, lambda: judge.judged() - before >= 3)
    check_no_false_result(folder_of(work), reference)
    judge.latency = 0.0
    del prepared_indices[:]
    assert evaluate.main(eval_args(work, judge.base_url)) == 0
    assert prepared_indices == []  # inference had finished: nothing is generated again
    check_resumed(folder_of(work), reference)


# ----------------------------------------------------------------------------------- slow: chains, torchrun

@pytest.mark.slow
def test_killed_again_and_again_then_finished(tmp_path, cache_dir, judge, reference, prepared_indices):
    """One folder, five runs each killed somewhere later, then a clean rerun: still the reference bytes."""
    work = tmp_path / "work"
    for point in ("jsonl.appended:1", "jsonl.torn:2", "merge:1", "atomic.torn:2", "judge.cached:1", "atomic.torn:4"):
        rc, err = run_eval(eval_args(work, judge.base_url), subprocess_env(cache_dir, NRVL_TEST_KILL_AT=point),
                           tmp_path)
        assert rc == -signal.SIGKILL, (point, rc, err[-2000:])
        check_no_false_result(folder_of(work), reference)
    assert evaluate.main(eval_args(work, judge.base_url)) == 0
    check_resumed(folder_of(work), reference)


@pytest.mark.slow
def test_torchrun_rank_killed_then_resumed_by_one_process(tmp_path, cache_dir, judge, reference, prepared_indices):
    """Rank 1 of 2 is SIGKILLed mid-inference; torchrun stops the job; one process finishes it."""
    import sys

    work = tmp_path / "work"
    env = subprocess_env(cache_dir, NRVL_TEST_KILL_AT="jsonl.appended:2@1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
           str(REPO / "eval" / "run.py"), *eval_args(work, judge.base_url)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode != 0, proc.stderr[-3000:]
    folder = folder_of(work)
    check_no_false_result(folder, reference)
    rank1 = [str(r["index"]) for r in complete_records(folder / f"{STEM}.rank1.jsonl")]
    assert rank1 == ["1", "3"]  # rank 1 takes 1::2 and was killed after its second record
    del prepared_indices[:]
    assert evaluate.main(eval_args(work, judge.base_url)) == 0
    stored_everywhere = [str(r["index"]) for p in sorted(folder.glob(f"{STEM}.rank*.jsonl"))
                         for r in complete_records(p)]
    assert sorted(stored_everywhere, key=int) == [str(i) for i in range(LIMIT)]
    assert not set(prepared_indices) & {int(k) for k in rank1}
    for name in RESULTS:
        assert (folder / name).read_bytes() == reference["bytes"][name], name
