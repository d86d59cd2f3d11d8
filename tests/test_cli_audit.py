"""The ``nrvl`` command after the CLI audit: output folders that are safe to force and to resume,
no empty successes, honest sizes and summaries, checks at the boundary, one-line messages."""
from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import nrvl
import nrvl.cli as cli
import nrvl.kernels as K
from nrvl.video import decode_frames, make_clip, probe, vlmeval_frame_indices, write_video

from test_cli import nrvl as nrvl_cli, one_error_line as one_line, video_file  # noqa: F401 - a fixture

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"


def names_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def hidden(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob(".*"))


def read_pngs(folder: Path) -> torch.Tensor:
    return torch.stack([torch.from_numpy(np.asarray(Image.open(p).convert("RGB")).copy()).permute(2, 0, 1)
                        for p in sorted(folder.glob("frame_*.png"))])


def complete_noise_folder(folder: Path, name: str, frames: int) -> bool:
    want = sorted([f"{name}.mp4", "meta.json"] + [f"frame_{k:03d}.png" for k in range(frames)])
    return names_in(folder) == want and json.loads((folder / "meta.json").read_text())["noise"] == name


@pytest.fixture
def no_decoding(monkeypatch):
    """Fail the test if a video is decoded (a check that should come first did not)."""
    import nrvl.video

    def refuse(*a, **k):
        raise AssertionError("decoded before the argument check")

    monkeypatch.setattr(nrvl.video, "decode_frames", refuse)


# ----------------------------------------------------------------------------- 1. --out and --force


def test_force_never_deletes_the_input_or_the_current_folder(tmp_path, video_file, monkeypatch, capsys):
    work = tmp_path / "work"
    work.mkdir()
    clip = work / "clip.mp4"
    clip.write_bytes(video_file.read_bytes())
    (work / "notes.txt").write_text("mine")
    monkeypatch.chdir(work)
    assert nrvl_cli("corrupt", "clip.mp4", "--noise", "gaussian", "--ratio", 0.5, "--out", ".", "--force") == 2
    one_line(capsys.readouterr().err, "--out", "INPUT")
    assert nrvl_cli("corrupt", clip, "--noise", "gaussian", "--ratio", 0.5, "--out", work, "--force") == 2
    one_line(capsys.readouterr().err, "INPUT")
    sub = work / "sub"
    sub.mkdir()
    monkeypatch.chdir(sub)  # the current folder, even without the input in it
    assert nrvl_cli("corrupt", clip, "--noise", "gaussian", "--ratio", 0.5, "--out", ".", "--force") == 2
    one_line(capsys.readouterr().err, "current folder")
    assert nrvl_cli("corrupt", clip, "--noise", "gaussian", "--ratio", 0.5, "--out", "", "--force") == 2
    one_line(capsys.readouterr().err, "--out", "empty")
    assert names_in(work) == ["clip.mp4", "notes.txt", "sub"] and names_in(sub) == []
    assert (work / "notes.txt").read_text() == "mine"


def test_force_refuses_a_folder_holding_the_donor(tmp_path, video_file, capsys):
    out = tmp_path / "out"
    out.mkdir()
    donor = out / "donor.mp4"
    donor.write_bytes(video_file.read_bytes())
    assert nrvl_cli("corrupt", video_file, "--noise", "other_video", "--ratio", 0.5, "--donor", donor,
                    "--out", out, "--force") == 2
    one_line(capsys.readouterr().err, "--donor")
    assert names_in(out) == ["donor.mp4"]


