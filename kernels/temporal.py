"""Temporal family: frame_drop, frame_replace, frame_repeat, temporal_jitter, other_video.

These noises move, repeat or blank whole frames. Every one of them is, per
clip, a *frame map*: output frame ``t`` is input frame ``src[t]`` (of the same
clip, or of a donor clip), or black where ``blank[t]``. ``sample`` draws the
map from the counter-based hash; ``apply`` is one row gather over the folded
``[B*T, C*H*W]`` stack (and a multiply by a per-frame 0/1 to blank), so
it is batched, has no Python loop over frames or clips, never syncs with the
host, keeps the dtype, and leaves the frames it does not touch bit-identical.

Per-clip permutations and selections are argsorts of per-frame hashes, so a
clip's result depends only on its seed. When the number of chosen frames
varies per clip (temporal_jitter), a frame is chosen when its rank in the hash
order is below the clip's count (``rank < n[b]``), which needs no host sync.

How ``ratio`` is used follows the reference (``reference/nrvl-noises.md`` 2.3):

* frame_drop, frame_replace, other_video: ``int(T*ratio)`` frames per clip;
* frame_repeat: ``int(T*(1-ratio))`` kept frames (frame 0 alone when that is 0);
* temporal_jitter: ``int(T*ratio*u)`` shuffled and ``int(T*(1-ratio*u))`` blanked
  frames, ``u ~ U(0, 1)`` per clip (the reference's inverted severity); at
  ``ratio == 0`` nothing (the reference's function would blank every frame).

None of the five has a severity table: ``ratio`` is their only strength, so
``severity=`` raises.
"""
from __future__ import annotations

import math
import weakref
from typing import Mapping

import torch
import torch.nn.functional as F

from . import random as rng
from .core import Context, base_params, frame_count, from_work, to_work
from .registry import register_noise

__all__ = ["frame_ranks", "shuffle_map", "nearest_anchor_map", "remap_frames"]

_FAMILY = "temporal"


# ----------------------------------------------------------------------------- shared pieces


def frame_ranks(seeds: torch.Tensor, T: int, stream: str, *, key: torch.Tensor | None = None) -> torch.Tensor:
    """Each frame's rank in a random per-clip order: int64 ``[B, T]``, a permutation of ``0..T-1``.

    The order is the order of the frames' hashes under ``stream``, so with the
    stream ``"frames"`` the frames of rank ``< n`` are exactly
    ``core.select_frames(seeds, T, n)``. ``key`` may give ``rng.keys(seeds, stream)``
    already made (e.g. by ``Context.keys``, on the host).
    """
    B = seeds.shape[0]
    t = torch.arange(T, device=seeds.device, dtype=torch.int32)
    key = rng.keys(seeds, stream) if key is None else key
    h = rng.bits(key[:, None, :], t[None, :])  # distinct within a clip
    order = torch.argsort(h, dim=1)
    ar = torch.arange(T, device=seeds.device, dtype=torch.int64).expand(B, T)
    return torch.empty(B, T, dtype=torch.int64, device=seeds.device).scatter_(1, order, ar)


def shuffle_map(chosen: torch.Tensor, seeds: torch.Tensor, stream: str, *,
                key: torch.Tensor | None = None) -> torch.Tensor:
    """A uniformly random permutation of each clip's chosen frames among themselves.

    Args:
        chosen: bool ``[B, T]``, the frames to permute (any number per clip).
        seeds: int64 ``[B]`` clip seeds.
        stream: the permutation's random stream.
        key: ``rng.keys(seeds, stream)`` when already made (as in ``frame_ranks``).

    Returns:
        int64 ``[B, T]`` frame map ``src``: output frame ``t`` is input frame
        ``src[b, t]``; ``src[b, t] = t`` where ``chosen`` is False. The identity
        is a possible outcome, as with the reference's ``torch.randperm``.
    """
    B, T = chosen.shape
    t = torch.arange(T, device=chosen.device, dtype=torch.int64)
    key = rng.keys(seeds, stream) if key is None else key
    h = rng.bits(key[:, None, :], t[None, :].to(torch.int32)).to(torch.int64)
    # Chosen frames first in both lists; the rest after them, in time order, so they map to themselves.
    positions = torch.argsort(torch.where(chosen, t, T + t), dim=1)               # chosen, in time order
    sources = torch.argsort(torch.where(chosen, h, (1 << 32) + t), dim=1)        # chosen, in hash order
    return torch.empty_like(positions).scatter_(1, positions, sources)


