"""fps presets (``MMBench_Video_1fps_nopack``, ``MMBench_Video_demo_1fps``, ``--fps``): VLMEvalKit's fps mode.

Frame-based (API) models take ``int(i * video_fps / fps)`` for ``i < int(N / video_fps * fps)``
with decord's header frame rate; Qwen2.5-VL gets ``fps`` in its video item and
qwen-vl-utils' fps rule picks the count (``reference/mmbench-video.md`` 1.4, 4.2, 5).
"""
import json

import pytest
import torch

from nrvl.models import ModelRequest, build_model
from nrvl.video import VideoInfo, probe, qwen_sample, vlmeval_sample


# ----------------------------------------------------------------------------- index rules

@pytest.mark.parametrize("N, video_fps", [(10800, 30.0), (10789, 30000 / 1001), (16, 8.0), (54000, 30.0),
                                          (3000, 25.0), (900, 29.97), (7, 30.0), (1441, 24.0)])
@pytest.mark.parametrize("fps", [1.0, 0.5, 2.0])
def test_qwen_fps_count_and_indices_equal_qwen_vl_utils(N, video_fps, fps):
    """Every count qwen-vl-utils' own smart_nframes picks, then its linspace: clamp to [4, min(768, N)], even."""
    vp = pytest.importorskip("qwen_vl_utils.vision_process")
    n = vp.smart_nframes({"fps": fps}, total_frames=N, video_fps=video_fps)
    expected = torch.linspace(0, N - 1, n).round().long().tolist()
    assert qwen_sample(N, video_fps, fps=fps) == expected


def test_qwen_fps_rule_on_known_clips():
    assert len(qwen_sample(10800, 30.0, fps=1.0)) == 360  # a 6-minute clip
    assert len(qwen_sample(10789, 30000 / 1001, fps=1.0)) == 358  # 359.98 s: floored to even
    assert len(qwen_sample(54000, 30.0, fps=1.0)) == 768  # 30 minutes: qwen-vl-utils' cap
    assert qwen_sample(16, 8.0, fps=1.0) == [0, 5, 10, 15]  # 2 s: raised to the 4-frame minimum


def test_vlmeval_fps_mode_starts_at_zero_and_steps_by_the_rate():
    assert vlmeval_sample(10800, 30.0, fps=1.0) == [30 * i for i in range(360)]
    assert vlmeval_sample(16, 8.0, fps=1.0) == [0, 8]
    assert vlmeval_sample(7, 30.0, fps=1.0) == []  # under a second: VLMEvalKit extracts no frame
    assert vlmeval_sample(1000, 30.0, nframe=8) == [111, 222, 333, 444, 555, 666, 777, 888]


@pytest.mark.parametrize("fn", [qwen_sample, vlmeval_sample])
def test_exactly_one_of_nframe_and_fps(fn):
    with pytest.raises(ValueError, match="exactly one of nframe and fps"):
        fn(100, 25.0, nframe=8, fps=1.0)
    with pytest.raises(ValueError, match="exactly one of nframe and fps"):
        fn(100, 25.0)


def test_request_takes_nframe_or_fps():
    assert ModelRequest(index=1, question="q", video_path="v").nframe == 8  # the default preset
    r = ModelRequest(index=1, question="q", video_path="v", fps=1.0)
    assert (r.nframe, r.fps) == (None, 1.0)
    with pytest.raises(ValueError, match="nframe or fps, not both"):
        ModelRequest(index=1, question="q", video_path="v", nframe=8, fps=1.0)


def test_torchcodec_reports_the_header_rate(tmp_path):
    """``VideoInfo.header_fps`` is the header's avg_frame_rate (decord's get_avg_fps) for torchcodec too."""
    pytest.importorskip("torchcodec")
    from torchcodec.decoders import VideoDecoder

    from nrvl.video import make_clip, probe, write_video

    path = write_video(make_clip(10, 64, 96, seed=0), tmp_path / "c.mp4", fps=12)
    info = probe(path, backend="torchcodec")
    md = VideoDecoder(str(path)).metadata
    assert info.header_fps == md.average_fps_from_header == 12.0
    assert info.fps == md.average_fps


# ----------------------------------------------------------------------------- adapters

