"""The one source of randomness in ``nrvl.kernels``: a counter-based hash.

Every random number is a pure function of ``(clip seed, stream name, counters,
element index)``. Nothing here touches a global RNG, so a clip's corruption is
the same alone or in a batch, in any order, on any rank and on any device.

The element hash is Chris Wellons' ``lowbias32`` finalizer applied twice around
a 64-bit key (``k0``, ``k1``)::

    bits(k, i) = mix(mix(i + k0) ^ k1)

It is written with int32 tensor ops (logical right shifts emulated with a mask,
multiplication wrapping modulo 2**32), so CPU and CUDA give identical bits, and
``nrvl.kernels.triton.random`` writes the same function with ``tl.uint32`` for
kernels that draw their numbers in registers instead of reading a noise tensor.

Keys are derived on the tensor's device from the int64 ``[B]`` clip seeds and
small integer counters (frame index, iteration, ...), so per-clip streams need
no Python loop and no host sync.
"""
from __future__ import annotations

import hashlib
import math
import numbers
import zlib

import torch

from ._compile import maybe_compiled, use_compiled

# From this many numbers "auto" hashes through one compiled loop on the CPU (about one 720p
# plane): the hash is one small function shared by every noise, compiled once per shape family.
HASH_CPU_MIN_ELEMENTS = 1 << 19

__all__ = [
    "mix32",
    "stream_id",
    "keys",
    "bits",
    "uniform",
    "normal",
    "randint",
    "poisson",
    "derive_seed",
    "seeds_from",
    "seeds_and_host",
    "keys_host",
    "bits_host",
    "uniform_host",
    "order_host",
]

_M1 = 0x7FEB352D
_M2 = 0x846CA68B - (1 << 32)  # the same bit pattern as a signed int32
_K1_SALT = 0x5BD1E995
_TWO_PI = 6.283185307179586
_INV_2_24 = 1.0 / 16777216.0


def _i32(v: int) -> int:
    """A Python int reduced to the signed int32 with the same low 32 bits."""
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v >= (1 << 31) else v


def mix32(x: torch.Tensor) -> torch.Tensor:
    """``lowbias32`` on an int32 tensor holding 32-bit patterns (a bijection)."""
    x = x ^ ((x >> 16) & 0xFFFF)
    x = x * _M1
    x = x ^ ((x >> 15) & 0x1FFFF)
    x = x * _M2
    x = x ^ ((x >> 16) & 0xFFFF)
    return x


_MASK32 = 0xFFFFFFFF
_CLIP_SEED_STREAM = "clip-seed"
_COUNTER_SALT = 0x2545F491
#: Clip seeds of an int seed are derived in Python up to this batch size (a few microseconds a
#: clip, against ~60 tiny tensor ops for any batch); the two ways give the same seeds (tested).
HOST_SEED_MAX_BATCH = 64


def mix32_int(x: int) -> int:
    """``mix32`` of one 32-bit pattern in Python ints (unsigned in, unsigned out)."""
    x &= _MASK32
    x ^= x >> 16
    x = (x * _M1) & _MASK32
    x ^= x >> 15
    x = (x * (_M2 & _MASK32)) & _MASK32
    return x ^ (x >> 16)


def host_to_device(values, dtype: torch.dtype, device: torch.device | str) -> torch.Tensor:
    """A small tensor made on the host, on ``device`` without a host sync.

    ``torch.tensor(..., device="cuda")`` copies from pageable memory and waits for the
    stream (a sync per call); a pinned buffer copied with ``non_blocking`` does not, and
    torch keeps the buffer until the copy is done.
    """
    t = torch.as_tensor(values, dtype=dtype)
    device = torch.device(device)
    if device.type == "cpu":
        return t
    if device.type == "cuda" and torch.cuda.is_available():
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


def _full_like_scalar(value, device) -> torch.Tensor:
    """``torch.as_tensor(value, device=device)`` for a Python number, by a fill (no host-to-device copy)."""
    if isinstance(value, torch.Tensor):
        return value.to(device)
    return torch.full((), value, device=device)


def stream_id(name: str) -> int:
    """A stable int32 constant for a stream name (CRC-32 of its UTF-8 bytes)."""
    return _i32(zlib.crc32(name.encode("utf-8")))


