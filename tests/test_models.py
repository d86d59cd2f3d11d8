"""Model adapters: the lazy registry, noise batching, the Qwen2.5-VL preprocessing against
qwen-vl-utils, and the API model against an OpenAI-compatible server on 127.0.0.1."""
import base64
import hashlib
import io
import json
import re
import os
import subprocess
import sys

import pytest
import torch

import nrvl.kernels as K
from nrvl.models import ModelConfigError, ModelRequest, build_model, corrupt_clips, get_manifest, list_models


@pytest.fixture(autouse=True)
def _env(eval_env):
    """Offline evaluation set-up (tests/conftest.py)."""


# ----------------------------------------------------------------------------- registry

def test_listing_and_lookup_import_no_model_code():
    code = ("import sys, nrvl.models as m; m.list_models(); m.get_manifest('Qwen2.5-VL-7B-Instruct');"
            "bad = [x for x in ('torch', 'transformers', 'openai', 'nrvl.models.qwen') if x in sys.modules];"
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_registry_names_and_unknown_name():
    assert list_models() == ["Qwen2.5-VL-3B-Instruct", "Qwen2.5-VL-7B-Instruct", "tiny-qwen2.5-vl", "GPT4o",
                             "openai-compatible"]
    assert get_manifest("Qwen2.5-VL-3B-Instruct").kwargs == {"path": "Qwen/Qwen2.5-VL-3B-Instruct"}
    with pytest.raises(ModelConfigError, match="unknown model 'llava'; valid: Qwen2.5-VL-3B-Instruct"):
        build_model("llava")


# ----------------------------------------------------------------------------- noise

def _req(i, noise="gaussian", ratio=0.9):
    return ModelRequest(index=i, question="q", video_path="", noise=noise, ratio=ratio, seed=K.derive_seed(0, i))


def test_corrupt_clips_batched_equals_one_by_one_and_clean_passes_through():
    clips = [torch.randint(0, 256, (8, 3, 28, 56), dtype=torch.uint8, generator=torch.Generator().manual_seed(i))
             for i in range(3)] + [torch.randint(0, 256, (8, 3, 56, 28), dtype=torch.uint8)]
    reqs = [_req(0), _req(1), _req(2, noise=None, ratio=None), _req(3)]
    out = corrupt_clips(clips, reqs)
    assert out[2] is clips[2]
    for i in (0, 1, 3):
        alone = K.corrupt(clips[i], "gaussian", 0.9, seed=torch.tensor([reqs[i].seed]))
        assert torch.equal(out[i], alone)
        assert int((out[i] != clips[i]).flatten(1).any(1).sum()) == 7  # int(8 * 0.9) frames
    assert not torch.equal(out[0], K.corrupt(clips[0], "gaussian", 0.9, seed=torch.tensor([reqs[1].seed])))


# ----------------------------------------------------------------------------- Qwen2.5-VL path

def test_qwen_frames_match_qwen_vl_utils(tiny, demo_root):
    """Sampling and resize equal qwen-vl-utils' fetch_video (decord reader) on a demo clip."""
    os.environ.setdefault("FORCE_QWENVL_VIDEO_READER", "decord")
    from qwen_vl_utils import fetch_video

    path = str(demo_root / "video" / "demo_5.mp4")  # 64 frames, 270x480
    ours, info, idx = tiny._frames(ModelRequest(index=0, question="q", video_path=path, nframe=8))
    ref = fetch_video({"video": path, "nframes": 8, "min_pixels": tiny.min_pixels, "max_pixels": tiny.max_pixels})
    assert idx == [0, 9, 18, 27, 36, 45, 54, 63]
    assert (info.num_frames, info.fps) == (64, 16.0)
    assert ours.dtype == torch.uint8 and ours.shape == ref.shape
    assert torch.equal(ours.float(), ref)


@pytest.mark.parametrize("timing", ["vlmevalkit", "real"])
def test_qwen_prepare_noise_after_resize_then_processor(tiny, demo_root, timing):
    from transformers.video_utils import VideoMetadata

    path = str(demo_root / "video" / "demo_1.mp4")  # 24 frames at 8 fps (3 s), 240x320
    req = ModelRequest(index=5, question="What is shown?", video_path=path, video="demo_1", nframe=8,
                       noise="gaussian", ratio=0.9, seed=K.derive_seed(0, "demo_1", 5, "gaussian", 0.9))
    assert tiny.video_timing == "vlmevalkit"  # the default
    tiny.video_timing = timing
    try:
        batch = tiny.prepare([req])
    finally:
        tiny.video_timing = "vlmevalkit"
    clean, info, idx = tiny._frames(req)
    noisy = K.corrupt(clean, "gaussian", 0.9, seed=torch.tensor([req.seed]))
    md = VideoMetadata(total_num_frames=info.num_frames, fps=info.fps, frames_indices=idx, width=info.width,
                       height=info.height)
    # VLMEvalKit calls the processor with the frames and no fps or metadata.
    timing_kw = {"video_metadata": [md]} if timing == "real" else {}
    ref = tiny.processor(text=[tiny.prompt(req.question)], videos=[noisy], return_tensors="pt",
                         do_resize=False, cap_pixels_per_frame=False, **timing_kw)
    assert torch.equal(batch.inputs["pixel_values_videos"], ref["pixel_values_videos"])
    assert torch.equal(batch.inputs["input_ids"], ref["input_ids"])
    assert torch.equal(batch.inputs["second_per_grid_ts"], ref["second_per_grid_ts"])
    if timing == "real":
        # 8 frames over 3 s (8/3 frames/s), 2 frames per temporal patch -> 0.75 s per grid step.
        assert batch.inputs["second_per_grid_ts"].tolist() == [0.75]
    else:  # the processor's default rate (24 fps in transformers 5: 2/24 s per grid step)
        assert batch.inputs["second_per_grid_ts"].tolist() != [0.75]
    assert batch.sizes == [tuple(noisy.shape[-2:])]


def test_qwen_video_timing_is_checked():
    from nrvl.models.qwen import QwenVL

    with pytest.raises(ModelConfigError, match="video_timing must be one of vlmevalkit, real, got 'fps'"):
        QwenVL("x", "/nonexistent", video_timing="fps")


def test_qwen_prompt_is_question_then_video_with_default_system(tiny):
    text = tiny.prompt("How many?")
    assert text == ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHow many?"
                    "<|vision_start|><|video_pad|><|vision_end|><|im_end|>\n<|im_start|>assistant\n")


