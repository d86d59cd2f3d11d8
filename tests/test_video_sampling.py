"""Frame-index rules against independent formulas, for every frame count up to 20 000."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from nrvl.video.sampling import (
    qwen_frame_indices,
    qwen_nframes,
    vlmeval_fps_indices,
    vlmeval_frame_indices,
    vlmeval_qwen_nframes,
)

N_MAX = 20_000


# --------------------------------------------------------------------------- VLMEvalKit nframe mode

def _vlmeval_grid(n: int) -> np.ndarray:
    """int(i * (N / (n + 1))) for every N in 1..N_MAX (rows) and i in 1..n (columns), float64, vectorised."""
    N = np.arange(1, N_MAX + 1, dtype=np.float64)
    step = N / (n + 1)
    return np.trunc(step[:, None] * np.arange(1, n + 1, dtype=np.float64)[None, :]).astype(np.int64)


@pytest.mark.parametrize("n", [8, 16, 64])
def test_vlmeval_indices_match_float64_formula_for_every_length(n):
    grid = _vlmeval_grid(n)
    got = np.array([vlmeval_frame_indices(N, n) for N in range(1, N_MAX + 1)], dtype=np.int64)
    np.testing.assert_array_equal(got, grid)
    assert (got >= 0).all() and (got < np.arange(1, N_MAX + 1)[:, None]).all()


@pytest.mark.parametrize("n", [8, 16])
def test_vlmeval_indices_equal_integer_formula_for_8_and_16(n):
    # The reference checked this up to 200 000 frames; the float step and (i*N)//(n+1) agree here.
    N = np.arange(1, N_MAX + 1, dtype=np.int64)[:, None]
    i = np.arange(1, n + 1, dtype=np.int64)[None, :]
    np.testing.assert_array_equal(_vlmeval_grid(n), (i * N) // (n + 1))


def test_vlmeval_indices_take_the_step_first():
    # N=75, n=64, i=13: 13 * (75/65) = 14.999999999999998 -> 14, while 13*75/65 = 15 exactly.
    assert vlmeval_frame_indices(75, 64)[12] == 14
    N = np.arange(1, N_MAX + 1, dtype=np.int64)[:, None]
    i = np.arange(1, 65, dtype=np.int64)[None, :]
    assert (_vlmeval_grid(64) != (i * N) // 65).sum() > 0


@pytest.mark.parametrize(
    "N, expected",
    [
        (900, [100, 200, 300, 400, 500, 600, 700, 800]),
        (1000, [111, 222, 333, 444, 555, 666, 777, 888]),
        (3000, [333, 666, 1000, 1333, 1666, 2000, 2333, 2666]),
        (3, [0, 0, 1, 1, 1, 2, 2, 2]),  # fewer frames than asked: repeats, as in VLMEvalKit
    ],
    ids=["900", "1000", "3000", "short"],
)
def test_vlmeval_indices_reference_examples(N, expected):
    assert vlmeval_frame_indices(N, 8) == expected


# --------------------------------------------------------------------------- VLMEvalKit fps mode

@pytest.mark.parametrize("video_fps", [30.0, 29.97002997002997, 25.0, 24.0, 60.0, 16.0])
def test_vlmeval_fps_indices_match_formula(video_fps):
    fps = 1.0
    for N in range(1, N_MAX + 1, 7):
        required = int(N / video_fps * fps)
        expected = np.trunc(np.arange(required, dtype=np.float64) * (video_fps / fps)).astype(np.int64)
        got = vlmeval_fps_indices(N, video_fps, fps)
        assert got == expected.tolist(), N
        assert all(0 <= g < N for g in got)


def test_vlmeval_fps_six_minute_clip_gives_360_frames():
    idx = vlmeval_fps_indices(360 * 30, 30.0, 1.0)
    assert len(idx) == 360 and idx[:3] == [0, 30, 60] and idx[-1] == 359 * 30


def test_vlmeval_fps_two_fps():
    assert vlmeval_fps_indices(100, 25.0, 2.0) == [0, 12, 25, 37, 50, 62, 75, 87]


# --------------------------------------------------------------------------- qwen-vl-utils

def _exact_rounded_linspace(N: np.ndarray, n: int) -> np.ndarray:
    """round-half-even(i * (N-1) / (n-1)) in exact integer arithmetic, [len(N), n]."""
    i = np.arange(n, dtype=np.int64)[None, :]
    num = i * (N[:, None] - 1)
    den = n - 1
    q, r = num // den, num % den
    up = (2 * r > den) | ((2 * r == den) & (q % 2 == 1))
    return q + up


@pytest.mark.parametrize("n", [2, 4, 8, 16, 32, 64, 256])
def test_qwen_indices_match_exact_rounding_for_every_length(n):
    N = np.arange(n, N_MAX + 1, dtype=np.int64)
    expected = _exact_rounded_linspace(N, n)
    got = np.array([qwen_frame_indices(int(k), n) for k in N], dtype=np.int64)
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("n", [512, 768])
def test_qwen_indices_keep_float32_linspace_rounding(n):
    # Here float32 moves a few indices by one against exact rounding; Qwen sees the float32 ones.
    differ = 0
    for N in range(n, N_MAX + 1, 3):
        got = qwen_frame_indices(N, n)
        assert got == torch.linspace(0, N - 1, n).round().long().tolist()
        differ += got != _exact_rounded_linspace(np.array([N]), n)[0].tolist()
    assert differ > 0


def test_qwen_indices_known_float32_case():
    assert qwen_frame_indices(16481, 512)[509] == 16416  # exactly 16415.47..., float32 gives 16415.5+
    assert qwen_frame_indices(64, 8) == [0, 9, 18, 27, 36, 45, 54, 63]
    assert qwen_frame_indices(1, 2) == [0, 0]


@pytest.mark.parametrize("requested, expected", [(2, 2), (3, 4), (4, 4), (5, 4), (6, 6), (7, 8), (8, 8), (9, 8)])
def test_qwen_nframes_rounds_half_to_even(requested, expected):
    assert qwen_nframes(100, nframes=requested) == expected


def _smart_nframes_ref(total, video_fps, fps=2.0, min_frames=4, max_frames=None):
    lo = math.ceil(min_frames / 2) * 2
    hi = math.floor((min(768, total) if max_frames is None else max_frames) / 2) * 2
    n = min(min(max(total / video_fps * fps, lo), hi), total)
    return math.floor(n / 2) * 2


@pytest.mark.parametrize("video_fps", [30.0, 25.0, 29.97, 7.5])
@pytest.mark.parametrize("fps", [2.0, 1.0, 0.5])
def test_qwen_nframes_fps_rule(video_fps, fps):
    for total in range(4, N_MAX + 1, 13):
        assert qwen_nframes(total, video_fps, fps=fps) == _smart_nframes_ref(total, video_fps, fps), total


def test_qwen_nframes_against_qwen_vl_utils():
    vp = pytest.importorskip("qwen_vl_utils.vision_process")
    for total in range(2, 3000, 7):
        for k in (2, 3, 8, 16, 64):
            if k <= total:
                assert qwen_nframes(total, nframes=k) == vp.smart_nframes({"nframes": k}, total, 30.0)
        assert qwen_nframes(total, 30.0) == vp.smart_nframes({}, total, 30.0)
        assert qwen_nframes(total, 24.0, fps=1.0, max_frames=64) == vp.smart_nframes(
            {"fps": 1.0, "max_frames": 64}, total, 24.0)


def test_qwen_nframes_errors():
    with pytest.raises(ValueError, match="nframes should be in"):
        qwen_nframes(1, nframes=0)
    with pytest.raises(ValueError, match="nframes should be in"):
        qwen_nframes(6, nframes=8)
    with pytest.raises(ValueError, match="either nframes or fps"):
        qwen_nframes(100, 30.0, nframes=8, fps=2.0)
    with pytest.raises(ValueError, match="video_fps"):
        qwen_nframes(100)
    with pytest.raises(ValueError, match="video_fps"):
        qwen_nframes(100, 0.0)


@pytest.mark.parametrize("count, nframe, expected", [(100, 8, 8), (8, 8, 8), (7, 8, 6), (5, 8, 4), (1, 8, 0)])
def test_vlmeval_qwen_nframes(count, nframe, expected):
    assert vlmeval_qwen_nframes(count, nframe) == expected


def test_full_qwen_path_on_short_video():
    # VLMEvalKit's 8-frame preset on a 5-frame video: nframes 4, then linspace.
    n = qwen_nframes(5, nframes=vlmeval_qwen_nframes(5, 8))
    assert qwen_frame_indices(5, n) == [0, 1, 3, 4]


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (lambda: vlmeval_frame_indices(0, 8), ValueError, "num_frames"),
        (lambda: vlmeval_frame_indices(10, 0), ValueError, "nframe"),
        (lambda: vlmeval_frame_indices(10.0, 8), TypeError, "num_frames"),
        (lambda: vlmeval_frame_indices(True, 8), TypeError, "num_frames"),
        (lambda: vlmeval_fps_indices(10, -1.0), ValueError, "video_fps"),
        (lambda: vlmeval_fps_indices(10, 30.0, float("nan")), ValueError, "fps"),
        (lambda: qwen_frame_indices(0, 2), ValueError, "total_frames"),
        (lambda: qwen_frame_indices(10, "8"), TypeError, "nframes"),
    ],
    ids=["N0", "n0", "float", "bool", "neg-fps", "nan-fps", "qwen-N0", "qwen-str"],
)
def test_bad_arguments_name_themselves(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_numpy_and_tensor_integers_are_accepted():
    assert vlmeval_frame_indices(np.int64(1000), torch.tensor(8)) == vlmeval_frame_indices(1000, 8)
