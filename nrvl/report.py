"""``nrvl report WORK_DIR [--out DIR]``: the robustness report of a work dir.

Reads every ``*_rating.json`` and its ``*_score.tsv`` under a work dir laid out
as the evaluation writes it::

    <work_dir>/<model>/<noise or 'origin'>/{model}_{data}_{noise}_{ratio}_{judge}_rating.json
    <work_dir>/<model>/<noise or 'origin'>/{model}_{data}_{noise}_{ratio}_{judge}_score.tsv

(a clean run has noise ``None`` and ratio ``None`` in its file names) and writes,
into ``--out`` (default ``WORK_DIR/report``), all at once or not at all:

- ``summary.tsv``: one row per noisy run (model, noise, ratio) with the noisy
  and clean Overall, the drop ``clean - noisy`` and the relative score
  ``noisy / clean``, each with a paired bootstrap interval (95% unless ``--level``), and the same
  for Perception and Reasoning;
- ``families.tsv``: the same averaged over the noises of each family (and
  over all noises, family ``all``) per model and ratio;
- ``models.tsv``: each model's clean scores and its mean drop;
- ``problems.tsv``: missing and partial runs, files that could not be used;
- ``summary.md``: all of the above as markdown;
- ``figures/*.png``: per model a noise x ratio heatmap of ``noisy / clean``,
  per ratio a model x noise heatmap, per model Overall vs ratio by family, and
  the most and least harmful noises;
- ``index.html``: the tables and figures on one page, read with no server.

Numbers. The metric is MMBench-Video's ``coarse_<metric>`` (``--metric all``,
the default, is VLMEvalKit's headline ``coarse_all`` / ``Overall``: a failed
judgement counts 0; ``valid`` drops failed judgements). Scores are 0..3 means.
Where a run has its score table, every number is recomputed from the
per-question scores, unrounded (the rating json's 2-decimal strings are checked
against them and a disagreement is listed); a run with a rating but no scores
uses the rating's numbers and gets no interval.

Intervals. Questions about one video are not independent, so the bootstrap
resamples videos with replacement and takes all their questions (a cluster
bootstrap). The clean and noisy runs are paired by question ``index``: both
means of one resample are over the same questions (under ``--metric valid``,
over those of them each run has a valid score for), so the interval is for the
drop itself. Resample counts are drawn once per (model, data, judge) (a fixed
seed, 2000 resamples by default) and shared by all its runs, which makes the
family means' intervals coherent. Intervals are percentile intervals. A noise
with no valid score (every judgement failed, ``--metric valid``) is left out of
its family's means and listed under problems. A resample that draws no scored
question of a group (a small dataset, ``--metric valid``) has no drop for it;
the interval is over the other resamples, and their count is listed under
problems (kind ``sparse``).

Usage::

    nrvl report WORK_DIR [--out DIR] [--metric all|valid] [--n-boot 2000] [--seed 0] [--no-figures]
    python -m nrvl.report WORK_DIR ...

Exit status 0, or 2 with one line on stderr for a work dir that is missing, not
a folder, holds no rating, or holds a rating or score file that cannot be read,
and for an ``--out`` that is not an earlier report. Nothing is written then.
"""
from __future__ import annotations

import argparse
import html
import json
import math
import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import pandas as pd

from nrvl._text import one_line as _one_line

__all__ = [
    "ReportError", "RunKey", "Run", "Problem", "Collection", "BootstrapResult", "Report",
    "METRICS", "GROUPS", "FIGURE_PX", "discover", "parse_run_name", "bootstrap_weights",
    "paired_bootstrap", "build_report", "write_report", "main",
]

RATING_SUFFIX = "_rating.json"
SCORE_SUFFIX = "_score.tsv"
CLEAN = "None"            # noise and ratio of a clean run in file names
CLEAN_DIR = "origin"      # folder of a clean run
METRICS = ("all", "valid")
GROUPS = ("Overall", "Perception", "Reasoning")
SCORE_COLUMNS = ("index", "video", "dimensions", "score")
OTHER_FAMILY = "other"
ALL_FAMILY = "all"
_MARKER = ".nrvl-report"  # marks an output folder as ours, so a rerun may replace it
_RATIO_RE = r"None|(?:\d+(?:\.\d+)?|\.\d+)(?:e-?\d+)?"  # str(float): 0.9, 1.0, 1e-05
_STORE_RE = re.compile(r"^(?P<stem>.+)\.rank\d+\.jsonl$")

#: Pixel size (width, height) of each kind of figure; fixed so pages lay out predictably.
FIGURE_PX = {
    "noise_ratio": (900, 1100),
    "model_noise": (1400, 650),
    "family_curves": (1000, 650),
    "harmful": (1100, 700),
}
_DPI = 100


class ReportError(Exception):
    """A work dir or output dir the report cannot use; the message is one line."""


# ---------------------------------------------------------------------------------------------
# Finding and reading runs
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True, order=True)
class RunKey:
    """What one run is. A clean run has ``noise == ratio == "None"``."""

    model: str
    data: str
    judge: str
    noise: str
    ratio: str

    @property
    def clean(self) -> bool:
        return self.noise == CLEAN

    @property
    def setup(self) -> tuple[str, str, str]:
        """(model, data, judge): runs of one setup are compared with its clean run."""
        return (self.model, self.data, self.judge)


@dataclass
class Run:
    """One run's files and contents.

    ``questions`` is the score table reduced to what the report needs, indexed
    by question ``index`` (str): ``video`` (str), ``score`` (int, -1 = failed) and
    one bool column per :data:`GROUPS` saying whether the question counts in it
    (VLMEvalKit's rule: any of its capabilities is in the group).
    """

    key: RunKey
    rating_path: Optional[Path] = None
    score_path: Optional[Path] = None
    rating: Optional[dict] = None
    questions: Optional[pd.DataFrame] = None


@dataclass(frozen=True)
class Problem:
    """A missing, partial or unusable run, as listed in ``problems.tsv``."""

    model: str
    noise: str
    ratio: str
    kind: str
    detail: str


@dataclass
class Collection:
    """Everything :func:`discover` found under a work dir."""

    work_dir: Path
    runs: dict[RunKey, Run]
    problems: list[Problem]
    families: dict[str, str]        # noise -> family (registry; unknown noises -> 'other')
    noise_order: list[str]          # registry order
    family_order: list[str]


def _registry() -> tuple[dict[str, str], list[str], list[str]]:
    """(noise -> family, noise order, family order) from ``nrvl.kernels``; empty if unavailable."""
    families: dict[str, str] = {}
    order: list[str] = []
    family_order: list[str] = []
    try:
        from nrvl.kernels import NOISES, list_noises
        families = {n: NOISES[n].family for n in list_noises()}
        order = list(list_noises())
    except Exception:  # the report must still run where torch or the kernels are unavailable
        pass
    try:
        from nrvl.kernels.registry import FAMILIES, REFERENCE_ORDER
        order = list(REFERENCE_ORDER) + [n for n in order if n not in REFERENCE_ORDER]
        family_order = list(FAMILIES)
    except Exception:
        family_order = sorted(set(families.values()))
    return families, order, family_order