def test_qwen_generation_settings(tiny):
    from nrvl.models.qwen import VLMEVAL_GENERATION

    gc = tiny.generation_config
    assert (gc.do_sample, gc.repetition_penalty) == (False, 1.0)  # top_k=1 sampling == argmax
    assert VLMEVAL_GENERATION["top_k"] == 1 and VLMEVAL_GENERATION["max_new_tokens"] == 2048
    assert gc.max_new_tokens == 16  # the tiny model's cap
    assert tiny.processor.tokenizer.padding_side == "left"
    assert tiny.attn_implementation == "sdpa" and tiny.dtype == torch.float32


def test_qwen_decodes_like_vlmevalkit_without_space_cleanup(tiny, monkeypatch):
    """VLMEvalKit decodes with ``skip_special_tokens=True, clean_up_tokenization_spaces=False``
    (vlmeval/vlm/qwen2_vl/model.py, ``generate_inner_transformers``, open-compass/VLMEvalKit @ 002f7b7),
    whatever the tokenizer's own ``clean_up_tokenization_spaces`` says: " ." and " 's" stay as generated."""
    from nrvl.models.qwen import QwenBatch

    tok = tiny.processor.tokenizer
    text = "The answer is yes . It 's four ."
    new = tok(text, add_special_tokens=False)["input_ids"] + [tok.convert_tokens_to_ids("<|im_end|>")]
    prompt = torch.tensor([[tok.convert_tokens_to_ids("<|im_start|>")] * 3])
    # A tokenizer configured to clean up (transformers 5 refuses it for BPE unless forced; 4.x did it).
    monkeypatch.setattr(tok, "clean_up_tokenization_spaces", True)
    monkeypatch.setattr(tok, "clean_up_tokenization_spaces_for_bpe_even_though_it_will_corrupt_output", True,
                        raising=False)
    assert tok.decode(new, skip_special_tokens=True) != text  # the clean-up would change it
    monkeypatch.setattr(tiny.model, "generate", lambda **kw: torch.cat([kw["input_ids"], torch.tensor([new])], 1))
    batch = QwenBatch(inputs={"input_ids": prompt}, frame_indices=[[0]], sizes=[(28, 28)])
    assert tiny.generate(batch) == [text]


