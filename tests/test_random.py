"""The counter-based random function: known answers, statistics, independence, Triton parity."""
from __future__ import annotations

import math

import pytest
import torch

from nrvl.kernels import random as R


def lowbias32_py(x: int) -> int:
    """Chris Wellons' lowbias32 on Python ints (uint32 semantics): the independent reference."""
    x &= 0xFFFFFFFF
    x ^= x >> 16
    x = (x * 0x7FEB352D) & 0xFFFFFFFF
    x ^= x >> 15
    x = (x * 0x846CA68B) & 0xFFFFFFFF
    x ^= x >> 16
    return x


def as_u32(t: torch.Tensor) -> list[int]:
    return [v & 0xFFFFFFFF for v in t.flatten().tolist()]


def test_mix32_matches_the_python_reference():
    g = torch.Generator().manual_seed(0)
    xs = torch.randint(-(2**31), 2**31 - 1, (5000,), generator=g, dtype=torch.int32)
    xs = torch.cat([xs, torch.tensor([0, 1, -1, 2**31 - 1, -(2**31)], dtype=torch.int32)])
    got = as_u32(R.mix32(xs))
    want = [lowbias32_py(v) for v in as_u32(xs)]
    assert got == want


def test_bits_is_the_documented_composition():
    key = torch.tensor([123456789, -987654321], dtype=torch.int32)
    idx = torch.arange(100, dtype=torch.int32)
    got = as_u32(R.bits(key, idx))
    k0, k1 = 123456789 & 0xFFFFFFFF, -987654321 & 0xFFFFFFFF
    want = [lowbias32_py(lowbias32_py(i + k0) ^ k1) for i in range(100)]
    assert got == want


def test_known_answers_are_pinned():
    # If these change, every corruption ever logged changes: bump a version, do not edit silently.
    k = R.keys(torch.tensor([0, 42, 2**40 + 5, -3]), "known-answer", torch.tensor([[0], [1], [2], [3]]))
    assert k.tolist() == [[[68463472, -227161604]], [[-1889564436, 1590046497]],
                          [[1125977228, 593042241]], [[2118796593, -1704356260]]]
    i = torch.arange(4, dtype=torch.int32)
    assert R.bits(k[:, None, :], i)[0, 0].tolist() == [543212232, 1809446830, -1503429437, -1454995345]
    assert R.seeds_from(3, seed=7).tolist() == [6162603216494800842, 930001955148016704, 1878239050003952716]
    assert R.derive_seed(0, "vid1", 3, "gaussian", 0.9) == 5157114952257189496
    assert R.stream_id("frames") == -26310342


def _key(seed=1, stream="s"):
    return R.keys(torch.tensor([seed]), stream)[0]


def test_uniform_is_uniform_chi_square():
    u = R.uniform(_key(), torch.arange(200_000, dtype=torch.int32))
    assert u.min() >= 0 and u.max() < 1
    counts = torch.histc(u, bins=100, min=0, max=1)
    expected = u.numel() / 100
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    # 99 degrees of freedom: the 0.999 quantile is about 148.
    assert chi2 < 148, chi2
    assert abs(float(u.mean()) - 0.5) < 0.003
    assert abs(float(u.std()) - 1 / math.sqrt(12)) < 0.002


def test_normal_moments():
    n = R.normal(_key(2), torch.arange(200_000, dtype=torch.int32), torch.float64)
    assert abs(float(n.mean())) < 0.01
    assert abs(float(n.std()) - 1) < 0.01
    skew = float(((n - n.mean()) ** 3).mean() / n.std() ** 3)
    kurt = float(((n - n.mean()) ** 4).mean() / n.std() ** 4)
    assert abs(skew) < 0.03 and abs(kurt - 3) < 0.06
    # tails: P(|n| > 3) = 0.0027
    assert abs(float((n.abs() > 3).double().mean()) - 0.0027) < 0.0006


def test_streams_clips_and_counters_are_independent():
    idx = torch.arange(100_000, dtype=torch.int32)
    a = R.uniform(_key(1, "a"), idx)
    b = R.uniform(_key(1, "b"), idx)
    c = R.uniform(_key(2, "a"), idx)
    for x, y in [(a, b), (a, c), (b, c)]:
        r = torch.corrcoef(torch.stack([x, y]))[0, 1]
        assert abs(float(r)) < 0.015
        assert not torch.equal(x, y)
    # neighbouring elements of one stream are uncorrelated too
    r = torch.corrcoef(torch.stack([a[:-1], a[1:]]))[0, 1]
    assert abs(float(r)) < 0.015
    # frame counters give different keys
    k = R.keys(torch.tensor([5]), "x", torch.arange(64).reshape(1, 64))
    assert torch.unique(k[..., 0]).numel() == 64


