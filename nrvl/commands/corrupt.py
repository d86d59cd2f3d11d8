"""``nrvl corrupt``: decode a video's sampled frames, corrupt them, write mp4 + PNG frames.

Layout of ``--out DIR``:

* one noise: ``DIR/<noise>.mp4``, ``DIR/frame_000.png`` ... and ``DIR/meta.json``;
* several (``all``, a family, a list): the same in ``DIR/<noise>/`` per noise, and
  ``DIR/index.json`` listing the noises written and those skipped with the reason (a
  noise that cannot run here, e.g. for a missing asset, or one without a severity
  table under ``--severity``).

``meta.json`` records what is needed to redo the output: the input (absolute path,
size, modification time), the decoded frame indices, the noise with its resolved
parameters, ratio, seed, severity, the decode backend, the nrvl version, which
output frames the noise touched, and the PNG and mp4 sizes. The PNGs hold the exact
corrupted pixels; the mp4 is H.264 yuv420p, which needs even sizes, so an odd width
or height is padded by one by repeating the last column or row (``mp4_width``,
``mp4_height``, ``mp4_padded``).

Nothing half-written ever carries a final name. One noise is written into a hidden
folder beside ``DIR`` and renamed into place at the end. With several, each noise is
written into a hidden folder inside ``DIR`` and renamed to ``DIR/<noise>`` as soon as
it is done, and ``index.json`` is written last: a ``DIR`` without it is unfinished.
Stopping such a run (Ctrl-C, SIGTERM, a crash) keeps the noises finished so far, and
running the same command again skips them (it refuses if ``DIR`` holds the output of
other settings); ``--force`` redoes everything. Hidden temporary folders left by a
killed run are removed by the next run.

``--force`` replaces only a folder that holds nrvl corrupt output and nothing else;
an ``--out`` that holds the input, the donor or the current folder is refused.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import sys
from pathlib import Path

from . import (OUR_TEMP, CommandError, check_input_file, check_out_dir, land, make_dirs, new_temp_dir,
               positive_int, probe_writable, public_file, ratio_arg, remove_dirs, resolve_device, seed_arg,
               select_noises, staged_dir, temp_name)

HELP = "corrupt a video's frames with one noise, a family or all, and write mp4 + PNG frames"
DEFAULT_FRAMES = 8
SAMPLED_FPS = 2.0  # mp4 frame rate for sampled frames (a slide show); --all-frames keeps the source rate
# The rates nrvl.video.write_video really writes: it takes (0, 1000) and stores fps as a fraction with a
# denominator <= 1001, so below 1/1001 the rate rounds to 0 and the mp4 silently gets a default rate.
MIN_FPS, MAX_FPS = 0.001, 1000.0
BACKENDS = ("torchcodec", "decord")
EPILOG = f"""\
examples:
  nrvl corrupt clip.mp4 --noise gaussian --ratio 0.9 --out out/gaussian
  nrvl corrupt clip.mp4 --noise all --ratio 0.6 --out out/all

