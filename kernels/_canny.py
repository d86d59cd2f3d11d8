"""OpenCV-exact Canny edges, batched, in torch integer and bool ops (used by ``edge_sawtooth``).

``canny(gray, low, high)`` is ``cv2.Canny(gray, low, high)`` (aperture 3, L1
gradient) bit for bit, ``_gray_like_opencv`` is ``cv2.cvtColor(.., BGR2GRAY)``
on RGB data, ``_dilate`` is ``cv2.dilate`` with a ``k x k`` box.

Everything is exact integer arithmetic in the narrowest type that holds it
(uint8 gray, int16 gradients, int32 only for the sector tests), so the result is
the same on every device and the temporaries are a few bytes per pixel.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from . import random as rng

__all__ = ["canny"]

_TG22 = 13573  # OpenCV canny: round(tan(22.5 deg) * 2**15)


def _gray_like_opencv(x: torch.Tensor) -> torch.Tensor:
    """uint8 ``[M, H, W]``: ``cv2.cvtColor(frame, COLOR_BGR2GRAY)`` on RGB data, bit-exact.

    The reference passed RGB frames to the BGR conversion, so channel 0 (red) gets
    blue's weight 0.114 and channel 2 (blue) gets red's 0.299. OpenCV's uint8 path
    works in 15-bit fixed point, ``(3735 c0 + 19235 c1 + 9798 c2 + 2**14) >> 15``
    (checked against cv2 4.11 on every sampled colour), on the frame rounded to
    uint8 (float input is clamped to 0..255 and rounded half-to-even first).
    """
    if x.dtype == torch.uint8:
        ch = [x[:, c].to(torch.int32) for c in range(3)]
    else:  # int32 holds every value of the rounded channel exactly
        ch = [x[:, c].clamp(0.0, 255.0).round_().to(torch.int32) for c in range(3)]
    acc = ch[1].mul_(19235)
    acc.add_(ch[0], alpha=3735).add_(ch[2], alpha=9798).add_(16384)
    return acc.bitwise_right_shift_(15).to(torch.uint8)


def _dilate(m: torch.Tensor, k: int) -> torch.Tensor:
    """``cv2.dilate`` with a ``k x k`` box and the default anchor ``(k//2, k//2)`` (zero outside)."""
    if k == 1:
        return m
    a = k // 2
    p = F.pad(m.to(torch.uint8), (a, k - 1 - a, a, k - 1 - a))
    H, W = m.shape[-2:]
    rows = p[..., 0:W].clone()
    for j in range(1, k):
        rows |= p[..., j:j + W]
    out = rows[..., 0:H, :].clone()
    for i in range(1, k):
        out |= rows[..., i:i + H, :]
    return out.view(torch.bool)


def _block_graph(weak: torch.Tensor):
    """The weak pixels as a graph of 2x2 blocks (any two pixels of a 2x2 block are 8-neighbours).

    Returns ``(active, runs, u, v)``: bool ``[M, H2, W2]``, the blocks holding a weak pixel;
    int64 ``[M*H2*W2]``, each block's run (the first block of its row of left-right touching
    blocks: a forest of depth one, which the union-find starts from); and int64 edge lists of
    flat block indices, one per pair of blocks on adjacent block rows whose weak pixels touch
    (down, down-right, down-left; the left-right pairs are the runs).
    """
    M, H, W = weak.shape
    H2, W2 = (H + 1) // 2, (W + 1) // 2
    wp = F.pad(weak.view(torch.uint8), (0, 2 * W2 - W, 0, 2 * H2 - H)).view(torch.bool)
    a00, a01, a10, a11 = wp[:, 0::2, 0::2], wp[:, 0::2, 1::2], wp[:, 1::2, 0::2], wp[:, 1::2, 1::2]
    left, right = a00 | a10, a01 | a11
    top, bottom = a00 | a01, a10 | a11
    active = left | right
    nb = M * H2 * W2
    joined = torch.zeros(M, H2, W2, dtype=torch.bool, device=weak.device)  # block j touches block j-1
    torch.bitwise_and(right[:, :, :-1], left[:, :, 1:], out=joined[:, :, 1:])
    # cummax is ~10x faster on int32 than on int64 on the CPU
    itype = torch.int32 if nb < 2**31 else torch.int64
    index = torch.arange(nb, dtype=itype, device=weak.device).view(M, H2, W2)
    runs = (index * joined.logical_not_()).cummax(dim=-1).values.reshape(-1).to(torch.int64)
    del index, joined
    conn = torch.zeros(3, M, H2, W2, dtype=torch.bool, device=weak.device)
    torch.bitwise_and(bottom[:, :-1], top[:, 1:], out=conn[0, :, :-1])
    torch.bitwise_and(a11[:, :-1, :-1], a00[:, 1:, 1:], out=conn[1, :, :-1, :-1])
    torch.bitwise_and(a10[:, :-1, 1:], a01[:, 1:, :-1], out=conn[2, :, :-1, 1:])
    k = conn.view(-1).nonzero().squeeze(1)  # one host sync
    d = torch.div(k, nb, rounding_mode="floor")
    u = k - d * nb
    step = rng.host_to_device([W2, W2 + 1, W2 - 1], torch.int64, weak.device)
    return active, runs, u, u + step[d]


def _hysteresis(strong: torch.Tensor, weak: torch.Tensor) -> torch.Tensor:
    """Strong pixels plus the weak ones 8-connected to a strong one through weak pixels (exact).

    Connected components of the weak pixels by Shiloach-Vishkin style hooking and
    pointer jumping. The nodes are 2x2 blocks of pixels (the weak pixels of a block are
    all 8-neighbours of each other, so they share a component), which quarters the
    graph before any indexing; blocks touching along a block row start in one tree (a
    ``cummax``), and the edges between block rows come from bool maps of which blocks
    touch. After each round the edges whose ends already share a label are dropped, so
    later rounds only touch the unfinished part. A component is kept when one of its
    pixels touches a strong one. Exactness makes the result the same on every device.
    Host syncs: one ``nonzero`` for the edges, one edge filter per round (the number of
    rounds grows roughly with the log of the longest chain), and the final
    compression's convergence checks.
    """
    M, H, W = weak.shape
    if weak.numel() == 0:
        return strong
    active, f, u, v = _block_graph(weak)
    H2, W2 = active.shape[-2:]
    nb = f.numel()
    # Seeds: weak pixels next to a strong one; a block is seeded when one of its pixels is.
    seed_px = weak & _dilate(strong, 3)
    sp = F.pad(seed_px.view(torch.uint8), (0, 2 * W2 - W, 0, 2 * H2 - H))
    seeded = (sp[:, 0::2, 0::2] | sp[:, 0::2, 1::2] | sp[:, 1::2, 0::2] | sp[:, 1::2, 1::2]).reshape(-1)
    del sp, seed_px
    # Pointers only go to smaller indices, so a tree's root is its minimum. Only roots are
    # hooked, so trees only ever merge: two ends that once share a label stay in one tree,
    # and their edge can be dropped. Labels only decrease and every round changes one
    # (a hook, or a jump of the larger end's label), so the loop ends. (Gathers are
    # index_select: on the CPU ~3x faster than advanced indexing.)
    at = torch.Tensor.index_select
    while u.numel():
        uv = torch.cat([u, v])
        fu, fv = at(f, 0, uv).view(2, -1)
        hi, lo = torch.maximum(fu, fv), torch.minimum(fu, fv)
        # Hook the roots among the larger labels: f[hi] = min(f[hi], lo) where hi is a root;
        # elsewhere the value written is hi itself, a no-op (f[hi] <= hi).
        f.scatter_reduce_(0, hi, hi - (hi - lo) * (at(f, 0, hi) == hi), reduce="amin")
        # Pointer jumping at the ends, twice (duplicate ends write the same value).
        f.scatter_(0, uv, at(f, 0, at(f, 0, at(f, 0, uv))))
        fu, fv = at(f, 0, uv).view(2, -1)
        uv = uv.view(2, -1)[:, fu != fv]
        u, v = uv[0], uv[1]
    while True:  # every component is one tree now: compress it to its root
        g = at(f, 0, f)
        if torch.equal(g, f):
            break
        f = g
    hit = torch.zeros(nb, dtype=torch.uint8, device=weak.device).scatter_reduce(0, f, seeded, reduce="amax")
    keep = (at(hit, 0, f).view(torch.bool) & active.reshape(-1)).view(M, H2, 1, W2, 1)
    keep = keep.expand(M, H2, 2, W2, 2).reshape(M, 2 * H2, 2 * W2)[:, :H, :W]
    return strong | (weak & keep)


def _neg(d: torch.Tensor) -> torch.Tensor:
    """``-1`` where the int16 temporary ``d`` is negative, else ``0``, in place: the sign bit spread,
    one vectorised pass (on the CPU a comparison, ``d < 0``, is ~10x slower)."""
    return d.bitwise_right_shift_(15)


def canny(gray: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """OpenCV's ``cv2.Canny(gray, low, high)`` (aperture 3, L1 gradient), batched: bool ``[M, H, W]``.

    Sobel with replicated borders, ``|dx| + |dy|``, OpenCV's non-maximum
    suppression (its fixed-point 22.5/67.5 degree sectors and its ``>``/``>=``
    tie rules, zero magnitude outside the frame), thresholds ``mag > floor(low)``
    (candidate) and ``> floor(high)`` (strong), and exact hysteresis along
    8-connected candidates (``_hysteresis``).

    Every test is written as the sign of an exact integer difference, and the
    per-pixel choices as bit masks (``-1``/``0``), which on the CPU run as
    vectorised arithmetic where comparisons and ``torch.where`` do not.

    Args:
        gray: ``[M, H, W]`` of integers on 0..255, any dtype (uint8 from
            ``_gray_like_opencv``, or integer-valued floats).
    """
    lo, hi = sorted((math.floor(low), math.floor(high)))  # OpenCV swaps reversed thresholds
    lo, hi = (min(max(t, -1), 2040) for t in (lo, hi))  # 0 <= mag <= 2040: same tests, no int16 overflow
    M, H, W = gray.shape
    # int16 holds every intermediate: smoothed sums <= 1020, gradients in [-1020, 1020], mag <= 2040.
    g = F.pad(gray.to(torch.int16)[:, None], (1, 1, 1, 1), mode="replicate")[:, 0]
    sv = torch.add(g[:, :-2], g[:, 2:]).add_(g[:, 1:-1], alpha=2)  # vertical smoothing, [M, H, W+2]
    dx = torch.sub(sv[..., 2:], sv[..., :-2])
    del sv
    sh = torch.add(g[..., :-2], g[..., 2:]).add_(g[..., 1:-1], alpha=2)  # horizontal smoothing, [M, H+2, W]
    del g
    dy = torch.sub(sh[:, 2:], sh[:, :-2])
    del sh
    other_diag = _neg(dx ^ dy)  # OpenCV's (dx ^ dy) < 0: the gradient's signs differ
    xs, ys = dx.abs_(), dy.abs_()
    del dx, dy
    mp = torch.zeros(M, H + 2, W + 2, dtype=torch.int16, device=gray.device)  # zero magnitude outside
    mag = mp[:, 1:-1, 1:-1]
    torch.add(xs, ys, out=mag)
    # OpenCV: |dy| * 2**15 < |dx| * TG22 -> horizontal; |dy| * 2**15 > |dx| * (TG22 + 2**16) -> vertical.
    # In int32 these are exact (|products| < 2**27); the sign bit of the difference is the test.
    xs32 = xs.to(torch.int32)
    ys32 = ys.to(torch.int32).bitwise_left_shift_(15)
    del xs, ys
    horizontal = (ys32 - xs32 * _TG22).bitwise_right_shift_(31).to(torch.int16)
    vertical = xs32.mul_(_TG22 + 65536).sub_(ys32).bitwise_right_shift_(31).to(torch.int16)
    del xs32, ys32
    # Local maximum along the gradient: > the neighbour behind, >= the one ahead (> both on the diagonals).
    ok_h = _neg(mp[:, 1:-1, :-2] - mag).bitwise_and_(~_neg(mag - mp[:, 1:-1, 2:]))
    ok_v = _neg(mp[:, :-2, 1:-1] - mag).bitwise_and_(~_neg(mag - mp[:, 2:, 1:-1]))
    ok_d1 = _neg(mp[:, :-2, :-2] - mag).bitwise_and_(_neg(mp[:, 2:, 2:] - mag))
    ok_d2 = _neg(mp[:, :-2, 2:] - mag).bitwise_and_(_neg(mp[:, 2:, :-2] - mag))
    ok = ok_d1.bitwise_and_(~other_diag).bitwise_or_(ok_d2.bitwise_and_(other_diag))  # diagonal sectors
    del ok_d2, other_diag
    ok = ok.bitwise_and_(~vertical).bitwise_or_(ok_v.bitwise_and_(vertical))
    ok = ok.bitwise_and_(~horizontal).bitwise_or_(ok_h.bitwise_and_(horizontal))
    del ok_h, ok_v, vertical, horizontal
    cand = ok.bitwise_and_(_neg(lo - mag))
    strong = (cand & _neg(hi - mag)).to(torch.bool)
    cand = cand.to(torch.bool)
    return _hysteresis(strong, cand.logical_and_(~strong))
