"""Small draws hashed on the host (``Context.host_seeds``) give the device path's exact bits."""
from __future__ import annotations

import pytest
import torch

import nrvl.kernels as K
from nrvl.kernels import core, random as R

CPU = torch.device("cpu")
# (B, T, ratio): under and over the host budget, no frame chosen, every frame, one frame.
SHAPES = [(1, 8, 0.9), (3, 5, 0.6), (2, 16, 0.3), (1, 1, 1.0), (2, 4, 0.0), (4, 30, 0.9), (1, 200, 0.5)]
SEEDS = [0, -7, 2**63 - 5, 123456789]


def _same(a, b, where):
    assert a.keys() == b.keys(), where
    for k in a:
        x, y = a[k], b[k]
        if isinstance(x, torch.Tensor):
            assert x.dtype == y.dtype and x.shape == y.shape and torch.equal(x, y), (where, k)
        elif isinstance(x, dict):
            _same(x, y, where + (k,))
        else:
            assert x == y, (where, k)


@pytest.mark.parametrize("name", K.list_noises())
def test_host_draws_equal_device_draws_for_every_noise(name):
    spec = core.get_spec(name)
    checked = 0
    for (B, T, ratio), seed in zip(SHAPES * 2, SEEDS * 4):
        if name == "other_video" and B < 2:
            continue
        for severity in ([None] if spec.severities is None else [None, 1, 5]):
            p = core._resolve_params(spec, severity, {})
            seeds, host = R.seeds_and_host(B, seed, None, CPU)
            assert host is not None and list(host) == seeds.tolist()
            shape = (B, T, 3, 12, 10)
            a = spec.sample(core.Context(shape, CPU, seeds, ratio, host), **p)
            b = spec.sample(core.Context(shape, CPU, seeds, ratio, None), **p)
            _same(a, b, (name, B, T, ratio, seed, severity))
            checked += 1
    assert checked >= 6


def test_keys_host_equals_keys():
    g = torch.Generator().manual_seed(3)
    seeds = torch.randint(-(2**63), 2**63 - 1, (5,), generator=g, dtype=torch.int64)
    rows = torch.randint(0, 1000, (5, 7), generator=g, dtype=torch.int64)
    host = seeds.tolist()
    for counters, host_counters in [((), ()), ((3,), (3,)), ((-2, 9), (-2, 9)), ((rows,), (rows.tolist(),)),
                                    ((4, rows, 2**40), (4, rows.tolist(), 2**40)), ((rows[:, :0],), ([[]] * 5,))]:
        want = R.keys(seeds, "s/t", *counters)
        flat, shape = R.keys_host(host, "s/t", *host_counters)
        assert tuple(want.shape) == shape
        assert torch.tensor(flat, dtype=torch.int32).reshape(shape).tolist() == want.tolist()
    with pytest.raises(ValueError, match="one per-clip counter"):
        R.keys_host(host, "s", rows.tolist(), rows.tolist())


def test_uniform_and_order_host_equal_the_tensor_draws():
    seeds = torch.tensor([0, 5, -(2**63), 2**62 + 11])
    key = R.keys(seeds, "frames")
    t = torch.arange(50, dtype=torch.int32)
    u = R.uniform(key[:, None, :], t[None, :])
    h = R.bits(key[:, None, :], t[None, :])
    for b, s in enumerate(seeds.tolist()):
        k0, k1 = key[b].tolist()
        assert [R.uniform_host(k0, k1, i) for i in range(50)] == u[b].tolist()
        assert R.order_host(s, "frames", 50) == torch.argsort(h[b]).tolist()


def test_seeds_and_host_kinds():
    s, h = R.seeds_and_host(3, 7)
    assert list(h) == s.tolist() == R.seeds_from(3, 7).tolist()
    cpu = torch.tensor([4, -5], dtype=torch.int64)
    s, h = R.seeds_and_host(2, cpu)
    assert list(h) == [4, -5] and torch.equal(s, cpu)
    s, h = R.seeds_and_host(4, generator=torch.Generator().manual_seed(1))
    assert list(h) == s.tolist() == R.seeds_from(4, generator=torch.Generator().manual_seed(1)).tolist()
    big = R.HOST_SEED_MAX_BATCH + 1
    assert R.seeds_and_host(big, 7)[1] is None and R.seeds_and_host(big, torch.arange(big))[1] is None
    assert R.seeds_and_host(0, 7)[1] == ()