def test_api_fps_mode_uses_the_header_rate(monkeypatch):
    """VLMEvalKit decodes with decord, whose get_avg_fps is the header rate: the API path uses it."""
    import nrvl.video as V
    from nrvl.models.api import OpenAIVideoModel

    seen = {}

    def fake_decode(path, pick, device="cpu", backend=None):
        # a stream whose scanned rate (25) differs from its header's (30)
        idx = pick(VideoInfo(num_frames=300, fps=25.0, width=32, height=24, duration=12.0, header_fps=30.0))
        seen["idx"] = idx
        return torch.zeros(len(idx), 3, 24, 32, dtype=torch.uint8)

    monkeypatch.setattr(V, "decode_frames", fake_decode)
    model = OpenAIVideoModel("x", api_model="m", base_url="http://127.0.0.1:9/v1", api_key="k")
    try:
        clip = model.frames(ModelRequest(index=1, question="q", video_path="v.mp4", fps=1.0))
    finally:
        model.close()
    assert seen["idx"] == [0, 30, 60, 90, 120, 150, 180, 210, 240, 270]  # int(300 / 30): 10, not int(300 / 25)
    assert clip.shape == (10, 3, 24, 32)


def test_api_fps_request_sends_one_frame_per_second(tmp_path):
    """End to end through the real decoder and an HTTP server: 4 s at 6 fps gives 4 frames, in the template too."""
    from judge_server import FakeJudgeServer

    from nrvl.video import make_clip, write_video

    path = write_video(make_clip(24, 120, 160, seed=2), tmp_path / "four_s.mp4", fps=6)
    with FakeJudgeServer() as srv:
        model = build_model("GPT4o", base_url=srv.base_url, api_key="sk-test")
        try:
            model.generate([ModelRequest(index=1, question="What?", video_path=str(path), fps=1.0,
                                         noise="gaussian", ratio=0.9, seed=3)])
        finally:
            model.close()
        (body,) = list(srv.bodies)
    parts = body["messages"][0]["content"]
    assert [p["type"] for p in parts] == ["text"] + ["image_url"] * 4 + ["text"]
    assert parts[0]["text"].startswith("\nYou will be provided with 4 separate frames")


def test_api_clip_shorter_than_a_second_sends_no_frame(tmp_path):
    """As VLMEvalKit: no frame files, a prompt with zero images (and nothing to corrupt)."""
    from nrvl.models.api import OpenAIVideoModel
    from nrvl.video import make_clip, write_video

    path = write_video(make_clip(5, 64, 96, seed=1), tmp_path / "short.mp4", fps=10)
    model = OpenAIVideoModel("x", api_model="m", base_url="http://127.0.0.1:9/v1", api_key="k")
    try:
        (msg,) = model.prepare([ModelRequest(index=1, question="q", video_path=str(path), fps=1.0,
                                             noise="gaussian", ratio=0.9, seed=1)])
    finally:
        model.close()
    parts = msg[0]["content"]
    assert [p["type"] for p in parts] == ["text", "text"]
    assert parts[0]["text"].startswith("\nYou will be provided with 0 separate frames")


def test_qwen_fps_frames_match_qwen_vl_utils(tiny, demo_root):
    """demo_5 (64 frames at 16 fps, 4 s): qwen-vl-utils' fetch_video with fps=1 picks and resizes the same frames."""
    from qwen_vl_utils import fetch_video

    path = str(demo_root / "video" / "demo_5.mp4")
    ours, info, idx = tiny._frames(ModelRequest(index=0, question="q", video_path=path, fps=1.0))
    ref = fetch_video({"video": path, "fps": 1.0, "min_pixels": tiny.min_pixels, "max_pixels": tiny.max_pixels})
    assert idx == [0, 21, 42, 63]  # 4 s at 1 fps = 4 frames
    assert ours.shape == ref.shape and torch.equal(ours.float(), ref)


# ----------------------------------------------------------------------------- evaluation

def _run(args):
    from nrvl import evaluate

    return evaluate.main(args)


def test_fps_flags_are_checked(eval_env, capsys):
    base = ["--data", "MMBench_Video_demo", "--model", "tiny-qwen2.5-vl", "--judge", "exact_matching"]
    assert _run(base + ["--nframe", "8", "--fps", "1"]) == 2
    assert "give --nframe or --fps, not both" in capsys.readouterr().err
    assert _run(base + ["--fps", "0"]) == 2
    assert "--fps must be a number > 0, got 0.0" in capsys.readouterr().err


