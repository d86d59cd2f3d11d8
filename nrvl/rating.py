"""MMBench-Video rating, identical to VLMEvalKit's ``get_dimension_rating``.

Given per-question scores (from :func:`nrvl.judge.judge_table`), the rating is
four dicts of 2-decimal strings (``reference/mmbench-video.md`` section 3):

- ``coarse_all`` / ``coarse_valid``: the 12 coarse groups CP, FP-S, FP-C, HL, LR,
  AR, RR, CSR, TR, Perception, Reasoning, Overall;
- ``fine_all`` / ``fine_valid``: the 26 fine capabilities, in table order.

A question counts once in each fine capability it lists (twice if it lists one
twice, as VLMEvalKit does) and once in each coarse group any of its capabilities
belongs to. ``all`` is the mean of ``max(score, 0)`` (failures count 0),
``valid`` the mean over scores ``>= 0``; an empty list gives ``"nan"``. Means
are numpy's, formatted with ``f'{mean:.2f}'``.

Files: :func:`write_rating` writes ``{model}_{data}_{noise}_{ratio}_{judge}_rating.json``
atomically with ``json.dump(indent=4, ensure_ascii=False)`` (VLMEvalKit's bytes),
and the score table beside it as ``..._{judge}_score.tsv``.
"""
from __future__ import annotations

import ast
import csv
import io
import json
import warnings
from pathlib import Path
from typing import Any, Union

import numpy as np

from nrvl._faults import kill_point
from nrvl.atomic import atomic_write_text

__all__ = [
    "MMV_DIMENSIONS", "L3_DIMS", "COARSE_DIMS", "dimension_rating", "parse_dimensions",
    "rating_filename", "score_filename", "score_path_for", "write_rating", "write_scores",
]

#: Coarse group → fine capabilities (VLMEvalKit ``MMV_DIMENSIONS``; names are data).
MMV_DIMENSIONS: dict[str, list[str]] = {
    "CP": ["Video Topic", "Video Emotion", "Video Scene", "Video Style"],
    "FP-S": ["OCR", "Object Recognition", "Attribute Recognition", "Event Recognition", "Human Motion",
             "Counting"],
    "FP-C": ["Spatial Relationship", "Human-object Interaction", "Human Interaction"],
    "HL": ["Hallucination"],
    "LR": ["Structuralized Image-Text Understanding", "Mathematical Calculation"],
    "AR": ["Physical Property", "Function Reasoning", "Identity Reasoning"],
    "RR": ["Natural Relation", "Physical Relation", "Social Relation"],
    "CSR": ["Common Sense Reasoning"],
    "TR": ["Counterfactual Reasoning", "Causal Reasoning", "Future Prediction"],
}
#: The 26 fine capabilities in VLMEvalKit's order.
L3_DIMS: list[str] = [c for cs in MMV_DIMENSIONS.values() for c in cs]
MMV_DIMENSIONS["Perception"] = [c for k in ("CP", "FP-C", "FP-S", "HL") for c in MMV_DIMENSIONS[k]]
MMV_DIMENSIONS["Reasoning"] = [c for k in ("LR", "AR", "RR", "CSR", "TR") for c in MMV_DIMENSIONS[k]]
MMV_DIMENSIONS["Overall"] = MMV_DIMENSIONS["Perception"] + MMV_DIMENSIONS["Reasoning"]
#: The 12 coarse keys in output order.
COARSE_DIMS: list[str] = list(MMV_DIMENSIONS)


def parse_dimensions(cell: Any) -> list[str]:
    """The capabilities of one question from its ``dimensions`` cell.

    The TSV stores the string of a Python list (``"['OCR', 'Counting']"``);
    it is read with :func:`ast.literal_eval` (VLMEvalKit uses ``eval``). A cell
    that is already a list or tuple is taken as is.

    Raises:
        ValueError: the cell is not a list of strings.
    """
    value = cell
    if isinstance(cell, str):
        try:
            value = ast.literal_eval(cell.strip())
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            raise ValueError(f"dimensions cell is not a Python list literal: {cell!r}") from None
    if isinstance(value, tuple):
        value = list(value)
    if not isinstance(value, list) or not all(isinstance(c, str) for c in value):
        raise ValueError(f"dimensions cell must be a list of capability names, got {cell!r}")
    return value


def _mean_str(values: list) -> str:
    # np.mean of [] is nan (with a RuntimeWarning) and formats as 'nan', as in VLMEvalKit.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return f"{np.mean(values):.2f}"