def test_force_replaces_only_nrvl_output(tmp_path, video_file, capsys):
    out = tmp_path / "o"
    out.mkdir()
    (out / "old.txt").write_text("x")
    assert nrvl_cli("corrupt", video_file, "--noise", "frame_drop", "--ratio", 0.6, "--out", out, "--force") == 2
    one_line(capsys.readouterr().err, "old.txt", "did not write")
    assert names_in(out) == ["old.txt"]
    # our own output, one noise and several, is replaced (and never mixed with the old)
    single = tmp_path / "single"
    assert nrvl_cli("corrupt", video_file, "--noise", "frame_drop", "--ratio", 0.6, "--out", single) == 0
    assert nrvl_cli("corrupt", video_file, "--noise", "gaussian", "--ratio", 0.3, "--out", single, "--force") == 0
    assert "frame_drop.mp4" not in names_in(single) and "gaussian.mp4" in names_in(single)
    assert json.loads((single / "meta.json").read_text())["ratio"] == 0.3
    assert nrvl_cli("corrupt", video_file, "--noise", "frame_drop,gaussian", "--ratio", 0.6, "--frames", 4,
                    "--out", single, "--force") == 0
    assert names_in(single) == ["frame_drop", "gaussian", "index.json"]
    assert nrvl_cli("corrupt", video_file, "--noise", "impulse", "--ratio", 0.6, "--frames", 4,
                    "--out", single, "--force") == 0
    assert "impulse.mp4" in names_in(single) and "index.json" not in names_in(single)
    # a file of someone else's inside our output: refused as well
    (single / "notes.txt").write_text("x")
    assert nrvl_cli("corrupt", video_file, "--noise", "impulse", "--ratio", 0.6, "--out", single, "--force") == 2
    one_line(capsys.readouterr().err, "notes.txt")
    assert (single / "notes.txt").exists() and (single / "impulse.mp4").exists()
    assert hidden(tmp_path) == []


# ----------------------------------------------------------------------------- 2. stopping and resuming


def stop_at_call(monkeypatch, n: int, exc: BaseException):
    from nrvl.commands import corrupt as cmd

    real, calls = cmd.write_clip, []

    def write_clip(*a, **k):
        calls.append(a[1])
        if len(calls) == n:
            raise exc
        return real(*a, **k)

    monkeypatch.setattr(cmd, "write_clip", write_clip)
    return calls


NOISES4 = "frame_drop,gaussian,impulse,speckle"


def test_ctrl_c_keeps_finished_noises_and_a_rerun_skips_them(tmp_path, video_file, monkeypatch, capsys):
    out = tmp_path / "all"
    stop_at_call(monkeypatch, 3, KeyboardInterrupt())
    argv = ["corrupt", video_file, "--noise", NOISES4, "--ratio", 0.6, "--frames", 4, "--out", out]
    assert nrvl_cli(*argv) == 130
    err = capsys.readouterr().err
    assert "2 finished noise(s) kept" in one_line(err, "interrupted")
    # the two finished noises are in place and complete; nothing looks finished that is not
    assert names_in(out) == ["gaussian", "impulse"]
    assert all(complete_noise_folder(out / n, n, 4) for n in ("gaussian", "impulse"))
    assert hidden(tmp_path) == []
    kept = (out / "gaussian" / "meta.json").stat()
    monkeypatch.undo()
    assert nrvl_cli(*argv) == 0
    err = capsys.readouterr().err
    assert "skipping 2 noise(s) already finished" in err and "gaussian, impulse" in err
    index = json.loads((out / "index.json").read_text())
    assert index == {"written": ["gaussian", "impulse", "speckle", "frame_drop"], "skipped": {}}
    assert (out / "gaussian" / "meta.json").stat().st_mtime_ns == kept.st_mtime_ns  # not redone
    # the resumed folder is what one uninterrupted run writes
    fresh = tmp_path / "fresh"
    assert nrvl_cli("corrupt", video_file, "--noise", NOISES4, "--ratio", 0.6, "--frames", 4, "--out", fresh) == 0
    for name in index["written"]:
        assert torch.equal(read_pngs(out / name), read_pngs(fresh / name)), name
    assert hidden(tmp_path) == []


