"""Inputs the registry-wide tests need for particular noises (detector, donor clip)."""
from __future__ import annotations

import torch


def fake_detector(frames):
    """A deterministic stand-in for a COCO detector: two boxes per frame, the first the most confident.

    Args:
        frames: list of float ``[3, H, W]`` tensors in 0..1.
    Returns:
        one dict per frame with ``boxes`` ``[2, 4]`` (x1, y1, x2, y2 in pixels) and ``scores`` ``[2]``.
    """
    out = []
    for f in frames:
        _, H, W = f.shape
        boxes = torch.tensor([[W * 0.25, H * 0.25, W * 0.75, H * 0.6], [0.0, 0.0, W * 0.2, H * 0.2]],
                             device=f.device)
        out.append({"boxes": boxes, "scores": torch.tensor([0.9, 0.4], device=f.device)})
    return out


def extra_params(name: str, video: torch.Tensor) -> dict:
    """Keyword arguments a noise needs in tests beyond the defaults."""
    if name == "target_block":
        return {"detector": fake_detector}
    if name == "other_video":
        T, C, H, W = video.shape[-4:]
        g = torch.Generator().manual_seed(123)
        donor = torch.randint(0, 256, (max(T, 2), C, H + 3, W + 5), generator=g, dtype=torch.uint8)
        return {"donor": donor.to(video.device)}
    return {}