def _seed_halves(seeds: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The low and high 32 bits of int64 seeds, as int32 patterns.

    int64 -> int32 keeps the low 32 bits (two's complement, on CPU and CUDA alike; tested
    against the masked form), so each half is one op.
    """
    s = seeds.to(torch.int64)
    return s.to(torch.int32), (s >> 32).to(torch.int32)


def keys(seeds: torch.Tensor, stream: str, *counters: torch.Tensor | int) -> torch.Tensor:
    """Per-stream keys for a batch of clips.

    Args:
        seeds: int64 ``[B]`` (or any shape) clip seeds.
        stream: the stream's name, e.g. ``"gaussian/noise"``.
        *counters: integer tensors (or ints) broadcastable against ``seeds``'
            shape extended to the right, e.g. a frame index ``[B, n]``.

    Returns:
        int32 ``[..., 2]`` keys ``(k0, k1)``, on ``seeds``' device.
    """
    lo, hi = _seed_halves(seeds)
    h = mix32(mix32(lo ^ stream_id(stream)) ^ hi)
    for c in counters:
        if isinstance(c, torch.Tensor):
            while h.dim() < c.dim():
                h = h.unsqueeze(-1)
            h = mix32(h + mix32(c.to(device=h.device, dtype=torch.int32) ^ _COUNTER_SALT))
        else:  # a Python int: its hash on the host, added as a scalar (no tensor, no copy)
            h = mix32(h + _i32(mix32_int(int(c) ^ _COUNTER_SALT)))
    k1 = mix32(h ^ _K1_SALT)
    return torch.stack(torch.broadcast_tensors(h, k1), dim=-1)


#: A host-side draw (``keys_host``, ``uniform_host``, ``order_host``) is used while it needs at most
#: this many ``mix32_int`` calls (~0.3 us each here): about the cost of the ~30 tiny tensor ops it
#: replaces, each a kernel launch on an accelerator. Larger draws stay on the device.
HOST_HASH_BUDGET = 384


def _seed_hash_host(seed: int, stream: int) -> int:
    """The per-clip part of ``keys``: ``mix32(mix32(lo ^ stream) ^ hi)`` of one int64 seed, unsigned."""
    return mix32_int(mix32_int((seed & _MASK32) ^ stream) ^ ((seed >> 32) & _MASK32))


def keys_host(seeds, stream: str, *counters) -> tuple[list[int], tuple]:
    """``keys(seeds, stream, *counters)`` in Python ints, for seeds known on the host.

    Args:
        seeds: the ``B`` clip seeds as ints (signed int64 values).
        counters: ints, or at most one per-clip counter given as ``B`` rows of ``n`` ints
            (the host values of an int ``[B, n]`` tensor such as a frame index).

    Returns:
        The flat int32 patterns (row-major) and the shape ``[B, 2]`` or ``[B, n, 2]`` of the
        tensor ``keys`` would give; the values are identical (tested).
    """
    sid = stream_id(stream) & _MASK32
    base = [_seed_hash_host(s, sid) for s in seeds]
    rows = None  # the per-clip counter, once seen: h becomes [B, n]
    hs = [[h] for h in base]
    for c in counters:
        if isinstance(c, int):
            m = mix32_int(c ^ _COUNTER_SALT)
            hs = [[mix32_int(h + m) for h in row] for row in hs]
        else:
            if rows is not None or len(c) != len(seeds):
                raise ValueError("keys_host takes at most one per-clip counter of B rows")
            rows = c
            hs = [[mix32_int(row[0] + mix32_int(v ^ _COUNTER_SALT)) for v in cnt] for row, cnt in zip(hs, c)]
    flat = []
    for row in hs:
        for h in row:
            flat.append(_i32(h))
            flat.append(_i32(mix32_int(h ^ _K1_SALT)))
    shape = (len(seeds), 2) if rows is None else (len(seeds), len(rows[0]) if rows else 0, 2)
    return flat, shape


def bits_host(k0: int, k1: int, index: int) -> int:
    """``bits`` of one element in Python ints: the unsigned 32-bit pattern."""
    return mix32_int(mix32_int((index + k0) & _MASK32) ^ (k1 & _MASK32))


def uniform_host(k0: int, k1: int, index: int) -> float:
    """``uniform`` of one element, exactly (a 24-bit integer times 2**-24 is exact in float32)."""
    return ((bits_host(k0, k1, index) >> 8) & 0xFFFFFF) * _INV_2_24


def order_host(seed: int, stream: str, T: int) -> list[int]:
    """The frames ``0..T-1`` of one clip in the order of their hashes ``bits(keys(seed, stream), t)``
    as int32 (the order ``torch.argsort`` gives on the device: the hashes are distinct)."""
    h = _seed_hash_host(seed, stream_id(stream) & _MASK32)
    k1 = mix32_int(h ^ _K1_SALT)
    hashes = [_i32(bits_host(h, k1, t)) for t in range(T)]
    return sorted(range(T), key=hashes.__getitem__)


def _clip_seeds_host(seed: int, batch: int) -> list[int]:
    """``seeds_from(batch, seed)`` in Python ints: the same steps as ``keys`` on ``[seed]``."""
    h = _seed_hash_host(seed, stream_id(_CLIP_SEED_STREAM) & _MASK32)
    out = []
    for i in range(batch):
        k0 = mix32_int(h + mix32_int(i ^ _COUNTER_SALT))
        k1 = mix32_int(k0 ^ _K1_SALT)
        out.append(k0 | ((k1 & 0x7FFFFFFF) << 32))
    return out


def bits(key: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """32 random bits (as int32) for element ``index`` of the stream ``key``.

    ``key[..., 0]`` and ``key[..., 1]`` broadcast against ``index``.
    """
    if torch.compiler.is_compiling():  # inductor fuses the plain form into one loop anyway
        return _hash(index, key[..., 0], key[..., 1])
    numel = _broadcast_numel(index.shape, key.shape[:-1])
    if use_compiled(index.device, numel, HASH_CPU_MIN_ELEMENTS):
        # Frame-sized draws of the eager noises (edge_sawtooth's coins and colours, glass's
        # offsets ...): one compiled loop instead of ~15 passes; the same bits (integer ops).
        return maybe_compiled(_hash, index.device, numel, HASH_CPU_MIN_ELEMENTS)(index, key[..., 0], key[..., 1])
    x = index + key[..., 0]  # a fresh tensor: hashed in place below
    s = torch.empty_like(x)
    return _mix32_(_mix32_(x, s).bitwise_xor_(key[..., 1]), s)


def _broadcast_numel(a: tuple, b: tuple) -> int:
    """``math.prod(torch.broadcast_shapes(a, b))`` for shapes that broadcast, without its
    ~50 us of Python (it runs on every draw); the ops that follow check the shapes."""
    n = 1
    for i in range(1, max(len(a), len(b)) + 1):
        x = a[-i] if i <= len(a) else 1
        y = b[-i] if i <= len(b) else 1
        n *= x if y == 1 else y
    return n


def _hash(index: torch.Tensor, k0: torch.Tensor, k1: torch.Tensor) -> torch.Tensor:
    return mix32(mix32(index + k0) ^ k1)


def _mix32_(x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """``mix32`` in place on a tensor the caller owns (``s``: scratch of ``x``'s shape).

    Two buffers instead of ~10 temporaries: about 3x faster on a CPU for frame-sized draws.
    """
    x.bitwise_xor_(torch.bitwise_right_shift(x, 16, out=s).bitwise_and_(0xFFFF))
    x.mul_(_M1)
    x.bitwise_xor_(torch.bitwise_right_shift(x, 15, out=s).bitwise_and_(0x1FFFF))
    x.mul_(_M2)
    x.bitwise_xor_(torch.bitwise_right_shift(x, 16, out=s).bitwise_and_(0xFFFF))
    return x


def uniform(key: torch.Tensor, index: torch.Tensor, dtype=torch.float32) -> torch.Tensor:
    """Uniform in ``[0, 1)`` with 24 bits of resolution (float16/bfloat16: rounded from float32,
    so the top values may round to 1.0)."""
    if dtype not in (torch.float32, torch.float64):  # 2**24 - 1 overflows float16 before the scaling
        return uniform(key, index, torch.float32).to(dtype)
    if torch.compiler.is_compiling():
        return ((bits(key, index) >> 8) & 0xFFFFFF).to(dtype) * _INV_2_24
    return bits(key, index).bitwise_right_shift_(8).bitwise_and_(0xFFFFFF).to(dtype).mul_(_INV_2_24)


def normal(key: torch.Tensor, index: torch.Tensor, dtype=torch.float32) -> torch.Tensor:
    """Standard normal by Box-Muller, using counters ``2*index`` and ``2*index + 1``."""
    i2 = index * 2
    u1 = 1.0 - uniform(key, i2, dtype)  # (0, 1], so log is finite
    u2 = uniform(key, i2 + 1, dtype)
    return torch.sqrt(-2.0 * torch.log(u1)) * torch.cos(_TWO_PI * u2)


def randint(key: torch.Tensor, index: torch.Tensor, low, high) -> torch.Tensor:
    """Integers uniform in ``[low, high]`` (inclusive), int64; bounds may be tensors."""
    low = _full_like_scalar(low, key.device)
    high = _full_like_scalar(high, key.device)
    span = (high - low + 1).to(torch.float64)
    u = uniform(key, index, torch.float64)
    return (low + torch.floor(u * span).to(torch.int64)).minimum(high.to(torch.int64))


def _poisson_terms(max_lam: float) -> int:
    """Terms needed so that P(X > terms) < 2**-26 for every lam <= max_lam (below the 24-bit uniform's step)."""
    if max_lam <= 0:
        return 1
    p = math.exp(-max_lam)
    cdf, k = p, 0
    while 1.0 - cdf >= 2.0 ** -26 and k < 100_000:
        k += 1
        p *= max_lam / k
        cdf += p
    return k + 1


def poisson(key: torch.Tensor, index: torch.Tensor, lam: torch.Tensor, max_lam: float) -> torch.Tensor:
    """Poisson(``lam``) by inversion of one uniform; exact up to float32 CDF rounding.

    ``max_lam`` bounds ``lam`` (a Python number derived from parameters, never from
    data) and fixes the number of terms (the tail beyond them is below the uniform's
    resolution), so there is no data-dependent loop.
    """
    u = uniform(key, index, lam.dtype)
    p = torch.exp(-lam)
    cdf = p.clone()
    k = torch.zeros_like(lam)
    for i in range(1, _poisson_terms(float(max_lam)) + 1):
        k += (u >= cdf).to(lam.dtype)
        p *= lam
        p *= 1.0 / i
        cdf += p
    return k


def derive_seed(seed: int, *keys_: object) -> int:
    """A clip seed (int in ``[0, 2**63)``) derived from a base seed and keys.

    Used by the evaluation: ``derive_seed(seed, video_id, question_index, noise, ratio)``
    gives every sample its own seed, independent of world size, batch and order.
    Keys are turned into text with ``repr`` (floats keep their exact repr).
    """
    text = "\x1f".join([repr(int(seed))] + [repr(k) for k in keys_])
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


def seeds_from(batch: int, seed=None, generator: torch.Generator | None = None,
               device: torch.device | str = "cpu") -> torch.Tensor:
    """The int64 ``[batch]`` clip seeds for ``corrupt``.

    * ``seed`` int (any integer type; taken modulo 2**64 as a signed int64): clip ``i`` gets a
      seed hashed from ``(seed, i)`` (``keys(seed, "clip-seed", i)``), so clip ``i`` of a batch
      equals a single call with ``seeds_from(batch, seed)[i]`` as its seed tensor, and clip 0
      a single call with the same int seed.
    * ``seed`` tensor: used as is (must hold ``batch`` int64 values).
    * ``generator``: seeds drawn from it (on the generator's device).
    * neither: drawn from torch's global CPU generator.
    """
    return seeds_and_host(batch, seed, generator, device)[0]


def seeds_and_host(batch: int, seed=None, generator: torch.Generator | None = None,
                   device: torch.device | str = "cpu") -> tuple[torch.Tensor, tuple | None]:
    """``seeds_from``, and the same seeds as Python ints when the host has them without a sync
    (an int seed, a CPU seed tensor or a CPU generator, batches up to ``HOST_SEED_MAX_BATCH``);
    else None. The host values let small draws be hashed in Python (``keys_host``)."""
    if seed is not None and generator is not None:
        raise ValueError("pass either seed or generator, not both")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    if isinstance(seed, torch.Tensor):
        if seed.dtype not in (torch.int64, torch.int32):
            raise TypeError(f"seed tensor must be int64, got {seed.dtype}")
        if seed.shape != (batch,):
            raise ValueError(f"seed tensor must have shape [{batch}] (one per clip), got {list(seed.shape)}")
        if seed.device.type != "cpu":
            return seed.to(device=device, dtype=torch.int64), None
        host = tuple(seed.tolist()) if batch <= HOST_SEED_MAX_BATCH else None
        return host_to_device(seed, torch.int64, device), host
    if seed is not None:
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
            raise TypeError(f"seed must be an int or an int64 tensor, got {type(seed).__name__}")
        seed = (int(seed) + 2**63) % 2**64 - 2**63  # torch.seed() and friends give values up to 2**64 - 1
        if batch <= HOST_SEED_MAX_BATCH:
            host = _clip_seeds_host(seed, batch)
            return host_to_device(host, torch.int64, device), tuple(host)
        base = torch.full((1,), seed, dtype=torch.int64, device=device)
        k = keys(base, _CLIP_SEED_STREAM, torch.arange(batch, device=device)).reshape(batch, 2).to(torch.int64)
        return (k[:, 0] & 0xFFFFFFFF) | ((k[:, 1] & 0x7FFFFFFF) << 32), None
    gen_device = generator.device if generator is not None else torch.device("cpu")
    s = torch.randint(0, 2**62, (batch,), generator=generator, dtype=torch.int64, device=gen_device)
    if gen_device.type != "cpu":
        return s.to(device), None
    host = tuple(s.tolist()) if batch <= HOST_SEED_MAX_BATCH else None
    return host_to_device(s, torch.int64, device), host
