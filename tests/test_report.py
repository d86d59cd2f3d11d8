"""``nrvl report``: numbers recomputed by hand on a small fabricated work dir, intervals, figures, errors.

The work dir holds two models, a clean run and 3 noises x 2 ratios each, on 6
videos x 3 questions. Questions 0 and 1 of a video are Perception, question 2
is Reasoning. Every score below is chosen by hand, and the expected numbers are
worked out in the comments.
"""
import csv
import json
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nrvl import report as rep
from nrvl.rating import dimension_rating, rating_filename, score_filename, write_rating

DATA = "MMBench_Video_8frame_nopack"
JUDGE = "gpt-4o"
MODEL_A = "Qwen2.5-VL-3B-Instruct"     # dots and dashes in the name
MODEL_B = "tiny-model.v1"
DIMS = [["Video Topic"], ["OCR", "Counting"], ["Causal Reasoning"]]  # P, P, R

# Scores per run: 6 videos (rows) x 3 questions (columns).
A = {
    "clean": [[3, 2, 3]] * 6,                                  # 48/18; P 30/12 = 2.5; R 3
    ("gaussian", "0.3"): [[2, 2, 3]] * 3 + [[3, 2, 3]] * 3,    # 45/18 = 2.5; P 27/12 = 2.25
    ("gaussian", "0.9"): [[1, 1, 2]] * 5 + [[2, 1, 2]],        # 25/18
    ("impulse", "0.3"): [[-1, 2, 3], [3, 2, 2]] + [[3, 2, 3]] * 4,  # all 44/18; valid 44/17
    ("impulse", "0.9"): [[2, 1, 3]] * 6,                       # 36/18 = 2; P 1.5; R 3
    ("contrast", "0.3"): [[3, 2, 3]] * 6,                      # = clean
    ("contrast", "0.9"): [[3, 1, 3]] * 3 + [[2, 1, 3]] * 3,    # 39/18
}
B = {
    "clean": [[2, 2, 2]] * 5 + [[3, 3, 3]],                    # 39/18
    ("gaussian", "0.3"): [[2, 1, 2]] * 6,                      # 30/18
    ("gaussian", "0.9"): [[1, 1, 1]] * 6,                      # 18/18
    ("impulse", "0.3"): [[2, 2, 2]] * 5 + [[3, 3, 3]],         # = clean
    ("impulse", "0.9"): [[2, 2, 1]] * 6,                       # 30/18
    ("contrast", "0.3"): [[2, 2, 2]] * 6,                      # 36/18
    ("contrast", "0.9"): [[1, 1, 1]] * 6,                      # score table only: no rating
}


def _table(scores, reverse=False):
    rows = []
    for v, video_scores in enumerate(scores):
        for q, s in enumerate(video_scores):
            rows.append({"index": 3 * v + q + 1, "video": f"vid{v}", "question": f"q{q} of vid{v}?",
                         "answer": "a", "prediction": "p\twith a tab", "dimensions": str(DIMS[q]), "score": s})
    if reverse:  # pairing must go by question index, not by row order
        rows = rows[::-1]
    return pd.DataFrame(rows)


def _write_run(work, model, noise, ratio, scores, *, rating=True, reverse=False):
    folder = work / model / ("origin" if noise == "None" else noise)
    table = _table(scores, reverse)
    path = folder / rating_filename(model, DATA, noise, ratio, JUDGE)
    if rating:
        write_rating(dimension_rating(table), path, scores=table)
    else:
        folder.mkdir(parents=True, exist_ok=True)
        table.to_csv(folder / score_filename(model, DATA, noise, ratio, JUDGE), sep="\t", index=False,
                     quoting=csv.QUOTE_ALL)
    return path


def build_work_dir(work: Path) -> Path:
    for model, runs in ((MODEL_A, A), (MODEL_B, B)):
        for key, scores in runs.items():
            noise, ratio = ("None", "None") if key == "clean" else key
            no_rating = model == MODEL_B and key == ("contrast", "0.9")
            _write_run(work, model, noise, ratio, scores, rating=not no_rating, reverse=model == MODEL_B)
    # An unfinished run: predictions stored, never judged.
    store = work / MODEL_A / "frame_drop" / f"{MODEL_A}_{DATA}_frame_drop_0.3.rank0.jsonl"
    store.parent.mkdir(parents=True)
    store.write_text('{"index": 1}\n')
    return work


