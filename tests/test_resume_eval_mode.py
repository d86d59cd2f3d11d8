"""``--mode eval`` judges only predictions of its own settings: the TSV's sidecar
(``<stem>.tsv.meta.json``) names the run it was merged from; another run's TSV is merged again from
the store when the store holds this run, and is an error naming the differing settings otherwise."""
import json

import warnings

import pytest

from nrvl import evaluate, store


def meta_path(tsv):
    return store.meta_path(tsv)


def read_predictions_meta(tsv):
    return store.read_predictions_meta(tsv)

BASE = ["--data", "MMBench_Video_demo", "--model", "tiny-qwen2.5-vl", "--noise_name", "gaussian", "--ratio", "0.9",
        "--limit", "2", "--judge", "exact_matching"]
STEM = "tiny-qwen2.5-vl_MMBench_Video_demo_gaussian_0.9"


@pytest.fixture(autouse=True)
def _env(eval_env):
    """Offline evaluation set-up (tests/conftest.py)."""


def files(work):
    folder = work / "tiny-qwen2.5-vl" / "gaussian"
    return {"folder": folder, "tsv": folder / f"{STEM}.tsv", "rating": folder / f"{STEM}_exact_matching_rating.json",
            "scores": folder / f"{STEM}_exact_matching_score.tsv", "store": folder / f"{STEM}.rank0.jsonl"}


def run(work, capsys, *extra):
    rc = evaluate.main([*BASE, "--work-dir", str(work), *extra])
    return rc, capsys.readouterr().err.strip().splitlines()


def test_the_sidecar_records_the_run_of_the_predictions(tmp_path, capsys, tiny):
    rc, _ = run(tmp_path, capsys, "--mode", "infer")
    f = files(tmp_path)
    meta, status = read_predictions_meta(f["tsv"])
    assert rc == 0 and status == "ok"
    records = [json.loads(x) for x in f["store"].read_text().splitlines()]
    assert {r["run"] for r in records} == {meta["run"]}
    assert meta["settings"]["seed"] == 0 and meta["settings"]["noise"] == "gaussian" and meta["rows"] == 2
    assert meta["limit"] == 2 and meta["tsv"] == f["tsv"].name


def test_eval_with_another_seed_refuses_the_other_seeds_predictions(tmp_path, capsys, tiny, monkeypatch):
    assert run(tmp_path, capsys)[0] == 0  # seed 0: predictions, scores, rating
    f = files(tmp_path)
    before = {k: f[k].read_bytes() for k in ("tsv", "rating", "scores")}
    monkeypatch.setattr("nrvl.models.build_model", lambda *a, **k: pytest.fail("--mode eval must not build a model"))
    rc, err = run(tmp_path, capsys, "--seed", "1", "--mode", "eval")
    assert rc == 2
    assert err == [f"eval/run.py: error: {f['tsv']} holds predictions of other settings: seed=0 (this command: "
                   f"seed=1); rerun with --mode all (or infer) to make them; finished samples of the store are reused"]
    assert {k: f[k].read_bytes() for k in before} == before  # nothing judged or rewritten


def test_eval_merges_again_from_the_store_when_it_holds_this_run(tmp_path, capsys, tiny, monkeypatch):
    assert run(tmp_path, capsys, "--mode", "infer")[0] == 0
    f = files(tmp_path)
    seed0 = f["tsv"].read_bytes()
    assert run(tmp_path, capsys, "--mode", "infer", "--seed", "1")[0] == 0  # the TSV is now seed 1's
    assert f["tsv"].read_bytes() != seed0
    monkeypatch.setattr("nrvl.models.build_model", lambda *a, **k: pytest.fail("--mode eval must not build a model"))
    rc, err = run(tmp_path, capsys, "--mode", "eval")  # seed 0: every sample of it is stored
    assert rc == 0, err
    assert f"[nrvl] {f['tsv'].name} holds another run's predictions; merging this run's predictions again from its " \
           f"store" in err
    assert f["tsv"].read_bytes() == seed0 and read_predictions_meta(f["tsv"])[1] == "ok"
    assert f["rating"].is_file()


def test_a_tsv_newer_than_its_sidecar_is_not_vouched_for(tmp_path, capsys, tiny, monkeypatch):
    """A writer killed between the TSV and the sidecar: the old sidecar does not match the new bytes."""
    assert run(tmp_path, capsys, "--mode", "infer")[0] == 0
    f = files(tmp_path)
    seed0_tsv, seed0_meta = f["tsv"].read_bytes(), meta_path(f["tsv"]).read_bytes()
    assert run(tmp_path, capsys, "--mode", "infer", "--seed", "1")[0] == 0
    meta_path(f["tsv"]).write_bytes(seed0_meta)  # seed 1's TSV beside seed 0's sidecar
    assert read_predictions_meta(f["tsv"])[1] == "other-tsv"
    rc, err = run(tmp_path, capsys, "--mode", "eval")
    assert rc == 0 and f["tsv"].read_bytes() == seed0_tsv, err  # merged again from the store


