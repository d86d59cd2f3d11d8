"""Compression noise: jpeg_artifact, a real JPEG round trip (family "quality" in the registry).

The reference saves each chosen frame with PIL at quality 1 (4:2:0 chroma
subsampling) and decodes it. ``torchvision.io.encode_jpeg``/``decode_jpeg`` call
the same libjpeg with the same settings, so on CPU the result is bit-identical
to PIL's (tested). On CUDA the codec is nvjpeg, batched over the list of
frames: a different encoder and decoder, so pixels differ slightly from
libjpeg's while the 8x8 block artifacts are the same.

The codec API is per image: the frames go in as a Python list (a list
comprehension over the chosen frames, which the codec batches on CUDA); that
is the only per-frame Python step. On CUDA the encoded bytes (a few KB per
frame at quality 1) are copied to the host because ``decode_jpeg`` reads its
input from CPU memory; that copy is a device sync.
"""
from __future__ import annotations

import warnings
from numbers import Integral

import torch

from .core import Context, register_frame_noise

__all__ = ["jpeg_roundtrip"]


def _check_jpeg(*, quality):
    if isinstance(quality, bool) or not isinstance(quality, Integral) or not 1 <= int(quality) <= 100:
        raise ValueError(f"quality must be an int in [1, 100], got {quality!r}")
    return int(quality)


def jpeg_roundtrip(frames: torch.Tensor, quality: int = 1) -> torch.Tensor:
    """Encode and decode ``[M, 3, H, W]`` uint8 frames as JPEG; returns uint8 on the same device."""
    from torchvision.io import ImageReadMode, decode_jpeg, encode_jpeg

    q = _check_jpeg(quality=quality)
    if frames.shape[0] == 0 or frames[0].numel() == 0:
        return frames.clone()
    images = [f.contiguous() for f in frames]  # the codec takes a list of CHW images
    with warnings.catch_warnings():
        # torchvision 0.29 deprecates its image codecs in favour of TorchCodec; the calls still work.
        warnings.simplefilter("ignore", DeprecationWarning)
        data = encode_jpeg(images, quality=q)
        data = [d if d.device.type == "cpu" else d.cpu() for d in data]
        decoded = decode_jpeg(data, mode=ImageReadMode.RGB, device=frames.device)
    return torch.stack(decoded)


def _jpeg_draw(ctx: Context, frame_idx, **p) -> dict:
    _check_jpeg(**p)
    return {}


def _jpeg(x, fp, *, quality):
    # The codec reads uint8: float frames are rounded first (the reference truncated with astype).
    u8 = x.clamp(0.0, 255.0).round().to(torch.uint8)
    return jpeg_roundtrip(u8, quality).to(x.dtype)


def _jpeg_u8(frames, fp, *, quality):
    return jpeg_roundtrip(frames, quality)


register_frame_noise(
    "jpeg_artifact", family="quality", transform=_jpeg, uint8_transform=_jpeg_u8, compilable=False,
    draw=_jpeg_draw,
    defaults={"quality": 1}, pointwise=False, deterministic=True,
    work_bytes=3, channelwise=False,
    description="JPEG round trip at quality 1 (libjpeg on CPU, nvjpeg on CUDA), 4:2:0 chroma",
    # ImageNet-C jpeg_compression quality = 25, 18, 15, 10, 7.
    severities=[{"quality": q} for q in (25, 18, 15, 10, 7)],
)
