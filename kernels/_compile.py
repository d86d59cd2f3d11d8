"""The switch for fused fast paths through ``torch.compile`` (inductor).

The eager torch ops are the reference. A pointwise noise in eager mode makes a
dozen full passes over the clip (the hash alone is ~10 integer ops per number,
and every pass allocates a clip-sized temporary); compiled, inductor fuses them
into one loop (C++/OpenMP on CPU, Triton on CUDA): one read and one write of the
clip.

Mode, from ``set_compile`` or the ``NRVL_COMPILE`` environment variable:

* ``"auto"`` (default): compile on CUDA, and on the CPU for large inputs
  (``>= AUTO_CPU_MIN_ELEMENTS`` values, about three 720p frames), where the
  one-time compilation (seconds per noise and shape, cached on disk by inductor)
  pays for itself; small inputs (tests, thumbnails) stay eager;
* ``"always"`` (``1``): compile on every device;
* ``"never"`` (``0``): always eager.

If compilation fails (no C++ compiler, an inductor bug), the op warns once and
runs eagerly: the fast path never makes a corruption fail.
"""
from __future__ import annotations

import contextlib
import contextvars
import os
import threading
import warnings
from typing import Callable

import torch

__all__ = ["set_compile", "compile_mode", "maybe_compiled", "use_compiled", "AUTO_CPU_MIN_ELEMENTS"]

AUTO_CPU_MIN_ELEMENTS = 8_000_000
_ALIASES = {"1": "always", "true": "always", "always": "always", "0": "never", "false": "never",
            "never": "never", "auto": "auto", "": "auto"}


def _mode_from_env() -> str:
    value = os.environ.get("NRVL_COMPILE", "auto")
    if value.strip().lower() not in _ALIASES:
        warnings.warn(f"NRVL_COMPILE={value!r} is not one of auto, always (1), never (0); using 'auto'",
                      RuntimeWarning, stacklevel=3)
        return "auto"
    return _ALIASES[value.strip().lower()]


_mode = _mode_from_env()
_cache: dict[tuple, Callable] = {}   # (fn, device type) -> its compiled wrapper
_broken: set[tuple] = set()          # (fn, device type) whose compilation failed: eager from then on


def set_compile(mode: str | bool) -> None:
    """Choose when fused kernels are compiled: ``"auto"``, ``"always"``/True, ``"never"``/False."""
    global _mode
    key = str(mode).strip().lower()
    if key not in _ALIASES:
        raise ValueError(f"compile mode must be 'auto', 'always' or 'never', got {mode!r}")
    _mode = _ALIASES[key]


def compile_mode() -> str:
    return _mode


def use_compiled(device: torch.device, numel: int = 0, cpu_min: int = AUTO_CPU_MIN_ELEMENTS) -> bool:
    """Whether the fused (compiled) path runs for ``numel`` values on ``device``.

    ``cpu_min``: the size from which ``"auto"`` compiles on the CPU (a function compiled once
    and shared by many noises pays for itself sooner).
    """
    if _mode == "never":
        return False
    if _mode == "always" or device.type == "cuda":
        return True
    return numel >= cpu_min


def _inductor_options() -> dict:
    """Inductor settings for our fused noise kernels (only those this torch knows).

    ``realize_opcount_threshold``: inductor stores a pointwise value to a buffer when a node with
    more than 30 ops (50 on the CPU) is read more than once. Our counter hash is ~45 ops, and a
    mask drawn once per pixel and read per channel (impulse, random_pixel) was stored as a
    clip-sized float32 buffer: 5x the clip in memory and 8 extra bytes of traffic per element.
    Recomputing the hash costs less than that, so the kernels stay one pass.
    """
    import torch._inductor.config as cfg

    wanted = {"realize_opcount_threshold": 10_000}
    return {k: v for k, v in wanted.items() if hasattr(cfg, k)}


_limits_lock = threading.Lock()
_limits_depth = 0
_limits_saved: dict = {}


