"""Decode only the sampled frames of a video file into a uint8 ``[T, 3, H, W]`` tensor.

Two backends:

* ``"torchcodec"`` (default): decodes on the GPU with NVDEC when
  ``device="cuda"`` and CUDA is available, on the CPU otherwise. Opened with
  ``seek_mode="exact"``: the file's packets are scanned once at open, so the
  frame count is the number of frames the stream really holds, not the
  header's claim, and a frame index means the same frame as in decord, except
  in a file whose edit list hides frames (one trimmed without re-encoding):
  decord counts the header's frames there, and a warning says so.
* ``"decord"``: what VLMEvalKit and the original NRVL decode with, kept for
  parity checks. decord can spin forever inside native code holding the GIL
  (dmlc/decord#373, #375: files that over-report their frame count, some
  ``get_batch`` index patterns), which no Python timeout can interrupt. So
  decord runs in a child process that imports only decord and NumPy; a request
  that does not finish within the timeout gets the child killed and raises
  :class:`VideoDecodeError`. The child is started once and reused.

The backend comes from the ``backend`` argument, else the environment variable
``NRVL_VIDEO_BACKEND``, else ``"torchcodec"``. When torchcodec cannot load
FFmpeg's shared libraries, decord is used instead, with a one-time warning.

Both backends give the same pixels on H.264 yuv420p files (``tests/test_video_decode.py``).
"""
from __future__ import annotations

import atexit
import dataclasses
import inspect
import json
import operator
import os
import re
import select
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Sequence

import torch

from nrvl._text import one_line

BACKENDS = ("torchcodec", "decord")
ENV_BACKEND = "NRVL_VIDEO_BACKEND"
ENV_TIMEOUT = "NRVL_DECODE_TIMEOUT"
DEFAULT_TIMEOUT_S = 120.0
TORCHCODEC_SEEK_MODE = "exact"
# FFmpeg decoding threads for torchcodec on the CPU; 0 lets FFmpeg pick (all cores).
TORCHCODEC_NUM_THREADS = 0

Indices = Sequence[int] | torch.Tensor


class VideoDecodeError(ValueError):
    """A video file cannot be opened or decoded; the message names the file."""


@dataclasses.dataclass(frozen=True)
class VideoInfo:
    """What a video stream holds.

    Attributes:
        num_frames: frames in the stream (decodable packets; not the header's guess).
        fps: average frame rate, frames per second, as the backend reports it:
            torchcodec's ``average_fps`` (frames over duration from its scan of the
            file), decord's ``get_avg_fps()`` (the stream header's ``avg_frame_rate``).
            qwen-vl-utils reads the same value from the same backend.
        width: frame width in pixels.
        height: frame height in pixels.
        duration: stream duration in seconds.
        header_fps: the stream header's ``avg_frame_rate`` (what decord's
            ``get_avg_fps()`` returns, so what VLMEvalKit's fps sampling uses,
            whichever backend decodes here); ``fps`` when the header has none.
    """

    num_frames: int
    fps: float
    width: int
    height: int
    duration: float
    header_fps: float = 0.0

    def __post_init__(self):
        if not self.header_fps:
            object.__setattr__(self, "header_fps", float(self.fps))


# ----------------------------------------------------------------------------- helpers

_warned: set[str] = set()


def _warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        warnings.warn(message, RuntimeWarning, stacklevel=3)


def _one_line(text: str, limit: int = 300) -> str:
    """Squash a native error message (paths of C++ sources, timestamps, newlines) into one short line."""
    text = re.sub(r"\[\d\d:\d\d:\d\d\]\s*", "", str(text))
    text = re.sub(r"(/\S+)?/\w+\.(cpp|cc|h|cu):\d+:?,?\s*", "", text)
    return one_line(text, limit)


def _error(path: str, reason: str) -> VideoDecodeError:
    return VideoDecodeError(f"cannot decode video {path}: {_one_line(reason)}")


