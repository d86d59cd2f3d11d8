"""The MMBench-Video judge: GPT-4o (or any OpenAI-compatible model) grades each answer 0..3.

This reproduces what VLMEvalKit does in ``MMBenchVideo.evaluate`` (see
``reference/mmbench-video.md`` sections 2 and 8), so that the same judge replies
give the same scores and the same rating:

- the exact system prompt (:data:`SYSTEM_PROMPT`, md5 ``d897456d...``) and user
  template (:data:`USER_TEMPLATE`, trailing space included), temperature 0,
  ``max_tokens`` 2048, the user message sent as one text content part;
- the alias table (``gpt-4o`` is sent as ``gpt-4o-2024-05-13``, ...); any other
  name is sent unchanged, so a local vLLM judge works; with ``LOCAL_LLM`` set
  (environment, else ``.env``) its value is sent as the model for every judge
  name, while file names keep the name asked for;
- the pre-flight check (VLMEvalKit's ``working()``): ``'hello'`` sent with the
  payload of a real judge request, whose reply must pass the same test as a real
  reply (non-empty, not the failure message), else the run does not start;
- a reply that gives no usable answer (an HTTP error, an empty reply, the
  failure message, a body of unexpected shape) is retried and, after the last
  try, scores -1 for that question only;
- :func:`parse_score`: ``int(reply)`` when the reply is a Python int literal,
  else -1, computed without ``eval``;
- predictions that are missing (None, NaN, or a string pandas reads as NaN:
  ``''``, ``'None'``, ``'N/A'``, ...; VLMEvalKit reads its prediction file back
  with pandas) are not judged and score -1;
  a reply that never came scores -1.

What it does differently, on purpose: requests run concurrently on asyncio
(``nproc`` at once), retries back off exponentially with jitter and honour
``Retry-After``, every reply is appended to a JSON Lines cache keyed by
(judge model, question index, sha256 of the prediction) so a rerun judges only
what is missing, failures are never cached, token usage is summed with an
estimated cost (the pre-flight request included), and the API key is never
printed, logged or written. A reply whose content is a list of content parts
(as some OpenAI-compatible servers send) is read as the concatenation of its
text parts; VLMEvalKit counts it as a failure.

``exact_matching`` is an offline judge for demos and users without an API. Its
scores are **not** comparable with GPT-4o's.
"""
from __future__ import annotations

import ast
import asyncio
import concurrent.futures
import email.utils
import hashlib
import json
import logging
import math
import numbers
import os
import random
import re
import string
import sys
import time
import unicodedata
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence, Union

from nrvl import openai_endpoint as _endpoint
from nrvl.openai_endpoint import field as _field, kind as _kind
from nrvl._faults import kill_point
from nrvl._text import one_line as _one_line
from nrvl.atomic import append_jsonl, iter_jsonl

logger = logging.getLogger(__name__)

__all__ = [
    "SYSTEM_PROMPT", "SYSTEM_PROMPT_MD5", "USER_TEMPLATE", "FAIL_MSG", "JUDGE_ALIASES", "DEFAULT_PRICES",
    "JudgeConfigError", "JudgeItem", "JudgeResult", "TokenUsage", "JudgeStats",
    "Judge", "OpenAIJudge", "ExactMatchJudge",
    "parse_score", "is_integer_reply", "build_prompt", "build_judge", "judge_table",
    "resolve_judge_endpoint", "read_dotenv", "prediction_sha256", "is_missing_prediction", "load_judge_cache",
    "PANDAS_NA_STRINGS",
]

# --------------------------------------------------------------------------------------------
# VLMEvalKit data (vlmeval/dataset/utils/mmbench_video.py); must match byte for byte.
# --------------------------------------------------------------------------------------------

SYSTEM_PROMPT = """
As an AI assistant, your task is to evaluate a candidate answer in comparison to a given correct answer.
The question itself, the correct 'groundtruth' answer, and the candidate answer will be provided to you.
Your assessment should range from 0 to 3, \
based solely on the semantic similarity between the groundtruth and the candidate answer, \
disregarding any grammatical differences.
A rating of 0 suggests no similarity, implying the candidate answer is entirely incorrect.
A rating of 1 suggests low similarity, meaning the candidate answer is largely incorrect.
A rating of 2 suggests high similarity, meaning the candidate answer is largely correct.
Lastly, a rating of 3 indicates complete similarity, which means the candidate answer is entirely correct.
Your response should be a single integer from 0, 1, 2, or 3.
"""
SYSTEM_PROMPT_MD5 = "d897456dd2f813570f992b574b6686f9"

USER_TEMPLATE = "Question: {}\nGroundtruth answer: {}\nCandidate answer: {}\nYour response: "

#: VLMEvalKit's judge failure message; a reply containing it is a failure, never a score.
FAIL_MSG = "Failed to obtain answer via API."

#: Judge aliases as VLMEvalKit's ``build_judge`` maps them; other names are sent unchanged.
JUDGE_ALIASES: dict[str, str] = {
    "gpt-4-turbo": "gpt-4-1106-preview",
    "gpt-4o": "gpt-4o-2024-05-13",
    "gpt-4o-0806": "gpt-4o-2024-08-06",
    "gpt-4o-1120": "gpt-4o-2024-11-20",
    "gpt-4o-mini": "gpt-4o-mini-2024-07-18",
    "gpt-4-0409": "gpt-4-turbo-2024-04-09",
}

#: USD per 1M (prompt, completion) tokens at OpenAI list prices; override with
#: ``build_judge(prices=...)`` or the env var ``NRVL_JUDGE_PRICES`` (JSON ``{"model": [in, out]}``).
DEFAULT_PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o-2024-05-13": (5.00, 15.00),
    "gpt-4o-2024-08-06": (2.50, 10.00),
    "gpt-4o-2024-11-20": (2.50, 10.00),
    "gpt-4o-mini-2024-07-18": (0.15, 0.60),
    "gpt-4-1106-preview": (10.00, 30.00),
    "gpt-4-turbo-2024-04-09": (10.00, 30.00),
    "exact_matching": (0.0, 0.0),
}

