"""``nrvl.kernels``: 35 video corruptions as batched PyTorch tensor ops.

Importing registers every noise and does nothing else (no seeding, no
printing, no CUDA initialisation, no Triton compilation).

Example:
    >>> import torch, nrvl.kernels as K
    >>> clip = torch.randint(0, 256, (8, 3, 64, 64), dtype=torch.uint8)
    >>> noisy = K.corrupt(clip, "gaussian", 0.9, seed=0)   # 7 of 8 frames
    >>> noisy.shape, noisy.dtype
    (torch.Size([8, 3, 64, 64]), torch.uint8)
"""
from . import random  # noqa: F401  (the counter-based random function)
from ._compile import compile_mode, set_compile
from .core import apply_params, corrupt, frame_count, sample_params
from .random import derive_seed
from .registry import FAMILIES, NOISES, NoiseSpec, get_spec, list_noises

# Registration, in the reference's family order.
from . import quality, lighting, digital  # noqa: F401,E402

for _family in ("blur", "compression", "occlusion", "temporal", "weather"):
    try:  # families land one by one; a missing module is simply not registered yet
        __import__(f"{__name__}.{_family}")
    except ModuleNotFoundError as _e:
        if _e.name != f"{__name__}.{_family}":
            raise

from .augment import VideoCorruption  # noqa: E402

__all__ = [
    "corrupt", "list_noises", "NOISES", "NoiseSpec", "get_spec", "FAMILIES", "derive_seed",
    "sample_params", "apply_params", "frame_count", "VideoCorruption", "set_compile", "compile_mode",
]