def _check_file(path) -> str:
    try:
        # absolute: the decord worker is a long-lived process with its own working directory
        path = os.path.abspath(os.fspath(path))
    except TypeError:
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}") from None
    if not os.path.exists(path):
        raise _error(path, "no such file")
    if os.path.isdir(path):
        raise _error(path, "is a directory")
    if os.path.getsize(path) == 0:
        raise _error(path, "file is empty (0 bytes)")
    return path


def _as_index_list(indices) -> list[int]:
    if isinstance(indices, torch.Tensor):
        if indices.ndim != 1 or indices.dtype == torch.bool or indices.is_floating_point() or indices.is_complex():
            raise TypeError(
                f"indices must be a 1-D integer tensor, got {indices.dtype} of shape {tuple(indices.shape)}"
            )
        return indices.tolist()
    if isinstance(indices, (str, bytes)) or not isinstance(indices, Sequence) and not hasattr(indices, "__iter__"):
        raise TypeError(f"indices must be a sequence of ints, got {type(indices).__name__}")
    out = []
    for i in indices:
        if isinstance(i, bool):
            raise TypeError("indices must be ints, got a bool")
        try:
            out.append(operator.index(i))
        except TypeError:
            raise TypeError(f"indices must be ints, got {type(i).__name__} ({i!r})") from None
    return out


def _check_range(path: str, idx: list[int], num_frames: int) -> None:
    bad = [i for i in idx if not 0 <= i < num_frames]
    if bad:
        shown = ", ".join(map(str, bad[:10])) + (", ..." if len(bad) > 10 else "")
        raise ValueError(f"indices out of range for {path} ({num_frames} frames, valid 0..{num_frames - 1}): [{shown}]")


_TORCHCODEC_OK: bool | None = None  # cached by _torchcodec_ffmpeg_ok; tests set it to simulate no FFmpeg


def _torchcodec_ffmpeg_ok() -> bool:
    """True when torchcodec imports and has loaded FFmpeg's libraries (cached)."""
    global _TORCHCODEC_OK
    if _TORCHCODEC_OK is None:
        try:
            import torchcodec._core.ops as ops  # loading FFmpeg happens at this import
            import torchcodec.decoders  # noqa: F401

            _TORCHCODEC_OK = bool(getattr(ops, "_FFMPEG_AVAILABLE", True))
        except Exception:  # ImportError, OSError from a broken install
            _TORCHCODEC_OK = False
    return _TORCHCODEC_OK


