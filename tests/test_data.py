"""Datasets: the real hub loading code against a Hugging Face cache built here, the safe
unpickler, TSV validation, and the generated demo set."""
import hashlib
import io
import json
import os
import pickle

import pytest

import nrvl.data.mmbench as mmb
from nrvl.data import DatasetError, list_datasets, load_dataset, prepare_dataset, read_tsv
from nrvl.data import demo

HEADER = "index\tvideo\tvideo_type\tquestion\tanswer\tdimensions\tvideo_path\n"


@pytest.fixture(scope="module")
def mp4_bytes(tmp_path_factory):
    """Two small H.264 clips (bytes), made once."""
    from nrvl.video import make_clip, write_video

    d = tmp_path_factory.mktemp("clips")
    out = {}
    for k, name in enumerate(("vidA", "vid-B_2")):
        path = write_video(make_clip(12, 64, 96, seed=k), d / f"{name}.mp4", fps=6)
        out[name] = path.read_bytes()
    return out


def tsv_text(rows):
    return HEADER + "".join("\t".join(str(c) for c in r) + "\n" for r in rows)


GOOD_ROWS = [
    (7, "vidA", "Food", "What colour is the disc?", "Green.", "['Attribute Recognition']", "./video/vidA.mp4"),
    (9, "vidA", "Food", "How many shapes?", "None", "['Counting', 'OCR']", "./video/vidA.mp4"),
    (3, "vid-B_2", "Sports", "Is there a person?", "No.", "['Hallucination']", "./video/vid-B_2.mp4"),
]


def build_hub(root, tsv, chunks, commit="0123456789abcdef0123456789abcdef01234567"):
    """A Hugging Face hub cache holding a snapshot of opencompass/MMBench-Video, as huggingface_hub lays it out."""
    repo = root / "datasets--opencompass--MMBench-Video"
    snap = repo / "snapshots" / commit
    (snap / "video_pkl").mkdir(parents=True)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    (snap / "MMBench-Video.tsv").write_text(tsv, encoding="utf-8")
    for name, obj in chunks.items():
        data = obj if isinstance(obj, bytes) else pickle.dumps(obj, protocol=4)
        (snap / "video_pkl" / name).write_bytes(data)
    return snap


@pytest.fixture
def hub(tmp_path, monkeypatch, mp4_bytes):
    """A valid fake hub cache; HF_HUB_CACHE points at it; the TSV md5 is the fake file's."""
    tsv = tsv_text(GOOD_ROWS)
    snap = build_hub(tmp_path / "hub", tsv, {"video_chunk_0.pkl": {"vidA": mp4_bytes["vidA"]},
                                             "video_chunk_1.pkl": {"vid-B_2": mp4_bytes["vid-B_2"]}})
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(mmb, "TSV_MD5", hashlib.md5(tsv.encode()).hexdigest())
    return snap


# ----------------------------------------------------------------------------- hub loading

def test_hub_snapshot_unpacks_videos_and_loads(hub, mp4_bytes):
    root = prepare_dataset("MMBench_Video_8frame_nopack")
    assert root == hub
    for name, data in mp4_bytes.items():
        assert (hub / "video" / f"{name}.mp4").read_bytes() == data
    ds = load_dataset("MMBench_Video_8frame_nopack")
    assert ds.nframe == 8 and load_dataset("MMBench_Video_16frame_nopack").nframe == 16
    assert load_dataset("MMBench_Video_64frame_nopack").nframe == 64
    assert [s.index for s in ds.samples()] == [7, 9, 3]  # TSV order, not sorted
    s = ds.samples()[1]
    assert (s.video, s.answer) == ("vidA", "None")  # text stays literal, never NaN
    assert s.video_path == str(hub / "video" / "vidA.mp4")
    ds.check_videos()
    assert [x.index for x in ds.samples(limit=2)] == [7, 9]


