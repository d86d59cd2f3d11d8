"""Judge robustness: replies of unexpected shape, a pre-flight that checks what judging needs,
NRVL_JUDGE_PRICES validation, retry_invalid keeping a reply, and VLMEvalKit's LOCAL_LLM.

Against tests/judge_server.py (a real HTTP server on 127.0.0.1) through the real openai
client; no network beyond loopback.
"""
from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from judge_server import FakeJudgeServer  # noqa: E402

from nrvl.atomic import read_jsonl  # noqa: E402
from nrvl.judge import (  # noqa: E402
    SYSTEM_PROMPT, DEFAULT_PRICES, JudgeConfigError, JudgeItem, build_judge, judge_table,
)

from test_judge import expected_scores, make_judge, make_table, no_dotenv, server  # noqa: E402,F401 (fixtures)

MALFORMED = ["number", "choice_str", "bad_utf8", "html"]




def _warnings(caplog):
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and r.name == "nrvl.judge"]


# ------------------------------------------------------------------------------------------------
# 1. replies of unexpected shape: retried, then -1 for that question only; never an exception
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fault", MALFORMED)
def test_malformed_reply_is_retried_then_fails_only_its_question(server, no_dotenv, tmp_path, caplog, fault):
    caplog.set_level(logging.WARNING, logger="nrvl.judge")
    server.inject(fault, fault, fault, match="answer 0")  # every try: fails after 3
    server.inject(fault, fault, match="wrong 1")  # two tries, then a good reply
    cache = tmp_path / "c.jsonl"
    judge = make_judge(server, no_dotenv, retries=3)
    out = judge_table(make_table(4), judge, cache, progress=False)
    assert list(out["score"]) == [-1, 0, 3, 0]
    assert server.hits["answer 0"] == 3 and server.hits["wrong 1"] == 3
    assert (judge.stats.failed, judge.stats.non_integer) == (1, 0)
    assert {r["index"] for r in read_jsonl(cache)} == {101, 102, 103}  # the failure is not cached
    (warning,) = _warnings(caplog)
    assert "index 100 after 3 tries: malformed response" in warning and "\n" not in warning


@pytest.mark.parametrize("fault", MALFORMED)
def test_malformed_reply_sync_path(server, no_dotenv, fault):
    server.inject(fault, match="x")
    result = make_judge(server, no_dotenv).judge_one(JudgeItem("q", "x", "x"))
    assert (result.reply, result.score, result.attempts) == ("3", 3, 2)
    server.inject(fault, fault, match="y")
    result = make_judge(server, no_dotenv, retries=2).judge_one(JudgeItem("q", "y", "y"))
    assert result.reply is None and result.score == -1 and result.error.startswith("malformed response")


def test_content_parts_are_read_as_their_text(server, no_dotenv, tmp_path):
    # [{"type": "text", "text": "3"}] is read as "3" (VLMEvalKit would fail it; see docs/deviations.md).
    table = make_table(4)
    server.inject(*["parts"] * 4)
    out = judge_table(table, make_judge(server, no_dotenv), tmp_path / "c.jsonl", progress=False)
    assert list(out["score"]) == expected_scores(table) == [3, 0, 3, 0]
    assert server.judged() == 4  # no retries
    assert sorted(r["reply"] for r in read_jsonl(tmp_path / "c.jsonl")) == ["0", "0", "3", "3"]


def test_reply_text_of_odd_shapes():
    from nrvl.judge import _reply_text, _Retry

    def text(resp):
        try:
            return _reply_text(resp, str)
        except _Retry as exc:
            return exc.reason

    msg = lambda content: {"choices": [{"message": {"content": content}}]}  # noqa: E731
    assert text(msg(" 2\n")) == " 2\n"
    assert text(msg(None)) == ""
    assert text(msg([{"type": "text", "text": "1"}, {"type": "image_url", "image_url": {}},
                     {"type": "text", "text": "2"}])) == "12"
    assert text(msg([{"type": "thinking", "thinking": "hm"}, {"text": "3"}])) == "3"
    assert text(msg([{"type": "image_url"}])) == "malformed response: the message content is a list with no text part"
    assert text(msg(3)) == "malformed response: the message content is a number, not text"
    assert text(msg({"a": 1})) == "malformed response: the message content is a object, not text"
    assert text({"choices": ["3"]}) == "malformed response: choices[0] has no message object (got a string)"
    assert text({"choices": []}) == "malformed response: 'choices' is empty"
    assert text({"choices": {"0": 1}}) == "malformed response: 'choices' is a object, not a list"
    assert text({"id": "x"}) == "malformed response: no 'choices'"
    assert text(["3"]) == "malformed response: the body is a JSON list, not a chat completion"
    assert text(None) == "malformed response: the body is a JSON null, not a chat completion"
    assert text("<html>") == "malformed response: the body is not JSON: '<html>'"


