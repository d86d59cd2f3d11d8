"""Judge faults at scale: about 30% of requests fail (429 with Retry-After, 500, timeouts, malformed
bodies, empty and prose replies). The run completes, no item is asked more often than its retry
budget, only exhausted or non-integer replies score -1, and the valid/all ratings are right."""
from __future__ import annotations

import functools
import json
import random
import time
from collections import defaultdict

import numpy as np
import pytest
from judge_server import FakeJudgeServer, parse_user_prompt
from rel_util import CANARY_KEY, DEMO, hash_rule

import nrvl.judge as judge_mod
from nrvl import evaluate
from nrvl.rating import COARSE_DIMS, L3_DIMS, MMV_DIMENSIONS
from nrvl.store import read_predictions, write_predictions

TRANSIENT = {"429", "500", "slow", "badjson", "empty"}  # retried; "prose" is a final (non-integer) reply
TIMEOUT_S = 0.5  # client timeout; a "slow" fault answers after SLOW_S
SLOW_S = 1.5


class LoggingJudge(FakeJudgeServer):
    """The fake judge, with faults scripted per prediction or drawn at a rate, and every request logged."""

    def __init__(self, *, script=None, rate=0.0, seed=0, **kw):
        super().__init__(api_key=CANARY_KEY, rule=hash_rule, slow_s=SLOW_S, lifetime_s=600, **kw)
        self.script = {k: list(v) for k, v in (script or {}).items()}
        self.rate = rate
        self.rng = random.Random(seed)
        self.log = defaultdict(list)  # prediction -> [(monotonic time, fault or None)]

    def _take_fault(self, prediction):
        with self._lock:
            if prediction == "hello":  # the preflight: a failing preflight stops the run by design
                fault = None
            elif prediction in self.script:
                fault = self.script[prediction].pop(0) if self.script[prediction] else None
            elif self.rate and self.rng.random() < self.rate:
                fault = self.rng.choice(sorted(TRANSIENT | {"prose"}))
            else:
                fault = None
            self.log[prediction].append((time.monotonic(), fault))
        return fault

    def failed_share(self) -> float:
        outcomes = [f for p, reqs in self.log.items() if p != "hello" for _, f in reqs]
        return sum(f is not None for f in outcomes) / len(outcomes)


def expected_score(faults: list, retries: int, prediction: str) -> tuple[int, int]:
    """(score, requests) an item must end with, given the faults the server served it in order."""
    for k, f in enumerate(faults[:retries]):
        if f is None:
            return int(hash_rule("", "", prediction)), k + 1
        if f == "prose":
            return -1, k + 1  # a non-integer reply is final (VLMEvalKit does not re-ask) and scores -1
    return -1, retries  # every try failed: exhausted


def manual_rating(dims: list, scores: list) -> dict:
    """The MMBench-Video rating computed here from its definition, independently of nrvl.rating."""
    def fmt(v):
        return f"{np.mean(v):.2f}" if v else "nan"

    fine = {d: [s for ds, s in zip(dims, scores) for c in ds if c == d] for d in L3_DIMS}
    coarse = {g: [s for ds, s in zip(dims, scores) if set(ds) & set(MMV_DIMENSIONS[g])] for g in COARSE_DIMS}
    return {"coarse_all": {g: fmt([max(s, 0) for s in v]) for g, v in coarse.items()},
            "coarse_valid": {g: fmt([s for s in v if s >= 0]) for g, v in coarse.items()},
            "fine_all": {d: fmt([max(s, 0) for s in v]) for d, v in fine.items()},
            "fine_valid": {d: fmt([s for s in v if s >= 0]) for d, v in fine.items()}}


# ----------------------------------------------------------------------------------- scripted, 60 items

SCRIPTS = (
    [["429"]] * 4 + [["500", "500"]] * 3 + [["slow"]] * 3 + [["badjson"]] * 3 + [["empty"]] * 2
    + [["prose"]] * 2 + [["500", "429", "500"]] * 2 + [["badjson", "slow", "500"]]
)


@pytest.fixture
def table():
    import pandas as pd

    n = 60
    dims = [[L3_DIMS[i % 26]] + ([L3_DIMS[(i * 7) % 26]] if i % 3 == 0 else []) for i in range(n)]
    return pd.DataFrame({"index": range(100, 100 + n), "question": [f"q{i}?" for i in range(n)],
                         "answer": [f"a{i}" for i in range(n)], "prediction": [f"pred <{i:03d}>" for i in range(n)],
                         "dimensions": [repr(d) for d in dims]})


