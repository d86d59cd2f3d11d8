"""A small procedural clip generator: deterministic, pure torch, any device.

Used by the tests, the demo data and the gallery, so that no video file has to
be committed. Every frame is distinguishable from every other one: shapes move
by a few pixels per frame and the frame number is drawn in blocky digits.
"""
from __future__ import annotations

import math

import torch

# Known colours (RGB uint8) so that tests can look for them after decoding.
BACKGROUND = (24, 24, 40)
SHAPE_COLOURS = (
    (230, 40, 40),    # red rectangle
    (40, 200, 60),    # green disc
    (50, 90, 235),    # blue rectangle
    (240, 210, 40),   # yellow disc
)
COUNTER_COLOUR = (255, 255, 255)

# 3x5 bitmap font for the digits 0..9 (one string of 15 bits per digit, row-major).
_FONT = (
    "111101101101111",  # 0
    "010110010010111",  # 1
    "111001111100111",  # 2
    "111001111001111",  # 3
    "101101111001001",  # 4
    "111100111001111",  # 5
    "111100111101111",  # 6
    "111001010010010",  # 7
    "111101111101111",  # 8
    "111101111001111",  # 9
)


def _digit_glyphs(device: torch.device) -> torch.Tensor:
    """Return the font as bool ``[10, 5, 3]``."""
    bits = torch.tensor([[int(c) for c in g] for g in _FONT], dtype=torch.bool, device=device)
    return bits.reshape(10, 5, 3)


def counter_mask(T: int, H: int, W: int, *, start: int = 0, device: torch.device | str = "cpu") -> torch.Tensor:
    """Draw the frame numbers ``start..start+T-1`` as blocky digits in the top-left corner.

    Args:
        T: number of frames.
        H: frame height in pixels.
        W: frame width in pixels.
        start: number of the first frame.
        device: where to build the mask.

    Returns:
        bool ``[T, H, W]``: True where a digit pixel is lit. Four digits (more
        past 9999), each 3x5 cells of ``max(1, H // 48)`` pixels with a one-cell
        gap, starting one cell from the top-left corner; whatever does not fit
        is cut off.
    """
    device = torch.device(device)
    strip, (y0, x0) = _counter_strip(T, H, W, start, device)
    mask = torch.zeros(T, H, W, dtype=torch.bool, device=device)
    mask[:, y0:y0 + strip.shape[1], x0:x0 + strip.shape[2]] = strip
    return mask


