"""The bad-input catalogue: every case gives one clear line naming the problem and a non-zero exit
(or, for the tensor API, one ValueError/TypeError naming the argument), no traceback unless
--verbose, no model built, and no output left behind.

Three entry points: ``nrvl eval`` (flags, datasets, work dir, stored predictions), ``nrvl corrupt``
(video files), and ``nrvl.kernels.corrupt`` (tensors).
"""
from __future__ import annotations

import hashlib
import os
import pickle
import re
from pathlib import Path

import pytest
import torch
from test_data import HEADER, build_hub

import nrvl.data.mmbench as mmb
from nrvl import cli

EVAL = ["eval", "--data", "MMBench_Video_demo", "--model", "tiny-qwen2.5-vl", "--judge", "exact_matching"]
HUB_EVAL = ["eval", "--data", "MMBench_Video_8frame_nopack", "--model", "tiny-qwen2.5-vl", "--judge", "exact_matching"]
NOISY = ["--noise_name", "gaussian"]


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


@pytest.fixture(scope="module")
def clip_bytes(tmp_path_factory):
    from nrvl.video import make_clip, write_video

    path = write_video(make_clip(12, 64, 96, seed=3), tmp_path_factory.mktemp("clip") / "c.mp4", fps=6)
    return path.read_bytes()


def _row(dims="['OCR']", video="v1"):
    return f"1\t{video}\tt\tWhat is it?\tshapes\t{dims}\t./video/{video}.mp4\n"


def hub(tsv: str, chunk: dict | bytes):
    """A setup: a fake hub snapshot holding ``tsv`` and one video chunk."""
    def make(tmp_path, monkeypatch, clip):
        chunk_obj = {k: (clip if v is None else v) for k, v in chunk.items()} if isinstance(chunk, dict) else chunk
        build_hub(tmp_path / "hub", tsv, {"video_chunk_0.pkl": chunk_obj})
        monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
        monkeypatch.setattr(mmb, "TSV_MD5", hashlib.md5(tsv.encode()).hexdigest())
    return make


def predictions(data: bytes):
    """A setup: a stored predictions TSV for ``--mode eval`` holding ``data``."""
    def make(tmp_path, monkeypatch, clip):
        folder = tmp_path / "out" / "tiny-qwen2.5-vl" / "origin"
        folder.mkdir(parents=True)
        (folder / "tiny-qwen2.5-vl_MMBench_Video_demo_None_None.tsv").write_bytes(data)
    return make


def file_in_path(tmp_path, monkeypatch, clip):
    (tmp_path / "afile").write_text("I am a file, not a folder")


# (id, argv, setup or None, regex the one line must match). "{tmp}" is replaced by the test's tmp_path.
EVAL_CASES = [
    ("unknown-data", ["eval", "--data", "MMBench_Video_4frame", "--model", "tiny-qwen2.5-vl"], None,
     r"unknown --data 'MMBench_Video_4frame'; valid: .*MMBench_Video_demo"),
    ("unknown-model", ["eval", "--data", "MMBench_Video_demo", "--model", "Qwen9-VL"], None,
     r"unknown --model 'Qwen9-VL'; valid: .*tiny-qwen2.5-vl"),
    ("unknown-noise", [*EVAL, "--noise_name", "gausian", "--ratio", "0.3"], None, r"unknown --noise_name 'gausian'"),
    ("ratio-1.5", [*EVAL, *NOISY, "--ratio", "1.5"], None, r"--ratio .*\[0, 1\].*1\.5"),
    ("ratio-negative", [*EVAL, *NOISY, "--ratio", "-0.1"], None, r"--ratio .*\[0, 1\].*-0\.1"),
    ("ratio-nan", [*EVAL, *NOISY, "--ratio", "nan"], None, r"--ratio .*\[0, 1\].*nan"),
    ("ratio-inf", [*EVAL, *NOISY, "--ratio", "inf"], None, r"--ratio .*\[0, 1\].*inf"),
    ("ratio-not-a-number", [*EVAL, *NOISY, "--ratio", "0.x"], None, r"--ratio.*'0\.x' is not a number"),
    ("nframe-0", [*EVAL, "--nframe", "0"], None, r"--nframe must be >= 1, got 0"),
    ("tsv-without-dimensions", HUB_EVAL,
     hub("index\tvideo\tquestion\tanswer\n1\tv1\tq?\ta\n", {"v1": None}), r"lacks column\(s\) \['dimensions'\]"),
    ("dimensions-not-a-list", HUB_EVAL, hub(HEADER + _row(dims="OCR"), {"v1": None}),
     r"dimensions.*not a Python list literal: 'OCR'"),
    ("dimensions-runs-code", HUB_EVAL, hub(HEADER + _row(dims="__import__('os').system('touch PWNED')"),
                                           {"v1": None}), r"not a Python list literal"),
    ("dimensions-unknown", HUB_EVAL, hub(HEADER + _row(dims="['Telepathy']"), {"v1": None}),
     r"unknown dimension\(s\) \['Telepathy'\]"),
    ("missing-video", HUB_EVAL, hub(HEADER + _row(video="gone"), {"v1": None}),
     r"gone\.mp4 is in neither video/ nor any chunk"),
    ("empty-video", HUB_EVAL, hub(HEADER + _row(), {"v1": b""}), r"video file missing or empty: .*v1\.mp4"),
    ("chunk-with-a-global", HUB_EVAL, hub(HEADER + _row(), pickle.dumps({"v1": _Evil()}, protocol=4)),
     r"refusing to load global posix\.system"),
    ("work-dir-under-a-file", [*EVAL, "--work-dir", "{tmp}/afile/out"], file_in_path,
     r"--work-dir .*afile/out: .*afile is a file, not a folder"),
    ("work-dir-not-permitted", [*EVAL, "--work-dir", "/sys/nrvl-reliability-test/out"], None,
     r"--work-dir /sys/nrvl-reliability-test/out: cannot write in /sys \(Operation not permitted\)"),
    ("predictions-not-utf8", [*EVAL, "--mode", "eval"], predictions(b"index\tprediction\n1\t\xff\xfe\x00\n"),
     r"cannot read the predictions .*None_None\.tsv: 'utf-8' codec can't decode"),
    ("predictions-empty", [*EVAL, "--mode", "eval"], predictions(b""),
     r"cannot read the predictions .*None_None\.tsv: No columns to parse"),
    ("predictions-without-column", [*EVAL, "--mode", "eval"], predictions(b"index\tanswer\n0\tx\n"),
     r"None_None\.tsv has no 'prediction' column"),
]


