"""other_video keeps the last donor resized to the last video size: the cache never changes a result."""
from __future__ import annotations

import gc

import torch

import nrvl.kernels as K
from nrvl.kernels import temporal as Tm


def clip(t, h, w, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (t, 3, h, w), generator=g, dtype=torch.uint8)


def fresh(video, donor, seed, ratio=0.9):
    """The uncached result: an inference-mode copy of the donor has no version counter, so
    other_video resizes just the frames it takes (the path without the cache)."""
    with torch.inference_mode():
        copy = donor.clone()
    out = K.corrupt(video, "other_video", ratio, seed=seed, donor=copy)
    assert Tm._FITTED.get("last") is None or Tm._FITTED["last"][0]() is not copy
    return out


def test_repeated_calls_with_one_donor_match_uncached_results():
    donor = clip(5, 31, 45, 1)
    video = clip(8, 24, 32, 2)
    refs = [fresh(video, donor, s) for s in range(4)]
    Tm._FITTED.clear()
    for s in range(4):
        assert torch.equal(K.corrupt(video, "other_video", 0.9, seed=s, donor=donor), refs[s])
    assert Tm._FITTED["last"][0]() is donor
    # another size, then back: each size gives its own resize
    small = clip(8, 10, 12, 3)
    ref_small = fresh(small, donor, 7)
    assert torch.equal(K.corrupt(small, "other_video", 0.9, seed=7, donor=donor), ref_small)
    assert torch.equal(K.corrupt(video, "other_video", 0.9, seed=1, donor=donor), refs[1])


def test_a_donor_changed_in_place_is_resized_again():
    donor = clip(4, 20, 30, 4)
    video = clip(6, 16, 16, 5)
    K.corrupt(video, "other_video", 0.9, seed=0, donor=donor)
    donor[:, :, :5] = 0  # in place: the cached resize is stale
    assert torch.equal(K.corrupt(video, "other_video", 0.9, seed=0, donor=donor), fresh(video, donor, 0))
    view = donor[:2]  # a view shares the version counter
    K.corrupt(video, "other_video", 0.9, seed=0, donor=view)
    donor[0].fill_(9)
    assert torch.equal(K.corrupt(video, "other_video", 0.9, seed=0, donor=view), fresh(video, view, 0))


def test_float_donors_batches_and_the_entry_is_dropped_with_its_donor():
    donor = clip(3, 9, 13, 6).float() + 0.25
    video = torch.stack([clip(4, 12, 8, 7), clip(4, 12, 8, 8)]).float()
    donor2 = torch.stack([donor, donor.flip(0)])
    for d in (donor, donor2):
        ref = fresh(video, d, 3)
        assert torch.equal(K.corrupt(video, "other_video", 0.75, seed=3, donor=d), ref)
        assert torch.equal(K.corrupt(video, "other_video", 0.75, seed=3, donor=d), ref)
    del donor, donor2, d
    gc.collect()
    assert "last" not in Tm._FITTED


def test_inference_tensors_are_not_cached():
    with torch.inference_mode():
        donor = clip(3, 9, 13, 9)
    video = clip(4, 12, 8, 10)
    Tm._FITTED.clear()
    out = K.corrupt(video, "other_video", 0.75, seed=3, donor=donor)
    assert "last" not in Tm._FITTED
    normal = donor.clone()  # a normal tensor: cached, the same result
    assert torch.equal(out, K.corrupt(video, "other_video", 0.75, seed=3, donor=normal))
    assert Tm._FITTED["last"][0]() is normal


def test_the_composed_output_matches_the_in_place_path_for_strided_batches():
    # Not in place on the CPU, the output is composed frame by frame from the video and the
    # cached donor; in place, the chosen frames are scattered into the video. Same values.
    donor = torch.stack([clip(5, 20, 30, 11), clip(5, 20, 30, 12)])  # one donor per clip
    video = torch.stack([clip(6, 24, 16, 13), clip(6, 24, 16, 14)]).transpose(-1, -2)  # strided [2,6,3,16,24]
    assert not video.is_contiguous()
    Tm._FITTED.clear()
    out, p = K.corrupt(video, "other_video", 0.6, seed=5, donor=donor, return_params=True)
    assert out.is_contiguous() and out.shape == video.shape
    work = video.contiguous()
    K.apply_params(work, "other_video", p, inplace=True, donor=donor)
    assert torch.equal(out, work)
    keep = ~p["frames"]
    assert torch.equal(out[keep], video[keep])
    assert not torch.equal(out[p["frames"]], video[p["frames"]])
