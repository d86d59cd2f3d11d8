"""Qwen2.5-VL through transformers, as VLMEvalKit's ``Qwen2VLChat`` runs it on MMBench-Video.

Per sample (``reference/mmbench-video.md`` 1.5b and 5):

1. frames: ``nframes`` = the preset's (8), or ``frame_count // 2 * 2`` for a
   shorter video, made even; for an fps preset (``MMBench_Video_1fps_*``)
   qwen-vl-utils' fps rule (``N / video_fps * fps`` clamped to ``[4, min(768, N)]``,
   floored to even); at ``torch.linspace(0, N - 1, n).round()`` (qwen-vl-utils), decoded by :func:`nrvl.video.decode_frames` on the CPU, as
   VLMEvalKit decodes (``preprocess_device="model"``: on the model's device, NVDEC
   with torchcodec on a GPU, faster but not pixel-identical);
2. resize: qwen-vl-utils' ``smart_resize`` window with VLMEvalKit's pixel
   limits (``min_pixels=1280*28*28``, ``max_pixels=16384*28*28``: 16:9 becomes
   756x1344), bicubic + antialias, :func:`nrvl.video.qwen_resize`, on the CPU
   (equal to qwen-vl-utils; on the model's device with ``preprocess_device="model"``);
3. noise, after the resize, where the original NRVL applied it, on the model's
   device (the resized uint8 frames are moved there);
4. the processor: the bare question, then the video (no system text of our
   own; the chat template adds its default system turn), ``do_resize=False``
   (the frames already have their final size, and the processor's own resize to
   the same size is the identity), and, as VLMEvalKit calls it, no fps or
   video metadata: the temporal position ids then assume the processor's
   default frame rate (24 fps in transformers 5, ``second_per_grid_ts``
   2/24), whatever the sampling. ``video_timing="real"`` passes
   ``video_metadata`` instead (the real fps and frame indices, so the position
   ids match the sampling; a departure from VLMEvalKit's answers);
5. generation: VLMEvalKit's ``top_k=1`` sampling, which is argmax decoding, run as
   greedy search (same tokens, no RNG), ``repetition_penalty=1.0``,
   ``max_new_tokens=2048``; decoded with ``skip_special_tokens=True`` and
   ``clean_up_tokenization_spaces=False`` (VLMEvalKit's call), not stripped.

bf16 on GPU with flash-attention 2 when the ``flash_attn`` package is
installed, else SDPA; float32 on CPU. Batches are left-padded, so a batch
gives the same answers as one sample at a time under greedy decoding.
"""
from __future__ import annotations

import importlib.util
import logging
import os
import threading
from dataclasses import dataclass
from typing import Any, Optional, Sequence

from nrvl.models import ModelConfigError, ModelRequest, VideoModel, corrupt_clips

logger = logging.getLogger(__name__)

#: VLMEvalKit ``config.py``, ``Qwen2.5-VL-*-Instruct``.
VLMEVAL_MIN_PIXELS = 1280 * 28 * 28
VLMEVAL_MAX_PIXELS = 16384 * 28 * 28
#: How the processor learns the frames' timing: not at all (VLMEvalKit), or the real fps and indices.
VIDEO_TIMINGS = ("vlmevalkit", "real")
#: Where a sample is decoded and resized: the CPU (VLMEvalKit's pixels) or the model's device.
PREPROCESS_DEVICES = ("cpu", "model")
#: VLMEvalKit ``Qwen2VLChat.generate_inner`` (transformers path). ``top_k=1`` makes it argmax decoding.
VLMEVAL_GENERATION = {"max_new_tokens": 2048, "top_p": 0.001, "top_k": 1, "temperature": 0.01,
                      "repetition_penalty": 1.0, "do_sample": True}


@dataclass
class QwenBatch:
    """A prepared batch: processor outputs on the model's device, plus what produced them.

    Attributes:
        inputs: the processor's ``BatchFeature`` (``input_ids``, ``attention_mask``,
            ``pixel_values_videos``, ``video_grid_thw``, ``second_per_grid_ts``, ...).
        frame_indices: per sample, the decoded frame indices.
        sizes: per sample, ``(height, width)`` after the resize.
    """

    inputs: Any
    frame_indices: list
    sizes: list


def _flash_attn_available() -> bool:
    return importlib.util.find_spec("flash_attn") is not None


def default_attention(name: str, cuda: bool, flash_attn: bool) -> str:
    """VLMEvalKit's flash-attention 2 on CUDA when the package is there; else SDPA, with a warning
    on CUDA (bf16 answers can then differ from VLMEvalKit's in rare tokens)."""
    if cuda and flash_attn:
        return "flash_attention_2"
    if cuda:
        logger.warning("%s: flash_attn is not installed, so attention runs as SDPA; VLMEvalKit uses "
                       "flash-attention 2, and bf16 answers can differ in rare tokens", name)
    return "sdpa"


