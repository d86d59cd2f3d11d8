"""``nrvl eval`` / ``eval/run.py``: inference with noise, the store, judging, rating.

::

    python eval/run.py --data MMBench_Video_8frame_nopack --model Qwen2.5-VL-3B-Instruct \\
        --judge gpt-4o --noise_name gaussian --ratio 0.9
    torchrun --nproc-per-node=8 eval/run.py ...        # rank r takes samples r::8

Order of work, so that a mistake costs seconds, not hours:

1. flags checked (names listed when unknown, ratio in [0, 1]), torch not yet imported;
2. rank 0 makes the dataset available and checks the judge (key present,
   endpoint answers: ``Judge.preflight``); every rank checks its TSV and that
   every video file exists; any error stops every rank with one line and exit 2;
3. inference: each rank appends its finished samples to its own JSON Lines
   store (:mod:`nrvl.store`), skipping those already stored, with the next
   batch prepared (decode, resize, noise, processor) in a worker thread while
   the model generates; a progress bar on rank 0 shows samples/s and ETA;
4. after a barrier rank 0 merges the stores in TSV order into
   ``{model}_{data}_{noise}_{ratio}.tsv`` (and ``<that>.meta.json``: the settings
   it was made with, so ``--mode eval`` judges only predictions of its own
   settings), judges it (cached), and writes
   ``{model}_{data}_{noise}_{ratio}_{judge}_rating.json`` and ``..._score.tsv``.

Errors are one line and an exit status (2 bad input, 1 a failed run, such as a
file that cannot be written). Under torchrun any exception of a rank's model
build or inference (an out-of-memory error too) becomes ``rank r: <what>``,
which every rank learns at the next collective, so all stop together at once;
a single process keeps the traceback of such a crash.

Files go to ``<work-dir>/<model>/<noise or origin>/``; a clean run is named
``..._None_None`` as in the original.

A list of noises or ratios (``--noise_name all``, a family such as ``weather``,
``gaussian,motion_blur``; ``--ratio 0.3,0.6,0.9``) makes the run a sweep
(:mod:`nrvl.sweep`): one model load, each video decoded once, every
(noise, ratio) plus the clean run written as separate runs would write them.
"""
from __future__ import annotations

import argparse
import logging
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

from nrvl import dist
from nrvl._faults import kill_point
from nrvl._text import one_line as _one_line

logger = logging.getLogger("nrvl.evaluate")

DEFAULT_JUDGE = "gpt-4-turbo"  # VLMEvalKit's default for every MMBench_Video preset
DEFAULT_DECODE_BACKEND = "torchcodec"  # left out of run fingerprints, so stores written before it was there match
EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


class EvalError(Exception):
    """A problem reported to the user as one line, with an exit code."""

    def __init__(self, message: str, code: int = EXIT_BAD_INPUT):
        super().__init__(message)
        self.code = code


# ----------------------------------------------------------------------------------- flags

def build_parser(prog: str = "eval/run.py") -> argparse.ArgumentParser:
    """The argument parser; builds without importing torch."""
    p = argparse.ArgumentParser(
        prog=prog, description="Evaluate a video LLM on MMBench-Video with injected noise (NRVL).")
    p.add_argument("--data", required=True, help="(required) dataset preset: MMBench_Video_{8,16,64}frame_nopack, "
                   "MMBench_Video_1fps_nopack, MMBench_Video_{8,64}frame_pack and MMBench_Video_1fps_pack "
                   "(one query per video, API models only), or the generated MMBench_Video_demo, "
                   "MMBench_Video_demo_1fps, MMBench_Video_demo_pack")
    p.add_argument("--model", required=True, help="(required) model: Qwen2.5-VL-3B-Instruct, Qwen2.5-VL-7B-Instruct, "
                   "tiny-qwen2.5-vl, GPT4o, openai-compatible")
    p.add_argument("--judge", default=None, help=f"judge model alias (default {DEFAULT_JUDGE}, as VLMEvalKit), "
                   "e.g. gpt-4o, or exact_matching (offline)")
    p.add_argument("--noise_name", "--noise-name", dest="noise_name", default=None,
                   help="noise to inject (nrvl.kernels.list_noises()); omit for the clean 'origin' run. "
                   "'all', a family (e.g. weather) or a comma list sweeps them, the clean run included; "
                   "'-name' or '-family' in the list leaves one out (all,-target_block). target_block's "
                   "detector needs torchvision's COCO weights in $TORCH_HOME/hub/checkpoints (never downloaded)")
    p.add_argument("--ratio", default=None, help="noise ratio in [0, 1] (0.3, 0.6, 0.9 in the paper); "
                   "a comma list (0.3,0.6,0.9) sweeps them")
    p.add_argument("--work-dir", "--work_dir", dest="work_dir", default="./outputs",
                   help="output root (default ./outputs)")
    p.add_argument("--seed", type=int, default=0, help="base seed of every sample's noise (default 0)")
    p.add_argument("--limit", type=int, default=None, help="only the first N questions (TSV order); pack presets "
                   "ask them grouped by video")
    p.add_argument("--batch-size", "--batch_size", dest="batch_size", type=int, default=None,
                   help="samples per model call (default: 1 for local models, --api-nproc for API models)")
    p.add_argument("--mode", choices=("all", "infer", "eval"), default="all",
                   help="all (default): infer, then judge; infer: predictions only; eval: judge existing "
                        "predictions")
    p.add_argument("--nframe", type=int, default=None,
                   help="sample this many frames instead of the preset's sampling")
    p.add_argument("--fps", type=float, default=None,
                   help="sample this many frames per second of video instead of the preset's sampling "
                        "(VLMEvalKit's fps mode, as the 1fps presets); exclusive with --nframe")
    p.add_argument("--device", default=None, help="torch device (default cuda:<local rank> if available, else cpu)")
    p.add_argument("--decode-backend", dest="decode_backend", choices=("torchcodec", "decord"), default=None,
                   help="video decoder (default $NRVL_VIDEO_BACKEND, else torchcodec, falling back to decord "
                        "when torchcodec cannot load)")
    p.add_argument("--video-timing", "--video_timing", dest="video_timing", choices=("vlmevalkit", "real"),
                   default="vlmevalkit",
                   help="Qwen2.5-VL: 'vlmevalkit' (default) gives the processor no fps, as VLMEvalKit does (its temporal "
                        "position ids assume the processor's default rate); 'real' passes the real fps and frame "
                        "indices (a departure from VLMEvalKit's answers)")
    p.add_argument("--preprocess-device", dest="preprocess_device", choices=("cpu", "model"), default=None,
                   help="Qwen2.5-VL: where frames are decoded and resized; 'cpu' (the default) gives VLMEvalKit's "
                        "pixels, 'model' decodes with NVDEC and resizes on the model's GPU (faster; pixels a few "
                        "levels off). The noise runs on the model's device either way")
    p.add_argument("--max-new-tokens", dest="max_new_tokens", type=int, default=None,
                   help="generation cap (default: the model's; 2048 for Qwen2.5-VL and API models, as VLMEvalKit)")
    p.add_argument("--no-prefetch", dest="prefetch", action="store_false",
                   help="prepare batches in the main thread (no overlap with generation; by default the next "
                        "batch is prepared while the model generates)")
    p.add_argument("--api-base", dest="api_base", default=None, help="API model endpoint (OpenAI-compatible /v1)")
    p.add_argument("--api-model", dest="api_model", default=None, help="model name the API endpoint serves")
    p.add_argument("--api-nproc", dest="api_nproc", type=int, default=None,
                   help="concurrent API model requests (default 16)")
    p.add_argument("--judge-base-url", dest="judge_base_url", default=None, help="judge endpoint (/v1 URL)")
    p.add_argument("--judge-key", dest="judge_key", default=None, help="judge API key (else OPENAI_API_KEY)")
    p.add_argument("--judge-nproc", dest="judge_nproc", type=int, default=32,
                   help="concurrent judge requests (default 32)")
    p.add_argument("--judge-retry", dest="judge_retry", type=int, default=6,
                   help="tries per judge request (default 6)")
    p.add_argument("-v", "--verbose", action="store_true", help="log more (never the keys)")
    return p


