"""``corrupt``: the dispatcher, the sampling context and the frame-noise machinery.

A noise is a ``sample`` that draws everything random into a dict of small
tensors (``params``) and an ``apply`` that is deterministic given them
(kornia's generator/apply split). ``corrupt`` validates, folds ``[T,C,H,W]`` into
``[1,T,C,H,W]``, turns ``seed``/``generator`` into int64 ``[B]`` clip seeds, and
calls the two.

Every ``params`` dict holds at least:

* ``seed``: int64 ``[B]``, the clip seeds;
* ``frames``: bool ``[B, T]``, the frames the noise may change;
* ``frame_idx``: int64 ``[B, n]``, the same frames as sorted indices.
"""
from __future__ import annotations

import contextlib
import math
import numbers
import threading
from dataclasses import dataclass, field
from typing import Callable, Mapping

import torch

from . import random as rng
from ._compile import maybe_compiled, use_compiled
from ._memory import chunk_plan
from .registry import NoiseSpec, get_spec, register_noise

__all__ = [
    "Context", "corrupt", "sample_params", "apply_params", "select_frames", "frame_count",
    "register_frame_noise", "frame_uniform", "pixel_index", "to_work", "from_work", "apply_chunked",
    "apply_to_chosen",
]


@dataclass(frozen=True)
class Context:
    """What ``sample`` may look at: shapes and seeds, never pixel values.

    Attributes:
        shape: ``(B, T, C, H, W)``.
        device: where the video (and every drawn tensor) lives.
        seeds: int64 ``[B]`` clip seeds.
        ratio: the ``ratio`` argument of ``corrupt``.
        host_seeds: the same seeds as Python ints when the host has them without a sync
            (an int seed, CPU seeds or a CPU generator, small batches), else None. With them,
            small draws (``keys``, ``select_frames``, ``frame_uniform``) are hashed in Python
            and reach the device as one copy, instead of ~30 tiny tensor ops each (on a GPU,
            as many kernel launches). The values are the same bits either way.
    """

    shape: tuple
    device: torch.device
    seeds: torch.Tensor
    ratio: float
    host_seeds: tuple | None = None
    # Host values of int tensors made here (frame indices), by id: lets a later draw keyed by
    # such a tensor hash on the host too. Holds the tensor, so an id is never reused while kept.
    _host: dict = field(default_factory=dict, repr=False, compare=False)
    # The seeds tensor host_seeds were given for: ``dataclasses.replace(ctx, seeds=other)`` carries
    # host_seeds over, and they must not then stand for the new seeds.
    _host_for: object = field(default=None, repr=False, compare=False)

    def __post_init__(self):
        if self._host_for is None:
            object.__setattr__(self, "_host_for", self.seeds)
        elif self._host_for is not self.seeds or (self.host_seeds is not None
                                                    and len(self.host_seeds) != self.shape[0]):
            object.__setattr__(self, "host_seeds", None)
            object.__setattr__(self, "_host_for", self.seeds)

    @property
    def B(self) -> int:
        return self.shape[0]

    @property
    def T(self) -> int:
        return self.shape[1]

    def remember(self, tensor: torch.Tensor, rows: list) -> torch.Tensor:
        """Note that ``tensor`` (int ``[B, n]``) holds ``rows`` (B lists of n ints); returns it."""
        self._host[id(tensor)] = (tensor, tensor._version, rows)
        return tensor

    def host_rows(self, tensor) -> list | None:
        """The host values of a tensor made with ``remember``, else None."""
        entry = self._host.get(id(tensor)) if isinstance(tensor, torch.Tensor) else None
        # The same tensor, not changed in place since (a noise may clamp its frame_idx).
        ok = entry is not None and entry[0] is tensor and entry[1] == tensor._version
        return entry[2] if ok else None

    def _host_counters(self, counters) -> tuple | None:
        """``counters`` as ints and host rows, or None when some are only on the device."""
        if not self.host_seeds:  # unknown on the host, or an empty batch
            return None
        out = []
        for c in counters:
            if isinstance(c, numbers.Integral) and not isinstance(c, bool):
                out.append(int(c))
            else:
                rows = self.host_rows(c)
                if rows is None:
                    return None
                out.append(rows)
        return tuple(out) if sum(not isinstance(c, int) for c in out) <= 1 else None

    def keys(self, stream: str, *counters) -> torch.Tensor:
        """``rng.keys(self.seeds, stream, *counters)``, hashed on the host when it can be."""
        host = self._host_counters(counters)
        if host is not None:
            rows = next((c for c in host if not isinstance(c, int)), None)
            n = len(rows[0]) if rows else 1
            if self.B * (3 + len(host)) * n <= rng.HOST_HASH_BUDGET:
                flat, shape = rng.keys_host(self.host_seeds, stream, *host)
                return rng.host_to_device(flat, torch.int32, self.device).reshape(shape)
        return rng.keys(self.seeds, stream, *counters)


