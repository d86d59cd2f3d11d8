"""Rating tests: VLMEvalKit get_dimension_rating semantics on hand-computed tables, files, atomic helpers."""
from __future__ import annotations

import json
import os
import random
from fractions import Fraction
from pathlib import Path

import pandas as pd
import pytest

from nrvl import atomic
from nrvl.atomic import append_jsonl, atomic_write_bytes, atomic_write_text, read_jsonl
from nrvl.rating import (
    COARSE_DIMS, L3_DIMS, MMV_DIMENSIONS, dimension_rating, rating_filename, score_filename, score_path_for,
    write_rating, write_scores,
)

FINE_26 = [
    "Video Topic", "Video Emotion", "Video Scene", "Video Style",
    "OCR", "Object Recognition", "Attribute Recognition", "Event Recognition", "Human Motion", "Counting",
    "Spatial Relationship", "Human-object Interaction", "Human Interaction",
    "Hallucination",
    "Structuralized Image-Text Understanding", "Mathematical Calculation",
    "Physical Property", "Function Reasoning", "Identity Reasoning",
    "Natural Relation", "Physical Relation", "Social Relation",
    "Common Sense Reasoning",
    "Counterfactual Reasoning", "Causal Reasoning", "Future Prediction",
]
COARSE_12 = ["CP", "FP-S", "FP-C", "HL", "LR", "AR", "RR", "CSR", "TR", "Perception", "Reasoning", "Overall"]


def table(rows):
    """rows: [(dimensions list, score)] → a score table with dimensions stored as in the TSV."""
    return pd.DataFrame({
        "index": list(range(len(rows))),
        "dimensions": [str(list(d)) for d, _ in rows],
        "score": [s for _, s in rows],
    })


def test_dimension_names_and_order():
    assert L3_DIMS == FINE_26
    assert COARSE_DIMS == COARSE_12
    assert sorted(MMV_DIMENSIONS["Perception"]) == sorted(FINE_26[:14])
    assert sorted(MMV_DIMENSIONS["Reasoning"]) == sorted(FINE_26[14:])
    assert sorted(MMV_DIMENSIONS["Overall"]) == sorted(FINE_26)


HAND = [
    (["OCR"], 3),
    (["OCR", "Counting"], 2),
    (["Counting"], -1),
    (["Video Topic", "Causal Reasoning"], 1),
    (["Hallucination"], 0),
    (["Causal Reasoning"], 3),
    (["Spatial Relationship", "OCR"], -1),
]


def test_hand_computed_rating_with_failures_and_multi_label_rows():
    r = dimension_rating(table(HAND))
    assert list(r) == ["coarse_all", "coarse_valid", "fine_all", "fine_valid"]
    assert list(r["coarse_all"]) == COARSE_12 and list(r["fine_valid"]) == FINE_26
    nan = "nan"
    assert r["coarse_all"] == {
        "CP": "1.00", "FP-S": "1.25", "FP-C": "0.00", "HL": "0.00", "LR": nan, "AR": nan, "RR": nan,
        "CSR": nan, "TR": "2.00", "Perception": "1.00", "Reasoning": "2.00", "Overall": "1.29",
    }
    assert r["coarse_valid"] == {
        "CP": "1.00", "FP-S": "2.50", "FP-C": nan, "HL": "0.00", "LR": nan, "AR": nan, "RR": nan,
        "CSR": nan, "TR": "2.00", "Perception": "1.50", "Reasoning": "2.00", "Overall": "1.80",
    }
    fine_all = {k: nan for k in FINE_26}
    fine_all.update({"OCR": "1.67", "Counting": "1.00", "Video Topic": "1.00", "Causal Reasoning": "2.00",
                     "Hallucination": "0.00", "Spatial Relationship": "0.00"})
    fine_valid = {k: nan for k in FINE_26}
    fine_valid.update({"OCR": "2.50", "Counting": "2.00", "Video Topic": "1.00", "Causal Reasoning": "2.00",
                       "Hallucination": "0.00"})
    assert r["fine_all"] == fine_all
    assert r["fine_valid"] == fine_valid