def parse_run_name(stem: str, *, model: Optional[str] = None, noise: Optional[str] = None,
                   known_noises: Sequence[str] = ()) -> Optional[tuple[str, str, str, str, str]]:
    """Split ``{model}_{data}_{noise}_{ratio}_{judge}`` into its five parts.

    Model names hold dots and dashes, data names and judges underscores, so the
    name cannot be split on ``_``. The noise (from the run's folder, or else one
    of ``known_noises`` or ``None``) followed by a ratio is matched from the end
    of the stem; the model (from the folder) is matched at the start, and what
    lies between is the data name.

    Args:
        stem: the file name without ``_rating.json`` / ``_score.tsv``.
        model: the model folder's name, when the file sits in the standard layout.
        noise: the noise the folder names (``"None"`` for ``origin``), if any.
        known_noises: noise names to try when ``noise`` is not given or does not match.

    Returns:
        ``(model, data, noise, ratio, judge)`` as strings, or None when the stem
        does not have that shape.
    """
    tries = [[noise]] if noise else []
    tries.append(sorted(set(known_noises) | {CLEAN}, key=len, reverse=True))
    tail = re.compile(rf"_(?P<ratio>{_RATIO_RE})_(?P<judge>.+)")
    for names in tries:
        # The rightmost '_{noise}_{ratio}_' wins; at one position, the longest noise name
        # (frame_drop, not drop).
        best = None
        for name in names:
            for m in re.finditer(rf"(?<=_){re.escape(name)}(?=_)", stem):
                t = tail.fullmatch(stem, m.end())
                if t is None or m.start() < 2 or (name == CLEAN) != (t["ratio"] == CLEAN):
                    continue
                cand = (m.end(), len(name), stem[: m.start() - 1], name, t["ratio"], t["judge"])
                best = max(best, cand) if best else cand
        if best is None:
            continue
        prefix, found, ratio, judge = best[2:]
        if model and prefix.startswith(model + "_") and len(prefix) > len(model) + 1:
            return model, prefix[len(model) + 1:], found, ratio, judge
        if model is None:
            # No folder to tell the model: split before the MMBench data name.
            d = re.search(r"_(MMBench.*)$", prefix)
            if d and d.start() > 0:
                return prefix[: d.start()], d[1], found, ratio, judge
        return None
    return None


def _read_rating(path: Path, metric: str) -> dict:
    try:
        with open(path, encoding="utf-8") as fh:
            rating = json.load(fh)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ReportError(f"cannot read rating {path}: {_one_line(e)}") from None
    table = rating.get(f"coarse_{metric}") if isinstance(rating, dict) else None
    if not isinstance(table, dict):
        raise ReportError(f"{path} is not an MMBench-Video rating: no 'coarse_{metric}' dict")
    for g in GROUPS:
        try:
            float(table[g])
        except (KeyError, TypeError, ValueError):
            raise ReportError(f"{path} is not an MMBench-Video rating: coarse_{metric}[{g!r}] "
                              f"is {table.get(g)!r}") from None
    return rating


def _read_questions(path: Path) -> pd.DataFrame:
    from nrvl.rating import MMV_DIMENSIONS, parse_dimensions

    try:
        table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except (OSError, UnicodeDecodeError, ValueError, pd.errors.ParserError) as e:
        raise ReportError(f"cannot read score table {path}: {_one_line(e)}") from None
    missing = [c for c in SCORE_COLUMNS if c not in table.columns]
    if missing:
        raise ReportError(f"score table {path} lacks column(s) {missing}; needs {list(SCORE_COLUMNS)}")
    score = pd.to_numeric(table["score"], errors="coerce")
    bad = score.isna() | ~np.isfinite(score) | (score.abs() > 2 ** 53) | (score != score.round())
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise ReportError(f"score table {path}: score {table['score'].iloc[row]!r} (row {row + 1}) "
                          f"is not an integer")
    index = table["index"].str.strip()
    if index.duplicated().any():
        raise ReportError(f"score table {path}: question index {index[index.duplicated()].iloc[0]!r} "
                          f"appears twice")
    groups = {g: set(MMV_DIMENSIONS[g]) for g in GROUPS}
    member = {g: [] for g in GROUPS}
    for row, cell in enumerate(table["dimensions"]):
        try:
            cates = parse_dimensions(cell)
        except ValueError as e:
            raise ReportError(f"score table {path} row {row + 1}: {_one_line(e)}") from None
        unknown = [c for c in cates if c not in groups["Overall"]]
        if unknown:
            raise ReportError(f"score table {path} row {row + 1}: unknown MMBench-Video capability "
                              f"{unknown[0]!r}")
        for g in GROUPS:
            member[g].append(any(c in groups[g] for c in cates))
    out = pd.DataFrame({"video": table["video"].to_numpy(), "score": score.astype(np.int64).to_numpy(),
                        **{g: np.asarray(member[g], dtype=bool) for g in GROUPS}},
                       index=pd.Index(index.to_numpy(), name="index"))
    return out


def _walk(work_dir: Path, exclude: Optional[Path]):
    """Files under work_dir, skipping hidden folders (our temp dirs) and the output folder."""
    exclude = exclude.resolve() if exclude is not None else None
    def fail(e: OSError):
        raise ReportError(f"cannot list {e.filename}: {e.strerror}")

    for root, dirs, files in os.walk(work_dir, onerror=fail):
        root_path = Path(root)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")
                         and (exclude is None or (root_path / d).resolve() != exclude))
        for name in sorted(files):
            yield root_path / name


def _hints(path: Path, work_dir: Path) -> tuple[Optional[str], Optional[str]]:
    """(model, noise) the folders say, for ``<work_dir>/<model>/<noise or origin>/<file>``."""
    parts = path.relative_to(work_dir).parts
    if len(parts) >= 3:
        folder = parts[-2]
        return parts[-3], (CLEAN if folder == CLEAN_DIR else folder)
    if len(parts) == 2:
        return parts[0], None
    return None, None