def test_a_rerun_with_other_settings_is_refused_and_force_redoes_all(tmp_path, video_file, monkeypatch, capsys):
    out = tmp_path / "all"
    stop_at_call(monkeypatch, 2, KeyboardInterrupt())
    assert nrvl_cli("corrupt", video_file, "--noise", NOISES4, "--ratio", 0.6, "--frames", 4, "--out", out) == 130
    monkeypatch.undo()
    capsys.readouterr()
    assert nrvl_cli("corrupt", video_file, "--noise", NOISES4, "--ratio", 0.9, "--frames", 4, "--out", out) == 2
    one_line(capsys.readouterr().err, "another run", "ratio", "--force")
    assert names_in(out) == ["gaussian"]
    assert nrvl_cli("corrupt", video_file, "--noise", NOISES4, "--ratio", 0.9, "--frames", 4, "--out", out,
                    "--force") == 0
    assert names_in(out) == ["frame_drop", "gaussian", "impulse", "index.json", "speckle"]
    assert {json.loads((out / n / "meta.json").read_text())["ratio"] for n in NOISES4.split(",")} == {0.9}
    assert hidden(tmp_path) == []


def test_a_write_error_midway_keeps_what_was_finished(tmp_path, video_file, monkeypatch, capsys):
    out = tmp_path / "deep" / "out"
    stop_at_call(monkeypatch, 2, OSError(28, "No space left on device"))
    assert nrvl_cli("corrupt", video_file, "--noise", NOISES4, "--ratio", 0.6, "--frames", 4, "--out", out) == 2
    line = one_line(capsys.readouterr().err, "--out", "No space left on device", "1 finished noise(s) kept")
    assert ".tmp" not in line  # names --out, not a hidden temporary file
    assert names_in(out) == ["gaussian"] and hidden(tmp_path) == []


SELF_SIGNAL = """
import os, signal, sys
from nrvl.commands import corrupt as cmd
real, calls = cmd.write_clip, []
def write_clip(folder, name, *a, **k):
    calls.append(name)
    if len(calls) == 2:
        (folder / "half-written.png").write_bytes(b"x")
        os.kill(os.getpid(), getattr(signal, sys.argv[1]))
    return real(folder, name, *a, **k)
cmd.write_clip = write_clip
from nrvl.cli import main
sys.exit(main(sys.argv[2:]))
"""


def run_signalled(sig: str, argv: list) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", SELF_SIGNAL, sig, *map(str, argv)], capture_output=True,
                          text=True, timeout=300, cwd=REPO)


@pytest.mark.parametrize("sig, rc, said", [("SIGTERM", 143, "terminated"), ("SIGINT", 130, "interrupted")])
def test_sigterm_stops_like_ctrl_c(sig, rc, said, tmp_path, video_file):
    out = tmp_path / "t"
    argv = ["corrupt", video_file, "--noise", NOISES4, "--ratio", 0.6, "--frames", 4, "--out", out]
    r = run_signalled(sig, argv)
    assert r.returncode == rc, r.stderr
    assert "1 finished noise(s) kept" in one_line(r.stderr, f"nrvl corrupt: {said}")
    assert names_in(out) == ["gaussian"] and hidden(tmp_path) == []


def test_a_killed_run_leaves_no_complete_looking_folder_and_the_next_run_cleans_up(tmp_path, video_file, capsys):
    out = tmp_path / "k"
    argv = ["corrupt", video_file, "--noise", NOISES4, "--ratio", 0.6, "--frames", 4, "--out", out]
    r = run_signalled("SIGKILL", argv)
    assert r.returncode == -signal.SIGKILL
    assert hidden(tmp_path), "the killed run should have left its temporary folder"
    visible = [n for n in names_in(out) if not n.startswith(".")]
    assert visible == ["gaussian"] and complete_noise_folder(out / "gaussian", "gaussian", 4)
    assert nrvl_cli(*argv) == 0
    assert hidden(tmp_path) == []  # the dead run's temporary folder is gone
    assert json.loads((out / "index.json").read_text())["written"] == ["gaussian", "impulse", "speckle",
                                                                       "frame_drop"]
    assert "skipping 1 noise(s) already finished" in capsys.readouterr().err


# ----------------------------------------------------------------------------- 3. --severity


def test_severity_that_leaves_no_noise_is_an_error(tmp_path, video_file, capsys):
    out = tmp_path / "s"
    assert nrvl_cli("corrupt", video_file, "--noise", "temporal", "--severity", 3, "--ratio", 0.6, "--out", out) == 2
    one_line(capsys.readouterr().err, "--severity 3", "severity table")
    assert names_in(tmp_path) == []


