"""Sweeps (nrvl.sweep): one process, one model load, one decode per video, every run's files as a
separate run writes them; the shared judge; resume after a crash; bad lists; the report over a sweep."""
import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from fake_hub import hub_with_a_broken_video
from nrvl import evaluate, sweep
from nrvl.models.qwen import QwenVL
from nrvl.store import read_predictions

REPO = Path(__file__).resolve().parents[1]
BASE = ["--data", "MMBench_Video_demo", "--model", "tiny-qwen2.5-vl"]
JUDGE = ["--judge", "exact_matching"]
GRID = ["--noise_name", "gaussian,frame_drop", "--ratio", "0.3,0.9"]
VARIANTS = [(None, None), ("gaussian", 0.3), ("gaussian", 0.9), ("frame_drop", 0.3), ("frame_drop", 0.9)]
MODEL = "tiny-qwen2.5-vl"
N_SAMPLES, N_VIDEOS = 12, 6


def run_dir(work, noise):
    return Path(work) / MODEL / (noise or "origin")


def stem(noise, ratio):
    return f"{MODEL}_MMBench_Video_demo_{noise}_{ratio}"


def run_files(work, noise, ratio, judge="exact_matching"):
    folder, s = run_dir(work, noise), stem(noise, ratio)
    return {"predictions": folder / f"{s}.tsv", "scores": folder / f"{s}_{judge}_score.tsv",
            "rating": folder / f"{s}_{judge}_rating.json", "judge_cache": folder / f"{s}_{judge}_judge.jsonl",
            "store": folder / f"{s}.rank0.jsonl"}


def lines_without(path, *fields):
    """The JSON lines of ``path`` minus fields that hold wall-clock times."""
    return [{k: v for k, v in json.loads(x).items() if k not in fields} for x in Path(path).read_text().splitlines()]


@pytest.fixture(autouse=True)
def _env(eval_env):
    """Offline evaluation set-up (tests/conftest.py)."""


def _counting(mp):
    """Count real work: decode_frames calls per video file, model constructions, items sent to the judge."""
    import nrvl.video
    from nrvl.judge import ExactMatchJudge

    seen = {"decodes": Counter(), "loads": 0, "judged": []}
    real_decode, real_init, real_judge = nrvl.video.decode_frames, QwenVL.__init__, ExactMatchJudge.judge_many

    def decode(path, *a, **k):
        seen["decodes"][Path(path).stem] += 1
        return real_decode(path, *a, **k)

    def init(self, *a, **k):
        seen["loads"] += 1
        real_init(self, *a, **k)

    def judge_many(self, items, **k):
        seen["judged"].extend((i.question, i.answer, i.prediction) for i in items)
        return real_judge(self, items, **k)

    mp.setattr(nrvl.video, "decode_frames", decode)
    mp.setattr(QwenVL, "__init__", init)
    mp.setattr(ExactMatchJudge, "judge_many", judge_many)
    return seen


@pytest.fixture(scope="module")
def swept(tmp_path_factory, cache_dir):
    """One sweep (origin + gaussian, frame_drop x 0.3, 0.9), batch 1, counted."""
    mp = pytest.MonkeyPatch()
    mp.setenv("NRVL_CACHE", str(cache_dir))
    mp.setenv("HF_HUB_OFFLINE", "1")
    work = tmp_path_factory.mktemp("sweep")
    try:
        seen = _counting(mp)
        rc = evaluate.main([*BASE, *GRID, *JUDGE, "--batch-size", "1", "--work-dir", str(work)])
    finally:
        mp.undo()
    assert rc == 0
    return {"work": work, **seen}


@pytest.fixture(scope="module")
def separate(tmp_path_factory, cache_dir):
    """The same five runs, each a separate eval/run.py invocation."""
    mp = pytest.MonkeyPatch()
    mp.setenv("NRVL_CACHE", str(cache_dir))
    mp.setenv("HF_HUB_OFFLINE", "1")
    work = tmp_path_factory.mktemp("separate")
    try:
        for noise, ratio in VARIANTS:
            flags = [] if noise is None else ["--noise_name", noise, "--ratio", str(ratio)]
            assert evaluate.main([*BASE, *flags, *JUDGE, "--batch-size", "1", "--work-dir", str(work)]) == 0
    finally:
        mp.undo()
    return work