EXACT_MATCHING = "exact_matching"
DEFAULT_BASE_URL = _endpoint.DEFAULT_BASE_URL
REQUIRED_COLUMNS = ("index", "question", "answer", "prediction")


class JudgeConfigError(RuntimeError):
    """The judge cannot work as configured (no key, unreachable URL, unknown model).

    The message is one line meant for the user; it never contains the API key.
    """


# --------------------------------------------------------------------------------------------
# Scores
# --------------------------------------------------------------------------------------------

def is_integer_reply(reply: Any) -> bool:
    """True when VLMEvalKit would turn ``reply`` into an int score without crashing.

    VLMEvalKit scores ``int(x) if istype(x, int) else -1``, where ``istype``
    ``eval``s the string. For strings both steps succeed exactly when ``int()``
    accepts the text and the text, with leading spaces and tabs dropped (as
    ``eval`` drops them), is a Python int literal, possibly signed. The literal
    check uses :func:`ast.literal_eval`, which parses but runs nothing. Checked
    against real ``eval`` on ~10^5 generated strings of digits, signs,
    underscores and (Unicode) whitespace.
    """
    if isinstance(reply, numbers.Integral):  # ints (and bools, as in VLMEvalKit)
        return True
    if not isinstance(reply, str):
        return False
    try:
        int(reply)
    except ValueError:
        return False
    try:
        value = ast.literal_eval(reply.lstrip(" \t"))
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False
    return isinstance(value, int)


def parse_score(reply: Any) -> int:
    """Score one judge reply exactly as VLMEvalKit does, without ``eval``.

    ``'3'``, ``' 3'``, ``'3\\n'`` → 3; ``'4'`` → 4 (not clamped); ``'1_0'`` → 10;
    ``'-1'``, ``'2.'``, ``'Rating: 2'``, ``'02'``, ``'[3]'`` → -1. Where VLMEvalKit
    crashes (``'True'``, ``'(3)'``: ``eval`` gives an int or bool but ``int()`` of
    the text fails) this returns -1. None, NaN, the failure message and any
    other non-string give -1.

    Args:
        reply: the judge's reply text (stripped or not), or a missing value.

    Returns:
        The score, an int (usually 0..3, -1 when there is none).
    """
    if not is_integer_reply(reply):
        return -1
    return int(reply)


# --------------------------------------------------------------------------------------------
# Prompts, predictions, cache keys
# --------------------------------------------------------------------------------------------

def build_prompt(question: Any, answer: Any, prediction: Any) -> str:
    """The judge's user message: VLMEvalKit's template filled with ``str.format``.

    Values are formatted as the table holds them, so a numeric cell formats as
    the number (``3.0``), as in VLMEvalKit.
    """
    return USER_TEMPLATE.format(question, answer, prediction)


#: The strings pandas reads as NaN by default (``pandas._libs.parsers.STR_NA_VALUES``, pandas >= 2.0),
#: in ``read_excel`` and ``read_csv`` alike. VLMEvalKit reads its prediction file back with one of them
#: (``vlmeval/smp/file.py`` ``load``), so a prediction that is exactly one of these is NaN there.
PANDAS_NA_STRINGS = frozenset({
    "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
    "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null",
})


def is_missing_prediction(prediction: Any) -> bool:
    """True for predictions VLMEvalKit never sends to the judge (they score -1).

    None, NaN, and every string pandas reads as NaN by default
    (:data:`PANDAS_NA_STRINGS`: ``''``, ``'None'``, ``'N/A'``, ``'NA'``,
    ``'nan'``, ``'null'``, ...; exact match, case and spaces count). VLMEvalKit
    writes the predictions to xlsx (or tsv), reads them back with pandas'
    defaults, and skips NaN rows (``MMBenchVideo.evaluate``:
    ``data_un[~pd.isna(data_un['prediction'])]``), so a model that answers
    ``None`` scores -1 there whatever the judge would have said.
    """
    if prediction is None:
        return True
    if isinstance(prediction, float) and math.isnan(prediction):
        return True
    if isinstance(prediction, str):
        return prediction in PANDAS_NA_STRINGS
    try:
        import pandas as pd

        return bool(pd.isna(prediction)) if not isinstance(prediction, (list, tuple, dict)) else False
    except (TypeError, ValueError):
        return False


def prediction_sha256(prediction: Any) -> str:
    """sha256 hex of the prediction text as the judge sees it (``'{}'.format``)."""
    return hashlib.sha256("{}".format(prediction).encode("utf-8")).hexdigest()


def _index_key(index: Any) -> str:
    # Table indices come back as int, numpy int or str depending on the reader.
    if isinstance(index, numbers.Integral):
        return str(int(index))
    return str(index)


def _json_index(index: Any) -> Union[int, str]:
    if isinstance(index, numbers.Integral):
        return int(index)
    return str(index)


def load_judge_cache(cache_path: Union[str, Path], model: str) -> dict[tuple[str, str], str]:
    """Replies cached for ``model``: ``{(index, prediction_sha256): reply}``.

    Later records win over earlier ones, so a re-asked reply replaces the old one.
    Records of other judge models and truncated lines are ignored.
    """
    out: dict[tuple[str, str], str] = {}
    for rec in iter_jsonl(cache_path):
        if rec.get("judge") != model or not isinstance(rec.get("reply"), str):
            continue
        out[(_index_key(rec.get("index")), str(rec.get("prediction_sha256")))] = rec["reply"]
    return out