def discover(work_dir, *, metric: str = "all", exclude=None) -> Collection:
    """Find, read and check every rating and score file under ``work_dir``.

    Args:
        work_dir: the evaluation's ``--work-dir``.
        metric: ``"all"`` or ``"valid"``: which ``coarse_*`` dict is read.
        exclude: a folder to skip (the report's own output).

    Returns:
        The runs by :class:`RunKey`, with the problems found on the way.

    Raises:
        ReportError: the work dir is missing, not a folder, holds no rating
            file, or a rating or score file cannot be read or is not one.
    """
    work_dir = Path(work_dir)
    if not work_dir.exists():
        raise ReportError(f"work dir {work_dir} does not exist")
    if not work_dir.is_dir():
        raise ReportError(f"work dir {work_dir} is not a directory")
    families, noise_order, family_order = _registry()
    known = set(noise_order) | set(families)
    problems: list[Problem] = []
    found: dict[RunKey, dict[str, list[Path]]] = {}
    stores: list[tuple[Path, Optional[str]]] = []
    n_ratings = 0

    for path in _walk(work_dir, Path(exclude) if exclude is not None else None):
        name = path.name
        if name.endswith(RATING_SUFFIX):
            kind, stem = "rating", name[: -len(RATING_SUFFIX)]
            n_ratings += 1
        elif name.endswith(SCORE_SUFFIX):
            kind, stem = "score", name[: -len(SCORE_SUFFIX)]
        else:
            m = _STORE_RE.match(name)
            if m:
                stores.append((path, _hints(path, work_dir)[0]))
            continue
        model, noise = _hints(path, work_dir)
        parts = parse_run_name(stem, model=model, noise=noise, known_noises=known)
        rel = path.relative_to(work_dir).as_posix()
        if parts is None:
            problems.append(Problem(model or "", noise or "", "", "unrecognised file",
                                    f"{rel}: name is not {{model}}_{{data}}_{{noise}}_{{ratio}}_{{judge}}"))
            continue
        key = RunKey(*parts[:2], parts[4], parts[2], parts[3])
        if noise is not None and key.noise != noise:
            problems.append(Problem(key.model, key.noise, key.ratio, "misplaced file",
                                    f"{rel}: its name says noise {key.noise!r} but it sits in folder "
                                    f"{path.parent.name!r}"))
        found.setdefault(key, {"rating": [], "score": []})[kind].append(path)

    if n_ratings == 0:
        raise ReportError(f"no *{RATING_SUFFIX} files under {work_dir}")

    runs: dict[RunKey, Run] = {}
    for key in sorted(found):
        paths = found[key]
        for kind in ("rating", "score"):
            if len(paths[kind]) > 1:
                shown = ", ".join(p.relative_to(work_dir).as_posix() for p in paths[kind])
                problems.append(Problem(key.model, key.noise, key.ratio, "duplicate",
                                        f"{len(paths[kind])} {kind} files for one run ({shown}); "
                                        f"using the first"))
        rating_path = paths["rating"][0] if paths["rating"] else None
        score_path = paths["score"][0] if paths["score"] else None
        if rating_path is None:
            problems.append(Problem(key.model, key.noise, key.ratio, "score without rating",
                                    f"{score_path.relative_to(work_dir).as_posix()} has no rating json "
                                    f"beside it (judging unfinished?); run not used"))
            continue
        run = Run(key, rating_path, score_path, _read_rating(rating_path, metric))
        if score_path is None:
            problems.append(Problem(key.model, key.noise, key.ratio, "rating without scores",
                                    "no score table: numbers from the rating's 2-decimal values, "
                                    "no interval"))
        else:
            run.questions = _read_questions(score_path)
            if run.questions.empty:
                problems.append(Problem(key.model, key.noise, key.ratio, "empty scores",
                                        "score table has no rows; numbers from the rating"))
                run.questions = None
        runs[key] = run
    unknown = sorted({k.noise for k in runs if not k.clean and k.noise not in families})
    for noise in unknown:
        n = sum(k.noise == noise for k in runs)
        problems.append(Problem("", noise, "", "unknown noise",
                                f"not a registered noise (nrvl.kernels); its {n} run(s) go in family "
                                f"{OTHER_FAMILY!r}"))

    # Prediction stores whose run never got a rating: an unfinished or unjudged run.
    rating_stems = {(p.parent, p.name[: -len(RATING_SUFFIX)]) for k in found for p in found[k]["rating"]}
    seen_stores = set()
    for path, model in stores:
        stem = _STORE_RE.match(path.name)["stem"]
        if (path.parent, stem) in seen_stores:
            continue
        seen_stores.add((path.parent, stem))
        if any(d == path.parent and s.startswith(stem + "_") for d, s in rating_stems):
            continue
        m = re.search(rf"_([^/]+?)_({_RATIO_RE})$", stem)
        noise, ratio = (m[1], m[2]) if m else ("", "")
        if stem.endswith("_None_None"):  # the clean run: its name ends in the noise and ratio None
            noise, ratio = CLEAN_DIR, ""
        if m and noise not in known and noise != CLEAN:
            noise = next((n for n in sorted(known, key=len, reverse=True) if stem.endswith(f"_{n}_{ratio}")),
                         noise)
        problems.append(Problem(model or "", noise, ratio, "unfinished",
                                f"{path.parent.relative_to(work_dir).as_posix()}/{stem}.rank*.jsonl: "
                                f"predictions but no rating"))

    return Collection(work_dir, runs, problems, families, noise_order, family_order)


# ---------------------------------------------------------------------------------------------
# Statistics
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class BootstrapResult:
    """A paired drop and relative score with their percentile intervals."""

    drop: float
    drop_lo: float
    drop_hi: float
    rel: float
    rel_lo: float
    rel_hi: float


def bootstrap_weights(n_clusters: int, n_boot: int = 2000, seed: int = 0) -> np.ndarray:
    """How many times each cluster is drawn in each resample.

    Drawing ``n_clusters`` clusters with replacement is a multinomial draw of
    the counts, so a resample is one row of weights and every statistic that is
    a ratio of per-cluster sums is a matrix product.

    Returns:
        float64 ``[n_boot, n_clusters]``, each row summing to ``n_clusters``.
    """
    rng = np.random.default_rng(seed)
    if n_clusters == 0:
        return np.zeros((n_boot, 0))
    return rng.multinomial(n_clusters, np.full(n_clusters, 1.0 / n_clusters), size=n_boot).astype(np.float64)


def _cluster_sums(values: np.ndarray, member: np.ndarray, codes: np.ndarray, n_clusters: int):
    """Per-cluster sums and counts of ``values`` within each group; NaN values are left out.

    values ``[Q]``, member bool ``[Q, G]``, codes int ``[Q]`` → sums, counts ``[V, G]``.
    """
    ok = member & ~np.isnan(values)[:, None]
    sums = np.zeros((n_clusters, member.shape[1]))
    counts = np.zeros((n_clusters, member.shape[1]))
    np.add.at(sums, codes, np.where(ok, np.nan_to_num(values)[:, None], 0.0))
    np.add.at(counts, codes, ok.astype(np.float64))
    return sums, counts


def _ratio(num, den):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def _replicates(weights, clean_sums, clean_counts, noisy_sums, noisy_counts):
    """Drop and noisy/clean of every resample: ``[B, G]`` each."""
    clean = _ratio(weights @ clean_sums, weights @ clean_counts)
    noisy = _ratio(weights @ noisy_sums, weights @ noisy_counts)
    return clean - noisy, _ratio(noisy, clean)


def _interval(reps: np.ndarray, level: float):
    tail = 50.0 * (1.0 - level)
    ok = ~np.isnan(reps)
    if not ok.any():
        return np.nan, np.nan
    lo, hi = np.percentile(reps[ok], [tail, 100.0 - tail])
    return float(lo), float(hi)


def _intervals(reps: np.ndarray, level: float):
    """Percentile interval of each column of ``[B, G]`` replicates → (lo, hi) arrays ``[G]``."""
    out = np.array([_interval(reps[:, g], level) for g in range(reps.shape[1])]).reshape(-1, 2)
    return out[:, 0], out[:, 1]


def paired_bootstrap(clean, noisy, clusters, *, n_boot: int = 2000, seed: int = 0,
                     level: float = 0.95) -> BootstrapResult:
    """Paired cluster bootstrap of ``mean(clean) - mean(noisy)`` and ``mean(noisy) / mean(clean)``.

    Question ``i`` was asked with and without noise (``clean[i]``, ``noisy[i]``)
    and belongs to cluster ``clusters[i]`` (its video). Each resample draws the
    clusters with replacement and takes all their questions, in both runs.
    Passing one cluster per question gives the naive per-question bootstrap.

    Args:
        clean, noisy: float ``[Q]`` per-question scores; NaN leaves a question
            out of that side's mean (the ``valid`` metric).
        clusters: ``[Q]`` labels of any hashable kind.
        n_boot: number of resamples.
        seed: seed of the resample counts.
        level: coverage of the interval.

    Returns:
        The point estimates and percentile intervals.
    """
    clean = np.asarray(clean, dtype=np.float64)
    noisy = np.asarray(noisy, dtype=np.float64)
    if clean.shape != noisy.shape or clean.ndim != 1:
        raise ValueError(f"clean and noisy must be 1-D of one length, got {clean.shape} and {noisy.shape}")
    codes, uniques = pd.factorize(pd.Series(np.asarray(clusters, dtype=object)), sort=True)
    if len(codes) != len(clean):
        raise ValueError(f"clusters must have one label per question ({len(clean)}), got {len(codes)}")
    if (codes < 0).any():
        raise ValueError(f"clusters must all be labelled; question {int(np.flatnonzero(codes < 0)[0])} has none")
    member = np.ones((len(clean), 1), dtype=bool)
    cs, cc = _cluster_sums(clean, member, codes, len(uniques))
    ns, nc = _cluster_sums(noisy, member, codes, len(uniques))
    ones = np.ones((1, len(uniques)))
    drop, rel = _replicates(ones, cs, cc, ns, nc)
    drops, rels = _replicates(bootstrap_weights(len(uniques), n_boot, seed), cs, cc, ns, nc)
    dlo, dhi = _intervals(drops, level)
    rlo, rhi = _intervals(rels, level)
    return BootstrapResult(float(drop[0, 0]), float(dlo[0]), float(dhi[0]),
                           float(rel[0, 0]), float(rlo[0]), float(rhi[0]))