def run_report(argv, capsys=None):
    code = rep.main([str(a) for a in argv])
    err = capsys.readouterr().err if capsys is not None else ""
    return code, err


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return build_work_dir(tmp_path_factory.mktemp("work"))


@pytest.fixture(scope="module")
def out(work):
    assert rep.main([str(work)]) == 0
    return work / "report"


def _tsv(path):
    return pd.read_csv(path, sep="\t", dtype={"ratio": str}, keep_default_na=False, na_values=[""])


def _row(df, **match):
    sel = np.ones(len(df), dtype=bool)
    for k, v in match.items():
        sel &= (df[k] == v).to_numpy()
    assert sel.sum() == 1, (match, sel.sum())
    return df[sel].iloc[0]


# --------------------------------------------------------------------------- numbers by hand

@pytest.mark.parametrize("model,noise,ratio,overall,clean,drop,rel", [
    (MODEL_A, "gaussian", "0.3", 45 / 18, 48 / 18, 3 / 18, 45 / 48),
    (MODEL_A, "gaussian", "0.9", 25 / 18, 48 / 18, 23 / 18, 25 / 48),
    (MODEL_A, "impulse", "0.3", 44 / 18, 48 / 18, 4 / 18, 44 / 48),   # the -1 counts as 0 ('all')
    (MODEL_A, "impulse", "0.9", 2.0, 48 / 18, 12 / 18, 0.75),
    (MODEL_A, "contrast", "0.3", 48 / 18, 48 / 18, 0.0, 1.0),
    (MODEL_A, "contrast", "0.9", 39 / 18, 48 / 18, 9 / 18, 39 / 48),
    (MODEL_B, "gaussian", "0.3", 30 / 18, 39 / 18, 9 / 18, 30 / 39),
    (MODEL_B, "gaussian", "0.9", 1.0, 39 / 18, 21 / 18, 18 / 39),
    (MODEL_B, "impulse", "0.9", 30 / 18, 39 / 18, 9 / 18, 30 / 39),
    (MODEL_B, "contrast", "0.3", 2.0, 39 / 18, 3 / 18, 36 / 39),
], ids=lambda v: str(v))
def test_summary_overall_drop_and_relative_by_hand(out, model, noise, ratio, overall, clean, drop, rel):
    row = _row(_tsv(out / "summary.tsv"), model=model, noise=noise, ratio=ratio)
    assert row["Overall"] == pytest.approx(overall, abs=1e-4)
    assert row["clean_Overall"] == pytest.approx(clean, abs=1e-4)
    assert row["drop"] == pytest.approx(drop, abs=1e-4)
    assert row["rel"] == pytest.approx(rel, abs=1e-4)
    assert row["source"] == "scores"
    assert row["questions"] == 18 and row["videos"] == 6


