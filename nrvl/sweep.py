"""Sweeps: every (noise, ratio) of a list, plus the clean run, in one process (or one torchrun job).

::

    python eval/run.py --data MMBench_Video_8frame_nopack --model Qwen2.5-VL-3B-Instruct \\
        --judge gpt-4o --noise_name all --ratio 0.3,0.6,0.9          # 1 + 35 x 3 runs
    python eval/run.py ... --noise_name weather --ratio 0.9          # a family
    python eval/run.py ... --noise_name gaussian,motion_blur --ratio 0.3,0.9

The original ran one process per (noise, ratio): 105 model loads and 105
decodes of every video for one model. A sweep loads the model once, decodes
and resizes each video's frames once (:meth:`nrvl.models.VideoModel.load_clip`,
kept while the questions of that video are asked), corrupts them on the
model's device for every (noise, ratio) and runs the model on each variant.

Every run of a sweep is the run ``eval/run.py`` would make alone with the same
flags and one (noise, ratio): the same per-sample seeds
(``derive_seed(seed, video, index, noise, ratio)``), the same per-run store
(``<stem>.rank<r>.jsonl``, same fingerprint, so a sweep resumes from single runs
and the other way round), the same predictions, judge cache, score and rating
files in the same folders. A batch of questions is run through every variant
before the next batch is decoded, so in a fresh sweep each run gets exactly a
single run's batches (batched bf16 generation matches too); in a resumed sweep
each run batches its own missing questions, as a resumed single run does.

The judge is shared (:class:`SharedJudge`): a (question, answer, prediction)
triple that several runs produce (a noise that leaves an answer unchanged) is
sent to the judge once; every run still gets the reply in its own judge cache,
score table and rating. The replies already in the runs' judge caches are
loaded first, so a resumed sweep asks nothing twice.

A video that fails to decode fails its questions in every run (stored as
failed with an empty prediction, retried by the next run), and is tried once.

Besides the runs' files, rank 0 writes ``<work-dir>/<model>/<model>_<data>_sweep.json``:
the runs, and counts for ``bench/`` (model loads per process, decodes per
video, donor videos of ``other_video`` included, samples generated, judge
requests and shared replies) of this invocation; those of earlier invocations
(a resumed or ``--mode eval`` sweep over the same folder) are kept under ``history``. Samples per
second and ETA are on one progress bar over samples x variants.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import json
import logging
import sys
import time
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

from nrvl import dist
from nrvl._faults import kill_point
from nrvl.evaluate import EXIT_FAILED, EvalError, RunPaths

logger = logging.getLogger("nrvl.sweep")

__all__ = [
    "Variant", "parse_ratios", "parse_noises", "is_sweep", "plan_variants", "SharedJudge", "SweepCounts",
    "ClipCache", "infer_sweep", "run_sweep", "counts_path",
]

ALL = "all"
_LIST_HELP = "a noise, a family, 'all', or a comma list of them"


# ----------------------------------------------------------------------------------- the grid

@dataclass(frozen=True)
class Variant:
    """One run of a sweep: a noise at a ratio, or the clean run (both None)."""

    noise: Optional[str] = None
    ratio: Optional[float] = None

    @property
    def label(self) -> str:
        return "origin" if self.noise is None else f"{self.noise} {self.ratio:g}"


def parse_ratios(value) -> list[float]:
    """``--ratio``: None, a number, or comma-separated numbers, each in [0, 1]; repeats dropped.

    Imports nothing heavy (checked before torch).

    Raises:
        EvalError: an empty item, something not a number, or a value outside [0, 1]; one line.
    """
    if value is None:
        return []
    text = str(value)
    items = [value] if isinstance(value, (int, float)) else text.split(",")
    out: list[float] = []
    for item in items:
        raw = str(item).strip()
        if not raw:
            raise EvalError(f"--ratio {text!r} has an empty item; give numbers in [0, 1] separated by commas, "
                            f"e.g. 0.3,0.6,0.9")
        try:
            ratio = float(raw)
        except ValueError:
            raise EvalError(f"--ratio: {raw!r} is not a number; give numbers in [0, 1] separated by commas, "
                            f"e.g. 0.3,0.6,0.9") from None
        if not 0.0 <= ratio <= 1.0:  # also rejects nan
            where = f" (in {text!r})" if len(items) > 1 else ""
            raise EvalError(f"--ratio must be in [0, 1], got {ratio:g}{where}")
        if ratio not in out:
            out.append(ratio)
    return out


def parse_noises(value: str) -> list[str]:
    """``--noise_name`` as a list: noise names, family names and ``all``, comma-separated, expanded in
    registry order; repeats dropped. An item ``-name`` (a noise or a family) leaves those noises out,
    wherever it stands: ``all,-target_block``. Imports ``nrvl.kernels``.

    Raises:
        EvalError: an empty item, an unknown name (the message lists the families and noises), or a
            list that leaves nothing.
    """
    from nrvl.kernels import FAMILIES, list_noises

    names = list_noises()
    text = str(value)
    out: list[str] = []
    dropped: set[str] = set()
    for item in text.split(","):
        token = item.strip()
        if not token or token == "-":
            raise EvalError(f"--noise_name {text!r} has an empty item; give {_LIST_HELP}")
        if token.startswith("-"):
            left_out = token[1:].strip()
            if left_out in names:
                dropped.add(left_out)
            elif left_out in FAMILIES:
                dropped.update(list_noises(left_out))
            else:
                raise EvalError(f"--noise_name: cannot leave out {left_out!r}: not a family ({', '.join(FAMILIES)}) "
                                f"or a noise ({', '.join(names)})")
            continue
        if token == ALL:
            picked = names
        elif token in names:
            picked = [token]
        elif token in FAMILIES:
            picked = list_noises(token)
            if not picked:
                raise EvalError(f"--noise_name: family {token!r} has no registered noise")
        else:
            raise EvalError(f"unknown --noise_name {token!r}; valid: {ALL}, a family ({', '.join(FAMILIES)}) "
                            f"or a noise ({', '.join(names)}), comma-separated")
        out.extend(n for n in picked if n not in out)
    out = [n for n in out if n not in dropped]
    if not out:
        raise EvalError(f"--noise_name {text!r} leaves no noise to run")
    return out


def is_sweep(noise_name: Optional[str], ratio) -> bool:
    """True when the flags ask for more than one run: ``all``, a family, or a comma in either list."""
    if noise_name is None:
        return False
    token = str(noise_name).strip()
    if "," in token or token == ALL or (ratio is not None and "," in str(ratio)):
        return True
    from nrvl.kernels import FAMILIES, list_noises  # a family name is a list too

    return token in FAMILIES and token not in list_noises()


def plan_variants(noise_name: str, ratio) -> list[Variant]:
    """The runs of a sweep: the clean run first, then every noise (registry or list order) at every ratio.

    Raises:
        EvalError: a bad list (see :func:`parse_noises`, :func:`parse_ratios`) or no ratio.
    """
    ratios = parse_ratios(ratio)
    if not ratios:
        raise EvalError(f"--noise_name {noise_name} needs --ratio (fractions in [0, 1], e.g. 0.3,0.6,0.9)")
    noises = parse_noises(noise_name)
    return [Variant()] + [Variant(n, r) for n in noises for r in ratios]


# ----------------------------------------------------------------------------------- counts

@dataclass
class SweepCounts:
    """What one process did, for ``bench/`` and the sweep json.

    Attributes:
        model_loads: models built (1 when there was anything to run, else 0).
        decodes: :meth:`~nrvl.models.VideoModel.load_clip` calls (each decodes
            and resizes the video once) by video id.
        generated: samples answered by the model; ``generate_calls`` model calls.
        failed: samples stored as failed (video not decodable, API failure).
    """

    model_loads: int = 0
    decodes: Counter = field(default_factory=Counter)
    generated: int = 0
    generate_calls: int = 0
    failed: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {"model_loads": self.model_loads, "decodes": dict(sorted(self.decodes.items())),
                "generated": self.generated, "generate_calls": self.generate_calls, "failed": self.failed,
                "seconds": round(self.seconds, 3)}


class ClipCache:
    """Clean clips by (video file, frame count or rate), the most recent ``capacity`` kept.

    A clip is what :meth:`~nrvl.models.VideoModel.load_clip` returns: decoded and
    resized once, then corrupted into every variant (``corrupt`` never modifies
    its input). A video that fails to decode is remembered as failed while it
    stays in the cache, so its other questions and variants do not try again.
    Used from one thread at a time (the prefetch worker).
    """

    def __init__(self, model, capacity: int, counts: SweepCounts):
        self.model = model
        self.capacity = max(1, int(capacity))
        self.counts = counts
        self._clips: OrderedDict = OrderedDict()

    def get(self, request):
        """The clip of ``request`` (decoded on a miss).

        Raises:
            nrvl.video.VideoDecodeError: the video does not decode.
        """
        from nrvl.video import VideoDecodeError

        key = (request.video_path, request.nframe, request.fps)
        if key in self._clips:
            self._clips.move_to_end(key)
            value = self._clips[key]
        else:
            self.counts.decodes[request.video] += 1
            try:
                value = self.model.load_clip(request)
            except VideoDecodeError as e:
                logger.warning("video %s: %s", request.video, " ".join(str(e).split()))
                value = e
            self._clips[key] = value
            while len(self._clips) > self.capacity:
                self._clips.popitem(last=False)
        if isinstance(value, BaseException):
            raise value
        return value


# ----------------------------------------------------------------------------------- inference

@dataclass
class _Job:
    """One variant's inference: its store and its requests still to run, by sample key."""

    variant: Variant
    store: Any
    todo: dict