def test_noises_without_a_severity_table_are_listed_as_skipped(tmp_path, video_file):
    out = tmp_path / "s"
    assert nrvl_cli("corrupt", video_file, "--noise", "frame_drop,gaussian", "--severity", 3, "--ratio", 0.6,
                    "--frames", 4, "--out", out) == 0
    index = json.loads((out / "index.json").read_text())
    assert index["written"] == ["gaussian"]
    assert list(index["skipped"]) == ["frame_drop"] and "no severity table" in index["skipped"]["frame_drop"]


# ----------------------------------------------------------------------------- 4. odd sizes


def odd_video(path: Path, H: int = 33, W: int = 47, T: int = 6) -> Path:
    import av

    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=8)
        s.width, s.height, s.pix_fmt = W, H, "yuv444p"
        for t in range(T):
            img = (np.random.RandomState(t).rand(H, W, 3) * 255).astype(np.uint8)
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def test_odd_sizes_record_the_padded_mp4(tmp_path, capsys):
    src = odd_video(tmp_path / "odd.mp4")
    out = tmp_path / "o"
    assert nrvl_cli("corrupt", src, "--noise", "gaussian", "--ratio", 0.5, "--frames", 4, "--out", out) == 0
    meta = json.loads((out / "meta.json").read_text())
    info = probe(out / "gaussian.mp4")
    assert (meta["width"], meta["height"]) == (47, 33) == Image.open(out / "frame_000.png").size
    assert (meta["mp4_width"], meta["mp4_height"], meta["mp4_padded"]) == (info.width, info.height, True) == \
        (48, 34, True)
    assert nrvl_cli("corrupt", "--help") == 0
    assert "padded" in capsys.readouterr().out
    assert "padded" in README.read_text().split("## The `nrvl` command")[1].split("\n## ")[0]


# ----------------------------------------------------------------------------- 5. gallery failures


def fail_noise(monkeypatch, name: str):
    real = K.corrupt

    def corrupt(video, noise, *a, **k):
        if noise == name:
            raise RuntimeError(f"{noise} cannot run here (simulated)")
        return real(video, noise, *a, **k)

    monkeypatch.setattr(K, "corrupt", corrupt)


def test_gallery_with_every_noise_failed_exits_2_and_writes_nothing(tmp_path, monkeypatch, capsys):
    fail_noise(monkeypatch, "gaussian")
    out = tmp_path / "g.png"
    assert nrvl_cli("gallery", "--ratio", 0.6, "--out", out, "--noises", "gaussian", "--frames", 3) == 2
    one_line(capsys.readouterr().err, "every noise failed", "simulated")
    assert names_in(tmp_path) == []


def test_gallery_summary_counts_failed_rows_apart(tmp_path, monkeypatch, capsys):
    fail_noise(monkeypatch, "gaussian")
    out = tmp_path / "g.png"
    assert nrvl_cli("gallery", "--ratio", 0.6, "--out", out, "--noises", "gaussian", "frame_drop", "--frames", 3,
                    "--thumb-width", 32) == 0
    said = capsys.readouterr()
    assert "1 noise + clean row, 1 failed (grey rows): gaussian" in said.out
    one_line(said.err, "nrvl gallery: gaussian failed")


# ----------------------------------------------------------------------------- 6. --fps


@pytest.mark.parametrize("fps", ["5000", "1000", "inf", "nan", "1e-9", "-1"])
def test_fps_out_of_the_writers_range_is_refused_before_decoding(fps, tmp_path, video_file, no_decoding, capsys):
    assert nrvl_cli("corrupt", video_file, "--noise", "gaussian", "--ratio", 0.5, "--fps", fps,
                    "--out", tmp_path / "o") == 2
    one_line(capsys.readouterr().err, "--fps", "1000")
    assert names_in(tmp_path) == []


def test_fps_at_the_edges_of_the_range_is_written(tmp_path, video_file):
    for fps in ("0.001", "999.5"):
        out = tmp_path / fps
        assert nrvl_cli("corrupt", video_file, "--noise", "gaussian", "--ratio", 0.5, "--frames", 2,
                        "--fps", fps, "--out", out) == 0
        assert probe(out / "gaussian.mp4").fps == pytest.approx(float(fps), rel=1e-3)


