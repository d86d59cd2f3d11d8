"""The crash-safe prediction store: one append-only JSON Lines file per rank.

Each finished sample becomes one :class:`PredictionRecord` line, flushed and
fsynced before the next sample starts (:func:`nrvl.atomic.append_jsonl`), in
``<dir>/<stem>.rank<r>.jsonl``. A run killed at any moment loses at most the
samples in flight; the next run reads every rank file of the same stem,
whatever world size wrote it, and skips what is stored. After the last
barrier rank 0 merges the records in TSV order into the predictions TSV,
written atomically. Nothing is pickled.

Every record carries the run's fingerprint (model, data, frames, noise,
ratio, seed, generation settings): records written under other settings into
the same folder are ignored, never mixed in. A pack record (``*_pack``
presets: one reply per video) also lists the questions its query asked; it is
reused only by a run that asks that video exactly those questions (another
``--limit`` can ask fewer or more).

Beside the predictions TSV, :func:`write_predictions` writes
``<stem>.tsv.meta.json``: the fingerprint and settings of the run the TSV was
merged from, and the TSV's sha256, so ``--mode eval`` can tell whose
predictions it is about to judge (:func:`read_predictions_meta`).
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import re
import time
from collections import Counter
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Sequence, Union

from nrvl.atomic import append_jsonl, atomic_write_bytes, atomic_write_text, iter_jsonl

logger = logging.getLogger(__name__)

__all__ = [
    "PredictionRecord", "PredictionStore", "run_fingerprint", "write_predictions", "read_predictions",
    "IncompletePredictionsError", "meta_path", "read_predictions_meta", "META_SUFFIX",
]

#: The sidecar of a predictions TSV: ``<stem>.tsv`` + this.
META_SUFFIX = ".meta.json"


class IncompletePredictionsError(RuntimeError):
    """Samples are missing from the store when a complete table is asked for."""


def run_fingerprint(settings: Mapping[str, Any]) -> str:
    """A short stable hash of the settings that determine the predictions.

    Args:
        settings: JSON-serialisable values (model, data, nframe, noise, ratio, seed, ...).

    Returns:
        16 hex characters.
    """
    text = json.dumps(dict(settings), sort_keys=True, ensure_ascii=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def key_of(index: Any) -> str:
    """The store key of a question index: ``str`` of an int (``177`` and ``"177"`` are one key)."""
    if isinstance(index, float) and index.is_integer():
        index = int(index)
    return str(index).strip()


@dataclass(frozen=True)
class PredictionRecord:
    """One finished sample.

    Attributes:
        index: the question's TSV ``index``.
        prediction: the model's answer text (VLMEvalKit's fail message for an
            API call that never succeeded).
        run: :func:`run_fingerprint` of the run that wrote it.
        video: the video id.
        seed: the sample's noise seed (``derive_seed(seed, video, index, noise, ratio)``).
        failed: True when ``prediction`` is a failure placeholder; such records
            are redone on the next run.
        rank: the rank that wrote it; ``world_size`` the job's size.
        seconds: wall time of the batch it was generated in, divided by the batch size.
        time: UNIX time when it was stored.
        questions: pack records only: the question indices (as strings, in the order
            asked) the pack's query held; None for one-question records, and in pack
            records written before this field existed.
    """

    index: Union[int, str]
    prediction: str
    run: str
    video: str = ""
    seed: Optional[int] = None
    failed: bool = False
    rank: int = 0
    world_size: int = 1
    seconds: float = 0.0
    time: float = 0.0
    questions: Optional[tuple] = None

    def to_dict(self) -> dict:
        d = asdict(self)
        if d["questions"] is None:  # one-question records keep the format they always had
            del d["questions"]
        else:
            d["questions"] = list(d["questions"])
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "PredictionRecord":
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        q = known.get("questions")
        if q is not None:
            known["questions"] = tuple(key_of(i) for i in q) if isinstance(q, (list, tuple)) else None
        return cls(**known)


class PredictionStore:
    """The per-rank JSON Lines files of one run folder and stem.

    Args:
        directory: the run folder (``<work-dir>/<model>/<noise or origin>``).
        stem: ``{model}_{data}_{noise}_{ratio}``; files are ``<stem>.rank<r>.jsonl``.
        run: the run fingerprint; records with another one are ignored.
        rank: this process's rank (the file it appends to).
        questions: pack mode: key (video id) -> the question indices this run asks in
            that video's query. A record of such a key counts only if it asked exactly
            these (its own ``questions``); :meth:`append` stamps them on new records.
        legacy_questions: pack mode: key -> what a record without ``questions`` (written
            before records listed them) is taken to have asked: the video's every
            question, as a run without ``--limit`` asks.
    """

    def __init__(self, directory: Union[str, Path], stem: str, run: str, rank: int = 0, *,
                 questions: Optional[Mapping[str, Sequence]] = None,
                 legacy_questions: Optional[Mapping[str, Sequence]] = None):
        self.directory = Path(directory)
        self.stem = stem
        self.run = run
        self.rank = int(rank)
        self.questions = None if questions is None else {
            key_of(k): tuple(key_of(i) for i in v) for k, v in questions.items()}
        self.legacy_questions = {key_of(k): tuple(key_of(i) for i in v) for k, v in (legacy_questions or {}).items()}
        self._pattern = re.compile(re.escape(stem) + r"\.rank(\d+)\.jsonl$")
        self._warned: set = set()

    @property
    def path(self) -> Path:
        """This rank's file."""
        return self.directory / f"{self.stem}.rank{self.rank}.jsonl"

    def files(self) -> list[Path]:
        """Every rank file of this stem in the folder, any world size, sorted by rank."""
        if not self.directory.is_dir():
            return []
        found = [(int(m.group(1)), p) for p in self.directory.iterdir()
                 if (m := self._pattern.fullmatch(p.name)) and p.is_file()]
        return [p for _, p in sorted(found)]

    def load(self) -> dict[str, PredictionRecord]:
        """Every stored record of this run, by key; a successful record beats a failed one.

        Records of other runs (another fingerprint) are counted and skipped, and so are
        pack records that asked other questions than this run asks (``questions``).
        """
        out: dict[str, PredictionRecord] = {}
        stale = other_questions = 0
        for path in self.files():
            for raw in iter_jsonl(path):
                if raw.get("run") != self.run or "index" not in raw or "prediction" not in raw:
                    stale += 1
                    continue
                rec = PredictionRecord.from_dict(raw)
                key = key_of(rec.index)
                if not self._asked_what_is_wanted(key, rec):
                    other_questions += 1
                    continue
                old = out.get(key)
                if old is None or (old.failed and not rec.failed):
                    out[key] = rec
        if stale:
            self._warn_once("%d stored record(s) in %s from a run with other settings are ignored",
                            stale, self.directory)
        if other_questions:
            self._warn_once("%d stored pack answer(s) in %s asked other questions of their video (another "
                            "--limit) and are not reused", other_questions, self.directory)
        return out

    def _warn_once(self, message: str, *args) -> None:
        if (message, args) not in self._warned:  # load() runs several times per command
            self._warned.add((message, args))
            logger.warning(message, *args)

    def _asked_what_is_wanted(self, key: str, rec: PredictionRecord) -> bool:
        if self.questions is None:
            return True
        wanted = self.questions.get(key)
        if wanted is None:  # a video this run does not ask about: never merged, harmless
            return True
        asked = rec.questions if rec.questions is not None else self.legacy_questions.get(key)
        return asked is not None and tuple(asked) == wanted

    def runs(self) -> Counter:
        """How many stored records each run fingerprint has, over every rank file (this run's included)."""
        out: Counter = Counter()
        for path in self.files():
            for raw in iter_jsonl(path):
                if "index" in raw and "prediction" in raw:
                    out[str(raw.get("run"))] += 1
        return out

    def done_keys(self) -> set[str]:
        """Keys of samples that need no rerun (stored and not failed)."""
        return {k for k, r in self.load().items() if not r.failed}

    def append(self, records: Union[PredictionRecord, Iterable[PredictionRecord]]) -> None:
        """Append records to this rank's file, one fsynced line each."""
        if isinstance(records, PredictionRecord):
            records = [records]
        for rec in records:
            if self.questions is not None and rec.questions is None and key_of(rec.index) in self.questions:
                rec = replace(rec, questions=self.questions[key_of(rec.index)])
            append_jsonl(self.path, rec.to_dict())

    def merge(self, table, *, column: str = "prediction", require_complete: bool = True):
        """The dataset table plus a ``prediction`` column, in the table's row order.

        Args:
            table: pandas DataFrame with an ``index`` column (the dataset's rows,
                possibly limited).
            column: the name of the new column.
            require_complete: raise when a row has no record.

        Returns:
            A new DataFrame.

        Raises:
            IncompletePredictionsError: rows without a record (their indices are listed).
        """
        records = self.load()
        keys = [key_of(i) for i in table["index"]]
        missing = [k for k in keys if k not in records]
        if missing and require_complete:
            shown = ", ".join(missing[:10]) + (", ..." if len(missing) > 10 else "")
            raise IncompletePredictionsError(
                f"{len(missing)} of {len(keys)} samples have no stored prediction in {self.directory} "
                f"(index {shown}); rerun inference to fill them in")
        out = table.copy()
        out[column] = [records[k].prediction if k in records else "" for k in keys]
        return out

    def failed_keys(self) -> list[str]:
        return sorted(k for k, r in self.load().items() if r.failed)