@dataclass
class _Unit:
    """One model call's worth of work: one variant on (part of) one batch of samples."""

    job: _Job
    requests: list


@dataclass
class _Prepared:
    clips: list
    failures: dict          # position in the unit -> VideoDecodeError
    inputs: Any = None      # the model input for the whole unit; None when something failed
    error: Optional[BaseException] = None


def _units(samples: Sequence, jobs: Sequence[_Job], batch_size: int) -> list[_Unit]:
    """Each variant's batches, exactly those a single run (fresh or resumed) would make.

    A variant's batches are its own missing samples, in sample order, ``batch_size``
    at a time (:func:`nrvl.evaluate.infer`'s rule). The units are then ordered by
    their first sample, variants in order for the same start, so a batch of
    questions goes through every variant before the next batch is decoded; in a
    fresh sweep every variant has the same batches.
    """
    from nrvl.store import key_of

    position = {key_of(s.index): i for i, s in enumerate(samples)}
    ordered = []
    for j, job in enumerate(jobs):
        keys = sorted((k for k in job.todo if k in position), key=position.__getitem__)
        for i in range(0, len(keys), batch_size):
            chunk = keys[i:i + batch_size]
            ordered.append(((position[chunk[0]], j), _Unit(job, [job.todo[k] for k in chunk])))
    ordered.sort(key=lambda pair: pair[0])
    return [unit for _, unit in ordered]