def test_a_tsv_without_sidecar_and_a_store_of_other_settings_is_an_error(tmp_path, capsys, tiny):
    assert run(tmp_path, capsys, "--mode", "infer")[0] == 0
    f = files(tmp_path)
    meta_path(f["tsv"]).unlink()  # as an older NRVL left it
    rc, err = run(tmp_path, capsys, "--seed", "1", "--mode", "eval")
    assert rc == 2 and len(err) == 1, err
    assert err[0].startswith(f"eval/run.py: error: {f['tsv']} has no settings record ({f['tsv'].name}.meta.json), "
                             f"and the store beside it holds predictions of 1 other setting(s)"), err
    assert not f["rating"].exists()


def test_an_old_tsv_with_no_store_is_judged_with_a_warning(tmp_path, capsys, tiny, caplog):
    assert run(tmp_path, capsys, "--mode", "infer")[0] == 0
    f = files(tmp_path)
    meta_path(f["tsv"]).unlink()
    f["store"].unlink()  # nothing to check it against
    rc, err = run(tmp_path, capsys, "--mode", "eval")
    assert rc == 0, err
    assert "has no settings record" in caplog.text and "judging it as this command's predictions" in caplog.text
    assert f["rating"].is_file() and not meta_path(f["tsv"]).exists()


def test_an_old_tsv_whose_store_holds_this_run_gets_its_sidecar(tmp_path, capsys, tiny):
    assert run(tmp_path, capsys, "--mode", "infer")[0] == 0
    f = files(tmp_path)
    tsv = f["tsv"].read_bytes()
    meta_path(f["tsv"]).unlink()
    rc, err = run(tmp_path, capsys, "--mode", "eval")
    assert rc == 0 and f"{f['tsv'].name} has no {f['tsv'].name}.meta.json; merging" in "\n".join(err), err
    assert f["tsv"].read_bytes() == tsv and read_predictions_meta(f["tsv"])[1] == "ok"