def test_perception_reasoning_and_families_by_hand(out):
    s = _tsv(out / "summary.tsv")
    g3 = _row(s, model=MODEL_A, noise="gaussian", ratio="0.3")
    assert g3["Perception"] == pytest.approx(27 / 12, abs=1e-4)      # (3*(2+2) + 3*(3+2)) / 12
    assert g3["clean_Perception"] == pytest.approx(2.5, abs=1e-4)
    assert g3["Perception_drop"] == pytest.approx(0.25, abs=1e-4)
    assert g3["Reasoning_drop"] == pytest.approx(0.0, abs=1e-4)
    i9 = _row(s, model=MODEL_A, noise="impulse", ratio="0.9")
    assert (i9["Perception"], i9["Reasoning"]) == (pytest.approx(1.5), pytest.approx(3.0))
    assert set(s["family"]) == {"quality", "lighting"}

    f = _tsv(out / "families.tsv")
    q9 = _row(f, model=MODEL_A, family="quality", ratio="0.9")       # gaussian + impulse
    assert q9["noises"] == 2
    assert q9["Overall"] == pytest.approx((25 / 18 + 2.0) / 2, abs=1e-4)
    assert q9["drop"] == pytest.approx((23 / 18 + 12 / 18) / 2, abs=1e-4)
    assert q9["rel"] == pytest.approx((25 / 48 + 0.75) / 2, abs=1e-4)
    l9 = _row(f, model=MODEL_A, family="lighting", ratio="0.9")
    assert l9["drop"] == pytest.approx(0.5, abs=1e-4)
    all9 = _row(f, model=MODEL_A, family="all", ratio="0.9")
    assert all9["drop"] == pytest.approx((23 + 12 + 9) / 18 / 3, abs=1e-4)
    q3b = _row(f, model=MODEL_B, family="quality", ratio="0.3")      # gaussian 9/18, impulse 0
    assert q3b["drop"] == pytest.approx(0.25, abs=1e-4)
    # Model B has no contrast rating at 0.9: its lighting mean at 0.9 does not exist.
    assert ((f["model"] == MODEL_B) & (f["family"] == "lighting") & (f["ratio"] == "0.9")).sum() == 0

    m = _tsv(out / "models.tsv")
    a = _row(m, model=MODEL_A)
    assert a["Overall"] == pytest.approx(48 / 18, abs=1e-4) and a["noisy_runs"] == 6
    assert a["mean_drop"] == pytest.approx((3 + 23 + 4 + 12 + 0 + 9) / 18 / 6, abs=1e-4)


def test_valid_metric_leaves_failed_judgements_out(work, tmp_path):
    assert rep.main([str(work), "--out", str(tmp_path / "valid"), "--metric", "valid", "--no-figures"]) == 0
    row = _row(_tsv(tmp_path / "valid" / "summary.tsv"), model=MODEL_A, noise="impulse", ratio="0.3")
    assert row["Overall"] == pytest.approx(44 / 17, abs=1e-4)
    assert row["drop"] == pytest.approx(48 / 18 - 44 / 17, abs=1e-4)
    assert "coarse_valid" in (tmp_path / "valid" / "summary.md").read_text()


def test_every_interval_contains_its_point_estimate(out):
    s = _tsv(out / "summary.tsv")
    for p in ("", "Perception_", "Reasoning_"):
        assert s[f"{p}drop_lo"].notna().all()
        assert (s[f"{p}drop_lo"] <= s[f"{p}drop"] + 1e-9).all() and (s[f"{p}drop"] <= s[f"{p}drop_hi"] + 1e-9).all()
        assert (s[f"{p}rel_lo"] <= s[f"{p}rel"] + 1e-9).all() and (s[f"{p}rel"] <= s[f"{p}rel_hi"] + 1e-9).all()
    # Identical runs: a zero-width interval at 0.
    c3 = _row(s, model=MODEL_A, noise="contrast", ratio="0.3")
    assert (c3["drop_lo"], c3["drop_hi"]) == (0.0, 0.0)
    # Only video 5 changed (3 -> 2 on all its questions): a resample's drop is (#vid5 * 3) / 18.
    c3b = _row(s, model=MODEL_B, noise="contrast", ratio="0.3")
    assert c3b["drop_lo"] == pytest.approx(0.0) and 3 / 18 < c3b["drop_hi"] <= 9 / 18 + 1e-9
    f = _tsv(out / "families.tsv")
    assert (f["drop_lo"] <= f["drop"] + 1e-9).all() and (f["drop"] <= f["drop_hi"] + 1e-9).all()


def test_paired_bootstrap_point_estimate_and_determinism():
    clean = np.array([3, 2, 3, 1, 2, 3], dtype=float)
    noisy = np.array([1, 2, 2, 1, 0, 3], dtype=float)
    videos = ["a", "a", "b", "b", "c", "c"]
    r = rep.paired_bootstrap(clean, noisy, videos, n_boot=500, seed=3)
    assert r.drop == pytest.approx(5 / 6) and r.rel == pytest.approx(9 / 14)   # sums 14 and 9
    assert r.drop_lo <= r.drop <= r.drop_hi and r.rel_lo <= r.rel <= r.rel_hi
    assert rep.paired_bootstrap(clean, noisy, videos, n_boot=500, seed=3) == r
    # NaN (a failed judgement under 'valid') leaves the question out of that side's mean.
    noisy_nan = noisy.copy()
    noisy_nan[0] = np.nan
    assert rep.paired_bootstrap(clean, noisy_nan, videos, n_boot=10).drop == pytest.approx(14 / 6 - 8 / 5)