def frame_count(T: int, ratio: float) -> int:
    """The reference's ``int(T * ratio)`` (truncation, in float64 like Python)."""
    return int(T * ratio)


def select_frames(seeds: torch.Tensor, T: int, n: int, stream: str = "frames") -> torch.Tensor:
    """``n`` distinct frames per clip, uniform at random: int64 ``[B, n]``, sorted.

    The order of the clip's frames is the order of their hashes, so the choice
    depends only on the clip seed (no loop, no host sync).
    """
    return _select_frames(seeds, None, T, n, stream)[0]


def _select_frames(seeds: torch.Tensor, host_seeds: tuple | None, T: int, n: int, stream: str = "frames"):
    """``select_frames``, and its rows as Python ints when drawn on the host (else None): the
    same frames, hashed in Python for small draws whose seeds the host has."""
    B = seeds.shape[0]
    if host_seeds is not None and B * (2 + 2 * T) <= rng.HOST_HASH_BUDGET:
        rows = [sorted(rng.order_host(s, stream, T)[:n]) for s in host_seeds]
        return rng.host_to_device(rows, torch.int64, seeds.device).reshape(B, n), rows
    t = torch.arange(T, device=seeds.device, dtype=torch.int32)
    key = rng.keys(seeds, stream)  # [B, 2]
    h = rng.bits(key[:, None, :], t[None, :])  # [B, T], distinct within a clip (a bijection of t)
    order = torch.argsort(h, dim=1)[:, :n]
    return torch.sort(order, dim=1).values.to(torch.int64).reshape(B, n), None


def _frames_mask(frame_idx: torch.Tensor, T: int) -> torch.Tensor:
    B = frame_idx.shape[0]
    mask = torch.zeros(B, T, dtype=torch.bool, device=frame_idx.device)
    return mask.scatter_(1, frame_idx, True) if frame_idx.numel() else mask


def base_params(ctx: Context, frame_mode: str) -> dict:
    """``seed``, ``frames`` and ``frame_idx`` for a noise whose frame rule is ``frame_mode``."""
    B, T = ctx.B, ctx.T
    if frame_mode == "all":
        idx = torch.arange(T, device=ctx.device, dtype=torch.int64).expand(B, T).contiguous()
        rows = [list(range(T))] * B if ctx.host_seeds is not None else None
    else:
        idx, rows = _select_frames(ctx.seeds, ctx.host_seeds, T, frame_count(T, ctx.ratio))
    if rows is None:
        return {"seed": ctx.seeds, "frames": _frames_mask(idx, T), "frame_idx": idx}
    if frame_mode == "all":  # every frame: a fill, whatever B x T (no host mask to build)
        return {"seed": ctx.seeds, "frames": torch.ones(B, T, dtype=torch.bool, device=ctx.device),
                "frame_idx": ctx.remember(idx, rows)}
    mask = [[False] * T for _ in range(B)]
    for m, row in zip(mask, rows):
        for t in row:
            m[t] = True
    return {"seed": ctx.seeds, "frames": rng.host_to_device(mask, torch.bool, ctx.device).reshape(B, T),
            "frame_idx": ctx.remember(idx, rows)}


