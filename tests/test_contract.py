"""The corruption contract, checked for every registered noise (DESIGN.md, issue 2).

Parametrized over ``list_noises()``, so a noise added later is tested without new code.
"""
from __future__ import annotations

import pytest
import torch

import nrvl.kernels as K
from nrvl.kernels import NOISES, apply_params, corrupt, list_noises

from noise_inputs import extra_params

NAMES = list_noises()
B, T, H, W = 2, 8, 36, 48


def make_video(b=B, t=T, h=H, w=W, dtype=torch.uint8, device="cpu", seed=0):
    g = torch.Generator().manual_seed(seed)
    v = torch.randint(0, 256, (b, t, 3, h, w), generator=g, dtype=torch.uint8)
    return v.to(device=device, dtype=dtype)


def changed_frames(out, video):
    """bool ``[B, T]``: which frames differ anywhere."""
    return (out != video).flatten(2).any(2)


def run(video, name, ratio=0.6, **kw):
    return corrupt(video, name, ratio, **extra_params(name, video), **kw)


def test_registry_holds_the_35_reference_names():
    assert sorted(NAMES) == sorted(K.registry.REFERENCE_ORDER)
    assert NAMES == list(K.registry.REFERENCE_ORDER)


@pytest.mark.parametrize("name", NAMES)
def test_spec_is_complete(name):
    spec = NOISES[name]
    assert spec.name == name and spec.family in K.FAMILIES
    assert spec.description and "\n" not in spec.description and len(spec.description) < 120
    assert spec.frame_mode in ("selected", "all", "custom")
    if spec.severities is not None:
        assert len(spec.severities) == 5
        for level in spec.severities:
            assert set(level) <= set(spec.defaults), f"severity sets unknown params {set(level) - set(spec.defaults)}"


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
@pytest.mark.parametrize("name", NAMES)
def test_shape_dtype_device_kept_and_input_untouched(name, dtype, device):
    video = make_video(dtype=dtype, device=device)
    before = video.clone()
    version = video._version
    out, params = run(video, name, 0.6, seed=3, return_params=True)
    assert out.shape == video.shape and out.dtype == dtype and out.device == video.device
    assert video._version == version and torch.equal(video, before), "input was modified"
    assert out.data_ptr() != video.data_ptr()
    if dtype.is_floating_point:
        assert torch.isfinite(out).all() and out.min() >= 0 and out.max() <= 255
    frames = params["frames"]
    assert frames.shape == (B, T) and frames.dtype == torch.bool
    assert params["seed"].shape == (B,) and params["seed"].dtype == torch.int64


@pytest.mark.parametrize("name", NAMES)
def test_only_chosen_frames_change_and_counts_match(name):
    video = make_video()
    out, params = run(video, name, 0.6, seed=11, return_params=True)
    changed = changed_frames(out, video)
    frames = params["frames"]
    assert not (changed & ~frames).any(), "a frame outside params['frames'] changed"
    spec = NOISES[name]
    n = int(T * 0.6)
    if spec.frame_mode == "selected":
        assert frames.sum(1).tolist() == [n] * B
        assert params["frame_idx"].shape == (B, n)
        if not spec.temporal:
            # Spatial noises change every chosen frame of random content.
            assert changed.sum(1).tolist() == [n] * B


@pytest.mark.parametrize("ratio,expected", [(0.3, 2), (0.6, 4), (0.9, 7), (1.0, 8)])
def test_reference_frame_counts(ratio, expected):
    video = make_video(b=3)
    out, params = corrupt(video, "gaussian", ratio, seed=5, return_params=True)
    assert params["frames"].sum(1).tolist() == [expected] * 3
    assert changed_frames(out, video).sum(1).tolist() == [expected] * 3


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_output_other_seed_differs(name):
    video = make_video()
    # 0.6, not 0.9: frame_repeat at 0.9 keeps no anchor but frame 0 and is deterministic, as in the reference.
    a = run(video, name, 0.6, seed=7)
    b = run(video, name, 0.6, seed=7)
    c = run(video, name, 0.6, seed=8)
    assert torch.equal(a, b)
    spec = NOISES[name]
    deterministic = spec.extras.get("deterministic", False)
    if not deterministic:
        assert not torch.equal(a, c), "a different seed gave the same output"


@pytest.mark.parametrize("name", NAMES)
def test_replay_params(name):
    video = make_video()
    out, params = run(video, name, 0.6, seed=2, return_params=True)
    again = apply_params(video, name, params, **extra_params(name, video))
    assert torch.equal(out, again)


@pytest.mark.parametrize("name", NAMES)
def test_batch_equals_single_calls(name):
    video = make_video(b=3)
    seeds = torch.tensor([5, 2**40 + 17, -9], dtype=torch.int64)
    batched = run(video, name, 0.6, seed=seeds)
    for i in range(3):
        single = run(video[i:i + 1], name, 0.6, seed=seeds[i:i + 1])
        assert torch.equal(batched[i], single[0]), f"clip {i} differs alone vs in the batch"
    # and in another order
    perm = torch.tensor([2, 0, 1])
    shuffled = run(video[perm], name, 0.6, seed=seeds[perm])
    assert torch.equal(shuffled, batched[perm])


@pytest.mark.parametrize("name", NAMES)
def test_four_and_five_dims_agree(name):
    video = make_video(b=1)
    five = run(video, name, 0.6, seed=4)
    four = run(video[0], name, 0.6, seed=4)
    assert four.shape == video[0].shape
    assert torch.equal(four, five[0])