@pytest.fixture
def no_model(monkeypatch):
    monkeypatch.setattr("nrvl.models.build_model", lambda *a, **k: pytest.fail("a model was built"))


# ------------------------------------------------------------------------------------ equality

def test_sweep_files_equal_separate_runs(swept, separate):
    for noise, ratio in VARIANTS:
        ours, theirs = run_files(swept["work"], noise, ratio), run_files(separate, noise, ratio)
        for kind in ("predictions", "scores", "rating"):
            assert ours[kind].read_bytes() == theirs[kind].read_bytes(), (noise, ratio, kind)
        # Same records in the same order; only the wall-clock fields differ.
        assert lines_without(ours["judge_cache"], "time") == lines_without(theirs["judge_cache"], "time")
        assert lines_without(ours["store"], "time", "seconds") == lines_without(theirs["store"], "time", "seconds")
        assert sorted(p.name for p in run_dir(swept["work"], noise).iterdir()) == \
            sorted(p.name for p in run_dir(separate, noise).iterdir())
    preds = read_predictions(run_files(swept["work"], None, None)["predictions"])
    assert list(preds["index"]) == list(range(N_SAMPLES))
    # The noise changed some answers (the comparison above is not trivially between identical runs).
    noisy = read_predictions(run_files(swept["work"], "gaussian", 0.9)["predictions"])
    assert list(noisy["prediction"]) != list(preds["prediction"])


def test_one_model_load_and_one_decode_per_video(swept):
    assert swept["loads"] == 1
    assert swept["decodes"] == Counter({f"demo_{k}": 1 for k in range(N_VIDEOS)})
    doc = json.loads((swept["work"] / MODEL / f"{MODEL}_MMBench_Video_demo_sweep.json").read_text())
    counts = doc["counts"]
    assert counts["model_loads"] == 1 and counts["model_loads_per_process"] == [1]
    assert counts["decodes_per_video"] == {f"demo_{k}": 1 for k in range(N_VIDEOS)}
    assert counts["max_decodes_per_video"] == 1
    assert counts["variants"] == len(VARIANTS) and counts["generated"] == N_SAMPLES * len(VARIANTS)
    assert [(r["noise"], r["ratio"]) for r in doc["runs"]] == VARIANTS


def _distinct_triples(work):
    triples = set()
    for noise, ratio in VARIANTS:
        t = read_predictions(run_files(work, noise, ratio)["predictions"])
        triples |= set(zip(t["question"], t["answer"], t["prediction"]))
    return triples


def test_shared_judge_asks_each_distinct_answer_once(swept):
    distinct = _distinct_triples(swept["work"])
    assert len(distinct) < N_SAMPLES * len(VARIANTS)  # some answers repeat across runs: sharing is exercised
    assert Counter(swept["judged"]) == Counter(distinct)  # each distinct triple sent exactly once
    counts = json.loads((swept["work"] / MODEL / f"{MODEL}_MMBench_Video_demo_sweep.json").read_text())["counts"]
    assert counts["judge_requests"] == len(distinct)
    assert counts["judge_requests"] + counts["judge_shared"] == N_SAMPLES * len(VARIANTS)
    for noise, ratio in VARIANTS:  # yet every run has every reply in its own cache
        assert len(run_files(swept["work"], noise, ratio)["judge_cache"].read_text().splitlines()) == N_SAMPLES


