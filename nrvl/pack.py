"""Pack mode (``MMBench_Video_*_pack``): one query per video holding all its questions.

VLMEvalKit (``MMBenchVideo.build_prompt_pack`` and ``load_pack_answers``;
``reference/mmbench-video.md`` 1.3, 1.5c, 1.6), for API models only:

* the prompt is ``SYS + FRAMES_TMPL_PACK.format(n)``, the ``n`` frames, then
  ``Questions: \\n<json>\\nAnswers: \\n`` where ``<json>`` is
  ``json.dumps({index: question})`` over the video's rows (keys are the TSV
  ``index`` values, as strings once dumped; the template's ``I1, I2`` example
  notwithstanding);
* the reply is parsed at merge time: exactly one JSON object found by
  scanning for ``{`` (``raw_decode``), else, when the text has exactly one
  ``{``, one ``key: value`` per line (quotes and commas stripped at both
  ends); each question's prediction is the parsed ``[str(index)]``, or none
  (scored -1, not judged). A reply holding VLMEvalKit's API failure text is not
  parsed.

Everything here is plain Python on strings; :mod:`nrvl.evaluate` turns a
dataset into packs (:func:`pack_samples`) and the stored replies back into one
prediction per question (:func:`unpack_predictions`).
"""
from __future__ import annotations

import json
from collections import Counter
from json import JSONDecoder
from typing import Any, Iterator, Mapping, Optional

__all__ = ["SYS", "SYS_MD5", "FRAMES_TMPL_PACK", "PACK_PROMPT_MD5_8", "QUESTIONS_TMPL", "pack_questions", "pack_samples", "extract_json_objects",
           "robust_json_load", "unpack_predictions", "PACK_STATS"]

#: VLMEvalKit ``MMBenchVideo.SYS`` (73 characters, no trailing newline).
SYS = "You are an AI assistant responsible for answering questions about videos."
SYS_MD5 = "040980df1ee47701d28359b8d17fb194"
#: VLMEvalKit ``MMBenchVideo.FRAMES_TMPL_PACK``; ``SYS + FRAMES_TMPL_PACK.format(8)`` is 782 characters.
FRAMES_TMPL_PACK = """
You will be provided with {} separate frames uniformly sampled from a video, \
the frames are provided in chronological order of the video.
Please analyze these images and provide the answer / answers to the \
following question / questions about the video content.
If multiple questions are provided (with indices I1, I2, I3, ...), \
you should organize your answers in the following json format:
{{
    'I1': 'Answer to Question I1',
    'I2': 'Answer to Question I2',
    ...
}}
Otherwise, please directly reply with your response to the only question.
Even if the information in these separate frames is not enough to give an answer,
PLEASE GIVE A RESPONSE TO EACH OF THE QUESTIONS IN THE FORMAT DESCRIBED ABOVE.
"""
PACK_PROMPT_MD5_8 = "b24520bf6cf25ea87084a184aa584775"  # of SYS + FRAMES_TMPL_PACK.format(8)
QUESTIONS_TMPL = "Questions: \n{}\nAnswers: \n"
#: The counters VLMEvalKit prints after parsing (``vstats``).
PACK_STATS = ("PARSE_OK", "PARSE_FAIL", "GEN_FAIL", "VALIDQ", "INVALIDQ")


def pack_questions(rows) -> str:
    """``json.dumps({int(index): question})`` over ``rows`` (dicts with ``index`` and ``question``), in order."""
    return json.dumps({int(r["index"]): r["question"] for r in rows})


def pack_samples(samples) -> list:
    """One :class:`nrvl.data.Sample` per video of ``samples`` (TSV order), sorted by video id.

    Each pack's ``index`` and ``video`` are the video id (VLMEvalKit's pack keys are
    the sorted video names), its ``question`` the :func:`pack_questions` JSON of
    that video's questions among ``samples``, its ``answer`` empty.
    """
    from nrvl.data import Sample

    by_video: dict[str, list] = {}
    for s in samples:
        by_video.setdefault(s.video, []).append(s)
    return [Sample(index=video, video=video, answer="", video_path=rows[0].video_path,
                   question=pack_questions([{"index": r.index, "question": r.question} for r in rows]))
            for video, rows in sorted(by_video.items())]