class QwenVL(VideoModel):
    """Qwen2.5-VL-{3B,7B}-Instruct (or any Qwen2.5-VL checkpoint folder).

    Args:
        name: registered name.
        path: HF model id or local folder.
        device: torch device for the model, the decoding and the noise.
        dtype: ``"bfloat16"``, ``"float32"``, ...; default bf16 on CUDA, float32 on CPU.
        attn_implementation: default ``flash_attention_2`` when installed (CUDA), else ``sdpa``.
        min_pixels, max_pixels, total_pixels: the video item's pixel limits (VLMEvalKit's by default).
        max_new_tokens: generation length cap (2048, VLMEvalKit's).
        decode_backend: ``torchcodec``/``decord``/None (see :func:`nrvl.video.resolve_backend`).
        batch_size: default samples per call.
        video_timing: ``"vlmevalkit"`` (default: the processor gets no video metadata, as in
            VLMEvalKit) or ``"real"`` (the real fps and frame indices).
        preprocess_device: where decoding and the resize run: ``"cpu"`` (default: the pixels
            VLMEvalKit's CPU decode and qwen-vl-utils' resize give) or ``"model"`` (the model's
            device: NVDEC and the GPU's bicubic on CUDA, faster; decoded values can differ by a
            few levels and resized ones by 1). The noise runs on the model's device either way.
    """

    def __init__(self, name: str, path: str, *, device: str = "cpu", dtype: Optional[str] = None,
                 attn_implementation: Optional[str] = None, min_pixels: float = VLMEVAL_MIN_PIXELS,
                 max_pixels: float = VLMEVAL_MAX_PIXELS, total_pixels: Optional[float] = None,
                 max_new_tokens: int = VLMEVAL_GENERATION["max_new_tokens"], decode_backend: Optional[str] = None,
                 batch_size: int = 1, video_timing: str = "vlmevalkit", preprocess_device: str = "cpu",
                 **unused):
        import torch
        from transformers import AutoProcessor, GenerationConfig, Qwen2_5_VLForConditionalGeneration

        if unused:
            logger.debug("QwenVL ignores options %s", sorted(unused))
        if video_timing not in VIDEO_TIMINGS:
            raise ModelConfigError(f"video_timing must be one of {', '.join(VIDEO_TIMINGS)}, got {video_timing!r}")
        if preprocess_device not in PREPROCESS_DEVICES:
            raise ModelConfigError(f"preprocess_device must be one of {', '.join(PREPROCESS_DEVICES)}, "
                                   f"got {preprocess_device!r}")
        self.video_timing = video_timing
        self.preprocess_device = preprocess_device
        self.name = name
        self.path = path
        self.device = torch.device(device)
        cuda = self.device.type == "cuda"
        if dtype is None:
            self.dtype = torch.bfloat16 if cuda else torch.float32
        else:
            self.dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
        if attn_implementation is None:
            attn_implementation = default_attention(name, cuda, _flash_attn_available())
        self.attn_implementation = attn_implementation
        self.min_pixels, self.max_pixels, self.total_pixels = min_pixels, max_pixels, total_pixels
        self.decode_backend = decode_backend
        self.default_batch_size = int(batch_size)

        offline = os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}
        try:
            self.processor = AutoProcessor.from_pretrained(path, local_files_only=offline)
            load_kwargs = {"dtype": self.dtype, "attn_implementation": attn_implementation,
                           "local_files_only": offline}
            if cuda:
                load_kwargs["device_map"] = {"": str(self.device)}
            self.model = Qwen2_5_VLForConditionalGeneration.from_pretrained(path, **load_kwargs).eval()
        except (OSError, ValueError) as e:
            hint = " (HF_HUB_OFFLINE is set and the model is not in the HF cache)" if offline else ""
            raise ModelConfigError(f"cannot load {path}{hint}: {' '.join(str(e).split())[:300]}") from None
        if not cuda:
            self.model.to(self.device)
        # prepare() may run in a worker thread while generate() decodes text; the Rust tokenizer
        # must not be entered from two threads at once (padding settings are mutated per call).
        self._tokenizer_lock = threading.Lock()
        # Left padding: generation continues every row from its own last token.
        self.processor.tokenizer.padding_side = "left"
        gc = self.model.generation_config
        self.generation_config = GenerationConfig(
            max_new_tokens=int(max_new_tokens), do_sample=False, repetition_penalty=1.0,
            eos_token_id=gc.eos_token_id, pad_token_id=gc.pad_token_id if gc.pad_token_id is not None
            else self.processor.tokenizer.pad_token_id, bos_token_id=gc.bos_token_id)

    # -- preprocessing ----------------------------------------------------------------------
    def _frames(self, req: ModelRequest):
        """Decode and resize one sample's frames (on :meth:`decode_device`): uint8 ``[n, 3, h, w]``
        on the model's device."""
        import torch

        from nrvl.video import VideoDecodeError, decode_frames, qwen_resize, qwen_sample

        seen = {}

        def pick(info):
            try:
                idx = qwen_sample(info.num_frames, info.fps, nframe=req.nframe, fps=req.fps)
            except ValueError as e:  # qwen-vl-utils refuses the count (a 1-frame video)
                raise VideoDecodeError(f"{req.video_path}: {e}") from None
            seen["info"], seen["idx"] = info, idx
            return idx

        frames = decode_frames(req.video_path, pick, device=self.decode_device(), backend=self.decode_backend)
        resized = qwen_resize(frames, min_pixels=self.min_pixels, max_pixels=self.max_pixels,
                              total_pixels=self.total_pixels)
        del frames
        # qwen_resize returns float32 holding integers 0..255, so this cast is lossless; the noise then
        # works on uint8 as the original's noise functions returned uint8 to the processor.
        return resized.to(torch.uint8).to(self.device), seen["info"], seen["idx"]

    def decode_device(self):
        """Where samples are decoded and resized: the CPU, or the model's device (``preprocess_device``)."""
        import torch

        return self.device if self.preprocess_device == "model" else torch.device("cpu")

    def prompt(self, question: str) -> str:
        """The chat-template text for one question: the question first, then the video (VLMEvalKit's order)."""
        messages = [{"role": "user", "content": [{"type": "text", "text": question}, {"type": "video"}]}]
        return self.processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def prepare(self, batch: Sequence[ModelRequest]) -> QwenBatch:
        """Decode, resize, corrupt and run the processor for a batch."""
        batch = list(batch)
        return self.prepare_clips(batch, [self._frames(req) for req in batch])

    def load_clip(self, request: ModelRequest):
        """The decoded, resized, clean frames: ``(uint8 [n, 3, h, w] on the model's device, VideoInfo, indices)``."""
        return self._frames(request)

    def prepare_clips(self, batch: Sequence[ModelRequest], loaded: Sequence, donors=None) -> QwenBatch:
        """Corrupt and run the processor on :meth:`load_clip` results (which are left unmodified);
        ``donors`` as :meth:`nrvl.models.VideoModel.prepare_clips`."""
        from transformers.video_utils import VideoMetadata

        batch = list(batch)
        if any(req.pack for req in batch):
            raise ModelConfigError(f"{self.name} cannot answer pack-mode queries (VLMEvalKit: API models only)")
        clips, metas, indices = [], [], []
        for frames, info, idx in loaded:
            clips.append(frames)
            indices.append(idx)
            metas.append(VideoMetadata(total_num_frames=info.num_frames, fps=info.fps, frames_indices=idx,
                                       width=info.width, height=info.height))
        # other_video's donor: another dataset video, decoded and resized like this sample's own.
        load = donors if donors is not None else self._frames
        clips = corrupt_clips(clips, batch, donor_clips=lambda donor: load(donor)[0])
        texts = [self.prompt(req.question) for req in batch]
        timing = {"video_metadata": metas} if self.video_timing == "real" else {}
        with self._tokenizer_lock:
            inputs = self.processor(text=texts, videos=clips, padding=True, return_tensors="pt", do_resize=False,
                                    cap_pixels_per_frame=False, device=str(self.device), **timing)
        return QwenBatch(inputs=inputs.to(self.device), frame_indices=indices,
                         sizes=[tuple(c.shape[-2:]) for c in clips])

    # -- generation -------------------------------------------------------------------------
    def generate(self, batch) -> list[str]:
        import torch

        prepared = batch if isinstance(batch, QwenBatch) else self.prepare(batch)
        inputs = prepared.inputs
        if "pixel_values_videos" in inputs and inputs["pixel_values_videos"].is_floating_point():
            inputs["pixel_values_videos"] = inputs["pixel_values_videos"].to(self.dtype)
        with torch.inference_mode():
            out = self.model.generate(**inputs, generation_config=self.generation_config)
        new_tokens = out[:, inputs["input_ids"].shape[1]:]
        with self._tokenizer_lock:
            # VLMEvalKit's call (Qwen2VLChat.generate_inner_transformers): no clean-up of spaces, whatever
            # the tokenizer's config says, so " ." and " 's" stay as generated.
            return self.processor.tokenizer.batch_decode(new_tokens, skip_special_tokens=True,
                                                         clean_up_tokenization_spaces=False)
