"""VideoCorruption: per-clip independent choices, equal to corrupt() with the same seeds."""
from __future__ import annotations

import pytest
import torch

from nrvl.kernels import VideoCorruption, corrupt, list_noises


def clips(b=12):
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (b, 8, 3, 16, 16), generator=g, dtype=torch.uint8)


def test_each_clip_gets_its_own_choice_and_matches_corrupt():
    aug = VideoCorruption(noises=["gaussian", "impulse", "contrast"], ratios=(0.3, 0.9), seed=1)
    video = clips()
    out = aug(video)
    assert out.shape == video.shape and out.dtype == video.dtype
    assert len(aug.last_choices) == 12 and all(c is not None for c in aug.last_choices)
    assert len({c for c in aug.last_choices}) > 1
    for i, (name, ratio) in enumerate(aug.last_choices):
        want = corrupt(video[i], name, ratio, seed=aug.last_seeds[i:i + 1])
        assert torch.equal(out[i], want)


def test_other_video_takes_the_next_clip_as_donor_and_is_skipped_alone():
    aug = VideoCorruption(noises=["other_video"], ratios=0.9, seed=2)
    video = clips(3)
    out = aug(video)
    for i in range(3):
        want = corrupt(video[i], "other_video", 0.9, seed=aug.last_seeds[i:i + 1], donor=video[(i + 1) % 3])
        assert torch.equal(out[i], want)
    with pytest.raises(ValueError, match="at least 2 clips"):
        aug(video[0])
    mixed = VideoCorruption(noises=["other_video", "gaussian"], ratios=0.9, seed=2)
    for _ in range(5):
        mixed(video[0])
        assert mixed.last_choices[0][0] == "gaussian"


def test_probability_zero_and_one():
    video = clips(6)
    assert torch.equal(VideoCorruption(noises=["gaussian"], p=0.0, seed=0)(video), video)
    out = VideoCorruption(noises=["gaussian"], ratios=0.9, p=1.0, seed=0)(video)
    assert ((out != video).flatten(2).any(2).sum(1) == 7).all()


def test_partial_probability_leaves_some_clips_clean():
    aug = VideoCorruption(noises=["gaussian"], ratios=0.9, p=0.5, seed=3)
    video = clips(40)
    out = aug(video)
    untouched = [c is None for c in aug.last_choices]
    assert 5 < sum(untouched) < 35
    for i, clean in enumerate(untouched):
        assert torch.equal(out[i], video[i]) == clean


def test_seeded_module_is_reproducible_and_works_in_sequential_no_grad():
    video = clips(4).float()
    a = torch.nn.Sequential(VideoCorruption(seed=5))(video)
    b = torch.nn.Sequential(VideoCorruption(seed=5))(video)
    assert torch.equal(a, b)
    with torch.no_grad():
        assert VideoCorruption(seed=5)(video[0]).shape == video[0].shape


def test_all_and_family_selection():
    assert VideoCorruption().noises == [n for n in list_noises() if n != "target_block"]
    assert VideoCorruption(noises="lighting").noises == list_noises("lighting")
