"""VideoCorruption: per-clip independent choices, equal to corrupt() with the same seeds."""
from __future__ import annotations

import io
import os
import re

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from nrvl.kernels import NOISES, VideoCorruption, corrupt, list_noises


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
    for i, (name, ratio, severity) in enumerate(aug.last_choices):
        want = corrupt(video[i], name, ratio, seed=aug.last_seeds[i:i + 1], severity=severity)
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


# ----------------------------------------------------------------------------- DataLoader workers and epochs

class _Clips(torch.utils.data.Dataset):
    """The same tiny clip at every index, augmented in the worker."""

    def __init__(self, seed):
        self.aug = VideoCorruption(noises=["gaussian", "contrast"], ratios=(0.5, 1.0), seed=seed)
        self.clip = clips(1)[0, :4, :, :8, :8]

    def __len__(self):
        return 4

    def __getitem__(self, i):
        return self.aug(self.clip)


def _epochs(seed, persistent, n=2):
    """n epochs of a 2-worker DataLoader, torch seeded as a reproducible training script does."""
    torch.manual_seed(0)
    loader = DataLoader(_Clips(seed), batch_size=None, num_workers=2, persistent_workers=persistent,
                        generator=torch.Generator().manual_seed(1))
    return [torch.stack(list(loader)) for _ in range(n)]


@pytest.mark.parametrize("persistent", [False, True], ids=["fresh_workers", "persistent_workers"])
@pytest.mark.parametrize("seed", [None, 3], ids=["seed_None", "seed_int"])
def test_dataloader_workers_and_epochs_differ_and_a_run_is_reproducible(seed, persistent):
    first, second = _epochs(seed, persistent)
    # Worker 0 yields items 0 and 2, worker 1 items 1 and 3: all four must differ.
    assert len({tuple(x.flatten().tolist()) for x in first}) == 4
    assert not any(torch.equal(a, b) for a, b in zip(first, second))
    again = _epochs(seed, persistent)
    assert torch.equal(first, again[0]) and torch.equal(second, again[1])


def test_seed_none_draws_from_torchs_global_rng():
    video = clips(4)
    aug = VideoCorruption(noises=["gaussian", "contrast"], ratios=(0.3, 0.9))
    torch.manual_seed(11)
    a = aug(video)
    torch.manual_seed(11)
    assert torch.equal(aug(video), a)
    torch.manual_seed(12)
    assert not torch.equal(aug(video), a)


# ----------------------------------------------------------------------------- severity

@pytest.mark.parametrize("severity", [0, 6, "3", True, 2.0])
def test_severity_is_checked_at_construction(severity):
    with pytest.raises(ValueError, match="severity"):
        VideoCorruption(noises=["gaussian"], severity=severity)


def test_noises_without_a_severity_table_run_with_reference_parameters():
    tableless = ["frame_drop", "frame_replace", "frame_repeat", "temporal_jitter", "other_video"]
    assert all(NOISES[n].severities is None for n in tableless)
    aug = VideoCorruption(noises=["gaussian", *tableless], ratios=0.5, severity=4, seed=0)
    video = clips(16)
    out = aug(video)
    assert {c.name for c in aug.last_choices} >= {"gaussian", *tableless[:3]}
    for i, c in enumerate(aug.last_choices):
        assert c.severity == (4 if c.name == "gaussian" else None)
        extra = {"donor": video[(i + 1) % 16]} if c.name == "other_video" else {}
        want = corrupt(video[i], c.name, c.ratio, seed=aug.last_seeds[i:i + 1], severity=c.severity, **extra)
        assert torch.equal(out[i], want)


# ----------------------------------------------------------------------------- checkpoints

def test_state_dict_resumes_the_stream():
    video = clips(4)
    saved = VideoCorruption(noises=["gaussian", "contrast"], ratios=(0.3, 0.9), seed=3)
    for _ in range(3):
        saved(video)
    buf = io.BytesIO()
    torch.save(saved.state_dict(), buf)
    fourth = saved(video)
    resumed = VideoCorruption(noises=["gaussian", "contrast"], ratios=(0.3, 0.9), seed=123)
    resumed.load_state_dict(torch.load(io.BytesIO(buf.getvalue()), weights_only=True))
    assert torch.equal(resumed(video), fourth)
    assert resumed.seed == 3
    assert torch.equal(resumed.last_seeds, saved.last_seeds) and resumed.last_choices == saved.last_choices
    unseeded = VideoCorruption(seed=5)
    unseeded.load_state_dict(VideoCorruption().state_dict())
    assert unseeded.seed is None and unseeded.generator is None


# ----------------------------------------------------------------------------- arguments

def test_exclude_takes_a_name_or_names_and_checks_them():
    assert VideoCorruption(noises=["gaussian", "impulse"], exclude="gaussian").noises == ["impulse"]
    with pytest.raises(ValueError, match="exclude: unknown noise name 'gausian'"):
        VideoCorruption(noises=["gaussian", "impulse"], exclude=["gausian"])


@pytest.mark.parametrize("seed", [1.7, 2.0, True, "1", torch.tensor(1)])
def test_seed_must_be_none_or_an_integer(seed):
    with pytest.raises(TypeError, match="seed"):
        VideoCorruption(noises=["gaussian"], seed=seed)