def frame_uniform(ctx: Context, frame_idx: torch.Tensor, stream: str, low=0.0, high=1.0,
                  count: int | None = None, dtype=torch.float32) -> torch.Tensor:
    """Per-frame uniforms in ``[low, high)``: ``[B, n]`` (or ``[B, n, count]``), keyed by frame index."""
    rows = ctx.host_rows(frame_idx) if ctx.host_seeds else None
    if rows is not None:
        n, c = frame_idx.shape[1], (1 if count is None else count)
        if ctx.B * n * (4 + 2 * c) <= rng.HOST_HASH_BUDGET:  # keys and uniforms in Python
            flat, _ = rng.keys_host(ctx.host_seeds, stream, rows)
            u = [rng.uniform_host(flat[j], flat[j + 1], i) for j in range(0, len(flat), 2) for i in range(c)]
            shape = (ctx.B, n) if count is None else (ctx.B, n, count)
            u = rng.host_to_device(u, dtype, ctx.device).reshape(shape)
            return low + (high - low) * u
    key = ctx.keys(stream, frame_idx)  # [B, n, 2]
    if count is None:
        u = rng.uniform(key, torch.zeros((), dtype=torch.int32, device=ctx.device), dtype)
    else:
        i = torch.arange(count, dtype=torch.int32, device=ctx.device)
        u = rng.uniform(key[..., None, :], i, dtype)
    return low + (high - low) * u


def pixel_index(shape, device, per_channel: bool = True) -> torch.Tensor:
    """int32 element counters ``[1, C|1, H, W]`` for per-pixel draws within one frame."""
    _, C, H, W = shape
    c = C if per_channel else 1
    return torch.arange(c * H * W, dtype=torch.int32, device=device).reshape(1, c, H, W)


def to_work(x: torch.Tensor) -> torch.Tensor:
    """The float working copy of frames (float32, or float64 for float64 input)."""
    return x.to(torch.float64 if x.dtype == torch.float64 else torch.float32)


def from_work(y: torch.Tensor, dtype: torch.dtype, reuse: bool = False) -> torch.Tensor:
    """Back to ``dtype``: uint8 rounds half-to-even and saturates; floats clamp to 0..255.

    ``reuse=True`` clamps and rounds ``y`` in place (it must be a temporary nobody else holds),
    which saves two clip-sized float buffers at the peak.
    """
    y = y.clamp_(0.0, 255.0) if reuse else y.clamp(0.0, 255.0)
    if dtype == torch.uint8:
        return (y.round_() if reuse else y.round()).to(torch.uint8)
    return y.to(dtype)


def _flat_frame_params(params: Mapping, B: int, n: int) -> tuple:
    """``(fp, per_frame)``: the params with per-frame tensors ``[B, n, ...]`` flattened to ``[B*n, ...]``,
    and the names of those."""
    out, per = {}, []
    for k, v in params.items():
        if k in ("seed", "frames", "frame_idx"):
            continue
        if isinstance(v, torch.Tensor) and v.dim() >= 2 and v.shape[0] == B and v.shape[1] == n:
            out[k] = v.reshape(B * n, *v.shape[2:])
            per.append(k)
        else:
            out[k] = v
    return out, per


def apply_to_chosen(video: torch.Tensor, params: Mapping, inplace: bool, make_fn: Callable,
                    fp: Mapping | None = None, **chunking) -> torch.Tensor:
    """A new clip (or ``video`` itself when ``inplace``) with the chosen frames replaced by ``fn``'s output.

    ``make_fn()`` returns ``fn`` for ``apply_chunked`` and is called only when some frame is
    chosen (so per-call set-up, a clip map or a detector, is skipped otherwise).
    """
    B, T, C, H, W = video.shape
    idx = params["frame_idx"]
    out = video if inplace else video.clone()
    if B * idx.shape[1] == 0 or C * H * W == 0:
        return out
    return apply_chunked(video, out, idx, fp or {}, make_fn(), **chunking)


