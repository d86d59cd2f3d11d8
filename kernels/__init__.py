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
if __name__ == "kernels":  # the bare name, from a checkout's root on sys.path: not ours
    from ._bare_name import hand_over

    hand_over(__file__)
else:
    from . import random  # noqa: F401  (the counter-based random function)
    from ._compile import compile_mode, set_compile
    from ._memory import reuse_cpu_memory, set_work_memory, work_memory
    from .core import apply_params, corrupt, frame_count, sample_params
    from .random import derive_seed
    from .registry import FAMILIES, NOISES, NoiseSpec, get_spec, list_noises

    # Registration, in the reference's family order.
    from . import quality, lighting, digital, blur, compression, occlusion, temporal, weather  # noqa: F401,E402

    from .augment import VideoCorruption  # noqa: E402

    __all__ = [
        "corrupt", "list_noises", "NOISES", "NoiseSpec", "get_spec", "FAMILIES", "derive_seed",
        "sample_params", "apply_params", "frame_count", "VideoCorruption", "set_compile", "compile_mode",
        "set_work_memory", "work_memory", "reuse_cpu_memory",
    ]