def _metric_values(scores: np.ndarray, metric: str) -> np.ndarray:
    scores = scores.astype(np.float64)
    return np.maximum(scores, 0.0) if metric == "all" else np.where(scores >= 0, scores, np.nan)


def _group_means(questions: pd.DataFrame, metric: str) -> dict[str, float]:
    values = _metric_values(questions["score"].to_numpy(), metric)
    out = {}
    for g in GROUPS:
        v = values[questions[g].to_numpy()]
        v = v[~np.isnan(v)]
        out[g] = float(v.mean()) if len(v) else float("nan")
    return out


def _rating_means(run: Run, metric: str) -> dict[str, float]:
    return {g: float(run.rating[f"coarse_{metric}"][g]) for g in GROUPS}


def _run_means(run: Run, metric: str) -> dict[str, float]:
    return _group_means(run.questions, metric) if run.questions is not None else _rating_means(run, metric)


# ---------------------------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------------------------

@dataclass
class Report:
    """The tables of a report, ready to write."""

    metric: str
    n_boot: int
    seed: int
    models: pd.DataFrame
    summary: pd.DataFrame
    families: pd.DataFrame
    problems: pd.DataFrame
    labels: dict[tuple[str, str, str], str]      # setup -> display name
    noise_order: list[str]
    family_order: list[str]
    notes: list[str] = field(default_factory=list)
    level: float = 0.95


def _pct(level: float) -> str:
    """``0.95`` -> ``"95%"``, ``0.975`` -> ``"97.5%"``."""
    return f"{round(level * 100, 6):g}%"


def _ratio_key(r: str) -> float:
    try:
        return float(r)
    except ValueError:
        return math.inf


def _labels(setups) -> dict[tuple[str, str, str], str]:
    by_model: dict[str, list] = {}
    for s in setups:
        by_model.setdefault(s[0], []).append(s)
    out = {}
    for model, ss in by_model.items():
        for s in ss:
            out[s] = model if len(ss) == 1 else f"{model} [{s[1]}, {s[2]}]"
    return out


def build_report(collection: Collection, *, metric: str = "all", n_boot: int = 2000, seed: int = 0,
                 level: float = 0.95) -> Report:
    """Compute every table of the report from the runs :func:`discover` found."""
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    runs = collection.runs
    problems = list(collection.problems)
    fam = collection.families
    setups = sorted({k.setup for k in runs})
    labels = _labels(setups)
    noises_seen = {k.noise for k in runs if not k.clean}
    ratios_seen = sorted({k.ratio for k in runs if not k.clean}, key=_ratio_key)
    order = {n: i for i, n in enumerate(collection.noise_order)}
    noise_order = sorted(noises_seen, key=lambda n: (order.get(n, len(order)), n))
    family_order = [f for f in collection.family_order if f in {fam.get(n, OTHER_FAMILY) for n in noises_seen}]
    if any(fam.get(n) is None for n in noises_seen):
        family_order.append(OTHER_FAMILY)

    model_rows, summary_rows, family_rows = [], [], []
    for setup in setups:
        clean = runs.get(RunKey(*setup, CLEAN, CLEAN))
        noisy = sorted((k for k in runs if k.setup == setup and not k.clean),
                       key=lambda k: (order.get(k.noise, len(order)), k.noise, _ratio_key(k.ratio)))
        # The expected grid is every noise and ratio seen anywhere in this work dir.
        have = {(k.noise, k.ratio) for k in noisy}
        for n in noise_order:
            got = [r for r in ratios_seen if (n, r) in have]
            lacking = [r for r in ratios_seen if (n, r) not in have]
            if lacking:
                detail = (f"no rating at ratio {', '.join(lacking)} (has {', '.join(got)})" if got
                          else f"no rating at any ratio (other runs have {', '.join(lacking)})")
                problems.append(Problem(labels[setup], n, ", ".join(lacking), "missing", detail))
        clean_means = _run_means(clean, metric) if clean else None
        if clean is None:
            problems.append(Problem(labels[setup], CLEAN_DIR, "", "no clean run",
                                    f"no {CLEAN_DIR} rating for {setup[1]} / judge {setup[2]}: "
                                    f"drops and intervals not computed"))
        else:
            _check_rating(clean, metric, labels[setup], problems)
            if clean_means["Overall"] == 0 and noisy:
                problems.append(Problem(labels[setup], CLEAN_DIR, "", "clean scores 0",
                                        f"the clean run's Overall is 0 (metric {metric}): noisy/clean is "
                                        f"undefined, so only drops are shown and no ratio figure is drawn"))

        # One set of resample counts per setup, over the clean run's videos.
        weights = codes_of = None
        videos = None
        if clean is not None and clean.questions is not None:
            videos = pd.Index(sorted(clean.questions["video"].unique()))
            codes_of = pd.Series(videos.get_indexer(clean.questions["video"]), index=clean.questions.index)
            weights = bootstrap_weights(len(videos), n_boot, seed)

        reps: dict[RunKey, tuple[np.ndarray, np.ndarray]] = {}
        rows_here = []
        for key in noisy:
            run = runs[key]
            _check_rating(run, metric, labels[setup], problems)
            means = _run_means(run, metric)
            if math.isnan(means["Overall"]):
                problems.append(Problem(labels[setup], key.noise, key.ratio, "no valid score",
                                        f"no question has a judge score >= 0 (metric {metric}): left out of "
                                        f"its family's means"))
            elif run.questions is not None and len(run.questions) and (run.questions["score"] < 0).all():
                problems.append(Problem(labels[setup], key.noise, key.ratio, "no valid score",
                                        "every judgement failed (score -1): counted as 0 under coarse_all, as "
                                        "VLMEvalKit does; rerun the judge"))
            row = {"model": labels[setup], "data": key.data, "judge": key.judge, "noise": key.noise,
                   "family": fam.get(key.noise, OTHER_FAMILY), "ratio": key.ratio, **means}
            has_scores = run.questions is not None
            row.update(questions=len(run.questions) if has_scores else np.nan,
                       videos=run.questions["video"].nunique() if has_scores else np.nan,
                       source="scores" if has_scores else "rating")
            est = {g: (np.nan,) * 6 for g in GROUPS}
            if clean is not None:   # unpaired fallback: the two runs' own means
                for g in GROUPS:
                    est[g] = (clean_means[g] - means[g], np.nan, np.nan,
                              _safe_div(means[g], clean_means[g]), np.nan, np.nan)
            if weights is not None and has_scores:
                paired = _paired(clean, run, videos, codes_of, weights, metric, level)
                for kind, detail in paired["problems"]:
                    problems.append(Problem(labels[setup], key.noise, key.ratio, kind, detail))
                if paired["est"] is not None:
                    est = paired["est"]
                    reps[key] = paired["reps"]
            for g in GROUPS:
                p = _prefix(g)
                row[f"clean_{g}"] = clean_means[g] if clean_means else np.nan
                (row[f"{p}drop"], row[f"{p}drop_lo"], row[f"{p}drop_hi"],
                 row[f"{p}rel"], row[f"{p}rel_lo"], row[f"{p}rel_hi"]) = est[g]
            rows_here.append(row)
        summary_rows += rows_here
        family_rows += _family_rows(labels[setup], clean_means, rows_here, noisy, reps, ratios_seen,
                                    family_order, level)

        mrow = {"model": labels[setup], "data": setup[1], "judge": setup[2]}
        for g in GROUPS:
            mrow[g] = clean_means[g] if clean_means else np.nan
        mrow.update(
            questions=len(clean.questions) if clean and clean.questions is not None else np.nan,
            videos=len(videos) if videos is not None else np.nan,
            noisy_runs=len(noisy),
            mean_drop=_nanmean([r["drop"] for r in rows_here]),
            mean_rel=_nanmean([r["rel"] for r in rows_here]),
            worst=_extreme(rows_here, min), mildest=_extreme(rows_here, max),
        )
        model_rows.append(mrow)

    not_run = [n for n in collection.noise_order if n in fam and n not in noises_seen]
    if not_run:
        problems.append(Problem("", ", ".join(not_run), "", "not run",
                                f"{len(not_run)} registered noise(s) have no run in this work dir"))
    problem_df = pd.DataFrame([p.__dict__ for p in problems], columns=["model", "noise", "ratio", "kind", "detail"])
    notes = [
        f"Metric: coarse_{metric} (MMBench-Video 0-3 mean score; "
        + ("'all' counts a failed judgement as 0, VLMEvalKit's headline)" if metric == "all"
           else "'valid' leaves failed judgements out)"),
        "drop = clean - noisy (higher is worse); rel = noisy / clean (1 = unaffected).",
        f"Intervals: paired {_pct(level)} percentile bootstrap, videos resampled with replacement "
        f"with all their questions, {n_boot} resamples, seed {seed}.",
        "Runs with a score table are recomputed from per-question scores; runs with only a rating "
        "use its 2-decimal values and have no interval.",
    ]
    return Report(metric, n_boot, seed, _frame(model_rows, _MODEL_COLS), _frame(summary_rows, _SUMMARY_COLS),
                  _frame(family_rows, _FAMILY_COLS), problem_df, labels, noise_order, family_order, notes, level)