def infer_sweep(model, samples: Sequence, jobs: Sequence[_Job], *, batch_size: int, info: dist.DistInfo,
                counts: SweepCounts, prefetch: bool = True, show_progress: bool = True) -> SweepCounts:
    """Run every job's requests, decoding each video once; each answer goes to its variant's store.

    The next unit (decode on a cache miss, noise, processor) is prepared in a
    worker thread while the model generates, as :func:`nrvl.evaluate.infer`
    does. A sample whose video does not decode is stored as failed (empty
    prediction, redone next run) in every variant; the other samples of its
    batch are then run one at a time, as a single run does.
    """
    from nrvl.evaluate import _progress
    from nrvl.store import make_record
    from nrvl.video import VideoDecodeError

    units = _units(samples, jobs, batch_size)
    cache = ClipCache(model, batch_size + 1, counts)  # a batch, plus the video the next batch may start with
    total = sum(len(u.requests) for u in units)
    desc = f"{model.name} sweep of {len(jobs)}"
    bar = _progress(total, show_progress and info.is_main,
                    f"{desc} rank 0/{info.world_size}" if info.distributed else desc)
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="nrvl-prepare") if prefetch else None

    def prepare(unit: _Unit) -> _Prepared:
        kill_point("infer.prepare")
        clips, failures = [], {}
        for i, req in enumerate(unit.requests):
            try:
                clips.append(cache.get(req))
            except VideoDecodeError as e:
                clips.append(None)
                failures[i] = e
        if failures:
            return _Prepared(clips, failures)
        try:
            return _Prepared(clips, {}, model.prepare_clips(unit.requests, clips, donors=cache.get))
        except VideoDecodeError as e:  # an adapter without load_clip decodes in prepare_clips
            return _Prepared(clips, {}, None, e)

    def submit(unit):
        return pool.submit(prepare, unit) if pool is not None and unit is not None else None

    def store(unit: _Unit, requests, answers, seconds: float) -> None:
        recs = []
        for req, ans in zip(requests, answers):
            failed = model.failed(ans)
            counts.failed += failed
            recs.append(make_record(req.index, ans, run=unit.job.store.run, video=req.video, seed=req.seed,
                                    failed=failed, rank=info.rank, world_size=info.world_size,
                                    seconds=seconds / len(requests)))
        unit.job.store.append(recs)
        counts.generated += len(requests)
        counts.generate_calls += 1
        bar.update(len(requests))

    def store_failed(unit: _Unit, req) -> None:
        unit.job.store.append(make_record(req.index, "", run=unit.job.store.run, video=req.video, seed=req.seed,
                                          failed=True, rank=info.rank, world_size=info.world_size))
        counts.failed += 1
        bar.update(1)

    start = time.perf_counter()
    try:
        pending = submit(units[0]) if units else None
        for k, unit in enumerate(units):
            t0 = time.perf_counter()
            ready = pending.result() if pending is not None else prepare(unit)
            following = units[k + 1] if k + 1 < len(units) else None
            bar.set_postfix_str(unit.job.variant.label, refresh=False)
            if ready.inputs is not None:
                pending = submit(following)  # overlaps with generate below
                kill_point("infer.generate")
                store(unit, unit.requests, model.generate(ready.inputs), time.perf_counter() - t0)
                continue
            for i, req in enumerate(unit.requests):  # nothing else is prepared meanwhile, as in a single run
                if i in ready.failures:
                    store_failed(unit, req)
                    continue
                t1 = time.perf_counter()
                try:
                    answers = model.generate(model.prepare_clips([req], [ready.clips[i]], donors=cache.get))
                except VideoDecodeError as e:
                    logger.warning("index %s: %s", req.index, " ".join(str(e).split()))
                    store_failed(unit, req)
                    continue
                store(unit, [req], answers, time.perf_counter() - t1)
            pending = submit(following)
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        bar.close()
    counts.seconds += time.perf_counter() - start
    return counts