@dataclass(frozen=True)
class RunPaths:
    """Where one run's files go.

    Attributes:
        folder: ``<work-dir>/<model>/<noise or origin>``.
        stem: ``{model}_{data}_{noise}_{ratio}``.
        predictions: ``<stem>.tsv``.
        rating: ``<stem>_<judge>_rating.json`` (None without a judge).
        scores: ``<stem>_<judge>_score.tsv``.
        judge_cache: ``<stem>_<judge>_judge.jsonl``, the judge's reply cache.
    """

    folder: Path
    stem: str
    predictions: Path
    rating: Optional[Path]
    scores: Optional[Path]
    judge_cache: Optional[Path]


def _safe(part) -> str:
    return re.sub(r"[/\\\s]+", "_", str(part))


def run_paths(work_dir, model_tag: str, data_tag: str, noise: Optional[str], ratio: Optional[float],
              judge: Optional[str]) -> RunPaths:
    """The output paths of a run (see :class:`RunPaths`)."""
    folder = Path(work_dir) / _safe(model_tag) / (noise or "origin")
    stem = "_".join(_safe(p) for p in (model_tag, data_tag, noise, ratio))
    if judge:
        j = _safe(judge)
        return RunPaths(folder, stem, folder / f"{stem}.tsv", folder / f"{stem}_{j}_rating.json",
                        folder / f"{stem}_{j}_score.tsv", folder / f"{stem}_{j}_judge.jsonl")
    return RunPaths(folder, stem, folder / f"{stem}.tsv", None, None, None)


# ----------------------------------------------------------------------------------- checks

def _check_flags(args) -> None:
    """Checks that need neither torch nor files."""
    from nrvl.data import list_datasets
    from nrvl.models import list_models

    if args.data not in list_datasets():
        raise EvalError(f"unknown --data {args.data!r}; valid: {', '.join(list_datasets())}")
    if args.model not in list_models():
        raise EvalError(f"unknown --model {args.model!r}; valid: {', '.join(list_models())}")
    from nrvl.sweep import parse_ratios

    parse_ratios(args.ratio)  # a number or a comma list, each in [0, 1]
    if args.noise_name is not None and args.ratio is None:
        raise EvalError(f"--noise_name {args.noise_name} needs --ratio (a fraction in [0, 1], e.g. 0.9)")
    if args.ratio is not None and args.noise_name is None:
        raise EvalError("--ratio was given without --noise_name")
    for flag, value in (("--limit", args.limit), ("--batch-size", args.batch_size), ("--nframe", args.nframe),
                        ("--max-new-tokens", args.max_new_tokens), ("--api-nproc", args.api_nproc),
                        ("--judge-nproc", args.judge_nproc), ("--judge-retry", args.judge_retry)):
        if value is not None and value < 1:
            raise EvalError(f"{flag} must be >= 1, got {value}")
    fps = getattr(args, "fps", None)
    if fps is not None:
        if args.nframe is not None:
            raise EvalError("give --nframe or --fps, not both (VLMEvalKit refuses a preset with both)")
        if not (fps > 0 and fps < float("inf")):
            raise EvalError(f"--fps must be a number > 0, got {fps}")
    from nrvl.data import get_spec

    if get_spec(args.data).pack and not _is_api(args.model):
        raise EvalError(f"--data {args.data} asks all of a video's questions in one query (pack mode), which "
                        f"VLMEvalKit allows for API models only; use a preset without _pack with --model {args.model}")
    if args.model == "openai-compatible" and not args.api_model:
        raise EvalError("--model openai-compatible needs --api-model (the model name the endpoint serves)")


