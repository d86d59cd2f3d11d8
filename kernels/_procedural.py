"""Procedural pieces shared by the weather and occlusion noises, all batched tensor ops on any device.

* ``conv1d_banded`` / ``separable_blur``: a 1-D correlation along one axis as a
  blocked Toeplitz matrix product. A plain ``conv2d`` with a 1x51 kernel takes
  ~0.6 s per pass on a 7x720x1280 mask on a 2-core CPU; the banded GEMM does the
  same sum through BLAS in a fraction of that, and its cost barely depends on
  the kernel length. Padding is by index, so any frame size works (cv2's
  reflect-101 and scipy's "reflect" both repeat for kernels wider than the frame).
* ``plasma_fractal``: ImageNet-C's diamond-square plasma, one map per row of ``seeds``.
* ``perlin_grid``: the ``noise`` package's ``pnoise2`` evaluated on a pixel grid,
  with its fixed permutation and gradient tables (deterministic, like the reference).
* ``ellipse_masks``: filled, rotated ellipses for many frames at once.
* ``frost_textures``: ice-crystal textures (fern-like dendrites over a plasma haze).

Randomness comes only from ``nrvl.kernels.random`` (keys derived from int64 seeds).
"""
from __future__ import annotations

import math

import torch

from . import random as rng

__all__ = [
    "gaussian_kernel1d", "pad_index", "conv1d_banded", "separable_blur", "plasma_fractal",
    "pnoise2_grid", "perlin_grid", "ellipse_masks", "cv2_fill_axes", "scatter_max", "frost_textures", "next_pow2",
]


def next_pow2(n: int) -> int:
    """The smallest power of two >= ``n`` (1 for ``n <= 1``)."""
    return 1 if n <= 1 else 1 << (int(n) - 1).bit_length()


# ----------------------------------------------------------------------------- separable filters


def gaussian_kernel1d(ksize: int, sigma: float, *, dtype=torch.float32, device=None) -> torch.Tensor:
    """Normalized 1-D Gaussian taps at integer offsets ``-r..r``, ``[ksize]``.

    The same taps as ``cv2.getGaussianKernel`` (``sigma <= 0`` takes cv2's
    ``0.3*((ksize-1)*0.5 - 1) + 0.8``), torchvision's ``gaussian_blur`` and scipy's
    ``gaussian_filter`` (with ``ksize = 2*int(4*sigma + 0.5) + 1``).
    """
    if sigma <= 0:
        sigma = 0.3 * ((ksize - 1) * 0.5 - 1) + 0.8
    r = (ksize - 1) / 2.0
    x = torch.arange(ksize, dtype=torch.float64, device=device) - r
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return (k / k.sum()).to(dtype)


def pad_index(n: int, r: int, mode: str, device=None) -> torch.Tensor:
    """Source indices ``[n + 2r]`` for padding a length-``n`` axis by ``r`` on each side.

    Modes: ``"reflect101"`` (cv2 default, torch ``reflect``: ``d c b | a b c d``),
    ``"symmetric"`` (scipy ``reflect``: ``c b a | a b c``), ``"replicate"``. Periodic,
    so ``r`` may exceed ``n``.
    """
    i = torch.arange(-r, n + r, device=device)
    if mode == "reflect101" and n > 1:
        p = 2 * (n - 1)
        i = i.remainder(p)
        return torch.where(i >= n, p - i, i)
    if mode == "symmetric":
        p = 2 * n
        i = i.remainder(p)
        return torch.where(i >= n, p - 1 - i, i)
    if mode in ("replicate", "reflect101"):
        return i.clamp(0, n - 1)
    raise ValueError(f"pad mode must be 'reflect101', 'symmetric' or 'replicate', got {mode!r}")


