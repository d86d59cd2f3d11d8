"""``nrvl gallery``: a contact sheet of noises, one row per noise and one column per frame.

The first row is the clean clip; every other row is labelled with its noise, and
the frames the noise touched (``params["frames"]``) get a red border. The sheet
is composed in torch, labelled with PIL (this is a report, not a corruption) and
written atomically. A noise that fails here (target_block without its detector's
weights) gets a grey row and a one-line note; when every noise fails, no sheet is
written and the command exits 2. other_video's donor is the generated clip of
``nrvl corrupt`` (seed ``--seed`` + 1), so both commands draw the same frames.
"""
from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

from . import (CommandError, check_input_file, check_out_file, positive_int, ratio_arg, resolve_device, seed_arg,
               select_noises)

HELP = "draw a contact sheet: one row per noise, one column per frame, touched frames marked"

LABEL_W = 170      # px, the name column
HEADER_H = 28      # px, the title and frame numbers
BORDER = 3         # px, the frame marker around each thumbnail
GAP = 4            # px between cells
BACKGROUND = (250, 250, 250)
UNMARKED = (210, 210, 210)
MARKED = (220, 30, 30)
TEXT = (20, 20, 20)
CLIP_SIZE = (180, 240)  # H, W of the generated default clip


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "gallery", help=HELP, description=HELP,
        epilog="example: nrvl gallery --ratio 0.6 --out gallery.png --noises temporal gaussian")
    p.add_argument("input", metavar="INPUT", nargs="?", help="video file (default: a generated clip)")
    p.add_argument("--ratio", required=True, type=ratio_arg, metavar="R", help="noise ratio in [0, 1]")
    p.add_argument("--out", required=True, metavar="FILE.png", help="the PNG to write")
    p.add_argument("--frames", type=positive_int, default=8, metavar="N", help="frames (columns), default 8")
    p.add_argument("--seed", type=seed_arg, default=0, metavar="S", help="clip seed (default 0)")
    p.add_argument("--noises", nargs="+", default=["all"], metavar="NAME",
                   help="noise names, families or 'all' (default all)")
    p.add_argument("--severity", type=int, choices=range(1, 6), metavar="K",
                   help="severity 1..5 (noises without a table are drawn with their reference parameters)")
    p.add_argument("--thumb-width", type=positive_int, default=160, metavar="PX",
                   help="width of one frame in the sheet (default 160)")
    p.add_argument("--device", default="auto", help="cpu, cuda, ... (default: cuda if available)")
    p.add_argument("--decode-backend", dest="decode_backend", choices=("torchcodec", "decord"), default=None,
                   help="decoder of INPUT (default: $NRVL_VIDEO_BACKEND, else torchcodec, falling back to decord)")
    p.set_defaults(run=run)
    return p


def thumb_size(H: int, W: int, thumb_width: int) -> tuple[int, int]:
    """Thumbnail ``(h, w)`` keeping the frame's aspect ratio."""
    return max(1, round(H * thumb_width / W)), thumb_width


def sheet_size(rows: int, frames: int, thumb_h: int, thumb_w: int) -> tuple[int, int]:
    """Size ``(height, width)`` in pixels of a sheet with ``rows`` rows (clean row included)."""
    cell_h, cell_w = thumb_h + 2 * BORDER, thumb_w + 2 * BORDER
    return HEADER_H + rows * (cell_h + GAP) + GAP, LABEL_W + frames * (cell_w + GAP) + GAP


def _thumbs(frames, h: int, w: int):
    """uint8 ``[N, 3, h, w]`` thumbnails (bilinear, antialiased) of uint8/float frames ``[N, 3, H, W]``."""
    import torch
    import torch.nn.functional as F

    x = F.interpolate(frames.float(), size=(h, w), mode="bilinear", align_corners=False, antialias=True)
    return x.round().clamp(0, 255).to(device="cpu", dtype=torch.uint8)


