"""Video I/O for NRVL: decoding sampled frames, the frame-index rules, Qwen2.5-VL's resize,
a procedural test clip and an mp4 writer.

Importing this package imports torch but no decoder: torchcodec, decord and PyAV are
loaded on first use.
"""
from .decode import BACKENDS, VideoDecodeError, VideoInfo, decode_frames, probe, resolve_backend
from .encode import write_video
from .resize import (
    VLMEVAL_QWEN25_VL,
    VLMEVAL_QWEN25_VL_FORVIDEO,
    qwen_resize,
    qwen_video_max_pixels,
    qwen_video_size,
    smart_resize,
)
from .sampling import (
    qwen_frame_indices,
    qwen_nframes,
    qwen_sample,
    vlmeval_fps_indices,
    vlmeval_frame_indices,
    vlmeval_qwen_nframes,
    vlmeval_sample,
)
from .synth import make_clip

__all__ = [
    "BACKENDS",
    "VLMEVAL_QWEN25_VL",
    "VLMEVAL_QWEN25_VL_FORVIDEO",
    "VideoDecodeError",
    "VideoInfo",
    "decode_frames",
    "make_clip",
    "probe",
    "qwen_frame_indices",
    "qwen_nframes",
    "qwen_resize",
    "qwen_sample",
    "qwen_video_max_pixels",
    "qwen_video_size",
    "resolve_backend",
    "smart_resize",
    "vlmeval_fps_indices",
    "vlmeval_frame_indices",
    "vlmeval_qwen_nframes",
    "vlmeval_sample",
    "write_video",
]
