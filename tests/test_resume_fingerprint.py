"""Run fingerprints (what a resumed run may reuse): the decoder is part of them, a setting given at its
default value is the same run as leaving it out, and stores of default runs keep their fingerprint."""
import argparse

import pytest

from nrvl import evaluate
from nrvl.store import run_fingerprint

#: ``_fingerprint`` of tiny-qwen2.5-vl, MMBench_Video_demo, gaussian 0.9, seed 0, computed before the
#: decoder and the resolved generation cap were fingerprinted (the audit's repro printed it).
OLD_TINY_GAUSSIAN = "b37f9a5f818a0620"


def args_of(model="tiny-qwen2.5-vl", **over):
    base = dict(model=model, api_model=None, data="MMBench_Video_demo", noise_name="gaussian", ratio=0.9, seed=0,
                max_new_tokens=None, video_timing="vlmevalkit", decode_backend=None)
    return argparse.Namespace(**{**base, **over})


def fp(**over):
    return evaluate._fingerprint(args_of(**over), 8, "MMBench_Video_demo")


def old_way(model, **over):
    """The settings hashed before: no decoder, ``max_new_tokens`` as the flag gave it."""
    settings = {"model": model, "api_model": None, "data": "MMBench_Video_demo", "data_tag": "MMBench_Video_demo",
                "nframe": 8, "noise": "gaussian", "ratio": 0.9, "seed": 0, "max_new_tokens": None,
                "video_timing": "vlmevalkit", **over}
    return run_fingerprint(settings)


@pytest.fixture(autouse=True)
def _no_backend_env(monkeypatch):
    monkeypatch.delenv("NRVL_VIDEO_BACKEND", raising=False)


def test_default_runs_keep_the_fingerprint_their_stores_were_written_with():
    assert fp() == old_way("tiny-qwen2.5-vl") == OLD_TINY_GAUSSIAN
    assert evaluate._fingerprint(args_of("Qwen2.5-VL-7B-Instruct"), 8, "MMBench_Video_demo") == \
        old_way("Qwen2.5-VL-7B-Instruct")
    api = args_of("GPT4o", video_timing="real")
    assert evaluate._fingerprint(api, 8, "MMBench_Video_demo") == run_fingerprint(
        {"model": "GPT4o", "api_model": None, "data": "MMBench_Video_demo", "data_tag": "MMBench_Video_demo",
         "nframe": 8, "noise": "gaussian", "ratio": 0.9, "seed": 0, "max_new_tokens": None})


def test_the_default_generation_cap_given_explicitly_is_the_same_run():
    from nrvl.models.tiny import TINY_MAX_NEW_TOKENS

    assert fp(max_new_tokens=TINY_MAX_NEW_TOKENS) == OLD_TINY_GAUSSIAN
    assert evaluate._fingerprint(args_of("Qwen2.5-VL-3B-Instruct", max_new_tokens=2048), 8, "MMBench_Video_demo") \
        == old_way("Qwen2.5-VL-3B-Instruct")
    other = fp(max_new_tokens=TINY_MAX_NEW_TOKENS + 1)
    assert other != OLD_TINY_GAUSSIAN
    assert other == old_way("tiny-qwen2.5-vl", max_new_tokens=TINY_MAX_NEW_TOKENS + 1)  # non-default: as before


def test_the_decoder_is_fingerprinted_when_it_is_not_torchcodec(monkeypatch):
    assert fp(decode_backend="torchcodec") == OLD_TINY_GAUSSIAN
    decord = fp(decode_backend="decord")
    assert decord != OLD_TINY_GAUSSIAN
    assert decord == old_way("tiny-qwen2.5-vl", decode_backend="decord")
    monkeypatch.setenv("NRVL_VIDEO_BACKEND", "decord")  # the same decoder chosen by the environment
    assert fp() == decord
    monkeypatch.delenv("NRVL_VIDEO_BACKEND")
    import nrvl.video.decode as decode

    monkeypatch.setattr(decode, "_TORCHCODEC_OK", False)  # torchcodec without FFmpeg decodes with decord
    monkeypatch.setattr(decode, "_warned", set())
    with pytest.warns(RuntimeWarning, match="torchcodec cannot load FFmpeg"):
        assert fp() == decord


