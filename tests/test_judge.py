"""Judge tests: exact prompt, VLMEvalKit score parsing, caching/resume, retries, concurrency, key hygiene.

Everything runs against tests/judge_server.py, a real HTTP server on 127.0.0.1,
through the real openai client. No network beyond loopback.
"""
from __future__ import annotations

import asyncio
import hashlib
import io
import logging
import math
import socket
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from judge_server import FakeJudgeServer, parse_user_prompt  # noqa: E402

from nrvl.atomic import read_jsonl  # noqa: E402
from nrvl.judge import (  # noqa: E402
    FAIL_MSG, JUDGE_ALIASES, SYSTEM_PROMPT, USER_TEMPLATE, ExactMatchJudge, JudgeConfigError, JudgeItem,
    build_judge, build_prompt, judge_table, parse_score, prediction_sha256, read_dotenv, resolve_judge_endpoint,
)
from nrvl.rating import dimension_rating, write_rating  # noqa: E402

CANARY = "sk-CANARY-7f3a9c1e-do-not-leak"
# md5 of the system prompt in VLMEvalKit vlmeval/dataset/utils/mmbench_video.py (reference/mmbench-video.md 2.3).
PROMPT_MD5 = "d897456dd2f813570f992b574b6686f9"


# ------------------------------------------------------------------------------------------------
# fixtures
# ------------------------------------------------------------------------------------------------

@pytest.fixture
def server():
    with FakeJudgeServer(lifetime_s=60) as srv:
        yield srv


@pytest.fixture
def no_dotenv(tmp_path):
    return tmp_path / "absent.env"


def make_judge(srv, no_dotenv, name="gpt-4o", **kw):
    opts = dict(base_url=srv.base_url, api_key="test-key", nproc=8, env={}, dotenv_path=no_dotenv,
                backoff_base=0.01, backoff_max=0.05, timeout=5.0)
    opts.update(kw)
    return build_judge(name, **opts)


def make_table(n, *, right=None):
    """n questions; prediction equals the answer on rows in ``right`` (default: even rows)."""
    right = set(range(0, n, 2)) if right is None else set(right)
    return pd.DataFrame({
        "index": list(range(100, 100 + n)),
        "video": [f"v{i // 3}" for i in range(n)],
        "question": [f"What happens in clip {i}?" for i in range(n)],
        "answer": [f"answer {i}" for i in range(n)],
        "prediction": [f"answer {i}" if i in right else f"wrong {i}" for i in range(n)],
        "dimensions": ["['OCR']"] * n,
    })


def expected_scores(table):
    return [3 if p == a else 0 for p, a in zip(table["prediction"], table["answer"])]


# ------------------------------------------------------------------------------------------------
# prompt and payload
# ------------------------------------------------------------------------------------------------

def test_system_prompt_is_vlmevalkit_verbatim():
    assert hashlib.md5(SYSTEM_PROMPT.encode("utf-8")).hexdigest() == PROMPT_MD5
    assert len(SYSTEM_PROMPT) == 823
    assert SYSTEM_PROMPT.startswith("\nAs an AI assistant") and SYSTEM_PROMPT.endswith("0, 1, 2, or 3.\n")


def test_user_template_has_trailing_space_and_formats_cells_as_is():
    assert USER_TEMPLATE == "Question: {}\nGroundtruth answer: {}\nCandidate answer: {}\nYour response: "
    assert build_prompt("Q?", "A", "P") == "Question: Q?\nGroundtruth answer: A\nCandidate answer: P\nYour response: "
    # A numeric cell formats as the number, as with VLMEvalKit's str.format on the loaded table.
    assert build_prompt("Q", 3.0, 7) == "Question: Q\nGroundtruth answer: 3.0\nCandidate answer: 7\nYour response: "


