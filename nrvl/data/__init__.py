"""Datasets: MMBench-Video from the Hugging Face hub, and a small generated demo set.

Every dataset is the MMBench-Video TSV layout (``index``, ``video``,
``video_type``, ``question``, ``answer``, ``dimensions``, ``video_path``) plus a
folder of ``<video>.mp4`` files. Names, as ``--data`` takes them:

========================================  ===========  ==========================================
name                                      frames       source
========================================  ===========  ==========================================
``MMBench_Video_8frame_nopack``           8            ``opencompass/MMBench-Video`` (HF hub cache)
``MMBench_Video_16frame_nopack``          16           same
``MMBench_Video_64frame_nopack``          64           same
``MMBench_Video_1fps_nopack``             1 per s      same
``MMBench_Video_8frame_pack``             8            same, one query per video (API models only)
``MMBench_Video_64frame_pack``            64           same
``MMBench_Video_1fps_pack``               1 per s      same
``MMBench_Video_demo``                    8            12 questions on 6 clips generated locally
``MMBench_Video_demo_1fps``               1 per s      the same demo clips and questions
``MMBench_Video_demo_pack``               8            the same, one query per video
========================================  ===========  ==========================================

``_pack`` presets send all of a video's questions in one query and parse the
answers back (:mod:`nrvl.pack`); as in VLMEvalKit they are for API models only.

A preset samples either a fixed number of frames (``nframe``) or a rate
(``fps``), never both, as VLMEvalKit's presets do; how each model turns that
into frame indices is in :mod:`nrvl.video.sampling`.

Loading is two steps so that under torchrun only rank 0 downloads or
generates: :func:`prepare_dataset` (may download, unpack or generate) and
:func:`load_dataset` (reads and validates; never downloads).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path
from typing import Any, Optional, Union

__all__ = [
    "DatasetError", "DatasetSpec", "Sample", "VideoDataset", "DATASETS", "list_datasets", "get_spec",
    "prepare_dataset", "load_dataset", "read_tsv", "video_filename", "cache_root", "REQUIRED_COLUMNS",
]

REQUIRED_COLUMNS = ("index", "video", "question", "answer", "dimensions")


class DatasetError(ValueError):
    """The dataset cannot be used as it is (bad TSV, missing files, checksum); one line for the user."""


def cache_root() -> Path:
    """Where NRVL keeps what it generates (demo data, the tiny model): ``$NRVL_CACHE`` or ``~/.cache/nrvl``."""
    env = os.environ.get("NRVL_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "nrvl"


@dataclass(frozen=True)
class DatasetSpec:
    """A registered dataset name.

    Attributes:
        name: the ``--data`` value.
        module: the module (under ``nrvl.data``) with ``prepare(spec, ...)`` and ``locate(spec, ...)``.
        nframe: frames per sample (the preset's), or None for an fps preset.
        description: one line.
        fps: frames per second of video to sample, or None for an nframe preset.
        pack: one query per video with all its questions (:mod:`nrvl.pack`), API models only.
    """

    name: str
    module: str
    nframe: Optional[int]
    description: str
    fps: Optional[float] = None
    pack: bool = False

    def __post_init__(self):
        if (self.nframe is None) == (self.fps is None):
            raise ValueError(f"dataset {self.name}: give exactly one of nframe and fps")


DATASETS: dict[str, DatasetSpec] = {
    s.name: s for s in (
        DatasetSpec("MMBench_Video_8frame_nopack", "mmbench", 8,
                    "MMBench-Video (1,998 questions, 609 videos), 8 frames, one query per question"),
        DatasetSpec("MMBench_Video_16frame_nopack", "mmbench", 16,
                    "MMBench-Video (1,998 questions, 609 videos), 16 frames, one query per question"),
        DatasetSpec("MMBench_Video_64frame_nopack", "mmbench", 64,
                    "MMBench-Video (1,998 questions, 609 videos), 64 frames, one query per question"),
        DatasetSpec("MMBench_Video_1fps_nopack", "mmbench", None,
                    "MMBench-Video (1,998 questions, 609 videos), 1 frame per second, one query per question",
                    fps=1.0),
        DatasetSpec("MMBench_Video_8frame_pack", "mmbench", 8,
                    "MMBench-Video, 8 frames, one query per video (609 queries); API models only", pack=True),
        DatasetSpec("MMBench_Video_64frame_pack", "mmbench", 64,
                    "MMBench-Video, 64 frames, one query per video (609 queries); API models only", pack=True),
        DatasetSpec("MMBench_Video_1fps_pack", "mmbench", None,
                    "MMBench-Video, 1 frame per second, one query per video (609 queries); API models only",
                    fps=1.0, pack=True),
        DatasetSpec("MMBench_Video_demo", "demo", 8,
                    "12 questions on 6 generated clips, MMBench-Video layout; made on first use"),
        DatasetSpec("MMBench_Video_demo_1fps", "demo", None,
                    "the demo's 12 questions at 1 frame per second", fps=1.0),
        DatasetSpec("MMBench_Video_demo_pack", "demo", 8,
                    "the demo's 6 clips, one query per clip with its questions; API models only", pack=True),
    )
}


def list_datasets() -> list[str]:
    """The ``--data`` names."""
    return list(DATASETS)


def get_spec(name: str) -> DatasetSpec:
    """The spec of ``name``.

    Raises:
        DatasetError: unknown name (the message lists the valid ones).
    """
    try:
        return DATASETS[name]
    except KeyError:
        raise DatasetError(f"unknown dataset {name!r}; valid: {', '.join(DATASETS)}") from None


@dataclass(frozen=True)
class Sample:
    """One question as the pipeline sees it.

    Attributes:
        index: the TSV ``index`` (the question id, int).
        video: the video id.
        question: the question text, as in the TSV.
        answer: the ground-truth answer text.
        video_path: absolute path of the mp4 file.
    """

    index: int
    video: str
    question: str
    answer: str
    video_path: str


@dataclass
class VideoDataset:
    """A loaded dataset.

    Attributes:
        name: the ``--data`` name.
        nframe: frames per sample (None for an fps preset).
        fps: frames per second sampled (None for an nframe preset).
        pack: one query per video (:mod:`nrvl.pack`).
        table: the TSV as a pandas DataFrame, text kept literally, ``index`` int64.
        video_root: the folder holding ``<video>.mp4``.
        tsv_path: the TSV file it was read from.
    """

    name: str
    nframe: Optional[int]
    table: Any
    video_root: Path
    tsv_path: Path
    fps: Optional[float] = None
    pack: bool = False
    _samples: Optional[list] = field(default=None, repr=False)

    def video_file(self, row) -> Path:
        """``<root>/<basename of video_path>`` (VLMEvalKit's rule), else ``<root>/<video>.mp4``."""
        return self.video_root / video_filename(row)

    def samples(self, limit: Optional[int] = None) -> list[Sample]:
        """The samples in TSV order, the first ``limit`` of them when given."""
        if self._samples is None:
            self._samples = [
                Sample(int(r["index"]), str(r["video"]), str(r["question"]), str(r["answer"]),
                       str(self.video_file(r)))
                for r in self.table.to_dict("records")
            ]
        return self._samples if limit is None else self._samples[:limit]

    def queries(self, limit: Optional[int] = None) -> list[Sample]:
        """What the model is asked: :meth:`samples`, or in pack mode one pack per video of them
        (:func:`nrvl.pack.pack_samples`: index and video the video id, sorted)."""
        if not self.pack:
            return self.samples(limit)
        from nrvl.pack import pack_samples

        return pack_samples(self.samples(limit))

    def rows(self, limit: Optional[int] = None):
        """The table's first ``limit`` rows (all when None), a copy."""
        return (self.table if limit is None else self.table.iloc[:limit]).reset_index(drop=True).copy()

    def check_videos(self, limit: Optional[int] = None) -> None:
        """Raise :class:`DatasetError` naming the first missing or empty video file, with the count."""
        missing = sorted({s.video_path for s in self.samples(limit)
                          if not os.path.isfile(s.video_path) or os.path.getsize(s.video_path) == 0})
        if missing:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise DatasetError(f"video file missing or empty: {missing[0]}{more}")


def video_filename(row) -> str:
    """The mp4 file name of a TSV row: basename of ``video_path`` when set, else ``<video>.mp4``."""
    vp = str(row.get("video_path", "") or "").strip()
    return os.path.basename(vp) if vp else f"{row['video']}.mp4"


def read_tsv(path: Union[str, Path]):
    """Read and validate an MMBench-Video style TSV.

    Text stays literal (no NaN conversion of ``"None"``/``"NA"``), ``index``
    must be unique integers, ``dimensions`` must be a Python list literal of
    MMBench-Video capability names (parsed with ``ast.literal_eval``; VLMEvalKit
    uses ``eval``).

    Raises:
        DatasetError: missing file or column, unparsable TSV, bad ``index``, bad ``dimensions``.
    """
    import pandas as pd

    from nrvl.rating import L3_DIMS, parse_dimensions

    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"TSV not found: {path}")
    try:
        df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, na_filter=False)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as e:
        raise DatasetError(f"cannot parse TSV {path}: {' '.join(str(e).split())}") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise DatasetError(f"TSV {path} lacks column(s) {missing}; needs {list(REQUIRED_COLUMNS)}")
    if len(df) == 0:
        raise DatasetError(f"TSV {path} has no rows")
    try:
        df["index"] = df["index"].astype("int64")
    except ValueError:
        bad = next(v for v in df["index"] if not str(v).strip().lstrip("-").isdigit())
        raise DatasetError(f"TSV {path}: column 'index' must hold integers, got {bad!r}") from None
    dup = df["index"][df["index"].duplicated()]
    if len(dup):
        raise DatasetError(f"TSV {path}: duplicate index {int(dup.iloc[0])}")
    known = set(L3_DIMS)
    for idx, cell in zip(df["index"], df["dimensions"]):
        try:
            dims = parse_dimensions(cell)
        except ValueError as e:
            raise DatasetError(f"TSV {path}: index {idx}: {e}") from None
        if not dims:
            raise DatasetError(f"TSV {path}: index {idx}: dimensions is an empty list")
        unknown = [d for d in dims if d not in known]
        if unknown:
            raise DatasetError(f"TSV {path}: index {idx}: unknown dimension(s) {unknown}; "
                               f"valid: {', '.join(L3_DIMS)}")
    for col in ("video", "question"):
        empty = df.index[df[col].str.strip() == ""]
        if len(empty):
            raise DatasetError(f"TSV {path}: index {int(df['index'][empty[0]])}: empty {col!r}")
    return df


def _module(spec: DatasetSpec):
    return import_module(f"nrvl.data.{spec.module}")


def prepare_dataset(name: str, **kwargs) -> Path:
    """Make the dataset's files available (download, unpack, generate); returns its root.

    Run on one rank only (rank 0), before :func:`load_dataset` on every rank.

    Raises:
        DatasetError: unknown name, download impossible (offline, no cache), checksum mismatch, bad chunk.
    """
    spec = get_spec(name)
    return _module(spec).prepare(spec, **kwargs)


def load_dataset(name: str, **kwargs) -> VideoDataset:
    """Read a prepared dataset: TSV validated, video root located. Never downloads.

    Raises:
        DatasetError: unknown name, not prepared, bad TSV.
    """
    spec = get_spec(name)
    tsv_path, video_root = _module(spec).locate(spec, **kwargs)
    table = read_tsv(tsv_path)
    return VideoDataset(name=spec.name, nframe=spec.nframe, table=table, video_root=Path(video_root),
                        tsv_path=Path(tsv_path), fps=spec.fps, pack=spec.pack)