def _overrides_are_context_local(cfg) -> bool:
    """Whether this torch keeps config overrides per thread/context (ContextVar, torch >= 2.12
    or so): then each thread raises and restores its own limits; else they are one global."""
    entry = getattr(cfg, "_config", {}).get("recompile_limit")
    return isinstance(getattr(entry, "user_override", None), contextvars.ContextVar)


def _dynamo_limits(cfg=None):
    """Dynamo's recompile limits raised while one of our kernels runs, and only then.

    Every noise's kernel shares one code object (a closure), so dynamo's per-code cache must
    hold one entry per noise and shape (its default of 8 would send most noises back to
    eager); a user's own compiled model keeps torch's limits. Where the limits are one global
    (older torch), threads overlapping in our kernels share one reference-counted raise, so the
    user's values come back when the last leaves (``config.patch`` would restore out of order).
    """
    if cfg is None:
        import torch._dynamo

        cfg = torch._dynamo.config
    names = [k for k in ("recompile_limit", "cache_size_limit") if hasattr(cfg, k)]
    if _overrides_are_context_local(cfg):
        return cfg.patch({k: max(getattr(cfg, k), _RECOMPILE_LIMIT) for k in names})
    return _global_limits(cfg, names)


@contextlib.contextmanager
def _global_limits(cfg, names):
    global _limits_depth
    with _limits_lock:
        if _limits_depth == 0:
            _limits_saved.clear()
            for k in names:
                _limits_saved[k] = getattr(cfg, k)
                setattr(cfg, k, max(_limits_saved[k], _RECOMPILE_LIMIT))
        _limits_depth += 1
    try:
        yield
    finally:
        with _limits_lock:
            _limits_depth -= 1
            if _limits_depth == 0:
                for k, v in _limits_saved.items():
                    setattr(cfg, k, v)


_RECOMPILE_LIMIT = 512


def _device_errors() -> tuple:
    """Errors of the device, not of the compiler: re-raised, never a reason to stop compiling."""
    errs = [torch.OutOfMemoryError, MemoryError]
    if hasattr(torch, "AcceleratorError"):  # a sticky CUDA error (illegal address, ...)
        errs.append(torch.AcceleratorError)
    return tuple(errs)


def maybe_compiled(fn: Callable, device: torch.device, numel: int = 0,
                   cpu_min: int = AUTO_CPU_MIN_ELEMENTS) -> Callable:
    """``fn`` itself, or its cached ``torch.compile`` version (eager fallback on failure).

    A compiler failure sends ``fn`` back to eager on that device type for the rest of the
    process, with one warning. Running out of memory (or a CUDA error) inside the compiled
    call is raised as it is: it says nothing about the compiler, and the eager rerun would
    need more memory, not less.
    """
    key = (fn, device.type)
    if key in _broken or not use_compiled(device, numel, cpu_min):
        return fn
    compiled = _cache.get(key)
    if compiled is None:
        inner = torch.compile(fn, dynamic=None, options=_inductor_options())
        device_errors = _device_errors()

        def compiled(*args, **kwargs):
            try:
                with _dynamo_limits():
                    return inner(*args, **kwargs)
            except device_errors:
                raise
            except Exception as e:  # noqa: BLE001 - any compiler failure falls back to the reference
                if isinstance(e, RuntimeError) and ("can't allocate memory" in str(e)
                                                    or "not enough memory" in str(e)):
                    raise  # the CPU allocator's out-of-memory error: not the compiler's fault
                if _mode == "always" and os.environ.get("NRVL_COMPILE_STRICT"):
                    raise
                warnings.warn(f"nrvl.kernels: torch.compile failed on {key[1]} ({type(e).__name__}: "
                              f"{str(e)[:200]}); running eagerly", RuntimeWarning, stacklevel=2)
                _broken.add(key)
                return fn(*args, **kwargs)

        _cache[key] = compiled
    return compiled