def test_randint_bounds_and_coverage():
    v = R.randint(_key(3), torch.arange(50_000, dtype=torch.int32), -4, 3)
    assert v.min() == -4 and v.max() == 3
    counts = torch.bincount(v + 4)
    assert counts.numel() == 8 and (counts - 50_000 / 8).abs().max() < 400


@pytest.mark.parametrize("lam", [0.0, 0.5, 1.0, 2.55])
def test_poisson_mean_and_variance(lam):
    n = 100_000
    lam_t = torch.full((n,), lam)
    k = R.poisson(_key(4), torch.arange(n, dtype=torch.int32), lam_t, max_lam=2.55)
    assert torch.equal(k, k.round()) and k.min() >= 0
    assert abs(float(k.mean()) - lam) < 0.02 + 0.01 * lam
    assert abs(float(k.var()) - lam) < 0.03 + 0.03 * lam


def test_seeds_from_rules():
    s = R.seeds_from(4, seed=9)
    assert s.dtype == torch.int64 and s.shape == (4,)
    assert R.seeds_from(1, seed=9).tolist() == s[:1].tolist()  # clip 0 alone == clip 0 of a batch
    assert torch.unique(s).numel() == 4
    t = torch.tensor([1, 2, 3])
    assert torch.equal(R.seeds_from(3, seed=t), t)
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    assert torch.equal(R.seeds_from(5, generator=g1), R.seeds_from(5, generator=g2))
    with pytest.raises(ValueError, match="seed"):
        R.seeds_from(2, seed=torch.tensor([1, 2, 3]))
    with pytest.raises(TypeError, match="seed"):
        R.seeds_from(2, seed=torch.tensor([1.0, 2.0]))
    with pytest.raises(TypeError, match="seed"):
        R.seeds_from(2, seed="7")
    with pytest.raises(ValueError, match="either seed or generator"):
        R.seeds_from(2, seed=1, generator=torch.Generator())


def test_derive_seed_separates_every_key():
    base = R.derive_seed(0, "v", 1, "gaussian", 0.9)
    others = [R.derive_seed(1, "v", 1, "gaussian", 0.9), R.derive_seed(0, "w", 1, "gaussian", 0.9),
              R.derive_seed(0, "v", 2, "gaussian", 0.9), R.derive_seed(0, "v", 1, "impulse", 0.9),
              R.derive_seed(0, "v", 1, "gaussian", 0.6)]
    assert len({base, *others}) == 6
    assert all(0 <= s < 2**63 for s in [base, *others])


