"""Pack presets (``MMBench_Video_*_pack``): one query per video, answers parsed as VLMEvalKit's
``load_pack_answers`` does (``reference/mmbench-video.md`` 1.3, 1.5c, 1.6)."""
import hashlib
import json
import re

import pandas as pd
import pytest

from nrvl import evaluate
from nrvl.models.api import FAIL_MSG
from nrvl.pack import (FRAMES_TMPL_PACK, PACK_PROMPT_MD5_8, QUESTIONS_TMPL, SYS, SYS_MD5, pack_samples,
                       robust_json_load, unpack_predictions)
from nrvl.store import read_predictions


@pytest.fixture(autouse=True)
def _env(eval_env):
    """Offline evaluation set-up (tests/conftest.py)."""


def test_pack_template_is_vlmevalkit_verbatim():
    assert len(SYS) == 73 and hashlib.md5(SYS.encode()).hexdigest() == SYS_MD5
    text = SYS + FRAMES_TMPL_PACK.format(8)
    assert len(text) == 782 and hashlib.md5(text.encode()).hexdigest() == PACK_PROMPT_MD5_8


@pytest.mark.parametrize("reply, expected", [
    ('{"3": "Four.", "4": "No."}', {"3": "Four.", "4": "No."}),
    ('Sure!\n```json\n{"3": "Four."}\n```\nHope this helps.', {"3": "Four."}),
    ('{"3": {"a": 1}}', {"3": {"a": 1}}),  # one object: the nested braces are inside it
    # the template's own single-quoted style is not JSON: the one-brace line fallback reads it
    ("{\n    '3': 'Four.',\n    '4': 'It bounces off: the edge',\n}", {"3": "Four.", "4": "It bounces off"}),
    ('{"3": "a"} and {"4": "b"}', None),  # two objects, two braces: nothing
    ("The answer is four.", None),
    ("{", {}),  # one brace, no line with ': ': parsed, but empty
    ('{"3": "x" "4"', {"3": "x\" \"4"}),  # broken JSON, one brace: the fallback strips the side quotes only
])
def test_robust_json_load(reply, expected):
    assert robust_json_load(reply) == expected


def test_unpack_predictions_and_counts():
    table = pd.DataFrame({"index": [3, 4, 7, 8, 9, 10], "video": ["a", "a", "b", "b", "c", "d"]})
    replies = {"a": '  {"3": "Four.", "4": 5}  ', "b": "{'I1': 'x', 'I2': 'y'}", "c": FAIL_MSG, "d": "no json here"}
    out, stats = unpack_predictions(table, replies, FAIL_MSG)
    assert list(out["prediction"]) == ["Four.", "5", "", "", "", ""]  # I1/I2 keys never match an index
    assert stats == {"PARSE_OK": 2, "PARSE_FAIL": 1, "GEN_FAIL": 1, "VALIDQ": 2, "INVALIDQ": 4}
    assert "prediction" not in table.columns


def test_pack_samples_are_sorted_videos_with_their_questions_as_json():
    from nrvl.data import Sample

    samples = [Sample(7, "b", "Why?", "x", "/v/b.mp4"), Sample(3, "a", "Où ?", "y", "/v/a.mp4"),
               Sample(9, "b", "How many?", "z", "/v/b.mp4")]
    packs = pack_samples(samples)
    assert [(p.index, p.video, p.video_path) for p in packs] == [("a", "a", "/v/a.mp4"), ("b", "b", "/v/b.mp4")]
    assert packs[1].question == '{"7": "Why?", "9": "How many?"}'
    assert packs[0].question == json.dumps({3: "Où ?"}) == '{"3": "O\\u00f9 ?"}'  # json.dumps' ASCII escapes


def test_local_models_refuse_pack_presets(capsys):
    rc = evaluate.main(["--data", "MMBench_Video_demo_pack", "--model", "tiny-qwen2.5-vl", "--judge", "exact_matching"])
    assert rc == 2 and "pack mode), which VLMEvalKit allows for API models only" in capsys.readouterr().err