def _synthetic(n_videos, n_questions, seed, correlated=False):
    rng = np.random.default_rng(seed)
    clean = rng.integers(1, 4, size=(n_videos, n_questions)).astype(float)
    if correlated:   # every question of a video loses the same amount
        loss = np.repeat(rng.integers(0, 3, size=(n_videos, 1)), n_questions, axis=1)
    else:
        loss = rng.integers(0, 3, size=(n_videos, n_questions))
    noisy = np.clip(clean - loss, 0, 3)
    videos = np.repeat(np.arange(n_videos), n_questions)
    return clean.ravel(), noisy.ravel(), videos


def _width(clean, noisy, clusters):
    r = rep.paired_bootstrap(clean, noisy, clusters, n_boot=2000, seed=0)
    return r.drop_hi - r.drop_lo


def test_interval_shrinks_with_more_videos_and_more_questions():
    def mean_width(n_videos, n_questions):   # averaged over data sets: one draw of 8 videos is noisy
        return np.mean([_width(*_synthetic(n_videos, n_questions, seed=s)) for s in range(5)])

    few = mean_width(8, 3)
    assert mean_width(200, 3) < few / 3       # ~ sqrt(200/8) = 5 times narrower
    assert mean_width(8, 60) < few / 2        # independent questions within a video average out


def test_clustering_by_video_widens_the_interval_when_questions_are_correlated():
    clean, noisy, videos = _synthetic(30, 6, seed=2, correlated=True)
    by_video = _width(clean, noisy, videos)
    naive = _width(clean, noisy, np.arange(len(clean)))   # one cluster per question
    assert by_video > 1.7 * naive                        # ~ sqrt(6) = 2.4 with perfect correlation
    # With independent questions the two agree.
    clean, noisy, videos = _synthetic(30, 6, seed=2)
    assert _width(clean, noisy, videos) == pytest.approx(_width(clean, noisy, np.arange(len(clean))), rel=0.25)


def test_bootstrap_weights_draw_whole_clusters():
    w = rep.bootstrap_weights(7, n_boot=300, seed=5)
    assert w.shape == (300, 7) and (w.sum(axis=1) == 7).all() and (w >= 0).all()
    assert np.array_equal(w, rep.bootstrap_weights(7, n_boot=300, seed=5))
    assert not np.array_equal(w, rep.bootstrap_weights(7, n_boot=300, seed=6))


# --------------------------------------------------------------------------- figures and page

def _png_size(path: Path):
    data = path.read_bytes()[:24]
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", path
    return struct.unpack(">II", data[16:24])


def test_figures_are_pngs_of_the_expected_size(out):
    figs = out / "figures"
    expected = {
        f"noise_ratio_{MODEL_A}.png": "noise_ratio", "noise_ratio_tiny-model.v1.png": "noise_ratio",
        "model_noise_ratio_0.3.png": "model_noise", "model_noise_ratio_0.9.png": "model_noise",
        f"family_curves_{MODEL_A}.png": "family_curves", "family_curves_tiny-model.v1.png": "family_curves",
        "harmful_noises.png": "harmful",
    }
    assert sorted(p.name for p in figs.iterdir()) == sorted(expected)
    for name, kind in expected.items():
        assert _png_size(figs / name) == rep.FIGURE_PX[kind], name
        assert (figs / name).stat().st_size > 5000
    assert rep.FIGURE_PX["noise_ratio"] == (900, 1100)


def test_index_html_shows_every_table_and_figure(out):
    page = (out / "index.html").read_text()
    for png in (out / "figures").iterdir():
        assert f"src='figures/{png.name}'" in page
    for f in ("summary.tsv", "families.tsv", "models.tsv", "problems.tsv", "summary.md"):
        assert (out / f).is_file() and f"href='{f}'" in page
    assert "<table>" in page and "<style>" in page and "<script" not in page
    assert "http://" not in page and "https://" not in page and "src='/" not in page
    assert MODEL_A in page and "coarse_all" in page
    md = (out / "summary.md").read_text()
    assert "| model |" in md and "harmful_noises.png" in md