def test_two_decimal_strings_use_python_format_rounding():
    # Means 1/8, 3/8, 5/8 are exact binary halves: format rounds them half to even.
    rows = [(["Hallucination"], 1)] + [(["Hallucination"], 0)] * 7
    rows += [(["OCR"], 3)] + [(["OCR"], 0)] * 7
    rows += [(["Counting"], 3), (["Counting"], 2)] + [(["Counting"], 0)] * 6
    r = dimension_rating(table(rows))
    assert (r["fine_all"]["Hallucination"], r["fine_all"]["OCR"], r["fine_all"]["Counting"]) == ("0.12", "0.38", "0.62")
    assert r["coarse_all"]["Overall"] == f"{9 / 24:.2f}" == "0.38"


def test_duplicate_label_counts_twice_in_fine_once_in_coarse():
    r = dimension_rating(table([(["OCR", "OCR"], 3), (["OCR"], 0)]))
    assert r["fine_all"]["OCR"] == "2.00"     # [3, 3, 0]
    assert r["coarse_all"]["FP-S"] == "1.50"  # [3, 0]


def test_all_scores_failed_gives_zero_all_and_nan_valid():
    r = dimension_rating(table([(["OCR"], -1), (["OCR"], -1)]))
    assert r["fine_all"]["OCR"] == "0.00" and r["fine_valid"]["OCR"] == "nan"


def test_empty_table_is_all_nan():
    r = dimension_rating(pd.DataFrame({"dimensions": [], "score": []}))
    assert set(r["coarse_all"].values()) == {"nan"} and set(r["fine_valid"].values()) == {"nan"}


def test_dimensions_as_lists_and_as_strings_agree():
    t = table(HAND)
    t2 = t.copy()
    t2["dimensions"] = [d for d, _ in HAND]
    assert dimension_rating(t) == dimension_rating(t2)


def test_unknown_dimension_and_bad_cells_raise():
    with pytest.raises(ValueError, match="Teleportation"):
        dimension_rating(table([(["Teleportation"], 3)]))
    with pytest.raises(ValueError, match="dimensions"):
        dimension_rating(pd.DataFrame({"dimensions": ["OCR"], "score": [3]}))
    with pytest.raises(ValueError, match="dimensions"):
        dimension_rating(pd.DataFrame({"dimensions": ["__import__('os')"], "score": [3]}))
    with pytest.raises(ValueError, match="score"):
        dimension_rating(pd.DataFrame({"dimensions": ["['OCR']"]}))


def _brute_force_rating(rows):
    """Independent statement of the rule: exact fractions, rounded once to float, then formatted."""
    def fmt(scores):
        return "nan" if not scores else f"{float(Fraction(sum(scores), len(scores))):.2f}"

    out = {"coarse_all": {}, "coarse_valid": {}, "fine_all": {}, "fine_valid": {}}
    for group in COARSE_12:
        members = set(MMV_DIMENSIONS[group])
        scores = [s for labels, s in rows if members.intersection(labels)]
        out["coarse_all"][group] = fmt([max(s, 0) for s in scores])
        out["coarse_valid"][group] = fmt([s for s in scores if s >= 0])
    for cap in FINE_26:
        scores = [s for labels, s in rows for _ in range(labels.count(cap))]
        out["fine_all"][cap] = fmt([max(s, 0) for s in scores])
        out["fine_valid"][cap] = fmt([s for s in scores if s >= 0])
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_tables_match_brute_force(seed):
    rng = random.Random(seed)
    rows = [(rng.sample(FINE_26, rng.choice([1, 1, 1, 2, 3])), rng.choice([-1, 0, 1, 2, 3, 3]))
            for _ in range(rng.randint(50, 400))]
    assert dimension_rating(table(rows)) == _brute_force_rating(rows)


# ------------------------------------------------------------------------------------------------
# files
# ------------------------------------------------------------------------------------------------

def test_file_names():
    assert rating_filename("Qwen2.5-VL-3B-Instruct", "MMBench_Video_8frame_nopack", "gaussian", 0.9, "gpt-4o") \
        == "Qwen2.5-VL-3B-Instruct_MMBench_Video_8frame_nopack_gaussian_0.9_gpt-4o_rating.json"
    assert score_filename("m", "d", "snow", 0.3, "exact_matching") == "m_d_snow_0.3_exact_matching_score.tsv"
    assert rating_filename("Qwen/Qwen2.5-VL-3B", "d", "n", 0.6, "j").startswith("Qwen_Qwen2.5-VL-3B_d_n_0.6_j")
    assert score_path_for("/r/m_d_n_0.9_gpt-4o_rating.json") == Path("/r/m_d_n_0.9_gpt-4o_score.tsv")