def test_unpack_is_resumable_and_skipped_when_complete(hub, mp4_bytes, monkeypatch):
    prepare_dataset("MMBench_Video_8frame_nopack")
    calls = []
    real = mmb.load_video_chunk
    monkeypatch.setattr(mmb, "load_video_chunk", lambda p: calls.append(p.name) or real(p))
    prepare_dataset("MMBench_Video_8frame_nopack")
    assert calls == []  # every video present: no chunk is even opened
    # An interrupted unpack: chunk 1 never finished (no marker entry, its video missing).
    (hub / "video" / "vid-B_2.mp4").unlink()
    marker = hub / "video" / mmb.MARKER
    marker.write_text('{"video_chunk_0.pkl": ["vidA.mp4"]}')
    prepare_dataset("MMBench_Video_8frame_nopack")
    assert calls == ["video_chunk_1.pkl"]
    assert (hub / "video" / "vid-B_2.mp4").read_bytes() == mp4_bytes["vid-B_2"]


def test_a_video_deleted_after_unpacking_is_unpacked_again_from_its_chunk_only(hub, mp4_bytes, monkeypatch):
    prepare_dataset("MMBench_Video_8frame_nopack")
    marker = hub / "video" / mmb.MARKER
    assert json.loads(marker.read_text()) == {"video_chunk_0.pkl": ["vidA.mp4"],
                                              "video_chunk_1.pkl": ["vid-B_2.mp4"]}
    calls = []
    real = mmb.load_video_chunk
    monkeypatch.setattr(mmb, "load_video_chunk", lambda p: calls.append(p.name) or real(p))
    (hub / "video" / "vidA.mp4").unlink()  # both chunks are in the marker
    prepare_dataset("MMBench_Video_8frame_nopack")
    assert calls == ["video_chunk_0.pkl"]  # the chunk that holds it, not the other
    assert (hub / "video" / "vidA.mp4").read_bytes() == mp4_bytes["vidA"]
    # an older marker (counts, not names): a missing video sends it to every counted chunk
    marker.write_text('{"video_chunk_0.pkl": 1, "video_chunk_1.pkl": 1}')
    (hub / "video" / "vid-B_2.mp4").unlink()
    calls.clear()
    prepare_dataset("MMBench_Video_8frame_nopack")
    assert calls == ["video_chunk_0.pkl", "video_chunk_1.pkl"]
    assert (hub / "video" / "vid-B_2.mp4").read_bytes() == mp4_bytes["vid-B_2"]
    assert json.loads(marker.read_text())["video_chunk_1.pkl"] == ["vid-B_2.mp4"]


def test_an_incomplete_snapshot_offline_is_used_for_what_it_holds(hub, mp4_bytes, monkeypatch, caplog):
    """huggingface_hub refuses a snapshot whose download was interrupted; offline, nrvl uses the
    files it holds (the TSV md5 and every wanted video are still checked) instead of calling it absent."""
    import huggingface_hub
    from huggingface_hub.errors import IncompleteSnapshotError

    def incomplete(*a, **kw):
        raise IncompleteSnapshotError("The cached snapshot for 'opencompass/MMBench-Video' is incomplete: 2 file(s) "
                                      "are missing (video_pkl/x.pkl, y). Re-run the download.", snapshot_path=str(hub))

    monkeypatch.setattr(huggingface_hub, "snapshot_download", incomplete)
    with caplog.at_level("WARNING", logger="nrvl.data.mmbench"):
        assert prepare_dataset("MMBench_Video_8frame_nopack") == hub
    assert any("is incomplete (2 file(s) are missing)" in r.getMessage() for r in caplog.records)
    assert (hub / "video" / "vidA.mp4").read_bytes() == mp4_bytes["vidA"]
    (hub / "video_pkl" / "video_chunk_1.pkl").unlink()  # what is missing is still an error naming it
    (hub / "video" / "vid-B_2.mp4").unlink()
    with pytest.raises(DatasetError, match="vid-B_2.mp4 is in neither"):
        prepare_dataset("MMBench_Video_8frame_nopack")


def test_md5_mismatch_is_an_error(hub, monkeypatch):
    monkeypatch.setattr(mmb, "TSV_MD5", "0" * 32)
    with pytest.raises(DatasetError, match="md5 .* expected 0000"):
        prepare_dataset("MMBench_Video_8frame_nopack")


def test_offline_without_cache_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DatasetError, match="not in .*HF_HUB_OFFLINE"):
        prepare_dataset("MMBench_Video_8frame_nopack")


