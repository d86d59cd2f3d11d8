"""Bad input raises ValueError/TypeError naming the argument (issue 2)."""
from __future__ import annotations

import math

import pytest
import torch

from nrvl.kernels import VideoCorruption, corrupt, set_compile

V = torch.zeros(8, 3, 16, 16, dtype=torch.uint8)


@pytest.mark.parametrize("video,exc,match", [
    (torch.zeros(3, 16, 16, dtype=torch.uint8), ValueError, r"video must have shape \[T, C, H, W\]"),
    (torch.zeros(1, 1, 8, 3, 16, 16, dtype=torch.uint8), ValueError, "video must have shape"),
    (torch.zeros(8, 1, 16, 16, dtype=torch.uint8), ValueError, "3 \\(RGB\\) channels"),
    (torch.zeros(8, 4, 16, 16, dtype=torch.uint8), ValueError, "got 4"),
    (torch.zeros(8, 3, 16, 16, dtype=torch.bool), TypeError, "uint8 or floating point.*torch.bool"),
    (torch.zeros(8, 3, 16, 16, dtype=torch.int64), TypeError, "torch.int64"),
    ([[0]], TypeError, "video must be a torch.Tensor"),
], ids=["rank3", "rank6", "1-channel", "4-channel", "bool", "int64", "list"])
def test_bad_video(video, exc, match):
    with pytest.raises(exc, match=match):
        corrupt(video, "gaussian", 0.5)


@pytest.mark.parametrize("ratio,exc", [(1.5, ValueError), (-0.1, ValueError), (math.nan, ValueError),
                                       (math.inf, ValueError), ("0.3", TypeError), (True, TypeError),
                                       (None, TypeError)],
                         ids=["1.5", "-0.1", "nan", "inf", "str", "bool", "none"])
def test_bad_ratio(ratio, exc):
    with pytest.raises(exc, match="ratio"):
        corrupt(V, "gaussian", ratio)


def test_unknown_name_lists_close_names():
    with pytest.raises(ValueError, match=r"unknown noise name 'gausian'.*Did you mean 'gaussian'.*Known noises: gaussian"):
        corrupt(V, "gausian", 0.5)
    with pytest.raises(TypeError, match="name must be a str"):
        corrupt(V, 3, 0.5)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_float_frames(bad):
    v = V.float().clone()
    v[3, 1, 2, 2] = bad
    with pytest.raises(ValueError, match="NaN or infinite"):
        corrupt(v, "gaussian", 0.5)


def test_unknown_parameter_and_bad_severity():
    with pytest.raises(TypeError, match="unexpected parameter 'sigma' for noise 'gaussian'; valid parameters: std"):
        corrupt(V, "gaussian", 0.5, sigma=3)
    for s in (0, 6, 2.5, True, "3"):
        with pytest.raises(ValueError, match="severity"):
            corrupt(V, "gaussian", 0.5, severity=s)


def test_bad_seed():
    with pytest.raises(ValueError, match=r"seed tensor must have shape \[1\]"):
        corrupt(V, "gaussian", 0.5, seed=torch.tensor([1, 2]))
    with pytest.raises(TypeError, match="seed"):
        corrupt(V, "gaussian", 0.5, seed=1.5)
    with pytest.raises(ValueError, match="either seed or generator"):
        corrupt(V, "gaussian", 0.5, seed=1, generator=torch.Generator())


def test_bad_module_and_compile_arguments():
    with pytest.raises(ValueError, match="unknown noise name 'nope'"):
        VideoCorruption(noises=["nope"])
    with pytest.raises(ValueError, match="ratios"):
        VideoCorruption(ratios=(0.3, 1.2))
    with pytest.raises(ValueError, match="p must be"):
        VideoCorruption(p=2)
    with pytest.raises(ValueError, match="compile mode"):
        set_compile("sometimes")


def test_integer_and_real_types_of_any_kind_are_accepted():
    import numpy as np

    v = torch.randint(0, 256, (2, 4, 3, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    assert torch.equal(corrupt(v, "gaussian", 0.5, seed=np.int64(7)), corrupt(v, "gaussian", 0.5, seed=7))
    assert torch.equal(corrupt(v, "gaussian", np.float32(0.5), seed=7), corrupt(v, "gaussian", 0.5, seed=7))
    # torch.seed() gives values up to 2**64 - 1: taken modulo 2**64 as a signed int64
    assert torch.equal(corrupt(v, "gaussian", 0.5, seed=2**64 - 1), corrupt(v, "gaussian", 0.5, seed=-1))
    assert torch.equal(corrupt(v, "gaussian", 0.5, seed=2**63), corrupt(v, "gaussian", 0.5, seed=-2**63))
    with pytest.raises(TypeError, match="generator must be a torch.Generator, got int"):
        corrupt(v, "gaussian", 0.5, generator=3)


def test_apply_params_refuses_params_of_another_batch():
    from nrvl.kernels import apply_params, sample_params

    v = torch.zeros(2, 4, 3, 16, 16, dtype=torch.uint8)
    for name in ("gaussian", "random_block", "frame_drop"):
        params = sample_params(v, name, 0.5, seed=0)
        with pytest.raises(ValueError, match=r"params were drawn for a batch of \[2, 4\] \[B, T\] clips, "
                                             r"the video has \[B, T\] = \[1, 4\]"):
            apply_params(v[:1], name, params)
    with pytest.raises(TypeError, match="params must be the dict"):
        apply_params(v, "gaussian", [1, 2])
    with pytest.raises(ValueError, match="params lack the tensor 'frame_idx'"):
        apply_params(v, "gaussian", {"seed": torch.zeros(2, dtype=torch.int64), "frames": torch.zeros(2, 4)})


def test_exact_matmul_switch_is_shared_by_overlapping_calls():
    """Two threads in ``corrupt`` at once: the first to leave must not put the caller's lowered
    precision back under the other (deterministic interleaving of the two context managers)."""
    from nrvl.kernels.core import exact_fp32_matmul

    saved = torch.backends.mkldnn.matmul.fp32_precision
    torch.backends.mkldnn.matmul.fp32_precision = "bf16"
    try:
        a, b = exact_fp32_matmul(), exact_fp32_matmul()
        a.__enter__()
        b.__enter__()
        a.__exit__(None, None, None)
        assert torch.backends.mkldnn.matmul.fp32_precision == "ieee"  # b is still inside
        b.__exit__(None, None, None)
        assert torch.backends.mkldnn.matmul.fp32_precision == "bf16"  # the last out puts it back
    finally:
        torch.backends.mkldnn.matmul.fp32_precision = saved


def test_a_misspelt_compile_mode_in_the_environment_warns():
    import os
    import subprocess
    import sys

    env = {**os.environ, "NRVL_COMPILE": "alwayz"}
    r = subprocess.run([sys.executable, "-c", "import nrvl.kernels as K; print(K.compile_mode())"],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "auto"
    assert "NRVL_COMPILE='alwayz' is not one of auto, always (1), never (0); using 'auto'" in r.stderr