def _prefix(group: str) -> str:
    """Column prefix of a group: Overall's columns are bare (drop, rel), the others named."""
    return "" if group == "Overall" else group + "_"


def _paired(clean: Run, run: Run, videos: pd.Index, codes_of: pd.Series, weights: np.ndarray,
            metric: str, level: float) -> dict:
    """Drop and noisy/clean of ``run`` against ``clean``, paired by question, with intervals.

    Returns ``{"est": {group: (drop, lo, hi, rel, lo, hi)} or None, "reps": (drops, rels) [B, G],
    "problems": [(kind, detail)]}``.
    """
    problems = []
    paired = clean.questions.index.intersection(run.questions.index, sort=False)
    if len(paired) == 0:
        return {"est": None, "reps": None,
                "problems": [("partial", "no question in common with the clean run; no interval")]}
    if len(paired) != len(clean.questions) or len(paired) != len(run.questions):
        problems.append(("partial", f"{len(run.questions)} questions vs {len(clean.questions)} clean; "
                                    f"drop and interval over the {len(paired)} in common"))
    cq, nq = clean.questions.loc[paired], run.questions.loc[paired]
    moved = int((cq["video"].to_numpy() != nq["video"].to_numpy()).sum())
    if moved:
        problems.append(("mismatch", f"{moved} question(s) name another video than in the clean run; "
                                     f"the clean run's videos are used"))
    # Group membership and videos come from the clean run, so both sides average the same questions.
    member = cq[list(GROUPS)].to_numpy()
    codes = codes_of.loc[paired].to_numpy()
    sums = [_cluster_sums(_metric_values(q["score"].to_numpy(), metric), member, codes, len(videos))
            for q in (cq, nq)]
    point_d, point_r = _replicates(np.ones((1, len(videos))), *sums[0], *sums[1])
    drops, rels = _replicates(weights, *sums[0], *sums[1])
    dlo, dhi = _intervals(drops, level)
    rlo, rhi = _intervals(rels, level)
    est = {g: (float(point_d[0, i]), dlo[i], dhi[i], float(point_r[0, i]), rlo[i], rhi[i])
           for i, g in enumerate(GROUPS)}
    for i, g in enumerate(GROUPS):  # resamples that drew no scored question of a group have no drop
        empty = int(np.isnan(drops[:, i]).sum())
        if empty and not math.isnan(point_d[0, i]):
            problems.append(("sparse", f"{g}: {empty} of {len(drops)} resamples drew no scored question "
                                       f"of it; its interval is over the other {len(drops) - empty}"))
    return {"est": est, "reps": (drops, rels), "problems": problems}


def _family_rows(label, clean_means, rows, keys, reps, ratios, family_order, level) -> list[dict]:
    """Means over the noises of each family (and of all noises) at each ratio, for one model.

    The interval of a mean drop is taken from the mean of the noises' bootstrap
    replicates (all drawn with the model's one set of resample counts); it is
    left empty when a noise of the family has no replicates.
    """
    out = []
    for ratio in ratios:
        at = [(r, k) for r, k in zip(rows, keys) if k.ratio == ratio]
        groups = [(f, [(r, k) for r, k in at if r["family"] == f]) for f in family_order]
        for family, members in groups + [(ALL_FAMILY, at)]:
            if not members:
                continue
            # A noise without a value for a group (e.g. every judgement failed, --metric valid) is left
            # out of that group's mean and interval alike; "noises" counts those in the Overall mean.
            scored = [(r, k) for r, k in members if not math.isnan(r["Overall"])]
            frow = {"model": label, "family": family, "ratio": ratio, "noises": len(scored),
                    "noise_names": ", ".join(r["noise"] for r, _ in scored)}
            for i, g in enumerate(GROUPS):
                p = _prefix(g)
                have = [(r, k) for r, k in members if not math.isnan(r[g])]
                frow[g] = _nanmean([r[g] for r, _ in have])
                frow[f"clean_{g}"] = clean_means[g] if clean_means else np.nan
                frow[f"{p}drop"] = _nanmean([r[f"{p}drop"] for r, _ in have])
                frow[f"{p}rel"] = _nanmean([r[f"{p}rel"] for r, _ in have])
                if have and all(k in reps for _, k in have):
                    d = np.mean([reps[k][0][:, i] for _, k in have], axis=0)
                    q = np.mean([reps[k][1][:, i] for _, k in have], axis=0)
                    frow[f"{p}drop_lo"], frow[f"{p}drop_hi"] = _interval(d, level)
                    frow[f"{p}rel_lo"], frow[f"{p}rel_hi"] = _interval(q, level)
                else:
                    frow[f"{p}drop_lo"] = frow[f"{p}drop_hi"] = np.nan
                    frow[f"{p}rel_lo"] = frow[f"{p}rel_hi"] = np.nan
            out.append(frow)
    return out


def _ci_cols(prefix=""):
    return [f"{prefix}{c}" for c in ("drop", "drop_lo", "drop_hi", "rel", "rel_lo", "rel_hi")]


_SUMMARY_COLS = (["model", "data", "judge", "noise", "family", "ratio", "Overall", "clean_Overall"]
                 + _ci_cols() + ["Perception", "clean_Perception"] + _ci_cols("Perception_")
                 + ["Reasoning", "clean_Reasoning"] + _ci_cols("Reasoning_")
                 + ["questions", "videos", "source"])