def test_video_in_no_chunk_is_an_error(tmp_path, monkeypatch, mp4_bytes):
    tsv = tsv_text(GOOD_ROWS)
    build_hub(tmp_path / "hub", tsv, {"video_chunk_0.pkl": {"vidA": mp4_bytes["vidA"]}})
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(mmb, "TSV_MD5", hashlib.md5(tsv.encode()).hexdigest())
    with pytest.raises(DatasetError, match="vid-B_2.mp4 is in neither"):
        prepare_dataset("MMBench_Video_8frame_nopack")


# ----------------------------------------------------------------------------- the safe unpickler

class _Evil:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


@pytest.mark.parametrize("payload", [
    pickle.dumps({"vidA": _Evil()}, protocol=4),
    pickle.dumps({"vidA": os.system}, protocol=4),
    pickle.dumps({"vidA": b"x" * 10}, protocol=2),  # protocol 2 stores bytes through _codecs.encode
    pickle.dumps(io.BytesIO(b"x"), protocol=5),
], ids=["reduce-os-system", "function", "protocol2-bytes", "object"])
def test_restricted_unpickler_refuses_every_global(tmp_path, monkeypatch, payload):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "chunk.pkl"
    path.write_bytes(payload)
    with pytest.raises(DatasetError, match="refusing (to load global|opcode (STACK_)?GLOBAL)"):
        mmb.load_video_chunk(path)
    assert not (tmp_path / "PWNED").exists()
    with open(path, "rb") as fh:  # the unpickler alone refuses them too (the opcode scan aside)
        with pytest.raises(pickle.UnpicklingError, match="refusing to load global"):
            mmb.NoGlobalsUnpickler(fh).load()


@pytest.mark.parametrize("obj, match", [
    ({"../evil": b"x"}, "unsafe video name"),
    ({".hidden": b"x"}, "unsafe video name"),
    ({"ok": "not bytes"}, "not bytes"),
    ([b"x"], "refusing opcode EMPTY_LIST"),
    ({"evil\n": b"x"}, "unsafe video name"),
    ({("a",): b"x"}, "refusing opcode TUPLE1"),
    ({"a": 5}, "refusing opcode BININT1"),
], ids=["traversal", "dotfile", "str-value", "list", "trailing-newline", "tuple-key", "int-value"])
def test_chunk_shape_is_checked(tmp_path, obj, match):
    path = tmp_path / "chunk.pkl"
    path.write_bytes(pickle.dumps(obj, protocol=4))
    with pytest.raises(DatasetError, match=match):
        mmb.load_video_chunk(path)


def test_plain_chunk_loads_with_protocols_3_to_5(tmp_path):
    for proto in (3, 4, 5):
        path = tmp_path / f"c{proto}.pkl"
        path.write_bytes(pickle.dumps({"a_b-c": b"\x00\x01mp4", "x": b"yz"}, protocol=proto))
        assert mmb.load_video_chunk(path) == {"a_b-c": b"\x00\x01mp4", "x": b"yz"}


@pytest.mark.parametrize("payload", [
    b"\x80\x02}N" + b"\x85" * 1_000_000 + b"C\x01xs.",      # a key nested 10**6 deep: hashing it crashed
    b"\x80\x04\x95" + (2**63).to_bytes(8, "little") + b".",  # an impossible FRAME length: OverflowError
], ids=["deep-tuple-key", "huge-frame"])
def test_crafted_chunks_are_one_line_errors_not_crashes(tmp_path, payload):
    path = tmp_path / "c.pkl"
    path.write_bytes(payload)
    with pytest.raises(DatasetError, match="video chunk"):
        mmb.load_video_chunk(path)


def test_a_damaged_marker_unpacks_again(tmp_path, mp4_bytes):
    root = tmp_path / "snap"
    (root / mmb.CHUNK_DIR).mkdir(parents=True)
    data = mp4_bytes["vidA"]
    (root / mmb.CHUNK_DIR / "video_chunk_0.pkl").write_bytes(pickle.dumps({"vidA": data}, protocol=4))
    (root / mmb.VIDEO_DIR).mkdir()
    (root / mmb.VIDEO_DIR / mmb.MARKER).write_text("[]")
    assert mmb.unpack_videos(root) == 1
    assert (root / mmb.VIDEO_DIR / "vidA.mp4").read_bytes() == data


