"""``VideoCorruption``: the corruption library as a training-time augmentation module."""
from __future__ import annotations

import numbers
from typing import Mapping, NamedTuple, Sequence

import torch
from torch.utils.data import get_worker_info

from .core import _check_video, _resolve_params, corrupt
from .random import derive_seed, host_to_device
from .registry import FAMILIES, NOISES, get_spec, list_noises

__all__ = ["VideoCorruption", "Choice"]


class Choice(NamedTuple):
    """What one clip got. Clip ``i`` is ``corrupt(clip, c.name, c.ratio, seed=last_seeds[i:i+1],
    severity=c.severity, **module.params.get(c.name, {}))`` (other_video also takes ``donor=``
    the next clip of the batch)."""

    name: str
    ratio: float
    severity: int | None


def _unit_interval(arg: str, x) -> float:
    if isinstance(x, bool) or not isinstance(x, numbers.Real):
        raise TypeError(f"{arg} must be a real number in [0, 1], got {type(x).__name__}")
    x = float(x)
    if not 0.0 <= x <= 1.0:  # also refuses NaN
        raise ValueError(f"{arg} must be in [0, 1], got {x}")
    return x


class VideoCorruption(torch.nn.Module):
    """Corrupt each clip of a batch with its own randomly chosen noise.

    For every clip, independently: with probability ``p`` a noise is drawn
    uniformly from ``noises`` and a ratio uniformly from ``ratios``; the clip
    seed is drawn too. The choices are drawn on the host from a CPU generator
    (no device sync); clips that share a (noise, ratio) go through one batched
    ``corrupt`` call, so the loop is over groups, never over clips.

    Args:
        noises: ``"all"``, a family name, a noise name, or a list of noise names.
        ratios: one ratio or a sequence of ratios to choose from (real numbers in [0, 1]).
        p: probability that a clip is corrupted at all.
        severity: None (reference parameters) or an int 1..5, passed to every noise that
            has a severity table (``NOISES[name].severities``). The noises without one
            (frame_drop, frame_replace, frame_repeat, temporal_jitter, other_video) run
            with their reference parameters; ``last_choices`` then records ``severity=None``.
        seed: None or an integer (taken modulo 2**64); see Randomness.
        exclude: a name or names to leave out. The default leaves out target_block, which needs
            a detector, unless ``params`` has an entry for it: ``{"target_block": {"detector": fn}}``,
            or ``{"target_block": {}}`` for the default detector, whose weights file must then be in
            the torch hub cache (checked here). ``exclude=()`` keeps every noise.
        params: per-noise parameter overrides, ``{name: {parameter: value}}``, passed to
            ``corrupt`` for that noise (on top of ``severity``), e.g.
            ``{"target_block": {"detector": fn}, "gaussian": {"std": 0.05}}``. Names and
            parameter names are checked here; values when the noise first runs.

    Randomness:
        ``seed=None``: the choices are drawn in ``forward`` from torch's global CPU RNG,
        as torchvision's v2 transforms and kornia do. A ``DataLoader`` reseeds that RNG in
        every worker and for every epoch, so workers and epochs differ, and a run is
        reproducible with ``torch.manual_seed`` (or the ``DataLoader``'s ``generator=``).

        ``seed=int``: the module has its own generator, seeded with ``seed``: the same seed
        gives the same stream in the main process. Inside a ``DataLoader`` worker the
        generator is reseeded on the worker's first call (and again when a new iterator
        gives the worker a new seed) from ``(seed, get_worker_info().seed)``, so workers and
        epochs differ, and a run is reproducible given the ``DataLoader``'s seed.

        Under DDP every rank with the same ``seed`` makes the same choices: pass
        ``seed=base + rank``, or ``seed=None`` with a different torch seed per rank.

        ``state_dict()`` holds the seed and the generator's state, so ``load_state_dict``
        continues the stream where the saved module was (with ``seed=None`` the stream is
        torch's global RNG: checkpoint it with ``torch.get_rng_state()``).

    ``last_choices`` (a ``Choice`` or None per clip) and ``last_seeds`` (int64 ``[B]``)
    record what the last call drew.

    ``train()``/``eval()`` do not switch the augmentation off (as with kornia and
    torchvision's transforms): keep it out of the validation path, or set ``p=0``.
    The module runs under ``torch.no_grad()``: its output carries no gradient.

    Shape:
        ``[B, T, C, H, W]`` (or ``[T, C, H, W]``) uint8 or float on 0..255, any device;
        the output has the same shape, dtype and device.

    Example:
        >>> aug = VideoCorruption(noises=["gaussian", "contrast"], ratios=(0.3, 0.9), seed=0)
        >>> out = aug(torch.zeros(4, 8, 3, 16, 16, dtype=torch.uint8))
        >>> len(aug.last_choices)
        4
    """

    def __init__(self, noises: str | Sequence[str] = "all", ratios: float | Sequence[float] = (0.3, 0.6, 0.9),
                 p: float = 1.0, severity: int | None = None, seed: int | None = None,
                 exclude: str | Sequence[str] | None = None, params: Mapping[str, Mapping] | None = None):
        super().__init__()
        if isinstance(noises, str):
            names = list_noises() if noises == "all" else (list_noises(noises) if noises in FAMILIES else [noises])
        else:
            names = list(noises)
        if params is None:
            params = {}
        if not isinstance(params, Mapping) or not all(isinstance(v, Mapping) for v in params.values()):
            raise TypeError("params must map noise names to dicts of parameters, e.g. "
                            "{'target_block': {'detector': fn}}")
        if exclude is None:  # target_block runs only with a detector given
            exclude = () if "target_block" in params else ("target_block",)
        exclude = (exclude,) if isinstance(exclude, str) else tuple(exclude)
        for n in exclude:
            try:
                get_spec(n)
            except (TypeError, ValueError) as e:
                raise type(e)(f"exclude: {e}") from None
        names = [n for n in names if n not in set(exclude)]
        if not names:
            raise ValueError(f"noises selects no noise (noises={noises!r}, exclude={exclude!r})")
        for n in names:
            get_spec(n)
        if isinstance(ratios, torch.Tensor):
            ratios = ratios.tolist()
        if isinstance(ratios, (str, bytes)):
            raise TypeError(f"ratios must be a real number or a sequence of them, got {type(ratios).__name__}")
        ratios = [ratios] if isinstance(ratios, numbers.Real) else list(ratios)
        if not ratios:
            raise ValueError("ratios must hold at least one value in [0, 1], got none")
        ratios = [_unit_interval("ratios", r) for r in ratios]
        p = _unit_interval("p", p)
        if severity is not None:
            if isinstance(severity, bool) or not isinstance(severity, numbers.Integral) or not 1 <= severity <= 5:
                raise ValueError(f"severity must be None or an int in 1..5, got {severity!r}")
            severity = int(severity)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)):
            raise TypeError(f"seed must be None or an integer, got {type(seed).__name__} {seed!r}")
        for name, given in params.items():
            if name not in names:
                raise ValueError(f"params given for {name!r}, which this module does not draw "
                                 f"(noises={noises!r}, exclude={exclude!r})")
            if name == "other_video" and "donor" in given:
                raise ValueError("params: other_video's donor is the next clip of the batch in VideoCorruption; "
                                 "it cannot be given")
            spec = get_spec(name)
            _resolve_params(spec, severity if spec.severities is not None else None, dict(given))  # names
        if "target_block" in names and params.get("target_block", {}).get("detector") is None:
            from .occlusion import check_default_detector  # fail here, not at the first batch drawn with it

            check_default_detector(instead="Or give VideoCorruption a detector, params={'target_block': "
                                           "{'detector': fn}}, or leave target_block out (the default exclude).")
        self.params = {name: dict(given) for name, given in params.items()}
        self.noises, self.ratios, self.p, self.severity = names, ratios, p, severity
        self._set_seed(None if seed is None else int(seed) % 2**64)
        self.last_choices: list[Choice | None] = []
        self.last_seeds = torch.empty(0, dtype=torch.int64)

    def _set_seed(self, seed: int | None, state: torch.Tensor | None = None) -> None:
        self.seed = seed
        self.generator = None if seed is None else torch.Generator(device="cpu").manual_seed(seed)
        if state is not None and self.generator is not None:
            self.generator.set_state(state)
        self._worker_seed = None  # the DataLoader worker seed the generator was last folded with

    def _stream(self) -> torch.Generator | None:
        """The generator to draw from (None: torch's global CPU RNG)."""
        if self.generator is None:
            return None
        info = get_worker_info()
        # Each forked worker holds a copy of the same generator: fold in the worker's seed,
        # which the DataLoader draws afresh for every worker of every iterator.
        if info is not None and info.seed != self._worker_seed:
            self.generator.manual_seed(derive_seed(self.seed, "dataloader-worker", info.seed))
            self._worker_seed = info.seed
        return self.generator

    def get_extra_state(self) -> dict:
        return {"seed": self.seed, "generator": None if self.generator is None else self.generator.get_state()}

    def set_extra_state(self, state: dict) -> None:
        seed, gen_state = state["seed"], state["generator"]
        if seed is not None and gen_state is None:
            raise ValueError("VideoCorruption state has a seed but no generator state")
        self._set_seed(seed, gen_state)

    def extra_repr(self) -> str:
        return (f"noises={len(self.noises)}, ratios={self.ratios}, p={self.p}, severity={self.severity}, "
                f"seed={self.seed}")

    @torch.no_grad()
    def forward(self, video: torch.Tensor) -> torch.Tensor:
        _check_video(video)  # whether or not any clip is corrupted this time
        squeeze = video.dim() == 4
        v = video.unsqueeze(0) if squeeze else video
        B = v.shape[0]
        g = self._stream()
        # other_video takes its donor from another clip of the batch: not possible alone.
        names = [n for n in self.noises if n != "other_video"] if B < 2 else self.noises
        if not names:
            raise ValueError("other_video needs a batch of at least 2 clips (its donor is another clip)")
        on = (torch.rand(B, generator=g) < self.p).tolist()
        which = torch.randint(0, len(names), (B,), generator=g).tolist()
        ratio_i = torch.randint(0, len(self.ratios), (B,), generator=g).tolist()
        seeds = torch.randint(0, 2**62, (B,), generator=g, dtype=torch.int64)
        self.last_seeds = seeds
        groups: dict[Choice, list[int]] = {}
        self.last_choices = []
        for i in range(B):  # host-side bookkeeping of Python ints; no tensor work per clip
            choice = None
            if on[i]:
                name = names[which[i]]
                # Noises without a severity table run with the reference's parameters.
                severity = self.severity if NOISES[name].severities is not None else None
                choice = Choice(name, self.ratios[ratio_i[i]], severity)
                groups.setdefault(choice, []).append(i)
            self.last_choices.append(choice)
        out = v.clone()
        for (name, ratio, severity), members in groups.items():
            # Host-made indices and seeds reach the device without a sync (pinned, non_blocking).
            idx = host_to_device(members, torch.int64, v.device)
            sub = out.index_select(0, idx)
            extra = {}
            if name == "other_video":  # donor of clip i: the next clip of the whole batch
                extra["donor"] = v.index_select(0, (idx + 1) % B)
            # CPU seeds: corrupt copies them without a sync and hashes small draws on the host.
            res = corrupt(sub, name, ratio, seed=seeds[members], severity=severity,
                          **self.params.get(name, {}), **extra)
            out.index_copy_(0, idx, res)
        return out[0] if squeeze else out