def test_sweep_eval_refuses_only_the_runs_made_with_other_settings(tmp_path, capsys, tiny):
    grid = ["--noise_name", "gaussian,motion_blur", "--ratio", "0.9"]
    base = [a for a in BASE if a not in ("--noise_name", "gaussian", "--ratio", "0.9")]
    assert evaluate.main([*base, *grid, "--mode", "infer", "--work-dir", str(tmp_path)]) == 0
    # motion_blur 0.9 inferred again with seed 1: its TSV is seed 1's; the others stay seed 0's
    assert evaluate.main([*base, "--noise_name", "motion_blur", "--ratio", "0.9", "--seed", "1", "--mode", "infer",
                          "--work-dir", str(tmp_path)]) == 0
    blur = tmp_path / "tiny-qwen2.5-vl" / "motion_blur" / "tiny-qwen2.5-vl_MMBench_Video_demo_motion_blur_0.9.tsv"
    capsys.readouterr()
    rc = evaluate.main([*base, *grid, "--mode", "eval", "--work-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 0, err  # the seed 0 run of motion_blur is in the store: merged again, all three judged
    assert f"{blur.name} holds another run's predictions; merging" in err
    assert read_predictions_meta(blur)[0]["settings"]["seed"] == 0
    (tmp_path / "tiny-qwen2.5-vl" / "motion_blur" / "tiny-qwen2.5-vl_MMBench_Video_demo_motion_blur_0.9.rank0.jsonl"
     ).unlink()
    assert evaluate.main([*base, "--noise_name", "motion_blur", "--ratio", "0.9", "--seed", "1", "--mode", "infer",
                          "--work-dir", str(tmp_path)]) == 0
    capsys.readouterr()
    rc = evaluate.main([*base, *grid, "--mode", "eval", "--work-dir", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert err[-1] == (f"eval/run.py: error: 1 of 3 run(s) not judged (the others were); first, motion_blur 0.9: "
                       f"{blur} holds predictions of other settings: seed=1 (this command: seed=0); rerun with --mode "
                       f"all (or infer) to make them; finished samples of the store are reused")


# -- --limit and other machines (from the review of the sidecar) ------------------------------

def _api(srv, work, data, *extra):
    return evaluate.main(["--data", data, "--model", "openai-compatible", "--api-model", "m", "--api-base",
                          srv.base_url, "--judge", "exact_matching", "--work-dir", str(work), *extra])


def _pack_chat(text):
    import re

    questions = json.loads(re.search(r"Questions: \n(.*)\nAnswers: \n$", text, re.S).group(1))
    return json.dumps({k: f"ans{k}_asked{len(questions)}" for k in questions})


def test_pack_eval_with_a_smaller_limit_does_not_judge_the_full_packs(tmp_path, demo_root, capsys):
    """A full pack run's replies answered packs of every question of a video; --limit 1 asks packs of
    the first question only, so --mode eval --limit 1 must not judge the full packs' answers: it stops
    with one line, and --mode all --limit 1 then asks those packs and judges them."""
    import pandas as pd
    from judge_server import FakeJudgeServer

    name = "m/origin/m_MMBench_Video_demo_pack_None_None_exact_matching_score.tsv"
    with FakeJudgeServer(chat=_pack_chat) as srv:
        assert _api(srv, tmp_path, "MMBench_Video_demo_pack", "--mode", "all") == 0
        capsys.readouterr()
        assert _api(srv, tmp_path, "MMBench_Video_demo_pack", "--mode", "eval", "--limit", "1") == 2
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert "this command's settings for --limit None (12 rows; this command: --limit 1, 1 rows)" in err
        assert _api(srv, tmp_path, "MMBench_Video_demo_pack", "--mode", "all", "--limit", "1") == 0
    assert list(pd.read_csv(tmp_path / name, sep="\t")["prediction"]) == ["ans0_asked1"]


def test_eval_after_a_limited_merge_merges_the_full_run_again(tmp_path, demo_root, capsys):
    from judge_server import FakeJudgeServer

    with FakeJudgeServer(chat=lambda text: "an answer") as srv:
        assert _api(srv, tmp_path, "MMBench_Video_demo", "--mode", "infer") == 0
        assert _api(srv, tmp_path, "MMBench_Video_demo", "--mode", "infer", "--limit", "2") == 0  # a 2-row TSV
        asked = srv.total
        capsys.readouterr()
        rc = _api(srv, tmp_path, "MMBench_Video_demo", "--mode", "eval")
        assert srv.total == asked  # nothing asked again: the store had every question
    err = capsys.readouterr().err
    assert rc == 0, err
    assert "merging this run's predictions again from its store" in err
    meta, status = read_predictions_meta(tmp_path / "m/origin/m_MMBench_Video_demo_None_None.tsv")
    assert status == "ok" and meta["limit"] is None and meta["rows"] == 12


def test_eval_on_a_machine_whose_decoder_falls_back_judges_predictions_made_elsewhere(tmp_path, demo_root,
                                                                                      capsys, monkeypatch):
    import shutil

    import nrvl.video.decode as D
    from judge_server import FakeJudgeServer

    monkeypatch.delenv("NRVL_VIDEO_BACKEND", raising=False)
    made, judged = tmp_path / "made", tmp_path / "judged"
    with FakeJudgeServer(chat=lambda text: "an answer") as srv:
        monkeypatch.setattr(D, "_torchcodec_ffmpeg_ok", lambda: True)
        assert _api(srv, made, "MMBench_Video_demo", "--mode", "infer", "--limit", "2") == 0
        (judged / "m/origin").mkdir(parents=True)
        for f in (made / "m/origin").glob("*.tsv*"):  # the predictions and their sidecar, not the store
            shutil.copy(f, judged / "m/origin" / f.name)
        monkeypatch.setattr(D, "_torchcodec_ffmpeg_ok", lambda: False)  # no FFmpeg here: decord by default
        monkeypatch.setattr(D, "_warned", set())
        capsys.readouterr()
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # eval decodes nothing: no word about a decoder falling back
            rc = _api(srv, judged, "MMBench_Video_demo", "--mode", "eval", "--limit", "2")
        assert rc == 0, capsys.readouterr().err
        # Naming the predictions' decoder, which cannot run here, is the same run: eval decodes nothing.
        rc = _api(srv, judged, "MMBench_Video_demo", "--mode", "eval", "--limit", "2", "--decode-backend", "torchcodec")
        assert rc == 0, capsys.readouterr().err
        # Naming another decoder than the predictions': refused, with the setting named.
        rc = _api(srv, judged, "MMBench_Video_demo", "--mode", "eval", "--limit", "2", "--decode-backend", "decord")
    assert rc == 2 and "decode_backend unset (this command: decode_backend=decord)" in capsys.readouterr().err


def test_api_models_whose_names_share_a_file_tag_do_not_overwrite_each_other(tmp_path, demo_root, capsys):
    """``org/m`` and ``org_m`` both write ``org_m_...`` files: the second is refused, single run and sweep."""
    from judge_server import FakeJudgeServer

    def run(name, *extra):
        return evaluate.main(["--data", "MMBench_Video_demo", "--model", "openai-compatible", "--api-model", name,
                              "--api-base", srv.base_url, "--judge", "exact_matching", "--work-dir", str(tmp_path),
                              "--limit", "2", *extra])

    with FakeJudgeServer(chat=lambda text: "an answer") as srv:
        assert run("org/m") == 0
        folder = tmp_path / "org_m" / "origin"
        before = {p.name: p.read_bytes() for p in folder.iterdir() if not p.name.endswith(".jsonl")}
        capsys.readouterr()
        assert run("org_m") == 2
        err = capsys.readouterr().err
        assert "holds predictions of --api-model 'org/m', whose file names are those of 'org_m'" in err
        assert err.count("\n") == 1
        assert {p.name: p.read_bytes() for p in folder.iterdir() if not p.name.endswith(".jsonl")} == before
        assert run("org_m", "--noise_name", "gaussian", "--ratio", "0.3,0.9") == 2  # a sweep's clean run too
        assert "holds predictions of --api-model 'org/m'" in capsys.readouterr().err
        assert not (tmp_path / "org_m" / "gaussian").exists()
        assert run("org/m", "--mode", "eval") == 0  # the owner itself still goes on