def extract_json_objects(text: str, decoder: JSONDecoder = JSONDecoder()) -> Iterator[Any]:
    """Every JSON value that starts at a ``{`` of ``text``, left to right, skipping what each one spans."""
    pos = 0
    while True:
        match = text.find("{", pos)
        if match == -1:
            break
        try:
            result, index = decoder.raw_decode(text[match:])
        except ValueError:
            pos = match + 1
            continue
        yield result
        pos = match + index


def _remove_side_quote(s: str, syms: str = ",\"'") -> str:
    if all(c in syms for c in s):
        return ""
    while s[0] in syms:
        s = s[1:]
    while s[-1] in syms:
        s = s[:-1]
    return s


def robust_json_load(s: str) -> Optional[dict]:
    """VLMEvalKit's ``robust_json_load``: the one JSON object in ``s``, else the line fallback, else None.

    The fallback applies when ``s`` has exactly one ``{``: each line after it
    holding ``": "`` gives ``key -> value``, taken between the first and the
    second ``": "``, with quotes and commas stripped from both ends; empty keys
    or values are dropped (so single-quoted "json", as the template shows, is
    read this way).
    """
    jsons = list(extract_json_objects(s))
    if len(jsons) == 1:
        return jsons[0]
    if "{" in s and s.find("{") == s.rfind("{"):
        res = {}
        for line in s[s.find("{") + 1:].strip().split("\n"):
            line = line.strip()
            if ": " in line:
                parts = line.split(": ")
                key, val = _remove_side_quote(parts[0].strip()), _remove_side_quote(parts[1].strip())
                if len(key) and len(val):
                    res[key] = val
        return res
    return None


def _lookup(parsed: Any, key: str):
    """``parsed[key]`` if ``key in parsed``, as VLMEvalKit's ``idx in data[vid]`` (a list answers membership
    of its items; a string of its substrings), else None."""
    try:
        if key in parsed:
            return parsed[key]
    except TypeError:
        return None
    return None


def unpack_predictions(table, replies: Mapping[str, str], fail_msg: str) -> tuple:
    """One prediction per question from the per-video replies, and VLMEvalKit's counters.

    Args:
        table: the questions (pandas DataFrame with ``index`` and ``video``), in order.
        replies: video id -> the model's raw reply (stripped here, as VLMEvalKit does).
        fail_msg: the API failure text; replies containing it count as ``GEN_FAIL``.

    Returns:
        ``(table copy with a "prediction" column, stats)``. A question whose video's
        reply did not parse, or does not hold its index, gets ``""``, which the judge
        treats as no prediction (VLMEvalKit: None, not judged, score -1). A parsed
        value that is not a string is written as ``str(value)``. ``stats`` counts
        :data:`PACK_STATS`.
    """
    stats: Counter = Counter({k: 0 for k in PACK_STATS})
    parsed: dict[str, Any] = {}
    for video, reply in replies.items():
        ans = str(reply).strip()
        if fail_msg in ans:
            stats["GEN_FAIL"] += 1
            continue
        res = robust_json_load(ans)
        if res is not None:
            parsed[video] = res
            stats["PARSE_OK"] += 1
        else:
            stats["PARSE_FAIL"] += 1
    predictions = []
    for video, index in zip(table["video"], table["index"]):
        value = _lookup(parsed.get(str(video), {}), str(index))
        predictions.append(None if value is None else value if isinstance(value, str) else str(value))
    stats["VALIDQ"] = sum(p is not None for p in predictions)
    stats["INVALIDQ"] = sum(p is None for p in predictions)
    out = table.copy()
    out["prediction"] = ["" if p is None else p for p in predictions]
    return out, dict(stats)