def _answers_from_the_tsv(demo_root):
    from nrvl.data import read_tsv

    df = read_tsv(demo_root / "MMBench_Video_demo.tsv")
    return {str(i): a for i, a in zip(df["index"], df["answer"])}, df


def test_pack_run_end_to_end(tmp_path, demo_root, capsys):
    """A fake API model answers each pack: right answers as JSON for most videos, the template's
    single-quoted style for one, prose for one. Predictions, scores and the rating follow."""
    from judge_server import FakeJudgeServer

    truth, df = _answers_from_the_tsv(demo_root)
    videos = sorted(set(df["video"]))
    seen = []

    def chat(text):
        m = re.search(r"Questions: \n(.*)\nAnswers: \n$", text, re.S)
        qs = json.loads(m.group(1))
        seen.append(qs)
        video = df.loc[df["index"] == int(next(iter(qs))), "video"].item()
        if video == videos[0]:
            return "I cannot tell from these frames."
        if video == videos[1]:
            return "{\n" + ",\n".join(f"    '{k}': '{truth[k]}'" for k in qs) + "\n}"
        return "Here you go:\n" + json.dumps({k: truth[k] for k in qs})

    with FakeJudgeServer(chat=chat) as srv:
        rc = evaluate.main(["--data", "MMBench_Video_demo_pack", "--model", "openai-compatible", "--api-model", "m",
                            "--api-base", srv.base_url, "--judge", "exact_matching", "--noise_name", "gaussian",
                            "--ratio", "0.6", "--work-dir", str(tmp_path)])
        bodies = list(srv.bodies)
    err = capsys.readouterr().err
    assert rc == 0, err
    assert len(bodies) == len(videos) == 6  # one query per video
    parts = bodies[0]["messages"][0]["content"]
    assert parts[0]["text"] == SYS + FRAMES_TMPL_PACK.format(8)
    assert [p["type"] for p in parts] == ["text"] + ["image_url"] * 8 + ["text"]
    assert parts[-1]["text"] == QUESTIONS_TMPL.format(json.dumps(seen[0]))
    assert sorted(int(k) for qs in seen for k in qs) == sorted(df["index"])  # every question asked once

    folder = tmp_path / "m" / "gaussian"
    preds = read_predictions(folder / "m_MMBench_Video_demo_pack_gaussian_0.6.tsv")
    assert list(preds["index"]) == list(df["index"])  # TSV order, one row per question
    by_video = dict(zip(df["index"], df["video"]))
    for idx, pred in zip(preds["index"], preds["prediction"]):
        assert pred == ("" if by_video[idx] == videos[0] else truth[str(idx)]), idx
    scores = pd.read_csv(folder / "m_MMBench_Video_demo_pack_gaussian_0.6_exact_matching_score.tsv", sep="\t")
    lost = {i for i, v in by_video.items() if v == videos[0]}
    assert all((s == -1) == (i in lost) for i, s in zip(scores["index"], scores["score"]))
    assert all(s == 3 for i, s in zip(scores["index"], scores["score"]) if i not in lost)
    n_lost = len(lost)
    assert (f"parsed 5, unparsable 1, failed 0; {12 - n_lost} of 12 questions answered, {n_lost} not (scored -1)"
            in err)


def test_pack_sweep_asks_once_per_video_and_variant(tmp_path, demo_root):
    from judge_server import FakeJudgeServer

    truth, df = _answers_from_the_tsv(demo_root)

    def chat(text):
        qs = json.loads(re.search(r"Questions: \n(.*)\nAnswers: \n$", text, re.S).group(1))
        return json.dumps({k: truth[k] for k in qs})

    with FakeJudgeServer(chat=chat) as srv:
        rc = evaluate.main(["--data", "MMBench_Video_demo_pack", "--model", "openai-compatible", "--api-model", "m",
                            "--api-base", srv.base_url, "--judge", "exact_matching", "--noise_name",
                            "gaussian,other_video", "--ratio", "0.3,0.9", "--limit", "5", "--work-dir", str(tmp_path)])
        requests = srv.total
    assert rc == 0
    n_videos = df["video"].iloc[:5].nunique()
    assert requests == n_videos * 5  # origin + 2 noises x 2 ratios, one query per video each
    for folder, stem in (("origin", "None_None"), ("other_video", "other_video_0.9")):
        preds = read_predictions(tmp_path / "m" / folder / f"m_MMBench_Video_demo_pack_{stem}.tsv")
        assert list(preds["prediction"]) == [truth[str(i)] for i in df["index"].iloc[:5]]