def test_request_payload_matches_vlmevalkit(server, no_dotenv):
    judge = make_judge(server, no_dotenv)
    result = judge.judge_one(JudgeItem("Q?", "yes", "yes"))
    assert result.reply == "3" and result.score == 3
    body = server.bodies[-1]
    assert body["model"] == "gpt-4o-2024-05-13"
    assert body["temperature"] == 0 and body["max_tokens"] == 2048
    assert body["messages"][0] == {"role": "system", "content": SYSTEM_PROMPT}
    assert body["messages"][1] == {"role": "user", "content": [
        {"type": "text", "text": "Question: Q?\nGroundtruth answer: yes\nCandidate answer: yes\nYour response: "}]}
    assert "n" not in body


@pytest.mark.parametrize("alias,sent", [
    ("gpt-4o", "gpt-4o-2024-05-13"),
    ("gpt-4-turbo", "gpt-4-1106-preview"),
    ("gpt-4o-0806", "gpt-4o-2024-08-06"),
    ("gpt-4o-1120", "gpt-4o-2024-11-20"),
    ("gpt-4o-mini", "gpt-4o-mini-2024-07-18"),
    ("gpt-4-0409", "gpt-4-turbo-2024-04-09"),
    ("Qwen/Qwen2.5-72B-Instruct", "Qwen/Qwen2.5-72B-Instruct"),
], ids=lambda v: v)
def test_aliases_map_as_vlmevalkit_and_others_pass_through(alias, sent, no_dotenv):
    judge = build_judge(alias, api_key="k", env={}, dotenv_path=no_dotenv)
    assert (judge.name, judge.model) == (alias, sent)
    assert JUDGE_ALIASES.get(alias, alias) == sent


# ------------------------------------------------------------------------------------------------
# score parsing (reference/mmbench-video.md 2.4; VLMEvalKit's eval-based rule, checked without eval)
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("reply,score", [
    ("3", 3), ("3\n", 3), (" 3", 3), ("2.", -1), ("Rating: 2", -1), ("02", -1), ("[3]", -1),
    ("4", 4), ("-1", -1), ("1_0", 10),
    ("True", -1), ("(3)", -1),  # VLMEvalKit crashes on these
    ("0", 0), ("00", 0), ("+2", 2), ("\t2", 2), (" 2 \n", 2), ("\n 3", -1), ("１", -1), ("0x3", -1),
    ("1 2", -1), ("3.0", -1), ("", -1), (FAIL_MSG, -1), ("three", -1),
    (None, -1), (float("nan"), -1), (3, 3),
], ids=repr)
def test_parse_score_table(reply, score):
    got = parse_score(reply)
    assert got == score and type(got) is int


# ------------------------------------------------------------------------------------------------
# configuration: base URL, key, .env
# ------------------------------------------------------------------------------------------------

def test_dotenv_parsing(tmp_path):
    env = tmp_path / ".env"
    env.write_text('# comment\nexport OPENAI_API_KEY="abc"\nOPENAI_API_BASE = http://h:1/v1/chat/completions # c\n'
                   "EMPTY=\nQUOTED='x y'\nnot a line\n", encoding="utf-8")
    assert read_dotenv(env) == {"OPENAI_API_KEY": "abc", "OPENAI_API_BASE": "http://h:1/v1/chat/completions",
                                "EMPTY": "", "QUOTED": "x y"}
    assert read_dotenv(tmp_path / "missing") == {}


@pytest.mark.parametrize("arg,env,dotenv,expected", [
    (None, {}, {}, "https://api.openai.com/v1"),
    ("http://a:1/v1/", {"OPENAI_BASE_URL": "http://b:2/v1"}, {}, "http://a:1/v1"),
    ("http://a:1/v1/chat/completions", {}, {}, "http://a:1/v1"),
    (None, {"OPENAI_BASE_URL": "http://b:2/v1", "OPENAI_API_BASE": "http://c:3/v1/chat/completions"}, {},
     "http://b:2/v1"),
    (None, {"OPENAI_API_BASE": "http://c:3/v1/chat/completions"}, {}, "http://c:3/v1"),
    (None, {}, {"OPENAI_API_BASE": "http://d:4/api/v1/chat/completions"}, "http://d:4/api/v1"),
    (None, {"OPENAI_API_BASE": "http://c:3/v1/chat/completions"}, {"OPENAI_BASE_URL": "http://d:4/v1"},
     "http://c:3/v1"),
    (None, {"OPENAI_BASE_URL": ""}, {"OPENAI_BASE_URL": "http://d:4/v1"}, "http://d:4/v1"),
], ids=["default", "flag-wins", "flag-full-url", "base-url-before-api-base", "vlmevalkit-api-base",
        "dotenv", "env-before-dotenv", "empty-env-ignored"])