# --------------------------------------------------------------------------- missing and partial runs

def _problems(out):
    return _tsv(out / "problems.tsv").fillna("")


def test_missing_partial_and_unfinished_runs_are_listed(out):
    p = _problems(out)
    kinds = {(r.model, r.noise, r.ratio, r.kind) for r in p.itertuples()}
    assert (MODEL_B, "contrast", "0.9", "missing") in kinds
    assert (MODEL_B, "contrast", "0.9", "score without rating") in kinds
    assert (MODEL_A, "frame_drop", "0.3", "unfinished") in kinds
    not_run = p[p["kind"] == "not run"]
    assert len(not_run) == 1 and "gaussian" not in not_run["noise"].iloc[0].split(", ")
    assert "frame_drop" in not_run["noise"].iloc[0].split(", ")
    assert not (p["kind"] == "mismatch").any()   # the ratings agree with their score tables
    assert "score without rating" in (out / "index.html").read_text()


def test_model_without_clean_run_partial_run_and_bad_rating_are_listed(work, tmp_path):
    w = tmp_path / "w"
    shutil.copytree(work, w, ignore=shutil.ignore_patterns("report"))
    shutil.rmtree(w / MODEL_B / "origin")
    # A partial run: the last video's questions were never answered.
    partial = _table(A[("gaussian", "0.3")]).iloc[:15]
    write_rating(dimension_rating(partial), w / MODEL_A / "gaussian" /
                 rating_filename(MODEL_A, DATA, "gaussian", "0.3", JUDGE), scores=partial)
    # A rating edited by hand so it no longer matches its scores.
    path = w / MODEL_A / "contrast" / rating_filename(MODEL_A, DATA, "contrast", "0.9", JUDGE)
    rating = json.loads(path.read_text())
    rating["coarse_all"]["Overall"] = "2.99"
    path.write_text(json.dumps(rating))

    assert rep.main([str(w), "--no-figures"]) == 0
    p = _problems(w / "report")
    kinds = {(r.model, r.noise, r.kind) for r in p.itertuples()}
    assert (MODEL_B, "origin", "no clean run") in kinds
    assert (MODEL_A, "gaussian", "partial") in kinds
    assert (MODEL_A, "contrast", "mismatch") in kinds
    s = _tsv(w / "report" / "summary.tsv")
    b = s[s["model"] == MODEL_B]
    assert len(b) == 5 and b["drop"].isna().all() and b["Overall"].notna().all()
    # The partial run is paired on its 15 questions: clean 40/15 vs noisy 37/15.
    g = _row(s, model=MODEL_A, noise="gaussian", ratio="0.3")
    assert g["drop"] == pytest.approx(3 / 15, abs=1e-4) and g["questions"] == 15
    # The mismatching rating's scores are used, not its edited value.
    assert _row(s, model=MODEL_A, noise="contrast", ratio="0.9")["Overall"] == pytest.approx(39 / 18, abs=1e-4)


def test_rating_without_scores_uses_the_rating(work, tmp_path):
    w = tmp_path / "w"
    shutil.copytree(work, w, ignore=shutil.ignore_patterns("report"))
    (w / MODEL_A / "impulse" / score_filename(MODEL_A, DATA, "impulse", "0.9", JUDGE)).unlink()
    assert rep.main([str(w), "--out", str(tmp_path / "o"), "--no-figures"]) == 0
    row = _row(_tsv(tmp_path / "o" / "summary.tsv"), model=MODEL_A, noise="impulse", ratio="0.9")
    assert row["source"] == "rating" and row["Overall"] == pytest.approx(2.0)
    assert row["drop"] == pytest.approx(48 / 18 - 2.0, abs=1e-4) and np.isnan(row["drop_lo"])
    assert "rating without scores" in set(_problems(tmp_path / "o")["kind"])


# --------------------------------------------------------------------------- file names