def _files(root: Path) -> set:
    return {p for p in root.rglob("*") if p.is_file() and "hub" not in p.relative_to(root).parts}


@pytest.fixture
def no_model(monkeypatch):
    monkeypatch.setattr("nrvl.models.build_model", lambda *a, **k: pytest.fail("a model was built"))


def run_cli(argv, capsys) -> tuple[int, list[str]]:
    rc = cli.main(argv)
    captured = capsys.readouterr()
    return rc, captured.err.strip().splitlines()


@pytest.mark.parametrize("argv, setup, pattern", [c[1:] for c in EVAL_CASES], ids=[c[0] for c in EVAL_CASES])
def test_eval_bad_input(argv, setup, pattern, tmp_path, monkeypatch, capsys, clip_bytes, demo_ready, no_model):
    if "/sys/" in " ".join(argv) and not os.path.isdir("/sys"):
        pytest.skip("no /sys here")
    if setup is not None:
        setup(tmp_path, monkeypatch, clip_bytes)
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    if "--work-dir" not in argv:
        argv += ["--work-dir", str(tmp_path / "out")]
    before = _files(tmp_path)
    rc, err = run_cli(argv, capsys)
    assert rc != 0
    assert len(err) == 1 and "Traceback" not in err[0], err
    assert re.search(r"error: .*" + pattern, err[0]), err[0]
    assert _files(tmp_path) == before  # no partial output
    assert not (tmp_path / "PWNED").exists()  # nothing in the data ran


# ----------------------------------------------------------------------------------- nrvl corrupt: video files

def _write(name, data):
    def make(tmp_path, clip):
        (tmp_path / name).write_bytes(data(clip) if callable(data) else data)
        return str(tmp_path / name)
    return make


def _zero_frame(tmp_path, clip):
    import av

    path = tmp_path / "zero.mp4"
    with av.open(str(path), "w", format="mp4") as c:  # a header and a video stream, no frame
        s = c.add_stream("libx264", rate=8)
        s.width, s.height, s.pix_fmt = 64, 64, "yuv420p"
        c.start_encoding()
    return str(path)


def _folder(tmp_path, clip):
    (tmp_path / "clip.mp4").mkdir()
    return str(tmp_path / "clip.mp4")


