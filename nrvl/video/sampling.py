"""Which frames of a video a model sees: the frame-index rules of the reference.

Two families, both copied operation for operation because the last bit
matters (``reference/mmbench-video.md`` 1.4 and 5):

* VLMEvalKit, for frame-based and API models (``VideoBaseDataset.save_video_frames``):
  ``step = N / (n + 1)`` in float64, then ``int(i * step)`` for ``i = 1..n``
  (nframe mode), or ``int(i * video_fps / fps)`` for ``i = 0..int(N / video_fps * fps) - 1``
  (fps mode).
* qwen-vl-utils, for Qwen2.5-VL (``smart_nframes`` and the readers): an even
  frame count, then ``torch.linspace(0, N - 1, n).round()`` in float32 (round
  half to even).

All functions take plain Python numbers and return Python ints: they run once
per video on the host, before decoding, and the decoders want host indices.
"""
from __future__ import annotations

import math
import operator

import torch

# qwen-vl-utils constants (vision_process.py, 0.0.10 .. 0.0.14).
FRAME_FACTOR = 2
FPS = 2.0
FPS_MIN_FRAMES = 4
FPS_MAX_FRAMES = 768


def _check_count(name: str, value, minimum: int) -> int:
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got bool")
    try:
        value = operator.index(value)  # int, NumPy integer or 0-d integer tensor
    except TypeError:
        raise TypeError(f"{name} must be an int, got {type(value).__name__}") from None
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def _check_rate(name: str, value) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}") from None
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{name} must be a finite number > 0, got {value}")
    return value


def vlmeval_frame_indices(num_frames: int, nframe: int) -> list[int]:
    """VLMEvalKit's nframe-mode indices: ``int(i * (N / (n + 1)))`` for ``i = 1..n``.

    The step is computed first, in float64, exactly as VLMEvalKit writes it
    (``step_size = len(vid) / (self.nframe + 1)``). This is not always
    ``(i * N) // (n + 1)``: for ``N = 75, n = 64, i = 13`` the float step gives
    14 and the integer formula 15. The first frame and the tail are never
    taken; when ``N < n + 1`` indices repeat, as they do in VLMEvalKit.

    Args:
        num_frames: ``N``, frames in the video (decord's ``len(vr)``), >= 1.
        nframe: ``n``, frames wanted (8, 16 or 64 for MMBench-Video), >= 1.

    Returns:
        ``n`` non-decreasing indices in ``[0, N)``.

    Raises:
        TypeError / ValueError: if an argument is not an int >= 1.

    Example:
        >>> vlmeval_frame_indices(1000, 8)
        [111, 222, 333, 444, 555, 666, 777, 888]
    """
    N = _check_count("num_frames", num_frames, 1)
    n = _check_count("nframe", nframe, 1)
    step = N / (n + 1)
    return [int(i * step) for i in range(1, n + 1)]


def vlmeval_fps_indices(num_frames: int, video_fps: float, fps: float = 1.0) -> list[int]:
    """VLMEvalKit's fps-mode indices (``MMBench_Video_1fps_*``).

    ``duration = N / video_fps``, ``required = int(duration * fps)``,
    ``step = video_fps / fps``, indices ``int(i * step)`` for
    ``i = 0..required-1``; starts at frame 0. A 6-minute clip at ``fps=1``
    gives 360 frames. ``video_fps`` is decord's ``get_avg_fps()`` in
    VLMEvalKit.

    Args:
        num_frames: ``N``, frames in the video, >= 1.
        video_fps: the video's average frame rate, > 0.
        fps: frames wanted per second, > 0.

    Returns:
        ``int(N / video_fps * fps)`` increasing indices (possibly none, for a
        clip shorter than ``1 / fps`` seconds).

    Example:
        >>> vlmeval_fps_indices(90, 30.0, 1.0)
        [0, 30, 60]
    """
    N = _check_count("num_frames", num_frames, 1)
    video_fps = _check_rate("video_fps", video_fps)
    fps = _check_rate("fps", fps)
    total_duration = N / video_fps
    required = int(total_duration * fps)
    step = video_fps / fps
    return [int(i * step) for i in range(required)]