@pytest.mark.parametrize("stem,model,noise,expected", [
    (f"{MODEL_A}_{DATA}_gaussian_0.9_gpt-4o", MODEL_A, "gaussian", (MODEL_A, DATA, "gaussian", "0.9", "gpt-4o")),
    (f"{MODEL_A}_{DATA}_None_None_gpt-4o", MODEL_A, "None", (MODEL_A, DATA, "None", "None", "gpt-4o")),
    (f"m.1-x_{DATA}_frame_drop_0.3_exact_matching", "m.1-x", "frame_drop",
     ("m.1-x", DATA, "frame_drop", "0.3", "exact_matching")),
    # No folder to go by: noise from the known names, model split before the data name.
    (f"{MODEL_A}_{DATA}_frame_drop_0.6_gpt-4o", None, None, (MODEL_A, DATA, "frame_drop", "0.6", "gpt-4o")),
    (f"{MODEL_A}_{DATA}_gaussian_None_gpt-4o", MODEL_A, "gaussian", None),   # a noise needs a ratio
    ("not_a_run_name", "m", None, None),
], ids=["dots", "clean", "underscores", "no-folder", "noise-without-ratio", "junk"])
def test_parse_run_name(stem, model, noise, expected):
    known = ["gaussian", "frame_drop", "drop"]
    assert rep.parse_run_name(stem, model=model, noise=noise, known_noises=known) == expected


# --------------------------------------------------------------------------- bad input, atomic output

def _no_output_left(parent: Path, name="report"):
    assert not (parent / name).exists()
    assert not [p for p in parent.iterdir() if p.name.startswith(f".{name}.")]


def _bad_json(w):
    build_work_dir(w)
    (w / MODEL_A / "impulse" / rating_filename(MODEL_A, DATA, "impulse", "0.9", JUDGE)).write_text('{"coarse_all": ')


def _not_a_rating(w):
    build_work_dir(w)
    (w / MODEL_B / "gaussian" / rating_filename(MODEL_B, DATA, "gaussian", "0.3", JUDGE)).write_text('{"a": 1}')


def _bad_scores(w):
    build_work_dir(w)
    (w / MODEL_B / "gaussian" / score_filename(MODEL_B, DATA, "gaussian", "0.3", JUDGE)).write_text("index\tq\n1\tx\n")


def _only_scores(w):
    (w / "m" / "origin").mkdir(parents=True)
    _table(A["clean"]).to_csv(w / "m" / "origin" / score_filename("m", DATA, "None", "None", JUDGE), sep="\t")