def resolve_backend(backend: str | None = None, *, fallback: bool = True) -> str:
    """Pick the decoding backend: argument, else ``$NRVL_VIDEO_BACKEND``, else torchcodec.

    Args:
        backend: ``"torchcodec"``, ``"decord"`` or None.
        fallback: whether to check that torchcodec can decode here (False: the name asked for,
            checked only against the choices, e.g. to name the decoder of predictions made elsewhere).

    Returns:
        The backend that will be used: ``"torchcodec"`` is replaced by
        ``"decord"`` (with a one-time warning) when torchcodec cannot load FFmpeg and ``fallback``.

    Raises:
        ValueError: for an unknown name, listing the choices.
    """
    source = "backend"
    if backend is None:
        backend, source = os.environ.get(ENV_BACKEND) or "torchcodec", ENV_BACKEND
    name = str(backend).strip().lower()
    if name not in BACKENDS:
        raise ValueError(f"{source} must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if fallback and name == "torchcodec" and not _torchcodec_ffmpeg_ok():
        _warn_once(
            "torchcodec-ffmpeg",
            "torchcodec cannot load FFmpeg's shared libraries (on Debian 12: apt-get install libavutil57 "
            "libavcodec59 libavformat59 libavdevice59 libavfilter8 libswscale6 libswresample4); "
            "decoding with decord instead",
        )
        name = "decord"
    return name


def _resolve_device(device) -> torch.device:
    try:
        dev = torch.device(device)
    except (TypeError, RuntimeError):
        raise ValueError(f"device must be a torch device or a name like 'cpu' or 'cuda', got {device!r}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        _warn_once("no-cuda", "device='cuda' requested but CUDA is not available; decoding on the CPU")
        return torch.device("cpu")
    return dev


def _timeout(timeout: float | None) -> float:
    if timeout is None:
        raw = os.environ.get(ENV_TIMEOUT)
        try:
            timeout = float(raw) if raw else DEFAULT_TIMEOUT_S
        except ValueError:
            raise ValueError(f"{ENV_TIMEOUT} must be a number of seconds, got {raw!r}") from None
    if not timeout > 0:
        raise ValueError(f"timeout must be > 0 seconds, got {timeout}")
    return float(timeout)


# ----------------------------------------------------------------------------- torchcodec

def _torchcodec_open(path: str, device: torch.device):
    from torchcodec.decoders import VideoDecoder

    kwargs = {"seek_mode": TORCHCODEC_SEEK_MODE}
    if device.type == "cuda":
        kwargs["device"] = str(device)
    else:
        kwargs["num_ffmpeg_threads"] = TORCHCODEC_NUM_THREADS
    try:
        decoder = VideoDecoder(path, **kwargs)
    except (RuntimeError, ValueError, OSError, IndexError) as e:
        raise _error(path, _torchcodec_reason(e)) from e
    md = decoder.metadata
    if not md.num_frames:
        raise _error(path, "the video stream has no frames")
    return decoder


def _torchcodec_reason(e: Exception) -> str:
    text = str(e)
    if "best video stream" in text or "No valid stream" in text:
        return "no decodable video stream"
    if "Could not seek file to pts=0" in text:  # the scan at open finds no packet at all
        return "the video stream has no frames"
    return text.split("This should never happen")[0]


def _header_rate(path: str) -> float:
    """The best video stream's ``avg_frame_rate`` (decord's ``get_avg_fps()``), read with PyAV; 0 if unknown.

    torchcodec's ``average_fps_from_header`` is the nominal ``r_frame_rate``, which
    differs on variable-frame-rate files.
    """
    try:
        import av

        with av.open(path) as container:
            rate = container.streams.best("video").average_rate
        return float(rate) if rate else 0.0
    except Exception:  # noqa: BLE001 - PyAV missing or the file unreadable by it: fall back
        return 0.0


def _torchcodec_info(decoder, path: str) -> VideoInfo:
    md = decoder.metadata
    fps = md.average_fps or 0.0
    duration = md.duration_seconds or (md.num_frames / fps if fps else 0.0)
    header = md.num_frames_from_header
    if header and header != md.num_frames:
        _warn_once(f"count:{path}", f"{path}: the stream holds {md.num_frames} frames but its header says {header} "
                   "(a truncated file, or an edit list hiding frames as in a file trimmed without re-encoding); "
                   "decord, and so VLMEvalKit, may index the header's frames, so frame indices can differ from "
                   "VLMEvalKit's here: decode with backend='decord' (--decode-backend decord) for its exact frames")
    nominal = float(md.average_fps_from_header or 0.0)
    if nominal and fps and abs(fps - nominal) <= 1e-9 * nominal:
        rate = nominal  # constant frame rate: the scan, r_frame_rate and avg_frame_rate agree
    else:  # variable rate (or unknown): read avg_frame_rate itself (~1 ms)
        rate = _header_rate(path) or nominal
    return VideoInfo(int(md.num_frames), float(fps), int(md.width), int(md.height), float(duration), rate)


def _torchcodec_decode(path: str, decoder, idx: list[int]) -> torch.Tensor:
    if not idx:
        md = decoder.metadata
        return torch.empty(0, 3, md.height, md.width, dtype=torch.uint8)
    try:
        # torchcodec sorts, de-duplicates and seeks only when a keyframe is closer than decoding on.
        return decoder.get_frames_at(indices=idx).data
    except torch.OutOfMemoryError:
        raise
    except (RuntimeError, ValueError, IndexError) as e:
        raise _error(path, str(e)) from e


# ----------------------------------------------------------------------------- decord (in a child process)

def _decord_worker_main() -> None:  # pragma: no cover - runs in the child process
    """Serve decode requests from stdin; reply on stdout. Imports decord and NumPy only.

    Request: one JSON line ``{"path", "indices" (list or null for a probe), "threads"}``.
    Reply: one JSON line (``ok``, ``num_frames``, ``fps``, ``width``, ``height``,
    ``duration``, ``nbytes`` or ``error``/``kind``), then ``nbytes`` raw bytes of a
    C-contiguous uint8 ``[T, H, W, 3]`` array.
    """
    import json
    import sys

    import ctypes
    import os

    try:  # die with the parent, even while decord spins in native code holding the GIL (Linux)
        ctypes.CDLL(None, use_errno=True).prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL
    except (OSError, AttributeError):
        pass
    if os.getppid() != int(os.environ.get("NRVL_DECORD_PARENT", os.getppid())):
        return  # the parent died before the signal was armed

    import decord
    import numpy as np

    out = sys.stdout.buffer
    cache = {}  # the last opened reader: a probe followed by a decode opens the file once

    def reply(header, payload=None):
        out.write((json.dumps(header) + "\n").encode())
        if payload is not None:
            out.write(memoryview(payload).cast("B"))
        out.flush()

    for line in sys.stdin.buffer:
        req = json.loads(line)
        path = req["path"]
        try:
            key = (path, req["stamp"])
            if cache.get("key") != key:
                cache.clear()
                try:
                    vr = decord.VideoReader(path, ctx=decord.cpu(0), num_threads=req.get("threads", 0))
                except AssertionError:  # decord asserts on a zero frame count
                    reply({"ok": False, "kind": "decode", "error": "the video stream has no frames"})
                    continue
                first = vr[0].shape  # (H, W, 3); also proves the stream decodes at all
                n = len(vr)
                fps = float(vr.get_avg_fps())
                duration = float(vr.get_frame_timestamp(n - 1)[1])
                cache.update(key=key, vr=vr, info=dict(num_frames=n, fps=fps, width=first[1], height=first[0],
                                                       duration=duration))
            vr, info = cache["vr"], cache["info"]
            indices = req.get("indices")
            if indices is None:
                reply(dict(ok=True, nbytes=None, **info))
                continue
            bad = [i for i in indices if not 0 <= i < info["num_frames"]]
            if bad:
                reply(dict(ok=False, kind="range", bad=bad, **info))
                continue
            if not indices:
                reply(dict(ok=True, nbytes=0, count=0, **info), b"")
                continue
            # decord seeks per index: decode each distinct frame once, in file order.
            uniq = sorted(set(indices))
            frames = vr.get_batch(uniq).asnumpy()
            if uniq != indices:
                pos = {v: k for k, v in enumerate(uniq)}
                frames = frames[[pos[i] for i in indices]]
            frames = np.ascontiguousarray(frames)
            reply(dict(ok=True, nbytes=frames.nbytes, count=len(indices), **info), frames)
        except Exception as e:  # DECORDError, RuntimeError, ...
            cache.clear()
            reply({"ok": False, "kind": "decode", "error": f"{type(e).__name__}: {e}"})


class _DecordWorker:
    """A child process running :func:`_decord_worker_main`, with timed requests."""

    def __init__(self, command: list[str] | None = None):
        self.log = tempfile.TemporaryFile()  # decord/FFmpeg print their reasons to stderr
        if command is None:
            try:  # run the function's own source: the child then imports decord and NumPy, not torch
                source = inspect.getsource(_decord_worker_main) + "\n_decord_worker_main()\n"
            except OSError:  # no source shipped: import it (slower start, imports torch)
                source = "from nrvl.video.decode import _decord_worker_main\n_decord_worker_main()\n"
            command = [sys.executable, "-c", source]
        env = {**os.environ, "NRVL_DECORD_PARENT": str(os.getpid())}
        # PR_SET_PDEATHSIG fires when the thread that started the child ends, so start it from a thread
        # that lives as long as the process, not from whichever (prefetch, pool) thread decodes first.
        self.proc = _spawner().submit(
            subprocess.Popen, command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, bufsize=0,
            env=env).result()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout, self.log):
            try:
                f.close()
            except OSError:
                pass

    def stderr_tail(self, since: int) -> str:
        try:
            self.log.seek(since)
            lines = [ln for ln in self.log.read().decode(errors="replace").splitlines() if ln.strip()]
        except (OSError, ValueError):
            return ""
        return lines[-1] if lines else ""

    def request(self, req: dict, deadline: float) -> tuple[dict, bytearray | None]:
        """Send one request; return (header, payload). Raises TimeoutError or EOFError."""
        self.proc.stdin.write((json.dumps(req) + "\n").encode())
        fd = self.proc.stdout.fileno()
        buf = bytearray()
        while b"\n" not in buf:
            buf += self._read(fd, 1 << 16, deadline)
        line, _, rest = bytes(buf).partition(b"\n")
        header = json.loads(line)
        nbytes = header.get("nbytes")
        if nbytes is None:
            return header, None
        payload = bytearray(nbytes)
        view = memoryview(payload)
        view[: len(rest)] = rest
        got = len(rest)
        while got < nbytes:
            self._wait(fd, deadline)
            n = os.readv(fd, [view[got:]])
            if n == 0:
                raise EOFError
            got += n
        return header, payload

    @staticmethod
    def _wait(fd: int, deadline: float) -> None:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise TimeoutError

    def _read(self, fd: int, n: int, deadline: float) -> bytes:
        self._wait(fd, deadline)
        data = os.read(fd, n)
        if not data:
            raise EOFError
        return data


_worker: _DecordWorker | None = None
_worker_lock = threading.Lock()
_spawn_pool = None


def _spawner():
    """A one-thread pool, alive until the interpreter exits, that starts the decord child."""
    global _spawn_pool
    if _spawn_pool is None:
        import concurrent.futures

        _spawn_pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="nrvl-decord-spawn")
    return _spawn_pool