def test_numpy_numbers_are_accepted():
    video = clips(4)
    a = VideoCorruption(noises=["gaussian"], ratios=np.float32(0.5), p=np.float64(0.5), seed=np.int64(7))
    b = VideoCorruption(noises=["gaussian"], ratios=0.5, p=0.5, seed=7)
    assert torch.equal(a(video), b(video)) and a.ratios == [0.5] and a.seed == 7
    assert VideoCorruption(ratios=(np.float64(0.3), np.float32(0.75))).ratios == [0.3, 0.75]
    assert VideoCorruption(ratios=torch.tensor(0.5)).ratios == [0.5]
    with pytest.raises(TypeError, match="ratios"):
        VideoCorruption(ratios="0.5")


@pytest.mark.parametrize("bad", [clips(2)[:, :, :1], clips(1)[0, 0], clips(2).long(), [1, 2]],
                         ids=["one_channel", "3d", "int64", "list"])
def test_bad_video_is_refused_even_when_nothing_is_corrupted(bad):
    with pytest.raises((TypeError, ValueError)) as want:
        corrupt(bad, "gaussian", 0.5, seed=0)
    with pytest.raises(want.type, match=re.escape(str(want.value))):
        VideoCorruption(noises=["gaussian"], p=0.0, seed=0)(bad)


def test_eval_mode_still_augments_and_the_output_has_no_gradient():
    video = clips(2).float().requires_grad_()
    aug = VideoCorruption(noises=["gaussian"], ratios=0.9, seed=0).eval()
    out = aug(video)
    assert not torch.equal(out, video.detach()) and not out.requires_grad


# ----------------------------------------------------------------------------- per-noise params

def test_params_reach_each_noise_and_replay_with_corrupt():
    from noise_inputs import fake_detector

    params = {"target_block": {"detector": fake_detector}, "gaussian": {"std": 5.0}}
    aug = VideoCorruption(noises=["gaussian", "target_block", "contrast"], ratios=0.9, seed=3, params=params)
    assert aug.noises == ["gaussian", "target_block", "contrast"]  # target_block kept: it has a detector
    video = clips(16)
    out = aug(video)
    names = {c.name for c in aug.last_choices}
    assert {"gaussian", "target_block"} <= names
    for i, c in enumerate(aug.last_choices):
        want = corrupt(video[i], c.name, c.ratio, seed=aug.last_seeds[i:i + 1], severity=c.severity,
                       **params.get(c.name, {}))
        assert torch.equal(out[i], want), c
        if c.name == "gaussian":  # std 5, not the default 100: a small change
            changed = (out[i].float() - video[i].float()).abs()
            assert 0 < changed.mean() < 10
    assert "target_block" in VideoCorruption(params={"target_block": {"detector": fake_detector}}).noises
    assert "target_block" not in VideoCorruption().noises


@pytest.mark.parametrize("params, error, match", [
    ({"gaussian": {"sigma": 1}}, TypeError, "unexpected parameter 'sigma' for noise 'gaussian'"),
    ({"snow": {"mean": 0.5}}, ValueError, "params given for 'snow', which this module does not draw"),
    ({"target_block": {"detector": None}}, ValueError, "params given for 'target_block'"),
    ({"gaussian": 5.0}, TypeError, "params must map noise names to dicts"),
    ({"other_video": {"donor": torch.zeros(2, 3, 4, 4)}}, ValueError, "donor is the next clip"),
])
def test_params_are_checked_at_construction(params, error, match):
    kw = {"exclude": "target_block"} if "target_block" in params else {}
    with pytest.raises(error, match=match):
        VideoCorruption(noises=["gaussian", "contrast", "target_block", "other_video"], params=params, **kw)


def test_target_block_with_the_default_detector_needs_its_weights_at_construction(tmp_path, monkeypatch):
    """Opting in without a detector (or keeping every noise) fails when the module is made,
    not at the first batch that draws target_block, hours into training."""
    from nrvl.kernels.occlusion import _weights_file

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    path = tmp_path / "hub" / "checkpoints" / os.path.basename(_weights_file()[1])
    for kw in ({"params": {"target_block": {}}}, {"params": {"target_block": {"detector": None}}}, {"exclude": ()}):
        with pytest.raises(FileNotFoundError, match=f"needs the weights file {re.escape(str(path))}.*"
                                                    f"Or give VideoCorruption a detector"):
            VideoCorruption(**kw)
    VideoCorruption(noises=["gaussian"], exclude=())  # not drawn: not needed
    path.parent.mkdir(parents=True)
    path.write_bytes(b"weights")  # found: the module is made (they are loaded only when first drawn)
    assert "target_block" in VideoCorruption(params={"target_block": {}}).noises
    assert "target_block" in VideoCorruption(exclude=()).noises


def test_core_takes_numpy_integer_severities_like_the_module():
    video = clips(1)[0]
    assert torch.equal(corrupt(video, "gaussian", 0.5, seed=1, severity=np.int64(3)),
                       corrupt(video, "gaussian", 0.5, seed=1, severity=3))