# ----------------------------------------------------------------------------- API models

def test_frame_template_is_vlmevalkit_verbatim():
    from nrvl.models.api import FRAMES_TMPL_NOPACK, FRAMES_TMPL_NOPACK_MD5_8

    text = FRAMES_TMPL_NOPACK.format(8)
    assert len(text) == 293 and hashlib.md5(text.encode()).hexdigest() == FRAMES_TMPL_NOPACK_MD5_8


@pytest.fixture(scope="module")
def wide_clip(tmp_path_factory):
    from nrvl.video import make_clip, write_video

    return write_video(make_clip(12, 360, 640, seed=3), tmp_path_factory.mktemp("api") / "wide.mp4", fps=6)


def _api_request(path, noise="gaussian", seed=11, ratio=0.9):
    return ModelRequest(index=1, question="What moves?", video_path=str(path), video="wide", nframe=8,
                        noise=noise, ratio=ratio if noise else None, seed=seed)


def test_gpt4o_request_follows_vlmevalkit(wide_clip):
    from judge_server import FakeJudgeServer
    from PIL import Image

    with FakeJudgeServer() as srv:
        model = build_model("GPT4o", base_url=srv.base_url, api_key="sk-test")
        try:
            answers = model.generate([_api_request(wide_clip)])
        finally:
            model.close()
        (body,) = list(srv.bodies)
    assert answers == ["Hello! How can I help you today?"]
    assert body["model"] == "gpt-4o-2024-05-13" and body["temperature"] == 0 and body["max_tokens"] == 2048
    (msg,) = body["messages"]
    assert msg["role"] == "user"
    parts = msg["content"]
    assert [p["type"] for p in parts] == ["text"] + ["image_url"] * 8 + ["text"]
    assert parts[0]["text"].startswith("\nYou will be provided with 8 separate frames")
    assert parts[-1]["text"] == "Question: What moves?\nAnswer: "
    for p in parts[1:-1]:
        assert p["image_url"]["detail"] == "low"
        url = p["image_url"]["url"]
        assert url.startswith("data:image/jpeg;base64,")
        img = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
        assert (img.format, img.size) == ("JPEG", (512, 288))  # thumbnail((512, 512)) of 640x360


def test_api_noise_is_seeded_per_sample(wide_clip):
    from nrvl.models.api import OpenAIVideoModel

    model = OpenAIVideoModel("openai-compatible", api_model="m", base_url="http://127.0.0.1:9/v1")
    # frame_drop keeps this quick (a pointwise noise on 8 frames of 640x360 takes ~1 s eager on this CPU).
    try:
        a, b = model.prepare([_api_request(wide_clip, "frame_drop", ratio=0.3),
                              _api_request(wide_clip, "frame_drop", ratio=0.3)])
        (c,) = model.prepare([_api_request(wide_clip, "frame_drop", ratio=0.3, seed=12)])
        (clean,) = model.prepare([_api_request(wide_clip, noise=None)])
    finally:
        model.close()
    assert json.dumps(a) == json.dumps(b)
    assert json.dumps(a) != json.dumps(c) != json.dumps(clean)
    frames = model.frames(_api_request(wide_clip))
    assert frames.shape == (8, 3, 360, 640)  # native resolution, int(i * 12 / 9) for i = 1..8