# --------------------------------------------------------------------------------------------
# Configuration: key, base URL, .env
# --------------------------------------------------------------------------------------------

# The endpoint rules live in nrvl.openai_endpoint (shared with the API model adapter).
read_dotenv = _endpoint.read_dotenv
_normalize_base_url = _endpoint.normalize_base_url
_redact_url = _endpoint.redact_url


def resolve_judge_endpoint(
    base_url: Optional[str] = None,
    api_key: Optional[str] = None,
    *,
    env: Optional[Mapping[str, str]] = None,
    dotenv_path: Optional[Union[str, Path]] = None,
) -> tuple[str, Optional[str]]:
    """The judge's ``(base_url, api_key)`` by :func:`nrvl.openai_endpoint.resolve_endpoint`'s rules.

    Raises:
        JudgeConfigError: the URL is not ``http://`` or ``https://``.
    """
    try:
        return _endpoint.resolve_endpoint(base_url, api_key, env=env, dotenv_path=dotenv_path,
                                          what="judge base URL")
    except _endpoint.EndpointConfigError as e:
        raise JudgeConfigError(str(e)) from None


# --------------------------------------------------------------------------------------------
# Results, usage, cost
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class JudgeItem:
    """One question to grade; the values are formatted into :data:`USER_TEMPLATE` as they are."""

    question: Any
    answer: Any
    prediction: Any

    @property
    def prompt(self) -> str:
        return build_prompt(self.question, self.answer, self.prediction)


@dataclass(frozen=True)
class JudgeResult:
    """The outcome of judging one item.

    ``reply`` is the stripped reply text (possibly non-integer prose), or None when
    no reply was obtained; then ``error`` says why. Failures score -1 and are
    never cached.
    """

    reply: Optional[str]
    error: Optional[str] = None
    attempts: int = 1
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def ok(self) -> bool:
        return self.reply is not None

    @property
    def score(self) -> int:
        return parse_score(self.reply) if self.reply is not None else -1


@dataclass
class TokenUsage:
    """Tokens and requests summed over the responses of one judge (cache hits cost nothing)."""

    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def add(self, prompt_tokens: int, completion_tokens: int) -> None:
        self.requests += 1
        self.prompt_tokens += int(prompt_tokens or 0)
        self.completion_tokens += int(completion_tokens or 0)

    def cost(self, model: str, prices: Mapping[str, Sequence[float]]) -> Optional[float]:
        """Estimated USD for ``model`` under ``prices`` (per 1M tokens), None if unpriced."""
        price = prices.get(model)
        if price is None:
            return None
        return (self.prompt_tokens * float(price[0]) + self.completion_tokens * float(price[1])) / 1e6


@dataclass
class JudgeStats:
    """What :func:`judge_table` did, for its summary and for tests."""

    rows: int = 0
    missing_prediction: int = 0
    cached: int = 0
    judged: int = 0
    failed: int = 0
    non_integer: int = 0


def _parse_prices(raw: str) -> dict[str, tuple[float, float]]:
    """``NRVL_JUDGE_PRICES`` as a dict, or ValueError naming the first bad entry (nothing half applied)."""
    try:
        parsed = json.loads(raw)
    except ValueError as e:
        raise ValueError(f"not JSON ({e})") from None
    if not isinstance(parsed, dict):
        raise ValueError(f"a JSON {_kind(parsed)}, not an object")
    out: dict[str, tuple[float, float]] = {}
    for k, v in parsed.items():
        ok = (isinstance(v, (list, tuple)) and len(v) == 2
              and all(isinstance(x, numbers.Real) and not isinstance(x, bool) and math.isfinite(x) and x >= 0
                      for x in v))
        if not ok:
            raise ValueError(f"entry {str(k)[:60]!r} is {json.dumps(v)[:60]}, not two finite prices >= 0")
        out[str(k)] = (float(v[0]), float(v[1]))
    return out


def _load_prices(prices: Optional[Mapping[str, Sequence[float]]], env: Mapping[str, str]) -> dict:
    table = dict(DEFAULT_PRICES)
    raw = (env.get("NRVL_JUDGE_PRICES") or "").strip()
    if raw:
        try:
            table.update(_parse_prices(raw))  # all entries or none
        except ValueError as e:
            logger.warning('ignoring NRVL_JUDGE_PRICES, the default prices apply: %s; expected JSON '
                           '{"model": [usd_in_per_1M, usd_out_per_1M]}', e)
    for k, v in (prices or {}).items():
        table[str(k)] = (float(v[0]), float(v[1]))
    return table


# --------------------------------------------------------------------------------------------
# Judges
# --------------------------------------------------------------------------------------------

