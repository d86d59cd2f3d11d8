"""Decoding sampled frames: backend parity, exact frame mapping, bad files, the decord hang guard."""
from __future__ import annotations

import sys
import time
import warnings

import numpy as np
import pytest
import torch

import nrvl.video.decode as D
from nrvl.video import (
    VideoDecodeError,
    VideoInfo,
    decode_frames,
    make_clip,
    probe,
    resolve_backend,
    vlmeval_frame_indices,
    write_video,
)

BACKEND_NAMES = ["torchcodec", "decord"]
T, H, W, FPS = 32, 96, 128, 16


@pytest.fixture(scope="module")
def clip():
    return make_clip(T, H, W, seed=11)


@pytest.fixture(scope="module")
def files(tmp_path_factory, clip):
    """The test clip and a set of broken files, all made here."""
    import av

    root = tmp_path_factory.mktemp("videos")
    good = write_video(clip, root / "good.mp4", fps=FPS)
    data = good.read_bytes()
    with av.open(str(good)) as c:
        packets = [(p.pos, p.size) for p in c.demux(video=0) if p.size]
    pos, size = packets[20]
    out = {"good": good}
    out["empty"] = root / "empty.mp4"
    out["empty"].write_bytes(b"")
    # The index says 32 frames, the data stops inside packet 20 (over-reports its frame count).
    out["truncated"] = root / "truncated.mp4"
    out["truncated"].write_bytes(data[: pos + size // 2])
    # Index at the end (no faststart) and cut in half: the index is gone.
    tail = write_video(clip, root / "tail.mp4", fps=FPS, faststart=False)
    out["truncated-no-index"] = root / "truncated-no-index.mp4"
    out["truncated-no-index"].write_bytes(tail.read_bytes()[: len(data) // 2])
    out["not-a-video"] = root / "notes.mp4"
    out["not-a-video"].write_text("this is not a video\n" * 20)
    # The second half of the frames' bytes garbled: the stream cannot be decoded past frame 15.
    garbled = bytearray(data)
    rng = np.random.default_rng(0)
    for p, s in packets[16:]:
        garbled[p:p + s] = rng.integers(0, 256, s, dtype=np.uint8).tobytes()
    out["garbled"] = root / "garbled.mp4"
    out["garbled"].write_bytes(bytes(garbled))
    out["no-video-stream"] = _audio_only(root / "audio.mp4")
    out["zero-frames"] = _zero_frames(root / "zero.mp4")
    out["missing"] = root / "missing.mp4"
    return {k: str(v) for k, v in out.items()}


def _audio_only(path):
    import av

    with av.open(str(path), "w", format="mp4") as out:
        s = out.add_stream("aac", rate=16000)
        for i in range(8):
            fr = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            fr.sample_rate, fr.pts = 16000, i * 1024
            out.mux(s.encode(fr))
        out.mux(s.encode())
    return path


def _zero_frames(path):
    """An mp4 that declares a video stream but holds no video frame (audio only in the data)."""
    import av

    with av.open(str(path), "w", format="mp4") as out:
        v = out.add_stream("libx264", rate=16)
        v.width, v.height, v.pix_fmt = 128, 96, "yuv420p"
        a = out.add_stream("aac", rate=16000)
        for i in range(8):
            fr = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            fr.sample_rate, fr.pts = 16000, i * 1024
            out.mux(a.encode(fr))
        out.mux(a.encode())
        out.mux(v.encode())
    return path


# --------------------------------------------------------------------------- good file

@pytest.mark.parametrize("backend", BACKEND_NAMES)
def test_probe(files, backend):
    info = probe(files["good"], backend)
    assert info == VideoInfo(num_frames=T, fps=float(FPS), width=W, height=H, duration=T / FPS)


def test_backends_give_identical_pixels_for_every_frame(files):
    every = list(range(T))
    a = decode_frames(files["good"], every, backend="torchcodec")
    b = decode_frames(files["good"], every, backend="decord")
    assert a.shape == (T, 3, H, W) and a.dtype == torch.uint8 and a.is_contiguous() and b.is_contiguous()
    assert torch.equal(a, b)


@pytest.mark.parametrize("backend", BACKEND_NAMES)
def test_each_decoded_frame_is_the_requested_one(files, clip, backend):
    idx = [31, 0, 7, 7, 20, 1]  # unsorted, repeated
    frames = decode_frames(files["good"], idx, backend=backend)
    assert frames.shape == (len(idx), 3, H, W)
    dist = torch.cdist(frames.flatten(1).float(), clip.flatten(1).float())
    assert dist.argmin(1).tolist() == idx
    assert (frames.float() - clip[idx].float()).abs().mean() < 6  # H.264 at crf 23: close, not exact


@pytest.mark.parametrize("backend", BACKEND_NAMES)
def test_index_forms(files, backend):
    ref = decode_frames(files["good"], [3, 17], backend=backend)
    assert torch.equal(decode_frames(files["good"], torch.tensor([3, 17]), backend=backend), ref)
    assert torch.equal(decode_frames(files["good"], np.array([3, 17]), backend=backend), ref)
    assert torch.equal(decode_frames(files["good"], (3, 17), backend=backend), ref)
    seen = []

    def pick(info):
        seen.append(info)
        return vlmeval_frame_indices(info.num_frames, 8)

    frames = decode_frames(files["good"], pick, backend=backend)
    assert seen == [probe(files["good"], backend)]
    assert torch.equal(frames, decode_frames(files["good"], vlmeval_frame_indices(T, 8), backend=backend))
    assert decode_frames(files["good"], [], backend=backend).shape == (0, 3, H, W)


@pytest.mark.parametrize("backend", BACKEND_NAMES)
def test_out_of_range_indices_are_named(files, backend):
    with pytest.raises(ValueError, match=r"indices out of range .*good\.mp4 \(32 frames.*\[32, -1\]") as e:
        decode_frames(files["good"], [0, 32, 5, -1], backend=backend)
    assert not isinstance(e.value, VideoDecodeError)


@pytest.mark.parametrize("bad", [[0.5], [True], "abc", torch.tensor([1.0]), torch.zeros(2, 2, dtype=torch.long), 3],
                         ids=["float", "bool", "str", "float-tensor", "2d-tensor", "int"])
def test_non_integer_indices(files, bad):
    with pytest.raises(TypeError, match="indices"):
        decode_frames(files["good"], bad)


def test_cuda_request_without_cuda_decodes_on_cpu(files, monkeypatch):
    if torch.cuda.is_available():
        pytest.skip("CUDA is present; see test_gpu_decode_matches_cpu")
    monkeypatch.setattr(D, "_warned", set())
    with pytest.warns(RuntimeWarning, match="CUDA is not available"):
        frames = decode_frames(files["good"], [0, 1], device="cuda")
    assert frames.device.type == "cpu"
    assert torch.equal(frames, decode_frames(files["good"], [0, 1]))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (NVDEC)")
def test_gpu_decode_matches_cpu(files):
    gpu = decode_frames(files["good"], [0, 9, 31], device="cuda")
    cpu = decode_frames(files["good"], [0, 9, 31])
    assert gpu.device.type == "cuda" and gpu.dtype == torch.uint8
    # NVDEC's YUV->RGB conversion is not swscale's: allow small differences.
    assert (gpu.cpu().float() - cpu.float()).abs().mean() < 3


# --------------------------------------------------------------------------- bad files

BAD = ["empty", "truncated", "truncated-no-index", "not-a-video", "garbled", "no-video-stream", "zero-frames",
       "missing"]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("backend", BACKEND_NAMES)
@pytest.mark.parametrize("kind", BAD)
def test_bad_files_raise_one_line_naming_the_file(files, kind, backend):
    path = files[kind]
    start = time.monotonic()
    # Ask for every frame the backend admits to (or, if it cannot even probe, for the nominal 32).
    with pytest.raises(VideoDecodeError) as e:
        decode_frames(path, lambda info: range(info.num_frames), backend=backend)
    message = str(e.value)
    assert path in message and "\n" not in message, message
    assert isinstance(e.value, ValueError)
    assert time.monotonic() - start < 30


@pytest.mark.timeout(60)
@pytest.mark.parametrize("backend", BACKEND_NAMES)
def test_truncated_file_with_nominal_indices_does_not_hang(files, backend):
    # What VLMEvalKit would ask for from the header's 32 frames (dmlc/decord#373's pattern:
    # spanning the file and ending near the nominal end).
    with pytest.raises(ValueError, match="truncated.mp4"):
        decode_frames(files["truncated"], vlmeval_frame_indices(T, 8) + [T - 2, T - 1], backend=backend)
    if backend == "torchcodec":  # frames before the cut still decode (decord reads ahead and gives up)
        assert decode_frames(files["truncated"], [0, 10], backend=backend).shape == (2, 3, H, W)


@pytest.mark.parametrize("backend", BACKEND_NAMES)
def test_probe_bad_files(files, backend):
    for kind in ("empty", "not-a-video", "no-video-stream", "missing"):
        with pytest.raises(VideoDecodeError, match=kind.replace("-", "") if kind == "empty" else "mp4"):
            probe(files[kind], backend)


def test_truncated_file_reports_the_frames_it_holds(files):
    # torchcodec scans the packets: the count is what the data holds, not the header's 32.
    assert probe(files["truncated"], "torchcodec").num_frames < T


# --------------------------------------------------------------------------- decord guard

@pytest.fixture
def fake_worker(monkeypatch):
    """Replace the decord child by a command; restore a real one afterwards."""
    def use(source):
        D._shutdown_worker()
        monkeypatch.setattr(D, "_WORKER_COMMAND", [sys.executable, "-c", source])

    yield use
    D._shutdown_worker()


@pytest.mark.timeout(30)
def test_hanging_decord_is_killed_after_the_timeout(files, fake_worker):
    fake_worker("import sys, time\nsys.stdin.readline()\ntime.sleep(600)\n")  # reads the request, never answers
    start = time.monotonic()
    with pytest.raises(VideoDecodeError, match=r"good\.mp4: decord did not finish within 1 s"):
        decode_frames(files["good"], [0], backend="decord", timeout=1.0)
    assert time.monotonic() - start < 10
    hung = D._worker
    assert hung is None  # killed and forgotten


@pytest.mark.timeout(30)
def test_crashed_decord_worker_is_reported_and_replaced(files, fake_worker, monkeypatch):
    fake_worker("import sys\nsys.stdin.readline()\nsys.exit(3)\n")
    with pytest.raises(VideoDecodeError, match=r"good\.mp4: the decord worker died \(exit code 3\)"):
        decode_frames(files["good"], [0], backend="decord", timeout=10)
    monkeypatch.setattr(D, "_WORKER_COMMAND", None)
    assert decode_frames(files["good"], [0], backend="decord").shape == (1, 3, H, W)


def test_worker_survives_errors_and_is_reused(files):
    decode_frames(files["good"], [0], backend="decord")
    worker = D._worker
    with pytest.raises(VideoDecodeError):
        decode_frames(files["garbled"], list(range(T)), backend="decord")
    with pytest.raises(ValueError):
        decode_frames(files["good"], [99], backend="decord")
    assert decode_frames(files["good"], [1], backend="decord").shape == (1, 3, H, W)
    assert D._worker is worker and worker.alive()


def test_bad_timeout(files, monkeypatch):
    with pytest.raises(ValueError, match="timeout"):
        decode_frames(files["good"], [0], backend="decord", timeout=0)
    monkeypatch.setenv(D.ENV_TIMEOUT, "soon")
    with pytest.raises(ValueError, match=D.ENV_TIMEOUT):
        decode_frames(files["good"], [0], backend="decord")


# --------------------------------------------------------------------------- backend choice

def test_backend_from_argument_env_and_default(monkeypatch):
    monkeypatch.delenv(D.ENV_BACKEND, raising=False)
    assert resolve_backend() == "torchcodec"
    assert resolve_backend("DECORD") == "decord"
    monkeypatch.setenv(D.ENV_BACKEND, "decord")
    assert resolve_backend() == "decord"
    assert resolve_backend("torchcodec") == "torchcodec"  # the argument wins
    monkeypatch.setenv(D.ENV_BACKEND, "opencv")
    with pytest.raises(ValueError, match=r"NRVL_VIDEO_BACKEND must be one of torchcodec, decord, got 'opencv'"):
        resolve_backend()
    with pytest.raises(ValueError, match=r"backend must be one of torchcodec, decord, got 'pyav'"):
        resolve_backend("pyav")


def test_env_backend_is_used_by_decode(files, monkeypatch):
    monkeypatch.setenv(D.ENV_BACKEND, "decord")
    calls = []
    real = D._decord_call
    monkeypatch.setattr(D, "_decord_call", lambda *a, **k: calls.append(a) or real(*a, **k))
    decode_frames(files["good"], [0])
    assert calls


def test_fallback_to_decord_when_torchcodec_has_no_ffmpeg(files, monkeypatch):
    monkeypatch.setattr(D, "_TORCHCODEC_OK", False)
    monkeypatch.setattr(D, "_warned", set())
    with pytest.warns(RuntimeWarning, match="torchcodec cannot load FFmpeg"):
        assert resolve_backend("torchcodec") == "decord"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # only once
        frames = decode_frames(files["good"], [2], backend="torchcodec")
    assert torch.equal(frames, decode_frames(files["good"], [2], backend="decord"))


def _decode_in_child(path, queue):
    torch.set_num_threads(1)  # as DataLoader workers do: the parent's OpenMP pool does not survive fork
    frames = decode_frames(path, [3], backend="decord")
    queue.put((tuple(frames.shape), D._worker.proc.pid))


@pytest.mark.timeout(60)
def test_forked_child_gets_its_own_decord_worker(files):
    import multiprocessing as mp

    decode_frames(files["good"], [0], backend="decord")
    parent_pid = D._worker.proc.pid
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_decode_in_child, args=(files["good"], queue))
    child.start()
    try:
        shape, child_worker_pid = queue.get(timeout=30)
        child.join(30)
    finally:
        if child.is_alive():
            child.kill()
    assert shape == (1, 3, H, W) and child_worker_pid != parent_pid
    assert D._worker.proc.pid == parent_pid
    assert decode_frames(files["good"], [4], backend="decord").shape == (1, 3, H, W)


# --------------------------------------------------------------------------- audit fixes

def _write_pts(path, pts, tb, n=48, fps=16):
    """An H.264 mp4 whose frames carry the given presentation times (variable frame rate)."""
    from fractions import Fraction

    import av

    frames = make_clip(n, 64, 96, seed=5).permute(0, 2, 3, 1).contiguous().numpy()
    with av.open(str(path), "w", format="mp4") as c:
        s = c.add_stream("libx264", rate=Fraction(fps))
        s.width, s.height, s.pix_fmt = 96, 64, "yuv420p"
        s.codec_context.time_base = tb
        for i, im in enumerate(frames):
            f = av.VideoFrame.from_ndarray(im, format="rgb24")
            f.pts, f.time_base = pts[i], tb
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return str(path)


def test_header_fps_is_decords_average_rate_on_a_variable_frame_rate_file(tmp_path):
    """VLMEvalKit's fps sampling uses decord's get_avg_fps (avg_frame_rate); torchcodec's
    average_fps_from_header is the nominal r_frame_rate, 16 here."""
    from fractions import Fraction

    decord = pytest.importorskip("decord")
    from nrvl.video import vlmeval_sample

    pts = np.cumsum([0] + [1] * 23 + [4] * 24).tolist()  # 16 fps, then 4 fps
    path = _write_pts(tmp_path / "vfr.mp4", pts, Fraction(1, 16))
    vr = decord.VideoReader(path)
    want_fps = vr.get_avg_fps()
    want = [int(i * want_fps) for i in range(int(len(vr) / want_fps))]  # VLMEvalKit's fps=1 indices
    assert abs(want_fps - 16.0) > 1  # a real VFR case: the nominal rate would pick other frames
    for backend in BACKEND_NAMES:
        info = probe(path, backend=backend)
        assert info.header_fps == pytest.approx(want_fps, rel=1e-9), backend
        assert vlmeval_sample(info.num_frames, info.header_fps, fps=1.0) == want, backend


def test_relative_paths_mean_the_callers_directory_for_decord(tmp_path, monkeypatch):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    write_video(make_clip(10, 64, 64, seed=1), a / "v.mp4", fps=8)
    write_video(make_clip(30, 96, 128, seed=2), b / "v.mp4", fps=8)
    monkeypatch.chdir(a)
    assert probe("v.mp4", backend="decord").num_frames == 10  # the worker starts here
    monkeypatch.chdir(b)
    for backend in BACKEND_NAMES:
        assert (probe("v.mp4", backend=backend).num_frames, decode_frames("v.mp4", [20], backend=backend).shape) \
            == (30, (1, 3, 96, 128)), backend


PARENT = """
import os, signal, sys, threading, time
sys.path.insert(0, {repo!r})
import nrvl.video.decode as D
threading.Thread(target=lambda: D.probe({path!r}, backend="decord", timeout=600), daemon=True).start()
while D._worker is None:
    time.sleep(0.01)
time.sleep(1.0)  # the request is in: the child is stuck inside decord
print(D._worker.proc.pid, flush=True)
os.kill(os.getpid(), signal.SIGKILL)  # torchrun/SLURM stopping a rank: no atexit handler runs
"""


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as f:
            return any(line.split()[1] in ("Z", "X") for line in f if line.startswith("State:"))
    except FileNotFoundError:
        return True


@pytest.mark.timeout(60)
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_stuck_decord_worker_dies_with_its_parent(files, tmp_path):
    """decord spinning in native code (here: a stand-in decord whose reader never returns) must not
    outlive a killed parent."""
    import os
    import subprocess
    from pathlib import Path

    fake = tmp_path / "fake" / "decord"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("def cpu(i):\n    return i\n\nclass VideoReader:\n"
                                      "    def __init__(self, *a, **k):\n        while True:\n            pass\n")
    repo = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "fake")}
    proc = subprocess.run([sys.executable, "-c", PARENT.format(repo=repo, path=files["good"])], env=env,
                          capture_output=True, text=True, timeout=50)
    pid = int(proc.stdout.split()[0])
    deadline = time.monotonic() + 10
    while not _gone(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if not _gone(pid):
        os.kill(pid, 9)
        pytest.fail("the decord worker outlived its killed parent")


def test_an_edit_list_that_hides_frames_is_warned_about(tmp_path, monkeypatch):
    """torchcodec counts the frames it shows; when the header counts more, say that decord differs."""
    D._warned.clear()
    path = write_video(make_clip(8, 64, 64, seed=1), tmp_path / "v.mp4", fps=8)
    real = D._torchcodec_open

    def open_with_header_count(p, device):
        dec = real(p, device)

        class MD:  # the metadata of a file trimmed without re-encoding: 2 more frames in the header
            def __getattr__(self, k):
                return getattr(dec.metadata, k)

            num_frames_from_header = dec.metadata.num_frames + 2

        class Dec:
            metadata = MD()

            def __getattr__(self, k):
                return getattr(dec, k)

        return Dec()

    monkeypatch.setattr(D, "_torchcodec_open", open_with_header_count)
    with pytest.warns(RuntimeWarning, match=r"holds 8 frames but its header says 10 .* backend='decord'"):
        probe(path, backend="torchcodec")
