"""``VideoCorruption``: the corruption library as a training-time augmentation module."""
from __future__ import annotations

from typing import Sequence

import torch

from .core import corrupt
from .registry import FAMILIES, get_spec, list_noises

__all__ = ["VideoCorruption"]


class VideoCorruption(torch.nn.Module):
    """Corrupt each clip of a batch with its own randomly chosen noise.

    For every clip, independently: with probability ``p`` a noise is drawn
    uniformly from ``noises`` and a ratio uniformly from ``ratios``; the clip
    seed is drawn too. The choices are drawn on the host from the module's own
    CPU generator (no device sync); clips that share a (noise, ratio) go through
    one batched ``corrupt`` call, so the loop is over groups, never over clips.

    Args:
        noises: ``"all"``, a family name, or a list of noise names.
        ratios: one ratio or a sequence of ratios to choose from.
        p: probability that a clip is corrupted at all.
        severity: None (reference parameters) or 1..5, passed to every noise.
        seed: seeds the module's generator (None: drawn from torch's global RNG).
        exclude: names to leave out (e.g. ``("target_block",)``, which needs a detector).

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
                 exclude: Sequence[str] = ("target_block",)):
        super().__init__()
        if isinstance(noises, str):
            names = list_noises() if noises == "all" else (list_noises(noises) if noises in FAMILIES else [noises])
        else:
            names = list(noises)
        names = [n for n in names if n not in set(exclude)]
        if not names:
            raise ValueError(f"noises selects no noise (noises={noises!r}, exclude={tuple(exclude)!r})")
        for n in names:
            get_spec(n)
        ratios = [float(ratios)] if isinstance(ratios, (int, float)) else [float(r) for r in ratios]
        if not ratios or any(not 0.0 <= r <= 1.0 for r in ratios):
            raise ValueError(f"ratios must be values in [0, 1], got {ratios}")
        if not 0.0 <= float(p) <= 1.0:
            raise ValueError(f"p must be in [0, 1], got {p}")
        self.noises, self.ratios, self.p, self.severity = names, ratios, float(p), severity
        self.generator = torch.Generator(device="cpu")
        self.generator.manual_seed(int(seed) if seed is not None else int(torch.randint(0, 2**62, ()).item()))
        self.last_choices: list[tuple[str, float] | None] = []
        self.last_seeds = torch.empty(0, dtype=torch.int64)

    def extra_repr(self) -> str:
        return f"noises={len(self.noises)}, ratios={self.ratios}, p={self.p}, severity={self.severity}"

    @torch.no_grad()
    def forward(self, video: torch.Tensor) -> torch.Tensor:
        squeeze = video.dim() == 4
        v = video.unsqueeze(0) if squeeze else video
        B = v.shape[0]
        g = self.generator
        # other_video takes its donor from another clip of the batch: not possible alone.
        names = [n for n in self.noises if n != "other_video"] if B < 2 else self.noises
        if not names:
            raise ValueError("other_video needs a batch of at least 2 clips (its donor is another clip)")
        on = (torch.rand(B, generator=g) < self.p).tolist()
        which = torch.randint(0, len(names), (B,), generator=g).tolist()
        ratio_i = torch.randint(0, len(self.ratios), (B,), generator=g).tolist()
        seeds = torch.randint(0, 2**62, (B,), generator=g, dtype=torch.int64)
        self.last_seeds = seeds
        groups: dict[tuple[str, float], list[int]] = {}
        self.last_choices = []
        for i in range(B):  # host-side bookkeeping of Python ints; no tensor work per clip
            choice = (names[which[i]], self.ratios[ratio_i[i]]) if on[i] else None
            self.last_choices.append(choice)
            if choice is not None:
                groups.setdefault(choice, []).append(i)
        out = v.clone()
        for (name, ratio), members in groups.items():
            idx = torch.tensor(members, device=v.device)
            sub = out.index_select(0, idx)
            extra = {}
            if name == "other_video":  # donor of clip i: the next clip of the whole batch
                extra["donor"] = v.index_select(0, (idx + 1) % B)
            res = corrupt(sub, name, ratio, seed=seeds[members].to(v.device), severity=self.severity, **extra)
            out.index_copy_(0, idx, res)
        return out[0] if squeeze else out