def test_bad_decoder_environment_is_an_eval_error(monkeypatch):
    monkeypatch.setenv("NRVL_VIDEO_BACKEND", "ffmpeg")
    with pytest.raises(evaluate.EvalError, match="NRVL_VIDEO_BACKEND must be one of torchcodec, decord"):
        fp()


def test_resume_reuses_default_cap_answers_and_not_another_decoders(eval_env, tiny, tmp_path, prepared_indices):
    from nrvl.models.tiny import TINY_MAX_NEW_TOKENS

    argv = ["--data", "MMBench_Video_demo", "--model", "tiny-qwen2.5-vl", "--noise_name", "gaussian", "--ratio",
            "0.9", "--mode", "infer", "--limit", "2", "--work-dir", str(tmp_path)]
    assert evaluate.main(argv) == 0 and prepared_indices == [0, 1]
    del prepared_indices[:]
    assert evaluate.main([*argv, "--max-new-tokens", str(TINY_MAX_NEW_TOKENS)]) == 0
    assert prepared_indices == []  # the same cap: nothing redone
    assert evaluate.main([*argv, "--decode-backend", "torchcodec"]) == 0
    assert prepared_indices == []  # the default decoder named
    assert evaluate.main([*argv, "--decode-backend", "decord"]) == 0
    assert prepared_indices == [0, 1]  # another decoder's frames: not mixed with torchcodec's answers


def test_qwen_on_a_gpu_fingerprints_where_it_preprocesses():
    """Runs before preprocess_device decoded Qwen's frames on the model's device: on a GPU that is
    other pixels than today's CPU default, so a GPU run names its setting; on the CPU both are one."""
    assert fp(preprocess_device="cpu") == fp(preprocess_device="model") == OLD_TINY_GAUSSIAN  # no CUDA here
    cpu_dev = fp(device="cpu", preprocess_device="model")
    assert cpu_dev == OLD_TINY_GAUSSIAN
    on_gpu = fp(device="cuda:0")
    assert on_gpu != OLD_TINY_GAUSSIAN and on_gpu == old_way("tiny-qwen2.5-vl", preprocess_device="cpu")
    assert fp(device="cuda:0", preprocess_device="model") == old_way("tiny-qwen2.5-vl", preprocess_device="model")
    # An API model has no such setting: its stores are unaffected.
    api = evaluate._fingerprint(args_of("GPT4o", device="cuda:0", preprocess_device="model"), 8, "MMBench_Video_demo")
    assert api == evaluate._fingerprint(args_of("GPT4o"), 8, "MMBench_Video_demo")


def test_an_api_model_takes_max_new_tokens_and_its_default_is_the_same_run():
    from judge_server import FakeJudgeServer
    from nrvl.models import build_model

    assert evaluate._fingerprint(args_of("GPT4o", max_new_tokens=2048), 8, "MMBench_Video_demo") == \
        evaluate._fingerprint(args_of("GPT4o"), 8, "MMBench_Video_demo")
    # Runs before sent 2048 whatever the flag said: a given cap is a new key, so their stores are not reused.
    assert evaluate._fingerprint(args_of("GPT4o", max_new_tokens=64), 8, "MMBench_Video_demo") == run_fingerprint(
        {"model": "GPT4o", "api_model": None, "data": "MMBench_Video_demo", "data_tag": "MMBench_Video_demo",
         "nframe": 8, "noise": "gaussian", "ratio": 0.9, "seed": 0, "max_new_tokens": 64, "api_max_tokens": 64})
    with FakeJudgeServer() as srv:
        for cap, sent in ((None, 2048), (64, 64)):
            model = build_model("openai-compatible", api_model="m", base_url=srv.base_url, max_new_tokens=cap)
            try:
                model.generate([[{"role": "user", "content": [{"type": "text", "text": "hi"}]}]])
            finally:
                model.close()
            assert srv.bodies[-1]["max_tokens"] == sent