def _ranks(ctx: Context, T: int, stream: str) -> torch.Tensor:
    """``frame_ranks(ctx.seeds, T, stream)``, hashed on the host for small draws it has the seeds of."""
    if ctx.host_seeds and ctx.B * (2 + 2 * T) <= rng.HOST_HASH_BUDGET:
        rows = []
        for s in ctx.host_seeds:
            rank = [0] * T
            for r, t in enumerate(rng.order_host(s, stream, T)):
                rank[t] = r
            rows.append(rank)
        return rng.host_to_device(rows, torch.int64, ctx.device).reshape(ctx.B, T)
    return frame_ranks(ctx.seeds, T, stream, key=ctx.keys(stream))


def _shuffle(ctx: Context, chosen: torch.Tensor, stream: str) -> torch.Tensor:
    """``shuffle_map(chosen, ctx.seeds, stream)``, its key hashed on the host when it can be."""
    return shuffle_map(chosen, ctx.seeds, stream, key=ctx.keys(stream))


def nearest_anchor_map(kept: torch.Tensor) -> torch.Tensor:
    """Each frame's nearest kept frame (ties to the earlier one): int64 ``[B, T]``.

    ``kept`` is bool ``[B, T]`` with at least one True per clip. Linear in T: the
    previous and the next kept frame come from running max/min scans.
    """
    B, T = kept.shape
    t = torch.arange(T, device=kept.device, dtype=torch.int64).expand(B, T)
    big = 2 * T + 1
    prev = torch.cummax(torch.where(kept, t, -big), dim=1).values
    nxt = torch.flip(torch.cummin(torch.flip(torch.where(kept, t, 2 * big), [1]), dim=1).values, [1])
    return torch.where(t - prev <= nxt - t, prev, nxt)


def remap_frames(video: torch.Tensor, src: torch.Tensor | None = None, blank: torch.Tensor | None = None,
                 *, inplace: bool = False) -> torch.Tensor:
    """Output frame ``t`` of clip ``b`` = input frame ``src[b, t]`` of clip ``b``, black where ``blank``.

    Args:
        video: ``[B, T, C, H, W]``, uint8 or floating point (finite), any device.
        src: int64 ``[B, T]`` frame map, or None for the identity.
        blank: bool ``[B, T]``, frames set to 0 (after the remap), or None.
        inplace: write the result into ``video``.

    Returns:
        The remapped clip (``video`` itself when ``inplace``). Frames mapped to
        themselves and not blanked are bit-identical.
    """
    B, T = video.shape[:2]
    if src is None:
        if blank is None:
            return video if inplace else video.clone()
        return _blank_frames(video, blank, inplace=inplace)
    else:
        flat = (src + T * torch.arange(B, device=video.device)[:, None]).reshape(-1)
        out = _gather_rows(_rows(video), flat).reshape(video.shape)
        if inplace:
            out = video.copy_(out)
    if blank is not None:
        # A multiply by a per-frame 0/1 is one vectorised pass (x*1 is exact for uint8 and
        # finite floats); a broadcast masked_fill_ is several times slower on CPU.
        keep = (~blank).to(video.dtype).reshape(B, T, 1, 1, 1)
        out.mul_(keep)
    return out


def _rows(video: torch.Tensor) -> torch.Tensor:
    """``[B, T, ...]`` folded to one row per frame, ``[B*T, C*H*W]`` (a view when contiguous)."""
    return video.reshape(video.shape[0] * video.shape[1], math.prod(video.shape[2:]))


def _wide(rows: torch.Tensor) -> torch.Tensor:
    """The same bytes viewed as the widest integer type that fits (int64 for most frames).

    Moving frames is a pure copy, and torch's indexing kernels move one element per
    step: on the CPU, gathering 720p uint8 rows as int64 is ~4x faster than as uint8,
    and advanced indexing stays fast with two threads on a busy machine, where
    ``index_select``'s per-row split waits on the slower thread (bench: 17 vs 100 ms).
    """
    nbytes = rows.shape[1] * rows.element_size()
    for wide in (torch.int64, torch.int32, torch.int16):
        size = torch.empty((), dtype=wide).element_size()
        if (size > rows.element_size() and nbytes % size == 0 and rows.is_contiguous()
                and (rows.storage_offset() * rows.element_size()) % size == 0):
            return rows.view(torch.uint8).view(wide) if rows.dtype != torch.uint8 else rows.view(wide)
    return rows


