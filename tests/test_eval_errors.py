"""Bad input: one clear line, a non-zero exit, before any inference, and no partial output."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fake_hub import HEADER, fake_hub
from nrvl import evaluate

REPO = Path(__file__).resolve().parents[1]
DEMO = ["--data", "MMBench_Video_demo", "--model", "tiny-qwen2.5-vl"]


@pytest.fixture(autouse=True)
def _env(eval_env):
    """Offline evaluation set-up (tests/conftest.py)."""


@pytest.fixture
def no_model(monkeypatch):
    """Fail the test if a model gets built: every error here must come before inference."""
    monkeypatch.setattr("nrvl.models.build_model", lambda *a, **k: pytest.fail("a model was built"))


def run_main(argv, capsys):
    rc = evaluate.main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    return rc, err


CASES = [
    (["--data", "MMBench_Video_32frame_nopack", "--model", "tiny-qwen2.5-vl"],
     r"unknown --data 'MMBench_Video_32frame_nopack'; valid: MMBench_Video_8frame_nopack, .*MMBench_Video_demo"),
    (["--data", "MMBench_Video_demo", "--model", "Qwen2-VL-2B"],
     r"unknown --model 'Qwen2-VL-2B'; valid: Qwen2.5-VL-3B-Instruct, .*tiny-qwen2.5-vl"),
    ([*DEMO, "--noise_name", "gausian", "--ratio", "0.9"], r"unknown --noise_name 'gausian'; valid: .*gaussian"),
    ([*DEMO, "--noise_name", "gaussian", "--ratio", "1.5"], r"--ratio must be in \[0, 1\], got 1.5"),
    ([*DEMO, "--noise_name", "gaussian", "--ratio", "-0.1"], r"--ratio must be in \[0, 1\], got -0.1"),
    ([*DEMO, "--noise_name", "gaussian"], r"--noise_name gaussian needs --ratio"),
    ([*DEMO, "--ratio", "0.3"], r"--ratio was given without --noise_name"),
    ([*DEMO, "--limit", "0"], r"--limit must be >= 1, got 0"),
    ([*DEMO, "--batch-size", "0"], r"--batch-size must be >= 1, got 0"),
    (["--data", "MMBench_Video_demo", "--model", "openai-compatible"], r"needs --api-model"),
    ([*DEMO, "--judge", "gpt-4o", "--noise_name", "gaussian", "--ratio", "0.9"],
     r"judge gpt-4o: no API key; set OPENAI_API_KEY .* --judge exact_matching"),
    ([*DEMO, "--judge", "gpt-4o", "--judge-key", "sk-x", "--judge-base-url", "ftp://example.org/v1"],
     r"base URL must start with http"),
    ([*DEMO, "--mode", "eval", "--judge", "exact_matching"],
     r"no predictions at .*None_None.tsv; run with --mode infer"),
]
IDS = ["unknown-data", "unknown-model", "unknown-noise", "ratio-above-1", "ratio-negative", "noise-without-ratio",
       "ratio-without-noise", "limit-0", "batch-0", "api-without-model", "judge-without-key", "judge-bad-url",
       "eval-without-predictions"]


@pytest.mark.parametrize("argv, message", CASES, ids=IDS)
def test_bad_input_is_one_line_and_exit_2(argv, message, capsys, tmp_path, no_model):
    rc, err = run_main([*argv, "--work-dir", str(tmp_path / "out")], capsys)
    assert rc != 0
    assert len(err) == 1, err
    assert err[0].startswith("eval/run.py: error: ")
    assert __import__("re").search(message, err[0]), err[0]
    assert not any(p.is_file() for p in (tmp_path / "out").rglob("*"))  # no partial output


def test_unreachable_judge_is_caught_before_inference(capsys, tmp_path, no_model):
    import socket

    with socket.socket() as s:  # a port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    rc, err = run_main([*DEMO, "--judge", "gpt-4o", "--judge-key", "sk-x", "--judge-base-url",
                        f"http://127.0.0.1:{port}/v1", "--work-dir", str(tmp_path / "out")], capsys)
    assert rc == 2 and len(err) == 1 and f"cannot reach http://127.0.0.1:{port}/v1" in err[0], err


def test_rejected_judge_key_is_caught_before_inference(capsys, tmp_path, no_model):
    from judge_server import FakeJudgeServer

    with FakeJudgeServer(api_key="right") as srv:
        rc, err = run_main([*DEMO, "--judge", "gpt-4o", "--judge-key", "wrong-key-123", "--judge-base-url",
                            srv.base_url, "--work-dir", str(tmp_path / "out")], capsys)
    assert rc == 2 and len(err) == 1 and "API key was rejected" in err[0], err
    assert "wrong-key-123" not in err[0]




def test_missing_video_file_is_caught_before_inference(capsys, tmp_path, monkeypatch, no_model):
    tsv = HEADER + "1\tabc\tt\tq?\ta\t['OCR']\t./video/abc.mp4\n2\tgone\tt\tq?\ta\t['OCR']\t./video/gone.mp4\n"
    fake_hub(tmp_path, monkeypatch, tsv, {"abc": b"\x00\x00\x00\x18ftypmp42"})
    rc, err = run_main(["--data", "MMBench_Video_8frame_nopack", "--model", "tiny-qwen2.5-vl", "--mode", "infer",
                        "--work-dir", str(tmp_path / "out")], capsys)
    assert rc == 2 and len(err) == 1 and "gone.mp4 is in neither video/ nor any chunk" in err[0], err


def test_bad_tsv_is_caught_before_inference(capsys, tmp_path, monkeypatch, no_model):
    tsv = HEADER + "1\tabc\tt\tq?\ta\t['Telepathy']\t./video/abc.mp4\n"
    fake_hub(tmp_path, monkeypatch, tsv, {"abc": b"x"})
    rc, err = run_main(["--data", "MMBench_Video_8frame_nopack", "--model", "tiny-qwen2.5-vl", "--mode", "infer",
                        "--work-dir", str(tmp_path / "out")], capsys)
    assert rc == 2 and len(err) == 1 and "unknown dimension(s) ['Telepathy']" in err[0], err


def test_eval_run_py_prints_one_line_without_importing_torch(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    code = ("import runpy, sys; sys.argv = ['eval/run.py', '--data', 'MMBench_Video_demo', '--model', 'nope'];"
            "\ntry:\n    runpy.run_path(%r, run_name='__main__')\nexcept SystemExit as e:\n"
            "    assert 'torch' not in sys.modules, 'torch imported before the flags were checked'\n"
            "    raise\n") % str(REPO / "eval" / "run.py")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60,
                          cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "eval/run.py: error: unknown --model 'nope'; valid: Qwen2.5-VL-3B-Instruct, Qwen2.5-VL-7B-Instruct, "
        "tiny-qwen2.5-vl, GPT4o, openai-compatible"]


def test_eval_run_py_reuses_cpu_memory_only_after_the_flags_pass(tmp_path, monkeypatch, capsys):
    """eval/run.py asks for reuse_cpu_memory() as `nrvl eval` runs with it, but only once the
    flags are good (it imports torch)."""
    import nrvl.cli

    calls = []
    monkeypatch.setattr(nrvl.cli, "reuse_cpu_memory_unless_opted_out", lambda: calls.append(1))
    base = ["--data", "MMBench_Video_demo", "--work-dir", str(tmp_path / "w"), "--judge", "exact_matching"]
    assert evaluate.main([*base, "--model", "nope"], reuse_cpu_memory=True) == 2 and calls == []
    evaluate.main([*base, "--model", "tiny-qwen2.5-vl", "--mode", "eval"], reuse_cpu_memory=True)
    assert calls == [1]
    evaluate.main([*base, "--model", "tiny-qwen2.5-vl", "--mode", "eval"])  # the library default: untouched
    assert calls == [1]
    run_py = (REPO / "eval" / "run.py").read_text()
    assert "main(reuse_cpu_memory=True)" in run_py


def test_help_lists_the_original_flags(capsys):
    with pytest.raises(SystemExit) as e:
        evaluate.main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--data", "--model", "--judge", "--noise_name", "--ratio", "--work-dir", "--seed", "--limit",
                 "--batch-size", "--mode", "--verbose", "--api-base", "--api-model", "--judge-base-url"):
        assert flag in out


# ----------------------------------------------------------------------------------- torchrun's environment

ENV_CASES = [
    ({"RANK": "3", "WORLD_SIZE": "2"}, r"RANK=3 and WORLD_SIZE=2 are inconsistent \(need 0 <= RANK < WORLD_SIZE\)"),
    ({"RANK": "0", "WORLD_SIZE": "x"}, r"environment variable WORLD_SIZE must be an integer, got 'x'"),
    ({"RANK": "one", "WORLD_SIZE": "2"}, r"environment variable RANK must be an integer, got 'one'"),
    ({"RANK": "0", "WORLD_SIZE": "2", "DIST_TIMEOUT": "abc"},
     r"environment variable DIST_TIMEOUT must be a number of seconds > 0, got 'abc'"),
    ({"RANK": "0", "WORLD_SIZE": "2", "DIST_TIMEOUT": "-1"},
     r"environment variable DIST_TIMEOUT must be a number of seconds > 0, got '-1'"),
]


@pytest.mark.parametrize("env, message", ENV_CASES, ids=["rank-past-world", "world-not-int", "rank-not-int",
                                                         "timeout-not-number", "timeout-negative"])
def test_bad_torchrun_environment_is_one_line_and_exit_2(env, message, capsys, tmp_path, monkeypatch, no_model):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    rc, err = run_main([*DEMO, "--judge", "exact_matching", "--work-dir", str(tmp_path / "out")], capsys)
    assert rc == 2
    assert len(err) == 1 and __import__("re").fullmatch("eval/run.py: error: " + message, err[0]), err
    assert not (tmp_path / "out").exists()


def test_a_valid_rank_other_than_0_exits_2_and_leaves_the_message_to_rank_0(capsys, tmp_path, monkeypatch, no_model):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("DIST_TIMEOUT", "soon")
    rc, err = run_main([*DEMO, "--judge", "exact_matching", "--work-dir", str(tmp_path / "out")], capsys)
    assert (rc, err) == (2, [])


# ----------------------------------------------------------------------------------- files that cannot be written

def _error_lines(err):
    assert not any("Traceback" in line for line in err), err
    return [line for line in err if "error:" in line]


def test_disk_full_while_storing_is_one_line_naming_the_store(capsys, tmp_path, monkeypatch, demo_root):  # the dataset built before the disk fills
    import errno

    from nrvl import atomic

    def full(fh, data, point):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic, "_write_durably", full)
    rc, err = run_main([*DEMO, "--limit", "2", "--mode", "infer", "--work-dir", str(tmp_path)], capsys)
    store = tmp_path / "tiny-qwen2.5-vl" / "origin" / "tiny-qwen2.5-vl_MMBench_Video_demo_None_None.rank0.jsonl"
    assert rc == 1
    assert _error_lines(err) == [f"eval/run.py: error: cannot write {store}: No space left on device"]


def test_disk_full_writing_the_predictions_is_one_line_naming_the_tsv(capsys, tmp_path, monkeypatch, demo_root):  # the dataset built before the disk fills
    import errno

    from nrvl import atomic

    real = atomic._write_durably

    def full(fh, data, point):
        if point == "atomic.torn":
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fh, data, point)

    monkeypatch.setattr(atomic, "_write_durably", full)
    rc, err = run_main([*DEMO, "--limit", "1", "--mode", "infer", "--work-dir", str(tmp_path)], capsys)
    tsv = tmp_path / "tiny-qwen2.5-vl" / "origin" / "tiny-qwen2.5-vl_MMBench_Video_demo_None_None.tsv"
    assert rc == 1
    assert _error_lines(err) == [f"eval/run.py: error: cannot write {tsv}: No space left on device"]
    assert not tsv.exists() and not list(tsv.parent.glob(".*.tmp"))  # no partial file, no temp left


def test_a_folder_where_the_store_goes_is_one_line(capsys, tmp_path):
    folder = tmp_path / "tiny-qwen2.5-vl" / "origin"
    store = folder / "tiny-qwen2.5-vl_MMBench_Video_demo_None_None.rank0.jsonl"
    store.mkdir(parents=True)
    rc, err = run_main([*DEMO, "--limit", "1", "--mode", "infer", "--work-dir", str(tmp_path)], capsys)
    assert rc == 1
    assert _error_lines(err) == [f"eval/run.py: error: cannot write {store}: Is a directory"]