@pytest.mark.parametrize("make,message", [
    (None, "does not exist"),
    (lambda w: w.write_text("x"), "not a directory"),
    (lambda w: w.mkdir(), "no *_rating.json"),
    (_only_scores, "no *_rating.json"),
    (_bad_json, "cannot read rating"),
    (_not_a_rating, "not an MMBench-Video rating"),
    (_bad_scores, "lacks column"),
], ids=["missing", "file", "empty", "only-scores", "corrupt-json", "not-a-rating", "bad-score-table"])
def test_bad_work_dir_exits_2_with_one_line_and_writes_nothing(tmp_path, capsys, make, message):
    w = tmp_path / "w"
    if make is not None:
        if make in (_bad_json, _not_a_rating, _bad_scores, _only_scores):
            w.mkdir()
        make(w)
    code, err = run_report([w], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nrvl report: error:") and message in lines[0], err
    if w.is_dir():
        _no_output_left(w)
    _no_output_left(tmp_path)


def test_usage_error_is_one_line(capsys):
    assert rep.main(["--metric", "median", "somewhere"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--metric" in err
    assert rep.main(["--help"]) == 0 and "--no-figures" in capsys.readouterr().out


def test_out_that_is_not_a_report_is_left_alone(work, tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "precious.txt").write_text("keep")
    code, err = run_report([work, "--out", mine], capsys)
    assert code == 2 and "not an earlier nrvl report" in err
    assert [p.name for p in mine.iterdir()] == ["precious.txt"]


def test_rerun_replaces_the_report_atomically(work, tmp_path):
    o = tmp_path / "o"
    assert rep.main([str(work), "--out", str(o), "--n-boot", "50", "--no-figures"]) == 0
    (o / "stale.txt").write_text("from an earlier run")
    assert rep.main([str(work), "--out", str(o), "--n-boot", "50", "--no-figures"]) == 0
    assert not (o / "stale.txt").exists() and (o / "index.html").is_file()
    assert not (o / "figures").exists() and "--no-figures" in (o / "index.html").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o"]


def test_python_dash_m_runs_the_command(tmp_path):
    r = subprocess.run([sys.executable, "-m", "nrvl.report", str(tmp_path / "nowhere")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "does not exist" in r.stderr


# --------------------------------------------------------------------------- audit fixes

def test_bad_seed_and_verbose_flag(work, capsys):
    code, err = run_report([work, "--seed", "-1", "--no-figures"], capsys)
    assert code == 2 and "--seed must be >= 0, got -1" in err
    assert rep._parser().parse_args([str(work), "-v"]).verbose  # the hint "--verbose for the traceback" works


def test_a_noise_with_no_valid_score_is_left_out_of_its_family_and_listed(tmp_path):
    _write_run(tmp_path, "m", "None", "None", [[3, 3, 3]] * 4)
    _write_run(tmp_path, "m", "gaussian", "0.3", [[2, 2, 2]] * 4)
    _write_run(tmp_path, "m", "impulse", "0.3", [[-1, -1, -1]] * 4)  # every judgement failed
    assert rep.main([str(tmp_path), "--metric", "valid", "--no-figures"]) == 0
    fam = _row(_tsv(tmp_path / "report" / "families.tsv"), family="quality", ratio="0.3")
    assert (fam["noises"], fam["noise_names"], fam["Overall"], fam["drop"]) == (1, "gaussian", 2.0, 1.0)
    assert fam["drop_lo"] == fam["drop_hi"] == 1.0  # the interval is gaussian's, not blank
    p = _problems(tmp_path / "report")
    assert ((p["noise"] == "impulse") & (p["kind"] == "no valid score")).sum() == 1


def test_resamples_without_a_scored_question_of_a_group_are_counted(tmp_path):
    # Under --metric valid only video 0 has a scored Reasoning question (the third column).
    _write_run(tmp_path, "m", "None", "None", [[3, 3, 3]] + [[3, 3, -1]] * 3)
    _write_run(tmp_path, "m", "gaussian", "0.3", [[2, 2, 2]] + [[2, 2, -1]] * 3)
    assert rep.main([str(tmp_path), "--metric", "valid", "--n-boot", "400", "--no-figures"]) == 0
    p = _problems(tmp_path / "report")
    (detail,) = p.loc[(p["noise"] == "gaussian") & (p["kind"] == "sparse"), "detail"]
    weights = rep.bootstrap_weights(4, 400, 0)
    empty = int((weights[:, 0] == 0).sum())           # the resamples that did not draw video 0
    assert 0 < empty < 400
    assert detail == (f"Reasoning: {empty} of 400 resamples drew no scored question of it; "
                      f"its interval is over the other {400 - empty}")
    # Under --metric all every question counts: no resample is empty.
    assert rep.main([str(tmp_path), "--n-boot", "400", "--no-figures", "--out", str(tmp_path / "all")]) == 0
    assert "sparse" not in set(_problems(tmp_path / "all")["kind"])


def test_an_unfinished_clean_run_is_listed_as_origin(tmp_path):
    _write_run(tmp_path, "m", "gaussian", "0.3", [[2, 2, 2]] * 2)
    store = tmp_path / "m2" / "origin" / f"m2_{DATA}_None_None.rank0.jsonl"
    store.parent.mkdir(parents=True)
    store.write_text('{"index": 1}\n')
    assert rep.main([str(tmp_path), "--no-figures"]) == 0
    p = _problems(tmp_path / "report")
    row = p[p["kind"] == "unfinished"].iloc[0]
    assert (row["model"], row["noise"], row["ratio"]) == ("m2", "origin", "")


@pytest.mark.parametrize("labels", [[None, "a", "b", "b"], [np.nan, 1, 2, 2]])
def test_paired_bootstrap_refuses_unlabelled_questions(labels):
    with pytest.raises(ValueError, match="question 0 has none"):
        rep.paired_bootstrap([3, 3, 3, 3], [0, 0, 0, 3], labels, n_boot=10)


@pytest.mark.parametrize("bad", ["inf", "1e300", "-1e19"])
def test_non_finite_or_huge_scores_are_one_line_errors(tmp_path, capsys, bad):
    _write_run(tmp_path, "m", "None", "None", [[3, 3, 3]])
    path = _write_run(tmp_path, "m", "gaussian", "0.3", [[2, 2, 2]])
    scores = path.parent / score_filename("m", DATA, "gaussian", "0.3", JUDGE)
    df = pd.read_csv(scores, sep="\t", dtype=str, keep_default_na=False)
    df.loc[0, "score"] = bad
    df.to_csv(scores, sep="\t", index=False, quoting=csv.QUOTE_ALL)
    code, err = run_report([tmp_path, "--no-figures"], capsys)
    assert code == 2 and f"score {bad!r} (row 1) is not an integer" in err


def test_tiny_ratios_written_in_exponent_form_are_recognised():
    stem = f"m_{DATA}_gaussian_1e-05_gpt-4o"
    assert rep.parse_run_name(stem, model="m", noise="gaussian", known_noises=["gaussian"]) == \
        ("m", DATA, "gaussian", "1e-05", "gpt-4o")


def test_a_run_whose_judgements_all_failed_is_listed_under_coarse_all(tmp_path):
    _write_run(tmp_path, "m", "None", "None", [[3, 3, 3]] * 2)
    _write_run(tmp_path, "m", "impulse", "0.3", [[-1, -1, -1]] * 2)
    assert rep.main([str(tmp_path), "--no-figures"]) == 0
    assert _row(_tsv(tmp_path / "report" / "summary.tsv"), noise="impulse", ratio="0.3")["Overall"] == 0.0
    p = _problems(tmp_path / "report")
    (detail,) = p.loc[(p["noise"] == "impulse") & (p["kind"] == "no valid score"), "detail"]
    assert "every judgement failed" in detail


def test_level_sets_the_interval_coverage_and_the_headers(work, tmp_path, capsys):
    o95, o50 = tmp_path / "o95", tmp_path / "o50"
    assert rep.main([str(work), "--out", str(o95), "--n-boot", "400", "--no-figures"]) == 0
    assert rep.main([str(work), "--out", str(o50), "--n-boot", "400", "--level", "0.5", "--no-figures"]) == 0
    a, b = _tsv(o95 / "summary.tsv"), _tsv(o50 / "summary.tsv")
    assert (a["drop"] == b["drop"]).all()                       # same point estimates, same resamples
    wide, narrow = a["drop_hi"] - a["drop_lo"], b["drop_hi"] - b["drop_lo"]
    assert (narrow <= wide + 1e-12).all() and (narrow < wide - 1e-9).any()
    md = (o50 / "summary.md").read_text()
    assert "drop [50% CI]" in md and "paired 50% percentile bootstrap" in md and "95%" not in md
    assert "drop [95% CI]" in (o95 / "summary.md").read_text()
    assert rep._pct(0.975) == "97.5%" and rep._pct(0.9) == "90%"
    for bad in ("1", "0", "-0.5", "nan", "95"):
        code, err = run_report([work, "--out", tmp_path / "bad", "--level", bad, "--no-figures"], capsys)
        assert code == 2 and "--level must be in (0, 1)" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "bad").exists()


def test_a_clean_run_that_scores_0_is_listed_and_explains_the_missing_figures(tmp_path):
    _write_run(tmp_path, "m", "None", "None", [[0, 0, 0]] * 3)
    _write_run(tmp_path, "m", "gaussian", "0.3", [[0, 1, 0]] * 3)
    assert rep.main([str(tmp_path)]) == 0
    out = tmp_path / "report"
    p = _problems(out)
    (detail,) = p.loc[p["kind"] == "clean scores 0", "detail"]
    assert "noisy/clean is undefined" in detail
    assert "the clean run scores 0, so noisy/clean is undefined" in (out / "index.html").read_text()
    assert not (out / "figures").exists()  # no empty folder
    assert _row(_tsv(out / "summary.tsv"), noise="gaussian", ratio="0.3")["drop"] == pytest.approx(-1 / 3)