def test_unreadable_usage_counts_zero_tokens(server, no_dotenv):
    from types import SimpleNamespace

    judge = make_judge(server, no_dotenv)
    tally = [0, 0]
    response = SimpleNamespace(usage=SimpleNamespace(prompt_tokens="abc", completion_tokens=[1]),
                               choices=[SimpleNamespace(message=SimpleNamespace(content="2"))])
    assert judge._accept(response, tally) == "2"
    assert tally == [0, 0] and (judge.usage.requests, judge.usage.prompt_tokens) == (1, 0)


# ------------------------------------------------------------------------------------------------
# 2. pre-flight: VLMEvalKit's working(), with the payload of a real request
# ------------------------------------------------------------------------------------------------

def test_preflight_sends_a_real_judge_request_and_counts_its_usage(server, no_dotenv, tmp_path):
    judge = make_judge(server, no_dotenv)
    judge.preflight()
    (body,) = list(server.bodies)
    assert body["model"] == "gpt-4o-2024-05-13"
    assert body["temperature"] == 0 and body["max_tokens"] == 2048  # as every judge request
    assert body["messages"] == [{"role": "system", "content": SYSTEM_PROMPT},
                                {"role": "user", "content": [{"type": "text", "text": "hello"}]}]
    after_ping = (judge.usage.requests, judge.usage.prompt_tokens, judge.usage.completion_tokens)
    assert after_ping[0] == 1 and after_ping[1] > 0 and after_ping[2] > 0
    judge_table(make_table(3), judge, tmp_path / "c.jsonl", progress=False)
    cached = read_jsonl(tmp_path / "c.jsonl")
    assert judge.usage.requests == server.total == 4  # the ping is in the usage/cost summary
    assert judge.usage.prompt_tokens == after_ping[1] + sum(r["prompt_tokens"] for r in cached)
    assert judge.usage_summary().startswith("judge gpt-4o (gpt-4o-2024-05-13): 4 requests")


def test_preflight_rejects_a_server_that_cannot_take_max_tokens(no_dotenv):
    with FakeJudgeServer(max_tokens_limit=1024, lifetime_s=30) as srv:
        with pytest.raises(JudgeConfigError) as info:
            make_judge(srv, no_dotenv).preflight()
        assert str(info.value) == (
            f"judge gpt-4o: {srv.base_url} answered HTTP 400 to a judge request (model 'gpt-4o-2024-05-13', "
            f"max_tokens 2048): This model's maximum context length is 1024 tokens. However, you requested "
            f"2048 tokens (400)")
        assert srv.hits["hello"] == 1  # a 4xx is not retried
        make_judge(srv, no_dotenv, max_tokens=1000).preflight()  # the same check passes when requests fit


HINT = "; is it an OpenAI-compatible /v1 endpoint?"


@pytest.mark.parametrize("fault,reason", [
    ("html", "(malformed response: the body is not JSON: '<html><body>Welcome</body></html>')" + HINT),
    ("empty", "(empty reply)"),
    ("failmsg", "(reply is the failure message)"),
    ("number", "(malformed response: the message content is a number, not text)" + HINT),
    ("bad_utf8", "(malformed response from the server (UnicodeDecodeError: 'utf-8' codec can't decode byte 0xff "
                 "in position "),
])
def test_preflight_needs_a_usable_answer(no_dotenv, fault, reason):
    with FakeJudgeServer(lifetime_s=30) as srv:
        srv.inject(fault, fault, fault)
        url = srv.base_url.replace("http://", "http://judgeuser:URLSECRET@")
        judge = make_judge(srv, no_dotenv, base_url=url)
        with pytest.raises(JudgeConfigError) as info:
            judge.preflight()
        message = str(info.value)
        where = f"http://***@127.0.0.1:{srv.port}/v1"
        assert message.startswith(f"judge gpt-4o: {where} gave no usable answer to 'hello' in 3 tries {reason}")
        assert message.endswith(HINT) == (fault not in ("empty", "failmsg"))
        assert "URLSECRET" not in message and "\n" not in message
        assert srv.hits["hello"] == 3