def test_small_draws_take_no_device_hash(monkeypatch):
    """A B=1, 8-frame call with an int seed hashes its keys and frame choice on the host."""
    clip = torch.randint(0, 256, (8, 3, 8, 8), dtype=torch.uint8)
    want = {n: K.corrupt(clip, n, 0.6, seed=11) for n in ("contrast", "color_shift", "flicker", "gaussian")}

    def refuse(*a, **k):
        raise AssertionError("rng.keys ran on the device for a host-sized draw")

    monkeypatch.setattr(R, "keys", refuse)
    for n, w in want.items():
        assert torch.equal(K.corrupt(clip, n, 0.6, seed=11), w), n
    # A seed tensor on the device side only (no host values) still works: the device path.
    monkeypatch.undo()
    seeds = R.seeds_from(1, 11)
    ctx = core.Context((1, 8, 3, 8, 8), CPU, seeds, 0.6, None)
    assert ctx.keys("x").shape == (1, 2)


def test_remembered_rows_are_matched_by_identity():
    seeds, host = R.seeds_and_host(2, 1)
    ctx = core.Context((2, 4, 3, 4, 4), CPU, seeds, 0.5, host)
    idx = torch.tensor([[0, 1], [2, 3]])
    ctx.remember(idx, [[0, 1], [2, 3]])
    assert ctx.host_rows(idx) == [[0, 1], [2, 3]]
    assert ctx.host_rows(idx.clone()) is None  # an equal tensor is not the remembered one
    assert ctx.keys("k", idx).tolist() == R.keys(seeds, "k", idx).tolist()
    assert ctx.keys("k", idx.clone()).tolist() == R.keys(seeds, "k", idx).tolist()


def test_a_frame_index_changed_in_place_is_not_taken_from_the_host_cache():
    seeds, host = R.seeds_and_host(1, 4)
    ctx = core.Context((1, 6, 3, 4, 4), CPU, seeds, 0.5, host)
    idx = ctx.remember(torch.tensor([[1, 5]]), [[1, 5]])
    idx.clamp_(max=3)  # a noise's own edit of frame_idx
    assert ctx.host_rows(idx) is None
    assert torch.equal(core.frame_uniform(ctx, idx, "s"), core.frame_uniform(
        core.Context((1, 6, 3, 4, 4), CPU, seeds, 0.5, None), idx, "s"))


def test_all_frames_mask_is_a_fill_for_big_batches():
    seeds, host = R.seeds_and_host(64, 1)
    p = core.base_params(core.Context((64, 2000, 3, 1, 1), CPU, seeds, 0.5, host), "all")
    assert p["frames"].all() and p["frames"].shape == (64, 2000)


def test_replaced_seeds_drop_the_host_seeds_of_the_old_ones():
    """``dataclasses.replace(ctx, seeds=...)`` must not keep hashing the old seeds on the host."""
    import dataclasses

    seeds, host = R.seeds_and_host(2, 7, None, CPU)
    ctx = core.Context((2, 6, 3, 4, 4), CPU, seeds, 0.5, host)
    other = torch.tensor([11, 12], dtype=torch.int64)
    moved = dataclasses.replace(ctx, seeds=other)
    assert moved.host_seeds is None
    assert torch.equal(moved.keys("s", 3), R.keys(other, "s", 3))
    assert not torch.equal(moved.keys("s", 3), ctx.keys("s", 3))
    same = dataclasses.replace(ctx, ratio=0.9)  # the same seeds: still hashed on the host
    assert same.host_seeds == host and torch.equal(same.keys("s", 3), ctx.keys("s", 3))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_frame_uniform_in_half_precision_is_finite_and_agrees_with_the_host_path(dtype):
    seeds, host = R.seeds_and_host(2, 5, None, CPU)
    shape = (2, 6, 3, 4, 4)
    ctx_h, ctx_t = core.Context(shape, CPU, seeds, 0.5, host), core.Context(shape, CPU, seeds, 0.5, None)
    idx_h = core.base_params(ctx_h, "random")["frame_idx"]
    idx_t = core.base_params(ctx_t, "random")["frame_idx"]
    a = core.frame_uniform(ctx_h, idx_h, "u", count=4, dtype=dtype)
    b = core.frame_uniform(ctx_t, idx_t, "u", count=4, dtype=dtype)
    assert a.dtype == b.dtype == dtype and torch.isfinite(b).all() and (b >= 0).all() and (b <= 1).all()
    assert torch.equal(a, b)
    want = core.frame_uniform(ctx_t, idx_t, "u", count=4).to(dtype)  # float32 draws, rounded
    assert torch.equal(b, want)
