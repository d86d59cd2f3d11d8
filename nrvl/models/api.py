"""GPT-4o and any OpenAI-compatible VLM endpoint, as VLMEvalKit's frame-based path runs them.

Per sample (``reference/mmbench-video.md`` 1.4, 1.5a, 6; ``nrvl-noises.md`` 1.4):

1. frames ``int(i * N / (n + 1))`` for ``i = 1..n`` (float64 step), or for an
   fps preset ``int(i * video_fps / fps)`` for ``i = 0..int(N / video_fps * fps) - 1``
   with decord's header frame rate, decoded at native resolution;
2. each frame goes through a JPEG quality-75 round trip (PIL defaults), because
   VLMEvalKit saves the frames as JPEG files and the original NRVL adapter read
   those files back before applying the noise;
3. the noise, on the ``[n, 3, H, W]`` uint8 clip;
4. each frame: PIL ``thumbnail((img_size, img_size))`` when ``img_size > 0``
   (GPT4o: 512), JPEG quality 75, base64, sent as an ``image_url`` part with
   ``detail`` (GPT4o: ``low``);
5. the message: the nopack frame template (md5-checked), the n images, then
   ``Question: <q>\\nAnswer: `` -- one user turn, no system prompt (``*_pack``
   presets: the pack template and all of a video's questions, :mod:`nrvl.pack`);
   ``temperature=0``, ``max_tokens=2048``; the reply is stripped.

A batch is prepared in groups whose decoded frames stay under ``prepare_mib``
(default 256 MiB, ``$NRVL_API_PREPARE_MIB``): each group is decoded, corrupted and
encoded before the next is decoded, so a 1fps preset on long 1080p videos (a
6-minute clip is 2.2 GB of frames) holds about one clip at a time, not ``nproc`` of
them; an 8-frame batch fits one group and is corrupted in one call as before.
Results do not depend on the grouping (each clip's noise depends only on its seed).

Requests for a batch run concurrently (``nproc`` threads), each retried with
exponential backoff; a sample that never gets an answer gets VLMEvalKit's
``Failed to obtain answer via API.`` and is redone on the next run. A rejected
key or unknown model (401/403/404) stops the run. The key is never printed.
"""
from __future__ import annotations

import base64
import concurrent.futures
import io
import logging
import math
import random
import threading
import time
from typing import Optional, Sequence

from nrvl.models import ModelConfigError, ModelRequest, VideoModel, corrupt_clips

logger = logging.getLogger(__name__)

#: VLMEvalKit ``MMBenchVideo.FRAMES_TMPL_NOPACK`` (no ``SYS`` prefix in nopack mode).
FRAMES_TMPL_NOPACK = """
You will be provided with {} separate frames uniformly sampled from a video, \
the frames are provided in chronological order of the video.
Please analyze these images and provide the answer to the question about the video content.
Please directly reply with your response to the only question.
"""
FRAMES_TMPL_NOPACK_MD5_8 = "94ac7d0638de4f27a30ce0470014b8cd"  # of FRAMES_TMPL_NOPACK.format(8)
QUESTION_TMPL = "Question: {}\nAnswer: "
FAIL_MSG = "Failed to obtain answer via API."
JPEG_QUALITY = 75  # PIL's default, what VLMEvalKit's frame files and encode_image_to_base64 use


#: Default bound, in MiB, on the decoded frames one group of a batch holds while it is prepared.
DEFAULT_PREPARE_MIB = 256.0


def prepare_budget(value=None) -> int:
    """Bytes of decoded frames a batch's preparation holds at once: ``value`` MiB, else
    ``$NRVL_API_PREPARE_MIB``, else :data:`DEFAULT_PREPARE_MIB`; 0 prepares one clip at a time."""
    import os

    env = value is None and "NRVL_API_PREPARE_MIB" in os.environ
    raw = os.environ["NRVL_API_PREPARE_MIB"] if env else (DEFAULT_PREPARE_MIB if value is None else value)
    try:
        mib = float(raw)
    except (TypeError, ValueError):
        mib = math.nan
    if isinstance(raw, bool) or not 0 <= mib < math.inf:
        where = " (from $NRVL_API_PREPARE_MIB)" if env else ""
        raise ModelConfigError(f"prepare_mib must be a number of MiB >= 0{where}, got {raw!r}")
    return int(mib * 2**20)