# ----------------------------------------------------------------------------------- judge

class SharedJudge:
    """A judge that asks each distinct (question, answer, prediction) once per sweep.

    Wraps the sweep's judge for :func:`nrvl.judge.judge_table`: ``judge_many``
    answers items seen before (in this sweep, or in the judge caches it was
    seeded with) from memory and sends only the others, each distinct one once.
    Every result still goes through ``on_result``, so each run's own judge cache
    gets the reply as if that run had asked. Failures are not remembered.

    Attributes:
        requests: items sent to the wrapped judge; ``shared`` items answered from memory.
    """

    def __init__(self, judge):
        self.inner = judge
        self.name, self.model, self.nproc = judge.name, judge.model, judge.nproc
        self.retry_invalid = judge.retry_invalid
        self.stats = judge.stats
        self.requests = 0
        self.shared = 0
        self._replies: dict[tuple, Any] = {}
        self._run_start = type(judge.usage)()

    @property
    def usage(self):
        return self.inner.usage

    def begin_run(self) -> None:
        """Start counting the next run's judge usage (what :meth:`usage_summary` reports)."""
        from dataclasses import replace

        self._run_start = replace(self.inner.usage)

    def usage_summary(self) -> str:
        """One line: this run's requests, tokens and estimated cost, then the sweep's so far."""
        from nrvl.judge import TokenUsage

        total, start = self.inner.usage, self._run_start
        run = TokenUsage(total.requests - start.requests, total.prompt_tokens - start.prompt_tokens,
                         total.completion_tokens - start.completion_tokens)
        return (f"{self.inner.usage_summary(run, label=', this run')}; sweep so far: "
                f"{total.requests} requests, {self.shared} answer(s) shared between runs")

    def preflight(self) -> None:
        self.inner.preflight()

    @staticmethod
    def key(question, answer, prediction_sha256: str) -> tuple:
        return ("{}".format(question), "{}".format(answer), prediction_sha256)

    def _item_key(self, item) -> tuple:
        from nrvl.judge import prediction_sha256

        return self.key(item.question, item.answer, prediction_sha256(item.prediction))

    def seed_from_cache(self, cache_path, table) -> int:
        """Remember the replies of a run's judge cache (``table``: the dataset rows, for question and answer)."""
        from nrvl.judge import JudgeResult, load_judge_cache
        from nrvl.store import key_of

        if cache_path is None or not Path(cache_path).is_file():
            return 0
        rows = {key_of(i): (q, a) for i, q, a in zip(table["index"], table["question"], table["answer"])}
        n = 0
        for (index, sha), reply in load_judge_cache(cache_path, self.model).items():
            if index in rows:
                self._replies.setdefault(self.key(*rows[index], sha), JudgeResult(reply=reply, attempts=0))
                n += 1
        return n

    def judge_one(self, item):
        return self.judge_many([item])[0]

    def judge_many(self, items, *, on_result=None, progress=False):
        """Judge ``items``: remembered ones from memory, each other distinct one once by the wrapped judge.

        ``on_result`` sees a fresh reply as soon as it arrives (the caller caches it
        at once) and a remembered one as soon as every item before it has been
        reported, so with an in-order judge (``exact_matching``) the caller's
        cache lines come in the order a run of its own writes them.
        """
        from nrvl.judge import is_integer_reply

        n = len(items)
        results: list = [None] * n
        remembered = [False] * n
        reported = [False] * n
        ask: dict[tuple, list[int]] = {}
        for i, item in enumerate(items):
            key = self._item_key(item)
            hit = self._replies.get(key)
            if hit is not None and (not self.retry_invalid or is_integer_reply(hit.reply)):
                results[i], remembered[i] = hit, True
                self.shared += 1
            else:
                ask.setdefault(key, []).append(i)
        cursor = 0

        def report(i: int) -> None:
            reported[i] = True
            if on_result is not None:
                on_result(i, results[i])

        def release() -> None:  # remembered replies up to the first position still waiting for the judge
            nonlocal cursor
            while cursor < n and (reported[cursor] or remembered[cursor]):
                if not reported[cursor]:
                    report(cursor)
                cursor += 1

        keys = list(ask)

        def arrived(j: int, result) -> None:
            if result.ok:
                self._replies[keys[j]] = result
            for i in ask[keys[j]]:
                results[i] = result
                report(i)
            release()

        release()
        if keys:
            self.requests += len(keys)
            self.shared += sum(len(v) - 1 for v in ask.values())
            answered = self.inner.judge_many([items[ask[k][0]] for k in keys], on_result=arrived,
                                             progress=progress)
            for j, (k, result) in enumerate(zip(keys, answered)):
                if any(not reported[i] for i in ask[k]):  # a judge that did not call on_result for it
                    arrived(j, result)
        release()
        return results