def test_base_url_resolution(tmp_path, arg, env, dotenv, expected):
    path = tmp_path / ".env"
    path.write_text("".join(f"{k}={v}\n" for k, v in dotenv.items()), encoding="utf-8")
    url, _ = resolve_judge_endpoint(arg, None, env=env, dotenv_path=path)
    assert url == expected


def test_key_resolution_order(tmp_path):
    path = tmp_path / ".env"
    path.write_text("OPENAI_API_KEY=from-dotenv\n", encoding="utf-8")
    assert resolve_judge_endpoint(None, "from-flag", env={"OPENAI_API_KEY": "from-env"}, dotenv_path=path)[1] \
        == "from-flag"
    assert resolve_judge_endpoint(None, None, env={"OPENAI_API_KEY": "from-env"}, dotenv_path=path)[1] == "from-env"
    assert resolve_judge_endpoint(None, None, env={}, dotenv_path=path)[1] == "from-dotenv"
    assert resolve_judge_endpoint(None, None, env={}, dotenv_path=tmp_path / "none")[1] is None


def test_bad_base_url_and_arguments_raise(no_dotenv):
    with pytest.raises(JudgeConfigError, match="http:// or https://"):
        build_judge("gpt-4o", base_url="127.0.0.1:8000/v1", api_key="k", env={}, dotenv_path=no_dotenv)
    with pytest.raises(ValueError, match="nproc"):
        build_judge("gpt-4o", api_key="k", nproc=0, env={}, dotenv_path=no_dotenv)
    with pytest.raises(ValueError, match="retries"):
        build_judge("gpt-4o", api_key="k", retries=0, env={}, dotenv_path=no_dotenv)
    with pytest.raises(ValueError, match="timeout"):
        build_judge("gpt-4o", api_key="k", timeout=0, env={}, dotenv_path=no_dotenv)


# ------------------------------------------------------------------------------------------------
# preflight
# ------------------------------------------------------------------------------------------------

def _closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_preflight_passes_on_a_working_server(server, no_dotenv):
    make_judge(server, no_dotenv).preflight()
    assert server.hits["hello"] == 1
    build_judge("exact_matching", env={}).preflight()  # offline: always fine


def test_preflight_missing_key(no_dotenv):
    judge = build_judge("gpt-4o", base_url="http://127.0.0.1:9/v1", env={}, dotenv_path=no_dotenv)
    with pytest.raises(JudgeConfigError, match="no API key.*OPENAI_API_KEY") as info:
        judge.preflight()
    assert "\n" not in str(info.value)


def test_preflight_unreachable(no_dotenv):
    judge = build_judge("gpt-4o", base_url=f"http://127.0.0.1:{_closed_port()}/v1", api_key="k", env={},
                        dotenv_path=no_dotenv, backoff_base=0.01)
    with pytest.raises(JudgeConfigError, match="cannot reach http://127.0.0.1") as info:
        judge.preflight()
    assert "\n" not in str(info.value)


def test_preflight_rejected_key_and_unknown_model(no_dotenv):
    with FakeJudgeServer(api_key="right", models={"gpt-4o-2024-05-13"}, lifetime_s=30) as srv:
        with pytest.raises(JudgeConfigError, match="rejected.*401") as info:
            make_judge(srv, no_dotenv, api_key="wrong").preflight()
        assert "\n" not in str(info.value) and "wrong" not in str(info.value)
        with pytest.raises(JudgeConfigError, match="model 'no-such-model' not found") as info:
            make_judge(srv, no_dotenv, name="no-such-model", api_key="right").preflight()
        assert "\n" not in str(info.value)
        make_judge(srv, no_dotenv, api_key="right").preflight()