def apply_chunked(video: torch.Tensor, out: torch.Tensor, frame_idx: torch.Tensor, fp: Mapping, fn: Callable, *,
                  work_bytes: float, channelwise: bool = False, per_frame=()) -> torch.Tensor:
    """``out[b, t] = fn(video[b, t], fp)`` for the chosen frames, chunk by chunk (``_memory.chunk_plan``).

    Args:
        video, out: ``[B, T, C, H, W]`` (``out`` may be ``video`` itself: chunks never overlap).
        frame_idx: int64 ``[B, n]``.
        fp: per-frame params ``[B*n, ...]`` (the keys of ``per_frame``), anything else passed whole;
            ``fp["clip"]`` (int64 ``[B*n]``, each frame's clip) is added.
        fn: ``fn(frames [m, c, H, W] in video's dtype, fp sliced to the chunk) -> frames``.
        work_bytes: the transform's working set per element of the frames it gets.
        channelwise: True when the channels are independent (a chunk may hold some planes only).
    """
    B, T, C, H, W = video.shape
    n = frame_idx.shape[1]
    M = B * n
    clip = torch.arange(B, device=video.device)[:, None].expand(B, n).reshape(M)
    t = frame_idx.reshape(M)
    fp = dict(fp, clip=clip)
    per = set(per_frame) | {"clip"}
    plan = chunk_plan(M, C, H * W, work_bytes, video.numel() * video.element_size(), channelwise)
    try:  # gathers by index_select on a [B*T] view: ~8x faster on a CPU than advanced indexing
        frames = video.view(B * T, C, H, W)
        flat = clip * T + t
        dst = out.view(B * T, C, H, W)
    except RuntimeError:  # a layout that has no such view
        frames = dst = None
    # On the CPU the chosen frames go back by one memcpy each (reading the indices is no device
    # sync there): ~5x faster than index_put/index_copy_, which copy element by element.
    rows = flat.tolist() if dst is not None and out.device.type == "cpu" else None
    for f0, f1, c0, c1 in plan:  # memory-bounded chunks (one for small inputs), never per pixel
        part = {k: (v[f0:f1] if k in per else v) for k, v in fp.items()}
        b, tt = clip[f0:f1], t[f0:f1]
        whole = (c0, c1) == (0, C)
        if frames is not None:
            sel = (frames if whole else frames[:, c0:c1]).index_select(0, flat[f0:f1])
        else:
            sel = video[b, tt] if whole else video[b, tt, c0:c1]
        y = fn(sel, part)
        del sel
        if rows is not None:
            for i, r in enumerate(rows[f0:f1]):
                dst[r, c0:c1].copy_(y[i])
        elif whole:
            out[b, tt] = y
        else:
            out[b, tt, c0:c1] = y
        del y
    return out


def _spread(v, b: torch.Tensor, idx: torch.Tensor, T: int):
    """Per-chosen-frame values ``[B*n, ...]`` placed at their frames: ``[B*T, ...]`` (zeros elsewhere)."""
    if not isinstance(v, torch.Tensor):
        return v
    B, n = idx.shape
    full = v.new_zeros((B, T) + tuple(v.shape[1:]))
    full[b, idx] = v.reshape((B, n) + tuple(v.shape[1:]))
    return full.reshape((B * T,) + tuple(v.shape[1:]))