def test_triton_draws_the_same_bits():
    pytest.importorskip("triton")
    from nrvl.kernels.triton import random as TR

    device = "cuda" if torch.cuda.is_available() else "cpu"
    key = R.keys(torch.tensor([0, 1, 2**40 + 5, -3], device=device), "parity")
    n = 1500  # not a multiple of the block, so the mask is exercised
    b, u, nrm = TR.draw_bits(key, n, block=1024)
    idx = torch.arange(n, dtype=torch.int32, device=device)
    assert torch.equal(b, R.bits(key[:, None, :], idx[None]))
    assert torch.equal(u, R.uniform(key[:, None, :], idx[None]))
    assert torch.allclose(nrm, R.normal(key[:, None, :], idx[None]), atol=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_draws_the_same_bits_as_cpu():
    key = R.keys(torch.tensor([3, 4]), "dev")
    idx = torch.arange(10_000, dtype=torch.int32)
    cpu = R.bits(key[:, None, :], idx[None])
    gpu = R.bits(key.cuda()[:, None, :], idx.cuda()[None]).cpu()
    assert torch.equal(cpu, gpu)


@pytest.mark.parametrize("shape", [(3, 5), (64, 64), (1, 1000), (2, 1, 7)])
def test_in_place_hash_equals_the_plain_formula(shape):
    """``bits``/``uniform`` hash in place (two buffers); the values are the plain ops' bit for bit."""
    key = R.keys(torch.tensor([1, 2**40 + 3]), "foggy/plasma", torch.tensor(7, dtype=torch.int32))
    key = key.reshape(2, *([1] * len(shape)), 2)
    i = torch.arange(torch.Size(shape).numel(), dtype=torch.int32).reshape(shape)
    plain = R.mix32(R.mix32(i + key[..., 0]) ^ key[..., 1])
    assert torch.equal(R.bits(key, i), plain)
    for dtype in (torch.float32, torch.float64):
        assert torch.equal(R.uniform(key, i, dtype), ((plain >> 8) & 0xFFFFFF).to(dtype) * (1.0 / 2**24))


@pytest.mark.slow
def test_compiled_hash_equals_the_eager_one(monkeypatch):
    """From HASH_CPU_MIN_ELEMENTS numbers "auto" hashes through one compiled loop: the same bits,
    whatever the broadcast (a per-frame key over a plane's counters, a key per element)."""
    from nrvl.kernels import _compile

    key = R.keys(torch.tensor([[5], [2**33 + 1]]), "edge_sawtooth/mask", torch.arange(3, dtype=torch.int32))
    i = torch.arange(96 * 128, dtype=torch.int32).reshape(1, 96, 128)
    cases = [(key.reshape(6, 1, 1, 2), i), (key.reshape(6, 1, 1, 2)[:1], i[0])]
    calls = []
    real = _compile.maybe_compiled

    def spy(fn, *a, **k):
        calls.append(fn.__name__)
        return real(fn, *a, **k)

    monkeypatch.setattr(R, "maybe_compiled", spy)
    for k, idx in cases:
        _compile.set_compile("never")
        eager = R.bits(k, idx)
        _compile.set_compile("always")
        try:
            compiled = R.bits(k, idx)
        finally:
            _compile.set_compile("auto")
        assert torch.equal(compiled, eager)
    assert calls == ["_hash", "_hash"]
    monkeypatch.setattr(R, "HASH_CPU_MIN_ELEMENTS", 10**9)  # "auto" below the size stays eager
    R.bits(*cases[0])
    assert calls == ["_hash", "_hash"]


@pytest.mark.parametrize("seed", [0, 7, -1, 2**63 - 1, -(2**63), 123456789012345])
def test_host_and_tensor_clip_seeds_agree(seed, monkeypatch):
    """Clip seeds of an int seed are derived in Python for small batches and with tensor ops for
    large ones: the same values either way, on both sides of the size that switches."""
    m = R.HOST_SEED_MAX_BATCH
    host = [R.seeds_from(b, seed) for b in (1, m)]
    monkeypatch.setattr(R, "HOST_SEED_MAX_BATCH", 0)
    tensor = [R.seeds_from(b, seed) for b in (1, m)]
    assert torch.equal(host[0], tensor[0]) and torch.equal(host[1], tensor[1])
    monkeypatch.undo()
    assert torch.equal(R.seeds_from(m + 3, seed)[:m], host[1])  # a batch past the switch: tensor ops


def test_int_counters_hash_like_tensor_counters():
    seeds = torch.tensor([0, 42, 2**40 + 5, -3])
    for c in (0, 3, -5, 2**31 - 1, 2**31, 2**32 + 7):
        assert torch.equal(R.keys(seeds, "s", c), R.keys(seeds, "s", torch.tensor(c)))
    assert torch.equal(R.keys(seeds, "s", torch.tensor([[1], [2], [3], [4]]), 9),
                       R.keys(seeds, "s", torch.tensor([[1], [2], [3], [4]]), torch.tensor(9)))


def test_seed_halves_are_the_masked_halves():
    g = torch.Generator().manual_seed(1)
    s = torch.cat([torch.randint(-(2**63), 2**63 - 1, (2000,), generator=g, dtype=torch.int64),
                   torch.tensor([0, -1, 2**31, 2**32 - 1, 2**32, -(2**63), 2**63 - 1])])
    lo, hi = R._seed_halves(s)
    assert [v & 0xFFFFFFFF for v in lo.tolist()] == [v & 0xFFFFFFFF for v in s.tolist()]
    assert [v & 0xFFFFFFFF for v in hi.tolist()] == [(v >> 32) & 0xFFFFFFFF for v in s.tolist()]


@pytest.mark.parametrize("a, b", [((), ()), ((3,), ()), ((2, 1, 4), (3, 1)), ((1, 0), (5, 1)), ((4, 1), (0,))])
def test_broadcast_numel(a, b):
    assert R._broadcast_numel(a, b) == math.prod(torch.broadcast_shapes(a, b))
