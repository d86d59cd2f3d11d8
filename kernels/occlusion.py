"""Occlusion family: random_block, target_block.

Reference: NoisyVideo/NRVL ``occlusion.py`` (``reference/nrvl-noises.md`` 2.2).

``target_block`` needs an object detector. Pass one with ``detector=fn``, where
``fn(frames)`` takes a list of float ``[3, H, W]`` frames in 0..1 and returns one
dict per frame with ``boxes`` (``[K, 4]``, x1 y1 x2 y2 in pixels) and ``scores``
(``[K]``), as torchvision's detection models do. Without one, a torchvision COCO
detector (Faster R-CNN, MobileNetV3-Large FPN) is loaded once per device from the
torch hub cache; nothing is downloaded.
"""
from __future__ import annotations

import os
from typing import Callable, Mapping

import torch

from .core import Context, apply_to_chosen, base_params, frame_uniform, to_work
from .registry import register_noise

__all__ = ["check_default_detector", "default_detector", "DETECTOR_WEIGHTS"]


def _check(cond: bool, name: str, noise: str, expected: str, got) -> None:
    if not cond:
        raise ValueError(f"{noise}: {name} must be {expected}, got {got!r}")


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


# ============================================================================ random_block


def _block_draw(ctx: Context, frame_idx, *, min_ratio, max_ratio):
    """``box``: int64 ``[B, n, 4]`` = (top, left, height, width) of each frame's black rectangle.

    ``h = max(1, int(H * U(min_ratio, max_ratio)))`` (likewise ``w``), top-left uniform
    over the positions that keep the block inside the frame.
    """
    _check(_is_number(min_ratio) and _is_number(max_ratio) and 0 <= min_ratio <= max_ratio <= 1,
           "min_ratio/max_ratio", "random_block", "numbers with 0 <= min_ratio <= max_ratio <= 1",
           (min_ratio, max_ratio))
    H, W = ctx.shape[-2:]
    u = frame_uniform(ctx, frame_idx, "random_block/box", count=4).to(torch.float64)  # [B, n, 4]
    size = min_ratio + (max_ratio - min_ratio) * u[..., :2]
    h = torch.floor(H * size[..., 0]).clamp(1, max(H, 1))
    w = torch.floor(W * size[..., 1]).clamp(1, max(W, 1))
    top = torch.minimum(torch.floor(u[..., 2] * (H - h + 1)), H - h)
    left = torch.minimum(torch.floor(u[..., 3] * (W - w + 1)), W - w)
    return {"box": torch.stack([top, left, h, w], -1).to(torch.int64)}


def _box_mask(top, left, h, w, H: int, W: int, device) -> torch.Tensor:
    """bool ``[M, H, W]``: rows ``[top, top+h)`` x columns ``[left, left+w)`` (broadcast ``[M, ...]`` args)."""
    ys = torch.arange(H, device=device)[None, :, None]
    xs = torch.arange(W, device=device)[None, None, :]
    rows = (ys >= top[..., None, None]) & (ys < (top + h)[..., None, None])
    cols = (xs >= left[..., None, None]) & (xs < (left + w)[..., None, None])
    return rows & cols


def _block_sample(ctx: Context, **p) -> dict:
    params = base_params(ctx, "selected")
    params.update(_block_draw(ctx, params["frame_idx"], **p))
    return params


def _block_apply(video, params: Mapping, *, inplace=False, min_ratio, max_ratio):
    """One pass over the clip: ``video * keep``, ``keep`` a 0/1 map ``[B, T, 1, H, W]``.

    ``keep`` is 0 inside each chosen frame's box (rows ``[top, top+h)`` x columns
    ``[left, left+w)``) and 1 elsewhere (frames not chosen get an empty box), built as the
    OR of a row and a column vector in uint8 (bool broadcasting is ~50x slower on a CPU).
    Exact: ``0 * x = 0`` for the finite, non-negative values a clip holds. On the CPU several
    times faster than gathering, filling and scattering the chosen frames.
    """
    B, T, C, H, W = video.shape
    idx = params["frame_idx"]
    n = idx.shape[1]
    if B * n == 0 or C * H * W == 0:
        return video if inplace else video.clone()
    dev = video.device
    box = torch.zeros(B, T, 4, dtype=torch.int64, device=dev)  # h = w = 0: an empty box
    box[torch.arange(B, device=dev)[:, None], idx] = params["box"]
    top, left, h, w = box.unbind(-1)
    ys = torch.arange(H, device=dev)
    xs = torch.arange(W, device=dev)
    out_rows = ((ys < top[..., None]) | (ys >= (top + h)[..., None])).to(torch.uint8)  # [B, T, H]
    out_cols = ((xs < left[..., None]) | (xs >= (left + w)[..., None])).to(torch.uint8)  # [B, T, W]
    keep = (out_rows[..., :, None] | out_cols[..., None, :]).unsqueeze(2)  # [B, T, 1, H, W]
    if video.dtype != torch.uint8:
        keep = keep.to(video.dtype)
    return video.mul_(keep) if inplace else video * keep