_WORKER_COMMAND: list[str] | None = None  # tests replace it to simulate a hang


def _shutdown_worker() -> None:
    global _worker
    if _worker is not None:
        _worker.kill()
        _worker = None


def _forget_worker_in_child() -> None:
    # A forked child (e.g. a DataLoader worker) must not talk to its parent's decord process.
    global _worker, _worker_lock, _spawn_pool
    _worker, _worker_lock, _spawn_pool = None, threading.Lock(), None


atexit.register(_shutdown_worker)
os.register_at_fork(after_in_child=_forget_worker_in_child)


def _decord_call(path: str, indices: list[int] | None, timeout: float) -> tuple[dict, bytearray | None]:
    """Run one request in the decord child; restart it after a timeout or a crash."""
    global _worker
    st = os.stat(path)
    req = {"path": path, "indices": indices, "stamp": [st.st_mtime_ns, st.st_size], "threads": 0}
    with _worker_lock:
        if _worker is None or not _worker.alive():
            if _worker is not None:
                _worker.kill()
            _worker = _DecordWorker(_WORKER_COMMAND)
        worker = _worker
        log_start = worker.log.seek(0, os.SEEK_END)
        try:
            header, payload = worker.request(req, time.monotonic() + timeout)
        except TimeoutError:
            worker.kill()
            _worker = None
            raise _error(path, f"decord did not finish within {timeout:g} s and was stopped (a file that "
                               "over-reports its frame count makes decord spin forever); try backend='torchcodec'"
                         ) from None
        except (EOFError, BrokenPipeError, OSError, ValueError) as e:
            try:  # stdout closes a moment before the process is reaped
                code = worker.proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                code = None
            tail = worker.stderr_tail(log_start)
            worker.kill()
            _worker = None
            raise _error(path, f"the decord worker died (exit code {code}) {tail}") from e
        except BaseException:  # KeyboardInterrupt mid-reply: the pipe is out of step, start afresh
            worker.kill()
            _worker = None
            raise
        if not header.get("ok"):
            if header.get("kind") == "range":
                _check_range(path, header["bad"], header["num_frames"])
            tail = worker.stderr_tail(log_start)
            reason = header.get("error", "unknown error")
            if "cannot find video stream" in reason:
                reason, tail = "no decodable video stream", ""
            if tail and tail not in reason:
                reason = f"{reason} ({_one_line(tail, 120)})"
            raise _error(path, reason.replace("DECORDError: ", ""))
    return header, payload