_FAMILY_COLS = (["model", "family", "ratio", "noises", "Overall", "clean_Overall"] + _ci_cols()
                + ["Perception", "clean_Perception"] + _ci_cols("Perception_")
                + ["Reasoning", "clean_Reasoning"] + _ci_cols("Reasoning_") + ["noise_names"])
_MODEL_COLS = ["model", "data", "judge", "Overall", "Perception", "Reasoning", "questions", "videos",
               "noisy_runs", "mean_drop", "mean_rel", "worst", "mildest"]


def _frame(rows, cols) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=cols)


def _safe_div(a, b) -> float:
    return a / b if b and not math.isnan(b) and not math.isnan(a) else float("nan")


def _nanmean(values) -> float:
    v = np.asarray(values, dtype=np.float64)
    v = v[~np.isnan(v)]
    return float(v.mean()) if len(v) else float("nan")


def _extreme(rows, pick) -> str:
    rows = [r for r in rows if not math.isnan(r["rel"])]
    if not rows:
        return ""
    r = pick(rows, key=lambda r: r["rel"])
    return f"{r['noise']} @ {r['ratio']} ({r['rel']:.3f})"


def _check_rating(run: Run, metric: str, label: str, problems: list) -> None:
    """List a rating json whose 2-decimal values disagree with its own score table."""
    if run.questions is None:
        return
    means = _group_means(run.questions, metric)
    stated = {g: float(run.rating[f"coarse_{metric}"][g]) for g in GROUPS}

    def agree(a, b):  # the rating holds the mean rounded to 2 decimals
        return (math.isnan(a) and math.isnan(b)) or abs(a - b) <= 0.005 + 1e-9

    off = [f"{g} {stated[g]:.2f} vs {means[g]:.2f}" for g in GROUPS if not agree(stated[g], means[g])]
    if off:
        problems.append(Problem(label, CLEAN_DIR if run.key.clean else run.key.noise,
                                "" if run.key.clean else run.key.ratio, "mismatch",
                                f"rating disagrees with its score table ({'; '.join(off)}); scores used"))


# ---------------------------------------------------------------------------------------------
# Figures
# ---------------------------------------------------------------------------------------------

def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "x"


def _new_figure(kind: str):
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend

    w, h = FIGURE_PX[kind]
    return Figure(figsize=(w / _DPI, h / _DPI), dpi=_DPI, layout="constrained")


def _save(fig, path: Path) -> None:
    # No bbox_inches='tight': the PNG keeps exactly FIGURE_PX pixels.
    fig.savefig(path, dpi=_DPI, format="png", metadata={"Software": None})


def _rel_norm(values):
    from matplotlib.colors import TwoSlopeNorm

    v = np.asarray(values, dtype=np.float64)
    v = v[~np.isnan(v)]
    lo = min(float(v.min()) if len(v) else 0.9, 0.95)
    hi = max(float(v.max()) if len(v) else 1.05, 1.05)
    return TwoSlopeNorm(vcenter=1.0, vmin=lo, vmax=hi)


def _heatmap(fig, ax, matrix: np.ndarray, rows, cols, norm, title: str, xlabel: str, ylabel: str,
             rotate: bool = False):
    import matplotlib

    cmap = matplotlib.colormaps["RdYlGn"].with_extremes(bad="#d9d9d9")
    im = ax.imshow(np.ma.masked_invalid(matrix), cmap=cmap, norm=norm, aspect="auto",
                   interpolation="nearest")
    ax.set_xticks(range(len(cols)), labels=cols, rotation=60 if rotate else 0,
                  ha="right" if rotate else "center", fontsize=8)
    ax.set_yticks(range(len(rows)), labels=rows, fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=11)
    small = 6 if matrix.shape[1] > 20 else 8
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            v = matrix[i, j]
            ax.text(j, i, "–" if np.isnan(v) else f"{v:.2f}", ha="center", va="center", fontsize=small,
                    color="#444444" if np.isnan(v) else "black")
    fig.colorbar(im, ax=ax, shrink=0.8, label="noisy / clean")


def _family_colors(families):
    import matplotlib

    cmap = matplotlib.colormaps["tab10"]
    return {f: cmap(i % 10) for i, f in enumerate(families)}


