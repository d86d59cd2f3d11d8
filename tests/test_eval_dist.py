"""The single sharding rule and the rank/world environment."""
import pytest

from nrvl import dist


@pytest.mark.parametrize("world", [1, 2, 3, 8])
def test_shards_are_strided_and_partition_the_items(world):
    items = list(range(17))
    shards = [dist.shard(items, r, world) for r in range(world)]
    assert shards[0] == items[0::world]
    assert sorted(x for s in shards for x in s) == items
    assert all(len(set(a) & set(b)) == 0 for i, a in enumerate(shards) for b in shards[i + 1:])


@pytest.mark.parametrize("rank, world, match", [(2, 2, "rank"), (-1, 2, "rank"), (0, 0, "world_size")],
                         ids=["rank-too-big", "rank-negative", "world-zero"])
def test_shard_rejects_bad_rank_or_world(rank, world, match):
    with pytest.raises(ValueError, match=match):
        dist.shard([1, 2, 3], rank, world)


def test_info_from_env():
    assert dist.info_from_env({}) == dist.DistInfo(0, 1, 0)
    info = dist.info_from_env({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"})
    assert (info.rank, info.world_size, info.local_rank, info.is_main, info.distributed) == (3, 4, 1, False, True)
    with pytest.raises(ValueError, match="RANK=4 and WORLD_SIZE=4"):
        dist.info_from_env({"RANK": "4", "WORLD_SIZE": "4"})
    with pytest.raises(ValueError, match="WORLD_SIZE must be an integer"):
        dist.info_from_env({"WORLD_SIZE": "two"})


def test_single_process_collectives_are_local():
    dist.init(dist.DistInfo(), "cpu")  # a world of one joins no process group
    dist.barrier()
    assert dist.broadcast({"a": 1}) == {"a": 1}
    assert dist.gather_errors(None) == []
    assert dist.gather_errors("boom") == ["boom"]


@pytest.mark.parametrize("raw, value", [(None, dist.DEFAULT_TIMEOUT_S), ("", dist.DEFAULT_TIMEOUT_S), ("45", 45.0),
                                        (" 1.5 ", 1.5)])
def test_dist_timeout_from_env(raw, value):
    assert dist.timeout_from_env({} if raw is None else {"DIST_TIMEOUT": raw}) == value


@pytest.mark.parametrize("raw", ["abc", "0", "-5", "nan", "inf"])
def test_bad_dist_timeout_is_a_value_error_naming_the_variable(raw):
    with pytest.raises(ValueError, match=r"DIST_TIMEOUT must be a number of seconds > 0, got '%s'" % raw):
        dist.timeout_from_env({"DIST_TIMEOUT": raw})


# ----------------------------------------------------------------------------------- one rank fails

DEMO = ["--data", "MMBench_Video_demo", "--model", "tiny-qwen2.5-vl", "--mode", "infer", "--limit", "4",
        "--device", "cpu"]


@pytest.fixture
def rank1_of_2(eval_env, demo_root, monkeypatch):
    """This process as rank 1 of 2, without a process group: what it passes to the collective error
    exchange is recorded, and the exchange answers as if rank 0 had no error."""
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr(dist, "init", lambda *a, **k: None)
    passed = []

    def gather_errors(error):
        passed.append(error)
        return [error] if error else []

    monkeypatch.setattr(dist, "gather_errors", gather_errors)
    return passed


@pytest.mark.parametrize("sweep", [False, True], ids=["single", "sweep"])
def test_a_crash_in_generate_goes_to_every_rank_as_one_line(rank1_of_2, tmp_path, monkeypatch, sweep):
    from nrvl import evaluate
    from nrvl.models.qwen import QwenVL

    def generate(self, batch):
        raise RuntimeError("CUDA out of memory.\n Tried to allocate 2.00 GiB")

    monkeypatch.setattr(QwenVL, "generate", generate)
    noise = ["--noise_name", "gaussian,motion_blur" if sweep else "gaussian", "--ratio", "0.9"]
    rc = evaluate.main([*DEMO, *noise, "--work-dir", str(tmp_path)])
    assert rc == evaluate.EXIT_FAILED
    # set-up (two exchanges) and the build went fine, then rank 1's error, one line with its rank
    assert rank1_of_2 == [None, None, None, ("rank 1: RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB",
                                 evaluate.EXIT_FAILED)]


@pytest.mark.parametrize("sweep", [False, True], ids=["single", "sweep"])
def test_a_model_that_fails_to_load_on_one_rank_stops_every_rank(rank1_of_2, tmp_path, monkeypatch, sweep):
    import errno

    from nrvl import evaluate

    def build(args, device):
        raise OSError(errno.EIO, "Input/output error", "/models/w.safetensors")

    monkeypatch.setattr(evaluate, "_build_model", build)
    noise = ["--noise_name", "gaussian,motion_blur" if sweep else "gaussian", "--ratio", "0.9"]
    assert evaluate.main([*DEMO, *noise, "--work-dir", str(tmp_path)]) == evaluate.EXIT_FAILED
    assert rank1_of_2 == [None, None, ("rank 1: cannot read or write /models/w.safetensors: Input/output error",
                           evaluate.EXIT_FAILED)]


_FAILING_RANK = '''
import os, sys
sys.path.insert(0, {repo!r})
from nrvl.models.qwen import QwenVL
real = QwenVL.generate
def generate(self, prepared):
    if os.environ.get("RANK") == "1":
        raise RuntimeError("CUDA out of memory (simulated)")
    return real(self, prepared)
QwenVL.generate = generate
from nrvl import evaluate
rc = evaluate.main(sys.argv[1:], prog="eval/run.py")
sys.stderr.flush()
# one write for the whole line: both ranks share the stderr pipe, and print() writes the text and its
# newline separately, so two ranks' lines can come out as "rank 0 returned 1rank 1 returned 1"
os.write(2, f"rank {{os.environ['RANK']}} returned {{rc}}\\n".encode())
sys.exit(rc)
'''


def test_torchrun_rank_crash_stops_both_ranks_with_one_line(tmp_path, cache_dir, demo_root):
    """Rank 1 raises in generate: both ranks leave at the next collective with rank 1's message,
    instead of waiting DIST_TIMEOUT in mismatched collectives; rank 0's finished samples are stored."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    script = tmp_path / "failing_rank.py"
    script.write_text(_FAILING_RANK.format(repo=str(repo)))
    env = {**os.environ, "NRVL_CACHE": str(cache_dir), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(repo), "DIST_TIMEOUT": "30"}
    env.pop("CUDA_VISIBLE_DEVICES", None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", str(script),
           *DEMO, "--noise_name", "gaussian", "--ratio", "0.9", "--work-dir", str(tmp_path / "w")]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240, cwd=tmp_path)
    lines = proc.stderr.splitlines()
    assert proc.returncode != 0
    assert [ln for ln in lines if "error:" in ln] == ["eval/run.py: error: rank 1: RuntimeError: CUDA out of memory "
                                                      "(simulated)"], proc.stderr[-3000:]
    assert "rank 1 returned 1" in lines, proc.stderr[-3000:]  # the failing rank left main with exit 1
    # no rank's traceback (torch prefixes them "[rankN]:"), nor the gloo error of a rank whose peer left
    assert [ln for ln in lines if "CUDA out of memory" in ln] == [lines[lines.index(
        "eval/run.py: error: rank 1: RuntimeError: CUDA out of memory (simulated)")]]
    assert not any(ln.startswith("[rank") or "Connection closed by peer" in ln for ln in lines), proc.stderr[-3000:]
    store = tmp_path / "w" / "tiny-qwen2.5-vl" / "gaussian" / "tiny-qwen2.5-vl_MMBench_Video_demo_gaussian_0.9.rank0.jsonl"
    assert [json.loads(x)["index"] for x in store.read_text().splitlines()] == [0, 2]  # rank 0's shard, kept


def test_a_set_up_error_on_one_rank_goes_to_every_rank_as_one_line(rank1_of_2, tmp_path, monkeypatch):
    """Rank 1 cannot read the dataset (a PermissionError, not a DatasetError): it used to leave set-up
    for the final barrier while rank 0 waited in the collective, for DIST_TIMEOUT, with no message."""
    import errno

    from nrvl import evaluate

    def load(name, **kw):
        raise PermissionError(errno.EACCES, "Permission denied", "/cache/MMBench-Video.tsv")

    import nrvl.data

    monkeypatch.setattr(nrvl.data, "load_dataset", load)
    rc = evaluate.main([*DEMO, "--noise_name", "gaussian", "--ratio", "0.9", "--work-dir", str(tmp_path)])
    assert rc == evaluate.EXIT_FAILED
    assert rank1_of_2 == [None, ("rank 1: cannot read or write /cache/MMBench-Video.tsv: Permission denied",
                          evaluate.EXIT_FAILED)]
