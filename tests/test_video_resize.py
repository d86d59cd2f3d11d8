"""Qwen2.5-VL's resize against qwen-vl-utils itself (sizes and pixel values, on the CPU).

Tolerance found: none. On the CPU ``qwen_resize`` gives exactly qwen-vl-utils'
float32 values (max abs difference 0) for downscaling, upscaling and the
VLMEvalKit configurations tested here.
"""
from __future__ import annotations

import os

os.environ.setdefault("FORCE_QWENVL_VIDEO_READER", "decord")  # before qwen_vl_utils is imported

import pytest  # noqa: E402
import torch  # noqa: E402

from nrvl.video import decode_frames, make_clip, write_video  # noqa: E402
from nrvl.video.resize import (  # noqa: E402
    VIDEO_MAX_PIXELS,
    VIDEO_MIN_PIXELS,
    VIDEO_TOTAL_PIXELS,
    VLMEVAL_QWEN25_VL,
    VLMEVAL_QWEN25_VL_FORVIDEO,
    qwen_resize,
    qwen_video_max_pixels,
    qwen_video_size,
    smart_resize,
)
from nrvl.video.sampling import qwen_frame_indices, qwen_nframes  # noqa: E402

vp = pytest.importorskip("qwen_vl_utils.vision_process")


@pytest.fixture(scope="module", autouse=True)
def _qwen_reads_with_decord():
    # qwen-vl-utils reads FORCE_QWENVL_VIDEO_READER at import; if something imported it earlier
    # with another value, force decord here (torchvision's reader no longer exists).
    old = vp.FORCE_QWENVL_VIDEO_READER
    vp.FORCE_QWENVL_VIDEO_READER = "decord"
    vp.get_video_reader_backend.cache_clear()
    yield
    vp.FORCE_QWENVL_VIDEO_READER = old
    vp.get_video_reader_backend.cache_clear()


SIZES = sorted({(h, w) for h in range(1, 2200, 37) for w in range(1, 4000, 53)}
               | {(240, 320), (360, 640), (480, 640), (720, 1280), (1080, 1920), (2160, 3840), (1, 200), (199, 1)})
WINDOWS = [
    (None, None),
    (VLMEVAL_QWEN25_VL["min_pixels"], qwen_video_max_pixels(8, **VLMEVAL_QWEN25_VL)),
    (128 * 28 * 28, 768 * 28 * 28),
    (28 * 28 * 4, 28 * 28 * 8),
    (100_000, 100_000.5),  # a float maximum, as fetch_video can pass
]


@pytest.mark.parametrize("window", WINDOWS, ids=["defaults", "vlmeval", "video-defaults", "tiny", "float-max"])
def test_smart_resize_matches_qwen_vl_utils(window):
    lo, hi = window
    for h, w in SIZES:
        if max(h, w) / min(h, w) > 200:
            with pytest.raises(ValueError, match="aspect ratio"):
                smart_resize(h, w, 28, lo, hi)
            continue
        assert smart_resize(h, w, 28, lo, hi) == vp.smart_resize(h, w, 28, lo, hi), (h, w)


def test_smart_resize_other_factor_and_bad_window():
    for h, w in SIZES[::5]:
        if max(h, w) / min(h, w) <= 200:
            assert smart_resize(h, w, 32) == vp.smart_resize(h, w, 32)
    with pytest.raises(ValueError, match="max_pixels"):
        smart_resize(100, 100, 28, min_pixels=2000, max_pixels=1000)


def _max_pixels_ref(nframes, min_pixels=None, max_pixels=None, total_pixels=None):
    """The reference's formula, written out from mmbench-video.md section 5."""
    min_pixels = 128 * 28 * 28 if min_pixels is None else min_pixels
    total_pixels = 128000 * 28 * 28 * 0.9 if total_pixels is None else total_pixels
    cap = max(min(768 * 28 * 28, total_pixels / nframes * 2), int(1.05 * min_pixels))
    return cap if max_pixels is None else min(max_pixels, cap)


@pytest.mark.parametrize("cfg", [{}, VLMEVAL_QWEN25_VL, VLMEVAL_QWEN25_VL_FORVIDEO,
                                 {"total_pixels": 20480 * 28 * 28}], ids=["none", "vlmeval", "forvideo", "total"])
def test_video_max_pixels_formula(cfg):
    for n in range(1, 800):
        assert qwen_video_max_pixels(n, **cfg) == _max_pixels_ref(n, **cfg)


def test_constants_match_qwen_vl_utils():
    assert VIDEO_MIN_PIXELS == vp.VIDEO_MIN_TOKEN_NUM * 28 * 28
    assert VIDEO_MAX_PIXELS == vp.VIDEO_MAX_TOKEN_NUM * 28 * 28
    assert VIDEO_TOTAL_PIXELS == vp.MODEL_SEQ_LEN * 28 * 28 * 0.9