def _gather_rows(rows: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``rows[index]`` (int64 ``[M]``) as a new ``[M, row]`` tensor of ``rows``' dtype, bit for bit."""
    wide = _wide(rows)
    out = wide[index]
    return out.view(torch.uint8).view(rows.dtype) if wide.dtype != rows.dtype else out


def _put_rows(rows: torch.Tensor, index: torch.Tensor, values: torch.Tensor) -> None:
    """In place: ``rows[index] = values`` (``values`` ``[M, row]`` of ``rows``' dtype), bit for bit."""
    wide, vals = _wide(rows), _wide(values.contiguous())
    if wide.dtype != vals.dtype:
        wide, vals = rows, values
    wide[index] = vals


def _blank_frames(video: torch.Tensor, frames: torch.Tensor, *, inplace: bool) -> torch.Tensor:
    """``video`` with the frames where ``frames`` (bool ``[B, T]``) is True set to 0."""
    keep = (~frames).to(video.dtype).reshape(*frames.shape, 1, 1, 1)
    # One pass that allocates the output itself (a clone, then a scatter of zeros, is two).
    return video.mul_(keep) if inplace else video * keep


def _write_frames(out: torch.Tensor, frame_idx: torch.Tensor, frames: torch.Tensor) -> None:
    """In place: ``out[b, frame_idx[b, j]] = frames[b*n + j]``."""
    B, T = out.shape[:2]
    if frame_idx.numel() == 0:
        return
    if out.is_contiguous():  # row copies on the folded stack: the fast path
        rows = out.view(B * T, math.prod(out.shape[2:]))
        flat = (frame_idx + T * torch.arange(B, device=out.device)[:, None]).reshape(-1)
        _put_rows(rows, flat, frames.reshape(flat.shape[0], rows.shape[1]))
    else:  # inplace on a strided video
        b = torch.arange(B, device=out.device)[:, None]
        out[b, frame_idx] = frames.reshape(*frame_idx.shape, *out.shape[2:])


def _touched_idx(touched: torch.Tensor, count: int) -> torch.Tensor:
    """The first ``count`` touched frames of each clip, sorted: int64 ``[B, count]``.

    ``count`` must be the number of True per clip (the same for every clip).
    """
    B, T = touched.shape
    t = torch.arange(T, device=touched.device, dtype=torch.int64)
    return torch.sort(torch.where(touched, t, T + t), dim=1).values[:, :count]


# ----------------------------------------------------------------------------- frame_drop


def _frame_drop_sample(ctx: Context) -> dict:
    """``seed`` int64 ``[B]``; ``frames`` bool ``[B, T]`` (blanked); ``frame_idx`` int64 ``[B, n]``."""
    return base_params(ctx, "selected")


def _frame_drop_apply(video: torch.Tensor, params: Mapping, *, inplace: bool = False) -> torch.Tensor:
    return _blank_frames(video, params["frames"].to(video.device), inplace=inplace)


register_noise(
    "frame_drop", family=_FAMILY, temporal=True, sample=_frame_drop_sample, apply=_frame_drop_apply,
    description="int(T*ratio) frames set to black (blanked, not removed)",
)


# ----------------------------------------------------------------------------- frame_replace


def _frame_replace_sample(ctx: Context) -> dict:
    """Base params plus ``src``: int64 ``[B, T]``, the selected frames permuted among themselves."""
    params = base_params(ctx, "selected")  # stream "frames": the same frames as the other noises
    params["src"] = _shuffle(ctx, params["frames"], "frame_replace/perm")
    return params


def _remap_apply(video: torch.Tensor, params: Mapping, *, inplace: bool = False) -> torch.Tensor:
    return remap_frames(video, params["src"].to(video.device), None, inplace=inplace)


register_noise(
    "frame_replace", family=_FAMILY, temporal=True, sample=_frame_replace_sample, apply=_remap_apply,
    description="int(T*ratio) frames shuffled among their own positions (mis-ordering)",
)


# ----------------------------------------------------------------------------- frame_repeat


def _frame_repeat_sample(ctx: Context) -> dict:
    """``seed``; ``kept`` bool ``[B, T]`` (the anchors); ``src`` int64 ``[B, T]`` (each frame's
    nearest anchor, ties to the earlier); ``frames`` bool ``[B, T]`` = not kept;
    ``frame_idx`` int64 ``[B, T - max(k, 1)]``, ``k = int(T*(1-ratio))``.
    """
    B, T = ctx.B, ctx.T
    k = frame_count(T, 1.0 - ctx.ratio)  # Python float arithmetic: T=8 at 0.9 keeps 0
    if k > 0:
        kept = _ranks(ctx, T, "frame_repeat/keep") < k
    else:  # the reference falls back to keeping frame 0 alone
        kept = torch.zeros(B, T, dtype=torch.bool, device=ctx.device)
        kept[:, :1] = True
    n_kept = min(max(k, 1), T)
    src = nearest_anchor_map(kept) if T else torch.zeros(B, 0, dtype=torch.int64, device=ctx.device)
    return {"seed": ctx.seeds, "kept": kept, "src": src, "frames": ~kept,
            "frame_idx": _touched_idx(~kept, T - n_kept)}


register_noise(
    "frame_repeat", family=_FAMILY, temporal=True, sample=_frame_repeat_sample, apply=_remap_apply,
    frame_mode="custom",
    description="keeps int(T*(1-ratio)) random frames (frame 0 alone when that is 0); every other frame "
                "repeats the nearest kept one",
)


# ----------------------------------------------------------------------------- temporal_jitter


def _temporal_jitter_sample(ctx: Context) -> dict:
    """The reference's composition, batched with per-clip counts.

    Returns:
        ``seed`` int64 ``[B]``; ``u`` float64 ``[B]`` ~ U(0, 1);
        ``n_replace`` int64 ``[B]`` = int(T*ratio*u); ``n_drop`` int64 ``[B]`` = int(T*(1-ratio*u));
        ``src`` int64 ``[B, T]`` (the shuffle); ``blank`` bool ``[B, T]`` (the drop);
        ``frames`` bool ``[B, T]``: frames shuffled or blanked; ``n_frames`` int64 ``[B]``: their count;
        ``frame_idx`` int64 ``[B, T]``: the ``n_frames`` touched frames sorted, then padded with
        ``T`` (out of range on purpose: the count varies per clip, so the row is padded rather
        than ragged; use ``frames`` for a mask).
    """
    T = ctx.T
    zero = torch.zeros((), dtype=torch.int32, device=ctx.device)
    u = rng.uniform(ctx.keys("temporal_jitter/u"), zero, torch.float64)
    replace_ratio = ctx.ratio * u          # float64, as the reference's Python floats
    n_replace = torch.floor(T * replace_ratio).to(torch.int64)
    n_drop = torch.floor(T * (1.0 - replace_ratio)).to(torch.int64)
    if ctx.ratio == 0.0:
        # The reference's function blanks the whole clip at ratio 0, but its pipeline never calls
        # a noise at ratio 0 (a clean run); here too ratio 0 means a clean clip (docs/deviations).
        n_drop = torch.zeros_like(n_drop)
    shuffled = _ranks(ctx, T, "temporal_jitter/replace") < n_replace[:, None]
    src = _shuffle(ctx, shuffled, "temporal_jitter/perm")
    blank = _ranks(ctx, T, "temporal_jitter/drop") < n_drop[:, None]
    touched = shuffled | blank
    t = torch.arange(T, device=ctx.device, dtype=torch.int64)
    n_frames = touched.sum(1)
    frame_idx = torch.sort(torch.where(touched, t, T + t), dim=1).values
    frame_idx = torch.where(t[None, :] < n_frames[:, None], frame_idx, T)
    return {"seed": ctx.seeds, "u": u, "n_replace": n_replace, "n_drop": n_drop, "src": src,
            "blank": blank, "frames": touched, "n_frames": n_frames, "frame_idx": frame_idx}


def _temporal_jitter_apply(video: torch.Tensor, params: Mapping, *, inplace: bool = False) -> torch.Tensor:
    return remap_frames(video, params["src"].to(video.device), params["blank"].to(video.device),
                        inplace=inplace)


register_noise(
    "temporal_jitter", family=_FAMILY, temporal=True, sample=_temporal_jitter_sample,
    apply=_temporal_jitter_apply, frame_mode="custom",
    description="u~U(0,1): shuffles int(T*ratio*u) frames, then blanks int(T*(1-ratio*u)) "
                "(inverted severity, as the reference)",
)


# ----------------------------------------------------------------------------- other_video


def _check_donor(donor, B: int) -> torch.Tensor | None:
    """The donor as ``[1 | B, T', 3, H', W']``, or None; raises on a bad one."""
    if donor is None:
        return None
    if not isinstance(donor, torch.Tensor):
        raise TypeError(f"donor must be a torch.Tensor [T', 3, H', W'] or [B, T', 3, H', W'], "
                        f"got {type(donor).__name__}")
    if donor.dtype != torch.uint8 and not donor.is_floating_point():
        raise TypeError(f"donor must be uint8 or floating point on the 0..255 scale, got {donor.dtype}")
    if donor.dim() == 4:
        donor = donor.unsqueeze(0)
    if donor.dim() != 5 or donor.shape[2] != 3:
        raise ValueError(f"donor must have shape [T', 3, H', W'] or [B, T', 3, H', W'], got {list(donor.shape)}")
    if donor.shape[0] not in (1, B):
        raise ValueError(f"donor's batch size must be 1 or the video's ({B}), got {donor.shape[0]}")
    if donor.shape[1] < 1 or donor.shape[3] < 1 or donor.shape[4] < 1:
        raise ValueError(f"donor must have at least one non-empty frame, got shape {list(donor.shape)}")
    return donor


def _other_video_sample(ctx: Context, *, donor=None) -> dict:
    """Base params plus, without a ``donor`` tensor, ``donor_idx``: int64 ``[B]``, the batch clip
    each clip takes its frames from (uniform over the other clips, never itself).
    """
    _check_donor(donor, ctx.B)
    params = base_params(ctx, "selected")
    if donor is None:
        if ctx.B == 1:
            raise ValueError("other_video needs a donor clip: pass donor= (a [T', 3, H', W'] or "
                             "[B, T', 3, H', W'] tensor) or a batch of B > 1 clips")
        zero = torch.zeros((), dtype=torch.int32, device=ctx.device)
        offset = rng.randint(ctx.keys("other_video/donor"), zero, 1, max(ctx.B - 1, 1))
        params["donor_idx"] = (torch.arange(ctx.B, device=ctx.device) + offset) % max(ctx.B, 1)
    return params


def _other_video_apply(video: torch.Tensor, params: Mapping, *, inplace: bool = False,
                       donor=None) -> torch.Tensor:
    B, T, C, H, W = video.shape
    given = donor
    donor = _check_donor(donor, B)
    frames = params["frames"].to(video.device)
    if donor is None:
        if "donor_idx" not in params:
            raise ValueError("other_video: these params were drawn with a donor tensor; pass the same donor=")
        # Frame t of clip b comes from frame t of clip donor_idx[b]: one row gather on the folded stack.
        t = torch.arange(T, device=video.device)
        clip = torch.where(frames, params["donor_idx"].to(video.device)[:, None],
                           torch.arange(B, device=video.device)[:, None])
        flat = (clip * T + t).reshape(-1)
        out = _gather_rows(_rows(video), flat).reshape(video.shape)
        return video.copy_(out) if inplace else out

    idx = params["frame_idx"].to(video.device)  # [B, n]
    n = idx.shape[1]
    if B * n == 0 or C * H * W == 0:
        return video if inplace else video.clone(memory_format=torch.contiguous_format)
    donor = donor.to(video.device)
    Bd, Td, _, Hd, Wd = donor.shape
    bd = torch.arange(B, device=video.device)[:, None] if Bd == B else torch.zeros(B, 1, dtype=torch.int64,
                                                                                   device=video.device)
    rows = (bd * Td + idx % Td).reshape(-1)  # the same frame index, wrapped round the donor
    fitted = _fitted_donor(given, donor, H, W, video.dtype) if (Hd, Wd) != (H, W) else None
    if fitted is not None and not inplace and video.device.type == "cpu":
        return _compose_frames(video, idx, fitted, rows)
    out = video if inplace else video.clone(memory_format=torch.contiguous_format)
    if fitted is not None:  # the donor resized once, then only row copies per call
        _write_frames(out, idx, _gather_rows(fitted, rows))
        return out
    picked = _gather_rows(_rows(donor), rows).reshape(B * n, C, Hd, Wd)
    _write_frames(out, idx, _fit(picked, H, W, video.dtype))
    return out


def _compose_frames(video: torch.Tensor, idx: torch.Tensor, source: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """A new contiguous clip: frame ``idx[b, j]`` of clip ``b`` is ``source[rows[b*n + j]]``, the others ``video``'s.

    CPU only (the indices are read on the host, which is no device sync there): each output
    frame is written once, by one memcpy, where a clone then a scatter writes the chosen
    frames twice and a gather into a temporary a third time (16f 720p: 25 -> 10 ms).
    """
    B, T = video.shape[:2]
    out = torch.empty(video.shape, dtype=video.dtype)
    frames = out.view(B * T, -1)
    taken = dict(zip((idx + T * torch.arange(B)[:, None]).reshape(-1).tolist(), rows.tolist()))
    for b in range(B):
        for t in range(T):
            r = taken.get(b * T + t)
            if r is None:
                out[b, t].copy_(video[b, t])
            else:
                frames[b * T + t].copy_(source[r])
    return out


# The last donor resized to the last video size: ``(weakref to the donor as passed, its version
# counter, shapes/dtypes/device, [Bd*Td, 3*H*W] rows)``. Evaluation passes one donor for a whole
# run and a video's questions share its size, so the resize (most of the cost) happens once.
# One entry only; dropped when the donor is freed; missed when the donor was changed in place.
_FITTED: dict = {}


def _fitted_donor(given: torch.Tensor, donor: torch.Tensor, H: int, W: int, dtype) -> torch.Tensor | None:
    """Every donor frame fitted to ``H x W`` (``_fit``, frame by frame), as ``[Bd*Td, 3*H*W]`` rows, cached.

    None when the donor cannot be cached (it needs grad, or is an inference tensor without a
    version counter): the caller then resizes just the frames it needs.
    """
    try:
        version = given._version
    except RuntimeError:  # inference-mode tensors do not count their in-place changes
        return None
    if given.requires_grad:
        return None
    key = (tuple(given.shape), given.dtype, given.device, donor.device, H, W, dtype)
    hit = _FITTED.get("last")
    if hit is not None and hit[0]() is given and hit[1] == version and hit[2] == key:
        return hit[3]
    _FITTED.pop("last", None)  # free the old entry before making the new one
    Bd, Td, C, Hd, Wd = donor.shape
    fitted = _rows(_fit(_rows(donor).view(Bd * Td, C, Hd, Wd), H, W, dtype).unsqueeze(0))

    def forget(ref):
        if _FITTED.get("last", (None,))[0] is ref:
            _FITTED.pop("last", None)

    _FITTED["last"] = (weakref.ref(given, forget), version, key, fitted)
    return fitted


def _fit(frames: torch.Tensor, H: int, W: int, dtype: torch.dtype) -> torch.Tensor:
    """Donor frames ``[M, 3, H', W']`` resized (bilinear, antialiased) to ``H x W`` and cast to ``dtype``."""
    if frames.shape[-2:] == (H, W):
        return frames if frames.dtype == dtype else from_work(to_work(frames), dtype)
    if frames.dtype == dtype == torch.uint8 and frames.device.type == "cpu" and H * W > 1:
        # torch's uint8 kernel (fixed point, rounds and saturates) is ~15x faster than float32
        # on the CPU; it differs from the float path by at most 1 level. (It fails an internal
        # assert for a 1x1 output, which takes the float path.)
        return F.interpolate(frames, size=(H, W), mode="bilinear", align_corners=False, antialias=True)
    y = F.interpolate(to_work(frames), size=(H, W), mode="bilinear", align_corners=False, antialias=True)
    return from_work(y, dtype)

register_noise(
    "other_video", family=_FAMILY, temporal=True, sample=_other_video_sample, apply=_other_video_apply,
    defaults={"donor": None}, needs_donor=True,
    description="int(T*ratio) frames replaced by the same-index frames of a donor clip "
                "(donor=, else another batch clip), resized",
)
