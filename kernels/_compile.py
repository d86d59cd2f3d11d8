"""The switch for fused fast paths through ``torch.compile`` (inductor).

The eager torch ops are the reference. A pointwise noise in eager mode makes a
dozen full passes over the clip (the hash alone is ~10 integer ops per number);
compiled, inductor fuses them into one loop (C++/OpenMP on CPU, Triton on CUDA),
close to one read and one write of the clip.

Mode, from ``set_compile`` or the ``NRVL_COMPILE`` environment variable:

* ``"auto"`` (default): compile on CUDA, eager elsewhere (a CPU compile costs
  ~15 s per noise and shape the first time, which tests and one-off calls
  should not pay);
* ``"always"`` (``1``): compile on every device, the fast CPU path;
* ``"never"`` (``0``): always eager.
"""
from __future__ import annotations

import os
from typing import Callable

import torch

__all__ = ["set_compile", "compile_mode", "maybe_compiled", "use_compiled"]

_ALIASES = {"1": "always", "true": "always", "always": "always", "0": "never", "false": "never",
            "never": "never", "auto": "auto", "": "auto"}
_mode = _ALIASES.get(os.environ.get("NRVL_COMPILE", "auto").strip().lower(), "auto")
_cache: dict[Callable, Callable] = {}


def set_compile(mode: str | bool) -> None:
    """Choose when fused kernels are compiled: ``"auto"``, ``"always"``/True, ``"never"``/False."""
    global _mode
    key = str(mode).strip().lower()
    if key not in _ALIASES:
        raise ValueError(f"compile mode must be 'auto', 'always' or 'never', got {mode!r}")
    _mode = _ALIASES[key]


def compile_mode() -> str:
    return _mode


def use_compiled(device: torch.device) -> bool:
    """Whether the fused (compiled) path runs for tensors on ``device``."""
    return _mode == "always" or (_mode == "auto" and device.type == "cuda")


def maybe_compiled(fn: Callable, device: torch.device) -> Callable:
    """``fn`` itself, or its cached ``torch.compile`` version when the mode asks for it."""
    if not use_compiled(device):
        return fn
    compiled = _cache.get(fn)
    if compiled is None:
        # Every noise's kernel shares one code object (a closure), so dynamo's per-code
        # cache must hold one entry per noise and shape.
        import torch._dynamo

        torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 512)
        torch._dynamo.config.cache_size_limit = max(getattr(torch._dynamo.config, "cache_size_limit", 0), 512)
        compiled = torch.compile(fn, dynamic=None)
        _cache[fn] = compiled
    return compiled