def _counter_strip(T: int, H: int, W: int, start: int, device: torch.device):
    """The lit digit cells cropped to the frame: (bool [T, h, w], (top, left))."""
    ndig = max(4, len(str(start + T - 1)))  # fixed width, so a clip made in pieces draws the same digits
    cell = max(1, H // 48)
    frames = torch.arange(start, start + T, device=device)
    powers = 10 ** torch.arange(ndig - 1, -1, -1, device=device)
    digits = (frames[:, None] // powers) % 10                          # [T, ndig]
    glyphs = _digit_glyphs(device)[digits]                              # [T, ndig, 5, 3]
    glyphs = torch.nn.functional.pad(glyphs, (0, 1))                    # one-cell gap: [T, ndig, 5, 4]
    strip = glyphs.permute(0, 2, 1, 3).reshape(T, 5, ndig * 4)          # [T, 5, 4*ndig]
    strip = strip.repeat_interleave(cell, 1).repeat_interleave(cell, 2)
    h = min(strip.shape[1], max(H - cell, 0))
    w = min(strip.shape[2], max(W - cell, 0))
    return strip[:, :h, :w], (cell, cell)


def make_clip(
    T: int = 8,
    H: int = 240,
    W: int = 320,
    *,
    seed: int = 0,
    start: int = 0,
    texture: bool = False,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Make a deterministic synthetic clip of moving coloured shapes.

    Four shapes (two rectangles, two discs, colours :data:`SHAPE_COLOURS`) move
    along straight lines over a flat :data:`BACKGROUND` and bounce off the
    frame edges; the frame number is drawn in white blocky digits in the top
    left corner (:func:`counter_mask`). Starting positions and velocities come
    from ``seed`` (a CPU ``torch.Generator``), so the clip is the same on every
    device and every run. ``make_clip(T, H, W, start=s)`` equals
    ``make_clip(s + T, H, W)[s:]``, so long clips can be made in pieces.

    Args:
        T: number of frames, >= 1.
        H: height in pixels, >= 8.
        W: width in pixels, >= 8.
        seed: picks the shapes' starting positions and velocities.
        start: number of the first frame, >= 0.
        texture: replace the flat background by a smooth random texture
            (values ``BACKGROUND`` +- 48) that drifts 2 px right and 1 px down
            per frame, so H.264 spends a realistic bitrate on the clip (used by
            the decode benchmark).
        device: device of the returned tensor.

    Returns:
        uint8 ``[T, 3, H, W]`` on ``device``.

    Raises:
        ValueError: if ``T``, ``H`` or ``W`` is too small.

    Example:
        >>> make_clip(4, 48, 64).shape
        torch.Size([4, 3, 48, 64])
    """
    if int(T) < 1:
        raise ValueError(f"T must be >= 1, got {T}")
    if int(H) < 8 or int(W) < 8:
        raise ValueError(f"H and W must be >= 8, got H={H}, W={W}")
    if int(start) < 0:
        raise ValueError(f"start must be >= 0, got {start}")
    T, H, W, start = int(T), int(H), int(W), int(start)
    device = torch.device(device)
    n = len(SHAPE_COLOURS)

    gen = torch.Generator().manual_seed(int(seed))
    size = torch.tensor([H, W], dtype=torch.float64)
    half = (0.08 + 0.07 * torch.rand(n, 2, generator=gen, dtype=torch.float64)) * size.min()  # half extents
    lo, hi = half, size - half
    origin = lo + torch.rand(n, 2, generator=gen, dtype=torch.float64) * (hi - lo)
    speed = (0.01 + 0.02 * torch.rand(n, 2, generator=gen, dtype=torch.float64)) * size
    sign = torch.where(torch.rand(n, 2, generator=gen) < 0.5, -1.0, 1.0).to(torch.float64)

    # Bounce: fold the unbounded straight-line position into [lo, hi] (a triangle wave).
    t = torch.arange(start, start + T, dtype=torch.float64)[:, None, None]
    span = hi - lo
    free = origin - lo + sign * speed * t                               # [T, n, 2]
    folded = torch.remainder(free, 2 * span)
    centre = lo + torch.where(folded > span, 2 * span - folded, folded)
    centre = centre.to(torch.float32).tolist()                          # [T][n][2], host floats
    half = half.to(torch.float32).tolist()

    yy = torch.arange(H, device=device, dtype=torch.float32) + 0.5      # pixel centres
    xx = torch.arange(W, device=device, dtype=torch.float32) + 0.5
    if texture:
        out = _texture(T, H, W, start, int(seed), device)
    else:
        out = torch.tensor(BACKGROUND, dtype=torch.uint8, device=device).view(1, 3, 1, 1).repeat(T, 1, H, W)
    colours = [torch.tensor(c, dtype=torch.uint8, device=device).view(3, 1, 1) for c in SHAPE_COLOURS]
    # Shapes cover a few percent of a frame, so each is painted inside its own bounding box
    # (a loop over frames and shapes): ~20x faster at 720p than full-frame masks.
    for i in range(T):
        for k in range(n):
            (cy, cx), (hy, hx) = centre[i][k], half[k]
            y0, y1 = max(0, math.floor(cy - hy) - 1), min(H, math.ceil(cy + hy) + 1)
            x0, x1 = max(0, math.floor(cx - hx) - 1), min(W, math.ceil(cx + hx) + 1)
            dy, dx = yy[y0:y1, None] - cy, xx[None, x0:x1] - cx
            if k % 2 == 0:  # rectangle
                mask = (dy.abs() <= hy) & (dx.abs() <= hx)
            else:           # disc (an ellipse when the half extents differ)
                mask = (dy / hy).square() + (dx / hx).square() <= 1.0
            box = out[i, :, y0:y1, x0:x1]
            box.copy_(torch.where(mask, colours[k], box))
    strip, (y0, x0) = _counter_strip(T, H, W, start, device)
    box = out[:, :, y0:y0 + strip.shape[1], x0:x0 + strip.shape[2]]
    white = torch.tensor(COUNTER_COLOUR, dtype=torch.uint8, device=device).view(1, 3, 1, 1)
    box.copy_(torch.where(strip[:, None], white, box))
    return out


def _texture(T: int, H: int, W: int, start: int, seed: int, device: torch.device) -> torch.Tensor:
    """A smooth random texture around BACKGROUND, drifting (1, 2) px (down, right) per frame; uint8 [T, 3, H, W]."""
    cell = 8
    gen = torch.Generator().manual_seed(seed + 1)
    gh, gw = -(-H // cell) + 2, -(-W // cell) + 2
    coarse = (torch.rand(1, 3, gh, gw, generator=gen) * 2 - 1).to(device)  # [-1, 1] on a coarse periodic grid
    # Bilinear upsampling of the circularly padded grid, cropped to one period, gives a smooth
    # field that tiles without a seam, so any shift (taken modulo the period) is defined.
    padded = torch.nn.functional.pad(coarse, (1, 1, 1, 1), mode="circular")
    field = torch.nn.functional.interpolate(padded, scale_factor=cell, mode="bilinear", align_corners=False)
    field = field[0, :, cell:cell + gh * cell, cell:cell + gw * cell]       # [3, PH, PW], PH > H, PW > W
    base = torch.tensor(BACKGROUND, dtype=torch.float32, device=device).view(3, 1, 1)
    tile = (base + 48 * field).round_().clamp_(0, 255).to(torch.uint8).repeat(1, 2, 2)
    PH, PW = field.shape[1:]
    out = torch.empty(T, 3, H, W, dtype=torch.uint8, device=device)
    for i, t in enumerate(range(start, start + T)):  # one slice copy per frame: cheaper than a gather
        oy, ox = (-t) % PH, (-2 * t) % PW
        out[i] = tile[:, oy:oy + H, ox:ox + W]
    return out