def dimension_rating(table) -> dict[str, dict[str, str]]:
    """VLMEvalKit's ``get_dimension_rating`` on an in-memory score table.

    Args:
        table: pandas DataFrame with ``dimensions`` (as stored in the TSV: the
            string of a Python list, or a list) and ``score`` (int; -1 for none).

    Returns:
        ``{"coarse_all": {...}, "coarse_valid": {...}, "fine_all": {...}, "fine_valid": {...}}``,
        each a dict of 2-decimal strings (``"1.52"``, ``"nan"`` when empty) in
        :data:`COARSE_DIMS` or :data:`L3_DIMS` order.

    Raises:
        ValueError: a column is missing, or a capability is not one of the 26
            (VLMEvalKit raises KeyError there).
    """
    for col in ("dimensions", "score"):
        if col not in table.columns:
            raise ValueError(f"table lacks column {col!r}; dimension_rating needs 'dimensions' and 'score'")
    coarse: dict[str, list] = {k: [] for k in MMV_DIMENSIONS}
    fine: dict[str, list] = {k: [] for k in L3_DIMS}
    groups = {k: set(v) for k, v in MMV_DIMENSIONS.items()}

    for cell, score in zip(table["dimensions"], table["score"]):
        cates = parse_dimensions(cell)
        for c in cates:
            if c not in fine:
                raise ValueError(f"unknown MMBench-Video capability {c!r}; expected one of {L3_DIMS}")
            fine[c].append(score)
        for d in coarse:
            if any(c in groups[d] for c in cates):
                coarse[d].append(score)

    def all_(v):
        return _mean_str([max(x, 0) for x in v])

    def valid(v):
        return _mean_str([x for x in v if x >= 0])

    return {
        "coarse_all": {k: all_(v) for k, v in coarse.items()},
        "coarse_valid": {k: valid(v) for k, v in coarse.items()},
        "fine_all": {k: all_(v) for k, v in fine.items()},
        "fine_valid": {k: valid(v) for k, v in fine.items()},
    }


def rating_filename(model: str, data: str, noise: str, ratio: Any, judge: str) -> str:
    """``{model}_{data}_{noise}_{ratio}_{judge}_rating.json`` (the original NRVL's name).

    ``ratio`` is formatted with ``str`` (``0.9`` → ``"0.9"``); ``/`` in any part
    (a model id such as ``Qwen/Qwen2.5-VL-3B-Instruct``) becomes ``_``.
    """
    parts = [str(p).replace("/", "_") for p in (model, data, noise, ratio, judge)]
    return "_".join(parts) + "_rating.json"


def score_filename(model: str, data: str, noise: str, ratio: Any, judge: str) -> str:
    """``{model}_{data}_{noise}_{ratio}_{judge}_score.tsv``, the score table beside the rating."""
    return rating_filename(model, data, noise, ratio, judge)[: -len("_rating.json")] + "_score.tsv"


def score_path_for(rating_path: Union[str, Path]) -> Path:
    """The score TSV path beside a rating file (``_rating.json`` → ``_score.tsv``)."""
    rating_path = Path(rating_path)
    stem = rating_path.name
    stem = stem[: -len("_rating.json")] if stem.endswith("_rating.json") else rating_path.stem
    return rating_path.with_name(stem + "_score.tsv")


def write_scores(table, path: Union[str, Path]) -> Path:
    """Write the score table atomically as VLMEvalKit dumps TSV: tab-separated,
    no index, every field quoted (``csv.QUOTE_ALL``), UTF-8."""
    buf = io.StringIO()
    table.to_csv(buf, sep="\t", index=False, quoting=csv.QUOTE_ALL, lineterminator="\n")
    return atomic_write_text(path, buf.getvalue())


def write_rating(rating: dict, path: Union[str, Path], *, scores=None) -> Path:
    """Write ``rating`` atomically (temp file + fsync + rename) as VLMEvalKit does.

    The bytes are ``json.dump(rating, fh, indent=4, ensure_ascii=False)``: no
    trailing newline, non-ASCII kept. With ``scores`` (the table from
    :func:`nrvl.judge.judge_table`), the score TSV is written first, beside it,
    at :func:`score_path_for` ``(path)``, so a rating file never exists without
    its scores.

    Returns:
        The rating path.
    """
    if scores is not None:
        write_scores(scores, score_path_for(path))
        kill_point("rating.scores_written")
    return atomic_write_text(path, json.dumps(rating, indent=4, ensure_ascii=False))
