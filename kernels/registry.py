"""The registry of noises: one ``NoiseSpec`` per name, filled by decorators at import."""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Callable, Mapping

__all__ = ["NoiseSpec", "NOISES", "register_noise", "list_noises", "get_spec", "FAMILIES", "REFERENCE_ORDER"]

# The 35 names in the order of the original's list_noises() (= the seed README).
REFERENCE_ORDER = (
    "gaussian", "impulse", "speckle", "poisson",
    "gaussian_blur", "motion_blur", "defocus_blur", "glass_blur", "zoom_blur", "jpeg_artifact",
    "random_block", "target_block",
    "frame_drop", "frame_replace", "frame_repeat", "temporal_jitter", "other_video",
    "bright_transform", "contrast", "elastic", "color_shift", "flicker", "overexposure", "underexposure",
    "rainy", "foggy", "snow", "frost", "reflect", "shadow",
    "random_pixel", "resolution_degrade", "stretch_squish", "edge_sawtooth", "color_quantized",
)

FAMILIES = ("quality", "blur", "occlusion", "temporal", "lighting", "weather", "digital")

# How a noise uses `ratio`:
#   "selected": int(T*ratio) frames drawn per clip are changed, the rest are bit-identical.
#   "all": every frame may change; ratio is a strength (flicker).
#   "custom": the noise defines its own frame rule (frame_repeat, temporal_jitter, ...).
FRAME_MODES = ("selected", "all", "custom")


@dataclass(frozen=True)
class NoiseSpec:
    """Everything known about one noise.

    Attributes:
        name: registry name, e.g. ``"gaussian"``.
        family: one of ``FAMILIES``.
        temporal: True when the noise moves or blanks whole frames rather than pixels.
        defaults: the reference's default parameters (read-only mapping).
        description: one line.
        sample: ``sample(ctx, **params) -> dict[str, Tensor]`` (see ``nrvl.kernels.core``).
        apply: ``apply(video5d, params, **params) -> Tensor``, deterministic.
        frame_mode: how ``ratio`` is used (``FRAME_MODES``).
        severities: five parameter overrides for severity 1..5, or None.
        pointwise: True when each output pixel depends only on the same input pixel
            and per-frame draws (the cheap, fusable kind).
    """

    name: str
    family: str
    temporal: bool
    defaults: Mapping[str, object]
    description: str
    sample: Callable
    apply: Callable
    frame_mode: str = "selected"
    severities: tuple | None = None
    pointwise: bool = False
    extras: Mapping[str, object] = field(default_factory=dict)


_REGISTRY: dict[str, NoiseSpec] = {}
NOISES: Mapping[str, NoiseSpec] = MappingProxyType(_REGISTRY)


def register_noise(name: str, *, family: str, description: str, sample: Callable, apply: Callable,
                   defaults: Mapping | None = None, temporal: bool = False, frame_mode: str = "selected",
                   severities=None, pointwise: bool = False, **extras) -> NoiseSpec:
    """Register a noise. Registering a name twice raises ``ValueError``."""
    if name in _REGISTRY:
        raise ValueError(f"noise {name!r} is already registered")
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")
    if frame_mode not in FRAME_MODES:
        raise ValueError(f"frame_mode must be one of {FRAME_MODES}, got {frame_mode!r}")
    if severities is not None:
        severities = tuple(MappingProxyType(dict(s)) for s in severities)
        if len(severities) != 5:
            raise ValueError(f"severities must list 5 levels, got {len(severities)}")
    spec = NoiseSpec(name=name, family=family, temporal=temporal,
                     defaults=MappingProxyType(dict(defaults or {})), description=description,
                     sample=sample, apply=apply, frame_mode=frame_mode, severities=severities,
                     pointwise=pointwise, extras=MappingProxyType(extras))
    _REGISTRY[name] = spec
    return spec


def list_noises(family: str | None = None) -> list[str]:
    """Registered names, in the reference's order (extras after), optionally of one family."""
    order = {n: i for i, n in enumerate(REFERENCE_ORDER)}
    names = sorted(_REGISTRY, key=lambda n: (order.get(n, len(order)), n))
    if family is not None:
        if family not in FAMILIES:
            raise ValueError(f"family must be one of {', '.join(FAMILIES)}, got {family!r}")
        names = [n for n in names if _REGISTRY[n].family == family]
    return names


def get_spec(name: str) -> NoiseSpec:
    """The spec of ``name``; an unknown name raises ``ValueError`` listing close names."""
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ValueError(
            f"unknown noise name {name!r}.{hint} Known noises: {', '.join(list_noises())}"
        ) from None
