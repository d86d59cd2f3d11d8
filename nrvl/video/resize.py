"""Qwen2.5-VL's video resize (qwen-vl-utils ``fetch_video``), batched on the frames' device.

qwen-vl-utils picks one target size per video with ``smart_resize`` (both
sides multiples of 28, pixel count inside a window), then calls
``torchvision.transforms.functional.resize(uint8 video, size, BICUBIC,
antialias=True).float()``. On a uint8 tensor torchvision computes in float32,
clamps to [0, 255], rounds and casts back to uint8, and qwen-vl-utils then
casts to float32: the model sees float32 holding integers 0..255. This module
does the same arithmetic in one ``interpolate`` call over all frames (and all
clips), on whatever device the frames are on.

The pixel window (``reference/mmbench-video.md`` 5): since qwen-vl-utils
0.0.10 the effective maximum per frame is
``min(max_pixels, max(min(768*28*28, total_pixels / nframes * 2), int(1.05 * min_pixels)))``.
With VLMEvalKit's Qwen2.5-VL config (min 1280*28*28, max 16384*28*28) that is
[1,003,520, 1,053,696] pixels whatever the frame count: 16:9 becomes 756x1344.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

IMAGE_FACTOR = 28          # patch 14 x spatial merge 2
MAX_RATIO = 200
FRAME_FACTOR = 2
IMAGE_MIN_TOKENS = 4       # smart_resize's defaults are these times factor**2
IMAGE_MAX_TOKENS = 16384
VIDEO_MIN_PIXELS = 128 * 28 * 28           # qwen-vl-utils' default per-frame minimum
VIDEO_MAX_PIXELS = 768 * 28 * 28           # qwen-vl-utils' per-frame cap
VIDEO_TOTAL_PIXELS = 128000 * 28 * 28 * 0.9  # default total_pixels (MODEL_SEQ_LEN=128000), a float as upstream

# What VLMEvalKit's config.py passes for the Qwen2.5-VL entries (video items carry
# them since 2025-04-10); the -ForVideo entries add total_pixels.
VLMEVAL_QWEN25_VL = {"min_pixels": 1280 * 28 * 28, "max_pixels": 16384 * 28 * 28}
VLMEVAL_QWEN25_VL_FORVIDEO = {
    "min_pixels": 128 * 28 * 28,
    "max_pixels": 768 * 28 * 28,
    "total_pixels": 24576 * 28 * 28,
}


def _round_by_factor(number, factor: int) -> int:
    return round(number / factor) * factor


def _ceil_by_factor(number, factor: int) -> int:
    return math.ceil(number / factor) * factor


def _floor_by_factor(number, factor: int) -> int:
    return math.floor(number / factor) * factor


def smart_resize(
    height: int,
    width: int,
    factor: int = IMAGE_FACTOR,
    min_pixels: float | None = None,
    max_pixels: float | None = None,
) -> tuple[int, int]:
    """qwen-vl-utils' ``smart_resize``, operation for operation.

    Rounds both sides to the nearest multiple of ``factor`` (Python ``round``,
    half to even, at least ``factor``); if the area is then above
    ``max_pixels`` scales down by ``sqrt(h*w / max_pixels)`` and floors to the
    factor, if below ``min_pixels`` scales up and ceils.

    Args:
        height: source height, >= 1.
        width: source width, >= 1.
        factor: both outputs are multiples of it (28 for Qwen2.5-VL).
        min_pixels: smallest area; default ``4 * factor**2``.
        max_pixels: largest area; default ``16384 * factor**2``.

    Returns:
        ``(resized_height, resized_width)``.

    Raises:
        ValueError: if ``max_pixels < min_pixels``, a side is < 1, or the aspect
            ratio exceeds 200 (all errors qwen-vl-utils raises too, its
            assert included).

    Example:
        >>> smart_resize(720, 1280, min_pixels=1003520, max_pixels=1053696)
        (756, 1344)
    """
    if height < 1 or width < 1:
        raise ValueError(f"height and width must be >= 1, got height={height}, width={width}")
    max_pixels = max_pixels if max_pixels is not None else IMAGE_MAX_TOKENS * factor**2
    min_pixels = min_pixels if min_pixels is not None else IMAGE_MIN_TOKENS * factor**2
    if max_pixels < min_pixels:
        raise ValueError(f"max_pixels ({max_pixels}) must be >= min_pixels ({min_pixels})")
    if max(height, width) / min(height, width) > MAX_RATIO:
        raise ValueError(
            f"absolute aspect ratio must be smaller than {MAX_RATIO}, got {max(height, width) / min(height, width)}"
        )
    h_bar = max(factor, _round_by_factor(height, factor))
    w_bar = max(factor, _round_by_factor(width, factor))
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = _floor_by_factor(height / beta, factor)
        w_bar = _floor_by_factor(width / beta, factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = _ceil_by_factor(height * beta, factor)
        w_bar = _ceil_by_factor(width * beta, factor)
    return h_bar, w_bar


def qwen_video_max_pixels(
    nframes: int,
    *,
    min_pixels: float | None = None,
    max_pixels: float | None = None,
    total_pixels: float | None = None,
) -> float:
    """The per-frame pixel maximum qwen-vl-utils (>= 0.0.10) uses for a video.

    ``min(max_pixels, max(min(768*28*28, total_pixels / nframes * 2), int(1.05 * min_pixels)))``,
    where a None argument means "not in the video item" and takes
    qwen-vl-utils' default (:data:`VIDEO_MIN_PIXELS`, no ``max_pixels`` cap,
    :data:`VIDEO_TOTAL_PIXELS`). May be a float, as upstream.

    Args:
        nframes: frames sampled (after :func:`nrvl.video.sampling.qwen_nframes`), >= 1.
        min_pixels: the item's ``min_pixels``.
        max_pixels: the item's ``max_pixels``.
        total_pixels: the item's ``total_pixels``.

    Returns:
        The ``max_pixels`` handed to :func:`smart_resize`.
    """
    if nframes < 1:
        raise ValueError(f"nframes must be >= 1, got {nframes}")
    min_pixels = VIDEO_MIN_PIXELS if min_pixels is None else min_pixels
    total_pixels = VIDEO_TOTAL_PIXELS if total_pixels is None else total_pixels
    cap = max(min(VIDEO_MAX_PIXELS, total_pixels / nframes * FRAME_FACTOR), int(min_pixels * 1.05))
    return cap if max_pixels is None else min(max_pixels, cap)


def qwen_video_size(
    height: int,
    width: int,
    nframes: int,
    *,
    min_pixels: float | None = None,
    max_pixels: float | None = None,
    total_pixels: float | None = None,
) -> tuple[int, int]:
    """The frame size qwen-vl-utils' ``fetch_video`` resizes a video to.

    Args:
        height: source frame height.
        width: source frame width.
        nframes: frames sampled.
        min_pixels: the video item's ``min_pixels`` (None: qwen-vl-utils' default).
        max_pixels: the video item's ``max_pixels`` (None: not set).
        total_pixels: the video item's ``total_pixels`` (None: qwen-vl-utils' default).
            Pass ``**VLMEVAL_QWEN25_VL`` for VLMEvalKit's Qwen2.5-VL setup.

    Returns:
        ``(resized_height, resized_width)``, multiples of 28.

    Example:
        >>> qwen_video_size(720, 1280, 8, **VLMEVAL_QWEN25_VL)
        (756, 1344)
        >>> qwen_video_size(720, 1280, 8, **VLMEVAL_QWEN25_VL_FORVIDEO)
        (560, 1008)
    """
    min_pixels_eff = VIDEO_MIN_PIXELS if min_pixels is None else min_pixels
    cap = qwen_video_max_pixels(nframes, min_pixels=min_pixels, max_pixels=max_pixels, total_pixels=total_pixels)
    return smart_resize(height, width, factor=IMAGE_FACTOR, min_pixels=min_pixels_eff, max_pixels=cap)


def qwen_resize(
    frames: torch.Tensor,
    size: tuple[int, int] | None = None,
    *,
    min_pixels: float | None = None,
    max_pixels: float | None = None,
    total_pixels: float | None = None,
) -> torch.Tensor:
    """Resize sampled frames the way qwen-vl-utils does, batched, on their device.

    Bicubic with antialias (``align_corners=False``) computed in float32, then
    clamped to [0, 255] and rounded half to even, as torchvision does for
    uint8 input; the result stays float32 (qwen-vl-utils' ``.float()``). When
    the size does not change the frames are only cast, as torchvision returns
    its input unchanged then. On CPU the values equal qwen-vl-utils'
    (``tests/test_video_resize.py``); on CUDA the interpolation kernel's float
    rounding can move a value by 1.

    Args:
        frames: uint8 ``[T, 3, H, W]`` (one clip) or ``[B, T, 3, H, W]`` (clips
            of the same size), on any device.
        size: ``(height, width)`` to resize to; None computes it with
            :func:`qwen_video_size` from ``H, W`` and ``T`` (the clip's frame
            count, as qwen-vl-utils uses) and the pixel arguments.
        min_pixels: see :func:`qwen_video_size`.
        max_pixels: see :func:`qwen_video_size`.
        total_pixels: see :func:`qwen_video_size`.

    Returns:
        float32 ``[..., 3, h, w]`` on ``frames.device`` holding integers 0..255;
        a new tensor.

    Raises:
        TypeError: if ``frames`` is not a uint8 tensor.
        ValueError: if ``frames`` is not ``[T, 3, H, W]`` / ``[B, T, 3, H, W]``
            or ``size`` is not two positive ints.
    """
    if not isinstance(frames, torch.Tensor) or frames.dtype != torch.uint8:
        got = frames.dtype if isinstance(frames, torch.Tensor) else type(frames).__name__
        raise TypeError(f"frames must be a uint8 tensor, got {got}")
    if frames.ndim not in (4, 5) or frames.shape[-3] != 3:
        raise ValueError(f"frames must be [T, 3, H, W] or [B, T, 3, H, W], got shape {tuple(frames.shape)}")
    H, W = frames.shape[-2:]
    if size is None:
        size = qwen_video_size(
            H, W, frames.shape[-4], min_pixels=min_pixels, max_pixels=max_pixels, total_pixels=total_pixels
        )
    if len(size) != 2 or any(int(s) != s or s < 1 for s in size):
        raise ValueError(f"size must be two positive ints (height, width), got {size}")
    h, w = int(size[0]), int(size[1])
    if (h, w) == (H, W):
        return frames.float()
    lead = frames.shape[:-3]
    x = frames.reshape(-1, 3, H, W).float()
    if x.shape[0] == 0:
        return x.new_empty(*lead, 3, h, w)
    y = F.interpolate(x, size=(h, w), mode="bicubic", align_corners=False, antialias=True)
    y = y.clamp_(0, 255).round_()
    return y.reshape(*lead, 3, h, w)
