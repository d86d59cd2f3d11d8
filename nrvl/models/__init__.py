"""Model adapters, registered by name and imported only when built.

Looking a name up or listing the models imports no model module (so neither
torch nor transformers): each entry is a :class:`ModelManifest` holding the
class path and its keyword arguments, and :func:`build_model` imports the class.

Every adapter is a :class:`VideoModel`: one required method,
``generate(batch) -> list[str]``, taking :class:`ModelRequest` objects. The
adapter decodes, samples and resizes frames its own way and applies the noise
where the reference does (``reference/nrvl-noises.md`` 1.4). An adapter may
split the work into ``prepare(batch)`` (decode, resize, noise, processor) and
``generate(prepared)``, so the evaluation loop can prepare the next batch
while the model generates.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace
from importlib import import_module
from typing import Any, Optional, Sequence

__all__ = [
    "ModelRequest", "VideoModel", "ModelManifest", "MODELS", "list_models", "get_manifest", "build_model",
    "ModelConfigError", "corrupt_clips", "donor_request",
]


class ModelConfigError(ValueError):
    """The model cannot be built as configured (unknown name, missing key, bad option); one line."""


@dataclass(frozen=True)
class ModelRequest:
    """One sample as a model sees it.

    Attributes:
        index: the question id (TSV ``index``).
        question: the question text.
        video_path: the mp4 file.
        video: the video id.
        nframe: frames the dataset preset asks for (8, 16 or 64); None when ``fps`` is set,
            8 when neither is given.
        fps: frames per second of video the preset asks for (``MMBench_Video_1fps_*``: 1.0),
            or None for a fixed frame count; each adapter applies its reference's rule
            (:mod:`nrvl.video.sampling`).
        pack: the request is a pack (``*_pack`` presets): ``index`` and ``video`` are the video
            id, ``question`` the JSON of its questions (:mod:`nrvl.pack`); API models only.
        noise: the noise name, or None for a clean run.
        ratio: the noise ratio in [0, 1], or None.
        seed: the sample's noise seed, ``derive_seed(seed, video, index, noise, ratio)``.
        donor_path, donor_video: for ``other_video``, the dataset video whose frames replace
            the chosen ones (picked by the evaluation from the sample's seed, never the
            sample's own video); decoded and resized by the adapter like the sample's own.
    """

    index: Any
    question: str
    video_path: str
    video: str = ""
    nframe: Optional[int] = None
    noise: Optional[str] = None
    ratio: Optional[float] = None
    seed: int = 0
    donor_path: Optional[str] = None
    donor_video: str = ""
    fps: Optional[float] = None
    pack: bool = False

    def __post_init__(self):
        if self.nframe is not None and self.fps is not None:
            raise ValueError(f"sample {self.index!r}: give nframe or fps, not both "
                             f"(got nframe={self.nframe!r}, fps={self.fps!r})")
        if self.nframe is None and self.fps is None:
            object.__setattr__(self, "nframe", 8)  # the default preset's count


class VideoModel(ABC):
    """A video model adapter.

    Attributes:
        name: the registered name.
        default_batch_size: samples per ``generate`` call when ``--batch-size`` is not given.
        is_api: True for remote models (no GPU, concurrency instead of batching).
    """

    name: str = ""
    default_batch_size: int = 1
    is_api: bool = False

    def prepare(self, batch: Sequence[ModelRequest]) -> Any:
        """Everything before the model runs (decode, resize, noise, processor).

        The default does nothing and returns the batch. May run in a worker thread.
        """
        return list(batch)

    def load_clip(self, request: ModelRequest) -> Any:
        """Decode and resize one sample's frames, before any noise (what a sweep decodes once).

        The result must depend only on ``request.video_path``, ``request.nframe``,
        ``request.fps`` and the adapter's settings, so one result serves every question of a video and
        every (noise, ratio); :meth:`prepare_clips` must not modify it. The default
        returns None: the adapter has no such split and :meth:`prepare_clips`
        decodes again. May run in a worker thread.

        Raises:
            nrvl.video.VideoDecodeError: the video cannot be decoded.
        """
        return None

    def prepare_clips(self, batch: Sequence[ModelRequest], clips: Sequence[Any], donors=None) -> Any:
        """:meth:`prepare` from clips :meth:`load_clip` returned (noise, processor); same result.

        ``donors``, when given, is ``donors(donor_request(request)) -> load_clip result``: where
        ``other_video`` requests get their donor's clean clip (a sweep passes its clip cache,
        so a donor video is decoded once); by default the adapter decodes it.

        The default ignores ``clips`` and ``donors`` and calls :meth:`prepare`.
        """
        return self.prepare(batch)

    @abstractmethod
    def generate(self, batch: Any) -> list[str]:
        """Answer every request of the batch.

        Args:
            batch: a sequence of :class:`ModelRequest`, or what :meth:`prepare` returned for one.

        Returns:
            One answer string per request, in order.
        """

    def failed(self, answer: str) -> bool:
        """True when ``answer`` is a failure placeholder that a later run should redo."""
        return False

    def close(self) -> None:
        """Release resources (threads, clients); the default does nothing."""


@dataclass(frozen=True)
class ModelManifest:
    """A registered model.

    Attributes:
        name: the ``--model`` value.
        class_path: ``"module:Class"``; imported by :func:`build_model`.
        kwargs: constructor arguments.
        description: one line.
    """

    name: str
    class_path: str
    kwargs: dict = field(default_factory=dict)
    description: str = ""


_QWEN = "nrvl.models.qwen:QwenVL"
MODELS: dict[str, ModelManifest] = {
    m.name: m for m in (
        ModelManifest("Qwen2.5-VL-3B-Instruct", _QWEN, {"path": "Qwen/Qwen2.5-VL-3B-Instruct"},
                      "Qwen2.5-VL 3B via transformers, VLMEvalKit settings"),
        ModelManifest("Qwen2.5-VL-7B-Instruct", _QWEN, {"path": "Qwen/Qwen2.5-VL-7B-Instruct"},
                      "Qwen2.5-VL 7B via transformers, VLMEvalKit settings"),
        ModelManifest("tiny-qwen2.5-vl", "nrvl.models.tiny:TinyQwenVL", {},
                      "a 200k-parameter random-weight Qwen2.5-VL built offline; meaningless answers, for tests"),
        ModelManifest("GPT4o", "nrvl.models.api:OpenAIVideoModel",
                      {"api_model": "gpt-4o-2024-05-13", "img_size": 512, "img_detail": "low"},
                      "GPT-4o (gpt-4o-2024-05-13) as VLMEvalKit's GPT4o entry: 512-px frames, detail low"),
        ModelManifest("openai-compatible", "nrvl.models.api:OpenAIVideoModel", {"api_model": None},
                      "any OpenAI-compatible VLM endpoint (vLLM, SGLang, ...): --api-base and --api-model"),
    )
}


def list_models() -> list[str]:
    """The ``--model`` names."""
    return list(MODELS)


def get_manifest(name: str) -> ModelManifest:
    """The manifest of ``name``.

    Raises:
        ModelConfigError: unknown name (the message lists the valid ones).
    """
    try:
        return MODELS[name]
    except KeyError:
        raise ModelConfigError(f"unknown model {name!r}; valid: {', '.join(MODELS)}") from None


def model_class(name: str):
    """Import and return the adapter class of ``name``."""
    manifest = get_manifest(name)
    module, _, cls = manifest.class_path.partition(":")
    return getattr(import_module(module), cls)


def build_model(name: str, **overrides) -> VideoModel:
    """Build the adapter registered as ``name``; ``overrides`` update the manifest's kwargs.

    Keys whose value is None in ``overrides`` are ignored.

    Raises:
        ModelConfigError: unknown name or a bad option.
    """
    manifest = get_manifest(name)
    kwargs = dict(manifest.kwargs)
    kwargs.update({k: v for k, v in overrides.items() if v is not None})
    model = model_class(name)(name=name, **kwargs)
    return model


def donor_request(request: ModelRequest) -> ModelRequest:
    """The clean request for ``request``'s donor video (``other_video``): same frame count, no noise."""
    if not request.donor_path:
        raise ValueError(f"sample {request.index!r}: other_video needs a donor video (ModelRequest.donor_path)")
    return replace(request, video_path=request.donor_path, video=request.donor_video, noise=None, ratio=None,
                   donor_path=None, donor_video="")