def test_api_retries_then_fails_softly_and_stops_on_a_rejected_key(wide_clip):
    from judge_server import FakeJudgeServer
    from nrvl.models.api import FAIL_MSG

    with FakeJudgeServer(api_key="good") as srv:
        model = build_model("openai-compatible", api_model="served-vlm", base_url=srv.base_url, api_key="good",
                            retries=3, backoff_base=0.0)
        try:
            srv.inject("500")
            assert model.generate([_api_request(wide_clip, None)]) == ["Hello! How can I help you today?"]
            srv.inject("500", "500", "500")
            (answer,) = model.generate([_api_request(wide_clip, None)])
            assert answer == FAIL_MSG and model.failed(answer)
        finally:
            model.close()
        bad = build_model("openai-compatible", api_model="served-vlm", base_url=srv.base_url, api_key="bad")
        try:
            with pytest.raises(ModelConfigError, match="HTTP 401"):
                bad.generate([_api_request(wide_clip, None)])
        finally:
            bad.close()


def test_api_model_needs_a_key_for_openai():
    with pytest.raises(ModelConfigError, match="no API key"):
        build_model("GPT4o")
    with pytest.raises(ModelConfigError, match="needs --api-model"):
        build_model("openai-compatible", base_url="http://127.0.0.1:9/v1")


def test_video_timing_is_part_of_the_run_fingerprint_of_qwen_models_only():
    import argparse

    from nrvl import evaluate

    def fp(model, timing):
        args = argparse.Namespace(model=model, api_model=None, data="MMBench_Video_8frame_nopack", noise_name=None,
                                  ratio=None, seed=0, max_new_tokens=None, video_timing=timing)
        return evaluate._fingerprint(args, 8, "MMBench_Video_8frame_nopack")

    # A resumed Qwen run never mixes answers made with the other timing ...
    assert fp("Qwen2.5-VL-7B-Instruct", "vlmevalkit") != fp("Qwen2.5-VL-7B-Instruct", "real")
    assert fp("tiny-qwen2.5-vl", "vlmevalkit") != fp("tiny-qwen2.5-vl", "real")
    # ... and an API model's stored answers stay valid (the setting does not reach it).
    assert fp("GPT4o", "vlmevalkit") == fp("GPT4o", "real")


def test_api_prepare_holds_one_group_of_clips_under_the_budget(wide_clip, monkeypatch):
    """A 1fps preset on long videos must not hold a whole batch of decoded clips (nproc x 2.2 GB)."""
    import weakref

    import nrvl.models.api as api
    from nrvl.models.api import OpenAIVideoModel

    def run(prepare_mib):
        model = OpenAIVideoModel("openai-compatible", api_model="m", base_url="http://127.0.0.1:9/v1",
                                 prepare_mib=prepare_mib)
        live, most_live, calls = [], [0], []
        real_frames, real_corrupt = model.frames, api.corrupt_clips

        def frames(req):
            clip = real_frames(req)
            live.append(weakref.ref(clip))
            most_live[0] = max(most_live[0], sum(r() is not None for r in live))
            return clip

        def corrupt(clips, reqs, donor_clips=None):
            calls.append(len(clips))
            return real_corrupt(clips, reqs, donor_clips=donor_clips)

        model.frames = frames
        monkeypatch.setattr(api, "corrupt_clips", corrupt)
        reqs = [_api_request(wide_clip, "frame_drop", ratio=0.3, seed=s) for s in (1, 2, 3)]
        try:
            return model.prepare(reqs), most_live[0], calls
        finally:
            model.close()

    one_call, live_default, calls_default = run(None)       # 3 x 5.5 MB < 256 MiB: one group, one noise call
    assert calls_default == [3] and live_default == 3
    one_by_one, live_small, calls_small = run(0)             # each clip decoded, corrupted, encoded, freed
    assert calls_small == [1, 1, 1] and live_small == 1
    two, _, calls_two = run(12)                              # 12 MiB holds two 5.5 MB clips
    assert calls_two == [2, 1]
    assert json.dumps(one_call) == json.dumps(one_by_one) == json.dumps(two)  # grouping changes nothing