def _decord_info(header: dict) -> VideoInfo:
    return VideoInfo(int(header["num_frames"]), float(header["fps"]), int(header["width"]),
                     int(header["height"]), float(header["duration"]))


# ----------------------------------------------------------------------------- public API

def probe(path: str | os.PathLike, backend: str | None = None, *, timeout: float | None = None) -> VideoInfo:
    """Read a video's frame count, frame rate, size and duration.

    Args:
        path: the video file.
        backend: ``"torchcodec"``, ``"decord"`` or None (see :func:`resolve_backend`).
        timeout: seconds allowed for a decord request (default
            ``$NRVL_DECODE_TIMEOUT`` or 120); unused by torchcodec.

    Returns:
        A :class:`VideoInfo`. ``num_frames`` counts the frames actually in the
        stream (torchcodec scans the file; decord indexes its packets).

    Raises:
        VideoDecodeError: if the file is missing, empty, not a video, has no
            video stream or no frames; the message names the file.
    """
    path = _check_file(path)
    name = resolve_backend(backend)
    if name == "torchcodec":
        return _torchcodec_info(_torchcodec_open(path, torch.device("cpu")), path)
    header, _ = _decord_call(path, None, _timeout(timeout))
    return _decord_info(header)


def decode_frames(
    path: str | os.PathLike,
    indices: Indices | Callable[[VideoInfo], Indices],
    *,
    device: torch.device | str = "cpu",
    backend: str | None = None,
    timeout: float | None = None,
) -> torch.Tensor:
    """Decode only the requested frames of a video file.

    Args:
        path: the video file.
        indices: frame indices in ``[0, num_frames)``, in any order, repeats
            allowed (a sequence of ints or a 1-D integer tensor); or a function
            of the :class:`VideoInfo` returning them, so the file is opened only
            once, e.g. ``lambda info: vlmeval_frame_indices(info.num_frames, 8)``.
        device: where the frames go. ``"cuda"`` decodes on the GPU (NVDEC) with
            torchcodec when CUDA is available; without CUDA it decodes on the CPU
            and returns CPU frames (one warning). decord always decodes on the
            CPU and copies.
        backend: ``"torchcodec"``, ``"decord"`` or None (see :func:`resolve_backend`).
        timeout: seconds allowed for a decord request before its worker is
            killed (default ``$NRVL_DECODE_TIMEOUT`` or 120).

    Returns:
        uint8 ``[len(indices), 3, H, W]`` RGB, frame ``k`` being frame
        ``indices[k]`` of the file; contiguous, on ``device``.

    Raises:
        VideoDecodeError: (a ``ValueError``) if the file is missing, empty,
            truncated, not a video, has no video stream or no frames, or a frame
            fails to decode or decord hangs; one line naming the file.
        ValueError: if an index is out of range (the message lists them).
        TypeError: if ``indices`` is not integers.

    Example:
        >>> frames = decode_frames("clip.mp4", [0, 8, 16])  # doctest: +SKIP
        >>> frames.shape, frames.dtype  # doctest: +SKIP
        (torch.Size([3, 3, 240, 320]), torch.uint8)
    """
    path = _check_file(path)
    name = resolve_backend(backend)
    dev = _resolve_device(device)
    if not callable(indices):
        idx = _as_index_list(indices)
    if name == "torchcodec":
        decoder = _torchcodec_open(path, dev if dev.type == "cuda" else torch.device("cpu"))
        if callable(indices):
            idx = _as_index_list(indices(_torchcodec_info(decoder, path)))
        _check_range(path, idx, int(decoder.metadata.num_frames))
        frames = _torchcodec_decode(path, decoder, idx)
    else:
        limit = _timeout(timeout)
        if callable(indices):
            header, _ = _decord_call(path, None, limit)
            idx = _as_index_list(indices(_decord_info(header)))
        header, payload = _decord_call(path, idx, limit)
        hwc = torch.frombuffer(payload, dtype=torch.uint8) if payload else torch.empty(0, dtype=torch.uint8)
        frames = hwc.reshape(len(idx), header["height"], header["width"], 3).permute(0, 3, 1, 2)
    return frames.to(dev).contiguous()
