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


# ----------------------------------------------------------------------------------- durability of new files

def _record_fsyncs(monkeypatch):
    """Every fsync as ("dir" or "file", path), in order."""
    import os
    import stat

    seen = []
    real = os.fsync

    def fsync(fd):
        kind = "dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file"
        seen.append((kind, os.readlink(f"/proc/self/fd/{fd}")))
        return real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return seen


@pytest.mark.skipif(not __import__("os").path.isdir("/proc/self/fd"), reason="needs /proc to name the fsynced fds")
def test_creating_a_store_file_fsyncs_its_folder_and_every_new_folder_once(tmp_path, monkeypatch):
    from nrvl.atomic import append_jsonl, atomic_write_text

    seen = _record_fsyncs(monkeypatch)
    target = tmp_path / "a" / "b" / "s.rank0.jsonl"
    append_jsonl(target, {"index": 1})
    # the new folders' entries (a in tmp, b in a), the record, then the new file's entry in b
    assert seen == [("dir", str(tmp_path)), ("dir", str(tmp_path / "a")), ("file", str(target)),
                    ("dir", str(tmp_path / "a" / "b"))]
    del seen[:]
    append_jsonl(target, {"index": 2})  # the file exists: only the record is fsynced
    assert seen == [("file", str(target))]
    assert [r["index"] for r in __import__("nrvl.atomic").atomic.read_jsonl(target)] == [1, 2]

    del seen[:]
    atomic_write_text(tmp_path / "c" / "p.tsv", "x")  # a whole file in a new folder
    assert seen[0] == ("dir", str(tmp_path)) and seen[-1] == ("dir", str(tmp_path / "c"))
    assert [k for k, _ in seen] == ["dir", "file", "dir"]
    del seen[:]
    atomic_write_text(tmp_path / "c" / "p.tsv", "y")  # folder exists: temp file, then the rename's folder
    assert [k for k, _ in seen] == ["file", "dir"] and (tmp_path / "c" / "p.tsv").read_text() == "y"


# ----------------------------------------------------------------------------------- write errors name the file

def test_a_failed_append_names_the_file(tmp_path, monkeypatch):
    import errno

    from nrvl import atomic

    folder_in_the_way = tmp_path / "s.rank0.jsonl"
    folder_in_the_way.mkdir()
    with pytest.raises(IsADirectoryError) as e:
        PredictionStore(tmp_path, "s", RUN).append(make_record(1, "x", run=RUN))
    assert e.value.filename == str(folder_in_the_way) and e.value.nrvl_write

    def full(fh, data, point):  # what a full disk does to write(2): no file name in the error
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic, "_write_durably", full)
    with pytest.raises(OSError) as e:
        atomic.append_jsonl(tmp_path / "t.jsonl", {"index": 1})
    assert (e.value.errno, e.value.filename, e.value.nrvl_write) == (errno.ENOSPC, str(tmp_path / "t.jsonl"), True)
    with pytest.raises(OSError) as e:
        atomic.atomic_write_text(tmp_path / "p.tsv", "x")
    assert e.value.filename == str(tmp_path / "p.tsv") and not list(tmp_path.glob(".p.tsv.*"))


# ----------------------------------------------------------------------------------- pack records

def test_a_pack_record_counts_only_for_the_questions_it_asked(tmp_path):
    wanted = {"vid": [3, 4]}
    small = PredictionStore(tmp_path, "s", RUN, questions={"vid": [3]})
    small.append(make_record("vid", '{"3": "a"}', run=RUN))
    line = small.path.read_text().splitlines()[0]
    assert __import__("json").loads(line)["questions"] == ["3"]  # stamped by the store
    big = PredictionStore(tmp_path, "s", RUN, questions=wanted, legacy_questions=wanted)
    assert big.done_keys() == set()  # asked [3], [3, 4] wanted now: redone
    assert PredictionStore(tmp_path, "s", RUN, questions={"vid": [3]}).done_keys() == {"vid"}
    big.append(make_record("vid", '{"3": "a", "4": "b"}', run=RUN))
    assert big.load()["vid"].prediction == '{"3": "a", "4": "b"}' and big.load()["vid"].questions == ("3", "4")
    assert PredictionStore(tmp_path, "s", RUN, questions={"vid": [3]}).load()["vid"].prediction == '{"3": "a"}'


def test_a_pack_record_without_a_question_list_is_taken_as_a_full_run(tmp_path):
    """Stores written before records listed their questions still resume a run over every question."""
    import json

    (tmp_path / "s.rank0.jsonl").write_text(json.dumps({"index": "vid", "prediction": "old", "run": RUN}) + "\n")
    full = {"vid": [3, 4]}
    assert PredictionStore(tmp_path, "s", RUN, questions=full, legacy_questions=full).done_keys() == {"vid"}
    assert PredictionStore(tmp_path, "s", RUN, questions={"vid": [3]}, legacy_questions=full).done_keys() == set()
    assert PredictionStore(tmp_path, "s", RUN).done_keys() == {"vid"}  # not a pack store: as before


# ----------------------------------------------------------------------------------- the predictions sidecar

def test_the_sidecar_vouches_for_the_exact_tsv_it_was_written_with(tmp_path):
    from nrvl.store import meta_path, read_predictions_meta

    path = tmp_path / "p.tsv"
    assert read_predictions_meta(path) == (None, "missing")
    write_predictions(table(2), path, meta={"run": RUN, "settings": {"seed": 0}})
    assert meta_path(path).name == "p.tsv.meta.json"
    meta, status = read_predictions_meta(path)
    assert status == "ok" and meta["run"] == RUN and meta["settings"] == {"seed": 0} and meta["tsv"] == "p.tsv"
    write_predictions(table(3), path)  # a new TSV without its sidecar (a writer killed in between)
    assert read_predictions_meta(path)[1] == "other-tsv"
    meta_path(path).write_text("{not json")
    assert read_predictions_meta(path) == (None, "unreadable")
    meta_path(path).unlink()
    assert read_predictions_meta(path) == (None, "missing")


def test_a_failed_whole_file_write_names_the_target_not_the_temp_file(tmp_path, monkeypatch):
    from nrvl import atomic

    def refuse(path):  # what os.open of the hidden temp file raises in a folder we may not write
        raise PermissionError(13, "Permission denied", str(tmp_path / ".p.tsv.host-1.abcd.tmp"))

    monkeypatch.setattr(atomic, "_create_temp", refuse)
    with pytest.raises(PermissionError) as e:
        atomic.atomic_write_text(tmp_path / "p.tsv", "x")
    assert (e.value.filename, e.value.nrvl_write) == (str(tmp_path / "p.tsv"), True)
    assert str(e.value) == f"[Errno 13] Permission denied: '{tmp_path / 'p.tsv'}'"  # no "-> None" tail


def test_a_failed_rename_names_only_the_target(tmp_path, monkeypatch):
    from nrvl import atomic

    def refuse(src, dst):  # os.replace's error names both files
        raise OSError(28, "No space left on device", str(src), str(dst))

    monkeypatch.setattr(atomic.os, "replace", refuse)
    with pytest.raises(OSError) as e:
        atomic.atomic_write_text(tmp_path / "p.tsv", "x")
    assert str(e.value) == f"[Errno 28] No space left on device: '{tmp_path / 'p.tsv'}'"
    assert e.value.nrvl_write and [p.name for p in tmp_path.iterdir()] == []