def test_api_prepare_budget_is_validated(monkeypatch):
    from nrvl.models.api import prepare_budget

    assert prepare_budget() == 256 * 2**20 and prepare_budget(0) == 0 and prepare_budget(1.5) == 3 * 2**19
    monkeypatch.setenv("NRVL_API_PREPARE_MIB", "128")
    assert prepare_budget() == 128 * 2**20 and prepare_budget(8) == 8 * 2**20
    for bad in ("-1", "inf", "nan", "lots"):
        monkeypatch.setenv("NRVL_API_PREPARE_MIB", bad)
        with pytest.raises(ModelConfigError, match=r"NRVL_API_PREPARE_MIB.*" + re.escape(repr(bad))):
            prepare_budget()
    with pytest.raises(ModelConfigError, match="prepare_mib"):
        prepare_budget(True)


def test_jpeg_roundtrip_in_place_equals_a_copy():
    import torch

    from nrvl.models.api import jpeg_roundtrip
    from nrvl.video import make_clip

    clip = make_clip(3, 48, 64, seed=5)
    before = clip.clone()
    copy = jpeg_roundtrip(clip)
    assert torch.equal(clip, before) and not torch.equal(copy, before)  # a lossy round trip, input untouched
    same = jpeg_roundtrip(clip, inplace=True)
    assert same.data_ptr() == clip.data_ptr() and torch.equal(same, copy)
    empty = torch.empty(0, 3, 48, 64, dtype=torch.uint8)
    assert jpeg_roundtrip(empty).shape == (0, 3, 48, 64)


def test_api_load_clip_keeps_a_long_clip_as_jpeg_files_with_the_same_answers(wide_clip):
    """A sweep caches batch_size + 1 clean clips: a long clip is held as its JPEG files, not 20x its size."""
    import torch

    from nrvl.models.api import JpegFrames, OpenAIVideoModel

    reqs = [_api_request(wide_clip, "frame_drop", ratio=0.3, seed=1), _api_request(wide_clip, None)]
    donor = ModelRequest(index=2, question="q", video_path=str(wide_clip), video="wide", nframe=8,
                         noise="other_video", ratio=0.6, seed=4, donor_path=str(wide_clip), donor_video="other")
    reqs.append(donor)
    small = OpenAIVideoModel("openai-compatible", api_model="m", base_url="http://127.0.0.1:9/v1")
    tight = OpenAIVideoModel("openai-compatible", api_model="m", base_url="http://127.0.0.1:9/v1", prepare_mib=1)
    try:
        raw = small.load_clip(reqs[0])                   # 5.5 MB <= 256 MiB / 4: kept as frames
        files = tight.load_clip(reqs[0])                 # 5.5 MB > 1 MiB / 4: kept as JPEG files
        assert isinstance(raw, torch.Tensor) and isinstance(files, JpegFrames)
        assert files.frame_bytes == raw.numel() == 8 * 3 * 360 * 640 and files.file_bytes < raw.numel() / 10
        assert torch.equal(files.tensor(), raw) and torch.equal(raw, small.frames(reqs[0]))
        expected = small.prepare(reqs)
        calls = []

        def cached(r):                                   # a sweep's cache: load_clip results, donors included
            calls.append(r.video)
            return tight.load_clip(r)

        got = tight.prepare_clips(reqs, [cached(r) for r in reqs], donors=cached)
        assert json.dumps(got) == json.dumps(expected)
        assert calls == ["wide", "wide", "wide", "other"]  # the donor came from the cache too
    finally:
        small.close()
        tight.close()


def test_qwen_decodes_and_resizes_on_the_cpu_unless_asked(tiny, demo_root, monkeypatch):
    """VLMEvalKit decodes with decord and resizes with torchvision on the CPU: by default so do we,
    whatever the model's device (NVDEC and CUDA's bicubic give other pixels)."""
    import nrvl.video as V
    from nrvl.models.qwen import QwenVL

    seen = []
    real = V.decode_frames

    def spy(path, indices, *, device="cpu", backend=None, timeout=None):
        seen.append(torch.device(device))
        return real(path, indices, device=device, backend=backend, timeout=timeout)

    monkeypatch.setattr(V, "decode_frames", spy)
    path = str(next(iter(sorted((demo_root / "video").glob("*.mp4")))))
    frames, _, _ = tiny._frames(ModelRequest(index=0, question="q", video_path=path, nframe=8))
    assert seen == [torch.device("cpu")] and frames.device == tiny.device and frames.dtype == torch.uint8

    gpu = object.__new__(QwenVL)  # the device rule alone, without a GPU
    gpu.device, gpu.preprocess_device = torch.device("cuda", 1), "cpu"
    assert gpu.decode_device() == torch.device("cpu")
    gpu.preprocess_device = "model"
    assert gpu.decode_device() == torch.device("cuda", 1)
    with pytest.raises(ModelConfigError, match="preprocess_device must be one of cpu, model, got 'gpu'"):
        build_model("tiny-qwen2.5-vl", preprocess_device="gpu")