# ----------------------------------------------------------------------------------- the command

@dataclass
class _Run:
    variant: Variant
    args: argparse.Namespace
    paths: RunPaths


def counts_path(work_dir, model_tag: str, data_tag: str) -> Path:
    """``<work-dir>/<model>/<model>_<data>_sweep.json``."""
    from nrvl.evaluate import _safe

    return Path(work_dir) / _safe(model_tag) / f"{_safe(model_tag)}_{_safe(data_tag)}_sweep.json"


def _gather(obj) -> list:
    """Every rank's ``obj`` (a collective under torchrun; ``[obj]`` alone)."""
    if "torch.distributed" in sys.modules:
        import torch.distributed as tdist

        if tdist.is_available() and tdist.is_initialized():
            box: list = [None] * tdist.get_world_size()
            tdist.all_gather_object(box, obj)
            return box
    return [obj]


def run_sweep(args, info: Optional[dist.DistInfo] = None) -> list[RunPaths]:
    """Run a sweep from parsed flags (``--noise_name``/``--ratio`` lists); returns every run's paths.

    Raises:
        EvalError: bad lists or flags (before anything runs), or a failed run.
    """
    from nrvl import evaluate as E

    info = info or E._dist_info()
    variants = plan_variants(args.noise_name, args.ratio)
    E.check_detector_weights({v.noise for v in variants}, args.mode)
    E._quiet_libraries(args.verbose)
    setup = E._setup(args, info)
    model_tag = E._model_tag(args)
    runs = []
    for v in variants:
        vargs = argparse.Namespace(**{**vars(args), "noise_name": v.noise, "ratio": v.ratio})
        runs.append(_Run(v, vargs, E.run_paths(args.work_dir, model_tag, setup.data_tag, v.noise, v.ratio,
                                               setup.judge_name)))
    for r in runs:
        E.check_model_tag(r.args, r.paths)
    counts = SweepCounts()
    if args.mode != "eval":
        _inference(args, info, setup, runs, counts)
    per_rank = _gather(counts.to_dict())
    if not info.is_main:
        return [r.paths for r in runs]

    table = setup.dataset.rows(args.limit)
    if args.mode != "eval":
        for r in runs:
            E._merge(r.args, setup.nframe, setup.data_tag, r.paths, table, fps=setup.fps,
                     store_kwargs=setup.store_kwargs)
    judge, unjudged = None, []
    if setup.judge_name:
        judge = SharedJudge(setup.judge)
        for r in runs:
            judge.seed_from_cache(r.paths.judge_cache, table)
        for r in runs:
            judge.begin_run()
            try:
                if args.mode == "eval":  # the TSV must hold this run's predictions (or be merged again)
                    E.check_predictions(r.args, setup.nframe, setup.data_tag, r.paths, table, fps=setup.fps,
                                        store_kwargs=setup.store_kwargs)
                E._judge_and_rate(r.paths, table, judge, setup.judge_name)
            except EvalError as e:
                if str(r.paths.predictions) not in str(e):  # the judge itself failed: it would fail every run
                    raise
                # this run's predictions are missing or unusable (--mode eval over a run never
                # inferred): judge the others, as separate runs would, and say so at the end
                print(f"[nrvl] {r.variant.label}: not judged: {e}", file=sys.stderr)
                unjudged.append((r.variant.label, e))
    path = _write_counts(args, setup, model_tag, runs, per_rank, judge)
    _print_summary(runs, per_rank, judge, path, args.work_dir)
    if unjudged:
        label, first = unjudged[0]
        raise EvalError(f"{len(unjudged)} of {len(runs)} run(s) not judged (the others were); "
                        f"first, {label}: {first}", first.code)
    return [r.paths for r in runs]


