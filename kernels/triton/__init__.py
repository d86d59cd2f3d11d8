"""Triton kernels for the noises torch cannot express in a few passes (glass, rain, snow).

This package's ``__init__`` does not import Triton: ``enabled`` says whether a tensor's noise
may use the kernels, and ``device_guard`` makes a launch run on the tensor's GPU.
"""
from __future__ import annotations

import contextlib
import os

import torch


def enabled(t: torch.Tensor) -> bool:
    """Use the Triton kernels for ``t``: a CUDA tensor, Triton importable, ``NRVL_NO_TRITON`` unset."""
    if not t.is_cuda or os.environ.get("NRVL_NO_TRITON", "0") not in ("", "0"):
        return False
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def device_guard(t: torch.Tensor):
    """The context a launch for ``t`` runs in: ``t``'s CUDA device made current.

    Triton launches on ``torch.cuda.current_device()`` and its stream, not on its arguments'
    device: without this a tensor on ``cuda:1`` would be processed by a kernel on ``cuda:0``,
    unordered with ``cuda:1``'s stream.
    """
    return torch.cuda.device(t.device) if t.is_cuda else contextlib.nullcontext()