def test_shared_judge_over_http_matches_separate_judging(swept, tmp_path, no_model):
    from judge_server import FakeJudgeServer

    def fresh_copy(name):
        work = tmp_path / name
        shutil.copytree(swept["work"], work)
        for p in work.rglob("*exact_matching*"):
            p.unlink()
        return work

    shared, alone = fresh_copy("shared"), fresh_copy("alone")
    judge = ["--judge", "gpt-4o", "--judge-key", "sk-test"]
    with FakeJudgeServer(api_key="sk-test") as srv:
        assert evaluate.main([*BASE, *GRID, "--mode", "eval", *judge, "--judge-base-url", srv.base_url,
                              "--work-dir", str(shared)]) == 0
        assert srv.total == 1 + len(_distinct_triples(shared))  # the preflight, then each distinct triple once
    with FakeJudgeServer(api_key="sk-test") as srv:
        for noise, ratio in VARIANTS:
            flags = [] if noise is None else ["--noise_name", noise, "--ratio", str(ratio)]
            assert evaluate.main([*BASE, *flags, "--mode", "eval", *judge, "--judge-base-url", srv.base_url,
                                  "--work-dir", str(alone)]) == 0
        assert srv.total == len(VARIANTS) * (1 + N_SAMPLES)
    for noise, ratio in VARIANTS:
        ours, theirs = run_files(shared, noise, ratio, "gpt-4o"), run_files(alone, noise, ratio, "gpt-4o")
        assert ours["rating"].read_bytes() == theirs["rating"].read_bytes()
        assert ours["scores"].read_bytes() == theirs["scores"].read_bytes()
        fields = ("time", "prompt_tokens", "completion_tokens")  # arrival order varies with a concurrent judge
        key = lambda r: r["index"]  # noqa: E731
        assert sorted(lines_without(ours["judge_cache"], *fields), key=key) == \
            sorted(lines_without(theirs["judge_cache"], *fields), key=key)


# ------------------------------------------------------------------------------------ resume

def test_resume_after_a_crash_finishes_with_identical_files(swept, tmp_path, monkeypatch):
    seen = _counting(monkeypatch)
    asked = []
    real_prepare, real_generate = QwenVL.prepare_clips, QwenVL.generate

    def prepare_clips(self, batch, clips, donors=None):
        asked.extend((r.noise, r.ratio, r.index) for r in batch)
        return real_prepare(self, batch, clips, donors)

    calls = {"n": 0}

    def crashing_generate(self, batch):
        calls["n"] += 1
        # Batches of 2 samples, each through the 5 runs: call 18 is batch (6, 7) in the third run.
        if calls["n"] == 18:
            raise RuntimeError("simulated crash (CUDA error, OOM, node lost)")
        return real_generate(self, batch)

    monkeypatch.setattr(QwenVL, "prepare_clips", prepare_clips)
    monkeypatch.setattr(QwenVL, "generate", crashing_generate)
    args = [*BASE, *GRID, *JUDGE, "--batch-size", "2", "--work-dir", str(tmp_path)]
    with pytest.raises(RuntimeError, match="simulated crash"):
        evaluate.main(args)
    for k, (noise, ratio) in enumerate(VARIANTS):
        files = run_files(tmp_path, noise, ratio)
        assert not files["predictions"].exists()  # no partial predictions file
        stored = [r["index"] for r in lines_without(files["store"])]
        assert stored == list(range(8 if k < 2 else 6)), (noise, ratio)

    monkeypatch.setattr(QwenVL, "generate", real_generate)
    asked.clear()
    seen["decodes"].clear()
    assert evaluate.main(args) == 0
    # Only what was missing ran: samples 6-7 of the last three runs, then 8-11 of every run.
    assert Counter(asked) == Counter([(n, r, i) for n, r in VARIANTS[2:] for i in (6, 7)]
                                     + [(n, r, i) for i in range(8, 12) for n, r in VARIANTS])
    assert seen["decodes"] == Counter({"demo_3": 1, "demo_4": 1, "demo_5": 1})
    for noise, ratio in VARIANTS:
        ours, ref = run_files(tmp_path, noise, ratio), run_files(swept["work"], noise, ratio)
        for kind in ("predictions", "scores", "rating"):
            assert ours[kind].read_bytes() == ref[kind].read_bytes(), (noise, ratio, kind)
    # Everything stored: a third run loads no model, decodes nothing and rewrites the same files.
    asked.clear()
    seen["loads"] = 0
    assert evaluate.main(args) == 0
    assert asked == [] and seen["loads"] == 0
    ours = run_files(tmp_path, "frame_drop", 0.9)["rating"]
    assert ours.read_bytes() == run_files(swept["work"], "frame_drop", 0.9)["rating"].read_bytes()


