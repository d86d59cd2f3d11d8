"""The procedural clip and the mp4 writer."""
from __future__ import annotations

import os

import pytest
import torch

from nrvl.video import make_clip, write_video
from nrvl.video.synth import BACKGROUND, COUNTER_COLOUR, SHAPE_COLOURS, counter_mask


def _has_colour(clip: torch.Tensor, colour) -> torch.Tensor:
    """bool [T]: whether each frame holds the exact colour somewhere."""
    c = torch.tensor(colour, dtype=torch.uint8).view(1, 3, 1, 1)
    return (clip == c).all(1).flatten(1).any(1)


def test_shape_dtype_device_and_determinism():
    a = make_clip(8, 96, 128, seed=3)
    assert a.shape == (8, 3, 96, 128) and a.dtype == torch.uint8 and a.device.type == "cpu"
    assert torch.equal(a, make_clip(8, 96, 128, seed=3))
    assert not torch.equal(a, make_clip(8, 96, 128, seed=4))
    assert make_clip().shape == (8, 3, 240, 320)


def test_every_frame_is_distinct():
    clip = make_clip(32, 96, 128).flatten(1).float()
    dist = torch.cdist(clip, clip)
    off_diagonal = dist[~torch.eye(32, dtype=torch.bool)]
    assert (off_diagonal > 0).all()


def test_known_colours_are_present():
    clip = make_clip(16, 96, 128, seed=0)
    assert _has_colour(clip, BACKGROUND).all()
    assert _has_colour(clip, COUNTER_COLOUR).all()
    for colour in SHAPE_COLOURS:
        assert _has_colour(clip, colour).any(), colour
    # Only the palette is used on a flat background.
    palette = torch.tensor([BACKGROUND, COUNTER_COLOUR, *SHAPE_COLOURS], dtype=torch.uint8)
    pixels = clip.permute(0, 2, 3, 1).reshape(-1, 1, 3)
    assert (pixels == palette[None]).all(-1).any(-1).all()


def test_counter_draws_the_frame_number():
    mask = counter_mask(12, 48, 64)   # cell = 1 px: 4 digits of 3x5 at (1, 1), 4 px apart
    one = mask[1, 1:6, 13:16]         # last digit of frame 1
    assert one.tolist() == [[False, True, False], [True, True, False], [False, True, False],
                            [False, True, False], [True, True, True]]
    assert torch.equal(mask[10, 1:6, 9:12], one)   # "0010": third digit is 1
    assert not mask[:, 6:, :].any()                # nothing below the digits
    clip = make_clip(12, 48, 64)
    assert (clip[1, :, 1:6, 13:16][:, one] == 255).all()


@pytest.mark.parametrize("texture", [False, True], ids=["flat", "texture"])
def test_made_in_pieces_equals_made_at_once(texture):
    whole = make_clip(40, 64, 96, seed=5, texture=texture)
    pieces = torch.cat([make_clip(15, 64, 96, seed=5, start=s, texture=texture)[: 40 - s] for s in (0, 15, 30)])
    assert torch.equal(whole, pieces)


def test_texture_moves_and_is_not_flat():
    clip = make_clip(4, 64, 96, texture=True)
    corner = clip[:, :, 40:, :20].float()   # background only, away from the digits
    assert corner.std() > 5
    assert not torch.equal(corner[0], corner[1])


@pytest.mark.parametrize("kwargs, match", [({"T": 0}, "T"), ({"H": 4}, "H and W"), ({"start": -1}, "start")])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_clip(**kwargs)


# --------------------------------------------------------------------------- write_video

def _read_back(path):
    import av

    with av.open(str(path)) as c:
        frames = [torch.from_numpy(f.to_ndarray(format="rgb24")).permute(2, 0, 1) for f in c.decode(video=0)]
        rate = c.streams.video[0].average_rate
    return torch.stack(frames), rate


def test_write_video_round_trip(tmp_path):
    clip = make_clip(12, 96, 128, seed=1)
    path = write_video(clip, tmp_path / "clip.mp4", fps=8)
    assert path == tmp_path / "clip.mp4"
    back, rate = _read_back(path)
    assert back.shape == clip.shape and rate == 8
    err = (back.float() - clip.float()).abs().mean(dim=(1, 2, 3))
    assert (err < 6).all(), err      # lossy H.264 + 4:2:0 chroma, but close
    # Each decoded frame is nearest to its own source frame.
    d = torch.cdist(back.flatten(1).float(), clip.flatten(1).float())
    assert torch.equal(d.argmin(1), torch.arange(12))
    assert os.listdir(tmp_path) == ["clip.mp4"]  # no temporary file left behind


def test_write_video_chunks_and_permissions(tmp_path):
    clip = make_clip(10, 64, 96, seed=2)
    path = write_video((clip[i:i + 4] for i in range(0, 10, 4)), tmp_path / "c.mp4", crf=18, threads=1)
    back, rate = _read_back(path)
    assert back.shape == clip.shape and rate == 16
    d = torch.cdist(back.flatten(1).float(), clip.flatten(1).float())
    assert torch.equal(d.argmin(1), torch.arange(10))
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600


def test_write_video_is_atomic(tmp_path):
    path = tmp_path / "clip.mp4"
    write_video(make_clip(4, 64, 96), path)
    before = path.read_bytes()

    def chunks():
        yield make_clip(4, 64, 96, seed=9)
        yield make_clip(4, 32, 32)   # wrong size: fails after the encoder has started writing

    with pytest.raises(ValueError, match="chunks must all be 64x96"):
        write_video(chunks(), path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["clip.mp4"]


@pytest.mark.parametrize(
    "frames, kwargs, exc, match",
    [
        (torch.zeros(2, 3, 8, 8), {}, TypeError, "uint8"),
        (torch.zeros(2, 8, 8, 3, dtype=torch.uint8), {}, ValueError, r"\[T, 3, H, W\]"),
        (torch.zeros(2, 3, 9, 8, dtype=torch.uint8), {}, ValueError, "even"),
        (torch.zeros(2, 3, 8, 8, dtype=torch.uint8), {"fps": 0}, ValueError, "fps"),
        (torch.zeros(2, 3, 8, 8, dtype=torch.uint8), {"crf": 60}, ValueError, "crf"),
        (torch.zeros(2, 3, 8, 8, dtype=torch.uint8), {"preset": "quick"}, ValueError, "preset"),
        (torch.zeros(2, 3, 8, 8, dtype=torch.uint8), {"threads": -1}, ValueError, "threads"),
        ([], {}, ValueError, "at least one frame"),
    ],
    ids=["float", "channels-last", "odd", "fps", "crf", "preset", "threads", "empty"],
)
def test_write_video_bad_input(tmp_path, frames, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        write_video(frames, tmp_path / "x.mp4", **kwargs)
    assert os.listdir(tmp_path) == []


def test_write_video_missing_folder(tmp_path):
    with pytest.raises(ValueError, match="folder does not exist"):
        write_video(make_clip(2, 16, 16), tmp_path / "nope" / "x.mp4")