def _check_work_dir(work_dir) -> None:
    """Fail now, not after inference, when ``--work-dir`` cannot be written.

    Probes the folder, or its nearest existing ancestor, by making and removing a
    directory (``os.access`` is not enough: root passes it where the kernel still
    refuses, as on a read-only mount). Leaves nothing behind.
    """
    import tempfile

    path = Path(work_dir).absolute()
    where = path
    while not where.exists() and where != where.parent:
        where = where.parent
    if not where.is_dir():
        raise EvalError(f"--work-dir {work_dir}: {where} is a file, not a folder")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".nrvl-write-probe-", dir=where))
    except OSError as e:
        raise EvalError(f"--work-dir {work_dir}: cannot write in {where} ({e.strerror or e})") from None


def _check_noise(name: Optional[str]) -> None:
    if name is None:
        return
    from nrvl.kernels import list_noises

    if name not in list_noises():
        raise EvalError(f"unknown --noise_name {name!r}; valid: {', '.join(list_noises())}")


def check_detector_weights(noises, mode: str) -> None:
    """Before any work: target_block's default detector needs torchvision's COCO weights on disk.

    Without them a run (or a sweep, after hours of other noises) would stop at the first
    target_block sample; ``--mode eval`` corrupts nothing and needs no weights.

    Raises:
        EvalError: target_block is asked for and the weights file is missing.
    """
    if mode == "eval" or "target_block" not in noises:
        return
    from nrvl.kernels.occlusion import check_default_detector

    try:
        check_default_detector(instead="Or leave target_block out, e.g. --noise_name all,-target_block.")
    except FileNotFoundError as e:
        raise EvalError(str(e)) from None


def _collective(error, info: dist.DistInfo, code: int = EXIT_BAD_INPUT) -> None:
    """Every rank learns every rank's error; all stop together with the first one.

    ``error`` is None, a one-line message (exit ``code``), or ``(message, exit code)``.
    """
    if error is not None and not isinstance(error, tuple):
        error = (str(error), code)
    errors = dist.gather_errors(error)
    if errors:
        message, first_code = errors[0]
        raise EvalError(message, first_code)


def describe_os_error(e: OSError) -> str:
    """One line for a file that could not be written or read, naming it: ``cannot write <path>: <reason>``."""
    reason = e.strerror or _one_line(e)
    path = getattr(e, "nrvl_path", None) or e.filename
    if path is None:
        return f"I/O error: {reason}"
    verb = "write" if getattr(e, "nrvl_write", False) else "read or write"
    return f"cannot {verb} {path}: {reason}"


def _rank_error(info: dist.DistInfo, e: Exception, verbose: bool = False, config_code: int = EXIT_BAD_INPUT) -> tuple:
    """``(one line, exit code)`` for an exception of rank ``info.rank``'s inference, for :func:`_collective`:
    a configuration error as it is (exit ``config_code``), anything else as ``rank r: <what>`` (exit 1),
    its traceback logged here with ``--verbose``. An exception :func:`_collected` does not take is
    raised again."""
    from nrvl.models import ModelConfigError

    if not _collected(e, info):
        raise e

    if isinstance(e, EvalError):
        return _one_line(e), e.code
    if isinstance(e, ModelConfigError):
        return _one_line(e), config_code
    if verbose:
        logger.error("rank %d failed", info.rank, exc_info=e)
    text = describe_os_error(e) if isinstance(e, OSError) else f"{type(e).__name__}: {_one_line(e)}"
    return f"rank {info.rank}: {text}", EXIT_FAILED


#: HTTP client loggers: at INFO they log every request's full URL, and a base URL may hold
#: credentials (``http://user:key@host/v1``); they stay at WARNING even with ``--verbose``.
HTTP_LOGGERS = ("httpx", "httpx2", "httpcore", "httpcore2", "openai", "urllib3")
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/\s@]+@")


