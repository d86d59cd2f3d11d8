"""``nrvl corrupt``: decode a video's sampled frames, corrupt them, write mp4 + PNG frames.

Layout of ``--out DIR``:

* one noise: ``DIR/<noise>.mp4``, ``DIR/frame_000.png`` ... and ``DIR/meta.json``;
* several (``all``, a family, a list): the same in ``DIR/<noise>/`` per noise, and
  ``DIR/index.json`` listing the noises written and those skipped (a noise that
  cannot run here, e.g. for a missing asset, is skipped with a warning).

``meta.json`` records the input, the decoded frame indices, the noise, ratio,
seed, severity and which output frames the noise touched. Everything is written
into a temporary folder beside ``DIR`` and renamed into place at the end, so a
failure leaves nothing behind.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import (CommandError, check_input_file, check_out_dir, positive_int, public_file, ratio_arg,
               resolve_device, seed_arg, select_noises, staged_dir)

HELP = "corrupt a video's frames with one noise, a family or all, and write mp4 + PNG frames"
DEFAULT_FRAMES = 8
SAMPLED_FPS = 2.0  # mp4 frame rate for sampled frames (a slide show); --all-frames keeps the source rate


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "corrupt", help=HELP, description=HELP,
        epilog="example: nrvl corrupt clip.mp4 --noise gaussian --ratio 0.9 --out out/gaussian")
    p.add_argument("input", metavar="INPUT", help="video file")
    p.add_argument("--noise", required=True, metavar="NAME",
                   help="a noise name, a family, 'all', or a comma-separated list (see 'nrvl list')")
    p.add_argument("--ratio", required=True, type=ratio_arg, metavar="R",
                   help="noise ratio in [0, 1] (0.3, 0.6, 0.9 in the reference)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--frames", type=positive_int, default=DEFAULT_FRAMES, metavar="N",
                       help=f"decode N frames with VLMEvalKit's rule int(i*len/(N+1)) (default {DEFAULT_FRAMES})")
    which.add_argument("--all-frames", action="store_true", help="decode every frame instead")
    p.add_argument("--seed", type=seed_arg, default=0, metavar="S", help="clip seed (default 0)")
    p.add_argument("--severity", type=int, choices=range(1, 6), metavar="K",
                   help="severity 1..5 instead of the reference parameters; with several noises, "
                        "noises without a severity table are skipped")
    p.add_argument("--donor", metavar="FILE",
                   help="donor video for other_video (default: a generated clip)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, ... (default: cuda if available)")
    p.add_argument("--fps", type=float, metavar="F",
                   help=f"mp4 frame rate (default: the source's with --all-frames, else {SAMPLED_FPS:g})")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (must not exist or be empty)")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    p.set_defaults(run=run)
    return p


def _validate(args) -> tuple[Path, list[str], Path, bool]:
    """The input, the noises to run, the output folder, and whether one noise was asked for."""
    src = check_input_file(args.input)
    if args.donor is not None:
        check_input_file(args.donor, "--donor")
    if args.fps is not None and not args.fps > 0:
        raise CommandError(f"--fps must be > 0, got {args.fps}")
    out = check_out_dir(args.out, args.force)
    names = select_noises(args.noise)
    single = len(names) == 1
    if args.severity is not None:
        import nrvl.kernels as K

        without = [n for n in names if K.NOISES[n].severities is None]
        if len(names) == 1 and without:
            raise CommandError(f"noise {names[0]!r} has no severity table; leave out --severity")
        if without:
            print(f"nrvl corrupt: skipping {len(without)} noise(s) without a severity table: "
                  f"{', '.join(without)}", file=sys.stderr)
            names = [n for n in names if n not in without]
    return src, names, out, single


def _decode(path: Path, n: int | None, device):
    """Frames uint8 ``[T, 3, H, W]``, their source indices and the stream info."""
    from nrvl.video import decode_frames, vlmeval_frame_indices

    seen = {}

    def pick(info):
        seen["info"] = info
        return list(range(info.num_frames)) if n is None else vlmeval_frame_indices(info.num_frames, n)

    frames = decode_frames(path, pick, device=device)
    info = seen["info"]
    idx = list(range(info.num_frames)) if n is None else vlmeval_frame_indices(info.num_frames, n)
    return frames, idx, info


def _donor(args, frames, device):
    """The other_video donor: ``--donor`` decoded to as many frames as the input, or a generated clip."""
    T, _, H, W = frames.shape
    if args.donor is not None:
        donor, _, _ = _decode(Path(args.donor), T, device)
        return donor, str(args.donor)
    from nrvl.video import make_clip

    return make_clip(T, max(H, 8), max(W, 8), seed=args.seed + 1, device=device), "generated (make_clip)"


def _even(frames):
    """Pad H and W to even sizes by repeating the last row/column (yuv420p needs even sizes)."""
    import torch

    if frames.shape[-2] % 2:
        frames = torch.cat([frames, frames[..., -1:, :]], dim=-2)
    if frames.shape[-1] % 2:
        frames = torch.cat([frames, frames[..., -1:]], dim=-1)
    return frames


def write_clip(folder: Path, name: str, frames, fps: float, meta: dict) -> None:
    """``<name>.mp4``, ``frame_XXX.png`` per frame and ``meta.json`` in ``folder`` (which exists)."""
    from PIL import Image

    from nrvl.video import write_video

    cpu = frames.cpu()
    write_video(_even(cpu), folder / f"{name}.mp4", fps=fps)
    public_file(folder / f"{name}.mp4")
    width = max(3, len(str(cpu.shape[0] - 1)))
    hwc = cpu.permute(0, 2, 3, 1).contiguous().numpy()
    for k in range(cpu.shape[0]):
        Image.fromarray(hwc[k], "RGB").save(folder / f"frame_{k:0{width}d}.png", compress_level=1)
    (folder / "meta.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")


def run(args) -> int:
    src, names, out, single = _validate(args)
    device = resolve_device(args.device)
    import nrvl.kernels as K
    from tqdm import tqdm

    frames, indices, info = _decode(src, None if args.all_frames else args.frames, device)
    fps = args.fps or (info.fps if args.all_frames and info.fps > 0 else SAMPLED_FPS)
    donor, donor_desc = _donor(args, frames, device) if "other_video" in names else (None, None)
    skipped: dict[str, str] = {}
    with staged_dir(out) as tmp:
        bar = tqdm(names, desc="nrvl corrupt", unit="noise", disable=True if single else None, file=sys.stderr)
        for name in bar:
            kw = {"donor": donor} if name == "other_video" else {}
            try:
                noisy, params = K.corrupt(frames, name, args.ratio, seed=args.seed, severity=args.severity,
                                          return_params=True, **kw)
            except Exception as e:
                if single:
                    raise
                # One noise that cannot run here (a missing asset, say) must not sink the others.
                skipped[name] = " ".join(f"{type(e).__name__}: {e}".split())
                bar.write(f"nrvl corrupt: skipping {name}: {skipped[name]}", file=sys.stderr)
                continue
            touched = params["frames"][0].nonzero().flatten().tolist()
            meta = {
                "input": str(src), "noise": name, "ratio": args.ratio, "seed": args.seed,
                "severity": args.severity, "frames": int(frames.shape[0]), "source_frame_indices": indices,
                "source_num_frames": info.num_frames, "source_fps": info.fps, "mp4_fps": fps,
                "touched_frames": touched, "height": int(frames.shape[2]), "width": int(frames.shape[3]),
            }
            if donor_desc is not None and name == "other_video":
                meta["donor"] = donor_desc
            folder = tmp if single else tmp / name
            folder.mkdir(exist_ok=True)
            write_clip(folder, name, noisy, fps, meta)
        if skipped and len(skipped) == len(names):
            raise CommandError(f"every noise failed; first: {next(iter(skipped.items()))[1]}")
        if not single:
            index = {"written": [n for n in names if n not in skipped], "skipped": skipped}
            (tmp / "index.json").write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
    what = names[0] if single else f"{len(names) - len(skipped)} noises"
    print(f"wrote {what} x {frames.shape[0]} frames (ratio {args.ratio:g}, seed {args.seed}) to {out}"
          + (f"; skipped {len(skipped)}: {', '.join(skipped)}" if skipped else ""))
    return 0