The PNG frames hold the exact corrupted pixels; the mp4 (H.264 yuv420p) needs even sizes,
so an odd width or height is padded by one, repeating the last column or row (meta.json
records both sizes). With several noises each finished noise lands in DIR/<noise>/ at
once and DIR/index.json is written last; after an interruption the same command skips
the noises already finished (--force redoes them)."""


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("corrupt", help=HELP, description=HELP, epilog=EPILOG,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", metavar="INPUT", help="video file")
    p.add_argument("--noise", required=True, metavar="NAME",
                   help="a noise name, a family, 'all', or a comma-separated list (see 'nrvl list')")
    p.add_argument("--ratio", required=True, type=ratio_arg, metavar="R",
                   help="noise ratio in [0, 1] (0.3, 0.6, 0.9 in the reference)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--frames", type=positive_int, default=DEFAULT_FRAMES, metavar="N",
                       help=f"decode N frames with VLMEvalKit's rule int(i*(len/(N+1))), i = 1..N (default {DEFAULT_FRAMES})")
    which.add_argument("--all-frames", action="store_true", help="decode every frame instead")
    p.add_argument("--seed", type=seed_arg, default=0, metavar="S", help="clip seed (default 0)")
    p.add_argument("--severity", type=int, choices=range(1, 6), metavar="K",
                   help="severity 1..5 instead of the reference parameters; with several noises, "
                        "noises without a severity table are skipped (listed in index.json)")
    p.add_argument("--donor", metavar="FILE",
                   help="donor video for other_video (default: a generated clip, seed S+1)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, ... (default: cuda if available)")
    p.add_argument("--decode-backend", dest="decode_backend", choices=BACKENDS, default=None,
                   help="video decoder (default: $NRVL_VIDEO_BACKEND, else torchcodec, falling back to decord); "
                        "decord indexes frames as VLMEvalKit does")
    p.add_argument("--fps", type=float, metavar="F",
                   help=f"mp4 frame rate in [{MIN_FPS:g}, {MAX_FPS:g}) (default: the source's with --all-frames, "
                        f"else {SAMPLED_FPS:g})")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="output folder: new or empty, or the unfinished output of the same command (resumed)")
    p.add_argument("--force", action="store_true",
                   help="replace --out if it holds nrvl corrupt output (never a folder holding other files)")
    p.set_defaults(run=run)
    return p


def _fps_ok(fps: float) -> bool:
    return MIN_FPS <= fps < MAX_FPS  # False for nan; inf is out of range


class _Plan:
    """What ``_validate`` found: the input, the noises, the output folder and its state."""

    def __init__(self, **kw):
        self.__dict__.update(kw)


def _validate(args) -> _Plan:
    """Every check that needs no decoding, before anything is written."""
    src = check_input_file(args.input)
    inputs = {"INPUT": args.input}
    if args.donor is not None:
        check_input_file(args.donor, "--donor")
        inputs["--donor"] = args.donor
    if args.fps is not None and not _fps_ok(args.fps):
        raise CommandError(f"--fps must be a number in [{MIN_FPS:g}, {MAX_FPS:g}) (the mp4 writer's range), "
                           f"got {args.fps:g}")
    names = select_noises(args.noise)
    single = len(names) == 1
    skipped: dict[str, str] = {}
    if args.severity is not None:
        import nrvl.kernels as K

        without = [n for n in names if K.NOISES[n].severities is None]
        if single and without:
            raise CommandError(f"noise {names[0]!r} has no severity table; leave out --severity")
        if without and len(without) == len(names):
            raise CommandError(f"--severity {args.severity}: no noise in {args.noise!r} has a severity table "
                               f"({', '.join(without)}); leave out --severity")
        for n in without:
            skipped[n] = f"no severity table (--severity {args.severity})"
        names = [n for n in names if n not in without]
    out, state, finished = check_out_dir(args.out, args.force, inputs=inputs, resumable=not single)
    backend = _backend(args.decode_backend)
    key = _run_key(args, src, backend)
    if state == "several" and not args.force:
        for name, meta in finished.items():
            want = {**key, **({"donor": _donor_desc(args)} if name == "other_video" else {})}
            for k, v in want.items():
                if meta.get(k) != v:
                    raise CommandError(
                        f"--out {args.out}: {name}/ was made by another run (its {k} is {meta.get(k)!r}, "
                        f"this run's is {v!r}); use --force to replace {args.out}, or another --out")
    else:
        finished = {}
    return _Plan(src=src, names=names, skipped=skipped, out=out, state=state, finished=finished,
                 single=single, backend=backend, key=key)


def _backend(name: str | None) -> str:
    from nrvl.video import resolve_backend

    return resolve_backend(name)  # a bad $NRVL_VIDEO_BACKEND raises ValueError naming it


def _run_key(args, src: Path, backend: str) -> dict:
    """The settings a finished noise folder must share with this run to be kept on a rerun."""
    from nrvl import __version__

    st = src.stat()
    return {"input": str(src.resolve()), "input_bytes": st.st_size, "input_mtime_ns": st.st_mtime_ns,
            "ratio": args.ratio, "seed": args.seed, "severity": args.severity,
            "frames_requested": "all" if args.all_frames else args.frames, "fps_requested": args.fps,
            "decode_backend": backend, "nrvl_version": __version__}


def _decode(path: Path, n: int | None, device, backend: str | None = None, *, fps_for=None):
    """Frames uint8 ``[T, 3, H, W]``, their source indices and the stream info.

    ``fps_for(info)``, when given, is called before any frame is decoded (to refuse a
    source frame rate the mp4 cannot hold without decoding the whole clip first).
    """
    from nrvl.video import decode_frames, vlmeval_frame_indices

    seen = {}

    def pick(info):
        seen["info"] = info
        if fps_for is not None:
            fps_for(info)
        return list(range(info.num_frames)) if n is None else vlmeval_frame_indices(info.num_frames, n)

    frames = decode_frames(path, pick, device=device, backend=backend)
    info = seen["info"]
    idx = list(range(info.num_frames)) if n is None else vlmeval_frame_indices(info.num_frames, n)
    return frames, idx, info


def _donor_desc(args) -> str:
    if args.donor is not None:
        return str(Path(args.donor).resolve())
    return f"generated (make_clip, seed {args.seed + 1})"


def generated_donor(T: int, H: int, W: int, seed: int, device):
    """The default other_video donor of both commands: ``make_clip`` with the clip seed + 1."""
    from nrvl.video import make_clip

    return make_clip(T, max(H, 8), max(W, 8), seed=seed + 1, device=device)


def _donor(args, frames, device, backend):
    """The other_video donor: ``--donor`` decoded to as many frames as the input, or a generated clip."""
    T, _, H, W = frames.shape
    if args.donor is not None:
        donor, _, _ = _decode(Path(args.donor), T, device, backend)
        return donor
    return generated_donor(T, H, W, args.seed, device)


def _even(frames):
    """Pad H and W to even sizes by repeating the last row/column (yuv420p needs even sizes)."""
    import torch

    if frames.shape[-2] % 2:
        frames = torch.cat([frames, frames[..., -1:, :]], dim=-2)
    if frames.shape[-1] % 2:
        frames = torch.cat([frames, frames[..., -1:]], dim=-1)
    return frames


def json_safe(value):
    """``value`` as JSON: tuples become lists, tensors small lists (else a description), callables their name."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    import torch

    if isinstance(value, torch.Tensor):
        if value.numel() <= 64:
            return json_safe(value.detach().cpu().tolist())
        return f"tensor {list(value.shape)} {value.dtype}"
    if callable(value):
        return getattr(value, "__qualname__", type(value).__name__)
    return repr(value)