def _inference(args, info, setup, runs: list[_Run], counts: SweepCounts) -> None:
    from nrvl import evaluate as E
    from nrvl.store import PredictionStore, key_of

    verbose = bool(getattr(args, "verbose", False))
    mine = dist.shard(setup.samples, info.rank, info.world_size)
    jobs, stored, error = [], 0, None
    try:
        for r in runs:
            fingerprint = E._fingerprint(r.args, setup.nframe, setup.data_tag, setup.fps)
            store = PredictionStore(r.paths.folder, r.paths.stem, fingerprint, rank=info.rank, **setup.store_kwargs)
            done = store.done_keys()
            todo = [s for s in mine if key_of(s.index) not in done]
            reqs = E._requests(todo, r.args, setup.nframe, setup.dataset.samples(), fps=setup.fps)
            jobs.append(_Job(r.variant, store, {key_of(q.index): q for q in reqs}))
            stored += sum(key_of(s.index) in done for s in setup.samples)
    except Exception as e:  # noqa: BLE001 - every rank must reach the collective below
        error = E._rank_error(info, e, verbose)
    n, total = len(setup.samples), len(setup.samples) * len(runs)
    noisy = sorted({r.variant.noise for r in runs if r.variant.noise})
    ratios = sorted({r.variant.ratio for r in runs if r.variant.noise})
    if info.is_main and error is None:
        print(f"[nrvl] sweep: {args.model} on {n} samples x {len(runs)} runs (origin + {len(noisy)} noise(s) x "
              f"{len(ratios)} ratio(s)): {total - stored} to run over {info.world_size} rank(s), {stored} already "
              f"stored under {Path(args.work_dir) / E._safe(E._model_tag(args))}", file=sys.stderr)

    model = None
    if error is None and any(j.todo for j in jobs):
        try:
            model = E._build_model(args, setup.device)
            counts.model_loads += 1
        except Exception as e:  # noqa: BLE001 - as above
            error = E._rank_error(info, e, verbose)
    E._collective(error, info)

    error = None
    if model is not None:
        try:
            infer_sweep(model, mine, jobs, batch_size=args.batch_size or model.default_batch_size, info=info,
                        counts=counts, prefetch=args.prefetch)
            if counts.failed:
                logger.warning("rank %d: %d sample(s) failed; rerun to retry them", info.rank, counts.failed)
        except Exception as e:  # noqa: BLE001 - as above; KeyboardInterrupt is not caught
            error = E._rank_error(info, e, verbose, config_code=EXIT_FAILED)
        finally:
            model.close()
    E._collective(error, info, EXIT_FAILED)  # also the barrier before rank 0 merges