def vlmeval_qwen_nframes(frame_count: int, nframe: int) -> int:
    """The ``nframes`` VLMEvalKit's ``Qwen2VLChat`` puts in the video item.

    It is the dataset's ``nframe``, unless the video has fewer frames
    (``cv2.CAP_PROP_FRAME_COUNT``), in which case it is
    ``frame_count // 2 * 2``. qwen-vl-utils then applies :func:`qwen_nframes`.

    Args:
        frame_count: frames in the video, >= 0.
        nframe: the dataset's frame count (8 for ``MMBench_Video_8frame_*``), >= 1.

    Returns:
        The requested frame count (may be 0 for a 1-frame video, which
        :func:`qwen_nframes` then rejects, as qwen-vl-utils does).
    """
    frame_count = _check_count("frame_count", frame_count, 0)
    nframe = _check_count("nframe", nframe, 1)
    if frame_count < nframe:
        return frame_count // FRAME_FACTOR * FRAME_FACTOR
    return nframe


def _round_by_factor(number, factor: int) -> int:
    return round(number / factor) * factor  # Python round: half to even, as qwen-vl-utils


def _ceil_by_factor(number, factor: int) -> int:
    return math.ceil(number / factor) * factor


def _floor_by_factor(number, factor: int) -> int:
    return math.floor(number / factor) * factor


def qwen_nframes(
    total_frames: int,
    video_fps: float | None = None,
    *,
    nframes: int | None = None,
    fps: float | None = None,
    min_frames: int = FPS_MIN_FRAMES,
    max_frames: int | None = None,
) -> int:
    """qwen-vl-utils' ``smart_nframes``: how many frames Qwen2.5-VL reads.

    With ``nframes``: ``round(nframes / 2) * 2`` (Python's round, half to
    even, so 5 becomes 4 and 7 becomes 8). Otherwise the fps rule:
    ``total_frames / video_fps * fps`` (``fps`` defaults to 2.0), clamped to
    ``[ceil2(min_frames), floor2(max_frames)]`` where ``max_frames`` defaults to
    ``min(768, total_frames)``, then to ``total_frames``, then floored to even.

    Args:
        total_frames: frames in the video, >= 1.
        video_fps: the video's frame rate; needed only without ``nframes``.
        nframes: a fixed frame count (what VLMEvalKit passes, see
            :func:`vlmeval_qwen_nframes`); exclusive with ``fps``.
        fps: frames per second to sample when ``nframes`` is None.
        min_frames: lower bound of the fps rule.
        max_frames: upper bound of the fps rule.

    Returns:
        An even frame count in ``[2, total_frames]``.

    Raises:
        ValueError: if both ``nframes`` and ``fps`` are given, ``video_fps`` is
            missing in fps mode, or the count falls outside
            ``[2, total_frames]`` (qwen-vl-utils' own error, e.g. for a
            1-frame video).
    """
    total = _check_count("total_frames", total_frames, 1)
    if nframes is not None and fps is not None:
        raise ValueError("give either nframes or fps, not both (qwen-vl-utils accepts only one)")
    if nframes is not None:
        n = _round_by_factor(_check_count("nframes", nframes, 0), FRAME_FACTOR)
    else:
        if video_fps is None:
            raise ValueError("video_fps is required when nframes is not given")
        video_fps = _check_rate("video_fps", video_fps)
        fps = FPS if fps is None else _check_rate("fps", fps)
        lo = _ceil_by_factor(min_frames, FRAME_FACTOR)
        hi = _floor_by_factor(min(FPS_MAX_FRAMES, total) if max_frames is None else max_frames, FRAME_FACTOR)
        n = total / video_fps * fps
        n = min(min(max(n, lo), hi), total)
        n = _floor_by_factor(n, FRAME_FACTOR)
    if not FRAME_FACTOR <= n <= total:
        raise ValueError(f"nframes should be in [{FRAME_FACTOR}, {total}] (qwen-vl-utils' rule), got {n}")
    return int(n)