def make_record(index, prediction: str, *, run: str, video: str = "", seed: Optional[int] = None,
                failed: bool = False, rank: int = 0, world_size: int = 1, seconds: float = 0.0) -> PredictionRecord:
    """A :class:`PredictionRecord` stamped with the current time."""
    if isinstance(index, float) and index.is_integer():
        index = int(index)
    return PredictionRecord(index=index, prediction=str(prediction), run=run, video=str(video), seed=seed,
                            failed=bool(failed), rank=int(rank), world_size=int(world_size),
                            seconds=round(float(seconds), 4), time=round(time.time(), 3))


def meta_path(predictions: Union[str, Path]) -> Path:
    """The sidecar of a predictions TSV: ``<stem>.tsv.meta.json``."""
    predictions = Path(predictions)
    return predictions.with_name(predictions.name + META_SUFFIX)


def write_predictions(table, path: Union[str, Path], meta: Optional[Mapping[str, Any]] = None) -> Path:
    """Write the predictions table atomically as VLMEvalKit writes TSV.

    Tab-separated, no pandas index, every field quoted (``csv.QUOTE_ALL``, as
    VLMEvalKit's ``PRED_FORMAT=tsv``), UTF-8, ``\\n`` line ends.

    With ``meta`` (the run's ``run`` fingerprint and ``settings``), the sidecar
    :func:`meta_path` is written after the TSV, atomically too, holding ``meta`` and
    the TSV's ``tsv_sha256``. The hash binds the sidecar to these exact bytes: a
    writer killed between the two renames leaves a new TSV beside the old sidecar,
    which then vouches for nothing (:func:`read_predictions_meta`).
    """
    buf = io.StringIO()
    table.to_csv(buf, sep="\t", index=False, quoting=csv.QUOTE_ALL, lineterminator="\n")
    data = buf.getvalue().encode("utf-8")
    out = atomic_write_bytes(path, data)
    if meta is not None:
        doc = {**dict(meta), "tsv": Path(path).name, "tsv_sha256": hashlib.sha256(data).hexdigest()}
        atomic_write_text(meta_path(path), json.dumps(doc, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
    return out


def read_predictions_meta(path: Union[str, Path]) -> tuple[Optional[dict], str]:
    """The sidecar of the predictions TSV ``path``, and whether it describes this TSV.

    Returns:
        ``(meta, status)``; ``status`` is ``"ok"`` (``meta`` is the sidecar, and its
        ``tsv_sha256`` is the TSV's), ``"missing"`` (no sidecar: written by an older
        NRVL, or by hand), ``"unreadable"`` (not a JSON object with ``run`` and
        ``tsv_sha256``) or ``"other-tsv"`` (the TSV changed since: a writer killed
        between the TSV and its sidecar, or an edit). ``meta`` is None unless it could
        be read.
    """
    side = meta_path(path)
    if not side.is_file():
        return None, "missing"
    try:
        meta = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None, "unreadable"
    if not isinstance(meta, dict) or not isinstance(meta.get("run"), str) or "tsv_sha256" not in meta:
        return None, "unreadable"
    try:
        digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return meta, "other-tsv"
    return meta, "ok" if digest == meta["tsv_sha256"] else "other-tsv"


def read_predictions(path: Union[str, Path]):
    """Read a predictions TSV back; text stays text (``"None"`` and ``""`` are not NaN).

    ``index`` comes back as int when every value is an integer.
    """
    import pandas as pd

    df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, na_filter=False)
    if "index" in df.columns:
        try:
            df["index"] = df["index"].astype("int64")
        except ValueError:
            pass
    return df
