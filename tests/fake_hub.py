"""A Hugging Face hub cache of MMBench-Video built in a test (no network): TSV + one pickle chunk."""
from __future__ import annotations

import hashlib
import pickle

HEADER = "index\tvideo\tvideo_type\tquestion\tanswer\tdimensions\tvideo_path\n"
NOT_A_VIDEO = b"\x00\x00\x00\x18ftypmp42 this is not a video" * 10


def fake_hub(tmp_path, monkeypatch, tsv: str, chunk: dict, commit: str = "f" * 40):
    """Write ``tsv`` and ``chunk`` (video name -> mp4 bytes) as the dataset's snapshot; point the
    loader at it (``HF_HUB_CACHE``) and accept the TSV's md5. Returns the snapshot folder."""
    repo = tmp_path / "hub" / "datasets--opencompass--MMBench-Video"
    snap = repo / "snapshots" / commit
    (snap / "video_pkl").mkdir(parents=True)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    (snap / "MMBench-Video.tsv").write_text(tsv)
    (snap / "video_pkl" / "video_chunk_0.pkl").write_bytes(pickle.dumps(chunk, protocol=4))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr("nrvl.data.mmbench.TSV_MD5", hashlib.md5(tsv.encode()).hexdigest())
    return snap


def hub_with_a_broken_video(tmp_path, monkeypatch, commit: str):
    """Three questions: two on a good demo clip ("ok"), one on bytes that are not a video ("broken")."""
    from nrvl.data import prepare_dataset

    good = (prepare_dataset("MMBench_Video_demo") / "video" / "demo_0.mp4").read_bytes()
    tsv = (HEADER
           + "4\tok\tt\tWhat is it?\tshapes\t['Video Topic']\t./video/ok.mp4\n"
           + "5\tbroken\tt\tWhat is it?\tshapes\t['Video Topic']\t./video/broken.mp4\n"
           + "6\tok\tt\tHow many?\tfour\t['Counting']\t./video/ok.mp4\n")
    return fake_hub(tmp_path, monkeypatch, tsv, {"ok": good, "broken": NOT_A_VIDEO}, commit)
