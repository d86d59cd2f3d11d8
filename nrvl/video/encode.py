"""Write a uint8 clip to an H.264 mp4 file, atomically.

PyAV is used rather than torchcodec's encoder because PyAV ships its own
FFmpeg with libx264, so writing works even where torchcodec cannot load the
system FFmpeg libraries.
"""
from __future__ import annotations

import os
import uuid
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import torch

_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow", "placebo")


def write_video(
    frames: torch.Tensor | Iterable[torch.Tensor],
    path: str | os.PathLike,
    fps: float = 16,
    *,
    crf: int | None = None,
    preset: str | None = None,
    threads: int = 0,
    faststart: bool = True,
) -> Path:
    """Encode a clip as H.264 (libx264, yuv420p) in an mp4 file.

    The file is first written to a temporary file in the destination folder,
    then moved into place with ``os.replace``, so ``path`` is either the old
    file or the complete new one, never half-written.

    Args:
        frames: uint8 ``[T, 3, H, W]`` RGB on any device (copied to the CPU),
            or an iterable of such chunks of one size (a long clip made piece
            by piece); ``H`` and ``W`` must be even (yuv420p subsamples chroma
            by 2).
        path: destination file; its folder must exist. The container is mp4
            whatever the extension.
        fps: frame rate written in the stream, > 0.
        crf: libx264 constant rate factor (0 = lossless luma .. 51); None keeps
            libx264's default (23).
        preset: libx264 speed preset (``"ultrafast"`` .. ``"veryslow"``); None
            keeps libx264's default (``"medium"``).
        threads: libx264 threads; 0 (default) lets libx264 pick. The bytes
            written are not guaranteed to be the same from run to run (here
            libx264 through PyAV gave two different streams for the same frames
            now and then, even with one thread); the decoded pictures differ by
            a few levels at most.
        faststart: put the index (``moov``) at the start of the file, so the
            file can be streamed and the frame count is read without the data.

    Returns:
        The destination path.

    Raises:
        TypeError: if ``frames`` is not a uint8 tensor.
        ValueError: if ``frames`` is not ``[T, 3, H, W]`` with T >= 1 and even
            H, W (chunks of one size), or ``fps``, ``crf``, ``preset`` or
            ``threads`` is out of range, or the folder does not exist.
    """
    import av  # imported here: PyAV is only needed when writing files

    if isinstance(fps, bool) or not isinstance(fps, (int, float, Fraction)) or not 0 < fps < 1000:
        raise ValueError(f"fps must be a number in (0, 1000), got {fps!r}")
    if crf is not None and not 0 <= int(crf) <= 51:
        raise ValueError(f"crf must be in [0, 51], got {crf}")
    if preset is not None and preset not in _PRESETS:
        raise ValueError(f"preset must be one of {', '.join(_PRESETS)}, got {preset!r}")
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
        raise ValueError(f"threads must be an int >= 0, got {threads!r}")
    path = Path(path)
    if not path.parent.is_dir():
        raise ValueError(f"path's folder does not exist: {path.parent}")
    chunks = iter([frames] if isinstance(frames, torch.Tensor) else frames)
    first = next(chunks, None)
    if first is None:
        raise ValueError("frames must hold at least one frame, got an empty iterable")
    H, W = _check_chunk(first, None)
    # A unique hidden name beside the target: os.replace is atomic within one file system, and
    # letting PyAV create the file gives it the usual permissions (mkstemp would make it 0600).
    tmp = str(path.parent / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        mux_options = {"movflags": "+faststart"} if faststart else {}
        with av.open(tmp, mode="w", format="mp4", options=mux_options) as container:
            # An exact rational rate: 29.97 becomes 2997/100, a Fraction(30000, 1001) stays as it is.
            stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
            stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
            options = {"threads": str(threads)}
            if crf is not None:
                options["crf"] = str(int(crf))
            if preset is not None:
                options["preset"] = preset
            stream.options = options
            chunk = first
            while chunk is not None:
                _check_chunk(chunk, (H, W))
                hwc = chunk.detach().to("cpu").permute(0, 2, 3, 1).contiguous().numpy()  # [t, H, W, 3]
                for image in hwc:
                    container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
                chunk = next(chunks, None)
            container.mux(stream.encode())  # flush the encoder
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def _check_chunk(frames, size: tuple[int, int] | None) -> tuple[int, int]:
    if not isinstance(frames, torch.Tensor) or frames.dtype != torch.uint8:
        got = frames.dtype if isinstance(frames, torch.Tensor) else type(frames).__name__
        raise TypeError(f"frames must be a uint8 tensor [T, 3, H, W], got {got}")
    if frames.ndim != 4 or frames.shape[1] != 3 or frames.shape[0] < 1:
        raise ValueError(f"frames must be [T, 3, H, W] with T >= 1, got shape {tuple(frames.shape)}")
    H, W = frames.shape[2:]
    if H % 2 or W % 2:
        raise ValueError(f"frames height and width must be even for yuv420p, got H={H}, W={W}")
    if size is not None and (H, W) != size:
        raise ValueError(f"frames chunks must all be {size[0]}x{size[1]}, got {H}x{W}")
    return H, W