def test_preflight_timeout_fails_fast(no_dotenv):
    with FakeJudgeServer(slow_s=1.0, lifetime_s=30) as srv:
        srv.inject("slow", "slow", "slow")
        with pytest.raises(JudgeConfigError, match="did not answer within 0.3s"):
            make_judge(srv, no_dotenv, timeout=0.3).preflight()
        assert srv.hits["hello"] == 1  # a timeout is not retried


def test_unknown_model_mid_run_aborts_with_config_error(no_dotenv, tmp_path):
    with FakeJudgeServer(models={"other"}, lifetime_s=30) as srv:
        with pytest.raises(JudgeConfigError, match="not found"):
            judge_table(make_table(4), make_judge(srv, no_dotenv), tmp_path / "c.jsonl", progress=False)
        assert srv.judged() <= 4  # no retries on 404


# ------------------------------------------------------------------------------------------------
# judging tables: semantics, cache, resume
# ------------------------------------------------------------------------------------------------

def test_judge_table_scores_and_missing_predictions(server, no_dotenv, tmp_path):
    table = make_table(8)
    table["prediction"] = table["prediction"].astype(object)
    table.loc[1, "prediction"] = None
    table.loc[3, "prediction"] = float("nan")
    table.loc[5, "prediction"] = ""
    judge = make_judge(server, no_dotenv)
    out = judge_table(table, judge, tmp_path / "cache.jsonl", progress=False)
    want = [-1 if i in (1, 3, 5) else s for i, s in enumerate(expected_scores(table))]
    assert list(out["score"]) == want and out["score"].dtype == np.int64
    assert list(out.columns) == list(table.columns) + ["score"]
    assert "score" not in table.columns  # input untouched
    assert server.judged() == 5  # the three missing predictions were never sent
    assert (judge.stats.missing_prediction, judge.stats.judged, judge.stats.cached) == (3, 5, 0)


# VLMEvalKit judges the prediction file it reads back with pandas (vlmeval/smp/file.py ``load``:
# ``pd.read_excel(f)`` for the default xlsx, ``pd.read_csv(f, sep='\t')`` for PRED_FORMAT=tsv), both with
# pandas' default NA strings. ``MMBenchVideo.evaluate`` (vlmeval/dataset/mmbench_video.py, open-compass/VLMEvalKit
# @ ac8a692, ``data_un = data_un[~pd.isna(data_un['prediction'])]`` and
# ``data['score'] = [score_map[idx] if idx in score_map else -1 ...]``) then never sends those rows to the
# judge and scores them -1. So a model answering "None" or "N/A" scores -1, not whatever the judge would say.
PANDAS_DEFAULT_NA = ["", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
                     "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"]


def test_predictions_pandas_reads_as_nan_are_not_judged(server, no_dotenv, tmp_path):
    na = PANDAS_DEFAULT_NA
    kept = ["none", " None", "None.", "NONE", "N/A ", "0", "nil", "-"]  # not NA strings: judged as text
    n = len(na) + len(kept)
    table = make_table(n, right=range(n))
    table["answer"] = na + kept
    table["prediction"] = na + kept  # every prediction equals its answer: the fake judge says "3"
    out = judge_table(table, make_judge(server, no_dotenv), tmp_path / "c.jsonl", progress=False)
    assert list(out["score"]) == [-1] * len(na) + [3] * len(kept)
    assert server.judged() == len(kept)
    # The same rows, as VLMEvalKit sees them after its pandas round trip.
    back = pd.read_csv(io.StringIO(table.to_csv(sep="\t", index=False)), sep="\t")
    assert list(pd.isna(back["prediction"])) == [True] * len(na) + [False] * len(kept)