def test_a_sweep_resumes_from_a_separate_run(swept, separate, tmp_path, monkeypatch):
    """The stores are the single runs' stores: a sweep over a folder holding one finished run skips it."""
    shutil.copytree(run_dir(separate, "gaussian"), run_dir(tmp_path, "gaussian"))
    asked = []
    real_prepare = QwenVL.prepare_clips

    def prepare_clips(self, batch, clips, donors=None):
        asked.extend((r.noise, r.ratio) for r in batch)
        return real_prepare(self, batch, clips, donors)

    monkeypatch.setattr(QwenVL, "prepare_clips", prepare_clips)
    assert evaluate.main([*BASE, "--noise_name", "gaussian", "--ratio", "0.3,0.9", "--mode", "infer", "--limit", "2",
                          "--work-dir", str(tmp_path)]) == 0
    assert Counter(asked) == Counter({(None, None): 2})
    for noise, ratio in VARIANTS[:3]:
        got = read_predictions(run_files(tmp_path, noise, ratio)["predictions"])
        ref = read_predictions(run_files(swept["work"], noise, ratio)["predictions"])
        assert list(got["prediction"]) == list(ref["prediction"][:2])


def test_undecodable_video_fails_its_samples_in_every_run_and_is_tried_once(tmp_path, monkeypatch, capsys):
    hub_with_a_broken_video(tmp_path, monkeypatch, "b" * 40)
    seen = _counting(monkeypatch)

    args = ["--data", "MMBench_Video_8frame_nopack", "--model", MODEL, *JUDGE, "--noise_name", "gaussian",
            "--ratio", "0.3,0.9", "--batch-size", "3", "--work-dir", str(tmp_path / "out")]
    assert evaluate.main(args) == 0
    assert seen["decodes"] == Counter({"ok": 1, "broken": 1})  # the broken file is not retried per run
    for noise, ratio in VARIANTS[:3]:
        s = f"{MODEL}_MMBench_Video_8frame_nopack_{noise}_{ratio}"
        folder = tmp_path / "out" / MODEL / (noise or "origin")
        preds = read_predictions(folder / f"{s}.tsv")
        assert list(preds["index"]) == [4, 5, 6]
        assert preds["prediction"][1] == "" and preds["prediction"][0] != "" and preds["prediction"][2] != ""
        assert read_predictions(folder / f"{s}_exact_matching_score.tsv")["score"][1] == "-1"
    # A rerun retries only the broken sample, in each run.
    seen["decodes"].clear()
    assert evaluate.main(args) == 0
    assert seen["decodes"] == Counter({"broken": 1})


# ------------------------------------------------------------------------------------ lists

def test_lists_expand_families_and_all_in_registry_order():
    from nrvl.kernels import FAMILIES, list_noises

    family = next(f for f in FAMILIES if len(list_noises(f)) > 1)
    assert sweep.is_sweep(family, "0.5") and sweep.is_sweep("all", "0.5") and sweep.is_sweep("gaussian", "0.3,0.6")
    assert not sweep.is_sweep("gaussian", "0.5") and not sweep.is_sweep(None, None)
    v = sweep.plan_variants(family, "0.5")
    assert v[0] == sweep.Variant() and [x.noise for x in v[1:]] == list_noises(family)
    v = sweep.plan_variants(f"all,gaussian,{family}", "0.9, 0.3,0.90")
    assert [x.noise for x in v[1::2]] == list_noises()  # repeats dropped, registry order
    assert [x.ratio for x in v[1:3]] == [0.9, 0.3] and len(v) == 1 + 2 * len(list_noises())
    assert sweep.parse_ratios(None) == [] and sweep.parse_ratios(0.9) == [0.9]


def test_minus_items_leave_noises_and_families_out_wherever_they_stand():
    from nrvl.kernels import list_noises

    assert sweep.parse_noises("all,-target_block") == [n for n in list_noises() if n != "target_block"]
    assert sweep.parse_noises("-target_block,all") == sweep.parse_noises("all,-target_block")
    assert sweep.parse_noises("all,-weather,-gaussian") == [n for n in list_noises()
                                                             if n not in list_noises("weather") and n != "gaussian"]
    assert sweep.parse_noises("quality, -gaussian") == [n for n in list_noises("quality") if n != "gaussian"]
    assert sweep.is_sweep("all,-target_block", "0.3")