@pytest.mark.parametrize(
    "hw, cfg, nframes, expected",
    [
        ((720, 1280), VLMEVAL_QWEN25_VL, (2, 8, 16, 64, 128), (756, 1344)),
        ((1080, 1920), VLMEVAL_QWEN25_VL, (2, 8, 16, 64, 128), (756, 1344)),
        ((360, 640), VLMEVAL_QWEN25_VL, (2, 8, 16, 64, 128), (756, 1344)),
        ((480, 640), VLMEVAL_QWEN25_VL, (2, 8, 16, 64, 128), (868, 1176)),
        ((720, 1280), VLMEVAL_QWEN25_VL_FORVIDEO, (2, 8, 16, 64), (560, 1008)),
        ((720, 1280), VLMEVAL_QWEN25_VL_FORVIDEO, (128,), (392, 728)),  # total_pixels / 128 * 2 binds
    ],
    ids=["720p", "1080p", "360p", "4:3", "forvideo", "forvideo-128"],
)
def test_reference_sizes(hw, cfg, nframes, expected):
    # VLMEvalKit's standard config: the window is [1280, 1344] tokens whatever the frame count.
    for n in nframes:
        assert qwen_video_size(*hw, n, **cfg) == expected


@pytest.fixture(scope="module")
def clip_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("resize") / "clip.mp4"
    write_video(make_clip(16, 96, 128, seed=7, texture=True), path, fps=8)
    return str(path)


@pytest.mark.parametrize(
    "cfg",
    [
        {"min_pixels": 28 * 28 * 4, "max_pixels": 28 * 28 * 8},     # downscale to 56x84
        {"min_pixels": 28 * 28 * 30, "max_pixels": 28 * 28 * 40},   # upscale
        {"min_pixels": 28 * 28 * 4, "max_pixels": 28 * 28 * 64, "total_pixels": 28 * 28 * 40},  # total caps
        VLMEVAL_QWEN25_VL_FORVIDEO,
    ],
    ids=["down", "up", "total", "forvideo"],
)
def test_resized_values_match_fetch_video_exactly(clip_path, cfg):
    ele = {"video": clip_path, "nframes": 8, **cfg}
    ref, meta = vp.fetch_video(dict(ele), return_video_metadata=True)
    idx = qwen_frame_indices(16, qwen_nframes(16, nframes=8))
    assert list(meta["frames_indices"]) == idx
    frames = decode_frames(clip_path, idx, backend="decord")
    ours = qwen_resize(frames, **cfg)
    assert ours.dtype == ref.dtype == torch.float32
    assert ours.shape == ref.shape
    assert torch.equal(ours, ref)  # tolerance 0
    assert torch.equal(ours, ours.round()) and ours.min() >= 0 and ours.max() <= 255


def test_batched_equals_per_clip_and_size_argument():
    a, b = make_clip(4, 96, 128, seed=1), make_clip(4, 96, 128, seed=2)
    batch = qwen_resize(torch.stack([a, b]), (56, 84))
    assert batch.shape == (2, 4, 3, 56, 84)
    assert torch.equal(batch[0], qwen_resize(a, (56, 84)))
    assert torch.equal(batch[1], qwen_resize(b, (56, 84)))


def test_same_size_is_a_cast_and_input_untouched():
    clip = make_clip(2, 56, 84)
    version = clip._version
    out = qwen_resize(clip, (56, 84))
    assert out.dtype == torch.float32 and torch.equal(out, clip.float())
    assert clip._version == version


def test_empty_clip():
    assert qwen_resize(torch.zeros(0, 3, 96, 128, dtype=torch.uint8), (56, 84)).shape == (0, 3, 56, 84)


@pytest.mark.parametrize(
    "frames, size, exc, match",
    [
        (torch.zeros(2, 3, 8, 8), (8, 8), TypeError, "uint8"),
        (torch.zeros(3, 8, 8, dtype=torch.uint8), (8, 8), ValueError, "frames must be"),
        (torch.zeros(2, 4, 8, 8, dtype=torch.uint8), (8, 8), ValueError, "frames must be"),
        (torch.zeros(2, 3, 8, 8, dtype=torch.uint8), (0, 8), ValueError, "size"),
        (torch.zeros(2, 3, 8, 8, dtype=torch.uint8), (8.5, 8), ValueError, "size"),
    ],
    ids=["float", "rank3", "channels", "zero-size", "fractional-size"],
)
def test_bad_input(frames, size, exc, match):
    with pytest.raises(exc, match=match):
        qwen_resize(frames, size)
