"""Files the pipeline writes: the permissions ``open()`` would give (not mkstemp's 0600), and temp
files of a writer killed before its rename cleaned up by the next write of the same file."""
from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys

import pytest
from rel_util import REPO

from nrvl.atomic import append_jsonl, atomic_write_bytes, atomic_write_text


@pytest.fixture(params=[0o022, 0o002, 0o077], ids=["umask022", "umask002", "umask077"])
def umask(request):
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_atomic_writes_get_the_umask_mode(tmp_path, umask):
    want = 0o666 & ~umask
    assert _mode(atomic_write_text(tmp_path / "a.json", "{}")) == want
    assert _mode(atomic_write_bytes(tmp_path / "sub" / "b.bin", b"x")) == want
    atomic_write_text(tmp_path / "a.json", "{} ")  # replacing keeps the mode of a new file
    assert _mode(tmp_path / "a.json") == want
    append_jsonl(tmp_path / "c.jsonl", {"a": 1})
    assert _mode(tmp_path / "c.jsonl") == want


def test_write_video_gets_the_umask_mode(tmp_path, umask):
    from nrvl.video import make_clip, write_video

    path = write_video(make_clip(2, 16, 16, seed=0), tmp_path / "clip.mp4", fps=4)
    assert _mode(path) == 0o666 & ~umask


def test_result_files_of_a_run_are_readable_by_others(tmp_path, demo_ready):
    from nrvl import evaluate

    old = os.umask(0o022)
    try:
        assert evaluate.main(["--data", "MMBench_Video_demo", "--model", "tiny-qwen2.5-vl", "--limit", "1",
                              "--judge", "exact_matching", "--device", "cpu", "--work-dir", str(tmp_path / "w")]) == 0
    finally:
        os.umask(old)
    files = [p for p in (tmp_path / "w").rglob("*") if p.is_file()]
    assert len(files) == 6  # predictions and their .meta.json, store, judge cache, scores, rating
    assert {p.name: _mode(p) for p in files} == {p.name: 0o644 for p in files}


def test_temp_file_of_a_killed_writer_is_removed_by_the_next_write(tmp_path):
    target = tmp_path / "rating.json"
    code = ("import sys; sys.path.insert(0, %r); import os; os.environ['NRVL_TEST_KILL_AT'] = 'atomic.torn:1'\n"
            "from nrvl.atomic import atomic_write_text; atomic_write_text(%r, 'x' * 1000)") % (str(REPO), str(target))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    left = os.listdir(tmp_path)
    assert len(left) == 1 and left[0].startswith(".rating.json.") and left[0].endswith(".tmp"), left
    assert os.path.getsize(tmp_path / left[0]) == 500  # the half-written bytes, never under the real name
    # A temp file of a live writer (this process) and of another target are left alone.
    host_pid = left[0][len(".rating.json."):].split(".")[0]
    mine = tmp_path / f".rating.json.{host_pid.rsplit('-', 1)[0]}-{os.getpid()}.0123abcd.tmp"
    mine.write_bytes(b"in flight")
    other = tmp_path / (".other.json" + left[0][len(".rating.json"):])
    other.write_bytes(b"other")
    atomic_write_text(target, "done")
    assert sorted(os.listdir(tmp_path)) == sorted(["rating.json", mine.name, other.name])
    assert target.read_text() == "done"