def _pack_run(srv, work, *extra):
    return evaluate.main(["--data", "MMBench_Video_demo_pack", "--model", "openai-compatible", "--api-model", "m",
                          "--api-base", srv.base_url, "--mode", "infer", "--work-dir", str(work), *extra])


def _asking_chat(asked):
    def chat(text):
        qs = json.loads(re.search(r"Questions: \n(.*)\nAnswers: \n$", text, re.S).group(1))
        asked.append(sorted(int(k) for k in qs))
        return json.dumps({k: f"ans{k}" for k in qs})
    return chat


def test_a_pack_stored_under_a_smaller_limit_is_asked_again_with_all_its_questions(tmp_path, demo_root, capsys):
    """--limit 1 asks the first video one of its questions; --limit <its count> must ask it again with
    all of them, not reuse the smaller pack and leave the others unanswered (-1)."""
    from judge_server import FakeJudgeServer

    _, df = _answers_from_the_tsv(demo_root)
    first = df["video"].iloc[0]
    n_first = int((df["video"] == first).sum())
    assert n_first >= 2 and list(df["video"].iloc[:n_first]) == [first] * n_first
    asked = []
    tsv = tmp_path / "m" / "origin" / "m_MMBench_Video_demo_pack_None_None.tsv"
    with FakeJudgeServer(chat=_asking_chat(asked)) as srv:
        assert _pack_run(srv, tmp_path, "--limit", "1") == 0
        assert asked == [[int(df["index"].iloc[0])]]
        del asked[:]
        assert _pack_run(srv, tmp_path, "--limit", str(n_first)) == 0
        assert asked == [sorted(int(i) for i in df["index"].iloc[:n_first])]  # the pack again, whole
        err = capsys.readouterr().err
        assert f"{n_first} of {n_first} questions answered, 0 not" in err
        preds = read_predictions(tsv)
        assert list(preds["prediction"]) == [f"ans{i}" for i in df["index"].iloc[:n_first]]
        # Each question set keeps its own stored reply: --limit 1 again asks nothing and gets the small pack.
        del asked[:]
        assert _pack_run(srv, tmp_path, "--limit", "1") == 0
        assert asked == [] and list(read_predictions(tsv)["prediction"]) == [f"ans{df['index'].iloc[0]}"]


def test_a_full_pack_store_without_question_lists_still_resumes(tmp_path, demo_root):
    """Records of a full run written before pack records listed their questions are reused by a full
    run (no --limit asks every question), and not by a limited one."""
    from judge_server import FakeJudgeServer

    _, df = _answers_from_the_tsv(demo_root)
    asked = []
    store = tmp_path / "m" / "origin" / "m_MMBench_Video_demo_pack_None_None.rank0.jsonl"
    with FakeJudgeServer(chat=_asking_chat(asked)) as srv:
        assert _pack_run(srv, tmp_path) == 0
        assert len(asked) == df["video"].nunique() == 6
        records = [json.loads(line) for line in store.read_text().splitlines()]
        assert all(r["questions"] == [str(i) for i in df.loc[df["video"] == r["index"], "index"]] for r in records)
        store.write_text("".join(json.dumps({k: v for k, v in r.items() if k != "questions"}) + "\n"
                                 for r in records))  # as an older NRVL wrote them
        del asked[:]
        assert _pack_run(srv, tmp_path) == 0
        assert asked == []  # every pack reused
        assert _pack_run(srv, tmp_path, "--limit", "1") == 0
        assert asked == [[int(df["index"].iloc[0])]]  # a partial pack is not the full one it holds
