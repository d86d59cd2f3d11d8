"""Parameter checks shared by the noise families: one ``ValueError`` naming the parameter."""
from __future__ import annotations

import math
from numbers import Integral, Real

__all__ = ["int_param", "float_param", "range_param", "validating_draw"]


def int_param(name: str, value, low: int, high: int | None = None, odd: bool = False) -> int:
    """``value`` as an int in ``[low, high]`` (odd if asked), else ``ValueError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise ValueError(f"{name} must be an int, got {value!r}")  # noqa: TRY004 - the contract: ValueError naming it
    v = int(value)
    if v < low or (high is not None and v > high) or (odd and v % 2 == 0):
        rng_txt = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"{name} must be {'an odd int ' if odd else 'an int '}{rng_txt}, got {value!r}")
    return v


def float_param(name: str, value, low: float = 0.0, high: float | None = None, *, strict: bool = True) -> float:
    """``value`` as a finite float above ``low`` (at least ``low`` when not ``strict``), at most ``high``."""
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(float(value)):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    v = float(value)
    if (v <= low if strict else v < low) or (high is not None and v > high):
        bound = f"{'>' if strict else '>='} {low}" + ("" if high is None else f" and <= {high}")
        raise ValueError(f"{name} must be {bound}, got {value!r}")
    return v


def range_param(name: str, value, low: float | None = None, high: float | None = None, *,
                integers: bool = False) -> tuple:
    """``value`` as a pair ``(lo, hi)`` of finite numbers with ``lo <= hi`` within ``[low, high]``
    (ints when ``integers``), else ``ValueError`` naming ``name``."""
    kind = "ints" if integers else "finite numbers"
    ok = isinstance(value, (tuple, list)) and len(value) == 2 and all(
        not isinstance(v, bool) and isinstance(v, Integral if integers else Real) and math.isfinite(float(v))
        for v in value)
    if ok:
        lo, hi = (int(v) if integers else float(v) for v in value)
        ok = lo <= hi and (low is None or lo >= low) and (high is None or hi <= high)
    if not ok:
        bounds = "" if low is None and high is None else f" within [{low}, {high}]"
        raise ValueError(f"{name} must be a pair (lo, hi) of {kind} with lo <= hi{bounds}, got {value!r}")
    return lo, hi


def validating_draw(check):
    """A noise's ``draw`` that only validates the parameters (the noise draws nothing)."""
    def draw(ctx, frame_idx, **p) -> dict:
        check(**p)
        return {}
    return draw