def test_write_rating_bytes_are_vlmevalkit_json(tmp_path):
    rating = dimension_rating(table(HAND))
    rating["fine_all"]["Video Topic"] = "1.00 é"  # ensure_ascii=False keeps it as is
    path = tmp_path / "out" / rating_filename("m", "d", "gaussian", 0.9, "gpt-4o")
    assert write_rating(rating, path) == path
    data = path.read_bytes()
    assert data == json.dumps(rating, indent=4, ensure_ascii=False).encode("utf-8")
    assert data.startswith(b'{\n    "coarse_all": {\n        "CP": "1.00",') and not data.endswith(b"\n")
    assert "é".encode() in data
    assert json.loads(data) == rating
    assert os.listdir(path.parent) == [path.name]  # no temp file left behind
    plain = tmp_path / "plain.json"
    plain.write_text("x")
    assert path.stat().st_mode & 0o777 == plain.stat().st_mode & 0o777  # not mkstemp's 0600


def test_score_tsv_beside_rating_roundtrips_to_the_same_rating(tmp_path):
    t = table(HAND)
    t["question"] = ["a\tb", 'say "hi"', "x\ny", "plain", "é", "3", ""]
    rating = dimension_rating(t)
    path = tmp_path / rating_filename("m", "d", "n", 0.3, "gpt-4o")
    write_rating(rating, path, scores=t)
    tsv = tmp_path / score_filename("m", "d", "n", 0.3, "gpt-4o")
    assert tsv.exists()
    assert tsv.read_text(encoding="utf-8").splitlines()[0] == '"index"\t"dimensions"\t"score"\t"question"'
    back = pd.read_csv(tsv, sep="\t")
    assert list(back["score"]) == [s for _, s in HAND]
    assert dimension_rating(back) == rating


def test_write_scores_overwrites_atomically(tmp_path):
    path = tmp_path / "s.tsv"
    write_scores(table(HAND), path)
    write_scores(table(HAND[:2]), path)
    assert len(pd.read_csv(path, sep="\t")) == 2 and os.listdir(tmp_path) == ["s.tsv"]


# ------------------------------------------------------------------------------------------------
# nrvl.atomic
# ------------------------------------------------------------------------------------------------

def test_atomic_write_replaces_and_keeps_old_content_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "sub" / "f.txt"
    atomic_write_text(path, "old")
    atomic_write_text(path, "new\r\n")
    assert path.read_bytes() == b"new\r\n"

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(atomic.os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_bytes(path, b"never")
    assert path.read_bytes() == b"new\r\n"
    assert os.listdir(path.parent) == ["f.txt"]  # the temp file was removed


def test_jsonl_append_and_tolerant_read(tmp_path):
    path = tmp_path / "store.jsonl"
    assert read_jsonl(path) == []
    append_jsonl(path, {"a": 1, "text": "é"})
    append_jsonl(path, [{"a": 2}, {"a": 3}])
    assert [r["a"] for r in read_jsonl(path)] == [1, 2, 3]
    assert "é" in path.read_text(encoding="utf-8")
    with open(path, "ab") as fh:
        fh.write(b'{"a": 4, "tr')  # a writer killed mid-record
    assert [r["a"] for r in read_jsonl(path)] == [1, 2, 3]
    append_jsonl(path, {"a": 5})  # starts on a fresh line, so it survives
    assert [r["a"] for r in read_jsonl(path)] == [1, 2, 3, 5]


def test_a_message_only_oserror_keeps_its_text_and_names_the_file(tmp_path, monkeypatch):
    from nrvl.evaluate import describe_os_error

    path = tmp_path / "f.txt"

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(atomic.os, "replace", boom)
    with pytest.raises(OSError) as info:
        atomic_write_bytes(path, b"x")
    assert str(info.value) == "disk full"
    assert describe_os_error(info.value) == f"cannot write {path}: disk full"
