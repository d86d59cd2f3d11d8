"""The ``nrvl`` command: list, corrupt, gallery, the eval/report hand-off, and its errors."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import nrvl.cli as cli
import nrvl.kernels as K
from nrvl.commands import gallery
from nrvl.video import decode_frames, make_clip, probe, vlmeval_frame_indices, write_video

N_SRC = 12  # frames in the test video


@pytest.fixture(scope="module")
def video_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("src") / "clip.mp4"
    write_video(make_clip(N_SRC, 48, 64, seed=0), path, fps=8)
    return path


@pytest.fixture(scope="module")
def donor_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("donor") / "donor.mp4"
    write_video(make_clip(5, 30, 40, seed=9), path, fps=8)
    return path


def nrvl(*argv) -> int:
    return cli.main([str(a) for a in argv])


def one_error_line(err: str, *needles: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got {lines}"
    for needle in needles:
        assert needle in lines[0]
    return lines[0]


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# ----------------------------------------------------------------------------- parser and list


def test_cli_import_does_not_import_torch():
    code = "import sys, nrvl.cli as c; c.build_parser(); sys.exit(int('torch' in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_help_and_no_command(capsys):
    assert nrvl("--help") == 0
    out = capsys.readouterr().out
    for cmd in ("list", "corrupt", "gallery", "eval", "report"):
        assert cmd in out
    assert nrvl() == 2


def test_list_prints_every_registered_noise(capsys):
    assert nrvl("list") == 0
    out = capsys.readouterr().out
    names = K.list_noises()
    lines = out.splitlines()
    for name in names:
        row = next(ln for ln in lines if ln.split()[:1] == [name])
        assert K.NOISES[name].family in row and K.NOISES[name].description in row
    assert f"{len(names)} noises" in out
    assert nrvl("list", "--names") == 0  # grouped by family, as the table
    assert capsys.readouterr().out.split() == [n for f in K.FAMILIES for n in K.list_noises(f)]
    assert nrvl("list", "--family", "temporal", "--names") == 0
    assert capsys.readouterr().out.split() == K.list_noises("temporal")


# ----------------------------------------------------------------------------- corrupt


def expected_frames(video_file: Path, n: int | None, name: str, ratio: float, seed: int, **kw):
    N = probe(video_file).num_frames
    idx = list(range(N)) if n is None else vlmeval_frame_indices(N, n)
    clean = decode_frames(video_file, idx)
    return clean, K.corrupt(clean, name, ratio, seed=seed, return_params=True, **kw)


def read_png(path: Path) -> torch.Tensor:
    """uint8 ``[3, H, W]``."""
    return torch.from_numpy(np.asarray(Image.open(path).convert("RGB")).copy()).permute(2, 0, 1)


def read_pngs(folder: Path) -> torch.Tensor:
    return torch.stack([read_png(p) for p in sorted(folder.glob("frame_*.png"))])


def test_corrupt_one_noise_writes_mp4_pngs_and_meta(tmp_path, video_file, capsys):
    out = tmp_path / "out"
    assert nrvl("corrupt", video_file, "--noise", "frame_drop", "--ratio", 0.6, "--seed", 3, "--out", out) == 0
    clean, (want, params) = expected_frames(video_file, 8, "frame_drop", 0.6, 3)
    got = read_pngs(out)
    assert got.shape == (8, 3, 48, 64) and torch.equal(got, want)  # PNG is lossless: the exact pixels
    changed = (got != clean).flatten(1).any(1)
    assert changed.sum() == 4 and torch.equal(changed, params["frames"][0])
    assert (got[changed] == 0).all()
    meta = json.loads((out / "meta.json").read_text())
    assert meta["touched_frames"] == changed.nonzero().flatten().tolist()
    assert meta["source_frame_indices"] == vlmeval_frame_indices(N_SRC, 8)
    assert (meta["noise"], meta["ratio"], meta["seed"]) == ("frame_drop", 0.6, 3)
    assert probe(out / "frame_drop.mp4").num_frames == 8
    assert leftovers(tmp_path) == ["out"]
    assert "frame_drop" in capsys.readouterr().out


def test_corrupt_all_frames_and_spatial_noise(tmp_path, video_file):
    out = tmp_path / "g"
    assert nrvl("corrupt", video_file, "--noise", "gaussian", "--ratio", 0.3, "--all-frames", "--out", out) == 0
    clean, (want, params) = expected_frames(video_file, None, "gaussian", 0.3, 0)
    got = read_pngs(out)
    assert got.shape[0] == N_SRC and torch.equal(got, want)
    assert (got != clean).flatten(1).any(1).sum() == int(N_SRC * 0.3)
    assert probe(out / "gaussian.mp4").num_frames == N_SRC


def test_corrupt_other_video_with_a_donor_file(tmp_path, video_file, donor_file):
    out = tmp_path / "ov"
    assert nrvl("corrupt", video_file, "--noise", "other_video", "--ratio", 0.9, "--frames", 4,
                "--donor", donor_file, "--out", out) == 0
    donor = decode_frames(donor_file, vlmeval_frame_indices(probe(donor_file).num_frames, 4))
    clean, (want, _) = expected_frames(video_file, 4, "other_video", 0.9, 0, donor=donor)
    assert torch.equal(read_pngs(out), want)
    assert json.loads((out / "meta.json").read_text())["donor"] == str(donor_file.resolve())


# Noises that may need an asset this machine lacks (target_block's detector weights).
MAY_SKIP = {"target_block"}


def test_corrupt_all_writes_one_folder_per_noise(tmp_path, video_file, capsys):
    out = tmp_path / "all"
    assert nrvl("corrupt", video_file, "--noise", "all", "--ratio", 0.9, "--frames", 4, "--out", out) == 0
    index = json.loads((out / "index.json").read_text())
    assert set(index["skipped"]) <= MAY_SKIP
    assert sorted(index["written"] + list(index["skipped"])) == sorted(K.list_noises())
    for name in index["skipped"]:
        assert f"skipping {name}" in capsys.readouterr().err
    assert leftovers(out) == sorted(index["written"] + ["index.json"])
    for name in index["written"]:
        files = leftovers(out / name)
        assert files == sorted([f"{name}.mp4", "meta.json"] + [f"frame_{k:03d}.png" for k in range(4)]), name
    assert leftovers(tmp_path) == ["all"]


def test_corrupt_family_and_list(tmp_path, video_file, capsys):
    out = tmp_path / "fam"
    assert nrvl("corrupt", video_file, "--noise", "temporal,gaussian", "--ratio", 0.6, "--frames", 4,
                "--out", out) == 0
    assert leftovers(out) == sorted(K.list_noises("temporal") + ["gaussian", "index.json"])
    # --severity with several noises skips those without a table, and says so
    out2 = tmp_path / "sev"
    assert nrvl("corrupt", video_file, "--noise", "frame_drop,gaussian", "--ratio", 0.6, "--frames", 4,
                "--severity", 2, "--out", out2) == 0
    assert leftovers(out2) == ["gaussian", "index.json"]
    assert "frame_drop" in capsys.readouterr().err


def test_corrupt_force_replaces_and_refuses_without(tmp_path, video_file, capsys):
    out = tmp_path / "o"
    assert nrvl("corrupt", video_file, "--noise", "gaussian", "--ratio", 0.6, "--out", out) == 0
    before = leftovers(out)
    assert nrvl("corrupt", video_file, "--noise", "frame_drop", "--ratio", 0.6, "--out", out) == 2
    one_error_line(capsys.readouterr().err, "--force")
    assert leftovers(out) == before
    assert nrvl("corrupt", video_file, "--noise", "frame_drop", "--ratio", 0.6, "--out", out, "--force") == 0
    assert "gaussian.mp4" not in leftovers(out) and "frame_drop.mp4" in leftovers(out)
    assert leftovers(tmp_path) == ["o"]
    # a folder of other files is never replaced (see test_cli_audit.py)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "old.txt").write_text("x")
    assert nrvl("corrupt", video_file, "--noise", "frame_drop", "--ratio", 0.6, "--out", tmp_path / "mine",
                "--force") == 2
    one_error_line(capsys.readouterr().err, "old.txt")
    assert leftovers(tmp_path / "mine") == ["old.txt"]


def test_failure_before_a_noise_finished_leaves_nothing(tmp_path, video_file, monkeypatch, capsys):
    from nrvl.commands import corrupt as cmd

    calls = []
    real = cmd.write_clip

    def flaky(*a, **k):
        calls.append(1)
        if len(calls) == 1:  # a later failure keeps the noises finished (test_cli_audit.py)
            raise OSError("disk full (simulated)")
        return real(*a, **k)

    monkeypatch.setattr(cmd, "write_clip", flaky)
    out = tmp_path / "deep" / "er" / "out"
    assert nrvl("corrupt", video_file, "--noise", "temporal", "--ratio", 0.6, "--frames", 4, "--out", out) == 2
    one_error_line(capsys.readouterr().err, "disk full")
    assert leftovers(tmp_path) == []  # not even the parent folders it created


# ----------------------------------------------------------------------------- gallery


def test_gallery_size_labels_and_marks(tmp_path, capsys):
    out = tmp_path / "sheet.png"
    names = ["frame_drop", "gaussian", "frame_repeat"]
    assert nrvl("gallery", "--ratio", 0.6, "--out", out, "--frames", 5, "--noises", *names,
                "--thumb-width", 64, "--seed", 2) == 0
    img = read_png(out)
    th, tw = gallery.thumb_size(*gallery.CLIP_SIZE, 64)
    assert tuple(img.shape[1:]) == gallery.sheet_size(1 + len(names), 5, th, tw)
    # rows = 1 clean + one per noise, columns = frames: the size grows by one cell per row/column
    h3, w5 = gallery.sheet_size(3, 5, th, tw)
    assert gallery.sheet_size(4, 5, th, tw)[0] - h3 == th + 2 * gallery.BORDER + gallery.GAP
    assert gallery.sheet_size(3, 6, th, tw)[1] - w5 == tw + 2 * gallery.BORDER + gallery.GAP
    # the border of a cell is red exactly where the noise touched the frame
    clip = make_clip(5, *gallery.CLIP_SIZE, seed=0)
    cell_h, cell_w = th + 2 * gallery.BORDER, tw + 2 * gallery.BORDER
    for r, name in enumerate([None] + names):
        touched = [False] * 5 if name is None else \
            K.corrupt(clip, name, 0.6, seed=2, return_params=True)[1]["frames"][0].tolist()
        y = gallery.HEADER_H + gallery.GAP + r * (cell_h + gallery.GAP)
        for t in range(5):
            x = gallery.LABEL_W + gallery.GAP + t * (cell_w + gallery.GAP)
            colour = tuple(img[:, y, x + cell_w // 2].tolist())
            assert colour == (gallery.MARKED if touched[t] else gallery.UNMARKED), (name, t)
    assert "sheet.png" in capsys.readouterr().out


def test_gallery_of_a_file_with_all_noises(tmp_path, video_file, capsys):
    out = tmp_path / "all.png"
    assert nrvl("gallery", video_file, "--ratio", 0.9, "--out", out, "--frames", 3, "--thumb-width", 32) == 0
    th, tw = gallery.thumb_size(48, 64, 32)
    assert Image.open(out).size[::-1] == gallery.sheet_size(1 + len(K.list_noises()), 3, th, tw)
    assert leftovers(tmp_path) == ["all.png"]
    # a noise that cannot run here gets a labelled grey row and a one-line warning, not a crash
    for line in capsys.readouterr().err.splitlines():
        assert any(line.startswith(f"nrvl gallery: {n} failed: ") for n in MAY_SKIP), line


# ----------------------------------------------------------------------------- errors


BAD = [
    (["corrupt", "{missing}", "--noise", "gaussian", "--ratio", "0.6"], "no such file"),
    (["corrupt", "{video}", "--noise", "gaussian", "--ratio", "1.5"], "--ratio"),
    (["corrupt", "{video}", "--noise", "gaussian", "--ratio", "abc"], "--ratio"),
    (["corrupt", "{video}", "--noise", "gausian", "--ratio", "0.6"], "gaussian"),
    (["corrupt", "{video}", "--noise", "gaussian", "--ratio", "0.6", "--frames", "0"], "--frames"),
    (["corrupt", "{video}", "--noise", "gaussian", "--ratio", "0.6", "--frames", "4", "--all-frames"],
     "--all-frames"),
    (["corrupt", "{video}", "--noise", "gaussian", "--ratio", "0.6", "--severity", "7"], "--severity"),
    (["corrupt", "{video}", "--noise", "frame_drop", "--ratio", "0.6", "--severity", "3"], "severity"),
    (["corrupt", "{text}", "--noise", "gaussian", "--ratio", "0.6"], "notvideo.mp4"),
    (["corrupt", "{video}", "--noise", "gaussian", "--ratio", "0.6", "--fps", "0"], "--fps"),
    (["corrupt", "{video}", "--noise", "gaussian", "--ratio", "0.6", "--device", "cuda:7"], "--device"),
    (["gallery", "--ratio", "0.6", "--out", "{tmp}/g.jpg"], ".png"),
    (["gallery", "--ratio", "0.6", "--noises", "nope", "--out", "{tmp}/g.png"], "nope"),
    (["corrupt", "{video}", "--ratio", "0.6"], "--noise"),
    (["frobnicate"], "frobnicate"),
]
BAD_IDS = ["missing-input", "ratio-range", "ratio-text", "unknown-noise", "frames-0", "frames-and-all",
           "severity-range", "severity-no-table", "not-a-video", "fps-0", "no-such-device", "gallery-jpg",
           "gallery-unknown-noise", "missing-noise", "unknown-command"]


@pytest.mark.parametrize("argv,needle", BAD, ids=BAD_IDS)
def test_bad_arguments_exit_2_with_one_line_and_no_output(argv, needle, tmp_path, video_file, capsys):
    if needle == "--device" and torch.cuda.device_count() > 7:
        pytest.skip("this machine has a cuda:7")
    text = tmp_path / "notvideo.mp4"
    text.write_text("not a video\n")
    work = tmp_path / "work"
    work.mkdir()
    subst = {"{missing}": str(tmp_path / "missing.mp4"), "{video}": str(video_file), "{text}": str(text),
             "{tmp}": str(work)}
    argv = [subst.get(a, a.replace("{tmp}", str(work))) for a in argv]
    if argv[0] == "corrupt" and "--out" not in argv:
        argv += ["--out", str(work / "out")]
    assert nrvl(*argv) == 2
    captured = capsys.readouterr()
    one_error_line(captured.err, needle)
    assert "Traceback" not in captured.err
    assert leftovers(work) == []


def test_verbose_prints_the_traceback(tmp_path, capsys):
    text = tmp_path / "bad.mp4"
    text.write_text("nope")
    assert nrvl("corrupt", text, "--noise", "gaussian", "--ratio", 0.6, "--out", tmp_path / "o", "--verbose") == 2
    assert "Traceback" in capsys.readouterr().err
    assert leftovers(tmp_path) == ["bad.mp4"]


def test_real_process_exit_code_and_stderr(tmp_path):
    r = subprocess.run([sys.executable, "-m", "nrvl.cli", "corrupt", str(tmp_path / "x.mp4"), "--noise",
                        "gaussian", "--ratio", "2", "--out", str(tmp_path / "o")],
                       capture_output=True, text=True)
    assert r.returncode == 2 and r.stdout == ""
    one_error_line(r.stderr, "nrvl corrupt: error:", "--ratio")


def test_eval_and_report_are_handed_off(monkeypatch, capsys):
    seen = {}
    fake = type(sys)("fake_eval")
    fake.main = lambda argv: seen.setdefault("argv", argv) and 0
    monkeypatch.setitem(sys.modules, "fake_eval", fake)
    monkeypatch.setitem(cli.PASSTHROUGH, "eval", ("fake_eval", "x"))
    assert nrvl("eval", "--data", "MMBench_Video_8frame_nopack", "--ratio", "0.9") == 0
    assert seen["argv"] == ["--data", "MMBench_Video_8frame_nopack", "--ratio", "0.9"]
    monkeypatch.setitem(cli.PASSTHROUGH, "report", ("nrvl.no_such_module_here", "x"))
    assert nrvl("report", "--anything") == 2
    one_error_line(capsys.readouterr().err, "nrvl report: error:", "nrvl.no_such_module_here")


@pytest.mark.parametrize("argv", [["-v", "report", "{tmp}/missing"], ["--verbose", "report", "{tmp}/missing"],
                                  ["report", "{tmp}/missing", "-v"]])
def test_global_verbose_before_a_passthrough_command_reaches_it(argv, tmp_path, capsys):
    """`nrvl -v report X` used to fail with 'unrecognized arguments: X': -v now goes to the command."""
    rc = cli.main([a.format(tmp=tmp_path) for a in argv])
    err = capsys.readouterr().err
    assert "unrecognized arguments" not in err
    assert rc == 2 and "missing" in err  # the command ran and named the missing work dir


def test_eval_takes_short_verbose_and_help_shows_true_defaults(capsys):
    from nrvl.evaluate import build_parser

    p = build_parser("nrvl eval")
    assert p.parse_args(["--data", "d", "--model", "m", "-v"]).verbose
    text = p.format_help()
    assert "(default: None)" not in text and "(default: True)" not in text
    flat = " ".join(text.split())
    assert "concurrent API model requests (default 16)" in flat
    assert "$NRVL_VIDEO_BACKEND" in flat and "all,-target_block" in flat


def test_api_nproc_help_default_is_the_models_default():
    import inspect

    from nrvl.models.api import OpenAIVideoModel

    assert inspect.signature(OpenAIVideoModel.__init__).parameters["nproc"].default == 16