def corrupt_clips(clips: Sequence[Any], requests: Sequence[ModelRequest], donor_clips=None) -> list:
    """Apply each request's noise to its clip, batching clips of the same shape.

    Args:
        clips: uint8 (or float 0..255) ``[T, 3, H, W]`` tensors, one per request, any device.
        requests: the matching requests; ``noise``/``ratio`` None means clean.
        donor_clips: ``donor_clips(donor_request(request)) -> [T', 3, H', W']`` tensor: the
            clean frames of the donor video of each ``other_video`` request (the adapter
            decodes and resizes them as it does its own clips).

    Returns:
        The clips, corrupted with ``nrvl.kernels.corrupt(clip, noise, ratio,
        seed=request.seed)`` (``donor=`` the donor's frames for ``other_video``), same
        shapes, dtypes and devices. Clips that share a shape, noise and ratio go
        through one batched call; each clip's result depends only on its own seed
        (and donor), so batching changes nothing.
    """
    out = list(clips)
    groups: dict = {}
    for i, (clip, req) in enumerate(zip(clips, requests)):
        if req.noise is None or req.ratio is None or len(clip) == 0:  # no frame: nothing to corrupt
            continue
        if req.noise == "other_video":  # one call per clip, with its own donor: never a batch-mate
            groups[("other_video", i)] = [i]
            continue
        key = (req.noise, float(req.ratio), tuple(clip.shape), clip.dtype, str(clip.device))
        groups.setdefault(key, []).append(i)
    if not groups:
        return out
    import torch

    from nrvl.kernels import corrupt

    for key, members in groups.items():
        if key[0] == "other_video":
            (i,) = members
            if donor_clips is None:
                raise ValueError(f"sample {requests[i].index!r}: other_video needs the donor's frames (donor_clips=)")
            donor = donor_clips(donor_request(requests[i])).to(clips[i].device)
            seed = torch.tensor([int(requests[i].seed)], dtype=torch.int64, device=clips[i].device)
            out[i] = corrupt(clips[i], "other_video", float(requests[i].ratio), seed=seed, donor=donor)
            continue
        noise, ratio = key[0], key[1]
        stack = torch.stack([clips[i] for i in members])
        seeds = torch.tensor([int(requests[i].seed) for i in members], dtype=torch.int64, device=stack.device)
        noisy = corrupt(stack, noise, ratio, seed=seeds)
        for j, i in enumerate(members):
            out[i] = noisy[j]
    return out
