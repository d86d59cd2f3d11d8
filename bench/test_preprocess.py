"""Per-sample preprocessing for Qwen2.5-VL on a 720p clip: ours vs the original's path.

One sample = 8 frames of a 300-frame 1280x720 H.264 clip, VLMEvalKit's pixel
limits (16:9 becomes 756x1344), gaussian noise at ratio 0.9, then the
Qwen2.5-VL video processor (patches of 14, merge 2, temporal 2).

* ours: :func:`nrvl.video.decode_frames` (torchcodec; NVDEC on a GPU) at
  qwen-vl-utils' indices, :func:`nrvl.video.qwen_resize` on the frames' device,
  ``nrvl.kernels.corrupt`` on uint8, the processor with ``do_resize=False``;
* the original's: ``qwen_vl_utils.fetch_video`` (decord decode and torchvision
  resize, CPU, float32 out), then the noise as NRVL-0 wrote it (a Python loop
  over the selected frames adding ``100 * randn``, clamped, cast to uint8), then
  the processor as VLMEvalKit calls it (its own resize, here to the same size).

Each stage's median time goes to ``extra_info`` and stdout; nothing is asserted
about speed. The clip is generated once into ``<cache>/bench/``.

Run: ``python -m pytest -q -s bench/test_preprocess.py``.
"""
from __future__ import annotations

import os
import random
import statistics
import time

os.environ.setdefault("FORCE_QWENVL_VIDEO_READER", "decord")  # read at qwen_vl_utils import

import pytest
import torch

from conftest import DEVICES, device_name, sync

import nrvl.kernels as K
from nrvl.video import (VLMEVAL_QWEN25_VL, decode_frames, qwen_frame_indices, qwen_nframes, qwen_resize,
                        vlmeval_qwen_nframes, write_video)

NFRAME, NOISE, RATIO = 8, "gaussian", 0.9
ROUNDS = 3
_stage_log: dict[str, dict[str, float]] = {}


@pytest.fixture(scope="module")
def clip720p():
    """A 300-frame 1280x720 30 fps clip with photo-like texture panning across (made once, cached)."""
    from nrvl.data import cache_root

    path = cache_root() / "bench" / "pan_720p_300f.mp4"
    if path.is_file():
        return str(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(0)
    T, H, W, pan = 300, 720, 1280, 2
    big_h, big_w = H + pan * T, W + pan * T
    low = torch.rand(1, 3, big_h // 40 + 1, big_w // 40 + 1, generator=g)
    tex = torch.nn.functional.interpolate(low, size=(big_h, big_w), mode="bicubic", align_corners=False)[0]
    tex = (tex * 200 + 25 + torch.randn(3, big_h, big_w, generator=g) * 8).clamp(0, 255).to(torch.uint8)
    frames = torch.stack([tex[:, pan * t:pan * t + H, pan * t:pan * t + W] for t in range(T)])
    write_video(frames, path, fps=30)
    return str(path)


@pytest.fixture(scope="module")
def video_processor():
    from transformers import Qwen2VLVideoProcessor

    # Qwen2.5-VL's preprocessor_config: patch 14, merge 2, temporal patch 2, CLIP mean/std.
    return Qwen2VLVideoProcessor(min_pixels=3136, max_pixels=12845056)


def _timed(stages: dict, name: str, device, fn):
    sync(device)
    t0 = time.perf_counter()
    out = fn()
    sync(device)
    stages.setdefault(name, []).append(time.perf_counter() - t0)
    return out


def _report(benchmark, side: str, device, stages: dict) -> None:
    med = {k: statistics.median(v) * 1e3 for k, v in stages.items()}
    benchmark.extra_info.update(side=f"preprocess-{side}", device=str(device), device_name=device_name(device),
                                frames=NFRAME, height=720,
                                noise=NOISE, **{f"{k}_ms": round(v, 1) for k, v in med.items()})
    _stage_log[f"{side} ({device})"] = med
    print(f"\n{side} on {device}: " + ", ".join(f"{k} {v:.1f} ms" for k, v in med.items())
          + f", total {sum(med.values()):.1f} ms")


@pytest.mark.parametrize("device", DEVICES)
def test_preprocess_ours(benchmark, clip720p, video_processor, device):
    stages: dict = {}
    seed = torch.tensor([K.derive_seed(0, "clip", 0, NOISE, RATIO)])

    def sample():
        idx = {}

        def pick(info):
            n = qwen_nframes(info.num_frames, nframes=vlmeval_qwen_nframes(info.num_frames, NFRAME))
            idx["i"] = qwen_frame_indices(info.num_frames, n)
            return idx["i"]

        frames = _timed(stages, "decode", device, lambda: decode_frames(clip720p, pick, device=device))
        resized = _timed(stages, "resize", device, lambda: qwen_resize(frames, **VLMEVAL_QWEN25_VL).to(torch.uint8))
        noisy = _timed(stages, "noise", device, lambda: K.corrupt(resized, NOISE, RATIO, seed=seed))
        out = _timed(stages, "processor", device, lambda: video_processor(
            videos=[noisy], do_resize=False, cap_pixels_per_frame=False, return_tensors="pt", device=str(device)))
        return out

    benchmark.group = "preprocess-720p-8frames"
    out = benchmark.pedantic(sample, rounds=ROUNDS, iterations=1, warmup_rounds=1)
    assert out["video_grid_thw"].tolist() == [[4, 54, 96]]
    _report(benchmark, "ours", device, {k: v[1:] for k, v in stages.items()})  # drop the warm-up


def _nrvl0_gaussian(video: torch.Tensor, ratio: float) -> torch.Tensor:
    """NRVL-0's gaussian as written: random.sample frames, a Python loop, std 100, clamp, truncate."""
    T = video.shape[0]
    frames = random.sample(range(T), int(T * ratio))
    for i in range(T):
        if i in frames:
            video[i] = torch.clamp(video[i] + torch.randn_like(video[i].float()) * 100, 0, 255)
    return video.to(torch.uint8)


def test_preprocess_original(benchmark, clip720p, video_processor):
    from qwen_vl_utils import fetch_video

    stages: dict = {}
    ele = {"video": clip720p, "nframes": NFRAME, **VLMEVAL_QWEN25_VL}

    def sample():
        video = _timed(stages, "decode+resize (qwen-vl-utils)", "cpu", lambda: fetch_video(ele))
        noisy = _timed(stages, "noise (NRVL-0 loop)", "cpu", lambda: _nrvl0_gaussian(video, RATIO))
        return _timed(stages, "processor", "cpu", lambda: video_processor(
            videos=[noisy], cap_pixels_per_frame=False, return_tensors="pt"))

    benchmark.group = "preprocess-720p-8frames"
    out = benchmark.pedantic(sample, rounds=ROUNDS, iterations=1, warmup_rounds=1)
    assert out["video_grid_thw"].tolist() == [[4, 54, 96]]
    _report(benchmark, "original", "cpu", {k: v[1:] for k, v in stages.items()})


def test_print_side_by_side():
    """The stage table of the runs above (runs last in this file)."""
    if not _stage_log:
        pytest.skip("no preprocessing benchmark ran")
    print("\npreprocessing one 720p sample (8 frames), median ms per stage:")
    for side, med in _stage_log.items():
        print(f"  {side:16s} " + "  ".join(f"{k}={v:.0f}" for k, v in med.items()) + f"  total={sum(med.values()):.0f}")