def compose(rows: list, marks: list, labels: list[str], thumb_w: int, title: str):
    """The labelled sheet as a PIL image.

    Args:
        rows: per row, uint8 ``[T, 3, H, W]`` frames, or None for a row that failed.
        marks: per row, a list of T bools (frame touched) or None.
        labels: per row, the text in the name column.
    """
    import torch
    from PIL import Image, ImageDraw

    T, _, H, W = next(r for r in rows if r is not None).shape
    th, tw = thumb_size(H, W, thumb_w)
    SH, SW = sheet_size(len(rows), T, th, tw)
    canvas = torch.tensor(BACKGROUND, dtype=torch.uint8).view(3, 1, 1).repeat(1, SH, SW)
    ok = [r for r in rows if r is not None]
    thumbs = iter(_thumbs(torch.cat(ok), th, tw).split(T)) if ok else iter(())
    cell_h, cell_w = th + 2 * BORDER, tw + 2 * BORDER
    for i, (frames, mark) in enumerate(zip(rows, marks)):
        y = HEADER_H + GAP + i * (cell_h + GAP)
        small = next(thumbs) if frames is not None else None
        for t in range(T):
            x = LABEL_W + GAP + t * (cell_w + GAP)
            colour = MARKED if mark is not None and mark[t] else UNMARKED
            canvas[:, y:y + cell_h, x:x + cell_w] = torch.tensor(colour, dtype=torch.uint8).view(3, 1, 1)
            if small is not None:
                canvas[:, y + BORDER:y + BORDER + th, x + BORDER:x + BORDER + tw] = small[t]
            else:
                canvas[:, y + BORDER:y + BORDER + th, x + BORDER:x + BORDER + tw] = 128
    image = Image.fromarray(canvas.permute(1, 2, 0).contiguous().numpy(), "RGB")
    draw = ImageDraw.Draw(image)
    font = _font(13)
    draw.text((GAP, 6), title, fill=TEXT, font=font)
    for t in range(T):
        draw.text((LABEL_W + GAP + t * (cell_w + GAP) + BORDER, 6), f"{t}", fill=TEXT, font=font)
    for i, label in enumerate(labels):
        y = HEADER_H + GAP + i * (cell_h + GAP) + cell_h // 2 - 8
        draw.text((GAP, y), label, fill=TEXT if rows[i] is not None else MARKED, font=font)
    return image


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only the fixed bitmap font
        return ImageFont.load_default()


def run(args) -> int:
    if args.out.strip() and Path(args.out).suffix.lower() != ".png":
        raise CommandError(f"--out must be a .png file, got {args.out}")
    src = check_input_file(args.input) if args.input is not None else None
    names = select_noises(args.noises)
    out = check_out_file(args.out)  # before any decoding: an --out that cannot be written fails at once
    device = resolve_device(args.device)
    import nrvl.kernels as K
    from tqdm import tqdm

    from nrvl.atomic import atomic_write_bytes
    from nrvl.video import make_clip

    from .corrupt import _decode, generated_donor, noise_failure

    if src is None:
        frames = make_clip(args.frames, *CLIP_SIZE, seed=0, device=device)
    else:
        frames, _, _ = _decode(src, args.frames, device, args.decode_backend)
    T, _, H, W = frames.shape
    donor = generated_donor(T, H, W, args.seed, device) if "other_video" in names else None

    rows, marks, labels, failed = [frames], [None], ["clean"], {}
    bar = tqdm(names, desc="nrvl gallery", unit="noise", disable=None, file=sys.stderr)
    for name in bar:
        kw = {"donor": donor} if name == "other_video" else {}
        severity = args.severity if K.NOISES[name].severities is not None else None
        try:
            noisy, params = K.corrupt(frames, name, args.ratio, seed=args.seed, severity=severity,
                                      return_params=True, **kw)
        except Exception as e:  # one broken noise must not sink the whole sheet
            failed[name] = noise_failure(name, e)
            if len(names) > 1:  # else the error line that follows says it
                bar.write(f"nrvl gallery: {name} failed: {failed[name]}", file=sys.stderr)
            rows.append(None), marks.append(None), labels.append(f"{name} (failed)")
            continue
        rows.append(noisy)
        marks.append(params["frames"][0].tolist())
        labels.append(name)
    if len(failed) == len(names):
        raise CommandError(f"every noise failed, no sheet written; first: {next(iter(failed.values()))}")

    title = f"ratio {args.ratio:g}  seed {args.seed}" + (f"  severity {args.severity}" if args.severity else "")
    image = compose(rows, marks, labels, args.thumb_width, title)
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=False)
    try:
        atomic_write_bytes(out, buf.getvalue())
    except OSError as e:
        raise CommandError(f"--out {args.out}: cannot write ({e.strerror or ' '.join(str(e).split())})") from e
    drawn = len(names) - len(failed)
    print(f"wrote {out} ({drawn} noise{'' if drawn == 1 else 's'} + clean row"
          + (f", {len(failed)} failed (grey rows): {', '.join(failed)}" if failed else "")
          + f"; {T} frames, {image.width}x{image.height} px)")
    return 0