def resolved_params(name: str, severity: int | None, **given) -> dict:
    """The parameters the noise runs with: its defaults, the severity's overrides, then ``given``."""
    import nrvl.kernels as K

    spec = K.NOISES[name]
    params = dict(spec.defaults)
    if severity is not None and spec.severities is not None:
        params.update(spec.severities[severity - 1])
    params.update(given)
    return json_safe(params)


def noise_failure(name: str, e: BaseException) -> str:
    """One line on why a noise failed here, worded for the command line."""
    if name == "target_block" and isinstance(e, FileNotFoundError):
        path = None
        with contextlib.suppress(Exception):
            from nrvl.kernels.occlusion import _weights_file

            path = _weights_file()[1]
        where = f" ({path})" if path else ""
        return (f"target_block needs an object detector: the default COCO detector's weights file{where} "
                "is missing and nrvl never downloads it (copy it there, or set TORCH_HOME); "
                "a detector of your own can be given only from Python (nrvl.kernels.corrupt)")
    return " ".join(f"{type(e).__name__}: {e}".split())


def write_clip(folder: Path, name: str, frames, fps: float, meta: dict) -> None:
    """``<name>.mp4``, ``frame_XXX.png`` per frame and ``meta.json`` in ``folder`` (which exists).

    ``meta`` gets the mp4's size (padded to even sizes, see the module docstring).
    """
    from PIL import Image

    from nrvl.video import write_video

    cpu = frames.cpu()
    even = _even(cpu)
    write_video(even, folder / f"{name}.mp4", fps=fps)
    public_file(folder / f"{name}.mp4")
    width = max(3, len(str(cpu.shape[0] - 1)))
    hwc = cpu.permute(0, 2, 3, 1).contiguous().numpy()
    for k in range(cpu.shape[0]):
        Image.fromarray(hwc[k], "RGB").save(folder / f"frame_{k:0{width}d}.png", compress_level=1)
    meta = {**meta, "mp4_height": int(even.shape[2]), "mp4_width": int(even.shape[3]),
            "mp4_padded": tuple(even.shape) != tuple(cpu.shape)}
    (folder / "meta.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")