@pytest.mark.parametrize("name", NAMES)
def test_float_input_matches_uint8_up_to_rounding(name):
    video = make_video()
    u8 = run(video, name, 0.6, seed=9)
    fl = run(video.float(), name, 0.6, seed=9)
    diff = (fl.round() - u8.float()).abs()
    assert (diff > 1).float().mean() < 0.01, f"float and uint8 paths disagree on {(diff > 1).float().mean():.3%} of values"


@pytest.mark.parametrize("name", NAMES)
def test_degenerate_sizes(name):
    spec = NOISES[name]
    video = make_video()
    out = run(video, name, 0.0, seed=1)
    if spec.frame_mode == "selected":
        assert torch.equal(out, video), "ratio 0 must leave the clip untouched"
    one = make_video(t=1)
    assert run(one, name, 0.9, seed=1).shape == one.shape
    empty = make_video(b=0)
    assert run(empty, name, 0.9, seed=torch.zeros(0, dtype=torch.int64)).shape == empty.shape
    for no_pixels in (make_video(h=0), make_video(w=0)):  # nothing to change, nothing to crash on
        assert run(no_pixels, name, 0.9, seed=1).shape == no_pixels.shape


@pytest.mark.parametrize("name", NAMES)
def test_autocast_and_autograd_change_nothing(name):
    """Inside a training step's bf16 autocast region, and on a float input that requires grad, a noise
    gives what it gives outside: a pure function of its seed; its output carries no gradient."""
    video = make_video()
    u8, fl = run(video, name, 0.6, seed=4), run(video.float(), name, 0.6, seed=4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(run(video, name, 0.6, seed=4), u8)
        assert torch.equal(run(video.float(), name, 0.6, seed=4), fl)
    grad_in = video.float().requires_grad_()
    out = run(grad_in, name, 0.6, seed=4)
    assert not out.requires_grad and torch.equal(out, fl)


@pytest.mark.parametrize("name", NAMES)
def test_inplace_refuses_a_video_whose_elements_share_memory(name):
    expanded = make_video(b=1).expand(2, -1, -1, -1, -1)  # one clip seen twice: stride 0
    with pytest.raises(ValueError, match="inplace=True needs a video whose elements do not share memory"):
        run(expanded, name, 0.6, seed=1, inplace=True)
    assert torch.equal(run(expanded, name, 0.6, seed=1), run(expanded.contiguous(), name, 0.6, seed=1))


@pytest.mark.parametrize("name", NAMES)
def test_inplace_writes_into_the_input(name):
    video = make_video()
    expected = run(video, name, 0.6, seed=6)
    target = video.clone()
    out = run(target, name, 0.6, seed=6, inplace=True)
    assert torch.equal(out, expected) and torch.equal(target, expected)


@pytest.mark.parametrize("name", [n for n in NAMES if NOISES[n].severities is not None])
def test_every_severity_runs_and_differs_from_clean(name):
    video = make_video(b=1)
    outs = [run(video, name, 0.9, seed=1, severity=s) for s in range(1, 6)]
    for s, out in enumerate(outs, 1):
        assert out.shape == video.shape
        assert not torch.equal(out, video), f"severity {s} changed nothing"


@pytest.mark.parametrize("name", NAMES)
def test_generator_seeds_reproduce(name):
    video = make_video()
    a = run(video, name, 0.6, generator=torch.Generator().manual_seed(1))
    b = run(video, name, 0.6, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b)


@pytest.fixture
def lowered_matmul_precision():
    """The user's ``set_float32_matmul_precision("medium")`` (bf16 GEMMs through oneDNN on CPUs
    that have them, TF32 on CUDA), put back after the test."""
    saved = (torch.backends.mkldnn.matmul.fp32_precision, torch.backends.cuda.matmul.fp32_precision)
    torch.set_float32_matmul_precision("medium")
    yield
    torch.backends.mkldnn.matmul.fp32_precision, torch.backends.cuda.matmul.fp32_precision = saved


@pytest.mark.parametrize("name", NAMES)
def test_lowered_matmul_precision_changes_nothing(name, lowered_matmul_precision):
    """A noise runs its matrix products in full float32 whatever the caller chose, and leaves the
    caller's choice as it was."""
    g = torch.Generator().manual_seed(3)
    video = (torch.rand(2, 4, 3, 96, 128, generator=g) * 255).round()
    kw = extra_params(name, video)
    with_low = corrupt(video, name, 0.75, seed=9, **kw)
    assert torch.backends.mkldnn.matmul.fp32_precision == "bf16"
    assert torch.backends.cuda.matmul.fp32_precision == "tf32"
    torch.set_float32_matmul_precision("highest")
    exact = corrupt(video, name, 0.75, seed=9, **kw)
    assert torch.equal(with_low, exact)


POINTWISE = [n for n in NAMES if NOISES[n].pointwise]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", POINTWISE)
def test_no_host_sync_on_cuda(name):
    """The hot path of a pointwise noise on CUDA (seeds, frame choice, draws, the fused kernel)
    never waits for the device: torch's sync debug mode turns any sync into an error."""
    video = make_video(device="cuda")
    run(video, name, 0.6, seed=1)  # warm-up: compilation may sync
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        run(video, name, 0.6, seed=2)
        run(video, name, 0.6, generator=torch.Generator().manual_seed(0))
    finally:
        torch.cuda.set_sync_debug_mode(0)