# ----------------------------------------------------------------------------- 7. decode backend, warnings


def test_decode_backend_flag(tmp_path, video_file, capsys):
    out = tmp_path / "d"
    assert nrvl_cli("corrupt", video_file, "--noise", "frame_drop", "--ratio", 0.6, "--frames", 4,
                    "--decode-backend", "decord", "--out", out) == 0
    assert json.loads((out / "meta.json").read_text())["decode_backend"] == "decord"
    clean = decode_frames(video_file, vlmeval_frame_indices(probe(video_file).num_frames, 4), backend="decord")
    assert torch.equal(read_pngs(out), K.corrupt(clean, "frame_drop", 0.6, seed=0))
    assert nrvl_cli("gallery", video_file, "--decode-backend", "decord", "--ratio", 0.6, "--noises", "gaussian",
                    "--frames", 2, "--thumb-width", 32, "--out", tmp_path / "g.png") == 0
    assert nrvl_cli("corrupt", video_file, "--noise", "gaussian", "--ratio", 0.6, "--decode-backend", "ffmpeg",
                    "--out", tmp_path / "x") == 2
    one_line(capsys.readouterr().err, "--decode-backend")


def test_warnings_are_one_nrvl_line(tmp_path, video_file, monkeypatch, capsys):
    import nrvl.video

    real = nrvl.video.decode_frames

    def warn_then_decode(*a, **k):
        warnings.warn("the stream holds 3 frames but its header says 12\n(a truncated file)", RuntimeWarning)
        return real(*a, **k)

    monkeypatch.setattr(nrvl.video, "decode_frames", warn_then_decode)
    assert nrvl_cli("corrupt", video_file, "--noise", "gaussian", "--ratio", 0.5, "--frames", 2,
                    "--out", tmp_path / "o") == 0
    one_line(capsys.readouterr().err, "[nrvl] warning: the stream holds 3 frames but its header says 12 (a truncated")


def truncated(src: Path, dst: Path, fraction: float) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * fraction)])
    return dst