def make_figures(report: Report, out: Path) -> list[tuple[str, str, str]]:
    """Draw every figure into ``out`` (a folder, made only when there is a figure); returns
    (section, file name, caption) in page order."""
    s = report.summary
    made: list[tuple[str, str, str]] = []
    used: set[str] = set()

    def name(stem: str) -> str:
        base, i = _slug(stem), 1
        cand = base
        while cand in used:
            i += 1
            cand = f"{base}_{i}"
        used.add(cand)
        return cand + ".png"

    with_rel = s[~s["rel"].isna()]
    if with_rel.empty:
        return made
    out.mkdir(parents=True, exist_ok=True)
    norm = _rel_norm(with_rel["rel"])
    ratios = sorted(s["ratio"].unique(), key=_ratio_key)
    noises = [n for n in report.noise_order if n in set(s["noise"])]
    models = list(dict.fromkeys(report.models["model"]))
    metric = f"coarse_{report.metric} Overall"

    # 1. Per model: noise x ratio.
    for model in models:
        m = s[s["model"] == model]
        if m["rel"].isna().all():
            continue
        piv = m.pivot(index="noise", columns="ratio", values="rel").reindex(index=noises, columns=ratios)
        rows = [f"{n} ({_family_of(s, n)})" for n in noises]
        fig = _new_figure("noise_ratio")
        ax = fig.add_subplot()
        _heatmap(fig, ax, piv.to_numpy(dtype=np.float64), rows, ratios, norm,
                 f"{model}: noisy / clean ({metric})", "ratio of frames corrupted", "noise")
        fname = name(f"noise_ratio_{model}")
        _save(fig, out / fname)
        made.append(("Relative robustness per model (noise x ratio)", fname,
                     f"{model}: noisy / clean {metric} for each noise and ratio; grey = no run."))

    # 2. Per ratio: model x noise.
    for ratio in ratios:
        r = s[s["ratio"] == ratio]
        if r["rel"].isna().all():
            continue
        piv = r.pivot(index="model", columns="noise", values="rel").reindex(index=models, columns=noises)
        fig = _new_figure("model_noise")
        ax = fig.add_subplot()
        _heatmap(fig, ax, piv.to_numpy(dtype=np.float64), models, noises, norm,
                 f"ratio {ratio}: noisy / clean ({metric})", "noise", "model", rotate=True)
        fname = name(f"model_noise_ratio_{ratio}")
        _save(fig, out / fname)
        made.append(("Models compared (model x noise, one per ratio)", fname,
                     f"Ratio {ratio}: noisy / clean {metric} for each model and noise; grey = no run."))

    # 3. Per model: Overall vs ratio, one line per family.
    fam = report.families
    colors = _family_colors(report.family_order + [ALL_FAMILY])
    fams = report.family_order + [ALL_FAMILY]
    for model in models:
        f = fam[fam["model"] == model]
        if f.empty:
            continue
        clean = f["clean_Overall"].iloc[0]
        fig = _new_figure("family_curves")
        ax = fig.add_subplot()
        for i, family in enumerate(fams):
            ff = f[f["family"] == family].copy()
            if ff.empty:
                continue
            ff["x"] = ff["ratio"].map(_ratio_key)
            ff = ff.sort_values("x")
            # Nudge each family sideways a little so the error bars do not sit on each other.
            x = ff["x"].to_numpy() + 0.006 * (i - (len(fams) - 1) / 2)
            y = ff["Overall"].to_numpy(dtype=np.float64)
            # The interval of the mean drop, seen from the clean score.
            err = np.vstack([y - (clean - ff["drop_hi"].to_numpy(dtype=np.float64)),
                             (clean - ff["drop_lo"].to_numpy(dtype=np.float64)) - y]).clip(min=0)
            if not np.isnan(clean):
                x, y = np.r_[0.0, x], np.r_[clean, y]
                err = np.hstack([np.zeros((2, 1)), err])
            style = dict(color="black", linestyle="--", linewidth=2) if family == ALL_FAMILY else \
                dict(color=colors[family], linewidth=1.4)
            ax.errorbar(x, y, yerr=np.nan_to_num(err), marker="o", markersize=4, capsize=3, elinewidth=0.8,
                        label=f"{family} ({int(ff['noises'].max())})", **style)
        ax.set_xlabel("ratio of frames corrupted (0 = clean)")
        ax.set_ylabel(metric)
        ax.set_title(f"{model}: {metric} vs ratio, mean per noise family (bars: {_pct(report.level)} CI of the drop)",
                     fontsize=11)
        ax.grid(alpha=0.3)
        ax.legend(title="family (noises)", fontsize=8, loc="best")
        fname = name(f"family_curves_{model}")
        _save(fig, out / fname)
        made.append(("Overall vs ratio per family", fname,
                     f"{model}: mean {metric} of each family's noises at each ratio; dashed = all noises."))

    # 4. Most and least harmful noises, over all models and ratios.
    per_noise = with_rel.assign(rdrop=1.0 - with_rel["rel"]).groupby("noise").agg(
        rdrop=("rdrop", "mean"), runs=("rdrop", "size"), family=("family", "first"))
    per_noise = per_noise.sort_values("rdrop", ascending=False)
    k = _TOP_K
    if len(per_noise) > 2 * k:
        shown = pd.concat([per_noise.head(k), per_noise.tail(k)])
        what = f"the {k} most and {k} least harmful of {len(per_noise)} noises"
    else:
        shown = per_noise
        what = f"all {len(per_noise)} noises"
    fig = _new_figure("harmful")
    ax = fig.add_subplot()
    y = np.arange(len(shown))[::-1]
    ax.barh(y, shown["rdrop"].to_numpy(), color=[colors.get(f, "grey") for f in shown["family"]])
    ax.set_yticks(y, labels=[f"{n} ({f})" for n, f in zip(shown.index, shown["family"])], fontsize=9)
    ax.axvline(0.0, color="black", linewidth=0.8)
    if len(per_noise) > 2 * k:
        ax.axhline(y[k - 1] - 0.5, color="grey", linestyle=":", linewidth=1)
    for yy, v in zip(y, shown["rdrop"]):
        ax.text(v, yy, f" {v:.3f}", va="center", ha="left" if v >= 0 else "right", fontsize=8)
    ax.set_xlabel(f"relative drop 1 - noisy/clean ({metric}), mean over models and ratios")
    ax.set_title(f"Most and least harmful noises: {what}", fontsize=11)
    ax.grid(axis="x", alpha=0.3)
    fname = name("harmful_noises")
    _save(fig, out / fname)
    made.append(("Most and least harmful noises", fname,
                 f"{what.capitalize()}, by mean relative drop over {with_rel['model'].nunique()} model(s) "
                 f"and all ratios run."))
    return made


_TOP_K = 5


def _family_of(summary: pd.DataFrame, noise: str) -> str:
    f = summary.loc[summary["noise"] == noise, "family"]
    return f.iloc[0] if len(f) else OTHER_FAMILY


# ---------------------------------------------------------------------------------------------
# Writing: TSV, markdown, HTML
# ---------------------------------------------------------------------------------------------

_TABLES = [  # (file stem, Report attribute, heading), in page order: problems first, the long table last
    ("problems", "problems", "Missing and partial runs"),
    ("models", "models", "Models (clean scores)"),
    ("families", "families", "Family means"),
    ("summary", "summary", "Every noisy run"),
]


def _fmt(v, digits=2) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, (float, np.floating)):
        return f"{v:.{digits}f}"
    if isinstance(v, (np.integer,)):
        return str(int(v))
    return str(v)


def _with_ci(v, lo, hi, digits) -> str:
    s = _fmt(v, digits)
    if s and not (math.isnan(lo) or math.isnan(hi)):
        s += f" [{lo:.{digits}f}, {hi:.{digits}f}]"
    return s


def _display(df: pd.DataFrame, kind: str, level: float = 0.95) -> pd.DataFrame:
    """The human-readable view of a table: CIs (of coverage ``level``) folded into their cells, 2-3 decimals."""
    ci = f"[{_pct(level)} CI]"
    if kind == "problems":
        return df.fillna("")
    if kind == "models":
        out = pd.DataFrame({"model": df["model"], "data": df["data"], "judge": df["judge"]})
        for g in GROUPS:
            out[g] = df[g].map(_fmt)
        out["questions"] = df["questions"].map(_count)
        out["videos"] = df["videos"].map(_count)
        out["noisy runs"] = df["noisy_runs"].map(_count)
        out["mean drop"] = df["mean_drop"].map(_fmt)
        out["mean noisy/clean"] = df["mean_rel"].map(lambda v: _fmt(v, 3))
        out["worst"] = df["worst"]
        out["mildest"] = df["mildest"]
        return out
    keys = ["model", "noise", "family", "ratio"] if kind == "summary" else ["model", "family", "ratio", "noises"]
    out = df[keys].copy()
    if kind == "families":
        out["noises"] = df["noises"].map(_count)
    out["Overall"] = df["Overall"].map(_fmt)
    out["clean"] = df["clean_Overall"].map(_fmt)
    out[f"drop {ci}"] = [_with_ci(*t, 2) for t in zip(df["drop"], df["drop_lo"], df["drop_hi"])]
    out[f"noisy/clean {ci}"] = [_with_ci(*t, 3) for t in zip(df["rel"], df["rel_lo"], df["rel_hi"])]
    for g in ("Perception", "Reasoning"):
        out[g] = df[g].map(_fmt)
        out[f"{g} drop {ci}"] = [_with_ci(*t, 2) for t in
                                     zip(df[f"{g}_drop"], df[f"{g}_drop_lo"], df[f"{g}_drop_hi"])]
    if kind == "summary":
        out["questions"] = df["questions"].map(_count)
        out["source"] = df["source"]
    return out


def _count(v) -> str:
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else str(int(v))


def _markdown_table(df: pd.DataFrame) -> str:
    if df.empty:
        return "_none_\n"

    def cell(v):
        return str(v).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(c) for c in df.columns) + " |",
             "|" + "|".join("---" for _ in df.columns) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def _html_table(df: pd.DataFrame) -> str:
    if df.empty:
        return "<p class='none'>none</p>"
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>"
                   for row in df.itertuples(index=False))
    return f"<div class='scroll'><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px;color:#222;max-width:1500px}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.8em;border-bottom:1px solid #ddd;padding-bottom:4px}
