"""``python -m nrvl.demo`` (``make demo``): the whole evaluation on the demo data, offline.

Runs :mod:`nrvl.evaluate` on ``MMBench_Video_demo`` (12 questions on 6
generated clips) with ``tiny-qwen2.5-vl`` (a random-weight Qwen2.5-VL built
offline: it runs the real transformers code path, **its answers are
meaningless**), a noise (``gaussian`` at ratio 0.9 by default) and the offline
``exact_matching`` judge, then prints where the predictions and the rating are.
``--judge gpt-4o`` grades with GPT-4o instead (needs ``OPENAI_API_KEY``).

Any other ``eval/run.py`` flag can be added, e.g. ``--limit 4``; it is checked against
``eval/run.py``'s parser before anything runs, so a bad flag gets one line naming it.
The demo's own ``--help`` (``DESCRIPTION``) is plain text.

It also draws a gallery of the noises on a generated clip (``gallery.png`` in the
work dir; ``--no-gallery`` skips it). target_block is left out of it: its default
detector needs COCO weights this offline demo does not have.

``--sweep`` runs a small sweep instead (:mod:`nrvl.sweep`: the clean run plus
``gaussian,motion_blur,frame_drop`` x ``0.3,0.6,0.9`` in one process, one model
load, each clip decoded once) and then ``nrvl report`` on its work dir; it draws no gallery.
"""
from __future__ import annotations

import argparse
import sys
import time
from typing import Optional, Sequence


SINGLE = ("gaussian", "0.9")
SWEEP = ("gaussian,motion_blur,frame_drop", "0.3,0.6,0.9")


DESCRIPTION = """\
The whole NRVL evaluation on the demo data, offline: MMBench_Video_demo (12 questions
on 6 generated clips) answered by tiny-qwen2.5-vl, a random-weight Qwen2.5-VL built
offline (it runs the real transformers code, but its answers are meaningless), with
one noise (gaussian at ratio 0.9 unless you say otherwise), graded by the offline
exact_matching judge. It prints where the predictions, scores and rating are, and
draws a gallery of the noises on a generated clip (gallery.png in the work dir;
target_block is left out: its default detector needs COCO weights the demo lacks).

--sweep runs a small sweep instead (the clean run plus gaussian, motion_blur and
frame_drop at ratios 0.3, 0.6, 0.9, in one process with one model load) and then
nrvl report on its work dir; a sweep draws no gallery."""

EPILOG = """\
Any other flag of eval/run.py is passed on to it, e.g. --limit 4, --seed 1 or --mode infer
(see python eval/run.py --help). A rerun resumes: finished samples are kept."""


def build_parser():
    from nrvl.cli import _Parser  # one-line argument errors, as the nrvl command

    p = _Parser(prog="python -m nrvl.demo", description=DESCRIPTION, epilog=EPILOG,
                formatter_class=argparse.RawDescriptionHelpFormatter,
                allow_abbrev=False)  # else --mode would be taken for --model
    p.add_argument("--model", default="tiny-qwen2.5-vl",
                   help="model to evaluate (default tiny-qwen2.5-vl, the offline random-weight one)")
    p.add_argument("--noise_name", "--noise-name", dest="noise_name", default=None, metavar="NOISE",
                   help=f"noise, family, 'all' or a comma list (default {SINGLE[0]}; with --sweep {SWEEP[0]})")
    p.add_argument("--ratio", default=None, metavar="R",
                   help=f"ratio or comma list (default {SINGLE[1]}; with --sweep {SWEEP[1]})")
    p.add_argument("--sweep", action="store_true",
                   help="a sweep of noises x ratios plus the clean run, then the report (no gallery)")
    p.add_argument("--judge", default="exact_matching",
                   help="exact_matching (the default, offline) or e.g. gpt-4o (needs OPENAI_API_KEY)")
    p.add_argument("--work-dir", dest="work_dir", default="./outputs/demo", metavar="DIR",
                   help="where everything is written (default ./outputs/demo)")
    p.add_argument("--no-gallery", dest="gallery", action="store_false",
                   help="do not draw gallery.png (drawn by default, except with --sweep)")
    return p


def _check_passed_on(eval_argv: list[str], prog: str) -> str | None:
    """The one-line complaint of eval/run.py's parser about ``eval_argv``, or None when it parses."""
    from nrvl import evaluate

    class Bad(Exception):
        pass

    parser = evaluate.build_parser(prog)

    def error(message):
        raise Bad(message)

    parser.error = error
    try:
        parser.parse_args(eval_argv)
    except Bad as e:
        return str(e)
    return None


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = build_parser()
    try:
        args, rest = p.parse_known_args(argv)
    except SystemExit as e:  # --help, or an error already printed on one line
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
    noise, ratio = SWEEP if args.sweep else SINGLE
    noise, ratio = args.noise_name or noise, args.ratio or ratio
    eval_argv = ["--data", "MMBench_Video_demo", "--model", args.model, "--judge", args.judge,
                 "--noise_name", noise, "--ratio", str(ratio), "--work-dir", args.work_dir, *rest]
    problem = _check_passed_on(eval_argv, p.prog)
    if problem is not None:
        print(f"{p.prog}: error: {problem} (see '{p.prog} --help')", file=sys.stderr)
        return 2

    from nrvl import evaluate, sweep
    from nrvl.cli import reuse_cpu_memory_unless_opted_out

    reuse_cpu_memory_unless_opted_out()
    start = time.perf_counter()
    rc = evaluate.main(eval_argv, prog="python -m nrvl.demo")
    if rc != 0:
        return rc
    if sweep.is_sweep(noise, ratio):  # --sweep, or lists given without it
        from nrvl import report

        rc = report.main([args.work_dir])
        print(f"\nNRVL demo sweep done in {time.perf_counter() - start:.1f} s"
              + (" (tiny random model: the answers are meaningless)" if args.model == "tiny-qwen2.5-vl" else ""))
        return rc
    eargs = evaluate.build_parser().parse_args(eval_argv)
    paths = evaluate.run_paths(eargs.work_dir, args.model, "MMBench_Video_demo", eargs.noise_name,
                               sweep.parse_ratios(eargs.ratio)[0], args.judge)
    note = " (tiny random model: the answers are meaningless)" if args.model == "tiny-qwen2.5-vl" else ""
    gallery = _gallery(args.work_dir) if args.gallery else None
    print(f"\nNRVL demo done in {time.perf_counter() - start:.1f} s{note}")
    print(f"  predictions: {paths.predictions}")
    print(f"  rating:      {paths.rating}")
    print(f"  scores:      {paths.scores}")
    if gallery:
        print(f"  gallery:     {gallery}")
    return 0


def _gallery(work_dir: str):
    """The noises at ratio 0.6 on a generated clip, one row each (``nrvl gallery``)."""
    from pathlib import Path

    import nrvl.kernels as K
    from nrvl import cli

    out = Path(work_dir) / "gallery.png"
    names = [n for n in K.list_noises() if n != "target_block"]
    rc = cli.main(["gallery", "--ratio", "0.6", "--out", str(out), "--noises", *names])
    return out if rc == 0 else None


if __name__ == "__main__":
    sys.exit(main())
