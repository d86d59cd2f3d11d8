"""The temporal family against the reference semantics (reference/nrvl-noises.md 2.3)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import nrvl.kernels as K
from nrvl.kernels.temporal import nearest_anchor_map, shuffle_map

TEMPORAL = ["frame_drop", "frame_replace", "frame_repeat", "temporal_jitter", "other_video"]
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
SEEDS = range(12)

# reference/nrvl-noises.md 1.2 and 2.3: int(T*ratio) selected frames; frame_repeat keeps int(T*(1-ratio)).
SELECTED = {8: {0.3: 2, 0.6: 4, 0.9: 7}, 16: {0.3: 4, 0.6: 9, 0.9: 14}}
KEPT = {8: {0.3: 5, 0.6: 3, 0.9: 0}, 16: {0.3: 11, 0.6: 6, 0.9: 1}}
CASES = [(T, r) for T in (8, 16) for r in (0.3, 0.6, 0.9)]
CASE_IDS = [f"T{T}-r{r}" for T, r in CASES]


def numbered_clip(T: int, H: int = 6, W: int = 5, *, B: int | None = None, dtype=torch.uint8, device="cpu",
                  offset: int = 1) -> torch.Tensor:
    """Frame t of clip b is filled with the value offset + b*T + t (never 0), so frames are identifiable."""
    n = 1 if B is None else B
    v = torch.arange(offset, offset + n * T, device=device).to(dtype).reshape(n, T, 1, 1, 1)
    v = v.expand(n, T, 3, H, W).contiguous()
    return v[0] if B is None else v


def frame_ids(out: torch.Tensor, offset: int = 1) -> list[int]:
    """Which input frame each output frame is (-1: black), for clips made by ``numbered_clip``."""
    vals = out[:, 0, 0, 0].to(torch.int64).tolist()
    return [v - offset if v else -1 for v in vals]


def donor_kw(name: str, video: torch.Tensor) -> dict:
    if name != "other_video":
        return {}
    T, H, W = video.shape[-4], video.shape[-2], video.shape[-1]
    return {"donor": torch.full((T, 3, H, W), 250, dtype=video.dtype, device=video.device)}


def test_registry_entries():
    assert K.list_noises("temporal") == TEMPORAL
    for name in TEMPORAL:
        spec = K.NOISES[name]
        assert spec.family == "temporal" and spec.temporal and spec.severities is None and spec.description
    assert K.NOISES["frame_repeat"].frame_mode == K.NOISES["temporal_jitter"].frame_mode == "custom"
    assert K.NOISES["other_video"].extras["needs_donor"] is True


# ----------------------------------------------------------------------------- per-noise semantics


@pytest.mark.parametrize("T,ratio", CASES, ids=CASE_IDS)
def test_frame_drop_blanks_selected_frames(T, ratio):
    v = numbered_clip(T)
    for seed in SEEDS:
        out, p = K.corrupt(v, "frame_drop", ratio, seed=seed, return_params=True)
        ids = frame_ids(out)
        assert out.shape == v.shape  # blanked, not removed
        assert ids.count(-1) == SELECTED[T][ratio]
        assert [t for t in range(T) if ids[t] == -1] == p["frame_idx"][0].tolist()
        assert all(ids[t] == t for t in range(T) if ids[t] != -1)


@pytest.mark.parametrize("T,ratio", CASES, ids=CASE_IDS)
def test_frame_replace_permutes_selected_frames(T, ratio):
    v = numbered_clip(T)
    n = SELECTED[T][ratio]
    moved = 0
    for seed in SEEDS:
        out, p = K.corrupt(v, "frame_replace", ratio, seed=seed, return_params=True)
        ids = frame_ids(out)
        sel = p["frame_idx"][0].tolist()
        assert len(sel) == n
        assert sorted(ids[t] for t in sel) == sel  # a permutation of the selected input frames
        assert all(ids[t] == t for t in range(T) if t not in sel)
        moved += sum(ids[t] != t for t in sel)
        # frame_replace selects the same frames as every other frame-selective noise
        assert torch.equal(p["frame_idx"], K.sample_params(v, "gaussian", ratio, seed=seed)["frame_idx"])
    assert moved > 0


def test_frame_replace_is_a_uniform_permutation():
    # 2 selected frames: identity or swap, 50 % each (the reference's randperm allows identity).
    v = numbered_clip(8)
    swaps = sum(frame_ids(K.corrupt(v, "frame_replace", 0.3, seed=s)) != list(range(8)) for s in range(400))
    assert 150 < swaps < 250
    # 3 chosen frames: each of the 6 orders appears
    chosen = torch.zeros(600, 5, dtype=torch.bool)
    chosen[:, [0, 2, 4]] = True
    src = shuffle_map(chosen, torch.arange(600), "test/perm")
    orders = {tuple(r) for r in src[:, [0, 2, 4]].tolist()}
    assert len(orders) == 6 and torch.equal(src[:, [1, 3]], torch.tensor([[1, 3]]).expand(600, 2))


@pytest.mark.parametrize("T,ratio", CASES, ids=CASE_IDS)
def test_frame_repeat_nearest_kept_frame(T, ratio):
    v = numbered_clip(T)
    k = KEPT[T][ratio]
    assert k == int(T * (1 - ratio))
    first_kept = set()
    for seed in SEEDS:
        out, p = K.corrupt(v, "frame_repeat", ratio, seed=seed, return_params=True)
        ids = frame_ids(out)
        kept = [t for t in range(T) if p["kept"][0, t]]
        assert len(kept) == max(k, 1) and (k > 0 or kept == [0])
        for t in range(T):  # nearest kept frame, ties to the earlier one
            assert ids[t] == min(kept, key=lambda a: (abs(a - t), a))
        assert sorted(set(ids)) == kept
        assert p["frame_idx"][0].tolist() == [t for t in range(T) if t not in kept]
        first_kept.add(kept[0])
    if k > 0:
        assert len(first_kept) > 1  # the kept frames are random, not the first k


def test_frame_repeat_collapses_t8_at_0_9_to_frame_0():
    v = numbered_clip(8)
    for seed in SEEDS:
        out = K.corrupt(v, "frame_repeat", 0.9, seed=seed)
        assert frame_ids(out) == [0] * 8


def test_nearest_anchor_ties_go_to_the_earlier_frame():
    kept = torch.tensor([[True, False, True, False, False, False, True, False]])
    assert nearest_anchor_map(kept).tolist() == [[0, 0, 2, 2, 2, 6, 6, 6]]


@pytest.mark.parametrize("T,ratio", CASES, ids=CASE_IDS)
def test_temporal_jitter_counts(T, ratio):
    v = numbered_clip(T)
    blanks = set()
    for seed in range(40):
        out, p = K.corrupt(v, "temporal_jitter", ratio, seed=seed, return_params=True)
        u = float(p["u"][0])
        assert 0.0 <= u < 1.0
        replace_ratio = ratio * u  # the reference, in Python floats
        n_replace, n_drop = int(T * replace_ratio), int(T * (1 - replace_ratio))
        assert (int(p["n_replace"][0]), int(p["n_drop"][0])) == (n_replace, n_drop)
        ids = frame_ids(out)
        assert ids.count(-1) == n_drop
        shuffled = [t for t in range(T) if p["src"][0, t] != t]
        assert len(shuffled) <= n_replace
        assert all(ids[t] in (t, -1) for t in range(T) if t not in shuffled)
        touched = [t for t in range(T) if ids[t] != t]
        assert set(touched) <= set(torch.nonzero(p["frames"][0]).flatten().tolist())
        n = int(p["n_frames"][0])
        assert p["frame_idx"][0, :n].tolist() == torch.nonzero(p["frames"][0]).flatten().tolist()
        assert (p["frame_idx"][0, n:] == T).all()
        blanks.add(n_drop)
    lo = int(T * (1 - ratio))  # u -> 1
    assert min(blanks) >= lo and max(blanks) <= T
    if T == 8 and ratio == 0.3:
        assert blanks <= {5, 6, 7, 8} and len(blanks) >= 2  # the reference's inverted severity


def test_temporal_jitter_counts_vary_per_clip_in_one_batch():
    v = numbered_clip(16, B=15)  # values up to 240 fit in uint8
    out, p = K.corrupt(v, "temporal_jitter", 0.9, seed=3, return_params=True)
    assert len(set(p["n_drop"].tolist())) > 3
    for b in range(15):
        ids = frame_ids(out[b], offset=1 + 16 * b)
        assert ids.count(-1) == int(16 * (1 - 0.9 * float(p["u"][b])))


@pytest.mark.parametrize("T,ratio", CASES, ids=CASE_IDS)
def test_other_video_same_index_donor_frames(T, ratio):
    v = numbered_clip(T)
    donor = numbered_clip(3, offset=100)  # T' = 3: frame t takes donor frame t mod 3
    for seed in SEEDS:
        out, p = K.corrupt(v, "other_video", ratio, seed=seed, donor=donor, return_params=True)
        ids = frame_ids(out)
        sel = p["frame_idx"][0].tolist()
        assert len(sel) == SELECTED[T][ratio]
        for t in range(T):
            assert ids[t] == (99 + t % 3 if t in sel else t)


def test_other_video_resizes_the_donor():
    g = torch.Generator().manual_seed(0)
    v = torch.randint(0, 256, (8, 3, 24, 32), generator=g, dtype=torch.uint8)
    donor = torch.randint(0, 256, (8, 3, 48, 40), generator=g, dtype=torch.uint8)
    want = F.interpolate(donor.float(), size=(24, 32), mode="bilinear", align_corners=False, antialias=True)
    for dtype in (torch.uint8, torch.float32):
        out, p = K.corrupt(v.to(dtype), "other_video", 0.6, seed=1, donor=donor.to(dtype), return_params=True)
        sel = p["frame_idx"][0]
        diff = (out[sel].double() - want[sel].double()).abs().max()
        assert diff <= (1.0 if dtype == torch.uint8 else 1e-3)
        assert out.dtype == dtype
        keep = ~p["frames"][0]
        assert torch.equal(out[keep], v.to(dtype)[keep])


def test_other_video_fits_a_donor_to_a_1x1_video():
    # torch's uint8 antialiased resize asserts on a 1x1 output; that size takes the float path.
    v = torch.zeros(4, 3, 1, 1, dtype=torch.uint8)
    donor = torch.arange(4 * 3 * 8 * 8, dtype=torch.int64).reshape(4, 3, 8, 8).remainder(256).to(torch.uint8)
    out, p = K.corrupt(v, "other_video", 1.0, seed=0, donor=donor, return_params=True)
    want = F.interpolate(donor.float(), size=(1, 1), mode="bilinear", align_corners=False, antialias=True)
    sel = p["frame_idx"][0]
    assert out.shape == v.shape and sel.numel() == 4
    assert (out[sel].double() - want[sel].round().double()).abs().max() <= 1


def test_other_video_batch_donor_is_another_clip():
    B, T = 4, 8
    v = numbered_clip(T, B=B)
    donors = [set() for _ in range(B)]
    for seed in range(30):
        out, p = K.corrupt(v, "other_video", 0.6, seed=seed, return_params=True)
        d = p["donor_idx"].tolist()
        for b in range(B):
            assert d[b] != b
            donors[b].add(d[b])
            for t in range(T):
                want = d[b] * T + t if p["frames"][b, t] else b * T + t
                assert int(out[b, t, 0, 0, 0]) == 1 + want
    assert all(len(s) == B - 1 for s in donors)


def test_other_video_per_clip_donor_tensor():
    v = numbered_clip(8, B=2)
    donor = torch.stack([numbered_clip(8, offset=100), numbered_clip(8, offset=200)])
    out, p = K.corrupt(v, "other_video", 0.9, seed=0, donor=donor, return_params=True)
    for b, base in ((0, 100), (1, 200)):
        for t in range(8):
            if p["frames"][b, t]:
                assert int(out[b, t, 0, 0, 0]) == base + t


def test_other_video_needs_a_donor_for_one_clip():
    with pytest.raises(ValueError, match="donor"):
        K.corrupt(numbered_clip(8), "other_video", 0.6, seed=0)
    with pytest.raises(ValueError, match="donor"):
        K.corrupt(numbered_clip(8, B=1), "other_video", 0.6, seed=0)
    with pytest.raises(ValueError, match="donor"):
        K.corrupt(numbered_clip(8), "other_video", 0.6, seed=0, donor=torch.zeros(8, 4, 6, 5, dtype=torch.uint8))
    with pytest.raises(ValueError, match="donor"):
        K.corrupt(numbered_clip(8, B=3), "other_video", 0.6, seed=0,
                  donor=torch.zeros(2, 8, 3, 6, 5, dtype=torch.uint8))
    with pytest.raises(TypeError, match="donor"):
        K.corrupt(numbered_clip(8), "other_video", 0.6, seed=0, donor=[1, 2])
    with pytest.raises(TypeError, match="donor"):
        K.corrupt(numbered_clip(8), "other_video", 0.6, seed=0, donor=torch.zeros(8, 3, 6, 5, dtype=torch.int32))


# ----------------------------------------------------------------------------- contract, per temporal noise


@pytest.mark.parametrize("name", TEMPORAL)
def test_batch_equals_singles(name):
    B, T = 5, 16
    g = torch.Generator().manual_seed(1)
    v = torch.randint(0, 256, (B, T, 3, 6, 5), generator=g, dtype=torch.uint8)
    seeds = torch.tensor([3, 1 << 40, 7, 12345, 99], dtype=torch.int64)
    kw = donor_kw(name, v[0])
    batch = K.corrupt(v, name, 0.6, seed=seeds, **kw)
    for b in range(B):
        single = K.corrupt(v[b], name, 0.6, seed=seeds[b:b + 1], **kw)
        assert torch.equal(batch[b], single)
    # and in another order
    perm = torch.tensor([4, 2, 0, 3, 1])
    assert torch.equal(K.corrupt(v[perm], name, 0.6, seed=seeds[perm], **kw), batch[perm])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("name", TEMPORAL)
def test_dtype_device_and_untouched_frames(name, dtype, device):
    g = torch.Generator().manual_seed(2)
    v8 = torch.randint(1, 256, (2, 8, 3, 10, 12), generator=g, dtype=torch.uint8)
    v = v8.to(device=device, dtype=dtype)
    if dtype.is_floating_point:
        v = v + 0.25  # not integer-valued: the noises must copy, not round
    kw = donor_kw(name, v[0])
    before = v.clone()
    version = v._version
    out, p = K.corrupt(v, name, 0.9, seed=4, return_params=True, **kw)
    assert out.shape == v.shape and out.dtype == dtype and out.device == v.device
    assert v._version == version and torch.equal(v, before)
    untouched = ~p["frames"].to(device)
    assert torch.equal(out[untouched], v[untouched])
    assert bool((out != v).flatten(2).any(2)[untouched].logical_not().all())
    # the same frames move on every dtype: the float result is the uint8 result, shifted
    out8 = K.corrupt(v8.to(device), name, 0.9, seed=4, **kw) if dtype != torch.uint8 else out
    if name != "other_video":
        moved = out8.to(dtype) + 0.25 * (out8 != 0) if dtype.is_floating_point else out8
        assert torch.equal(out, moved.to(dtype))


@pytest.mark.parametrize("name", TEMPORAL)
def test_replay_inplace_and_strided(name):
    v = numbered_clip(8, B=3, H=6, W=8)
    kw = donor_kw(name, v[0])
    out, p = K.corrupt(v, name, 0.9, seed=5, return_params=True, **kw)
    assert torch.equal(K.apply_params(v, name, p, **kw), out)
    # a strided (channels-last) input gives the same values
    cl = v.permute(0, 1, 3, 4, 2).contiguous().permute(0, 1, 4, 2, 3)
    assert not cl.is_contiguous()
    assert torch.equal(K.corrupt(cl, name, 0.9, seed=5, **kw), out)
    for x in (v.clone(), cl.clone()):
        ret = K.corrupt(x, name, 0.9, seed=5, inplace=True, **kw)
        assert torch.equal(x, out) and ret.data_ptr() == x.data_ptr()


@pytest.mark.parametrize("name", TEMPORAL)
def test_degenerate_shapes_and_ratio_zero(name):
    v = numbered_clip(8, B=2)
    kw = donor_kw(name, v[0])
    assert torch.equal(K.corrupt(v, name, 0.0, seed=0, **kw), v)
    one = numbered_clip(1, B=2)
    assert K.corrupt(one, name, 0.9, seed=0, **donor_kw(name, one[0])).shape == one.shape
    empty = numbered_clip(8, B=2)[:0]
    assert K.corrupt(empty, name, 0.9, seed=torch.zeros(0, dtype=torch.int64), **kw).shape == empty.shape


@pytest.mark.parametrize("name", TEMPORAL)
def test_seed_determines_the_result(name):
    v = numbered_clip(16, B=2)
    kw = donor_kw(name, v[0])
    a = K.corrupt(v, name, 0.6, seed=11, **kw)
    assert torch.equal(a, K.corrupt(v, name, 0.6, seed=11, **kw))
    assert any(not torch.equal(a, K.corrupt(v, name, 0.6, seed=s, **kw)) for s in range(12, 16))


@pytest.mark.parametrize("name", TEMPORAL)
def test_no_severity_table(name):
    with pytest.raises(ValueError, match="severity"):
        K.corrupt(numbered_clip(8), name, 0.6, seed=0, severity=3, **donor_kw(name, numbered_clip(8)))


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32], ids=str)
@pytest.mark.parametrize("name", TEMPORAL)
def test_odd_frame_sizes_and_storage_offsets(name, dtype):
    # Frames are gathered as wide integer words when the bytes allow it; odd sizes and views
    # that start mid-word must take the narrow path and give the same bits.
    base = torch.randint(0, 256, (4, 8, 3, 5, 5), generator=torch.Generator().manual_seed(7)).to(dtype)
    kw = donor_kw(name, base[0])
    for v in (base, base[1:], base.reshape(-1)[75:].reshape(-1)[:3 * 8 * 75].reshape(3, 8, 3, 5, 5)):
        out, p = K.corrupt(v, name, 0.6, seed=torch.arange(v.shape[0]), return_params=True, **kw)
        for b in range(v.shape[0]):
            ref = K.corrupt(v[b].clone(), name, 0.6, seed=torch.tensor([b]), **kw)
            assert torch.equal(out[b], ref)
        untouched = ~p["frames"]
        assert torch.equal(out[untouched], v[untouched])
