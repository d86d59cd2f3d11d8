"""End to end on the demo data with the tiny offline Qwen2.5-VL: predictions, judge, rating,
resume after a crash, batch size, torchrun with two CPU ranks (gloo)."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fake_hub import hub_with_a_broken_video
from nrvl import evaluate
from nrvl.models.qwen import QwenVL
from nrvl.store import read_predictions

REPO = Path(__file__).resolve().parents[1]
NOISE = ["--noise_name", "gaussian", "--ratio", "0.9"]
BASE = ["--data", "MMBench_Video_demo", "--model", "tiny-qwen2.5-vl"]
STEM = "tiny-qwen2.5-vl_MMBench_Video_demo_gaussian_0.9"


@pytest.fixture(autouse=True)
def _env(eval_env):
    """Offline evaluation set-up (tests/conftest.py)."""


@pytest.fixture(scope="module")
def reference(tmp_path_factory, cache_dir):
    """One full run (gaussian 0.9, batch 1, exact_matching), shared as the reference."""
    mp = pytest.MonkeyPatch()
    mp.setenv("NRVL_CACHE", str(cache_dir))
    mp.setenv("HF_HUB_OFFLINE", "1")
    work = tmp_path_factory.mktemp("reference")
    try:
        rc = evaluate.main([*BASE, *NOISE, "--judge", "exact_matching", "--work-dir", str(work), "--batch-size", "1"])
    finally:
        mp.undo()
    assert rc == 0
    folder = work / "tiny-qwen2.5-vl" / "gaussian"
    return {"work": work, "folder": folder, "predictions": folder / f"{STEM}.tsv"}


def test_end_to_end_writes_predictions_scores_and_rating(reference):
    folder = reference["folder"]
    preds = read_predictions(reference["predictions"])
    assert list(preds["index"]) == list(range(12))
    assert list(preds.columns) == ["index", "video", "video_type", "question", "answer", "dimensions",
                                   "video_path", "prediction"]
    assert all(isinstance(p, str) for p in preds["prediction"])
    rating = json.loads((folder / f"{STEM}_exact_matching_rating.json").read_text())
    assert list(rating) == ["coarse_all", "coarse_valid", "fine_all", "fine_valid"]
    assert list(rating["coarse_all"])[-3:] == ["Perception", "Reasoning", "Overall"]
    assert len(rating["fine_all"]) == 26
    scores = read_predictions(folder / f"{STEM}_exact_matching_score.tsv")
    assert list(scores["index"]) == list(range(12)) and set(scores["score"]) <= {"0", "1", "2", "3"}
    assert (folder / f"{STEM}.rank0.jsonl").is_file()


def test_same_seed_same_predictions_other_seed_other_noise(reference, tmp_path, prepared_indices):
    args = [*BASE, *NOISE, "--mode", "infer", "--limit", "4", "--work-dir", str(tmp_path)]
    assert evaluate.main(args) == 0
    ref = read_predictions(reference["predictions"])
    again = read_predictions(tmp_path / "tiny-qwen2.5-vl" / "gaussian" / f"{STEM}.tsv")
    assert list(again["prediction"]) == list(ref["prediction"][:4])
    # The store of a run with another seed is not reused: all 4 run again.
    del prepared_indices[:]
    assert evaluate.main([*args, "--seed", "1"]) == 0
    assert prepared_indices == [0, 1, 2, 3]


def test_resume_after_a_crash_runs_only_missing_samples(reference, tmp_path, monkeypatch, prepared_indices):
    real_generate = QwenVL.generate
    calls = {"n": 0}

    def crashing_generate(self, batch):
        calls["n"] += 1
        if calls["n"] == 4:
            raise RuntimeError("simulated crash (CUDA error, OOM, node lost)")
        return real_generate(self, batch)

    monkeypatch.setattr(QwenVL, "generate", crashing_generate)
    args = [*BASE, *NOISE, "--judge", "exact_matching", "--work-dir", str(tmp_path), "--batch-size", "2"]
    with pytest.raises(RuntimeError, match="simulated crash"):
        evaluate.main(args)
    folder = tmp_path / "tiny-qwen2.5-vl" / "gaussian"
    assert not (folder / f"{STEM}.tsv").exists()  # no partial predictions file
    stored = [json.loads(line)["index"] for line in (folder / f"{STEM}.rank0.jsonl").read_text().splitlines()]
    assert stored == [0, 1, 2, 3, 4, 5]

    monkeypatch.setattr(QwenVL, "generate", real_generate)
    del prepared_indices[:]
    assert evaluate.main(args) == 0
    assert prepared_indices == [6, 7, 8, 9, 10, 11]
    assert (folder / f"{STEM}.tsv").read_bytes() == reference["predictions"].read_bytes()
    # Everything stored: a third run asks the model nothing and rewrites the same files.
    del prepared_indices[:]
    assert evaluate.main(args) == 0
    assert prepared_indices == []
    assert (folder / f"{STEM}.tsv").read_bytes() == reference["predictions"].read_bytes()


def test_batch_size_2_gives_the_batch_1_predictions(reference, tmp_path):
    assert evaluate.main([*BASE, *NOISE, "--mode", "infer", "--batch-size", "2", "--no-prefetch",
                          "--work-dir", str(tmp_path)]) == 0
    out = tmp_path / "tiny-qwen2.5-vl" / "gaussian" / f"{STEM}.tsv"
    assert out.read_bytes() == reference["predictions"].read_bytes()


def test_clean_run_is_origin_none_none(tmp_path):
    assert evaluate.main([*BASE, "--mode", "infer", "--limit", "2", "--work-dir", str(tmp_path)]) == 0
    out = tmp_path / "tiny-qwen2.5-vl" / "origin" / "tiny-qwen2.5-vl_MMBench_Video_demo_None_None.tsv"
    assert list(read_predictions(out)["index"]) == [0, 1]


def test_mode_eval_judges_stored_predictions_with_an_openai_compatible_judge(reference, tmp_path, monkeypatch):
    from judge_server import FakeJudgeServer

    work = tmp_path / "w"
    shutil.copytree(reference["work"], work)
    monkeypatch.setattr("nrvl.models.build_model", lambda *a, **k: pytest.fail("--mode eval must not build a model"))
    secret = "sk-test-secret-123"
    with FakeJudgeServer(api_key=secret) as srv:
        rc = evaluate.main([*BASE, *NOISE, "--mode", "eval", "--judge", "gpt-4o", "--judge-base-url", srv.base_url,
                            "--judge-key", secret, "--work-dir", str(work)])
        assert rc == 0
        assert srv.total == 1 + 12  # the preflight 'hello', then one request per question
        assert {b["model"] for b in srv.bodies} == {"gpt-4o-2024-05-13"}
    folder = work / "tiny-qwen2.5-vl" / "gaussian"
    rating = json.loads((folder / f"{STEM}_gpt-4o_rating.json").read_text())
    assert rating["coarse_all"]["Overall"] == "0.00"  # random answers never equal the ground truth
    for path in work.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path


@pytest.mark.slow
def test_torchrun_two_cpu_ranks_match_one_process(reference, tmp_path, cache_dir, prepared_indices):
    env = {**os.environ, "NRVL_CACHE": str(cache_dir), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(REPO)}
    env.pop("CUDA_VISIBLE_DEVICES", None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
           str(REPO / "eval" / "run.py"), *BASE, *NOISE, "--judge", "exact_matching", "--device", "cpu",
           "--work-dir", str(tmp_path)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    folder = tmp_path / "tiny-qwen2.5-vl" / "gaussian"
    ranks = {r: [json.loads(x)["index"] for x in (folder / f"{STEM}.rank{r}.jsonl").read_text().splitlines()]
             for r in (0, 1)}
    assert ranks == {0: list(range(0, 12, 2)), 1: list(range(1, 12, 2))}  # rank r took r::2
    assert (folder / f"{STEM}.tsv").read_bytes() == reference["predictions"].read_bytes()
    ref_rating = reference["folder"] / f"{STEM}_exact_matching_rating.json"
    assert (folder / f"{STEM}_exact_matching_rating.json").read_bytes() == ref_rating.read_bytes()
    # A one-process run over the same folder resumes from both ranks' stores: nothing left to run.
    assert evaluate.main([*BASE, *NOISE, "--mode", "infer", "--work-dir", str(tmp_path)]) == 0
    assert prepared_indices == []


def test_undecodable_video_fails_its_samples_only(tmp_path, monkeypatch, capsys, prepared_indices, cache_dir):
    hub_with_a_broken_video(tmp_path, monkeypatch, "a" * 40)

    args = ["--data", "MMBench_Video_8frame_nopack", "--model", "tiny-qwen2.5-vl", "--judge", "exact_matching",
            "--batch-size", "3", "--work-dir", str(tmp_path / "out")]
    assert evaluate.main(args) == 0
    assert "1 sample(s) have no answer" in capsys.readouterr().err
    folder = tmp_path / "out" / "tiny-qwen2.5-vl" / "origin"
    stem = "tiny-qwen2.5-vl_MMBench_Video_8frame_nopack_None_None"
    preds = read_predictions(folder / f"{stem}.tsv")
    assert list(preds["index"]) == [4, 5, 6]
    assert preds["prediction"][1] == "" and preds["prediction"][0] != "" and preds["prediction"][2] != ""
    scores = read_predictions(folder / f"{stem}_exact_matching_score.tsv")
    assert scores["score"][1] == "-1"  # no prediction: not judged, -1 as in VLMEvalKit
    # The batch of 3 failed to prepare, so it was redone one by one; a rerun retries only the broken one.
    assert prepared_indices == [4, 5, 6, 4, 5, 6]
    del prepared_indices[:]
    assert evaluate.main(args) == 0
    assert prepared_indices == [5]