def test_hf_cache_variables_are_expanded_and_transformers_offline_counts(monkeypatch, tmp_path):
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    monkeypatch.setenv("NRVL_T_ROOT", str(tmp_path))
    monkeypatch.setenv("HF_HOME", "$NRVL_T_ROOT/hf")
    assert mmb._cache_dir(None) == str(tmp_path / "hf" / "hub")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    assert mmb._offline()


def test_truncated_chunk_is_an_error(tmp_path):
    path = tmp_path / "c.pkl"
    path.write_bytes(pickle.dumps({"a": b"x" * 100}, protocol=4)[:30])
    with pytest.raises(DatasetError, match="corrupt video chunk"):
        mmb.load_video_chunk(path)


# ----------------------------------------------------------------------------- TSV validation

@pytest.mark.parametrize("text, match", [
    ("index\tvideo\tquestion\tanswer\n1\tv\tq\ta\n", r"lacks column\(s\) \['dimensions'\]"),
    (HEADER + "x\tv\tt\tq\ta\t['OCR']\t\n", "'index' must hold integers"),
    (HEADER + "1\tv\tt\tq\ta\t['OCR']\t\n1\tv\tt\tq\ta\t['OCR']\t\n", "duplicate index 1"),
    (HEADER + "1\tv\tt\tq\ta\t['Nonsense']\t\n", r"unknown dimension\(s\) \['Nonsense'\]"),
    (HEADER + "1\tv\tt\tq\ta\t__import__('os')\t\n", "not a Python list literal"),
    (HEADER + "1\tv\tt\tq\ta\t[]\t\n", "empty list"),
    (HEADER + "1\t\tt\tq\ta\t['OCR']\t\n", "empty 'video'"),
    (HEADER, "no rows"),
    ('index\tvideo\n"1\tv\n', "cannot parse TSV"),
], ids=["missing-column", "index-not-int", "duplicate-index", "unknown-dimension", "code-in-dimensions",
        "empty-dimensions", "empty-video", "no-rows", "unparsable"])
def test_bad_tsv_is_one_clear_error(tmp_path, text, match):
    path = tmp_path / "bad.tsv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DatasetError, match=match):
        read_tsv(path)


def test_unknown_dataset_lists_the_valid_ones():
    with pytest.raises(DatasetError, match="valid: MMBench_Video_8frame_nopack, MMBench_Video_16frame_nopack, "
                                           "MMBench_Video_64frame_nopack"):
        load_dataset("MMBench_Video_32frame_nopack")
    assert "MMBench_Video_demo" in list_datasets()


# ----------------------------------------------------------------------------- the demo set

def test_demo_rows_are_fixed_and_valid():
    from nrvl.rating import L3_DIMS, parse_dimensions

    rows = demo.rows()
    assert len(rows) == 12 and len({r["video"] for r in rows}) == 6
    assert [r["index"] for r in rows] == list(range(12))
    assert all(set(parse_dimensions(r["dimensions"])) <= set(L3_DIMS) for r in rows)
    assert rows == demo.rows()


def test_demo_prepares_once_and_decodes(tmp_path, monkeypatch):
    from nrvl.video import probe

    monkeypatch.setenv("NRVL_CACHE", str(tmp_path / "cache"))
    with pytest.raises(DatasetError, match="not generated yet"):
        load_dataset("MMBench_Video_demo")
    root = prepare_dataset("MMBench_Video_demo")
    assert root == tmp_path / "cache" / "data" / "MMBench_Video_demo" / f"v{demo.VERSION}"
    ds = load_dataset("MMBench_Video_demo")
    ds.check_videos()
    mtimes = {p: p.stat().st_mtime_ns for p in (root / "video").iterdir()}
    prepare_dataset("MMBench_Video_demo")  # second call: nothing regenerated
    assert {p: p.stat().st_mtime_ns for p in (root / "video").iterdir()} == mtimes
    for clip in demo.CLIPS:
        info = probe(root / "video" / f"{clip.video}.mp4")
        assert (info.num_frames, info.height, info.width) == (clip.frames, clip.height, clip.width)
    # A video removed later is caught before inference.
    (root / "video" / "demo_3.mp4").unlink()
    with pytest.raises(DatasetError, match="demo_3.mp4"):
        load_dataset("MMBench_Video_demo").check_videos()