def register_frame_noise(name: str, *, family: str, description: str, transform: Callable,
                         draw: Callable | None = None, defaults: Mapping | None = None,
                         frame_mode: str = "selected", severities=None, pointwise: bool = True,
                         compilable: bool = True, uint8_transform: Callable | None = None,
                         work_bytes: float = 16.0, channelwise: bool = False, **extras) -> NoiseSpec:
    """Register a noise that transforms the chosen frames one by one (each independently).

    Args:
        transform: ``transform(x, fp, **p) -> Tensor``: ``x`` the chosen frames as
            float ``[M, C, H, W]`` on 0..255 (``M = B*n``), ``fp`` the per-frame
            params flattened to ``[M, ...]``, ``p`` the noise's parameters. Returns
            float frames of the same shape (clamping and rounding are done after).
        draw: ``draw(ctx, frame_idx, **p) -> dict`` of per-frame tensors ``[B, n, ...]``.
        compilable: False for transforms that ``torch.compile`` must not trace (codec calls,
            Triton launches, FFTs it handles badly); they always run eagerly.
        uint8_transform: optional ``f(frames_u8, fp, **p) -> uint8 frames`` for uint8 input that
            skips the float round trip (a codec, torch's uint8 resampling kernels); it may return
            ``NotImplemented`` (e.g. on a device without a uint8 kernel) to use ``transform``.
        work_bytes: peak working memory of the transform per element of the frames it gets
            (float32 temporaries: 4 bytes each), which sizes the chunks of ``apply_chunked``.
        channelwise: True when the transform treats the channels independently (given a
            ``[M, c, H, W]`` slice of the channels, it returns that slice of its result).
    """

    def sample(ctx: Context, **p) -> dict:
        params = base_params(ctx, frame_mode)
        if draw is not None:
            params.update(draw(ctx, params["frame_idx"], **p))
        return params

    def kernel(sel: torch.Tensor, fp: dict, p: dict) -> torch.Tensor:
        if uint8_transform is not None and sel.dtype == torch.uint8:
            out = uint8_transform(sel, fp, **p)
            if out is not NotImplemented:
                return out
        # The float copy is passed, not kept: a transform that drops its ``x`` frees it early.
        y = transform(to_work(sel), fp, **p)
        # In place only on a fresh, unshared result: never on the caller's frames (``sel`` is a
        # gathered copy, but float32 input makes the work copy that same tensor) or on a view.
        reuse = (not torch.compiler.is_compiling() and y._base is None and y.data_ptr() != sel.data_ptr()
                 and not y.requires_grad)
        return from_work(y, sel.dtype, reuse=reuse)

    def masked_kernel(x: torch.Tensor, fp: dict, mask: torch.Tensor, p: dict) -> torch.Tensor:
        # Fused path for pointwise noises: one read and one write of the whole clip; frames
        # not chosen pass through (the transform's work on them is discarded). The blend is
        # arithmetic, x + m*(y - x) with m in {0, 1}, which is exact on those frames: inductor's
        # CPU code for torch.where with a per-frame bool mask is ~30x slower.
        xf = to_work(x)
        y = transform(xf, fp, **p).clamp(0.0, 255.0)
        if x.dtype == torch.uint8:
            y = y.round()
        m = mask.to(xf.dtype)[:, None, None, None]
        return (xf + m * (y - xf)).to(x.dtype)

    def apply(video: torch.Tensor, params: Mapping, *, inplace: bool = False, **p) -> torch.Tensor:
        B, T, C, H, W = video.shape
        idx = params["frame_idx"]
        n = idx.shape[1]
        if B * n == 0 or C * H * W == 0:
            return video if inplace else video.clone()
        if pointwise and compilable and use_compiled(video.device, video.numel()):
            b = torch.arange(B, device=video.device)[:, None]
            fp = {k: _spread(v, b, idx, T) for k, v in _flat_frame_params(params, B, n)[0].items()}
            fn = maybe_compiled(masked_kernel, video.device, video.numel())
            y = fn(video.reshape(B * T, C, H, W), fp, params["frames"].reshape(B * T), p).reshape(video.shape)
            return video.copy_(y) if inplace else y
        # Non-pointwise noises compile on CUDA (or with "always") only: on CPU their compile
        # takes 10-25 s at 720p for a modest gain.
        fn = maybe_compiled(kernel, video.device, 0) if compilable else kernel
        fp, per = _flat_frame_params(params, B, n)
        return apply_to_chosen(video, params, inplace, lambda: (lambda sel, part: fn(sel, part, p)), fp,
                               work_bytes=work_bytes, channelwise=channelwise, per_frame=per)

    return register_noise(name, family=family, description=description, sample=sample, apply=apply,
                          defaults=defaults, frame_mode=frame_mode, severities=severities,
                          pointwise=pointwise, work_bytes=work_bytes, channelwise=channelwise, **extras)