register_noise(
    "random_block", family="occlusion", sample=_block_sample, apply=_block_apply, pointwise=True,
    defaults={"min_ratio": 0.3, "max_ratio": 0.7},
    description="one black rectangle per frame, sides U(0.3, 0.7) of H and W, anywhere inside the frame",
    severities=[{"min_ratio": a, "max_ratio": b} for a, b in ((0.1, 0.2), (0.15, 0.3), (0.2, 0.45), (0.25, 0.55),
                                                              (0.3, 0.7))],
)


# ============================================================================ target_block

#: The default detector: torchvision's Faster R-CNN MobileNetV3-Large FPN on COCO (box mAP 32.8).
DETECTOR_WEIGHTS = "FasterRCNN_MobileNet_V3_Large_FPN_Weights.COCO_V1"
_DETECTORS: dict = {}


def _weights_file() -> tuple[object, str]:
    from torchvision.models.detection import FasterRCNN_MobileNet_V3_Large_FPN_Weights as Weights
    weights = Weights.COCO_V1
    path = os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(weights.url))
    return weights, path


def check_default_detector(instead: str | None = None) -> None:
    """Raise unless the default detector's weights are in the torch hub cache (nothing is loaded).

    ``instead`` is the message's last sentence, the way round the missing file for the caller
    (default: pass ``detector=`` to ``corrupt``).

    Raises:
        FileNotFoundError: the weights file is missing; the message names where it goes.
    """
    weights, path = _weights_file()
    if os.path.isfile(path):
        return
    if instead is None:
        instead = ("Or pass your own detector: corrupt(video, 'target_block', ratio, detector=fn) with fn(list "
                   "of float [3,H,W] frames in 0..1) -> list of dicts with 'boxes' [K,4] (x1 y1 x2 y2 pixels) and "
                   "'scores' [K].")
    raise FileNotFoundError(
        f"target_block's default detector ({DETECTOR_WEIGHTS}) needs the weights file {path}, which is "
        f"missing, and nrvl never downloads. Copy {os.path.basename(path)} (from {weights.url}) into "
        f"{os.path.dirname(path)} (set TORCH_HOME to use another cache: the file goes in "
        f"$TORCH_HOME/hub/checkpoints/). {instead}")


def default_detector(device) -> Callable:
    """The default COCO detector on ``device``, built once per device (eval mode, no grad).

    Raises:
        FileNotFoundError: the weights are not in the torch hub cache (no download is
            attempted); the message says where to put them or how to pass ``detector=``.
    """
    device = torch.device(device)
    model = _DETECTORS.get(str(device))
    if model is not None:
        return model
    check_default_detector()
    weights, _ = _weights_file()
    from torchvision.models.detection import fasterrcnn_mobilenet_v3_large_fpn
    model = fasterrcnn_mobilenet_v3_large_fpn(weights=weights, progress=False).eval().to(device)
    for p in model.parameters():
        p.requires_grad_(False)
    _DETECTORS[str(device)] = model
    return model


def _block_check(detector, conf, boxes):
    if detector is not None and not callable(detector):
        raise TypeError(f"target_block: detector must be None or a callable, got {type(detector).__name__}")
    _check(_is_number(conf), "conf", "target_block", "a number (minimum score)", conf)
    _check(isinstance(boxes, int) and not isinstance(boxes, bool) and boxes >= 1, "boxes", "target_block",
           "an int >= 1", boxes)