class Judge:
    """Base class: grades :class:`JudgeItem` s. Subclasses implement ``_judge_items``.

    Attributes:
        name: the name asked for (``gpt-4o``); used in file names, as VLMEvalKit does.
        model: the model string sent (``gpt-4o-2024-05-13``); the cache key.
        nproc: the most requests in flight at once.
        retry_invalid: re-ask when a reply is not an integer, and re-judge cached
            non-integer replies.
        usage: token usage of this judge's responses so far.
        stats: what the last :func:`judge_table` did.
    """

    name: str
    model: str

    def __init__(self, name: str, model: str, *, nproc: int = 32, retry_invalid: bool = False,
                 prices: Optional[Mapping[str, Sequence[float]]] = None,
                 env: Optional[Mapping[str, str]] = None):
        if not isinstance(nproc, int) or nproc < 1:
            raise ValueError(f"nproc must be an int >= 1, got {nproc!r}")
        self.name = name
        self.model = model
        self.nproc = nproc
        self.retry_invalid = bool(retry_invalid)
        self.prices = _load_prices(prices, os.environ if env is None else env)
        self.usage = TokenUsage()
        self.stats = JudgeStats()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, model={self.model!r}, nproc={self.nproc})"

    def preflight(self) -> None:
        """Check the judge can work before inference starts; raise :class:`JudgeConfigError` if not."""

    def judge_one(self, item: JudgeItem) -> JudgeResult:
        """Judge one item synchronously."""
        return self.judge_many([item], progress=False)[0]

    def judge_many(self, items: Sequence[JudgeItem], *,
                   on_result: Optional[Callable[[int, JudgeResult], None]] = None,
                   progress: bool = False) -> list[JudgeResult]:
        """Judge ``items`` (at most ``nproc`` at once); results in input order.

        ``on_result(i, result)`` is called as each result arrives, from one
        thread at a time, so it may append to a file without locking.

        Raises:
            JudgeConfigError: the server rejected the key or does not know the model.
        """
        raise NotImplementedError

    def usage_summary(self, usage: Optional[TokenUsage] = None, label: str = "") -> str:
        """One line: requests, tokens, estimated cost (of ``usage``, default all of this judge's,
        ``label`` after the judge's name). Never contains the key."""
        u = self.usage if usage is None else usage
        cost = u.cost(self.model, self.prices)
        cost_txt = f"estimated cost ${cost:.4f}" if cost is not None else \
            f"cost unknown (no price for {self.model}; set NRVL_JUDGE_PRICES)"
        return (f"judge {self.name} ({self.model}){label}: {u.requests} requests, {u.prompt_tokens} prompt + "
                f"{u.completion_tokens} completion tokens, {cost_txt}")


class ExactMatchJudge(Judge):
    """Offline judge: normalized exact match → 3, else token-overlap F1 bins → 2/1/0.

    Normalization is SQuAD's (lower case, punctuation and the articles a/an/the
    removed, whitespace collapsed) after Unicode NFKC. F1 over the token
    multisets: ``>= 0.5`` → 2, ``>= 0.2`` → 1, else 0. Deterministic, free, and
    **not comparable with GPT-4o scores**; the name ``exact_matching`` is in
    every file it produces.
    """

    def __init__(self, **kwargs):
        super().__init__(EXACT_MATCHING, EXACT_MATCHING, **kwargs)

    @staticmethod
    def _tokens(text: Any) -> list[str]:
        text = unicodedata.normalize("NFKC", "{}".format(text)).lower()
        text = "".join(" " if (ch in string.punctuation or unicodedata.category(ch).startswith("P")) else ch
                       for ch in text)
        return [t for t in text.split() if t not in ("a", "an", "the")]

    @classmethod
    def grade(cls, answer: Any, prediction: Any) -> str:
        """The reply ('0'..'3') for one answer/prediction pair."""
        gold, pred = cls._tokens(answer), cls._tokens(prediction)
        if gold == pred:
            return "3"
        common = sum((Counter(gold) & Counter(pred)).values())
        if common == 0:
            return "0"
        precision, recall = common / len(pred), common / len(gold)
        f1 = 2 * precision * recall / (precision + recall)
        return "2" if f1 >= 0.5 else "1" if f1 >= 0.2 else "0"

    def judge_many(self, items, *, on_result=None, progress=False):
        results = []
        for i, item in enumerate(items):
            r = JudgeResult(reply=self.grade(item.answer, item.prediction))
            self.usage.add(0, 0)
            results.append(r)
            if on_result is not None:
                on_result(i, r)
        return results


class _Retry(Exception):
    """Internal: this attempt failed in a way worth another try."""

    def __init__(self, reason: str, retry_after: Optional[float] = None):
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class _ItemFailed(Exception):
    """Internal: this item cannot be judged (e.g. HTTP 400); do not retry it."""