# ----------------------------------------------------------------------------- dispatcher


def _check_video(video) -> None:
    if not isinstance(video, torch.Tensor):
        raise TypeError(f"video must be a torch.Tensor of shape [T, C, H, W] or [B, T, C, H, W], "
                        f"got {type(video).__name__}")
    if video.dtype != torch.uint8 and not video.is_floating_point():
        raise TypeError(f"video must be uint8 or floating point on the 0..255 scale, got {video.dtype}")
    if video.dim() not in (4, 5):
        raise ValueError(
            f"video must have shape [T, C, H, W] or [B, T, C, H, W], got {video.dim()} dims {list(video.shape)}")
    if video.shape[-3] != 3:
        raise ValueError(f"video must have 3 (RGB) channels in dim -3, got {video.shape[-3]} "
                         f"(shape {list(video.shape)}; expected [T, 3, H, W] or [B, T, 3, H, W])")


def _check_writable(video: torch.Tensor) -> None:
    """``inplace=True`` needs every element of ``video`` at its own address, as torch's in-place ops do."""
    overlap = any(st == 0 and n > 1 for st, n in zip(video.stride(), video.shape))
    if not overlap and video.numel() > 1:
        try:
            overlap = torch._C._debug_has_internal_overlap(video) == 1  # 1: yes, 2: too hard to tell
        except (AttributeError, RuntimeError):
            pass
    if overlap:
        raise ValueError(f"inplace=True needs a video whose elements do not share memory (an expanded or "
                         f"overlapping view, strides {list(video.stride())}); pass inplace=False or a .clone()")


def _check_ratio(ratio) -> float:
    if isinstance(ratio, bool) or not isinstance(ratio, numbers.Real):
        if isinstance(ratio, torch.Tensor) and ratio.numel() == 1 and ratio.dtype.is_floating_point:
            ratio = float(ratio)
        else:
            raise TypeError(f"ratio must be a number in [0, 1], got {type(ratio).__name__}")
    ratio = float(ratio)
    if math.isnan(ratio) or not 0.0 <= ratio <= 1.0:
        raise ValueError(f"ratio must be in [0, 1], got {ratio}")
    return ratio


def _resolve_params(spec: NoiseSpec, severity, params: Mapping) -> dict:
    unknown = sorted(set(params) - set(spec.defaults))
    if unknown:
        valid = ", ".join(spec.defaults) or "none"
        raise TypeError(f"unexpected parameter {unknown[0]!r} for noise {spec.name!r}; valid parameters: {valid}")
    p = dict(spec.defaults)
    if severity is not None:
        if isinstance(severity, bool) or not isinstance(severity, numbers.Integral) or not 1 <= severity <= 5:
            raise ValueError(f"severity must be None or an int in 1..5, got {severity!r}")
        severity = int(severity)
        if spec.severities is None:
            raise ValueError(f"noise {spec.name!r} has no severity table; pass severity=None")
        p.update(spec.severities[severity - 1])
    p.update(params)
    return p


# The float32 matmul backends whose precision a user may lower (TF32 on CUDA, bf16 through
# oneDNN on CPUs with AMX/AVX512-BF16): our resizes and blurs are matrix products.
_MATMUL_BACKENDS = ("cuda", "mkldnn")


def _effective_precision(backend) -> str:
    v = getattr(backend, "fp32_precision", "ieee")
    if v == "none":  # inherits the global setting
        v = getattr(torch.backends, "fp32_precision", "none")
    return "ieee" if v == "none" else v


@contextlib.contextmanager
def exact_fp32_matmul():
    """Full float32 matrix products while a noise runs, the caller's setting restored after.

    ``torch.set_float32_matmul_precision("high")`` (TF32 on CUDA, common in training and in
    VLM scripts) or ``"medium"`` (bf16 on some CPUs) would change the GEMM-based noises (the
    Toeplitz blurs, the bicubic resizes) by up to several levels: a corruption would then depend
    on a global switch and differ between machines. Only backends not already exact are touched.
    """
    if torch.compiler.is_compiling():
        yield
        return
    _enter_exact_matmul()
    try:
        yield
    finally:
        _leave_exact_matmul()


