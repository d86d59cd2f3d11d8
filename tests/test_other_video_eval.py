"""other_video in the evaluation: each sample takes its frames from another dataset video, picked by
its seed, whatever the batch, rank, order or --limit (the donor is never a batch-mate or itself)."""
from __future__ import annotations

import argparse

import pytest
import torch

import nrvl.kernels as K
from nrvl import evaluate
from nrvl.data import Sample
from nrvl.models import ModelRequest, corrupt_clips, donor_request
from nrvl.store import read_predictions


@pytest.fixture(autouse=True)
def _env(eval_env):
    """Offline evaluation set-up (tests/conftest.py)."""


def _samples(videos, per_video=3):
    return [Sample(10 * v + q, f"vid{v}", f"question {q}?", "yes", f"/data/vid{v}.mp4")
            for v in range(videos) for q in range(per_video)]


def _args(**kw):
    return argparse.Namespace(**{"seed": 0, "noise_name": "other_video", "ratio": 0.9, **kw})


def test_donors_are_other_videos_picked_by_the_sample_seed():
    pool = _samples(6)
    reqs = evaluate._requests(pool, _args(), 8, dataset_samples=pool)
    assert all(r.donor_video and r.donor_video != r.video for r in reqs)
    assert all(r.donor_path == f"/data/{r.donor_video}.mp4" for r in reqs)
    assert len({r.donor_video for r in reqs}) >= 4  # spread over the other videos, not one fixed clip
    # The same donor whatever subset this rank runs, and in any order.
    part = evaluate._requests(pool[5:2:-1], _args(), 8, dataset_samples=pool)
    by_index = {r.index: r.donor_video for r in reqs}
    assert all(by_index[r.index] == r.donor_video for r in part)
    # Another base seed, other donors; other noises get none.
    other = evaluate._requests(pool, _args(seed=1), 8, dataset_samples=pool)
    assert [r.donor_video for r in other] != [r.donor_video for r in reqs]
    assert all(r.donor_path is None for r in evaluate._requests(pool, _args(noise_name="gaussian"), 8, pool))


def test_a_dataset_of_one_video_is_one_clear_error():
    pool = _samples(1)
    with pytest.raises(evaluate.EvalError, match="other_video needs a dataset with at least two videos"):
        evaluate._requests(pool, _args(), 8, dataset_samples=pool)


def _clip(seed, T=8, H=24, W=32):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (T, 3, H, W), generator=g, dtype=torch.uint8)


def test_corrupt_clips_gives_each_request_its_own_donor_whatever_the_batch():
    donors = {"/d/a.mp4": _clip(100, H=30, W=40), "/d/b.mp4": _clip(101)}
    reqs = [ModelRequest(index=i, question="q", video_path="/v/same.mp4", video="same", noise="other_video",
                         ratio=0.9, seed=K.derive_seed(0, "same", i), donor_path=p, donor_video=p[3])
            for i, p in enumerate(["/d/a.mp4", "/d/b.mp4", "/d/a.mp4"])]
    clip = _clip(7)  # three questions of the same video in one batch
    loaded = []

    def donor_clips(req):
        loaded.append(req)
        return donors[req.video_path]

    batch = corrupt_clips([clip, clip, clip], reqs, donor_clips=donor_clips)
    assert [r.video_path for r in loaded] == ["/d/a.mp4", "/d/b.mp4", "/d/a.mp4"]
    assert all(r.noise is None and r.donor_path is None for r in loaded)  # the donor is decoded clean
    for j, req in enumerate(reqs):
        want = K.corrupt(clip, "other_video", 0.9, seed=torch.tensor([req.seed]), donor=donors[req.donor_path])
        assert torch.equal(batch[j], want)
        assert torch.equal(corrupt_clips([clip], [req], donor_clips=donor_clips)[0], want)  # alone: the same
        changed = (batch[j] != clip).flatten(1).any(1)
        assert int(changed.sum()) == 7  # int(8 * 0.9) frames replaced
    with pytest.raises(ValueError, match="other_video needs the donor's frames"):
        corrupt_clips([clip], reqs[:1])
    with pytest.raises(ValueError, match="other_video needs a donor video"):
        donor_request(ModelRequest(index=3, question="q", video_path="/v.mp4", noise="other_video", ratio=0.9))


def test_qwen_prepares_other_video_from_the_donor_video(tiny, demo_root):
    videos = sorted((demo_root / "video").glob("*.mp4"))
    own, donor = str(videos[0]), str(videos[1])
    reqs = [ModelRequest(index=i, question="What?", video_path=own, video=videos[0].stem, nframe=8,
                         noise="other_video", ratio=0.9, seed=K.derive_seed(0, videos[0].stem, i),
                         donor_path=donor, donor_video=videos[1].stem) for i in range(2)]
    both = tiny.prepare(reqs)
    alone = tiny.prepare(reqs[:1])
    n = alone.inputs["pixel_values_videos"].shape[0]
    assert torch.equal(both.inputs["pixel_values_videos"][:n], alone.inputs["pixel_values_videos"])
    clean = tiny.prepare([ModelRequest(index=0, question="What?", video_path=own, video=videos[0].stem, nframe=8)])
    assert not torch.equal(alone.inputs["pixel_values_videos"], clean.inputs["pixel_values_videos"])
    # The replaced frames are the donor's frames, resized to the sample's frame size.
    frames, _, _ = tiny._frames(reqs[0])
    donor_frames, _, _ = tiny._frames(donor_request(reqs[0]))
    want = K.corrupt(frames, "other_video", 0.9, seed=torch.tensor([reqs[0].seed]), donor=donor_frames)
    got = corrupt_clips([frames], reqs[:1], donor_clips=lambda r: tiny._frames(r)[0])[0]
    assert torch.equal(got, want)


def test_evaluation_with_other_video_at_batch_size_1_and_2(tmp_path):
    base = ["--data", "MMBench_Video_demo", "--model", "tiny-qwen2.5-vl", "--noise_name", "other_video",
            "--ratio", "0.9", "--mode", "infer", "--no-prefetch", "--limit", "6"]
    assert evaluate.main([*base, "--batch-size", "1", "--work-dir", str(tmp_path / "b1")]) == 0
    assert evaluate.main([*base, "--batch-size", "2", "--work-dir", str(tmp_path / "b2")]) == 0
    stem = "tiny-qwen2.5-vl_MMBench_Video_demo_other_video_0.9"
    one = tmp_path / "b1" / "tiny-qwen2.5-vl" / "other_video" / f"{stem}.tsv"
    two = tmp_path / "b2" / "tiny-qwen2.5-vl" / "other_video" / f"{stem}.tsv"
    assert len(read_predictions(one)) == 6
    assert one.read_bytes() == two.read_bytes()
