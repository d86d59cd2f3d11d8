"""Determinism: the corrupted frames the model sees and its predictions are identical at world size
1, 2 and 3 (torchrun --standalone, gloo, CPU), with batch size 1 and 4, and with the questions in
another order. Every sample's noise seed comes from (seed, video, index, noise, ratio) alone."""
from __future__ import annotations

import hashlib
import json
import random
import subprocess
import sys

import pytest
from rel_util import DEMO, REPO, STEM, install_frame_recorder, subprocess_env
from test_data import build_hub

import nrvl.data.mmbench as mmb
from nrvl import evaluate
from nrvl.store import read_predictions

NOISE = ["--noise_name", "impulse", "--ratio", "0.6"]  # per-pixel random draws: any seed slip shows
STEM_SHOT = STEM.replace("gaussian_0.9", "impulse_0.6")


def run_in_process(work, batch, monkeypatch, data=DEMO):
    records = []
    from nrvl.models import qwen

    monkeypatch.setattr(qwen, "corrupt_clips", qwen.corrupt_clips)  # restored after the test
    install_frame_recorder(records.extend)
    assert evaluate.main([*data, *NOISE, "--judge", "exact_matching", "--batch-size", str(batch), "--device", "cpu",
                          "--work-dir", str(work)]) == 0
    return records


def run_torchrun(work, world, batch, cache_dir, tmp_path):
    dump = tmp_path / f"frames-w{world}-b{batch}"
    dump.mkdir()
    env = subprocess_env(cache_dir, NRVL_TEST_FRAME_DUMP=dump)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={world}",
           str(REPO / "tests" / "reliability" / "frames_run.py"), *DEMO, *NOISE, "--judge", "exact_matching",
           "--batch-size", str(batch), "--device", "cpu", "--work-dir", str(work)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=420, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    per_rank = {r: [json.loads(x) for x in (dump / f"frames.rank{r}.jsonl").read_text().splitlines()]
                for r in range(world)}
    assert {r: [x["index"] for x in recs] for r, recs in per_rank.items()} == \
        {r: list(range(r, 12, world)) for r in range(world)}  # rank r corrupted exactly samples r::world
    return [x for recs in per_rank.values() for x in recs]


def by_index(records) -> dict:
    out = {}
    for r in records:
        assert r["index"] not in out, f"sample {r['index']} corrupted twice"
        out[r["index"]] = (tuple(r["shape"]), r["sha256"])
    return out


@pytest.fixture(scope="module")
def reference(tmp_path_factory, cache_dir, demo_ready):
    """World size 1, batch size 1, TSV order: frames by index, predictions and rating bytes."""
    mp = pytest.MonkeyPatch()
    mp.setenv("NRVL_CACHE", str(cache_dir))
    work = tmp_path_factory.mktemp("det-ref")
    try:
        frames = by_index(run_in_process(work, 1, mp))
    finally:
        mp.undo()
    folder = work / "tiny-qwen2.5-vl" / "impulse"
    assert sorted(frames) == list(range(12))
    assert len({sha for _, sha in frames.values()}) == 12  # every clip corrupted differently
    return {"frames": frames, "predictions": (folder / f"{STEM_SHOT}.tsv").read_bytes(),
            "rating": (folder / f"{STEM_SHOT}_exact_matching_rating.json").read_bytes()}


def check_same(work, frames, reference):
    folder = work / "tiny-qwen2.5-vl" / "impulse"
    assert by_index(frames) == reference["frames"]
    assert (folder / f"{STEM_SHOT}.tsv").read_bytes() == reference["predictions"]
    assert (folder / f"{STEM_SHOT}_exact_matching_rating.json").read_bytes() == reference["rating"]


def test_batch_size_4_equals_batch_size_1(tmp_path, monkeypatch, reference):
    check_same(tmp_path, run_in_process(tmp_path, 4, monkeypatch), reference)


def test_another_sample_order_gives_the_same_frames_and_answers(tmp_path, monkeypatch, reference, demo_ready):
    """The demo questions, shuffled, served as MMBench-Video from a hub cache: per question, same clip and answer."""
    from nrvl.data import demo

    rows = demo.rows()
    random.Random(5).shuffle(rows)
    assert [r["index"] for r in rows] != sorted(r["index"] for r in rows)
    cols = demo.COLUMNS
    tsv = "\t".join(cols) + "\n" + "".join("\t".join(str(r[c]) for c in cols) + "\n" for r in rows)
    chunk = {c.video: (demo_ready / "video" / f"{c.video}.mp4").read_bytes() for c in demo.CLIPS}
    build_hub(tmp_path / "hub", tsv, {"video_chunk_0.pkl": chunk})
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(mmb, "TSV_MD5", hashlib.md5(tsv.encode()).hexdigest())

    data = ["--data", "MMBench_Video_8frame_nopack", "--model", "tiny-qwen2.5-vl"]
    records = run_in_process(tmp_path / "w", 4, monkeypatch, data=data)
    assert [r["index"] for r in records] == [r["index"] for r in rows]  # really run in the shuffled order
    assert by_index(records) == reference["frames"]
    stem = "tiny-qwen2.5-vl_MMBench_Video_8frame_nopack_impulse_0.6"
    got = read_predictions(tmp_path / "w" / "tiny-qwen2.5-vl" / "impulse" / f"{stem}.tsv")
    want = read_predictions_bytes(reference["predictions"])
    assert dict(zip(got["index"], got["prediction"])) == dict(zip(want["index"], want["prediction"]))
    rating = tmp_path / "w" / "tiny-qwen2.5-vl" / "impulse" / f"{stem}_exact_matching_rating.json"
    assert rating.read_bytes() == reference["rating"]  # the rating does not depend on the row order


def read_predictions_bytes(data: bytes):
    import io

    import pandas as pd

    return pd.read_csv(io.BytesIO(data), sep="\t", dtype=str, keep_default_na=False, na_filter=False).astype(
        {"index": "int64"})


@pytest.mark.parametrize("world, batch", [(2, 1), (2, 4), (3, 1), (3, 4)],
                         ids=["world2-batch1", "world2-batch4", "world3-batch1", "world3-batch4"])
def test_torchrun_world_sizes(world, batch, tmp_path, cache_dir, reference):
    check_same(tmp_path / "w", run_torchrun(tmp_path / "w", world, batch, cache_dir, tmp_path), reference)
