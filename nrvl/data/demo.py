"""``MMBench_Video_demo``: 12 questions on 6 generated clips, in the MMBench-Video TSV layout.

The clips are :func:`nrvl.video.make_clip` scenes (four coloured shapes
bouncing over a dark background, the frame number drawn in the top-left
corner) encoded as H.264 mp4; the questions are about what is really in them
and carry valid MMBench-Video capability names, so the whole pipeline (decode,
noise, model, judge, rating) runs on them. Everything is generated on first
use into ``<cache>/data/MMBench_Video_demo/v<version>/`` and is the same on
every machine: clip content comes from fixed seeds, and the TSV is written
last, so a folder with a TSV is complete.
"""
from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from nrvl.atomic import atomic_write_text
from nrvl.data import DatasetError, DatasetSpec, cache_root

VERSION = 1
TSV_NAME = "MMBench_Video_demo.tsv"
COLUMNS = ("index", "video", "video_type", "question", "answer", "dimensions", "video_path")


@dataclass(frozen=True)
class DemoClip:
    video: str
    frames: int
    height: int
    width: int
    fps: int
    seed: int


CLIPS = (
    DemoClip("demo_0", 16, 240, 320, 8, 0),
    DemoClip("demo_1", 24, 240, 320, 8, 1),
    DemoClip("demo_2", 32, 180, 320, 8, 2),
    DemoClip("demo_3", 40, 240, 240, 10, 3),
    DemoClip("demo_4", 48, 240, 320, 12, 4),
    DemoClip("demo_5", 64, 270, 480, 16, 5),
)


def _questions(c: DemoClip) -> list[tuple[str, str, list[str]]]:
    """All questions one clip could be asked: (question, answer, dimensions)."""
    last = c.frames - 1
    return [
        ("What number is shown in the top-left corner of the last frame?", str(last), ["OCR"]),
        ("How many shapes move around in the video, not counting the number in the corner?", "Four.",
         ["Counting"]),
        ("What colours are the two discs?", "Green and yellow.", ["Attribute Recognition"]),
        ("What shape is the red object?", "A rectangle.", ["Object Recognition"]),
        ("Is there a person in the video?", "No.", ["Hallucination"]),
        ("What is this video about?", "Coloured shapes moving around on a dark background.", ["Video Topic"]),
        ("What happens when a shape reaches the edge of the frame?", "It bounces off the edge.",
         ["Event Recognition"]),
        ("What number will the corner show in the frame after the last one?", str(c.frames),
         ["Future Prediction"]),
        ("What colour is the background?", "Dark blue.", ["Video Scene"]),
        ("How many rectangles are there?", "Two.", ["Counting"]),
        ("What is the sum of the first and the last number shown in the corner?", str(last),
         ["OCR", "Mathematical Calculation"]),
        ("Where in the frame is the frame counter?", "In the top-left corner.", ["Spatial Relationship"]),
    ]


def rows() -> list[dict]:
    """The 12 TSV rows: clip ``k`` gets questions ``2k`` and ``2k+1`` of its list."""
    out = []
    for k, clip in enumerate(CLIPS):
        qs = _questions(clip)
        for j in (2 * k, 2 * k + 1):
            q, a, dims = qs[j]
            out.append({
                "index": len(out), "video": clip.video, "video_type": "Animation", "question": q, "answer": a,
                "dimensions": repr(dims), "video_path": f"./video/{clip.video}.mp4",
            })
    return out


def default_root() -> Path:
    return cache_root() / "data" / "MMBench_Video_demo" / f"v{VERSION}"


def _tsv_text() -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, delimiter="\t", lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
    w.writeheader()
    w.writerows(rows())
    return buf.getvalue()


def prepare(spec: DatasetSpec, *, root: Optional[os.PathLike] = None, **_ignored) -> Path:
    """Generate the clips and the TSV if they are not there yet; return the folder.

    Takes a few seconds the first time (encoding six small clips).
    """
    from nrvl.video import make_clip, write_video

    root = Path(root) if root is not None else default_root()
    video_dir = root / "video"
    video_dir.mkdir(parents=True, exist_ok=True)
    for clip in CLIPS:
        path = video_dir / f"{clip.video}.mp4"
        if path.is_file() and path.stat().st_size > 0:
            continue
        frames = make_clip(clip.frames, clip.height, clip.width, seed=clip.seed)
        write_video(frames, path, fps=clip.fps)
    text = _tsv_text()
    tsv = root / TSV_NAME
    if not tsv.is_file() or tsv.read_text(encoding="utf-8") != text:
        atomic_write_text(tsv, text)
    return root


def locate(spec: DatasetSpec, *, root: Optional[os.PathLike] = None, **_ignored) -> tuple[Path, Path]:
    """``(tsv path, video folder)``; never generates."""
    root = Path(root) if root is not None else default_root()
    tsv = root / TSV_NAME
    if not tsv.is_file():
        raise DatasetError(f"demo data not generated yet at {root} (prepare_dataset('MMBench_Video_demo') makes it)")
    return tsv, root / "video"