class JpegFrames:
    """A clip kept as its frames' JPEG q75 files, as VLMEvalKit keeps them on disk.

    About 20 times smaller than the uint8 frames (a 1fps 6-minute 1080p clip: ~0.1 GB
    instead of 2.2 GB), which is what a sweep's clip cache holds for a long clip;
    :meth:`tensor` decodes the files: exactly :func:`jpeg_roundtrip` of the frames.
    """

    def __init__(self, files: Sequence[bytes], shape: tuple):
        self.files, self.shape = list(files), tuple(shape)

    @classmethod
    def encode(cls, frames) -> "JpegFrames":
        """The JPEG files of uint8 ``[n, 3, H, W]`` frames."""
        from PIL import Image

        files = []
        for f in frames.cpu():  # an fps preset on a clip shorter than 1 / fps s has no frame: VLMEvalKit sends none
            buf = io.BytesIO()
            Image.fromarray(f.permute(1, 2, 0).numpy()).save(buf, format="JPEG", quality=JPEG_QUALITY)
            files.append(buf.getvalue())
        return cls(files, frames.shape)

    @property
    def frame_bytes(self) -> int:
        """Bytes of the decoded frames."""
        return math.prod(self.shape)

    @property
    def file_bytes(self) -> int:
        """Bytes of the JPEG files."""
        return sum(len(b) for b in self.files)

    def tensor(self, out=None):
        """The decoded frames, uint8 ``[n, 3, H, W]`` on the CPU (into ``out`` when given)."""
        import numpy as np
        import torch
        from PIL import Image

        out = torch.empty(self.shape, dtype=torch.uint8) if out is None else out
        for f, data in zip(out, self.files):
            f.copy_(torch.from_numpy(np.array(Image.open(io.BytesIO(data)).convert("RGB"))).permute(2, 0, 1))
        return out


def jpeg_roundtrip(frames, inplace: bool = False):
    """Each uint8 ``[3, H, W]`` frame through PIL JPEG q75 and back: what VLMEvalKit's frame files hold.

    ``inplace`` writes the decoded JPEGs back into ``frames`` (a CPU tensor the caller
    owns), so a long clip is not held twice.
    """
    files = JpegFrames.encode(frames)
    return files.tensor(frames if inplace and frames.device.type == "cpu" else None)


def _frames_of(clip):
    """A :meth:`OpenAIVideoModel.load_clip` result as a tensor."""
    return clip.tensor() if isinstance(clip, JpegFrames) else clip


def _nbytes(clip) -> int:
    return clip.frame_bytes if isinstance(clip, JpegFrames) else clip.numel() * clip.element_size()


def encode_frame(frame, img_size: int = -1) -> str:
    """VLMEvalKit's ``encode_image_to_base64``: thumbnail to ``img_size`` (if > 0), JPEG q75, base64."""
    from PIL import Image

    img = Image.fromarray(frame.cpu().permute(1, 2, 0).numpy())
    if img_size > 0:
        img.thumbnail((img_size, img_size))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=JPEG_QUALITY)
    return base64.b64encode(buf.getvalue()).decode("utf-8")


def build_content(question: str, frames_b64: Sequence[str], detail: str, pack: bool = False) -> list[dict]:
    """The user content list: frame template, the frames, ``Question: ...\\nAnswer: ``.

    With ``pack`` (``question`` is then :func:`nrvl.pack.pack_questions` JSON): VLMEvalKit's
    ``SYS + FRAMES_TMPL_PACK``, the frames, ``Questions: \\n<json>\\nAnswers: \\n``.
    """
    from nrvl import pack as P

    n = len(frames_b64)
    head = P.SYS + P.FRAMES_TMPL_PACK.format(n) if pack else FRAMES_TMPL_NOPACK.format(n)
    content = [{"type": "text", "text": head}]
    for b64 in frames_b64:
        content.append({"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{b64}", "detail": detail}})
    content.append({"type": "text", "text": (P.QUESTIONS_TMPL if pack else QUESTION_TMPL).format(question)})
    return content