# The switch is process-wide: threads calling ``corrupt`` at once share one switch, set by the
# first to enter and put back by the last to leave (a thread leaving early must not lower the
# precision under another that is still inside).
_MATMUL_LOCK = threading.Lock()
_matmul_users = 0
_matmul_saved: list = []


def _enter_exact_matmul() -> None:
    global _matmul_users
    with _MATMUL_LOCK:
        if _matmul_users == 0:
            saved = []
            try:
                for name in _MATMUL_BACKENDS:
                    backend = getattr(getattr(torch.backends, name, None), "matmul", None)
                    if (backend is not None and hasattr(backend, "fp32_precision")
                            and _effective_precision(backend) != "ieee"):
                        saved.append((backend, backend.fp32_precision))
                        backend.fp32_precision = "ieee"
                if not saved and not hasattr(torch.backends.cuda.matmul, "fp32_precision"):  # torch < 2.9
                    prev = torch.get_float32_matmul_precision()
                    if prev != "highest":
                        saved.append((None, prev))
                        torch.set_float32_matmul_precision("highest")
            except BaseException:
                _restore_matmul(saved)
                raise
            _matmul_saved[:] = saved
        _matmul_users += 1


def _leave_exact_matmul() -> None:
    global _matmul_users
    with _MATMUL_LOCK:
        _matmul_users -= 1
        if _matmul_users == 0:
            _restore_matmul(_matmul_saved)
            _matmul_saved.clear()


def _restore_matmul(saved) -> None:
    for backend, v in reversed(saved):
        if backend is None:
            torch.set_float32_matmul_precision(v)
        else:
            backend.fp32_precision = v


@contextlib.contextmanager
def _noise_context(device: torch.device):
    """What every noise runs under: full float32 matmuls, no autograd, and no autocast.

    A noise is a pure function of its seed: inside a caller's ``torch.autocast`` region its
    convolutions and products would run in bf16/fp16 (other values, and out= dtype errors),
    and with autograd on, in-place steps on saved tensors would fail. The output carries no
    gradient.
    """
    with contextlib.ExitStack() as stack:
        stack.enter_context(exact_fp32_matmul())
        stack.enter_context(torch.no_grad())
        if not torch.compiler.is_compiling():
            try:
                stack.enter_context(torch.autocast(device_type=device.type, enabled=False))
            except RuntimeError:  # a device type without autocast: nothing to switch off
                pass
        yield


def _fold(video: torch.Tensor):
    return (video.unsqueeze(0), True) if video.dim() == 4 else (video, False)


def sample_params(video: torch.Tensor, name: str, ratio: float, *, seed=None, generator=None,
                  severity=None, **params) -> dict:
    """Draw the params ``corrupt`` would use (validating like ``corrupt``), without applying them."""
    spec, v5, _, ratio, p = _prepare(video, name, ratio, severity, params, check_finite=False)
    seeds, host_seeds = rng.seeds_and_host(v5.shape[0], seed, generator, v5.device)
    ctx = Context(tuple(v5.shape), v5.device, seeds, ratio, host_seeds)
    with _noise_context(v5.device):
        return spec.sample(ctx, **p)


def apply_params(video: torch.Tensor, name: str, params: Mapping, *, severity=None, inplace: bool = False,
                 **kw) -> torch.Tensor:
    """Replay: apply previously drawn ``params`` (from ``sample_params`` or ``return_params=True``).

    ``params`` hold what was drawn, not the settings it was drawn with: pass the same
    ``severity`` and parameter overrides as the call that drew them (a replay without them
    applies the reference parameters to the drawn frames and fields).
    """
    spec, v5, squeeze, _, p = _prepare(video, name, 0.0, severity, kw, check_finite=False, inplace=inplace)
    _check_params(params, v5)
    with _noise_context(v5.device):
        out = _apply(spec, v5, params, inplace, p)
    return out[0] if squeeze else out