def test_attention_default_warns_when_cuda_lacks_flash_attn(caplog):
    import logging

    from nrvl.models.qwen import default_attention

    with caplog.at_level(logging.WARNING, logger="nrvl.models.qwen"):
        assert default_attention("Q", cuda=True, flash_attn=True) == "flash_attention_2"
        assert default_attention("Q", cuda=False, flash_attn=False) == "sdpa"
        assert default_attention("Q", cuda=False, flash_attn=True) == "sdpa"
        assert not caplog.records
        assert default_attention("Q", cuda=True, flash_attn=False) == "sdpa"
    (rec,) = caplog.records
    assert "flash_attn is not installed" in rec.getMessage() and rec.getMessage().startswith("Q: ")


def test_tiny_model_is_written_whole_on_a_rank_other_than_0(tmp_path, monkeypatch):
    """Under torchrun each rank builds its own copy; transformers would write the weights on rank 0
    only, leaving rank 1 a folder without model.safetensors that it then renamed into place."""
    import transformers.distributed.mixin as mixin

    from nrvl.models.tiny import ensure_tiny_qwen

    monkeypatch.setattr(mixin, "_is_torch_distributed_initialized", lambda: True)
    monkeypatch.setattr(mixin, "_get_torch_distributed_rank", lambda: 1)
    folder = ensure_tiny_qwen(tmp_path / "tiny")
    assert {"config.json", "generation_config.json", "model.safetensors", "tokenizer.json"} <= set(os.listdir(folder))
    assert [p.name for p in tmp_path.iterdir()] == ["tiny"]  # no temp folder left beside it


def test_tiny_model_folder_left_incomplete_is_rebuilt(tmp_path):
    from nrvl.models.tiny import ensure_tiny_qwen

    broken = tmp_path / "tiny"
    broken.mkdir()
    (broken / "tokenizer.json").write_text("{}")  # what the rank-0-only write used to leave behind
    folder = ensure_tiny_qwen(broken)
    assert folder == broken and (folder / "model.safetensors").stat().st_size > 0
    assert json.loads((folder / "config.json").read_text())["model_type"] == "qwen2_5_vl"
    assert [p.name for p in tmp_path.iterdir()] == ["tiny"]


def test_api_malformed_replies_are_retried_then_fail_softly_and_text_parts_are_joined():
    """A 200 reply the SDK parses into something odd (an HTML page, a list, content as a number)
    is retried and ends as FAIL_MSG, as in VLMEvalKit, instead of killing the run."""
    from types import SimpleNamespace as NS

    from nrvl.models.api import FAIL_MSG

    replies = ["<html>proxy</html>", [1, 2], NS(choices=[NS(message=NS(content=5))]),
               NS(choices=[NS(message=NS(content=[{"type": "text", "text": "Two "}, {"type": "text", "text": "cats"}]))])]
    calls = []

    def create(**kw):
        calls.append(kw["model"])
        return replies[len(calls) - 1]

    model = build_model("openai-compatible", api_model="m", base_url="http://127.0.0.1:9", api_key="k",
                        retries=3, backoff_base=0.0)
    made = []
    model._client_factory = lambda: made.append(1) or NS(chat=NS(completions=NS(create=create)), close=lambda: None)
    try:
        assert model._ask([{"role": "user", "content": "q"}]) == FAIL_MSG  # three malformed replies
        assert model._ask([{"role": "user", "content": "q"}]) == "Two cats"  # list-of-parts content
        assert len(calls) == 4 and made == [1]
    finally:
        model.close()