def test_preflight_retries_a_bad_reply_and_passes(server, no_dotenv):
    server.inject("html", "empty")
    judge = make_judge(server, no_dotenv)
    judge.preflight()
    # Every 2xx is a request in the usage summary (the html page with zero tokens).
    assert server.hits["hello"] == 3 and judge.usage.requests == 3


def test_preflight_after_rate_limit_validates_the_reply(server, no_dotenv, caplog):
    caplog.set_level(logging.WARNING, logger="nrvl.judge")
    server.inject("429", "empty", "empty")
    with pytest.raises(JudgeConfigError, match="in 3 tries \\(empty reply\\)"):
        make_judge(server, no_dotenv).preflight()
    server.inject("429", "429", "429")
    judge = make_judge(server, no_dotenv)
    judge.preflight()  # rate-limited on every try: key, URL and model were accepted
    assert judge.usage.requests == 0 and server.hits["hello"] == 6
    assert any("429" in w and "every pre-flight try" in w for w in _warnings(caplog))


# ------------------------------------------------------------------------------------------------
# 3. NRVL_JUDGE_PRICES: all entries or none
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("raw,why", [
    ('{"gpt-4o-2024-05-13": [500, 1500], "typo-model": [1]}', "entry 'typo-model' is [1]"),
    ('{"gpt-4o-2024-05-13": [500, 1500], "m": [1, NaN]}', "entry 'm' is [1, NaN]"),
    ('{"gpt-4o-2024-05-13": [500, 1500], "m": [-1, 2]}', "entry 'm' is [-1, 2]"),
    ('{"gpt-4o-2024-05-13": [500, 1500], "m": ["1", 2]}', "entry 'm' is [\"1\", 2]"),
    ('{"gpt-4o-2024-05-13": [500, 1500], "m": [1, 2, 3]}', "entry 'm' is [1, 2, 3]"),
    ('[["gpt-4o-2024-05-13", 500, 1500]]', "a JSON list, not an object"),
    ('{"gpt-4o-2024-05-13": [500, 1500]', "not JSON"),
])
def test_bad_prices_env_is_ignored_whole(no_dotenv, caplog, raw, why):
    caplog.set_level(logging.WARNING, logger="nrvl.judge")
    judge = build_judge("gpt-4o", base_url="http://127.0.0.1:9/v1", api_key="k", env={"NRVL_JUDGE_PRICES": raw},
                        dotenv_path=no_dotenv)
    assert judge.prices == DEFAULT_PRICES  # the good first entry is not applied either
    assert judge.prices["gpt-4o-2024-05-13"] == (5.0, 15.0) and "m" not in judge.prices
    (warning,) = _warnings(caplog)
    assert warning.startswith("ignoring NRVL_JUDGE_PRICES, the default prices apply: ") and why in warning


def test_good_prices_env_applies_every_entry(no_dotenv, caplog):
    caplog.set_level(logging.WARNING, logger="nrvl.judge")
    env = {"NRVL_JUDGE_PRICES": '{"gpt-4o-2024-05-13": [500, 1500], "local": [0, 0.5]}'}
    judge = build_judge("gpt-4o", base_url="http://127.0.0.1:9/v1", api_key="k", env=env, dotenv_path=no_dotenv)
    assert judge.prices["gpt-4o-2024-05-13"] == (500.0, 1500.0) and judge.prices["local"] == (0.0, 0.5)
    assert judge.prices["gpt-4o-mini-2024-07-18"] == DEFAULT_PRICES["gpt-4o-mini-2024-07-18"]
    assert _warnings(caplog) == []