def test_sampling_and_data_tags():
    from nrvl.data import get_spec
    from nrvl.evaluate import sampling_of

    fps_spec, n_spec = get_spec("MMBench_Video_1fps_nopack"), get_spec("MMBench_Video_8frame_nopack")
    assert sampling_of(fps_spec) == (None, 1.0, "MMBench_Video_1fps_nopack")
    assert sampling_of(fps_spec, fps=1.0) == (None, 1.0, "MMBench_Video_1fps_nopack")
    assert sampling_of(fps_spec, fps=0.5) == (None, 0.5, "MMBench_Video_1fps_nopack_0.5fps")
    assert sampling_of(fps_spec, nframe=8) == (8, None, "MMBench_Video_1fps_nopack_8frame")
    assert sampling_of(n_spec) == (8, None, "MMBench_Video_8frame_nopack")
    assert sampling_of(n_spec, fps=2.0) == (None, 2.0, "MMBench_Video_8frame_nopack_2fps")


def test_fps_is_in_the_fingerprint_and_nframe_fingerprints_are_unchanged():
    """Adding the fps option must not orphan stores written before it (their settings had no fps key)."""
    from types import SimpleNamespace

    from nrvl.evaluate import _fingerprint
    from nrvl.store import run_fingerprint

    args = SimpleNamespace(model="GPT4o", api_model=None, data="MMBench_Video_demo", noise_name="gaussian",
                           ratio=0.9, seed=0, max_new_tokens=None)
    before = run_fingerprint({"model": "GPT4o", "api_model": None, "data": "MMBench_Video_demo",
                              "data_tag": "MMBench_Video_demo", "nframe": 8, "noise": "gaussian", "ratio": 0.9,
                              "seed": 0, "max_new_tokens": None})
    assert _fingerprint(args, 8, "MMBench_Video_demo") == before
    fps = _fingerprint(args, None, "MMBench_Video_demo_1fps", 1.0)
    assert fps != before and fps != _fingerprint(args, None, "MMBench_Video_demo_1fps", 0.5)


def _predictions(path):
    import pandas as pd

    return pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False).set_index("index")["prediction"].to_dict()


def test_demo_1fps_run_and_sweep_agree(eval_env, tmp_path, tiny):
    """A 1fps single run, and the same runs inside a sweep, write the same predictions; the Qwen frames
    are qwen-vl-utils' fps choice (checked on the prepared batch)."""
    from nrvl.data import load_dataset, prepare_dataset

    common = ["--data", "MMBench_Video_demo_1fps", "--model", "tiny-qwen2.5-vl", "--judge", "exact_matching",
              "--limit", "4"]
    single = tmp_path / "single"
    assert _run(common + ["--noise_name", "frame_drop", "--ratio", "0.6", "--work-dir", str(single)]) == 0
    assert _run(common + ["--work-dir", str(single)]) == 0
    sweep = tmp_path / "sweep"
    assert _run(common + ["--noise_name", "frame_drop", "--ratio", "0.6,0.9", "--work-dir", str(sweep)]) == 0
    stem = "tiny-qwen2.5-vl/{0}/tiny-qwen2.5-vl_MMBench_Video_demo_1fps_{0}_{1}.tsv"
    for noise, ratio in (("frame_drop", 0.6), ("origin", None)):
        rel = stem.format(noise, ratio) if noise != "origin" else stem.format("origin", "None").replace(
            "_origin_None", "_None_None")
        a, b = _predictions(single / rel), _predictions(sweep / rel)
        assert len(a) == 4 and a == b
    counts = json.loads((sweep / "tiny-qwen2.5-vl" / "tiny-qwen2.5-vl_MMBench_Video_demo_1fps_sweep.json").read_text())
    assert counts["data"] == "MMBench_Video_demo_1fps"

    prepare_dataset("MMBench_Video_demo_1fps")
    ds = load_dataset("MMBench_Video_demo_1fps")
    assert (ds.nframe, ds.fps) == (None, 1.0)
    s = ds.samples()[0]
    info = probe(s.video_path)
    batch = tiny.prepare([ModelRequest(index=s.index, question=s.question, video_path=s.video_path, fps=1.0)])
    assert batch.frame_indices[0] == qwen_sample(info.num_frames, info.fps, fps=1.0)
    assert len(batch.frame_indices[0]) == max(4, int(info.num_frames / info.fps) // 2 * 2)