class OpenAIVideoModel(VideoModel):
    """A VLM behind an OpenAI-compatible chat-completions endpoint.

    Args:
        name: registered name.
        api_model: the model string sent (``gpt-4o-2024-05-13`` for GPT4o; ``--api-model``).
        base_url: ``--api-base``; else ``OPENAI_BASE_URL``/``OPENAI_API_BASE`` (env or ``.env``), else OpenAI.
        api_key: else ``OPENAI_API_KEY`` (env or ``.env``); a non-OpenAI URL may go without one.
        img_size: thumbnail bound in pixels, -1 for none.
        img_detail: the ``detail`` field of each image part.
        nproc: concurrent requests (also the default batch size).
        retries: tries per sample.
        timeout: seconds per request.
        max_new_tokens: the request's ``max_tokens`` (VLMEvalKit's 2048; ``--max-new-tokens``).
        temperature: VLMEvalKit's 0.
        prepare_mib: bound on the decoded frames a batch's preparation holds at once
            (:func:`prepare_budget`).
    """

    is_api = True

    def __init__(self, name: str, *, api_model: Optional[str], base_url: Optional[str] = None,
                 api_key: Optional[str] = None, img_size: int = -1, img_detail: str = "high", nproc: int = 16,
                 retries: int = 6, timeout: float = 600.0, max_new_tokens: int = 2048, temperature: float = 0.0,
                 decode_backend: Optional[str] = None, backoff_base: float = 1.0, backoff_max: float = 60.0,
                 prepare_mib: Optional[float] = None, env=None, **unused):
        from nrvl.openai_endpoint import EndpointConfigError, resolve_endpoint

        if not api_model:
            raise ModelConfigError(f"model {name} needs --api-model (the model name the endpoint serves)")
        if int(nproc) < 1 or int(retries) < 1:
            raise ModelConfigError(f"nproc and retries must be >= 1, got {nproc} and {retries}")
        self.prepare_bytes = prepare_budget(prepare_mib)
        try:
            url, key = resolve_endpoint(base_url, api_key, env=env, what="--api-base")
        except EndpointConfigError as e:
            raise ModelConfigError(str(e)) from None
        if key is None:
            if "api.openai.com" in url:
                raise ModelConfigError(f"model {name}: no API key; set OPENAI_API_KEY (environment or .env)")
            key = "EMPTY"  # local servers (vLLM, SGLang) accept any key
        self.name = name
        self.api_model = api_model
        self.base_url = url
        self.img_size = int(img_size)
        self.img_detail = img_detail
        self.nproc = int(nproc)
        self.default_batch_size = self.nproc
        self.retries = int(retries)
        self.timeout = float(timeout)
        if int(max_new_tokens) < 1:
            raise ModelConfigError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        self.max_tokens = int(max_new_tokens)
        self.temperature = float(temperature)
        self.decode_backend = decode_backend
        self.backoff_base, self.backoff_max = float(backoff_base), float(backoff_max)
        self._openai_host = "openai.com" in url
        # The key stays in the client (a closure), never on the instance.
        self._client_factory = lambda: _make_client(url, key, self.timeout)
        self._client_lock = threading.Lock()
        self._client = None
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=self.nproc, thread_name_prefix="nrvl-api")

    def __repr__(self) -> str:
        return f"OpenAIVideoModel(name={self.name!r}, api_model={self.api_model!r}, nproc={self.nproc})"

    # -- preprocessing ----------------------------------------------------------------------
    def frames(self, req: ModelRequest):
        """The sample's frames as the model gets them before encoding: uint8 ``[n, 3, H, W]`` (CPU)."""
        from nrvl.video import decode_frames

        return jpeg_roundtrip(decode_frames(req.video_path, self._indices(req), device="cpu",
                                            backend=self.decode_backend), inplace=True)  # not held twice

    @staticmethod
    def _indices(req: ModelRequest):
        from nrvl.video import vlmeval_sample

        # fps presets: VLMEvalKit reads decord's get_avg_fps(), the header rate, whatever decodes here.
        return lambda info: vlmeval_sample(info.num_frames, info.header_fps, nframe=req.nframe, fps=req.fps)

    def prepare(self, batch: Sequence[ModelRequest]) -> list[list[dict]]:
        """The chat messages of each request: decode, JPEG round trip, noise, encode.

        Requests are decoded in order until their frames reach ``prepare_mib``; that
        group is corrupted and encoded (its frames freed) before the next is decoded.
        """
        messages, group, clips, held = [], [], [], 0
        for req in batch:
            clip = self.frames(req)
            group.append(req)
            clips.append(clip)
            held += _nbytes(clip)
            del clip
            if held >= self.prepare_bytes:
                messages += self.prepare_clips(group, clips)
                group, clips, held = [], [], 0
        if group:
            messages += self.prepare_clips(group, clips)
        return messages

    def load_clip(self, request: ModelRequest):
        """The clean frames, JPEG round trip included: uint8 ``[n, 3, H, W]`` (CPU); a clip of
        more than a quarter of ``prepare_mib`` is kept as its :class:`JpegFrames` instead (a sweep
        caches ``batch_size + 1`` clips), decoded again for each variant."""
        from nrvl.video import decode_frames

        files = JpegFrames.encode(decode_frames(request.video_path, self._indices(request), device="cpu",
                                                backend=self.decode_backend))
        return files if files.frame_bytes > self.prepare_bytes // 4 else files.tensor()

    def prepare_clips(self, batch: Sequence[ModelRequest], clips: Sequence, donors=None) -> list[list[dict]]:
        """The chat messages from :meth:`load_clip` results (left unmodified): noise, encode;
        ``donors`` as :meth:`nrvl.models.VideoModel.prepare_clips`."""
        batch, clips = list(batch), list(clips)
        # other_video's donor: another dataset video, through the same decode and JPEG round trip.
        donor_frames = (lambda r: _frames_of(donors(r))) if donors is not None else self.frames
        messages = []
        # Groups of clips under the budget: each group's noisy copies are encoded and freed
        # before the next group is corrupted (the clean clips stay the caller's).
        start = 0
        while start < len(batch):
            stop, held = start, 0
            while stop < len(batch) and (stop == start or held + _nbytes(clips[stop]) <= self.prepare_bytes):
                held += _nbytes(clips[stop])
                stop += 1
            noisy = corrupt_clips([_frames_of(c) for c in clips[start:stop]], batch[start:stop],
                                  donor_clips=donor_frames)
            for req in batch[start:stop]:
                clip = noisy.pop(0)
                b64 = [encode_frame(f, self.img_size) for f in clip]
                del clip
                messages.append([{"role": "user", "content": build_content(req.question, b64, self.img_detail,
                                                                           pack=req.pack)}])
            start = stop
        return messages

    # -- requests ---------------------------------------------------------------------------
    def _payload(self, messages: list) -> dict:
        payload = {"model": self.api_model, "messages": messages, "max_tokens": self.max_tokens,
                   "temperature": self.temperature}
        if self._openai_host:
            payload["n"] = 1
        return payload

    def _ask(self, messages: list) -> str:
        import openai

        from nrvl.openai_endpoint import reply_text

        with self._client_lock:  # one client for all the pool's threads, made once
            if self._client is None:
                self._client = self._client_factory()
        for attempt in range(self.retries):
            try:
                text = reply_text(self._client.chat.completions.create(**self._payload(messages))).strip()
                if text and FAIL_MSG not in text:
                    return text
                reason = "empty reply"
            except openai.APIStatusError as e:
                if e.status_code in (401, 403, 404):
                    raise ModelConfigError(
                        f"model {self.name}: the endpoint refused the request (HTTP {e.status_code}); "
                        f"check the key, --api-base and --api-model") from None
                reason = f"HTTP {e.status_code}"
            except (openai.APIConnectionError, openai.APITimeoutError, openai.APIResponseValidationError) as e:
                reason = type(e).__name__
            except Exception as e:  # noqa: BLE001 - a malformed 200 reply (MalformedReply, bad JSON): as VLMEvalKit,
                reason = f"malformed reply ({type(e).__name__})"  # retried, then FAIL_MSG, never a crash
            if attempt + 1 < self.retries:
                delay = min(self.backoff_max, self.backoff_base * 2 ** attempt)
                time.sleep(random.uniform(delay / 2, delay))
        logger.warning("model %s: no answer after %d tries (%s)", self.name, self.retries, reason)
        return FAIL_MSG

    def generate(self, batch) -> list[str]:
        batch = list(batch)
        messages = self.prepare(batch) if batch and isinstance(batch[0], ModelRequest) else batch
        return list(self._pool.map(self._ask, messages))

    def failed(self, answer: str) -> bool:
        return FAIL_MSG in answer

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self._client is not None:
            self._client.close()


def _make_client(base_url: str, api_key: str, timeout: float):
    from openai import OpenAI

    return OpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=timeout)