BAD = [
    (["--noise_name", "all,-gausian", "--ratio", "0.3"], r"cannot leave out 'gausian': not a family"),
    (["--noise_name", "gaussian,-gaussian", "--ratio", "0.3"], r"'gaussian,-gaussian' leaves no noise to run"),
    (["--noise_name", "all,-", "--ratio", "0.3"], r"'all,-' has an empty item"),
    (["--noise_name", "gaussian,,frame_drop", "--ratio", "0.3"],
     r"--noise_name 'gaussian,,frame_drop' has an empty item"),
    (["--noise_name", "gaussian,gausian", "--ratio", "0.3"],
     r"unknown --noise_name 'gausian'; valid: all, a family \(quality, .*\) or a noise \(gaussian, .*\)"),
    (["--noise_name", "wether", "--ratio", "0.3,0.6"], r"unknown --noise_name 'wether'"),
    (["--noise_name", "all", "--ratio", "0.3,abc"], r"--ratio: 'abc' is not a number"),
    (["--noise_name", "all", "--ratio", "0.3,1.5"], r"--ratio must be in \[0, 1\], got 1.5 \(in '0.3,1.5'\)"),
    (["--noise_name", "all", "--ratio", "0.3,"], r"--ratio '0.3,' has an empty item"),
    (["--noise_name", "all", "--ratio", "nan,0.3"], r"--ratio must be in \[0, 1\], got nan"),
    (["--noise_name", "all"], r"--noise_name all needs --ratio"),
    (["--ratio", "0.3,0.6"], r"--ratio was given without --noise_name"),
]


@pytest.mark.parametrize("flags, message", BAD, ids=["minus-unknown", "minus-all", "minus-empty", "empty-noise", "unknown-noise", "unknown-family", "ratio-nan-text",
                                                   "ratio-range", "ratio-empty", "ratio-nan", "no-ratio",
                                                   "no-noise"])