def _pad_edges(x: torch.Tensor, dim: int, r: int, extra: int, mode: str) -> torch.Tensor:
    """Pad ``x`` along ``dim`` (-1 or -2) by ``r`` per side (``pad_index`` modes), then ``extra`` zeros."""
    n = x.shape[dim]
    if r == 0:
        parts = [x]
    elif mode == "reflect101" and r < n:  # block copies; the index fallback below gathers element by element
        parts = [x.narrow(dim, 1, r).flip(dim), x, x.narrow(dim, n - 1 - r, r).flip(dim)]
    elif mode == "symmetric" and r <= n:
        parts = [x.narrow(dim, 0, r).flip(dim), x, x.narrow(dim, n - r, r).flip(dim)]
    else:
        parts = [x.index_select(dim, pad_index(n, r, mode, x.device))]
    if extra:
        shape = list(x.shape)
        shape[dim] = extra
        parts.append(x.new_zeros(shape))
    return torch.cat(parts, dim) if len(parts) > 1 else parts[0]


def _band(kernel: torch.Tensor, c: int) -> torch.Tensor:
    """``[c, 2c]``: input position ``i`` of chunk ``j`` feeds output ``o`` of chunk ``j`` with
    ``kernel[i - o]`` (left half) and output ``o`` of chunk ``j - 1`` with ``kernel[c + i - o]`` (right half)."""
    K = kernel.numel()
    i = torch.arange(c, device=kernel.device)[:, None]
    o = torch.arange(c, device=kernel.device)[None, :]
    zero = torch.zeros((), dtype=kernel.dtype, device=kernel.device)
    halves = []
    for d in (i - o, c + i - o):
        halves.append(torch.where((d >= 0) & (d < K), kernel[d.clamp(0, K - 1)], zero))
    return torch.cat(halves, 1)