FILE_CASES = [
    ("empty-file", _write("e.mp4", b""), [], r"cannot decode video .*e\.mp4: file is empty \(0 bytes\)"),
    ("truncated-mp4", _write("t.mp4", lambda c: c[: len(c) // 3]), [], r"cannot decode video .*t\.mp4: .*"),
    ("not-a-video", _write("n.mp4", b"just some text, not a video\n" * 20), [],
     r"cannot decode video .*n\.mp4: .*(Invalid data|no decodable video stream)"),
    ("zero-frame-video", _zero_frame, [], r"cannot decode video .*zero\.mp4: .*(no frames|no decodable)"),
    ("missing-file", lambda tmp_path, clip: str(tmp_path / "nope.mp4"), [], r"INPUT: no such file: .*nope\.mp4"),
    ("folder-not-file", _folder, [], r"INPUT: not a file: .*clip\.mp4"),
    ("ratio-1.5", _write("ok.mp4", lambda c: c), ["--ratio", "1.5"], r"--ratio: must be in \[0, 1\], got 1\.5"),
    ("ratio-nan", _write("ok.mp4", lambda c: c), ["--ratio", "nan"], r"--ratio: must be in \[0, 1\], got nan"),
    ("unknown-noise", _write("ok.mp4", lambda c: c), ["--noise", "gaussain"], r"unknown noise 'gaussain'"),
    ("out-under-a-file", _write("ok.mp4", lambda c: c), ["--out", "{tmp}/ok.mp4/out"],
     r"--out: .*cannot be made, .*ok\.mp4 is a file, not a folder"),
]


@pytest.mark.parametrize("make, extra, pattern", [c[1:] for c in FILE_CASES], ids=[c[0] for c in FILE_CASES])
def test_corrupt_command_bad_input(make, extra, pattern, tmp_path, capsys, clip_bytes):
    src = make(tmp_path, clip_bytes)
    opts = {"--noise": "gaussian", "--ratio": "0.5", "--out": str(tmp_path / "out")}
    for k, v in zip(extra[::2], extra[1::2]):
        opts[k] = v.replace("{tmp}", str(tmp_path))
    argv = ["corrupt", src, *[x for kv in opts.items() for x in kv]]
    before = set(tmp_path.rglob("*"))
    rc, err = run_cli(argv, capsys)
    assert rc == 2
    assert len(err) == 1 and "Traceback" not in err[0], err
    assert re.search(r"^nrvl corrupt: error: .*" + pattern, err[0]), err[0]
    assert set(tmp_path.rglob("*")) == before  # no output folder, no staging folder left
    if pattern.startswith("cannot decode"):  # an exception: --verbose adds its traceback
        rc, err = run_cli([*argv, "--verbose"], capsys)
        assert rc == 2 and err[0] == "Traceback (most recent call last):" and "error:" in err[-1], err


# ----------------------------------------------------------------------------------- nrvl.kernels.corrupt: tensors

def _clip(shape=(4, 3, 8, 8), dtype=torch.uint8):
    if dtype == torch.uint8:
        return torch.randint(0, 256, shape, dtype=dtype, generator=torch.Generator().manual_seed(0))
    return torch.rand(shape, generator=torch.Generator().manual_seed(0)).mul(255).to(dtype)


def _nan_frames():
    v = _clip(dtype=torch.float32)
    v[1, 0, 2, 3] = float("nan")
    return v


def _inf_frames():
    v = _clip(dtype=torch.float32)
    v[0, 2, 0, 0] = float("inf")
    return v


TENSOR_CASES = [
    ("rank-3", lambda: _clip((3, 8, 8)), {}, ValueError, r"video must have shape \[T, C, H, W\].*got 3 dims"),
    ("rank-6", lambda: _clip((1, 1, 4, 3, 8, 8)), {}, ValueError, r"video must have shape .*got 6 dims"),
    ("one-channel", lambda: _clip((4, 1, 8, 8)), {}, ValueError, r"video must have 3 \(RGB\) channels .*got 1"),
    ("four-channels", lambda: _clip((2, 4, 4, 8, 8)), {}, ValueError, r"video must have 3 \(RGB\) channels .*got 4"),
    ("int32", lambda: _clip().to(torch.int32), {}, TypeError, r"video must be uint8 or floating point.*int32"),
    ("bool", lambda: _clip() > 100, {}, TypeError, r"video must be uint8 or floating point.*bool"),
    ("nan-frames", _nan_frames, {}, ValueError, r"video contains NaN or infinite values"),
    ("inf-frames", _inf_frames, {}, ValueError, r"video contains NaN or infinite values"),
    ("ratio-nan", _clip, {"ratio": float("nan")}, ValueError, r"ratio must be in \[0, 1\], got nan"),
    ("ratio-1.5", _clip, {"ratio": 1.5}, ValueError, r"ratio must be in \[0, 1\], got 1\.5"),
    ("not-a-tensor", lambda: _clip().numpy(), {}, TypeError, r"video must be a torch\.Tensor of shape \[T, C, H, W\] or \[B, T, C, H, W\], got ndarray"),
]


@pytest.mark.parametrize("make, kw, exc, pattern", [c[1:] for c in TENSOR_CASES], ids=[c[0] for c in TENSOR_CASES])
def test_corrupt_api_bad_tensor(make, kw, exc, pattern):
    from nrvl.kernels import corrupt

    video = make()
    original = video.clone() if isinstance(video, torch.Tensor) else video.copy()
    kw = {"name": "gaussian", "ratio": 0.5, "seed": 0, **kw}
    with pytest.raises(exc, match=pattern) as info:
        corrupt(video, kw.pop("name"), kw.pop("ratio"), inplace=isinstance(video, torch.Tensor), **kw)
    assert "\n" not in str(info.value)  # one line
    if isinstance(video, torch.Tensor):
        assert torch.equal(video.nan_to_num(), original.nan_to_num())  # inplace=True, yet untouched


def test_catalogue_size():
    assert len(EVAL_CASES) + len(FILE_CASES) + len(TENSOR_CASES) >= 25