def test_thirty_percent_failures_scripted(table, tmp_path):
    from nrvl.rating import dimension_rating

    preds = list(table["prediction"])
    faulty = random.Random(1).sample(range(len(preds)), len(SCRIPTS))
    script = {preds[i]: s for i, s in zip(faulty, SCRIPTS)}
    retries = 3
    with LoggingJudge(script=script, retry_after="0.3") as srv:
        judge = judge_mod.build_judge("gpt-4o", base_url=srv.base_url, api_key=CANARY_KEY, nproc=6,
                                      retries=retries, timeout=TIMEOUT_S, backoff_base=0.01, env={},
                                      dotenv_path=tmp_path / "none.env")
        scored = judge_mod.judge_table(table, judge, tmp_path / "cache.jsonl", progress=False)

        assert 0.28 <= srv.failed_share() <= 0.40, srv.failed_share()
        expected = {}
        for p in preds:
            faults = [f for _, f in srv.log[p]]
            score, requests = expected_score(faults, retries, p)
            assert len(faults) == requests <= retries, (p, faults)  # never past the retry budget
            expected[p] = score
        # Retry-After is honoured: the retry after a 429 (Retry-After: 0.3) comes no sooner.
        for p, reqs in srv.log.items():
            for (t0, f), (t1, _) in zip(reqs, reqs[1:]):
                if f == "429":
                    assert t1 - t0 >= 0.29, (p, t1 - t0)
        assert srv.judged() == sum(len(v) for p, v in srv.log.items() if p != "hello") == 40 + 44

    assert list(scored["score"]) == [expected[p] for p in preds]
    minus = {p for p in preds if expected[p] == -1}
    assert minus == {p for p, s in script.items() if s in (["prose"], ["500", "429", "500"],
                                                           ["badjson", "slow", "500"])}
    assert (judge.stats.failed, judge.stats.non_integer) == (3, 2)
    dims = [eval_free_dims(c) for c in table["dimensions"]]
    assert dimension_rating(scored) == manual_rating(dims, list(scored["score"]))
    # Failures are not cached: a rerun against a healthy judge asks only the 3 exhausted items again.
    with LoggingJudge() as healthy:
        judge = judge_mod.build_judge("gpt-4o", base_url=healthy.base_url, api_key=CANARY_KEY, env={},
                                      dotenv_path=tmp_path / "none.env")
        again = judge_mod.judge_table(table, judge, tmp_path / "cache.jsonl", progress=False)
        assert healthy.judged() == 3
    exhausted = [p for p, s in script.items() if s[0] != "prose" and expected[p] == -1]
    assert all(again["score"][preds.index(p)] == int(hash_rule("", "", p)) for p in exhausted)


def eval_free_dims(cell: str) -> list:
    import ast

    return ast.literal_eval(cell)


# ----------------------------------------------------------------------------------- a whole run, random faults

def test_eval_run_completes_with_thirty_percent_random_faults(tmp_path, demo_ready, monkeypatch, capsys):
    from nrvl.data import load_dataset

    # Stored predictions, one distinct text per question, so each item's fault history is its own.
    work = tmp_path / "w"
    table = load_dataset("MMBench_Video_demo").rows()
    table["prediction"] = [f"answer number {i}" for i in range(len(table))]
    folder = work / "tiny-qwen2.5-vl" / "origin"
    write_predictions(table, folder / "tiny-qwen2.5-vl_MMBench_Video_demo_None_None.tsv")
    retries = 4
    monkeypatch.setattr(judge_mod, "build_judge",
                        functools.partial(judge_mod.build_judge, timeout=TIMEOUT_S, backoff_base=0.01))
    with LoggingJudge(rate=0.3, seed=7, retry_after="0.05") as srv:
        rc = evaluate.main([*DEMO, "--mode", "eval", "--judge", "gpt-4o", "--judge-base-url", srv.base_url,
                            "--judge-key", CANARY_KEY, "--judge-retry", str(retries), "--judge-nproc", "4",
                            "--work-dir", str(work)])
        assert rc == 0, capsys.readouterr().err
        # 30% per request drawn at random: over this few requests the share seen is noisy.
        assert 0.15 <= srv.failed_share() <= 0.6, srv.failed_share()
        assert len({f for reqs in srv.log.values() for _, f in reqs if f}) >= 3
        expected = {}
        for p in table["prediction"]:
            faults = [f for _, f in srv.log[p]]
            score, requests = expected_score(faults, retries, p)
            assert len(faults) == requests <= retries, (p, faults)
            expected[p] = score
    stem = "tiny-qwen2.5-vl_MMBench_Video_demo_None_None_gpt-4o"
    scores = read_predictions(folder / f"{stem}_score.tsv")
    assert [int(s) for s in scores["score"]] == [expected[p] for p in table["prediction"]]
    rating = json.loads((folder / f"{stem}_rating.json").read_text())
    dims = [eval_free_dims(c) for c in table["dimensions"]]
    assert rating == manual_rating(dims, [expected[p] for p in table["prediction"]])
    # The judge prompts carried the real questions and answers.
    texts = [b["messages"][-1]["content"][0]["text"] for b in srv.bodies]
    assert texts.count("hello") == 1  # the pre-flight: a judge request whose user text is 'hello'
    seen = [parse_user_prompt(t) for t in texts if t != "hello"]
    assert {s["question"] for s in seen} == set(table["question"])