class _RedactUserinfo(logging.Filter):
    """Masks the userinfo (``user:password@``) of any URL in a log record's text."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            text = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record: leave it to the handler
            return True
        if "@" in text and _USERINFO.search(text):
            record.msg, record.args = _USERINFO.sub(r"\g<scheme>***@", text), None
        return True


def _quiet_libraries(verbose: bool) -> None:
    level = logging.INFO if verbose else logging.WARNING
    root = logging.getLogger()
    before = list(root.handlers)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    for handler in root.handlers:
        if handler not in before and not any(isinstance(f, _RedactUserinfo) for f in handler.filters):
            handler.addFilter(_RedactUserinfo())  # the handler set up here: no URL credentials, whatever logs
    for name in HTTP_LOGGERS:
        lib = logging.getLogger(name)
        lib.setLevel(logging.WARNING)
        if not any(isinstance(f, _RedactUserinfo) for f in lib.filters):
            lib.addFilter(_RedactUserinfo())
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        import transformers

        transformers.utils.logging.disable_progress_bar()
        if not verbose:
            transformers.utils.logging.set_verbosity_error()
    except ImportError:  # pragma: no cover
        pass


# ----------------------------------------------------------------------------------- inference

def _requests(samples, args, nframe: Optional[int], dataset_samples=None, fps: Optional[float] = None):
    """The model requests of ``samples``, each sampling ``nframe`` frames or ``fps`` frames per second;
    ``dataset_samples`` (every sample of the dataset, whatever this rank runs and whatever
    ``--limit``) is the pool ``other_video`` draws its donor videos from."""
    from nrvl.data import get_spec
    from nrvl.kernels import derive_seed
    from nrvl.models import ModelRequest

    data = getattr(args, "data", None)
    pack = bool(data) and get_spec(data).pack  # then each sample is a pack: index and video are the video id
    videos = None
    if args.noise_name == "other_video":
        if dataset_samples is None:
            raise EvalError("other_video needs the dataset's videos to draw donors from")
        videos = sorted({(s.video, s.video_path) for s in dataset_samples})  # once, not per sample
    out = []
    for s in samples:
        seed = derive_seed(args.seed, s.video, s.index, args.noise_name, args.ratio)
        donor = _donor_video(s, seed, videos) if videos is not None else None
        out.append(ModelRequest(index=s.index, question=s.question, video_path=s.video_path, video=s.video,
                                nframe=nframe, fps=fps, pack=pack, noise=args.noise_name, ratio=args.ratio,
                                seed=seed,
                                donor_path=donor[1] if donor else None, donor_video=donor[0] if donor else ""))
    return out


def _donor_video(sample, seed: int, videos: list) -> tuple:
    """``(video id, path)`` of ``sample``'s other_video donor: one of the dataset's other videos
    (``videos``: every ``(id, path)``, sorted), picked by the sample's seed (so independent of
    rank, batch and order), never its own."""
    others = [v for v in videos if v[0] != sample.video]
    if not others:
        raise EvalError("--noise_name other_video needs a dataset with at least two videos "
                        f"(every sample here is from {sample.video!r})")
    return others[seed % len(others)]


def _progress(total: int, enabled: bool, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="sample", file=sys.stderr, disable=not enabled,
                dynamic_ncols=True, smoothing=0.1)


def infer(model, requests: Sequence, store, *, batch_size: int, info: dist.DistInfo, prefetch: bool = True,
          show_progress: bool = True) -> dict:
    """Run ``model`` over ``requests`` (already this rank's, already minus stored ones), storing each result.

    A batch whose preparation fails on a video (:class:`nrvl.video.VideoDecodeError`)
    is redone one sample at a time; a sample whose video cannot be decoded is
    stored as failed with an empty prediction (scored -1, redone next run).

    Returns:
        Counts: ``{"done": n, "failed": n, "seconds": s}``.
    """
    import concurrent.futures

    from nrvl.store import make_record
    from nrvl.video import VideoDecodeError

    batches = [list(requests[i:i + batch_size]) for i in range(0, len(requests), batch_size)]
    counts = {"done": 0, "failed": 0, "seconds": 0.0}
    bar = _progress(len(requests), show_progress and info.is_main,
                    f"{model.name} rank 0/{info.world_size}" if info.distributed else model.name)
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="nrvl-prepare") if prefetch else None

    def prepare(batch):
        kill_point("infer.prepare")
        return model.prepare(batch)

    def submit(batch):
        if pool is None:
            return None
        return pool.submit(prepare, batch)

    def store_batch(batch, answers, seconds):
        recs = []
        for req, ans in zip(batch, answers):
            failed = model.failed(ans)
            counts["failed"] += failed
            recs.append(make_record(req.index, ans, run=store.run, video=req.video, seed=req.seed, failed=failed,
                                    rank=info.rank, world_size=info.world_size, seconds=seconds / len(batch)))
        store.append(recs)
        counts["done"] += len(batch)
        bar.update(len(batch))

    start = time.perf_counter()
    try:
        pending = submit(batches[0]) if batches else None
        for k, batch in enumerate(batches):
            t0 = time.perf_counter()
            failure = None
            try:
                prepared = pending.result() if pending is not None else prepare(batch)
            except VideoDecodeError as e:
                prepared, failure = None, e
            following = batches[k + 1] if k + 1 < len(batches) else None
            if prepared is not None:
                pending = submit(following) if following else None  # overlaps with generate below
                kill_point("infer.generate")
                answers = model.generate(prepared)
                store_batch(batch, answers, time.perf_counter() - t0)
                continue
            for req in batch:  # isolate the sample(s) whose video does not decode; nothing else runs meanwhile
                t1 = time.perf_counter()
                try:
                    if len(batch) == 1:
                        raise failure
                    answers = model.generate(model.prepare([req]))
                    store_batch([req], answers, time.perf_counter() - t1)
                except VideoDecodeError as e:
                    logger.warning("index %s: %s", req.index, _one_line(e))
                    store.append(make_record(req.index, "", run=store.run, video=req.video, seed=req.seed,
                                             failed=True, rank=info.rank, world_size=info.world_size))
                    counts["done"] += 1
                    counts["failed"] += 1
                    bar.update(1)
            pending = submit(following) if following else None
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        bar.close()
    counts["seconds"] = time.perf_counter() - start
    return counts


# ----------------------------------------------------------------------------------- main

def _model_tag(args) -> str:
    if args.model == "openai-compatible":
        return _safe(args.api_model)
    return args.model


def check_model_tag(args, paths) -> None:
    """Refuse to write over the outputs of another ``--api-model`` whose name has the same file tag
    (``org/m`` and ``org_m`` are both ``org_m``): its predictions' sidecar names it.

    Raises:
        EvalError: the predictions at ``paths`` are another API model's (exit 2).
    """
    from nrvl.store import read_predictions_meta

    if args.model != "openai-compatible" or not paths.predictions.is_file():
        return
    meta, _ = read_predictions_meta(paths.predictions)
    made = (meta or {}).get("settings")
    if isinstance(made, dict) and made.get("model") == args.model and made.get("api_model") not in (None, args.api_model):
        raise EvalError(f"{paths.predictions} holds predictions of --api-model {made['api_model']!r}, whose file "
                        f"names are those of {args.api_model!r}; use another --work-dir for one of them")


def run(args, reuse_cpu_memory: bool = False):
    """Run one evaluation from parsed flags; returns its paths. Raises :class:`EvalError`.

    Lists in ``--noise_name``/``--ratio`` make it a sweep (:func:`nrvl.sweep.run_sweep`),
    which returns the paths of every run, the clean one first. ``reuse_cpu_memory``: once the
    flags are checked, turn on ``nrvl.kernels.reuse_cpu_memory()`` as the ``nrvl`` command does
    (``NRVL_REUSE_CPU_MEMORY=0`` opts out); ``eval/run.py`` asks for it.
    """
    info = _dist_info()
    _check_flags(args)
    _check_work_dir(args.work_dir)
    if reuse_cpu_memory:  # imports torch: only after the flags are known good
        from nrvl.cli import reuse_cpu_memory_unless_opted_out

        reuse_cpu_memory_unless_opted_out()
    from nrvl import sweep

    if sweep.is_sweep(args.noise_name, args.ratio):
        return sweep.run_sweep(args, info)
    args.ratio = sweep.parse_ratios(args.ratio)[0] if args.ratio is not None else None
    _check_noise(args.noise_name)  # imports torch (nrvl.kernels)
    check_detector_weights([args.noise_name], args.mode)
    _quiet_libraries(args.verbose)
    setup = _setup(args, info)
    nframe, fps, data_tag, judge_name = setup.nframe, setup.fps, setup.data_tag, setup.judge_name
    paths = run_paths(args.work_dir, _model_tag(args), data_tag, args.noise_name, args.ratio, judge_name)
    check_model_tag(args, paths)

    if args.mode != "eval":
        _run_inference(args, info, setup.device, setup.samples, nframe, data_tag, paths,
                       donor_pool=setup.dataset.samples(), fps=fps, store_kwargs=setup.store_kwargs)
    if not info.is_main:
        return paths
    table = setup.dataset.rows(args.limit)
    if args.mode != "eval":
        _merge(args, nframe, data_tag, paths, table, fps=fps, store_kwargs=setup.store_kwargs)
    else:
        check_predictions(args, nframe, data_tag, paths, table, fps=fps, store_kwargs=setup.store_kwargs)
    if judge_name:
        _judge_and_rate(paths, table, setup.judge, judge_name)
    return paths


def _dist_info() -> dist.DistInfo:
    """This process's rank and world from torchrun's environment; a bad value is a one-line error (exit 2)."""
    try:
        info = dist.info_from_env()
        if info.distributed:
            dist.timeout_from_env()
    except ValueError as e:
        raise EvalError(_one_line(e)) from None
    return info


@dataclass
class Setup:
    """What every run of one command shares, ready before any inference.

    Attributes:
        nframe: frames per sample, or None when ``fps`` (frames per second) samples instead;
            ``data_tag`` the data part of file names.
        judge_name: the judge (None with ``--mode infer``); ``judge`` built and
            checked on rank 0 (None on other ranks).
        device: the model's torch device.
        dataset: the loaded dataset; ``samples`` what the model is asked: the first ``--limit``
            questions, or in pack mode one pack per video of them.
        store_kwargs: extra :class:`nrvl.store.PredictionStore` arguments: in pack mode the
            questions each video's pack asks (``questions``) and all of them
            (``legacy_questions``, what a pack record written without its question list asked).
    """

    nframe: Optional[int]
    data_tag: str
    judge_name: Optional[str]
    judge: object
    device: str
    dataset: object
    samples: list
    fps: Optional[float] = None
    store_kwargs: dict = field(default_factory=dict)


def _questions_by_video(samples) -> dict:
    """Video id -> the question indices of ``samples`` (TSV order) from that video: what its pack asks."""
    out: dict = {}
    for s in samples:
        out.setdefault(str(s.video), []).append(s.index)
    return out


def _setup(args, info) -> Setup:
    """Device and process group; rank 0 makes the dataset and checks the judge; every rank checks the videos."""
    from nrvl.data import DatasetError, get_spec, load_dataset, prepare_dataset

    spec = get_spec(args.data)
    nframe, fps, data_tag = sampling_of(spec, args.nframe, getattr(args, "fps", None))
    needs_judge = args.mode in ("all", "eval")
    judge_name = (args.judge or DEFAULT_JUDGE) if needs_judge else None

    device = dist.device_for(info, args.device)
    if _is_api(args.model):
        device = "cpu"  # API models: no accelerator, gloo among ranks
    dist.init(info, device)

    # Rank 0: dataset files and judge, before anything expensive.
    judge, error = None, None
    verbose = bool(getattr(args, "verbose", False))
    if info.is_main:
        try:
            prepare_dataset(args.data)
            if needs_judge:
                judge = _build_judge(args, judge_name)
        except (DatasetError, EvalError) as e:
            error = _one_line(e)
        except OSError as e:  # unreadable cache, disk full while unpacking: every rank stops, not hangs
            error = (describe_os_error(e), EXIT_FAILED)
        except Exception as e:  # noqa: BLE001 - e.g. a decoder's own error: the other ranks wait in the collective
            error = _rank_error(info, e, verbose)
    _collective(error, info)

    error = None
    try:
        dataset = load_dataset(args.data)
        if args.mode != "eval":
            dataset.check_videos(args.limit)
    except DatasetError as e:
        error = _one_line(e)
    except Exception as e:  # noqa: BLE001 - as above; e.g. a rank that cannot read the cache (permissions)
        error = _rank_error(info, e, verbose)
    _collective(error, info)
    store_kwargs = {}
    if spec.pack:  # a stored pack is reused only by a run asking its video the same questions
        store_kwargs = {"questions": _questions_by_video(dataset.samples(args.limit)),
                        "legacy_questions": _questions_by_video(dataset.samples())}
    return Setup(nframe, data_tag, judge_name, judge, device, dataset, dataset.queries(args.limit), fps,
                 store_kwargs)


def _is_api(model: str) -> bool:
    """Whether ``--model`` is a remote (API) model, from its manifest (no import)."""
    from nrvl.models import get_manifest

    return get_manifest(model).class_path.startswith("nrvl.models.api")


def sampling_of(spec, nframe: Optional[int] = None, fps: Optional[float] = None) -> tuple:
    """``(nframe, fps, data_tag)`` of a run: the preset's sampling unless ``--nframe`` or ``--fps``
    overrides it; then the data tag of file names says so (``<data>_16frame``, ``<data>_0.5fps``)."""
    if nframe is None and fps is None:
        return spec.nframe, spec.fps, spec.name
    if nframe is not None:
        return nframe, None, spec.name if nframe == spec.nframe else f"{spec.name}_{nframe}frame"
    fps = float(fps)
    return None, fps, spec.name if fps == spec.fps else f"{spec.name}_{fps:g}fps"


def _build_judge(args, judge_name: str):
    from nrvl.judge import JudgeConfigError, build_judge

    try:
        judge = build_judge(judge_name, base_url=args.judge_base_url, api_key=args.judge_key,
                            nproc=args.judge_nproc, retries=args.judge_retry)
        judge.preflight()
    except JudgeConfigError as e:
        hint = "" if judge_name == "exact_matching" else " (or use --judge exact_matching for an offline grade)"
        raise EvalError(f"{_one_line(e)}{hint}") from None
    except ValueError as e:
        raise EvalError(f"--judge: {_one_line(e)}") from None
    return judge


def run_settings(args, nframe: Optional[int], data_tag: str, fps: Optional[float] = None) -> dict:
    """The settings that determine a run's predictions: what its fingerprint hashes.

    Keys added over time are present only when they differ from what runs before them
    did (``fps`` when set, ``decode_backend`` when not torchcodec, ``preprocess_device``
    for a Qwen model on a GPU, where runs before it decoded on the GPU, ``api_max_tokens``
    when an API model is given ``--max-new-tokens``, which runs before it ignored), and
    values equal to a default are written as the default's (``max_new_tokens`` None when
    it is the model's own), so stores of earlier runs keep the fingerprint they were
    written with where their answers are still valid.
    """
    settings = {
        "model": args.model, "api_model": args.api_model, "data": args.data, "data_tag": data_tag, "nframe": nframe,
        "noise": args.noise_name, "ratio": args.ratio, "seed": args.seed,
        "max_new_tokens": _max_new_tokens_setting(args),
    }
    if fps is not None:  # only then, so stores of nframe runs keep the fingerprint they were written with
        settings["fps"] = fps
    if _uses_video_timing(args.model):  # answers made with another timing are not reused
        settings["video_timing"] = getattr(args, "video_timing", "vlmevalkit")
        if _model_on_gpu(args):  # on the CPU both settings give the same pixels (and runs before decoded there)
            settings["preprocess_device"] = getattr(args, "preprocess_device", None) or "cpu"
    elif _is_api(args.model) and settings["max_new_tokens"] is not None:
        settings["api_max_tokens"] = settings["max_new_tokens"]  # sent since this key exists; ignored before
    backend = _decode_backend_setting(args)
    if backend is not None:  # frames of another decoder (edit lists, open GOPs) are not mixed in
        settings["decode_backend"] = backend
    return settings


def _model_on_gpu(args) -> bool:
    """Whether the model runs on an accelerator (``--device``, else CUDA when there is one)."""
    import torch

    device = getattr(args, "device", None)
    if device:
        try:
            return torch.device(device).type != "cpu"
        except (RuntimeError, ValueError):
            return True  # a device string torch does not parse is not the CPU
    return torch.cuda.is_available()


#: Settings that depend on the machine when not asked for (the decoder falls back to decord without
#: FFmpeg; where Qwen preprocesses depends on the model's device): ``--mode eval`` on another machine
#: compares them only when the command names them.
MACHINE_SETTINGS = ("decode_backend", "preprocess_device")


def _requested_machine_settings(args) -> set:
    asked = set()
    if getattr(args, "decode_backend", None) or os.environ.get("NRVL_VIDEO_BACKEND", "").strip():
        asked.add("decode_backend")
    if getattr(args, "preprocess_device", None):
        asked.add("preprocess_device")
    return asked


def _same_run(made: Optional[dict], wanted: dict, args) -> bool:
    """Whether settings ``made`` (a sidecar's) are ``wanted``'s, machine settings the command does
    not name left out."""
    if not isinstance(made, dict):
        return False
    skip = set(MACHINE_SETTINGS) - _requested_machine_settings(args)
    return ({k: v for k, v in made.items() if k not in skip} == {k: v for k, v in wanted.items() if k not in skip})


def _fingerprint(args, nframe: Optional[int], data_tag: str, fps: Optional[float] = None) -> str:
    from nrvl.store import run_fingerprint

    return run_fingerprint(run_settings(args, nframe, data_tag, fps))


def _model_default_max_new_tokens(model: str) -> Optional[int]:
    """The generation cap ``model`` uses when ``--max-new-tokens`` is not given, or None when its
    adapter has no such setting."""
    import inspect

    from nrvl.models import get_manifest, model_class

    try:
        manifest = get_manifest(model)
        if manifest.kwargs.get("max_new_tokens") is not None:
            return int(manifest.kwargs["max_new_tokens"])
        param = inspect.signature(model_class(model).__init__).parameters.get("max_new_tokens")
    except Exception:  # noqa: BLE001 - an adapter that cannot be imported: no default known
        return None
    if param is None or param.default is inspect.Parameter.empty or param.default is None:
        return None
    return int(param.default)


def _max_new_tokens_setting(args) -> Optional[int]:
    """``--max-new-tokens`` as the fingerprint holds it: None for the model's default, given or not."""
    value = getattr(args, "max_new_tokens", None)
    if value is None or value == _model_default_max_new_tokens(args.model):
        return None
    return value


def _decode_backend_setting(args) -> Optional[str]:
    """The decoder the run's videos go through, when not the default (torchcodec): from
    ``--decode-backend``, else ``$NRVL_VIDEO_BACKEND``, decord when torchcodec has no FFmpeg.
    ``--mode eval`` decodes nothing: there it is the decoder named, the predictions' own."""
    from nrvl.video import resolve_backend

    try:
        backend = resolve_backend(getattr(args, "decode_backend", None),
                                  fallback=getattr(args, "mode", "all") != "eval")
    except ValueError as e:
        raise EvalError(_one_line(e)) from None
    return None if backend == DEFAULT_DECODE_BACKEND else backend


def _build_model(args, device):
    """The adapter for ``args`` (single runs and sweeps alike); raises ``ModelConfigError``."""
    from nrvl.models import build_model

    return build_model(args.model, device=device, decode_backend=args.decode_backend,
                       max_new_tokens=args.max_new_tokens, api_model=args.api_model,
                       video_timing=getattr(args, "video_timing", "vlmevalkit"), base_url=args.api_base,
                       nproc=args.api_nproc, preprocess_device=getattr(args, "preprocess_device", None))


def _uses_video_timing(model: str) -> bool:
    """Whether ``--video-timing`` changes this model's answers (the Qwen adapters; not the API models)."""
    from nrvl.models import model_class
    from nrvl.models.qwen import QwenVL

    try:
        return issubclass(model_class(model), QwenVL)
    except Exception:  # noqa: BLE001 - an adapter that cannot be imported has no timing
        return False


def _collected(e: Exception, info: dist.DistInfo) -> bool:
    """Whether an exception of a rank's inference goes to :func:`_collective` as one line.

    Under torchrun every one does: a rank that raised past the collective would leave the
    others waiting in it for ``DIST_TIMEOUT``. A single process passes on what is not a
    configuration error (a crash keeps its traceback; ``main`` makes an ``OSError`` one line).
    """
    from nrvl.models import ModelConfigError

    return info.distributed or isinstance(e, (EvalError, ModelConfigError))


def _run_inference(args, info, device, samples, nframe, data_tag, paths, donor_pool=None, fps=None,
                   store_kwargs=None) -> None:
    from nrvl.store import PredictionStore, key_of

    verbose = bool(getattr(args, "verbose", False))
    error, requests, store = None, [], None
    try:
        store = PredictionStore(paths.folder, paths.stem, _fingerprint(args, nframe, data_tag, fps), rank=info.rank,
                                **(store_kwargs or {}))
        done = store.done_keys()
        mine = [s for s in dist.shard(samples, info.rank, info.world_size) if key_of(s.index) not in done]
        requests = _requests(mine, args, nframe, dataset_samples=donor_pool if donor_pool is not None else samples,
                             fps=fps)
        if info.is_main:
            stored = sum(key_of(s.index) in done for s in samples)
            print(f"[nrvl] {args.model} on {len(samples)} samples: {len(samples) - stored} to run over "
                  f"{info.world_size} rank(s), {stored} already stored in {paths.folder}", file=sys.stderr)
    except Exception as e:  # noqa: BLE001 - every rank must reach the collective below
        error = _rank_error(info, e, verbose)

    model = None
    if requests and error is None:
        try:
            model = _build_model(args, device)
        except Exception as e:  # noqa: BLE001 - as above
            error = _rank_error(info, e, verbose)
    _collective(error, info)

    error = None
    if model is not None:
        batch_size = args.batch_size or model.default_batch_size
        try:
            counts = infer(model, requests, store, batch_size=batch_size, info=info, prefetch=args.prefetch)
            if counts["failed"]:
                logger.warning("rank %d: %d sample(s) failed; rerun to retry them", info.rank, counts["failed"])
        except Exception as e:  # noqa: BLE001 - as above; KeyboardInterrupt is not caught
            error = _rank_error(info, e, verbose, config_code=EXIT_FAILED)
        finally:
            model.close()
    _collective(error, info, EXIT_FAILED)  # also the barrier before rank 0 merges


def _merge(args, nframe, data_tag, paths, table, fps=None, store_kwargs=None) -> None:
    from nrvl.store import IncompletePredictionsError, PredictionStore, run_fingerprint, write_predictions

    from nrvl.data import get_spec

    settings = run_settings(args, nframe, data_tag, fps)
    fingerprint = run_fingerprint(settings)
    store = PredictionStore(paths.folder, paths.stem, fingerprint, **(store_kwargs or {}))
    pack = get_spec(args.data).pack
    try:
        if pack:  # one stored reply per video, parsed into one prediction per question as VLMEvalKit does
            import pandas as pd

            videos = sorted({str(v) for v in table["video"]})
            replies = store.merge(pd.DataFrame({"index": videos}))["prediction"]
        else:
            merged = store.merge(table)
        kill_point("merge")
    except IncompletePredictionsError as e:
        raise EvalError(_one_line(e), EXIT_FAILED) from None
    if pack:
        from nrvl.models.api import FAIL_MSG
        from nrvl.pack import unpack_predictions

        merged, stats = unpack_predictions(table, dict(zip(videos, replies)), FAIL_MSG)
        print(f"[nrvl] pack answers of {len(videos)} video(s): parsed {stats['PARSE_OK']}, unparsable "
              f"{stats['PARSE_FAIL']}, failed {stats['GEN_FAIL']}; {stats['VALIDQ']} of {len(table)} questions "
              f"answered, {stats['INVALIDQ']} not (scored -1)", file=sys.stderr)
    write_predictions(merged, paths.predictions, meta={"run": fingerprint, "settings": settings, "limit": args.limit,
                                                        "rows": len(merged)})
    failed = store.failed_keys()
    if failed:
        print(f"[nrvl] {len(failed)} sample(s) have no answer (failed); rerun the same command to retry them",
              file=sys.stderr)
    print(f"[nrvl] predictions: {paths.predictions}", file=sys.stderr)


def _store_covers(store, table, pack: bool) -> bool:
    """Whether ``store`` has a record (done or failed) for every question of ``table`` (every video, in pack mode)."""
    from nrvl.store import key_of

    records = store.load()
    keys = {key_of(str(v)) for v in table["video"]} if pack else {key_of(i) for i in table["index"]}
    return bool(keys) and all(k in records for k in keys)


def _settings_diff(made: Optional[dict], wanted: dict) -> str:
    """``seed=0, max_new_tokens=32 (this command: seed=1, max_new_tokens=None)``; keys either side has."""
    made = made if isinstance(made, dict) else {}
    keys = [k for k in sorted(set(made) | set(wanted)) if made.get(k, "<unset>") != wanted.get(k, "<unset>")]
    if not keys:  # a sidecar without settings, or one edited by hand
        return "their fingerprint differs (settings not recorded)"

    def show(d):
        return ", ".join(f"{k}={d[k]}" if k in d else f"{k} unset" for k in keys)

    return f"{show(made)} (this command: {show(wanted)})"


def check_predictions(args, nframe, data_tag, paths, table, fps=None, store_kwargs=None) -> None:
    """``--mode eval``: make sure ``<stem>.tsv`` holds this command's predictions before they are judged.

    The sidecar ``<stem>.tsv.meta.json`` (:func:`nrvl.store.write_predictions`) names the run
    the TSV was merged from and binds itself to the TSV's bytes. When it names this run,
    the TSV is judged. Otherwise (another run, no sidecar, or a TSV changed since it was
    written) and the store holds a record of this run for every question, the TSV is
    merged again from the store. Failing that:

    * a sidecar of another run is a one-line error naming the settings that differ;
    * without a usable sidecar, a store holding records of other settings only is an
      error as well (the TSV is likely theirs);
    * with neither (outputs of an NRVL that kept no sidecar, or no store at all) the TSV
      is judged as this command's, with a warning.

    Raises:
        EvalError: predictions of other settings (exit 2).
    """
    from nrvl.data import get_spec
    from nrvl.store import PredictionStore, read_predictions_meta, run_fingerprint

    settings = run_settings(args, nframe, data_tag, fps)
    fingerprint = run_fingerprint(settings)
    tsv = paths.predictions
    meta, status = read_predictions_meta(tsv) if tsv.is_file() else (None, "no-tsv")
    # The TSV is this command's when its sidecar names these settings and the same questions
    # (--limit; a pack's questions depend on it), all of them.
    same = status == "ok" and (meta["run"] == fingerprint or _same_run(meta.get("settings"), settings, args))
    if same and meta.get("limit") == args.limit and meta.get("rows") == len(table):
        return
    store = PredictionStore(paths.folder, paths.stem, fingerprint, **(store_kwargs or {}))
    if _store_covers(store, table, get_spec(args.data).pack):
        why = {"no-tsv": "no predictions TSV", "ok": f"{tsv.name} holds another run's predictions",
               "missing": f"{tsv.name} has no {tsv.name}.meta.json", "unreadable": f"{tsv.name}.meta.json is unreadable",
               "other-tsv": f"{tsv.name} changed after its {tsv.name}.meta.json was written"}[status]
        print(f"[nrvl] {why}; merging this run's predictions again from its store", file=sys.stderr)
        _merge(args, nframe, data_tag, paths, table, fps=fps, store_kwargs=store_kwargs)
        return
    if status == "no-tsv":
        return  # _judge_and_rate says there are no predictions
    rerun = "rerun with --mode all (or infer) to make them; finished samples of the store are reused"
    if status == "ok" and same:
        raise EvalError(f"{tsv} holds predictions of this command's settings for --limit {meta.get('limit')} "
                        f"({meta.get('rows')} rows; this command: --limit {args.limit}, {len(table)} rows), and the "
                        f"store lacks some of this command's questions; {rerun}")
    if status == "ok":
        raise EvalError(f"{tsv} holds predictions of other settings: {_settings_diff(meta.get('settings'), settings)}; "
                        f"{rerun}")
    what = {"missing": f"has no settings record ({tsv.name}.meta.json)",
            "unreadable": f"has an unreadable settings record ({tsv.name}.meta.json)",
            "other-tsv": f"changed after its settings record ({tsv.name}.meta.json) was written"}[status]
    others = sorted(run for run in store.runs() if run != fingerprint)
    if others:
        raise EvalError(f"{tsv} {what}, and the store beside it holds predictions of {len(others)} other "
                        f"setting(s) and too few of this command's: it is likely not this command's; {rerun}")
    logger.warning("%s %s (written by an older NRVL, or by hand?) and no store contradicts it: judging it as "
                   "this command's predictions", tsv, what)


def _judge_and_rate(paths, table, judge, judge_name) -> None:
    from nrvl.judge import JudgeConfigError, judge_table
    from nrvl.rating import dimension_rating, write_rating
    from nrvl.store import key_of, read_predictions

    if not paths.predictions.is_file():
        raise EvalError(f"no predictions at {paths.predictions}; run with --mode infer (or all) first")
    try:
        preds = read_predictions(paths.predictions)
    except ValueError as e:  # not UTF-8, empty, not a TSV (pandas' errors are ValueErrors)
        raise EvalError(f"cannot read the predictions {paths.predictions}: {_one_line(e)}") from None
    if "prediction" not in preds.columns:
        raise EvalError(f"{paths.predictions} has no 'prediction' column")
    have = {key_of(i) for i in preds["index"]}
    missing = [key_of(i) for i in table["index"] if key_of(i) not in have]
    if missing:
        raise EvalError(f"{paths.predictions} lacks {len(missing)} of the {len(table)} questions asked "
                        f"(e.g. index {missing[0]}); run --mode infer first", EXIT_FAILED)
    wanted = {key_of(i) for i in table["index"]}
    preds = preds[[key_of(i) in wanted for i in preds["index"]]].reset_index(drop=True)
    try:
        scored = judge_table(preds, judge, paths.judge_cache)
    except JudgeConfigError as e:
        raise EvalError(_one_line(e), EXIT_FAILED) from None
    rating = dimension_rating(scored)
    kill_point("rating.write")
    write_rating(rating, paths.rating, scores=scored)
    overall = rating.get("coarse_all", {}).get("Overall")
    print(f"[nrvl] judge {judge_name}: Overall {overall} (coarse_all, 0-3)", file=sys.stderr)
    print(f"[nrvl] scores: {paths.scores}", file=sys.stderr)
    print(f"[nrvl] rating: {paths.rating}", file=sys.stderr)


def main(argv: Optional[Sequence[str]] = None, prog: Optional[str] = None, reuse_cpu_memory: bool = False) -> int:
    """Parse ``argv`` and run; returns the exit status (0 ok, 1 failed run, 2 bad input)."""
    if prog is None:
        prog = "nrvl eval" if os.path.basename(sys.argv[0] or "") == "nrvl" else "eval/run.py"
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    try:
        is_main = dist.info_from_env().is_main
    except ValueError:  # a bad RANK or WORLD_SIZE: say so, whichever process this is
        is_main = True
    try:
        run(args, reuse_cpu_memory=reuse_cpu_memory)
        return EXIT_OK
    except EvalError as e:
        if is_main:
            print(f"{prog}: error: {e}", file=sys.stderr)
        return e.code
    except OSError as e:  # a file that cannot be written: disk full, permission, a folder in the way
        if is_main:
            print(f"{prog}: error: {describe_os_error(e)}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        if is_main:
            print(f"{prog}: interrupted; finished samples are stored, rerun the same command to resume",
                  file=sys.stderr)
        return 130
    finally:
        dist.finalize()
