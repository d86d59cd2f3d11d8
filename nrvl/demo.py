"""``python -m nrvl.demo`` (``make demo``): the whole evaluation on the demo data, offline.

Runs :mod:`nrvl.evaluate` on ``MMBench_Video_demo`` (12 questions on 6
generated clips) with ``tiny-qwen2.5-vl`` (a random-weight Qwen2.5-VL built
offline: it runs the real transformers code path, **its answers are
meaningless**), a noise (``gaussian`` at ratio 0.9 by default) and the offline
``exact_matching`` judge, then prints where the predictions and the rating are.
``--judge gpt-4o`` grades with GPT-4o instead (needs ``OPENAI_API_KEY``).

Any other ``eval/run.py`` flag can be added, e.g. ``--noise_name motion_blur``.

It also draws a gallery of the noises on a generated clip (``gallery.png`` in the
work dir; ``--no-gallery`` skips it). target_block is left out of it: its default
detector needs COCO weights this offline demo does not have.

``--sweep`` runs a small sweep instead (:mod:`nrvl.sweep`: the clean run plus
``gaussian,motion_blur,frame_drop`` x ``0.3,0.6,0.9`` in one process, one model
load, each clip decoded once) and then ``nrvl report`` on its work dir.
"""
from __future__ import annotations

import argparse
import sys
import time
from typing import Optional, Sequence


SINGLE = ("gaussian", "0.9")
SWEEP = ("gaussian,motion_blur,frame_drop", "0.3,0.6,0.9")


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m nrvl.demo", description=__doc__.split("\n\n")[1],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                                allow_abbrev=False)  # else --mode would be taken for --model
    p.add_argument("--model", default="tiny-qwen2.5-vl")
    p.add_argument("--noise_name", "--noise-name", dest="noise_name", default=None,
                   help=f"default {SINGLE[0]}; with --sweep {SWEEP[0]}")
    p.add_argument("--ratio", default=None, help=f"default {SINGLE[1]}; with --sweep {SWEEP[1]}")
    p.add_argument("--sweep", action="store_true", help="a sweep of noises x ratios, then the report")
    p.add_argument("--judge", default="exact_matching", help="exact_matching (offline) or e.g. gpt-4o")
    p.add_argument("--work-dir", dest="work_dir", default="./outputs/demo")
    p.add_argument("--no-gallery", dest="gallery", action="store_false", help="skip the gallery PNG")
    args, rest = p.parse_known_args(argv)
    noise, ratio = SWEEP if args.sweep else SINGLE
    noise, ratio = args.noise_name or noise, args.ratio or ratio

    from nrvl import evaluate, sweep
    from nrvl.cli import reuse_cpu_memory_unless_opted_out

    reuse_cpu_memory_unless_opted_out()
    eval_argv = ["--data", "MMBench_Video_demo", "--model", args.model, "--judge", args.judge,
                 "--noise_name", noise, "--ratio", str(ratio), "--work-dir", args.work_dir, *rest]
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
