"""The prediction store: append-only JSON Lines per rank, resume, merge in TSV order, TSV round trip."""
import pandas as pd
import pytest

from nrvl.store import (IncompletePredictionsError, PredictionRecord, PredictionStore, key_of, make_record,
                        read_predictions, run_fingerprint, write_predictions)

RUN = run_fingerprint({"model": "m", "seed": 0})


def table(n=5):
    return pd.DataFrame({"index": [10 + i for i in range(n)], "question": [f"q{i}" for i in range(n)],
                         "answer": [f"a{i}" for i in range(n)]})


def test_fingerprint_is_stable_and_sensitive():
    assert run_fingerprint({"a": 1, "b": 2}) == run_fingerprint({"b": 2, "a": 1})
    assert run_fingerprint({"seed": 0}) != run_fingerprint({"seed": 1})
    assert len(RUN) == 16


@pytest.mark.parametrize("index, key", [(177, "177"), ("177", "177"), (177.0, "177"), (" 3 ", "3")],
                         ids=["int", "str", "float", "spaces"])
def test_key_of(index, key):
    assert key_of(index) == key


def test_append_load_and_done_keys(tmp_path):
    s = PredictionStore(tmp_path, "stem", RUN, rank=0)
    s.append(make_record(10, "x", run=RUN))
    s.append([make_record(11, "y", run=RUN), make_record(12, "", run=RUN, failed=True)])
    assert s.path.name == "stem.rank0.jsonl"
    recs = s.load()
    assert set(recs) == {"10", "11", "12"}
    assert recs["10"].prediction == "x"
    assert s.done_keys() == {"10", "11"}  # a failed record is redone
    assert s.failed_keys() == ["12"]


def test_every_record_is_one_fsynced_line(tmp_path):
    s = PredictionStore(tmp_path, "stem", RUN)
    s.append([make_record(i, f"p{i}", run=RUN) for i in range(3)])
    lines = s.path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 3 and all(line.startswith("{") for line in lines)


def test_truncated_last_line_is_skipped_and_append_continues(tmp_path):
    s = PredictionStore(tmp_path, "stem", RUN)
    s.append(make_record(10, "x", run=RUN))
    with open(s.path, "ab") as fh:
        fh.write(b'{"index": 11, "prediction": "half wri')  # a writer killed mid-record
    assert set(s.load()) == {"10"}
    s.append(make_record(11, "y", run=RUN))
    assert {k: r.prediction for k, r in s.load().items()} == {"10": "x", "11": "y"}


def test_success_beats_failure_and_other_runs_are_ignored(tmp_path, caplog):
    s = PredictionStore(tmp_path, "stem", RUN)
    s.append(make_record(10, "", run=RUN, failed=True))
    s.append(make_record(10, "ok", run=RUN))
    s.append(make_record(10, "", run=RUN, failed=True))
    other = PredictionStore(tmp_path, "stem", run_fingerprint({"model": "m", "seed": 1}))
    other.append(make_record(11, "from seed 1", run=other.run))
    recs = s.load()
    assert recs["10"].prediction == "ok" and not recs["10"].failed
    assert "11" not in recs
    assert "other settings" in caplog.text


def test_reads_every_rank_file_of_the_stem_whatever_the_world_size(tmp_path):
    for rank in (0, 1, 2):
        PredictionStore(tmp_path, "stem", RUN, rank=rank).append(make_record(10 + rank, f"r{rank}", run=RUN))
    PredictionStore(tmp_path, "stem_other", RUN, rank=0).append(make_record(13, "other stem", run=RUN))
    (tmp_path / "stem.rankX.jsonl").write_text('{"index": 14, "prediction": "bad name", "run": "%s"}\n' % RUN)
    s = PredictionStore(tmp_path, "stem", RUN, rank=0)
    assert [p.name for p in s.files()] == ["stem.rank0.jsonl", "stem.rank1.jsonl", "stem.rank2.jsonl"]
    assert set(s.load()) == {"10", "11", "12"}


def test_merge_follows_table_order_and_requires_completeness(tmp_path):
    s = PredictionStore(tmp_path, "stem", RUN)
    for i in (14, 12, 10, 13):
        s.append(make_record(i, f"p{i}", run=RUN))
    with pytest.raises(IncompletePredictionsError, match="1 of 5 samples.*index 11"):
        s.merge(table())
    s.append(make_record("11", "p11", run=RUN))
    merged = s.merge(table())
    assert list(merged["index"]) == [10, 11, 12, 13, 14]
    assert list(merged["prediction"]) == ["p10", "p11", "p12", "p13", "p14"]
    assert list(merged.columns) == ["index", "question", "answer", "prediction"]


def test_predictions_tsv_round_trip_keeps_text_literal(tmp_path):
    texts = ["plain", 'tab\there "quoted"', "new\nline\r\nCR", "None", "", "NA", "  padded  ", "ctrl\x15\x7f", "視頻"]
    df = pd.DataFrame({"index": list(range(len(texts))), "prediction": texts, "answer": ["nan"] * len(texts)})
    path = write_predictions(df, tmp_path / "p.tsv")
    back = read_predictions(path)
    assert list(back["prediction"]) == texts
    assert list(back["answer"]) == ["nan"] * len(texts)
    assert back["index"].dtype == "int64"
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first == '"index"\t"prediction"\t"answer"'  # QUOTE_ALL, as VLMEvalKit's tsv dump
    assert not list(tmp_path.glob(".*.tmp"))  # the temp file was renamed away


def test_record_round_trip():
    rec = make_record(7, "answer", run=RUN, video="v", seed=123, rank=1, world_size=2, seconds=0.5)
    back = PredictionRecord.from_dict({**rec.to_dict(), "unknown_field": 1})
    assert back == rec