def _apply(spec: NoiseSpec, v5: torch.Tensor, params: Mapping, inplace: bool, p: Mapping) -> torch.Tensor:
    if v5.numel() == 0:  # no pixel to change (B, T, H or W is 0)
        return v5 if inplace else v5.clone()
    return spec.apply(v5, params, inplace=inplace, **p)


def _check_params(params, v5: torch.Tensor) -> None:
    """``params`` must be a mapping drawn for a batch of ``v5``'s B and T (the keys every noise has)."""
    if not isinstance(params, Mapping):
        raise TypeError(f"params must be the dict corrupt(..., return_params=True) returned, got {type(params).__name__}")
    B, T = v5.shape[:2]
    for key in ("seed", "frames", "frame_idx"):
        if not isinstance(params.get(key), torch.Tensor):
            raise ValueError(f"params lack the tensor {key!r}: pass the dict corrupt(..., return_params=True) returned")
    frames = params["frames"]
    if params["seed"].shape != (B,) or frames.shape != (B, T) or params["frame_idx"].dim() != 2 \
            or params["frame_idx"].shape[0] != B:
        raise ValueError(f"params were drawn for a batch of {list(frames.shape)} [B, T] clips, "
                         f"the video has [B, T] = [{B}, {T}]")


def _prepare(video, name, ratio, severity, params, check_finite, inplace=False):
    _check_video(video)
    spec = get_spec(name)
    ratio = _check_ratio(ratio)
    p = _resolve_params(spec, severity, params)
    if inplace:
        _check_writable(video)
    # On the CPU only: on an accelerator the test would cost a host sync on every call.
    if (check_finite and video.device.type == "cpu" and video.is_floating_point() and video.numel()
            and not bool(torch.isfinite(video).all())):
        raise ValueError("video contains NaN or infinite values; expected finite values on the 0..255 scale")
    v5, squeeze = _fold(video)
    return spec, v5, squeeze, ratio, p


def corrupt(video: torch.Tensor, name: str, ratio: float, *, seed=None, generator: torch.Generator | None = None,
            severity: int | None = None, inplace: bool = False, return_params: bool = False, **params):
    """Corrupt a clip or a batch of clips with one noise.

    Args:
        video: ``[T, C, H, W]`` or ``[B, T, C, H, W]``, C = 3 (RGB), uint8 or floating
            point on the 0..255 scale, any device.
        name: a registered noise (``list_noises()``).
        ratio: in [0, 1]; for most noises ``int(T * ratio)`` frames per clip are
            corrupted (``NOISES[name].frame_mode`` says when it means otherwise).
        seed: int (clip ``i`` of the batch gets a seed derived from it and ``i``)
            or an int64 ``[B]`` tensor of per-clip seeds.
        generator: a ``torch.Generator`` to draw the ``[B]`` clip seeds from.
        severity: None for the reference's parameters, or 1..5.
        inplace: write into ``video`` instead of a new tensor.
        return_params: also return the drawn params (replay with ``apply_params``).
        **params: overrides of the noise's parameters (``NOISES[name].defaults``).

    Returns:
        A tensor of the input's shape, dtype and device (and the params when asked).
        uint8 output is rounded to nearest and saturated; float output is clamped
        to 0..255 and not rounded.

    Raises:
        TypeError / ValueError naming the bad argument.

    Example:
        >>> import torch, nrvl.kernels as K
        >>> clip = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8)
        >>> out = K.corrupt(clip, "gaussian", 0.6, seed=0)
        >>> int((out != clip).flatten(1).any(1).sum())
        4
    """
    spec, v5, squeeze, ratio, p = _prepare(video, name, ratio, severity, params, check_finite=True, inplace=inplace)
    seeds, host_seeds = rng.seeds_and_host(v5.shape[0], seed, generator, v5.device)
    ctx = Context(tuple(v5.shape), v5.device, seeds, ratio, host_seeds)
    with _noise_context(v5.device):
        drawn = spec.sample(ctx, **p)
        out = _apply(spec, v5, drawn, inplace, p)
    if squeeze:
        out = out[0]
    return (out, drawn) if return_params else out