class OpenAIJudge(Judge):
    """A judge behind any OpenAI-compatible chat-completions endpoint.

    Uses the ``openai`` client with its own retries off (``max_retries=0``);
    retries happen here: up to ``retries`` tries per item on 429, 5xx, 408/409,
    timeouts, connection errors, malformed responses (a body that is not JSON or
    not UTF-8, ``choices`` or ``content`` of an unexpected type), empty replies
    and replies containing :data:`FAIL_MSG`, sleeping
    ``backoff_base * 2**attempt`` (capped at ``backoff_max``) with jitter between
    50% and 100% of it, and at least what ``Retry-After``/``retry-after-ms``
    says (capped at ``max_retry_after``). 401/403/404 abort the whole run with a
    :class:`JudgeConfigError`; other 4xx fail that item only. An item with no
    usable reply after its tries scores -1; it never stops the other items.

    The key lives only inside the openai client objects; it is not an attribute
    of this object, not in its repr, and every error text is scrubbed of it.
    """

    def __init__(self, name: str, model: str, *, base_url: str, api_key: Optional[str], nproc: int = 32,
                 retries: int = 6, timeout: float = 120.0, retry_invalid: bool = False,
                 temperature: float = 0.0, max_tokens: int = 2048, backoff_base: float = 1.0,
                 backoff_max: float = 60.0, max_retry_after: float = 120.0,
                 prices: Optional[Mapping[str, Sequence[float]]] = None,
                 env: Optional[Mapping[str, str]] = None):
        super().__init__(name, model, nproc=nproc, retry_invalid=retry_invalid, prices=prices, env=env)
        if not isinstance(retries, int) or retries < 1:
            raise ValueError(f"retries (tries per item) must be an int >= 1, got {retries!r}")
        if not timeout or timeout <= 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout!r}")
        if backoff_base < 0 or backoff_max < 0 or max_retry_after < 0:
            raise ValueError("backoff_base, backoff_max and max_retry_after must be >= 0")
        self.base_url = base_url
        self.retries = retries
        self.timeout = float(timeout)
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.backoff_base = float(backoff_base)
        self.backoff_max = float(backoff_max)
        self.max_retry_after = float(max_retry_after)
        # Closures keep the key off the instance, so vars(judge), repr and any dump of it never see it.
        key = api_key
        self._has_key = bool(key)
        self._redact = lambda text: _scrub(text, key)
        self._make_client = lambda timeout=None: _new_client(False, base_url, key, timeout or self.timeout)
        self._make_async_client = lambda: _new_client(True, base_url, key, self.timeout)
        self._sync_client = None

    def __repr__(self) -> str:
        return (f"OpenAIJudge(name={self.name!r}, model={self.model!r}, base_url={_redact_url(self.base_url)!r}, "
                f"nproc={self.nproc}, retries={self.retries})")

    # -- request --------------------------------------------------------------------------
    def _payload(self, messages: list) -> dict:
        payload: dict = {"model": self.model, "messages": messages}
        if re.match(r"^(o1|o3|o4|gpt-5)", self.model):
            # Reasoning models take max_completion_tokens and no temperature (as VLMEvalKit sends them).
            payload["max_completion_tokens"] = self.max_tokens
        else:
            payload["temperature"] = self.temperature
            payload["max_tokens"] = self.max_tokens
        return payload

    @staticmethod
    def _chat(text: str) -> list:
        # The judge's messages around one user text, as VLMEvalKit's wrapper builds them.
        return [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": [{"type": "text", "text": text}]},
        ]

    @classmethod
    def _messages(cls, item: JudgeItem) -> list:
        return cls._chat(item.prompt)

    def _backoff(self, attempt: int, retry_after: Optional[float]) -> float:
        delay = min(self.backoff_max, self.backoff_base * (2 ** attempt))
        delay = random.uniform(delay / 2, delay)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.max_retry_after))
        return delay

    def _classify(self, exc: BaseException) -> BaseException:
        """Map an exception from one attempt to _Retry, _ItemFailed or JudgeConfigError."""
        import openai

        if isinstance(exc, openai.APITimeoutError):
            return _Retry(f"timed out after {self.timeout:g}s")
        if isinstance(exc, openai.APIConnectionError):
            return _Retry(f"connection error: {self._redact(_cause_text(exc))}")
        if isinstance(exc, openai.APIStatusError):
            status = exc.status_code
            message = self._redact(_error_message(exc))
            if status in (401, 403, 404):
                return JudgeConfigError(self._config_message(status, message))
            if status == 429 and "insufficient_quota" in message:
                return JudgeConfigError(f"judge {self.name}: the API account has no quota left (HTTP 429): {message}")
            if status in (408, 409, 425, 429) or status >= 500:
                return _Retry(f"HTTP {status}: {message}", _retry_after_seconds(exc.response))
            return _ItemFailed(f"HTTP {status}: {message}")
        if isinstance(exc, (openai.APIResponseValidationError, json.JSONDecodeError)):
            return _Retry("malformed response from the server")
        if isinstance(exc, _BODY_ERRORS):
            # Raised by the client while decoding a 2xx body (not UTF-8, nesting too deep, a field of the
            # wrong type): a bad reply like any other, retried, then -1 for this item (VLMEvalKit catches all).
            return _Retry(f"malformed response from the server ({type(exc).__name__}: "
                          f"{_one_line(self._redact(exc))[:120]})")
        return exc

    def _config_message(self, status: int, message: str) -> str:
        where = _redact_url(self.base_url)
        if status == 401:
            return (f"judge {self.name}: the API key was rejected by {where} (HTTP 401); "
                    f"check OPENAI_API_KEY or --judge-key")
        if status == 403:
            return f"judge {self.name}: access to model {self.model!r} denied by {where} (HTTP 403): {message}"
        return (f"judge {self.name}: model {self.model!r} not found at {where} (HTTP 404: {message}); "
                f"check --judge and --judge-base-url")

    def _accept(self, response, result_usage: list) -> str:
        """The stripped reply text of a 2xx response, or raise _Retry if it is not an answer.

        Used for judge requests and the pre-flight alike. Never raises anything else,
        whatever the response holds.
        """
        usage = _field(response, "usage")
        p, c = _token_count(_field(usage, "prompt_tokens")), _token_count(_field(usage, "completion_tokens"))
        self.usage.add(p, c)
        result_usage[0] += p
        result_usage[1] += c
        content = _reply_text(response, self._redact).strip()
        if not content:
            raise _Retry("empty reply")
        if FAIL_MSG in content:
            raise _Retry("reply is the failure message")
        return content

    # -- sync -----------------------------------------------------------------------------
    def _client(self):
        if self._sync_client is None:
            self._sync_client = self._make_client()
        return self._sync_client

    def judge_one(self, item: JudgeItem) -> JudgeResult:
        self._require_key()
        return self._run_tries(item, self._client())

    def _run_tries(self, item: JudgeItem, client) -> JudgeResult:
        usage = [0, 0]
        error, kept = None, None
        payload = self._payload(self._messages(item))
        for attempt in range(self.retries):
            try:
                response = client.chat.completions.create(**payload)
                reply = self._accept(response, usage)
                if self.retry_invalid and not is_integer_reply(reply) and attempt + 1 < self.retries:
                    kept, error = reply, f"non-integer reply {reply[:40]!r}"
                    raise _Retry(error)
                return JudgeResult(reply, None, attempt + 1, *usage)
            except Exception as exc:  # noqa: BLE001 - classified in _after_failure
                final, error, delay = self._after_failure(exc, attempt, usage, kept)
                if final is not None:
                    return final
                if delay is not None:
                    time.sleep(delay)
        return JudgeResult(kept, None if kept is not None else error, self.retries, *usage)

    def _after_failure(self, exc: BaseException, attempt: int, usage, kept: Optional[str] = None):
        """What a failed try means, for the sync and async loops alike.

        ``kept`` is a reply received on an earlier try (re-asked with ``retry_invalid``);
        it is the result if this try ends the item.

        Returns ``(final result or None, error text, seconds to wait before the next try or None)``;
        a non-retryable configuration error is raised.
        """
        exc = exc if isinstance(exc, _Retry) else self._classify(exc)
        if isinstance(exc, _ItemFailed):
            if kept is not None:  # the re-ask cannot be made: keep the reply already received
                return JudgeResult(kept, None, attempt + 1, *usage), None, None
            return JudgeResult(None, str(exc), attempt + 1, *usage), str(exc), None
        if not isinstance(exc, _Retry):
            raise exc from None
        delay = self._backoff(attempt, exc.retry_after) if attempt + 1 < self.retries else None
        return None, exc.reason, delay

    # -- async ----------------------------------------------------------------------------
    async def _arun_tries(self, item: JudgeItem, client) -> JudgeResult:
        usage = [0, 0]
        error, kept = None, None
        payload = self._payload(self._messages(item))
        for attempt in range(self.retries):
            try:
                response = await client.chat.completions.create(**payload)
                reply = self._accept(response, usage)
                if self.retry_invalid and not is_integer_reply(reply) and attempt + 1 < self.retries:
                    kept, error = reply, f"non-integer reply {reply[:40]!r}"
                    raise _Retry(error)
                return JudgeResult(reply, None, attempt + 1, *usage)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - classified in _after_failure
                final, error, delay = self._after_failure(exc, attempt, usage, kept)
                if final is not None:
                    return final
                if delay is not None:
                    await asyncio.sleep(delay)
        return JudgeResult(kept, None if kept is not None else error, self.retries, *usage)

    def judge_many(self, items, *, on_result=None, progress=False):
        self._require_key()
        items = list(items)
        if not items:
            return []
        return _run_coroutine(lambda: self._ajudge_many(items, on_result, progress))

    async def _ajudge_many(self, items, on_result, progress) -> list[JudgeResult]:
        results: list = [None] * len(items)
        gate = asyncio.Semaphore(self.nproc)
        bar = _progress_bar(len(items), f"judge {self.name}", progress)
        client = self._make_async_client()

        async def one(i: int) -> None:
            async with gate:
                r = await self._arun_tries(items[i], client)
            results[i] = r
            bar.update(1)
            if on_result is not None:
                on_result(i, r)

        tasks = [asyncio.ensure_future(one(i)) for i in range(len(items))]
        try:
            await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            bar.close()
            await client.close()
        return results

    # -- preflight ------------------------------------------------------------------------
    def _require_key(self) -> None:
        if not self._has_key:
            raise JudgeConfigError(
                f"judge {self.name}: no API key; set OPENAI_API_KEY (environment or .env) or pass --judge-key")

    def preflight(self, tries: int = 3) -> None:
        """VLMEvalKit's ``working()`` check: ``'hello'`` sent as a judge request must get a usable answer.

        The request is a judge request with ``'hello'`` as the user text: the same
        model, system prompt, temperature and ``max_tokens`` as every real request,
        so a server that rejects those (a small local context) fails here, before
        inference, rather than on every question. The reply must pass the test a
        judge reply passes (:meth:`_accept`): a chat completion whose content is
        non-empty and does not contain :data:`FAIL_MSG`. Its tokens count in
        :attr:`usage`. Up to ``tries`` tries; a timeout or a 4xx ends the check at
        once. HTTP 429 on every try passes with a warning: the key, URL and model
        were accepted, and judging retries 429.

        Raises:
            JudgeConfigError: one line naming the endpoint (credentials hidden) and
                what was wrong: missing key, unreachable base URL, rejected key,
                unknown model, an HTTP error, or no usable answer after ``tries`` tries.
        """
        import openai

        self._require_key()
        timeout = min(self.timeout, 30.0)
        client = self._make_client(timeout)
        where = _redact_url(self.base_url)
        payload = self._payload(self._chat("hello"))
        tokens = "max_tokens" if "max_tokens" in payload else "max_completion_tokens"
        last, rate_limited = "no answer", False
        try:
            for attempt in range(tries):
                rate_limited = False
                try:
                    try:
                        response = client.chat.completions.create(**payload)
                    except (openai.APIResponseValidationError, *_BODY_ERRORS) as exc:
                        raise self._classify(exc) from None  # a 2xx body the client cannot decode: _Retry
                    self._accept(response, [0, 0])
                    return
                except _Retry as exc:  # a 2xx reply that is not an answer
                    n = attempt + 1
                    last = (f"{where} gave no usable answer to 'hello' in {n} tr{'y' if n == 1 else 'ies'} "
                            f"({exc.reason})")
                    if exc.reason.startswith("malformed"):
                        last += "; is it an OpenAI-compatible /v1 endpoint?"
                except openai.APITimeoutError:
                    # Fail fast: a server that cannot answer 'hello' in time will not judge 2,000 questions.
                    last = f"{where} did not answer within {timeout:g}s"
                    break
                except openai.APIConnectionError as exc:
                    last = f"cannot reach {where}: {self._redact(_cause_text(exc))}"
                except openai.RateLimitError as exc:
                    message = self._redact(_error_message(exc))
                    if "insufficient_quota" in message:
                        raise JudgeConfigError(_one_line(
                            f"judge {self.name}: the API account has no quota left (HTTP 429): {message}")) from None
                    rate_limited = True
                except openai.APIStatusError as exc:
                    message = self._redact(_error_message(exc))
                    if exc.status_code in (401, 403, 404):
                        raise JudgeConfigError(_one_line(self._config_message(exc.status_code, message))) from None
                    last = (f"{where} answered HTTP {exc.status_code} to a judge request "
                            f"(model {self.model!r}, {tokens} {self.max_tokens}): {message}")
                    if exc.status_code < 500 and exc.status_code not in (408, 409, 425):
                        break
                if attempt + 1 < tries:
                    time.sleep(min(2.0, self.backoff_base) * (attempt + 1))
        finally:
            client.close()
        if rate_limited:
            logger.warning("judge %s: %s answered HTTP 429 (rate limit) to every pre-flight try; going on, "
                           "judge requests retry it", self.name, where)
            return
        raise JudgeConfigError(_one_line(f"judge {self.name}: {last}"))