def qwen_frame_indices(total_frames: int, nframes: int) -> list[int]:
    """qwen-vl-utils' frame indices: ``torch.linspace(0, N - 1, n).round()``.

    Computed with ``torch.linspace`` in float32 on the CPU, exactly as
    qwen-vl-utils does, then rounded half to even. For ``n <= 256`` and
    ``N <= 20000`` this equals exact rounding of ``i * (N - 1) / (n - 1)``;
    for larger ``n`` float32 rounding moves a few indices by one (e.g.
    ``N = 16481, n = 512``: index 509 is 16416, exactly 16415.47), and that
    is what Qwen2.5-VL sees, so it is kept.

    Args:
        total_frames: ``N``, frames in the video, >= 1.
        nframes: ``n``, from :func:`qwen_nframes`, >= 1.

    Returns:
        ``n`` non-decreasing indices from 0 to ``N - 1``.

    Example:
        >>> qwen_frame_indices(64, 8)
        [0, 9, 18, 27, 36, 45, 54, 63]
    """
    N = _check_count("total_frames", total_frames, 1)
    n = _check_count("nframes", nframes, 1)
    return torch.linspace(0, N - 1, n, dtype=torch.float32).round().long().tolist()


def _one_of(nframe, fps) -> None:
    if (nframe is None) == (fps is None):
        raise ValueError(f"give exactly one of nframe and fps, got nframe={nframe!r}, fps={fps!r}")


def vlmeval_sample(num_frames: int, video_fps: float, *, nframe: int | None = None,
                   fps: float | None = None) -> list[int]:
    """The frames VLMEvalKit extracts for a frame-based (API) model, in either preset mode.

    ``nframe`` mode: :func:`vlmeval_frame_indices`; ``fps`` mode:
    :func:`vlmeval_fps_indices`, where ``video_fps`` must be decord's
    ``get_avg_fps()`` (the header's ``avg_frame_rate``,
    :attr:`nrvl.video.VideoInfo.header_fps`).

    Raises:
        ValueError: unless exactly one of ``nframe`` and ``fps`` is given.
    """
    _one_of(nframe, fps)
    if nframe is not None:
        return vlmeval_frame_indices(num_frames, nframe)
    return vlmeval_fps_indices(num_frames, video_fps, fps)


def qwen_sample(num_frames: int, video_fps: float, *, nframe: int | None = None,
                fps: float | None = None) -> list[int]:
    """The frames Qwen2.5-VL reads under VLMEvalKit's ``Qwen2VLChat``, in either preset mode.

    ``nframe`` mode: the video item's ``nframes`` is :func:`vlmeval_qwen_nframes`;
    ``fps`` mode: it carries ``fps`` (``MMBench_Video_1fps_*``: 1.0) and
    qwen-vl-utils' rule picks the count (:func:`qwen_nframes`: ``N / video_fps * fps``
    clamped to ``[4, min(768, N)]``, floored to even), where ``video_fps`` is the
    reader's (:attr:`nrvl.video.VideoInfo.fps`). Then :func:`qwen_frame_indices`.

    Raises:
        ValueError: unless exactly one of ``nframe`` and ``fps`` is given, or when
            qwen-vl-utils would refuse the count (a 1-frame video).

    Example:
        >>> qwen_sample(300, 30.0, fps=1.0)  # a 10 s clip: 10 frames
        [0, 33, 66, 100, 133, 166, 199, 233, 266, 299]
    """
    _one_of(nframe, fps)
    if nframe is not None:
        n = qwen_nframes(num_frames, nframes=vlmeval_qwen_nframes(num_frames, nframe))
    else:
        n = qwen_nframes(num_frames, video_fps, fps=fps)
    return qwen_frame_indices(num_frames, n)