def test_bad_lists_are_one_line_before_anything_runs(flags, message, capsys, tmp_path, no_model):
    rc = evaluate.main([*BASE, *flags, *JUDGE, "--work-dir", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1, err
    assert err[0].startswith("eval/run.py: error: ") and re.search(message, err[0]), err[0]
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------------ report

def test_report_over_a_sweep_lists_every_noise_and_ratio(swept, tmp_path):
    import pandas as pd

    from nrvl.cli import main as nrvl_main

    out = tmp_path / "report"
    assert nrvl_main(["report", str(swept["work"]), "--out", str(out), "--no-figures"]) == 0
    summary = pd.read_csv(out / "summary.tsv", sep="\t", dtype=str, keep_default_na=False)
    got = {(n, float(r)) for n, r in zip(summary["noise"], summary["ratio"])}
    assert got == {(n, r) for n, r in VARIANTS if n is not None}
    assert set(summary["model"]) == {MODEL}
    problems = (out / "problems.tsv").read_text()
    assert "sweep.json" not in problems and "unfinished" not in problems


def test_demo_sweep_runs_the_sweep_then_the_report(tmp_path, capsys):
    from nrvl import demo

    work = tmp_path / "demo"
    assert demo.main(["--sweep", "--noise_name", "gaussian", "--ratio", "0.3,0.9", "--limit", "2",
                      "--work-dir", str(work)]) == 0
    said = capsys.readouterr()
    assert "index.html" in said.out + said.err and "demo sweep done" in said.out
    assert (work / "report" / "index.html").is_file()
    assert len((work / "report" / "summary.tsv").read_text().splitlines()) == 1 + 2
    # Without --sweep it is the single run it always was; the path it prints is the run's own.
    assert demo.main(["--ratio", "0.90", "--limit", "1", "--mode", "infer", "--work-dir", str(work)]) == 0
    out = capsys.readouterr().out
    printed = Path(re.search(r"predictions: (\S+)", out)[1])
    assert printed.name == f"{stem('gaussian', 0.9)}.tsv" and printed.is_file()


# ------------------------------------------------------------------------------------ torchrun

@pytest.mark.slow
def test_torchrun_sweep_two_cpu_ranks_match_one_process(swept, tmp_path, cache_dir):
    env = {**os.environ, "NRVL_CACHE": str(cache_dir), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(REPO)}
    env.pop("CUDA_VISIBLE_DEVICES", None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
           str(REPO / "eval" / "run.py"), *BASE, *GRID, *JUDGE, "--device", "cpu", "--work-dir", str(tmp_path)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for noise, ratio in VARIANTS:
        ours, ref = run_files(tmp_path, noise, ratio), run_files(swept["work"], noise, ratio)
        for kind in ("predictions", "scores", "rating"):
            assert ours[kind].read_bytes() == ref[kind].read_bytes(), (noise, ratio, kind)
        rank1 = run_dir(tmp_path, noise) / f"{stem(noise, ratio)}.rank1.jsonl"
        assert [r["index"] for r in lines_without(rank1)] == list(range(1, N_SAMPLES, 2))  # rank r took r::2
    counts = json.loads((tmp_path / MODEL / f"{MODEL}_MMBench_Video_demo_sweep.json").read_text())["counts"]
    assert counts["model_loads_per_process"] == [1, 1]
    assert counts["generated"] == N_SAMPLES * len(VARIANTS)


# ------------------------------------------------------------------------------------ audit fixes

def test_other_video_donors_come_from_the_clip_cache_and_are_counted(tmp_path, monkeypatch):
    """Donor frames are the cache's clips: every real decode is in the counts, and the sweep's
    other_video runs equal a single run's."""
    single = tmp_path / "single"
    assert evaluate.main([*BASE, *JUDGE, "--noise_name", "other_video", "--ratio", "0.9", "--limit", "6",
                          "--mode", "infer", "--work-dir", str(single)]) == 0
    seen = _counting(monkeypatch)
    work = tmp_path / "sweep"
    assert evaluate.main([*BASE, *JUDGE, "--noise_name", "other_video", "--ratio", "0.3,0.9", "--limit", "6",
                          "--batch-size", "4", "--mode", "infer", "--work-dir", str(work)]) == 0
    counts = json.loads((work / MODEL / f"{MODEL}_MMBench_Video_demo_sweep.json").read_text())["counts"]
    assert counts["decodes_per_video"] == dict(sorted(seen["decodes"].items()))
    # the 6 questions are on 3 videos; their donors add videos that no question of the limit is on
    assert set(seen["decodes"]) > {"demo_0", "demo_1", "demo_2"}
    # decoding each donor per sample and ratio took 3 + 6 x 2 = 15 decodes; the cache shares them
    assert sum(seen["decodes"].values()) < 15
    ours = read_predictions(work / MODEL / "other_video" / f"{stem('other_video', 0.9)}.tsv")
    ref = read_predictions(single / MODEL / "other_video" / f"{stem('other_video', 0.9)}.tsv")
    assert list(ours["prediction"]) == list(ref["prediction"])


def test_a_resumed_sweep_batches_each_run_as_a_resumed_single_run(tmp_path, monkeypatch):
    assert evaluate.main([*BASE, "--noise_name", "gaussian", "--ratio", "0.3", "--limit", "1", "--mode", "infer",
                          "--work-dir", str(tmp_path)]) == 0
    batches = []
    real_prepare = QwenVL.prepare_clips

    def prepare_clips(self, batch, clips, donors=None):
        batches.append(((batch[0].noise, batch[0].ratio), [r.index for r in batch]))
        return real_prepare(self, batch, clips, donors)

    monkeypatch.setattr(QwenVL, "prepare_clips", prepare_clips)
    assert evaluate.main([*BASE, "--noise_name", "gaussian", "--ratio", "0.3,0.9", "--limit", "6", "--batch-size",
                          "2", "--mode", "infer", "--work-dir", str(tmp_path)]) == 0
    by_run = {}
    for run, idx in batches:
        by_run.setdefault(run, []).append(idx)
    assert by_run[("gaussian", 0.3)] == [[1, 2], [3, 4], [5]]  # what the resumed single run would batch
    assert by_run[("gaussian", 0.9)] == by_run[(None, None)] == [[0, 1], [2, 3], [4, 5]]


def test_counts_of_earlier_invocations_are_kept(tmp_path):
    args = [*BASE, *JUDGE, "--noise_name", "gaussian", "--ratio", "0.3,0.9", "--limit", "2",
            "--work-dir", str(tmp_path)]
    assert evaluate.main([*args[:-2], "--mode", "infer", *args[-2:]]) == 0
    assert evaluate.main([*args[:-2], "--mode", "eval", *args[-2:]]) == 0
    doc = json.loads((tmp_path / MODEL / f"{MODEL}_MMBench_Video_demo_sweep.json").read_text())
    assert doc["mode"] == "eval" and doc["counts"]["generated"] == 0 and doc["counts"]["judge_requests"] > 0
    (infer,) = doc["history"]
    assert infer["mode"] == "infer" and infer["counts"]["generated"] == 6 and infer["counts"]["model_loads"] == 1
    assert "runs" not in infer and infer["written_at"] <= doc["written_at"]


def test_each_run_prints_its_own_judge_usage(tmp_path, capsys):
    args = [*BASE, *JUDGE, "--noise_name", "gaussian,frame_drop", "--ratio", "0.9", "--limit", "3",
            "--work-dir", str(tmp_path)]
    assert evaluate.main(args) == 0
    lines = [x for x in capsys.readouterr().out.splitlines() if x.startswith("judge exact_matching")]
    assert len(lines) == 3  # origin, gaussian, frame_drop
    per_run = [int(re.search(r"this run: (\d+) requests", x).group(1)) for x in lines]
    so_far = [int(re.search(r"sweep so far: (\d+) requests", x).group(1)) for x in lines]
    assert so_far == [sum(per_run[:k + 1]) for k in range(3)]
    assert per_run[0] == 3 and sum(per_run) <= 9


def test_an_eval_sweep_judges_every_run_that_has_predictions(tmp_path, capsys):
    """--mode eval over a folder where one run was never inferred: the others are judged, then exit 1/2."""
    common = [*BASE, *JUDGE, "--limit", "2", "--work-dir", str(tmp_path)]
    assert evaluate.main([*common, "--noise_name", "gaussian", "--ratio", "0.9", "--mode", "infer"]) == 0
    assert evaluate.main([*common, "--mode", "infer"]) == 0
    rc = evaluate.main([*common, "--noise_name", "gaussian,frame_drop", "--ratio", "0.9", "--mode", "eval"])
    err = capsys.readouterr().err
    assert rc == 2 and "1 of 3 run(s) not judged (the others were); first, frame_drop 0.9: no predictions" in err
    for noise, ratio in ((None, None), ("gaussian", 0.9)):
        assert run_files(tmp_path, noise, ratio)["rating"].is_file()
    assert not run_files(tmp_path, "frame_drop", 0.9)["rating"].exists()


@pytest.mark.parametrize("noise", ["target_block", "occlusion", "all,-gaussian"])
def test_target_block_without_detector_weights_stops_before_anything_runs(noise, capsys, tmp_path, no_model,
                                                                          monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))  # an empty hub cache
    rc = evaluate.main([*BASE, "--noise_name", noise, "--ratio", "0.3", *JUDGE, "--work-dir", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1, err
    want = str(tmp_path / "torch-home" / "hub" / "checkpoints" / "fasterrcnn_mobilenet_v3_large_fpn-fb6a3cc7.pth")
    assert want in err[0] and "--noise_name all,-target_block" in err[0], err[0]
    assert not (tmp_path / "out").exists()  # nothing ran, not even the clean run


def test_detector_weights_are_not_needed_to_judge_or_without_target_block(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    evaluate.check_detector_weights(["target_block"], "eval")  # judging corrupts nothing
    evaluate.check_detector_weights([None, "gaussian"], "all")
    with pytest.raises(evaluate.EvalError, match="weights file"):
        evaluate.check_detector_weights([None, "target_block"], "infer")
    ckpt = tmp_path / "torch-home" / "hub" / "checkpoints"
    ckpt.mkdir(parents=True)
    (ckpt / "fasterrcnn_mobilenet_v3_large_fpn-fb6a3cc7.pth").write_bytes(b"x")
    evaluate.check_detector_weights(["target_block"], "all")  # present: the run may start
