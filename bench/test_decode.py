"""Decode 8 frames of a 720p, 300-frame H.264 clip: torchcodec on the CPU vs decord, and NVDEC on CUDA.

The clip is made once per session (``make_clip(texture=True)``, libx264 medium,
crf 23, 30 fps, about 1.6 MB, i.e. a YouTube-like 1.3 Mbit/s; 15-60 s to make on
a 2-core machine) in the pytest temporary folder. Each decode opens the file
anew, as the evaluation does once per sample. Select with ``-m decode``.
No timing is asserted.

Groups: ``decode-720p-8f`` (the pipeline's ``decode_frames`` per backend and
index pattern), ``decode-720p-8f-variants`` (torchcodec seek modes, and decord
in-process without the hang guard, to show what the guard costs).
"""
from __future__ import annotations

import os

import pytest
import torch

import nrvl.video.decode as D
from conftest import device_name
from nrvl.video import decode_frames, make_clip, qwen_frame_indices, vlmeval_frame_indices, write_video

pytestmark = pytest.mark.decode

T, H, W, FPS = 300, 720, 1280, 30
PATTERNS = {
    "vlmeval": vlmeval_frame_indices(T, 8),   # 33, 66, ..., 266
    "qwen": qwen_frame_indices(T, 8),         # 0, 43, ..., 299
}
ROUNDS = 5


@pytest.fixture(scope="session")
def hd_clip(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("decode-bench") / "clip-720p-300f.mp4"
    chunks = (make_clip(30, H, W, start=s, texture=True) for s in range(0, T, 30))
    write_video(chunks, path, fps=FPS)
    return str(path)


def _info(benchmark, hd_clip, device, **extra):
    benchmark.extra_info.update(
        frames=8, height=H, width=W, clip_frames=T, file_mb=round(os.path.getsize(hd_clip) / 1e6, 2),
        threads=torch.get_num_threads(), device=device, device_name=device_name(device), **extra,
    )


@pytest.mark.parametrize("pattern", list(PATTERNS))
@pytest.mark.parametrize("backend", ["torchcodec", "decord"])
def test_decode_8_frames_cpu(benchmark, hd_clip, backend, pattern):
    idx = PATTERNS[pattern]
    ref = decode_frames(hd_clip, idx, backend="torchcodec")
    out = decode_frames(hd_clip, idx, backend=backend)  # warm-up (starts decord's worker)
    assert torch.equal(out, ref)
    benchmark.group = "decode-720p-8f"
    _info(benchmark, hd_clip, "cpu", backend=backend, pattern=pattern)
    benchmark.pedantic(decode_frames, args=(hd_clip, idx), kwargs={"backend": backend},
                       rounds=ROUNDS, iterations=1, warmup_rounds=1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device: NVDEC decode not measured")
@pytest.mark.parametrize("pattern", list(PATTERNS))
def test_decode_8_frames_gpu(benchmark, hd_clip, pattern):
    idx = PATTERNS[pattern]
    ref = decode_frames(hd_clip, idx, backend="torchcodec")

    def call():
        out = decode_frames(hd_clip, idx, device="cuda", backend="torchcodec")
        torch.cuda.synchronize()
        return out

    out = call()
    assert out.device.type == "cuda" and (out.cpu().float() - ref.float()).abs().mean() < 3
    benchmark.group = "decode-720p-8f"
    _info(benchmark, hd_clip, "cuda", backend="torchcodec", pattern=pattern)
    benchmark.pedantic(call, rounds=20, iterations=1, warmup_rounds=2)


@pytest.mark.parametrize("seek_mode", ["exact", "approximate"])
def test_torchcodec_seek_mode(benchmark, hd_clip, seek_mode, monkeypatch):
    monkeypatch.setattr(D, "TORCHCODEC_SEEK_MODE", seek_mode)
    idx = PATTERNS["vlmeval"]
    decode_frames(hd_clip, idx, backend="torchcodec")
    benchmark.group = "decode-720p-8f-variants"
    _info(benchmark, hd_clip, "cpu", backend=f"torchcodec-{seek_mode}", pattern="vlmeval")
    benchmark.pedantic(decode_frames, args=(hd_clip, idx), kwargs={"backend": "torchcodec"},
                       rounds=ROUNDS, iterations=1, warmup_rounds=1)


def test_decord_in_process_unguarded(benchmark, hd_clip):
    """Plain decord in this process (what VLMEvalKit does): the guard's overhead is the difference."""
    import decord

    idx = PATTERNS["vlmeval"]

    def call():
        vr = decord.VideoReader(hd_clip, ctx=decord.cpu(0), num_threads=0)
        return torch.from_numpy(vr.get_batch(sorted(set(idx))).asnumpy()).permute(0, 3, 1, 2).contiguous()

    assert torch.equal(call(), decode_frames(hd_clip, idx, backend="torchcodec"))
    benchmark.group = "decode-720p-8f-variants"
    _info(benchmark, hd_clip, "cpu", backend="decord-in-process", pattern="vlmeval")
    benchmark.pedantic(call, rounds=ROUNDS, iterations=1, warmup_rounds=1)