def test_na_strings_are_pandas_defaults():
    from nrvl.judge import PANDAS_NA_STRINGS, is_missing_prediction

    assert PANDAS_NA_STRINGS == frozenset(PANDAS_DEFAULT_NA)
    try:
        from pandas._libs.parsers import STR_NA_VALUES
    except ImportError:  # pragma: no cover - private name moved
        pytest.skip("pandas has no STR_NA_VALUES here")
    assert PANDAS_NA_STRINGS == frozenset(STR_NA_VALUES)
    assert all(is_missing_prediction(s) for s in PANDAS_DEFAULT_NA)
    assert not any(is_missing_prediction(s) for s in ("none", " NA", "N/A.", "3", " "))


def test_table_read_back_from_tsv(server, no_dotenv, tmp_path):
    # As the evaluation loop reads predictions: pandas' own dtypes, an empty cell read as NaN.
    table = make_table(4)
    table.loc[2, "prediction"] = ""
    tsv = tmp_path / "pred.tsv"
    table.to_csv(tsv, sep="\t", index=False)
    back = pd.read_csv(tsv, sep="\t")
    out = judge_table(back, make_judge(server, no_dotenv), tmp_path / "c.jsonl", progress=False)
    assert list(out["score"]) == [3, 0, -1, 0] and server.judged() == 3
    out = judge_table(table, make_judge(server, no_dotenv), tmp_path / "c.jsonl", progress=False)
    assert list(out["score"]) == [3, 0, -1, 0] and server.judged() == 3  # same keys either way


def test_cache_records_are_keyed_and_complete(server, no_dotenv, tmp_path):
    table = make_table(3)
    cache = tmp_path / "cache.jsonl"
    judge_table(table, make_judge(server, no_dotenv), cache, progress=False)
    records = read_jsonl(cache)
    assert len(records) == 3
    by_index = {r["index"]: r for r in records}
    assert set(by_index) == {100, 101, 102}
    rec = by_index[101]
    assert rec["judge"] == "gpt-4o-2024-05-13" and rec["judge_name"] == "gpt-4o"
    assert rec["prediction_sha256"] == prediction_sha256("wrong 1") == hashlib.sha256(b"wrong 1").hexdigest()
    assert rec["reply"] == "0" and rec["prompt_tokens"] > 0


def test_rerun_judges_only_missing_rows(server, no_dotenv, tmp_path):
    cache = tmp_path / "cache.jsonl"
    table = make_table(10)
    judge_table(table.iloc[:6], make_judge(server, no_dotenv), cache, progress=False)
    assert server.judged() == 6

    table.loc[2, "prediction"] = "changed answer"  # a changed prediction is a new key
    judge = make_judge(server, no_dotenv)
    out = judge_table(table, judge, cache, progress=False)
    assert server.judged() == 6 + 4 + 1
    assert (judge.stats.cached, judge.stats.judged) == (5, 5)
    assert list(out["score"]) == expected_scores(table)

    judge = make_judge(server, no_dotenv)
    judge_table(table, judge, cache, progress=False)  # everything cached now
    assert server.judged() == 11 and judge.stats.judged == 0 and judge.usage.requests == 0

    # Another judge model shares the file but not the replies.
    judge_table(table, make_judge(server, no_dotenv, name="gpt-4o-mini"), cache, progress=False)
    assert server.judged() == 21