def _target_sample(ctx: Context, *, detector, conf, boxes) -> dict:
    """``seed``/``frames``/``frame_idx`` only: the boxes come from the detector in ``apply``."""
    _block_check(detector, conf, boxes)
    return base_params(ctx, "selected")


def _stack_detections(results, M: int, device):
    """Per-frame detector output -> padded ``boxes`` float32 ``[M, K, 4]`` and ``scores`` ``[M, K]`` (-inf pad)."""
    if not isinstance(results, (list, tuple)) or len(results) != M:
        got = f"{type(results).__name__} of length {len(results)}" if hasattr(results, "__len__") else \
            type(results).__name__
        raise TypeError(f"target_block: detector must return a list with one dict per frame ({M}), got {got}")
    try:
        boxes = [torch.as_tensor(r["boxes"]).to(device=device, dtype=torch.float32).reshape(-1, 4) for r in results]
        scores = [torch.as_tensor(r["scores"]).to(device=device, dtype=torch.float32).reshape(-1) for r in results]
    except (KeyError, TypeError, IndexError, RuntimeError) as e:
        raise TypeError("target_block: each detection must be a dict with 'boxes' [K, 4] (x1 y1 x2 y2 pixels) "
                        f"and 'scores' [K]; {type(e).__name__}: {e}") from e
    if any(b.shape[0] != s.shape[0] for b, s in zip(boxes, scores)):
        raise ValueError("target_block: a detection has different numbers of 'boxes' and 'scores'")
    pad = torch.nn.utils.rnn.pad_sequence
    return (pad(boxes, batch_first=True, padding_value=0.0),
            pad(scores, batch_first=True, padding_value=float("-inf")))


# Working set per element of a chunk of chosen frames: the detector's float32 copy (4 bytes),
# the gathered frames and the result (1 byte each for uint8; float input adds its own), the mask.
_TARGET_WORK_BYTES = 8.0


def _target_chunk(sel, detector, conf, boxes):
    """The chosen frames ``sel`` ``[M, C, H, W]`` with their top-scoring boxes set to 0."""
    M, C, H, W = sel.shape
    if sel.dtype == torch.uint8:  # one float copy, scaled in place
        frames = sel.to(torch.float32).div_(255.0)
    else:
        frames = (to_work(sel) / 255.0).to(torch.float32)
    with torch.no_grad():
        results = detector(list(frames.unbind(0)))
    del frames
    box, score = _stack_detections(results, M, sel.device)
    del results
    k = min(int(boxes), box.shape[1])
    if k == 0:
        return sel
    score = torch.where(score >= conf, score, torch.full_like(score, float("-inf")))
    top, order = score.topk(k, dim=1)  # [M, k]: most confident first
    xyxy = box.gather(1, order[..., None].expand(M, k, 4))
    # The reference clamps to the frame and truncates to int: rows [y1, y2), columns [x1, x2).
    x1, x2 = (torch.floor(xyxy[..., i].clamp(0, W)) for i in (0, 2))
    y1, y2 = (torch.floor(xyxy[..., i].clamp(0, H)) for i in (1, 3))
    hit = _box_mask(y1, x1, y2 - y1, x2 - x1, H, W, sel.device)  # [M, k, H, W]
    hit = (hit & torch.isfinite(top)[..., None, None]).any(dim=1)
    if sel.dtype == torch.uint8:  # a multiply by 0/1: exact, and much faster than masked_fill on the CPU
        return sel * hit.logical_not_().view(torch.uint8)[:, None]
    return sel.masked_fill(hit[:, None], 0)


def _target_apply(video, params: Mapping, *, inplace=False, detector, conf, boxes):
    def chunk_fn():  # memory-bounded chunks of the chosen frames: the detector sees a few frames per call
        fn = detector if detector is not None else default_detector(video.device)
        return lambda sel, part: _target_chunk(sel, fn, conf, boxes)

    return apply_to_chosen(video, params, inplace, chunk_fn, work_bytes=_TARGET_WORK_BYTES)


register_noise(
    "target_block", family="occlusion", sample=_target_sample, apply=_target_apply,
    defaults={"detector": None, "conf": 0.25, "boxes": 1},
    description="black out the top-scoring detected box (score >= 0.25) of each chosen frame (detector=)",
    # Severity = how many of the most confident boxes are blacked out (1 = the reference).
    severities=[{"boxes": k} for k in (1, 2, 3, 4, 5)],
)