h3{font-size:1.0em}
table{border-collapse:collapse;font-size:12px}th,td{border:1px solid #ddd;padding:3px 6px;text-align:left;
white-space:nowrap}th{background:#f3f3f3;position:sticky;top:0}tr:nth-child(even){background:#fafafa}
.scroll{overflow:auto;max-height:600px}.notes li{margin:2px 0}.none{color:#777;font-style:italic}
figure{margin:12px 0}figure img{max-width:100%;border:1px solid #eee}figcaption{font-size:12px;color:#555}
nav a{margin-right:12px}code{background:#f3f3f3;padding:0 3px}
"""


def _no_figure_reason(report: Report) -> str:
    """Why no figure could be drawn: every figure plots noisy/clean."""
    if (report.problems["kind"] == "clean scores 0").any():
        return "the clean run scores 0, so noisy/clean is undefined (see problems)"
    return "no noisy run has a clean run to compare with"


def _render_html(report: Report, work_dir: Path, figures, files) -> str:
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<title>NRVL robustness report</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>NRVL robustness report</h1>",
        f"<p>Work dir: <code>{html.escape(str(work_dir))}</code></p>",
        "<nav>" + "".join(f"<a href='#{stem}'>{html.escape(head)}</a>" for stem, _, head in _TABLES[:2])
        + "<a href='#figures'>Figures</a>"
        + "".join(f"<a href='#{stem}'>{html.escape(head)}</a>" for stem, _, head in _TABLES[2:]) + "</nav>",
        "<ul class='notes'>" + "".join(f"<li>{html.escape(n)}</li>" for n in report.notes) + "</ul>",
        "<p>Files: " + ", ".join(f"<a href='{html.escape(f)}'>{html.escape(f)}</a>" for f in files) + "</p>",
    ]
    figure_parts = ["<h2 id='figures'>Figures</h2>"]
    if figures is None:
        figure_parts.append("<p class='none'>figures not drawn (--no-figures)</p>")
    elif not figures:
        figure_parts.append(f"<p class='none'>no figures: {html.escape(_no_figure_reason(report))}</p>")
    section = None
    for sec, fname, caption in figures or []:
        if sec != section:
            figure_parts.append(f"<h3>{html.escape(sec)}</h3>")
            section = sec
        src = html.escape(f"figures/{fname}")
        figure_parts.append(f"<figure><a href='{src}'><img src='{src}' alt='{html.escape(caption)}' "
                            f"loading='lazy'></a><figcaption>{html.escape(caption)}</figcaption></figure>")
    for stem, attr, head in _TABLES:
        if stem == "families":   # the figures sit between the short tables and the long ones
            parts += figure_parts
        df = getattr(report, attr)
        parts.append(f"<h2 id='{stem}'>{html.escape(head)} ({len(df)})</h2>")
        parts.append(f"<p><a href='{stem}.tsv'>{stem}.tsv</a></p>")
        parts.append(_html_table(_display(df, stem, report.level)))
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _render_markdown(report: Report, work_dir: Path, figures) -> str:
    out = ["# NRVL robustness report", "", f"Work dir: `{work_dir}`", ""]
    out += [f"- {n}" for n in report.notes] + [""]
    for stem, attr, head in _TABLES:
        df = getattr(report, attr)
        out += [f"## {head} ({len(df)})", "", f"TSV: `{stem}.tsv`", "", _markdown_table(_display(df, stem, report.level))]
    out += ["## Figures", ""]
    out += [f"- [{caption}](figures/{fname})" for _, fname, caption in figures] or ["_none_"]
    return "\n".join(out) + "\n"


def write_report(report: Report, work_dir: Path, out: Path, *, figures: bool = True) -> Path:
    """Write every file of ``report`` into ``out``, atomically.

    Everything goes into a temporary sibling folder first; only when it is
    complete does it replace ``out`` (an earlier report there is removed after
    the swap). ``out`` must be missing, empty, or an earlier report.
    ``figures=False`` skips the PNGs (tables only; much faster).

    Raises:
        ReportError: ``out`` is a file or a folder that is not an NRVL report.
    """
    out = Path(out)
    if out.exists():
        if not out.is_dir():
            raise ReportError(f"output {out} exists and is not a directory")
        if any(out.iterdir()) and not (out / _MARKER).exists():
            raise ReportError(f"output {out} exists and is not an earlier nrvl report; "
                              f"choose another --out or remove it")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    except OSError as e:
        raise ReportError(f"cannot write the report next to {out}: {_one_line(e)}") from None
    old = None
    try:
        files = []
        for stem, attr, _ in _TABLES:
            getattr(report, attr).to_csv(tmp / f"{stem}.tsv", sep="\t", index=False, float_format="%.6f",
                                         lineterminator="\n")
            files.append(f"{stem}.tsv")
        drawn = make_figures(report, tmp / "figures") if figures else None
        (tmp / "summary.md").write_text(_render_markdown(report, work_dir, drawn or []), encoding="utf-8")
        files.append("summary.md")
        (tmp / "index.html").write_text(_render_html(report, work_dir, drawn, files), encoding="utf-8")
        (tmp / _MARKER).write_text("written by nrvl report\n", encoding="utf-8")
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; a report is meant to be read
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            os.replace(out, old / "report")
        os.replace(tmp, out)
    except BaseException as e:
        if old is not None and not out.exists():
            os.replace(old / "report", out)  # put the earlier report back
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        if isinstance(e, OSError):
            raise ReportError(f"cannot write the report to {out}: {_one_line(e)}") from None
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return out


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------

class _Parser(argparse.ArgumentParser):
    """argparse whose usage errors are one line too (exit code 2)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="nrvl report",
        description="Tables, bootstrap intervals, figures and an index.html for every rating under a work dir.")
    p.add_argument("work_dir", type=Path, help="the evaluation's --work-dir")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: WORK_DIR/report); "
                   "replaced atomically")
    p.add_argument("--metric", choices=METRICS, default="all",
                   help="coarse_all (default, VLMEvalKit's headline: failed judgements count 0) or "
                        "coarse_valid (failed judgements left out)")
    p.add_argument("--n-boot", type=int, default=2000, help="bootstrap resamples (default 2000)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--level", type=float, default=0.95,
                   help="coverage of the bootstrap intervals, in (0, 1) (default 0.95)")
    p.add_argument("--no-figures", action="store_true", help="write the tables and page without figures")
    p.add_argument("-v", "--verbose", action="store_true", help="print the traceback of an unexpected error")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``nrvl report WORK_DIR [--out DIR] [--metric all|valid] [--n-boot N] [--seed S] [--level L] [--no-figures]``.

    Args:
        argv: the arguments after ``report`` (default ``sys.argv[1:]``).

    Returns:
        0 on success; 2 for a bad work dir or output dir (one line on stderr).
    """
    try:
        args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as e:  # --help (0) or a usage error (2, already printed): return, don't exit
        return e.code if isinstance(e.code, int) else 2
    if args.n_boot < 1:
        print(f"nrvl report: error: --n-boot must be >= 1, got {args.n_boot}", file=sys.stderr)
        return 2
    if args.seed < 0:
        print(f"nrvl report: error: --seed must be >= 0, got {args.seed}", file=sys.stderr)
        return 2
    if not 0 < args.level < 1:
        print(f"nrvl report: error: --level must be in (0, 1), e.g. 0.95, got {args.level:g}", file=sys.stderr)
        return 2
    out = args.out if args.out is not None else args.work_dir / "report"
    try:
        collection = discover(args.work_dir, metric=args.metric, exclude=out)
        report = build_report(collection, metric=args.metric, n_boot=args.n_boot, seed=args.seed,
                              level=args.level)
        write_report(report, args.work_dir, out, figures=not args.no_figures)
    except ReportError as e:
        print(f"nrvl report: error: {_one_line(e)}", file=sys.stderr)
        return 2
    n_prob = len(report.problems)
    print(f"nrvl report: {len(report.summary)} noisy run(s) of {len(report.models)} model(s); "
          f"{n_prob} problem(s) listed; open {out / 'index.html'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