#: Errors the openai client raises while decoding a 2xx body it cannot read as a chat completion
#: (not UTF-8, not JSON, nested too deep, a field of the wrong type).
_BODY_ERRORS = (ValueError, TypeError, AttributeError, LookupError, RecursionError)

def _token_count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return 0
    try:
        return max(0, int(value))
    except (ValueError, OverflowError):  # NaN, inf
        return 0


def _reply_text(response: Any, redact: Callable[[Any], str]) -> str:
    """:func:`nrvl.openai_endpoint.reply_text`; a malformed response raises ``_Retry``, to be
    retried like any failed try."""
    try:
        return _endpoint.reply_text(response, redact)
    except _endpoint.MalformedReply as e:
        raise _Retry(f"malformed response: {e}") from None


def _new_client(is_async: bool, base_url: str, api_key: Optional[str], timeout: float):
    import openai

    cls = openai.AsyncOpenAI if is_async else openai.OpenAI
    # max_retries=0: retries (with Retry-After and jitter) are ours, so counts and sleeps are known.
    return cls(base_url=base_url, api_key=api_key or "missing", max_retries=0, timeout=timeout)


def _scrub(text: Any, key: Optional[str]) -> str:
    text = "{}".format(text)
    if key:
        text = text.replace(key, "***")
    return re.sub(r"(?i)(bearer\s+)\S+", r"\1***", text)