def _cannot_write(out, e: OSError, kept: int = 0, where: Path | None = None) -> CommandError:
    """One line for a failed write; it names ``--out`` (or the folder ``where`` it is made), never a temp file."""
    reason = e.strerror or " ".join(str(e).split()) or type(e).__name__
    note = f"; {kept} finished noise(s) kept there, rerun the same command to do the rest" if kept else ""
    return CommandError(f"--out {out}: cannot write{f' in {where}' if where else ''} ({reason}){note}")


class _Job:
    """The decoded clip and everything shared by the noises of one run."""

    def __init__(self, args, plan, device):
        self.args, self.plan, self.device = args, plan, device

    def decode(self) -> None:
        args = self.args

        def check_fps(info):
            if args.fps is None and args.all_frames and info.fps > 0 and not _fps_ok(info.fps):
                raise CommandError(f"INPUT's frame rate {info.fps:g} is outside the mp4 writer's range "
                                   f"[{MIN_FPS:g}, {MAX_FPS:g}); give one with --fps")

        self.frames, self.indices, self.info = _decode(self.plan.src, None if args.all_frames else args.frames,
                                                       self.device, self.plan.backend, fps_for=check_fps)
        info = self.info
        self.fps = args.fps or (info.fps if args.all_frames and info.fps > 0 else SAMPLED_FPS)
        self.donor = _donor(args, self.frames, self.device, self.plan.backend) \
            if "other_video" in self.plan.names else None

    def corrupt(self, name: str):
        """The corrupted frames and the frames it touched."""
        import nrvl.kernels as K

        kw = {"donor": self.donor} if name == "other_video" else {}
        noisy, params = K.corrupt(self.frames, name, self.args.ratio, seed=self.args.seed,
                                  severity=self.args.severity, return_params=True, **kw)
        return noisy, params["frames"][0].nonzero().flatten().tolist()

    def meta(self, name: str, touched: list[int]) -> dict:
        args, frames, info = self.args, self.frames, self.info
        given = {"donor": _donor_desc(args)} if name == "other_video" else {}
        meta = {
            **self.plan.key, "noise": name, "params": resolved_params(name, args.severity, **given),
            "frames": int(frames.shape[0]), "source_frame_indices": self.indices,
            "source_num_frames": info.num_frames, "source_fps": info.fps, "mp4_fps": self.fps,
            "touched_frames": touched, "height": int(frames.shape[2]), "width": int(frames.shape[3]),
        }
        if name == "other_video":
            meta["donor"] = _donor_desc(args)
        return meta


def run(args) -> int:
    plan = _validate(args)
    device = resolve_device(args.device)
    job = _Job(args, plan, device)
    return _run_one(job) if plan.single else _run_several(job)


def _run_one(job: _Job) -> int:
    args, plan = job.args, job.plan
    name = plan.names[0]
    stack = contextlib.ExitStack()
    try:  # made before decoding: an --out that cannot be written fails at once
        tmp = stack.enter_context(staged_dir(plan.out))
    except OSError as e:
        raise _cannot_write(args.out, e, where=_nearest_folder(plan.out.absolute().parent)) from e
    with stack:
        job.decode()
        try:
            noisy, touched = job.corrupt(name)
        except Exception as e:
            raise CommandError(f"{name}: {noise_failure(name, e)}") from e
        try:
            write_clip(tmp, name, noisy, job.fps, job.meta(name, touched))
        except OSError as e:
            raise _cannot_write(args.out, e) from e
    print(f"wrote {name} x {job.frames.shape[0]} frames (ratio {args.ratio:g}, seed {args.seed}) to {plan.out}")
    return 0