def test_a_truncated_input_gives_one_line(tmp_path, video_file):
    bad = truncated(video_file, tmp_path / "t.mp4", 1 / 3)
    r = subprocess.run([sys.executable, "-m", "nrvl.cli", "corrupt", str(bad), "--noise", "gaussian", "--ratio",
                        "0.5", "--out", str(tmp_path / "o")], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert r.returncode == 2
    line = one_line(r.stderr, "nrvl corrupt: error:", "t.mp4")
    if "warning" in line:  # the file's header promises frames the stream lacks: the warning is counted
        assert "--verbose for the traceback and 1 warning" in line
        v = subprocess.run([sys.executable, "-m", "nrvl.cli", "corrupt", str(bad), "--noise", "gaussian", "--ratio",
                            "0.5", "--out", str(tmp_path / "o"), "--verbose"], capture_output=True, text=True,
                           cwd=REPO, timeout=300)
        assert v.returncode == 2 and "[nrvl] warning: " in v.stderr and "RuntimeWarning" not in v.stderr


def test_a_truncated_input_that_decodes_warns_in_one_line(tmp_path):
    src = write_video(make_clip(24, 48, 64, seed=0), tmp_path / "c.mp4", fps=8)
    for fraction in (0.9, 0.95, 0.85, 0.8):  # a cut inside the last frames' data
        bad = truncated(src, tmp_path / f"t{fraction}.mp4", fraction)
        r = subprocess.run([sys.executable, "-m", "nrvl.cli", "corrupt", str(bad), "--noise", "gaussian",
                            "--ratio", "0.5", "--frames", "4", "--out", str(tmp_path / f"o{fraction}")],
                           capture_output=True, text=True, cwd=REPO, timeout=300)
        if r.returncode == 0 and r.stderr.strip():
            break
    else:
        pytest.skip("no truncation of this clip decodes here")
    assert "RuntimeWarning" not in r.stderr
    one_line(r.stderr, "[nrvl] warning:", "--decode-backend decord")


# ----------------------------------------------------------------------------- 8. writability first


def test_gallery_out_under_a_file_names_it(tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    assert nrvl_cli("gallery", "--ratio", 0.6, "--noises", "gaussian", "--out", tmp_path / "afile" / "a.png") == 2
    line = one_line(capsys.readouterr().err, "afile/a.png", "afile is a file, not a folder")
    assert "Errno" not in line


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs /proc, a folder nobody can write in")
def test_an_unwritable_out_fails_before_decoding(tmp_path, video_file, no_decoding, monkeypatch, capsys):
    for noise in ("gaussian", "gaussian,snow"):
        assert nrvl_cli("corrupt", video_file, "--noise", noise, "--ratio", 0.5, "--out", "/proc/nrvl-x/y") == 2
        line = one_line(capsys.readouterr().err, "--out /proc/nrvl-x/y", "cannot write in /proc")
        assert ".tmp" not in line
    import nrvl.video

    monkeypatch.setattr(nrvl.video, "make_clip", lambda *a, **k: pytest.fail("drew before checking --out"))
    assert nrvl_cli("gallery", "--ratio", 0.6, "--noises", "gaussian", "--out", "/proc/nrvl-x.png") == 2
    one_line(capsys.readouterr().err, "--out /proc/nrvl-x.png", "cannot write in /proc")


# ----------------------------------------------------------------------------- 9. the demo's own parser


def test_demo_bad_flag_is_one_line_of_its_own(monkeypatch, capsys):
    from nrvl import demo, evaluate

    monkeypatch.setattr(evaluate, "main", lambda *a, **k: pytest.fail("the evaluation ran"))
    assert demo.main(["--badflag"]) == 2
    line = one_line(capsys.readouterr().err, "python -m nrvl.demo: error:", "--badflag", "--help")
    assert "--data" not in line
    assert demo.main(["--limit", "many"]) == 2  # a flag passed on to eval/run.py, checked up front
    one_line(capsys.readouterr().err, "--limit", "many")


def test_demo_help_is_plain_and_complete(capsys):
    from nrvl import demo

    assert demo.main(["--help"]) == 0
    text = capsys.readouterr().out
    assert "(default: True)" not in text and "drawn by default" in text
    for markup in (":mod:", "``", "**"):
        assert markup not in text
    flat = " ".join(text.split())
    assert "--model MODEL model to evaluate" in flat and "--work-dir DIR where everything is written" in flat
    assert "draws no gallery" in flat


# ----------------------------------------------------------------------------- 10. README examples


def test_readme_corrupt_examples_run_in_sequence(tmp_path, video_file, monkeypatch, capsys):
    section = README.read_text().split("## The `nrvl` command")[1].split("\n## ")[0]
    block = re.search(r"```bash\n(.*?)```", section, flags=re.S)[1]
    commands = [shlex.split(line.split("#")[0]) for line in block.splitlines() if line.startswith("nrvl corrupt")]
    assert len(commands) >= 2
    (tmp_path / "clip.mp4").write_bytes(video_file.read_bytes())
    monkeypatch.chdir(tmp_path)
    for argv in commands:
        assert cli.main(argv[1:]) == 0, capsys.readouterr().err
    assert "index.json" in section and "target_block" in section


# ----------------------------------------------------------------------------- 11. target_block's message


def test_target_block_message_is_for_the_command_line():
    from nrvl.commands.corrupt import noise_failure

    kernel_says = FileNotFoundError("... or pass your own detector: corrupt(video, 'target_block', ratio, detector=fn)")
    text = noise_failure("target_block", kernel_says)
    assert "needs an object detector" in text and "only from Python" in text and "detector=fn" not in text


def weights_missing() -> bool:
    try:
        from nrvl.kernels.occlusion import _weights_file

        return not os.path.isfile(_weights_file()[1])
    except Exception:  # noqa: BLE001 - torchvision missing: target_block cannot run either
        return False


@pytest.mark.skipif(not weights_missing(), reason="the COCO detector weights are here: target_block runs")
def test_target_block_without_weights_from_the_command_line(tmp_path, video_file, capsys):
    assert nrvl_cli("corrupt", video_file, "--noise", "target_block", "--ratio", 0.5, "--out", tmp_path / "t") == 2
    line = one_line(capsys.readouterr().err, "needs an object detector", "only from Python")
    assert "detector=fn" not in line
    out = tmp_path / "two"
    assert nrvl_cli("corrupt", video_file, "--noise", "target_block,gaussian", "--ratio", 0.5, "--frames", 2,
                    "--out", out) == 0
    reason = json.loads((out / "index.json").read_text())["skipped"]["target_block"]
    assert "only from Python" in reason and "detector=fn" not in reason


# ----------------------------------------------------------------------------- 12. meta.json


def test_meta_records_what_reproduces_the_output(tmp_path, video_file, monkeypatch):
    monkeypatch.chdir(video_file.parent)
    out = tmp_path / "m"
    assert nrvl_cli("corrupt", video_file.name, "--noise", "zoom_blur,other_video,gaussian", "--severity", 2,
                    "--ratio", 0.6, "--frames", 4, "--out", out) == 0
    meta = json.loads((out / "zoom_blur" / "meta.json").read_text())
    assert meta["input"] == str(video_file.resolve()) and os.path.isabs(meta["input"])
    assert meta["nrvl_version"] == nrvl.__version__
    assert meta["decode_backend"] in ("torchcodec", "decord")
    want = {**K.NOISES["zoom_blur"].defaults, **K.NOISES["zoom_blur"].severities[1]}
    assert meta["params"] == json.loads(json.dumps({k: list(v) if isinstance(v, tuple) else v
                                                    for k, v in want.items()}))
    gaussian = json.loads((out / "gaussian" / "meta.json").read_text())
    assert gaussian["params"] == {"std": K.NOISES["gaussian"].severities[1]["std"]} and gaussian["severity"] == 2
    # other_video has no severity table: skipped, and listed so
    assert "other_video" in json.loads((out / "index.json").read_text())["skipped"]
    out2 = tmp_path / "ov"
    assert nrvl_cli("corrupt", video_file.name, "--noise", "other_video", "--ratio", 0.6, "--frames", 4,
                    "--seed", 4, "--out", out2) == 0
    meta = json.loads((out2 / "meta.json").read_text())
    assert meta["params"] == {"donor": "generated (make_clip, seed 5)"} and meta["donor"] == meta["params"]["donor"]


# ----------------------------------------------------------------------------- 13. the same donor


def test_gallery_and_corrupt_use_the_same_generated_donor(tmp_path, video_file, monkeypatch):
    donors = []
    real = K.corrupt

    def corrupt(video, noise, *a, **k):
        if noise == "other_video":
            donors.append(k["donor"].clone())
        return real(video, noise, *a, **k)

    monkeypatch.setattr(K, "corrupt", corrupt)
    assert nrvl_cli("corrupt", video_file, "--noise", "other_video", "--ratio", 0.6, "--frames", 3, "--seed", 5,
                    "--out", tmp_path / "o") == 0
    assert nrvl_cli("gallery", video_file, "--noises", "other_video", "--ratio", 0.6, "--frames", 3, "--seed", 5,
                    "--thumb-width", 32, "--out", tmp_path / "g.png") == 0
    assert len(donors) == 2 and torch.equal(donors[0], donors[1])
    assert torch.equal(donors[0], make_clip(3, 48, 64, seed=6))


# ----------------------------------------------------------------------------- 14. nrvl list


def test_list_is_grouped_by_family_and_parseable(capsys):
    assert nrvl_cli("list") == 0
    rows = [ln.split() for ln in capsys.readouterr().out.splitlines()[1:] if ln.split()[:1] != [] and
            ln.split()[0] in K.NOISES]
    assert sorted(r[0] for r in rows) == sorted(K.list_noises())
    families = [r[1] for r in rows]
    assert all(f == K.NOISES[r[0]].family for f, r in zip(families, rows))
    blocks = [f for i, f in enumerate(families) if i == 0 or f != families[i - 1]]
    assert blocks == list(K.FAMILIES)  # each family once, in FAMILIES order
    assert nrvl_cli("list", "--names") == 0
    assert capsys.readouterr().out.split() == [r[0] for r in rows]