def _write_counts(args, setup, model_tag, runs, per_rank, judge) -> Path:
    from nrvl.atomic import atomic_write_text

    decodes: Counter = Counter()
    for c in per_rank:
        decodes.update(c["decodes"])
    videos = {s.video for s in setup.samples}
    doc = {
        "written_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "model": args.model, "data": setup.data_tag, "judge": setup.judge_name, "seed": args.seed,
        "limit": args.limit, "mode": args.mode, "world_size": len(per_rank),
        "samples": len(setup.samples), "videos": len(videos),
        "runs": [{"noise": r.variant.noise, "ratio": r.variant.ratio,
                  "folder": r.paths.folder.as_posix(), "stem": r.paths.stem} for r in runs],
        "counts": {
            "variants": len(runs),
            "model_loads": sum(c["model_loads"] for c in per_rank),
            "model_loads_per_process": [c["model_loads"] for c in per_rank],
            "decodes": sum(decodes.values()),
            "decodes_per_video": dict(sorted(decodes.items())),
            "max_decodes_per_video": max(decodes.values(), default=0),
            "generated": sum(c["generated"] for c in per_rank),
            "generate_calls": sum(c["generate_calls"] for c in per_rank),
            "failed": sum(c["failed"] for c in per_rank),
            "inference_seconds_per_process": [c["seconds"] for c in per_rank],
            "judge_requests": judge.requests if judge else 0,
            "judge_shared": judge.shared if judge else 0,
        },
    }
    path = counts_path(args.work_dir, model_tag, setup.data_tag)
    doc["history"] = _earlier_counts(path)
    return atomic_write_text(path, json.dumps(doc, indent=2) + "\n")


#: How many earlier invocations a counts file keeps under ``history``.
COUNTS_HISTORY = 50


def _earlier_counts(path: Path) -> list:
    """The ``history`` for a new counts file: what the file at ``path`` held (its own history,
    then its invocation without the run list), the newest ``COUNTS_HISTORY`` kept. A resumed or
    ``--mode eval`` sweep rewrites the file with its own counts; the earlier ones stay here."""
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    if not isinstance(old, dict):
        return []
    history = [h for h in old.get("history", []) if isinstance(h, dict)]
    history.append({k: v for k, v in old.items() if k not in ("history", "runs")})
    return history[-COUNTS_HISTORY:]


def _print_summary(runs, per_rank, judge, path, work_dir) -> None:
    lines = ["[nrvl] sweep done; Overall (coarse_all, 0-3):"]
    width = max(len(r.variant.label) for r in runs)
    for r in runs:
        overall = "-"
        if r.paths.rating is not None and r.paths.rating.is_file():
            overall = json.loads(r.paths.rating.read_text(encoding="utf-8")).get("coarse_all", {}).get("Overall", "-")
        lines.append(f"  {r.variant.label:<{width}}  {overall}")
    decodes = Counter()
    for c in per_rank:
        decodes.update(c["decodes"])
    loads = sum(c["model_loads"] for c in per_rank)
    text = (f"[nrvl] {loads} model load(s) over {len(per_rank)} process(es), {sum(decodes.values())} decode(s) of "
            f"{len(decodes)} video(s) (at most {max(decodes.values(), default=0)} per video), "
            f"{sum(c['generated'] for c in per_rank)} sample(s) generated")
    if judge is not None:
        text += f"; judge asked {judge.requests}, {judge.shared} answer(s) shared between runs"
    lines += [text, f"[nrvl] counts: {path}", f"[nrvl] report: nrvl report {work_dir}"]
    print("\n".join(lines), file=sys.stderr)