def conv1d_banded(x: torch.Tensor, kernel: torch.Tensor, dim: int = -1, mode: str = "reflect101",
                  chunk: int = 64) -> torch.Tensor:
    """Correlate ``x`` with an odd-length ``kernel`` along ``dim`` (same-size output).

    ``y[i] = sum_t kernel[t] * xpad[i + t]`` with ``xpad`` padded by ``(K-1)/2`` per
    side (``pad_index`` modes). The padded axis is cut into chunks of ``c >= K-1``
    samples; output chunk ``j`` needs input chunks ``j`` and ``j+1`` only, so one
    GEMM with a ``[c, 2c]`` band matrix plus one shifted add does the whole sum,
    with no window copies (dims -1 and -2 are done in place; others are moved to -1).
    """
    K = kernel.numel()
    if K % 2 != 1:
        raise ValueError(f"kernel length must be odd, got {K}")
    if dim % x.dim() not in (x.dim() - 1, x.dim() - 2):
        return conv1d_banded(x.movedim(dim, -1), kernel, -1, mode, chunk).movedim(-1, dim)
    rows = dim % x.dim() == x.dim() - 2
    d = -2 if rows else -1
    n = x.shape[d]
    r = (K - 1) // 2
    c = max(chunk, K - 1, 1)
    nc = -(-n // c)
    xp = _pad_edges(x, d, r, (nc + 1) * c - n - 2 * r, mode)
    band = _band(kernel.to(x.dtype), c)
    lead = x.shape[:-2] if rows else x.shape[:-1]
    if rows:  # [R, nc+1, c, W]: left-multiply each chunk of rows by the transposed band
        Wd = x.shape[-1]
        z = torch.matmul(band.t(), xp.reshape(-1, nc + 1, c, Wd))  # [R, nc+1, 2c, W]
        y = z[:, :nc, :c] + z[:, 1:, c:]
        return y.reshape(*lead, nc * c, Wd)[..., :n, :]
    z = xp.reshape(-1, nc + 1, c) @ band  # [R, nc+1, 2c]
    y = z[:, :nc, :c] + z[:, 1:, c:]
    return y.reshape(*lead, nc * c)[..., :n]


def separable_blur(x: torch.Tensor, kernel: torch.Tensor, mode: str = "reflect101") -> torch.Tensor:
    """The same 1-D kernel along H (dim -2) then W (dim -1) of ``[..., H, W]``."""
    return conv1d_banded(conv1d_banded(x, kernel, -2, mode), kernel, -1, mode)


# ----------------------------------------------------------------------------- plasma fractal


def plasma_fractal(seeds: torch.Tensor, stream: str, mapsize: int, wibbledecay: float,
                   dtype=torch.float32) -> torch.Tensor:
    """ImageNet-C's diamond-square plasma fractal, normalized to [0, 1]: ``[B, S, S]``.

    The reference's algorithm level by level (wibble starts at 100, the midpoint
    displacement is ``wibble * U(-wibble, wibble)``, wibble is divided by
    ``wibbledecay`` per level, ``np.roll`` wrap-around), for all ``B`` maps at once.
    Level ``l``'s draws use the stream ``(seed, stream, 3*l + phase)``, element = flat
    index in the filled sub-grid.

    Args:
        seeds: int64 ``[B]``.
        mapsize: a power of two.
    """
    if mapsize < 2 or mapsize & (mapsize - 1):
        raise ValueError(f"mapsize must be a power of two >= 2, got {mapsize}")
    B = seeds.shape[0]
    m = torch.zeros(B, mapsize, mapsize, dtype=dtype, device=seeds.device)
    step, wibble, level = mapsize, 100.0, 0
    # Counters as device tensors: a Python int would be copied to the device on every call.
    counters = torch.arange(3 * mapsize.bit_length(), dtype=torch.int32, device=seeds.device)

    def wibbled_mean(acc, phase):  # acc is a temporary: overwritten
        key = rng.keys(seeds, stream, counters[3 * level + phase])[:, None, None, :]
        i = torch.arange(acc[0].numel(), dtype=torch.int32, device=seeds.device).reshape(acc.shape[1:])
        # acc / 4 + wibble * (wibble * (2u - 1)), op for op, in place
        w = rng.uniform(key, i, dtype).mul_(2.0).sub_(1.0).mul_(wibble).mul_(wibble)
        return w.add_(acc.div_(4))

    while step >= 2:
        h = step // 2
        corner = m[:, 0::step, 0::step]
        sq = corner + corner.roll(-1, 1)
        sq = sq + sq.roll(-1, 2)
        m[:, h::step, h::step] = wibbled_mean(sq, 0)
        dr = m[:, h::step, h::step]
        ul = m[:, 0::step, 0::step]
        m[:, 0::step, h::step] = wibbled_mean((dr + dr.roll(1, 1)) + (ul + ul.roll(-1, 2)), 1)
        m[:, h::step, 0::step] = wibbled_mean((dr + dr.roll(1, 2)) + (ul + ul.roll(-1, 1)), 2)
        step //= 2
        wibble /= wibbledecay
        level += 1
    m = m.sub_(m.amin(dim=(1, 2), keepdim=True))
    return m.div_(m.amax(dim=(1, 2), keepdim=True))


# ----------------------------------------------------------------------------- Perlin noise

# Ken Perlin's permutation and the 16 gradients of the `noise` package (_noise.h).
_PERM = (
    151, 160, 137, 91, 90, 15, 131, 13, 201, 95, 96, 53, 194, 233, 7, 225, 140, 36, 103, 30, 69, 142,
    8, 99, 37, 240, 21, 10, 23, 190, 6, 148, 247, 120, 234, 75, 0, 26, 197, 62, 94, 252, 219, 203, 117,
    35, 11, 32, 57, 177, 33, 88, 237, 149, 56, 87, 174, 20, 125, 136, 171, 168, 68, 175, 74, 165, 71,
    134, 139, 48, 27, 166, 77, 146, 158, 231, 83, 111, 229, 122, 60, 211, 133, 230, 220, 105, 92, 41,
    55, 46, 245, 40, 244, 102, 143, 54, 65, 25, 63, 161, 1, 216, 80, 73, 209, 76, 132, 187, 208, 89,
    18, 169, 200, 196, 135, 130, 116, 188, 159, 86, 164, 100, 109, 198, 173, 186, 3, 64, 52, 217, 226,
    250, 124, 123, 5, 202, 38, 147, 118, 126, 255, 82, 85, 212, 207, 206, 59, 227, 47, 16, 58, 17, 182,
    189, 28, 42, 223, 183, 170, 213, 119, 248, 152, 2, 44, 154, 163, 70, 221, 153, 101, 155, 167, 43,
    172, 9, 129, 22, 39, 253, 19, 98, 108, 110, 79, 113, 224, 232, 178, 185, 112, 104, 218, 246, 97,
    228, 251, 34, 242, 193, 238, 210, 144, 12, 191, 179, 162, 241, 81, 51, 145, 235, 249, 14, 239, 107,
    49, 192, 214, 31, 181, 199, 106, 157, 184, 84, 204, 176, 115, 121, 50, 45, 127, 4, 150, 254, 138,
    236, 205, 93, 222, 114, 67, 29, 24, 72, 243, 141, 128, 195, 78, 66, 215, 61, 156, 180,
)
_GRAD2 = ((1, 1), (-1, 1), (1, -1), (-1, -1), (1, 0), (-1, 0), (1, 0), (-1, 0),
          (0, 1), (0, -1), (0, 1), (0, -1), (1, 0), (-1, 0), (0, -1), (0, 1))


def _linspace_np(stop: float, num: int, device) -> torch.Tensor:
    """``np.linspace(0, stop, num)`` bit for bit (float64): ``i * step``, last = stop."""
    if num == 1:
        return torch.zeros(1, dtype=torch.float64, device=device)
    v = torch.arange(num, dtype=torch.float64, device=device) * (stop / (num - 1))
    v[-1] = stop
    return v


def _fade(t):
    return t * t * t * (t * (t * 6 - 15) + 10)


def _noise2(x, y, rx: float, ry: float, base: int, perm, grad):
    """``noise2`` of the ``noise`` package for a grid: ``x`` ``[W]``, ``y`` ``[H]`` float32 -> ``[H, W]``."""
    fl_x, fl_y = torch.floor(x), torch.floor(y)
    i = torch.floor(torch.fmod(x, rx)).to(torch.int64)
    j = torch.floor(torch.fmod(y, ry)).to(torch.int64)
    ii = torch.fmod((i + 1).to(torch.float32), rx).to(torch.int64)
    jj = torch.fmod((j + 1).to(torch.float32), ry).to(torch.int64)
    i, j, ii, jj = (i & 255) + base, (j & 255) + base, (ii & 255) + base, (jj & 255) + base
    x = x - fl_x
    y = y - fl_y
    fx, fy = _fade(x)[None, :], _fade(y)[:, None]
    A, B = perm[i][None, :], perm[ii][None, :]
    j, jj = j[:, None], jj[:, None]
    xv, yv = x[None, :], y[:, None]

    def g(h, dx, dy):
        gr = grad[perm[h] & 15]  # [H, W, 2]
        return dx * gr[..., 0] + dy * gr[..., 1]

    def lerp(t, a, b):
        return a + t * (b - a)

    return lerp(fy, lerp(fx, g(perm[A + j], xv, yv), g(perm[B + j], xv - 1, yv)),
                lerp(fx, g(perm[A + jj], xv, yv - 1), g(perm[B + jj], xv - 1, yv - 1)))


def pnoise2_grid(x: torch.Tensor, y: torch.Tensor, *, octaves: int = 1, persistence: float = 0.5,
                 lacunarity: float = 2.0, repeat: float = 1024.0, base: int = 0) -> torch.Tensor:
    """``noise.pnoise2(x[j], y[i], ...)`` for every grid point: float32 ``[H, W]``.

    Args:
        x: float32 ``[W]``; y: float32 ``[H]`` (the C code's float arguments).
    """
    device = x.device
    perm = rng.host_to_device(_PERM + _PERM, torch.int64, device)
    grad = rng.host_to_device(_GRAD2, torch.float32, device)
    if octaves == 1:
        return _noise2(x, y, repeat, repeat, base, perm, grad)
    total = torch.zeros(y.numel(), x.numel(), dtype=torch.float32, device=device)
    freq, amp, mx = 1.0, 1.0, 0.0
    for _ in range(int(octaves)):  # a handful of octaves, each a whole-grid tensor op
        f32 = torch.tensor(freq, dtype=torch.float32)
        total = total + _noise2(x * f32, y * f32, repeat * freq, repeat * freq, base, perm, grad) * amp
        mx += amp
        freq *= lacunarity
        amp *= persistence
    return total / torch.tensor(mx, dtype=torch.float32)


def perlin_grid(H: int, W: int, *, scale: float = 100.0, octaves: int = 6, persistence: float = 0.5,
                lacunarity: float = 2.0, repeat: float = 1024.0, base: int = 0, device=None) -> torch.Tensor:
    """The reference's Perlin map: ``pnoise2`` over ``x = linspace(0, W/scale, W)``,
    ``y = linspace(0, H/scale, H)``, min-max normalized, times 255, truncated to uint8.

    float32 arithmetic in the order of the C code, so the map equals the
    ``noise`` package's up to the compiler's rounding. Deterministic.

    Returns:
        uint8 ``[H, W]``.
    """
    x = _linspace_np(W / scale, W, device).to(torch.float32)
    y = _linspace_np(H / scale, H, device).to(torch.float32)
    noise = pnoise2_grid(x, y, octaves=octaves, persistence=persistence, lacunarity=lacunarity, repeat=repeat,
                         base=base).to(torch.float64)
    lo, hi = noise.amin(), noise.amax()
    noise = (noise - lo) / (hi - lo).clamp_min(1e-300)
    return (noise * 255).to(torch.uint8)  # truncation, like astype(np.uint8)


# ----------------------------------------------------------------------------- shapes


def ellipse_masks(center: torch.Tensor, axes: torch.Tensor, angle_deg: torch.Tensor, H: int, W: int,
                  dtype=torch.float32, grow: float = 0.0) -> torch.Tensor:
    """Filled rotated ellipses (cv2.ellipse semantics: semi-axes, angle in degrees), ``[M, H, W]``.

    A pixel centre ``(x, y)`` is inside when ``(u/a)^2 + (v/b)^2 <= 1`` with ``(u, v)`` its
    offset from the centre rotated by ``-angle`` (cv2 rotates clockwise on screen) and
    ``a, b`` the semi-axes plus ``grow`` pixels (``cv2_fill_axes`` gives axes that match cv2's fill).

    Args:
        center: ``[M, 2]`` (x, y) pixel centres.
        axes: ``[M, 2]`` semi-axes (along x, along y before rotation).
        angle_deg: ``[M]`` rotation, degrees.
        grow: added to both semi-axes.
    """
    f = torch.float32
    a = torch.deg2rad(angle_deg.to(f))[:, None, None]
    ia = 1.0 / (axes[:, 0, None, None].to(f) + grow).clamp_min(0.5)
    ib = 1.0 / (axes[:, 1, None, None].to(f) + grow).clamp_min(0.5)
    c, s = torch.cos(a), torch.sin(a)
    dx = torch.arange(W, device=center.device, dtype=f)[None, None, :] - center[:, 0, None, None].to(f)
    dy = torch.arange(H, device=center.device, dtype=f)[None, :, None] - center[:, 1, None, None].to(f)
    u = (dx * (c * ia)) + (dy * (s * ia))  # [M, H, W]
    v = (dy * (c * ib)) - (dx * (s * ib))
    return u.mul_(u).addcmul_(v, v).le_(1.0).to(dtype)


def cv2_fill_axes(axes: torch.Tensor) -> torch.Tensor:
    """Semi-axes (float32) whose true ellipse best matches ``cv2.ellipse(thickness=-1)``'s fill.

    cv2 draws a 72-gon (5-degree steps for semi-axes of 15 px and more) with its 8-connected
    outline, then fills it: its mask holds the pixels the outline touches, half a pixel beyond
    the polygon, and the polygon's chords cut inside the ellipse by up to ``a(1 - cos 2.5deg)``.
    So each semi-axis grows by ``0.5 - 0.0006 a``. On 18 random shadow ellipses (120x160 to
    720x1280, against cv2 5.1) the pixels that differ drop from 5,400 to 1,881 and, after the
    51x51 blur, the worst rim difference on a white frame from 11 to 5.5 levels and the mean
    bias from 0.49 to 0.02 levels.
    """
    a = axes.to(torch.float32)
    return a + (0.5 - 0.0006 * a)


def scatter_max(size: int, index: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """``[R, size]`` zeros, then ``out[r, index[r, k]] = max(out, values[r, k])``."""
    out = torch.zeros(index.shape[0], size, dtype=values.dtype, device=values.device)
    return out.scatter_reduce_(1, index, values, "amax")


# ----------------------------------------------------------------------------- frost


def _dendrites(seeds: torch.Tensor, stream: str, K: int, H: int, W: int, haze: torch.Tensor, *,
               stem: tuple, branches: int, spread_deg: float, gain: float = 1.0):
    """Points of ``K`` fern-like crystals per texture: flat pixel index and intensity, ``[count, N]`` each.

    A crystal is two arms from its centre (the second not quite opposite); each arm is
    a stem of length ``U(stem)`` carrying ``branches`` pairs of side branches at about
    ``+-spread_deg``, shorter towards the tip. Points are 1 px apart along every segment;
    intensity tapers along a segment and scales with the haze density at the centre.
    Coordinates wrap, so textures tile.
    """
    count, dev, J = seeds.shape[0], seeds.device, branches
    key = rng.keys(seeds, stream)[:, None, :]
    cidx = torch.arange(K, dtype=torch.int32, device=dev)[None, :] * 8

    def u(k):
        return rng.uniform(key, cidx + k, torch.float32)  # [count, K]

    py, px, theta = u(0) * H, u(1) * W, u(2) * (2 * math.pi)
    length = stem[0] + (stem[1] - stem[0]) * u(3)
    flat = py.long().clamp(0, H - 1) * W + px.long().clamp(0, W - 1)
    bright = gain * (0.5 + 0.5 * haze.reshape(count, -1).gather(1, flat))
    arm = torch.stack([theta, theta + math.pi + (u(4) - 0.5) * 0.6], -1)  # [count, K, 2]
    spread = math.radians(spread_deg) + (u(5) - 0.5)[..., None, None, None] * math.radians(20.0)  # [count, K, 1, 1, 1]
    t = (torch.arange(J, device=dev, dtype=torch.float32) + 1.0) / (J + 1)
    side = rng.host_to_device([1.0, -1.0], torch.float32, dev)[:, None]  # [2, 1]
    # Branches: [count, K, arm, side, J]
    b_ang = arm[..., None, None] + side * spread
    b_len = (length[..., None, None, None] * 0.5 * (1.0 - 0.8 * t) * (0.75 + 0.25 * u(6))[..., None, None, None])
    along = length[..., None, None, None] * t
    b_x = px[..., None, None, None] + along * torch.cos(arm)[..., None, None]
    b_y = py[..., None, None, None] + along * torch.sin(arm)[..., None, None]
    shape5 = (count, K, 2, 2, J)
    seg_x = torch.cat([px[..., None, None].expand(count, K, 2, 1), b_x.expand(shape5).reshape(count, K, 2, -1)], -1)
    seg_y = torch.cat([py[..., None, None].expand(count, K, 2, 1), b_y.expand(shape5).reshape(count, K, 2, -1)], -1)
    seg_a = torch.cat([arm[..., None], b_ang.expand(shape5).reshape(count, K, 2, -1)], -1)
    seg_l = torch.cat([length[..., None, None].expand(count, K, 2, 1), b_len.expand(shape5).reshape(count, K, 2, -1)], -1)
    level = torch.cat([torch.ones(1, device=dev), torch.full((2 * J,), 0.85, device=dev)])
    P = int(math.ceil(stem[1])) + 1
    s = torch.arange(P, device=dev, dtype=torch.float32)
    dist = torch.minimum(s, seg_l[..., None])  # [count, K, 2, 1+2J, P]
    xs = (seg_x[..., None] + dist * torch.cos(seg_a)[..., None]).floor().long().remainder(W)
    ys = (seg_y[..., None] + dist * torch.sin(seg_a)[..., None]).floor().long().remainder(H)
    val = (bright[..., None, None] * level)[..., None] * (1.0 - 0.6 * dist / seg_l[..., None].clamp_min(1e-3))
    return (ys * W + xs).reshape(count, -1), val.reshape(count, -1)


_FROST_REF_D = math.sqrt(360 * 640)  # the size the texture's look was tuned at


def frost_textures(count: int, H: int, W: int, *, seed: int = 0, device=None) -> torch.Tensor:
    """``count`` procedural frost textures, uint8 ``[count, 3, H, W]``, tileable.

    Ice crystals over a haze: fern-like dendrites in three size classes (a few large,
    more medium, many small; ``_dendrites``) plus a dust of short needles, drawn as
    points with max-compositing, softened by a narrow Gaussian plus a wide glow, over
    a plasma haze (which also sets the local crystal brightness) with a fine grain,
    tinted cold white. Sizes scale with ``D = sqrt(H*W)`` and counts with ``area / D`` (at most
    twice the count per area of the 360x640 look), so the mean level is about 0.41 at every
    size from 180x320 up (0.412 from 360x640 to 1080p; 0.37 on thumbnails under 120x160).
    A pure function of ``(count, H, W, seed)``.
    """
    dev = torch.device(device) if device is not None else torch.device("cpu")
    seeds = rng.seeds_from(count, seed=int(seed), device=dev)
    D = math.sqrt(H * W)
    area = H * W
    # Crystal lengths scale with D, so counts scaling with area / D keep the covered fraction,
    # hence the frost's mean level, the same at every frame size (counts with area made it
    # 0.33 at 64x96 and 0.51 at 720p).
    per = area * min(_FROST_REF_D / D, 2.0)

    psize = max(2, min(512, next_pow2(max(H, W))))  # low-frequency: a small plasma, upsampled
    haze = torch.nn.functional.interpolate(plasma_fractal(seeds, "frost/haze", psize, 2.0)[:, None], size=(H, W),
                                           mode="bilinear", align_corners=False)[:, 0]
    parts = [
        _dendrites(seeds, "frost/large", max(1, int(per // 20000)), H, W, haze, stem=(0.05 * D, 0.12 * D),
                   branches=7, spread_deg=55.0),
        _dendrites(seeds, "frost/medium", max(2, int(per // 3000)), H, W, haze, stem=(0.02 * D, 0.05 * D),
                   branches=5, spread_deg=60.0),
        _dendrites(seeds, "frost/small", max(4, int(per // 800)), H, W, haze, stem=(0.005 * D, 0.02 * D),
                   branches=3, spread_deg=65.0),
        _dendrites(seeds, "frost/needles", max(8, int(per // 100)), H, W, haze, stem=(1.0, max(2.0, 0.006 * D)),
                   branches=0, spread_deg=0.0, gain=0.5),
    ]
    lines = scatter_max(area, torch.cat([p[0] for p in parts], 1), torch.cat([p[1] for p in parts], 1))
    lines = lines.reshape(count, H, W)
    sharp = separable_blur(lines, gaussian_kernel1d(5, 0.6, device=dev), "symmetric")
    g = max(1.0, 0.006 * D)
    glow = separable_blur(lines, gaussian_kernel1d(2 * int(math.ceil(3 * g)) + 1, g, device=dev), "symmetric")
    grain = rng.uniform(rng.keys(seeds, "frost/grain")[:, None, None, :],
                        torch.arange(area, dtype=torch.int32, device=dev).reshape(H, W)) - 0.5
    f = 0.16 + 0.34 * haze ** 1.2 + 1.1 * sharp + 1.4 * glow + 0.05 * grain
    tint = rng.host_to_device([0.86, 0.93, 1.0], torch.float32, dev)[None, :, None, None]
    return (f[:, None] * tint * 255.0).clamp_(0, 255).round_().to(torch.uint8)