def test_truncated_cache_line_is_ignored_and_redone(server, no_dotenv, tmp_path):
    cache = tmp_path / "cache.jsonl"
    table = make_table(4)
    judge_table(table, make_judge(server, no_dotenv), cache, progress=False)
    lines = cache.read_bytes().splitlines(keepends=True)
    cache.write_bytes(b"".join(lines[:3]) + lines[3][: len(lines[3]) // 2])  # killed mid-write
    out = judge_table(table, make_judge(server, no_dotenv), cache, progress=False)
    assert server.judged() == 5
    assert list(out["score"]) == expected_scores(table)
    assert len(read_jsonl(cache)) == 4


def test_duplicate_rows_are_judged_once(server, no_dotenv, tmp_path):
    table = pd.concat([make_table(3), make_table(3)], ignore_index=True)
    out = judge_table(table, make_judge(server, no_dotenv), tmp_path / "c.jsonl", progress=False)
    assert server.judged() == 3
    assert list(out["score"]) == expected_scores(table)


def test_missing_columns_raise(no_dotenv, tmp_path):
    with pytest.raises(ValueError, match="answer"):
        judge_table(pd.DataFrame({"index": [1], "question": ["q"], "prediction": ["p"]}),
                    build_judge("exact_matching", env={}), tmp_path / "c.jsonl", progress=False)


# ------------------------------------------------------------------------------------------------
# faults and retries
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fault", ["429", "500", "badjson", "empty"])
def test_transient_faults_are_retried(server, no_dotenv, tmp_path, fault):
    server.inject(fault, fault, match="wrong 1")
    judge = make_judge(server, no_dotenv)
    out = judge_table(make_table(4), judge, tmp_path / "c.jsonl", progress=False)
    assert list(out["score"]) == [3, 0, 3, 0]
    assert server.hits["wrong 1"] == 3 and judge.stats.failed == 0


def test_slow_reply_past_timeout_is_retried(no_dotenv, tmp_path):
    with FakeJudgeServer(slow_s=1.5, lifetime_s=30) as srv:
        srv.inject("slow", match="wrong 1")
        judge = make_judge(srv, no_dotenv, timeout=0.4)
        out = judge_table(make_table(2), judge, tmp_path / "c.jsonl", progress=False)
        assert list(out["score"]) == [3, 0] and srv.hits["wrong 1"] == 2


def test_retry_after_is_honoured(no_dotenv):
    with FakeJudgeServer(retry_after="1", lifetime_s=30) as srv:
        srv.inject("429")
        judge = make_judge(srv, no_dotenv, backoff_base=0.0, backoff_max=0.0)
        result = judge.judge_one(JudgeItem("q", "a", "a"))
        assert result.reply == "3" and result.attempts == 2
        gap = srv.request_times[1] - srv.request_times[0]
        assert gap >= 0.95, f"retried after {gap:.3f}s although Retry-After said 1s"


def test_exhausted_retries_score_minus_one_and_are_not_cached(server, no_dotenv, tmp_path):
    cache = tmp_path / "c.jsonl"
    server.inject("500", "500", "500", match="answer 0")
    judge = make_judge(server, no_dotenv, retries=3)
    out = judge_table(make_table(3), judge, cache, progress=False)
    assert list(out["score"]) == [-1, 0, 3]
    assert server.hits["answer 0"] == 3 and judge.stats.failed == 1
    assert {r["index"] for r in read_jsonl(cache)} == {101, 102}
    # The next run asks again for the failed row only, and now succeeds.
    out = judge_table(make_table(3), make_judge(server, no_dotenv, retries=3), cache, progress=False)
    assert list(out["score"]) == [3, 0, 3] and server.hits["answer 0"] == 4 and server.judged() == 6


def test_sync_judge_one_retries_too(server, no_dotenv):
    server.inject("500", "badjson", match="x")
    result = make_judge(server, no_dotenv).judge_one(JudgeItem("q", "x", "x"))
    assert (result.reply, result.attempts) == ("3", 3)


def test_prose_reply_is_kept_like_vlmevalkit_and_retry_invalid_asks_again(server, no_dotenv, tmp_path):
    cache = tmp_path / "c.jsonl"
    server.inject("prose", match="answer 0")
    judge = make_judge(server, no_dotenv)
    out = judge_table(make_table(2), judge, cache, progress=False)
    assert list(out["score"]) == [-1, 0] and judge.stats.non_integer == 1 and judge.stats.failed == 0
    assert any(r["reply"] == "Rating: 2" for r in read_jsonl(cache))
    # A plain rerun keeps the cached prose reply: no request.
    out = judge_table(make_table(2), make_judge(server, no_dotenv), cache, progress=False)
    assert list(out["score"]) == [-1, 0] and server.judged() == 2
    # retry_invalid=True (Python API) asks again and the new reply wins on later runs.
    out = judge_table(make_table(2), make_judge(server, no_dotenv, retry_invalid=True), cache, progress=False)
    assert list(out["score"]) == [3, 0] and server.judged() == 3
    out = judge_table(make_table(2), make_judge(server, no_dotenv), cache, progress=False)
    assert list(out["score"]) == [3, 0] and server.judged() == 3


def test_retry_invalid_within_one_run(server, no_dotenv, tmp_path):
    server.inject("prose", match="answer 0")
    out = judge_table(make_table(2), make_judge(server, no_dotenv, retry_invalid=True), tmp_path / "c.jsonl",
                      progress=False)
    assert list(out["score"]) == [3, 0] and server.hits["answer 0"] == 2


# ------------------------------------------------------------------------------------------------
# concurrency
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("nproc", [1, 4])
def test_concurrency_overlaps_and_is_bounded(no_dotenv, tmp_path, nproc):
    with FakeJudgeServer(latency=0.05, lifetime_s=30) as srv:
        out = judge_table(make_table(16), make_judge(srv, no_dotenv, nproc=nproc), tmp_path / "c.jsonl",
                          progress=False)
        assert list(out["score"]) == expected_scores(make_table(16))
        if nproc == 1:
            assert srv.max_in_flight == 1
        else:
            assert 1 < srv.max_in_flight <= nproc


def test_judge_many_inside_a_running_event_loop(server, no_dotenv):
    judge = make_judge(server, no_dotenv)

    async def inside():
        return judge.judge_many([JudgeItem("q", "a", "a"), JudgeItem("q", "a", "b")])

    results = asyncio.run(inside())
    assert [r.score for r in results] == [3, 0]


# ------------------------------------------------------------------------------------------------
# usage and cost
# ------------------------------------------------------------------------------------------------

def test_usage_is_summed_and_priced(server, no_dotenv, tmp_path, capsys):
    judge = make_judge(server, no_dotenv)
    judge_table(make_table(4), judge, tmp_path / "c.jsonl", progress=True)
    records = read_jsonl(tmp_path / "c.jsonl")
    assert judge.usage.requests == 4
    assert judge.usage.prompt_tokens == sum(r["prompt_tokens"] for r in records) > 0
    assert judge.usage.completion_tokens == 4
    expected = (judge.usage.prompt_tokens * 5.0 + 4 * 15.0) / 1e6
    assert math.isclose(judge.usage.cost("gpt-4o-2024-05-13", judge.prices), expected)
    printed = capsys.readouterr().out
    assert f"estimated cost ${expected:.4f}" in printed and "Among 4 questions" in printed

    cheap = make_judge(server, no_dotenv, prices={"gpt-4o-2024-05-13": (1.0, 0.0)})
    assert cheap.prices["gpt-4o-2024-05-13"] == (1.0, 0.0)
    env_priced = make_judge(server, no_dotenv, name="local-llm", env={"NRVL_JUDGE_PRICES": '{"local-llm": [2, 4]}'})
    assert env_priced.prices["local-llm"] == (2.0, 4.0)
    assert "cost unknown" in make_judge(server, no_dotenv, name="local-llm").usage_summary()


# ------------------------------------------------------------------------------------------------
# exact_matching (offline)
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("answer,prediction,reply", [
    ("The cat.", "cat", "3"),
    ("A red car", "red CAR!", "3"),
    ("a man riding a bicycle", "man riding a horse", "2"),
    ("two people talking in a kitchen at night", "people dancing", "1"),
    ("yes", "no", "0"),
], ids=["articles-punct", "case", "overlap-2", "overlap-1", "none"])
def test_exact_matching_grades(answer, prediction, reply):
    assert ExactMatchJudge.grade(answer, prediction) == reply


def test_exact_matching_judges_tables_offline_and_names_itself(tmp_path):
    judge = build_judge("exact_matching", env={})
    cache = tmp_path / "c.jsonl"
    out = judge_table(make_table(4), judge, cache, progress=False)
    assert list(out["score"]) == [3, 2, 3, 2]  # "answer i" vs "wrong i": one token of two shared, F1 0.5
    assert {r["judge"] for r in read_jsonl(cache)} == {"exact_matching"}


# ------------------------------------------------------------------------------------------------
# the key is never printed, logged or written
# ------------------------------------------------------------------------------------------------

def test_canary_key_never_leaks(no_dotenv, tmp_path, capsys, caplog):
    caplog.set_level(logging.DEBUG)
    for name in ("openai", "httpx2", "httpcore2", "nrvl"):
        caplog.set_level(logging.DEBUG, logger=name)
    out_dir = tmp_path / "run"
    errors = []
    with FakeJudgeServer(api_key=CANARY, lifetime_s=30) as srv:
        judge = make_judge(srv, no_dotenv, api_key=CANARY, retries=2)
        judge.preflight()
        srv.inject("500", "500", match="answer 0")  # a failure, logged
        srv.inject("prose", match="wrong 1")
        scored = judge_table(make_table(6), judge, out_dir / "judge_cache.jsonl", progress=True)
        write_rating(dimension_rating(scored), out_dir / "m_d_gaussian_0.9_gpt-4o_rating.json", scores=scored)
        assert f"Bearer {CANARY}" in srv.auth_headers  # the key was really used

        # Error paths: a wrong model, a key echoed back in a 401, an unreachable URL.
        srv.models = {"something-else"}
        try:
            judge.preflight()
        except JudgeConfigError as exc:
            errors.append(str(exc))
    with FakeJudgeServer(api_key="the-right-key", echo_key=True, lifetime_s=30) as srv:
        try:
            make_judge(srv, no_dotenv, api_key=CANARY).preflight()
        except JudgeConfigError as exc:
            errors.append(str(exc))
        try:
            judge_table(make_table(2), make_judge(srv, no_dotenv, api_key=CANARY), out_dir / "judge_cache.jsonl")
        except JudgeConfigError as exc:
            errors.append(str(exc))
    bad = build_judge("gpt-4o", base_url=f"http://127.0.0.1:{_closed_port()}/v1", api_key=CANARY, env={},
                      dotenv_path=no_dotenv, backoff_base=0.01)
    try:
        bad.preflight()
    except JudgeConfigError as exc:
        errors.append(str(exc))
    env_judge = build_judge("gpt-4o", env={"OPENAI_API_KEY": CANARY}, dotenv_path=no_dotenv)
    dotenv = tmp_path / "secret.env"
    dotenv.write_text(f"OPENAI_API_KEY={CANARY}\n", encoding="utf-8")
    dotenv_judge = build_judge("gpt-4o", env={}, dotenv_path=dotenv)

    assert len(errors) == 4
    captured = capsys.readouterr()
    texts = [captured.out, captured.err, caplog.text, *errors]
    for j in (judge, bad, env_judge, dotenv_judge):
        texts += [repr(j), str(vars(j)), j.usage_summary()]
    for text in texts:
        assert CANARY not in text
    written = [p for p in out_dir.rglob("*") if p.is_file()]
    assert {p.name for p in written} >= {"judge_cache.jsonl", "m_d_gaussian_0.9_gpt-4o_rating.json",
                                         "m_d_gaussian_0.9_gpt-4o_score.tsv"}
    for path in written:
        assert CANARY.encode() not in path.read_bytes(), path


def test_scrubbing_hides_a_key_echoed_in_an_error(no_dotenv):
    judge = build_judge("gpt-4o", base_url="http://127.0.0.1:9/v1", api_key=CANARY, env={}, dotenv_path=no_dotenv)
    text = judge._redact(f"Incorrect API key provided: {CANARY}. Header Authorization: Bearer {CANARY}")
    assert CANARY not in text and "***" in text


def test_server_prompt_parser_roundtrip():
    # Guards the fake server's grading rule, which the other tests rely on.
    fields = parse_user_prompt(build_prompt("Q\nwith newline", "A", "P: x"))
    assert fields == {"question": "Q\nwith newline", "answer": "A", "prediction": "P: x"}