def _cause_text(exc: BaseException) -> str:
    cause = exc.__cause__ or exc.__context__
    return f"{type(cause).__name__}: {cause}" if cause is not None else str(exc)


def _error_message(exc) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict):
            msg = inner.get("message") or str(exc)
            code = inner.get("code")
            return f"{msg} ({code})" if code else str(msg)
    return str(getattr(exc, "message", exc))


def _retry_after_seconds(response) -> Optional[float]:
    """Seconds asked for by ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date)."""
    if response is None:
        return None
    headers = response.headers
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        try:
            return max(0.0, float(raw_ms) / 1000.0)
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


def _run_coroutine(make_coro: Callable[[], Any]):
    """Run a coroutine to completion, also when the caller already runs an event loop (Jupyter)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make_coro())
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(make_coro())).result()


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def _progress_bar(total: int, desc: str, enabled: bool):
    if not enabled:
        return _NoBar()
    try:
        from tqdm import tqdm
    except ImportError:
        return _NoBar()
    return tqdm(total=total, desc=desc, file=sys.stderr, dynamic_ncols=True)


def _local_llm(env: Optional[Mapping[str, str]], dotenv_path: Optional[Union[str, Path]]) -> Optional[str]:
    """VLMEvalKit's ``LOCAL_LLM``: the environment's, else the ``.env`` file's (as the other judge settings)."""
    env = os.environ if env is None else env
    value = (env.get("LOCAL_LLM") or "").strip()
    if not value:
        dotenv = read_dotenv(Path.cwd() / ".env" if dotenv_path is None else dotenv_path)
        value = (dotenv.get("LOCAL_LLM") or "").strip()
    return value or None