# ------------------------------------------------------------------------------------------------
# 4. retry_invalid: a reply received is kept when the re-ask gets a non-retryable 4xx
# ------------------------------------------------------------------------------------------------

def test_retry_invalid_keeps_the_reply_when_the_reask_gets_a_4xx(server, no_dotenv, tmp_path):
    server.inject("prose", "400", match="answer 0")
    cache = tmp_path / "c.jsonl"
    judge = make_judge(server, no_dotenv, retries=3, retry_invalid=True)
    out = judge_table(make_table(2), judge, cache, progress=False)
    assert list(out["score"]) == [-1, 0] and server.hits["answer 0"] == 2
    assert (judge.stats.failed, judge.stats.non_integer) == (0, 1)  # a prose reply, not a failure
    assert {r["index"]: r["reply"] for r in read_jsonl(cache)} == {100: "Rating: 2", 101: "0"}

    server.inject("prose", "400", match="solo")  # the sync loop too
    result = make_judge(server, no_dotenv, retries=3, retry_invalid=True).judge_one(JudgeItem("q", "solo", "solo"))
    assert (result.reply, result.error, result.attempts, result.score) == ("Rating: 2", None, 2, -1)

    server.inject("400", match="plain")  # without an earlier reply a 400 still fails the item, at once
    result = make_judge(server, no_dotenv, retries=3, retry_invalid=True).judge_one(JudgeItem("q", "plain", "plain"))
    assert (result.reply, result.attempts) == (None, 1) and result.error == "HTTP 400: content filter triggered"


def test_build_judge_docstring_names_no_missing_flag():
    doc = build_judge.__doc__
    assert "--judge-retry-invalid" not in doc and "retry_invalid: re-ask on non-integer replies" in doc


# ------------------------------------------------------------------------------------------------
# 5. LOCAL_LLM (reference 2.1): its value is the model sent for every judge name
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["gpt-4-turbo", "gpt-4o", "some/other-model"])
def test_local_llm_is_sent_for_every_alias_and_files_keep_the_alias(name, no_dotenv, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="nrvl.judge")
    with FakeJudgeServer(models={"my-local-judge"}, lifetime_s=30) as srv:
        judge = make_judge(srv, no_dotenv, name=name, env={"LOCAL_LLM": "my-local-judge"})
        assert (judge.name, judge.model) == (name, "my-local-judge")
        judge.preflight()  # the server knows only my-local-judge
        out = judge_table(make_table(2), judge, tmp_path / "c.jsonl", progress=False)
        assert list(out["score"]) == [3, 0]
        assert {b["model"] for b in srv.bodies} == {"my-local-judge"}
    assert {(r["judge"], r["judge_name"]) for r in read_jsonl(tmp_path / "c.jsonl")} == {("my-local-judge", name)}
    said = [r.getMessage() for r in caplog.records if "LOCAL_LLM" in r.getMessage()]
    assert said == [f"judge {name}: LOCAL_LLM is set, so every judge request is sent as model 'my-local-judge' "
                    f"(file names keep {name!r})"]
    assert all(r.levelno == logging.INFO for r in caplog.records if "LOCAL_LLM" in r.getMessage())


def test_local_llm_from_dotenv_environment_first(tmp_path, no_dotenv):
    dotenv = tmp_path / ".env"
    dotenv.write_text("LOCAL_LLM=from-dotenv\n", encoding="utf-8")
    kw = dict(base_url="http://127.0.0.1:9/v1", api_key="k")
    assert build_judge("gpt-4o", env={}, dotenv_path=dotenv, **kw).model == "from-dotenv"
    assert build_judge("gpt-4o", env={"LOCAL_LLM": "from-env"}, dotenv_path=dotenv, **kw).model == "from-env"
    assert build_judge("gpt-4o", env={"LOCAL_LLM": " "}, dotenv_path=dotenv, **kw).model == "from-dotenv"
    assert build_judge("gpt-4o", env={"LOCAL_LLM": ""}, dotenv_path=no_dotenv, **kw).model == "gpt-4o-2024-05-13"
    offline = build_judge("exact_matching", env={"LOCAL_LLM": "from-env"}, dotenv_path=dotenv)
    assert (offline.name, offline.model) == ("exact_matching", "exact_matching")