def _run_several(job: _Job) -> int:
    """Each noise lands in ``out/<noise>`` when done; ``index.json`` last; see the module docstring."""
    from tqdm import tqdm

    from nrvl.atomic import atomic_write_text

    args, plan = job.args, job.plan
    out = plan.out.absolute()
    skipped = dict(plan.skipped)
    todo = [n for n in plan.names if n not in plan.finished]
    created: list[Path] = []
    aside = None
    try:
        if args.force and plan.state in ("single", "several"):  # the old output waits aside
            aside = out.parent / temp_name(out.name, "old")
            os.replace(out, aside)
            out.mkdir()
        elif plan.state == "new":
            created = make_dirs(out)
        probe_writable(out, f"--out {args.out}")
    except BaseException as e:
        _undo(out, created, aside)
        if isinstance(e, OSError):
            raise _cannot_write(args.out, e, where=_nearest_folder(out.parent)) from e
        raise
    if plan.skipped:
        print(f"nrvl corrupt: skipping {len(plan.skipped)} noise(s) without a severity table: "
              f"{', '.join(plan.skipped)}", file=sys.stderr)
    if plan.finished:
        done = [n for n in plan.names if n in plan.finished]
        which = f": {', '.join(done)}" if len(done) <= 8 else ""
        print(f"nrvl corrupt: skipping {len(done)} noise(s) already finished in {args.out} with the same "
              f"settings{which} (--force redoes them)", file=sys.stderr)
    landed: list[str] = []
    staging = None
    try:
        if todo:
            job.decode()
        bar = tqdm(todo, desc="nrvl corrupt", unit="noise", disable=None, file=sys.stderr)
        for name in bar:
            try:
                noisy, touched = job.corrupt(name)
            except Exception as e:  # one noise that cannot run here (a missing asset) must not sink the others
                skipped[name] = noise_failure(name, e)
                if len(todo) > 1:  # else the error line that follows says it
                    bar.write(f"nrvl corrupt: skipping {name}: {skipped[name]}", file=sys.stderr)
                continue
            staging = new_temp_dir(out, name)
            write_clip(staging, name, noisy, job.fps, job.meta(name, touched))
            if not landed:  # the folder is about to change: it is unfinished until index.json is back
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(out / "index.json")
            land(staging, out / name)
            staging = None
            landed.append(name)
        written = [n for n in plan.names if n in landed or n in plan.finished]
        written += [n for n in plan.finished if n not in written]  # kept from a run of another selection
        if not written:
            raise CommandError(f"every noise failed; first: {next(iter(skipped.values()))}")
        index = {"written": _registry_order(written), "skipped": skipped}
        atomic_write_text(out / "index.json", json.dumps(index, indent=2) + "\n")
    except BaseException as e:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
        kept = len(landed) + len(plan.finished)
        if not landed:
            _undo(out, created, aside)
        elif aside is not None:
            shutil.rmtree(aside, ignore_errors=True)
        if isinstance(e, KeyboardInterrupt) and kept:
            how = "terminated" if e.args == ("terminated",) else "interrupted"
            e.args = (f"{how}; {kept} finished noise(s) kept in {args.out}, rerun the same command to do the rest",)
        if isinstance(e, OSError):
            raise _cannot_write(args.out, e, kept) from e
        raise
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)
    again = [n for n in written if n in plan.finished]
    size = f" x {job.frames.shape[0]} frames" if todo else ""
    print(f"wrote {len(landed)} noise{'' if len(landed) == 1 else 's'}{size} (ratio {args.ratio:g}, "
          f"seed {args.seed}) to {plan.out}"
          + (f"; {len(again)} already there" if again else "")
          + (f"; skipped {len(skipped)}: {', '.join(skipped)}" if skipped else ""))
    return 0


def _nearest_folder(p: Path) -> Path:
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def _registry_order(names: list[str]) -> list[str]:
    import nrvl.kernels as K

    order = {n: i for i, n in enumerate(K.list_noises())}
    return sorted(names, key=lambda n: order.get(n, len(order)))


def _undo(out: Path, created: list[Path], aside: Path | None) -> None:
    """Nothing landed: leave ``--out`` as it was before the run."""
    with contextlib.suppress(OSError):
        for entry in os.scandir(out):
            if OUR_TEMP.fullmatch(entry.name) and f"-{os.getpid()}." in entry.name:
                shutil.rmtree(entry.path, ignore_errors=True)
    if aside is not None and aside.exists():
        with contextlib.suppress(OSError):
            if out.exists():
                out.rmdir()
            os.replace(aside, out)
    remove_dirs(created)