def build_judge(
    name: str,
    *,
    base_url: Optional[str] = None,
    api_key: Optional[str] = None,
    nproc: int = 32,
    retries: int = 6,
    timeout: float = 120.0,
    retry_invalid: bool = False,
    temperature: float = 0.0,
    max_tokens: int = 2048,
    backoff_base: float = 1.0,
    backoff_max: float = 60.0,
    max_retry_after: float = 120.0,
    prices: Optional[Mapping[str, Sequence[float]]] = None,
    env: Optional[Mapping[str, str]] = None,
    dotenv_path: Optional[Union[str, Path]] = None,
) -> Judge:
    """Make the judge called ``name``.

    Args:
        name: ``'exact_matching'`` (offline), a VLMEvalKit alias such as
            ``'gpt-4o'`` or ``'gpt-4-turbo'`` (see :data:`JUDGE_ALIASES`), or any
            model name, sent as is (e.g. a model served by vLLM). As in VLMEvalKit,
            when ``LOCAL_LLM`` is set (environment, else ``.env``; empty counts as
            unset) its value is the model sent for every name but
            ``exact_matching``; ``name`` still names the files.
        base_url: ``--judge-base-url``; see :func:`resolve_judge_endpoint` for the
            fallbacks (``OPENAI_BASE_URL``, ``OPENAI_API_BASE``, ``.env``).
        api_key: ``--judge-key``; else ``OPENAI_API_KEY`` from the environment or ``.env``.
        nproc: requests in flight at once (``--judge-nproc``).
        retries: tries per item, the first included (VLMEvalKit's ``retry``, 6).
        timeout: seconds per HTTP request.
        retry_invalid: re-ask on non-integer replies, and re-judge cached ones (Python
            API only, no command-line flag; VLMEvalKit keeps them, as the default does).
        temperature, max_tokens: VLMEvalKit's 0 and 2048.
        backoff_base, backoff_max, max_retry_after: retry sleeps in seconds.
        prices: ``{model: (usd_per_1M_prompt, usd_per_1M_completion)}`` added to
            :data:`DEFAULT_PRICES`.
        env: the environment to read (default ``os.environ``); tests pass a dict.
            ``OPENAI_*``, ``LOCAL_LLM`` and ``NRVL_JUDGE_PRICES`` come from it.
        dotenv_path: the ``.env`` file (default ``./.env``), read for ``OPENAI_*`` and ``LOCAL_LLM``.

    Returns:
        A :class:`Judge`. Nothing is contacted until :meth:`Judge.preflight` or judging.

    Raises:
        ValueError: an argument out of range, named in the message.
        JudgeConfigError: a base URL that is not http(s).
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"judge name must be a non-empty string, got {name!r}")
    name = name.strip()
    if name == EXACT_MATCHING:
        return ExactMatchJudge(nproc=nproc, retry_invalid=retry_invalid, prices=prices, env=env)
    url, key = resolve_judge_endpoint(base_url, api_key, env=env, dotenv_path=dotenv_path)
    model = JUDGE_ALIASES.get(name, name)
    local = _local_llm(env, dotenv_path)
    if local:
        model = local
        logger.info("judge %s: LOCAL_LLM is set, so every judge request is sent as model %r "
                    "(file names keep %r)", name, model, name)
    return OpenAIJudge(
        name, model, base_url=url, api_key=key, nproc=nproc, retries=retries,
        timeout=timeout, retry_invalid=retry_invalid, temperature=temperature, max_tokens=max_tokens,
        backoff_base=backoff_base, backoff_max=backoff_max, max_retry_after=max_retry_after,
        prices=prices, env=env,
    )


# --------------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------------

def judge_table(table, judge: Judge, cache_path: Union[str, Path], *, progress: bool = True):
    """Grade every prediction of ``table`` and return a copy with an int ``score`` column.

    VLMEvalKit semantics: rows whose prediction is missing (None, NaN, or a
    string in :data:`PANDAS_NA_STRINGS` such as ``''`` or ``'None'``) are not
    judged and score -1; rows whose judging failed score -1; other rows
    score :func:`parse_score` of the reply. Replies are appended (and fsynced)
    to ``cache_path`` as JSON Lines keyed by (judge model, ``index``, sha256 of
    the prediction text) as they arrive; cached replies are reused, so a rerun,
    or a run killed half way, judges only what is missing. Failures are not
    cached. With ``judge.retry_invalid`` cached non-integer replies are asked again.

    Args:
        table: pandas DataFrame with columns ``index``, ``question``, ``answer``,
            ``prediction`` (others are kept).
        judge: from :func:`build_judge`.
        cache_path: the JSON Lines reply cache of this run (created if missing).
        progress: show a progress bar and print the summary lines.

    Returns:
        A new DataFrame, same rows and order, plus ``score`` (int64). ``judge.stats``
        holds the counts.

    Raises:
        ValueError: a required column is missing.
        JudgeConfigError: the server rejected the key or does not know the model
            (replies obtained before that are cached).
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"table lacks column(s) {missing}; judge_table needs {list(REQUIRED_COLUMNS)}")
    out = table.copy()
    indices = list(out["index"])
    questions, answers, predictions = list(out["question"]), list(out["answer"]), list(out["prediction"])
    n = len(out)

    cache = load_judge_cache(cache_path, judge.model)
    if judge.retry_invalid:
        cache = {k: v for k, v in cache.items() if is_integer_reply(v)}

    stats = JudgeStats(rows=n)
    replies: list[Optional[str]] = [None] * n
    pending: dict[tuple[str, str], list[int]] = {}  # one request per distinct key
    for pos in range(n):
        if is_missing_prediction(predictions[pos]):
            stats.missing_prediction += 1
            continue
        key = (_index_key(indices[pos]), prediction_sha256(predictions[pos]))
        if key in cache:
            replies[pos] = cache[key]
            stats.cached += 1
        else:
            pending.setdefault(key, []).append(pos)

    keys = list(pending)
    items = [JudgeItem(questions[pending[k][0]], answers[pending[k][0]], predictions[pending[k][0]]) for k in keys]

    def record(i: int, result: JudgeResult) -> None:
        if not result.ok:
            return
        first = pending[keys[i]][0]
        append_jsonl(cache_path, {
            "judge": judge.model,
            "judge_name": judge.name,
            "index": _json_index(indices[first]),
            "prediction_sha256": keys[i][1],
            "reply": result.reply,
            "prompt_tokens": result.prompt_tokens,
            "completion_tokens": result.completion_tokens,
            "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        })
        kill_point("judge.cached")

    if items:
        results = judge.judge_many(items, on_result=record, progress=progress)
        for key, result in zip(keys, results):
            for pos in pending[key]:
                replies[pos] = result.reply
            stats.judged += len(pending[key])
            if not result.ok:
                stats.failed += len(pending[key])
                logger.warning("judge %s: no reply for index %s after %d tries: %s",
                               judge.name, indices[pending[key][0]], result.attempts, result.error)

    scores = [parse_score(r) if r is not None else -1 for r in replies]
    stats.non_integer = sum(1 for r in replies if r is not None and not is_integer_reply(r))
    out["score"] = scores
    out["score"] = out["score"].astype("int64")
    judge.stats = stats

    summary = (
        f"Among {n} questions, failed to obtain prediction for {stats.missing_prediction} questions, "
        f"failed to obtain the score for another {stats.failed} questions "
        f"({stats.non_integer} judge replies were not an integer and score -1). "
        f"Those questions count as 0 in the ALL ratings and are left out of the VALID ratings. "
        f"Judged {len(items)} now, {stats.cached} from the cache"
        + ("; rerun to retry the failures." if stats.failed else ".")
    )
    logger.info(summary)
    logger.info(judge.usage_summary())
    if progress:
        print(summary)
        print(judge.usage_summary())
    return out
