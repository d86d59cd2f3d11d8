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
