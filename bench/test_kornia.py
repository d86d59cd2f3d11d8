"""Ours vs the library a user would otherwise pick (kornia 0.9), side by side in one run.

Both corrupt every frame of the same 8-frame 720p clip (ours with ratio 1.0 in the
default mode, kornia with p=1). Ours takes the uint8 clip and returns uint8; kornia takes the float [0, 1]
clip prepared beforehand (its conversion is not timed, which favours kornia).
``relation`` says whether kornia's op is the same corruption or only a related one
(``shared/reference/corruption-anchors.md`` lists the differences). The report pairs
each row with ours to give the ratio ours/theirs.
"""
from __future__ import annotations

import pytest
import torch

import nrvl.kernels as K
from conftest import DEVICES, device_name, natural_clip, timed

kornia = pytest.importorskip("kornia")
A = kornia.augmentation

# noise -> (relation, factory of a callable on float [N, 3, H, W] in [0, 1], note)
PAIRS = {
    "gaussian": ("same", lambda: A.RandomGaussianNoise(std=100 / 255, p=1.0), "std 100/255, then no clamp in kornia"),
    "impulse": ("related", lambda: A.RandomSaltAndPepperNoise(amount=0.7, salt_vs_pepper=0.5, p=1.0),
                "kornia: per-pixel mask shared by channels, amount 0.7"),
    "gaussian_blur": ("same", lambda: (lambda x: kornia.filters.gaussian_blur2d(x, (101, 101), (20.0, 20.0),
                                                                              border_type="constant")),
                      "101x101, sigma 20, zero padding, separable"),
    "motion_blur": ("related", lambda: A.RandomMotionBlur(kernel_size=51, angle=(45.0, 45.0), direction=(0.0, 0.0),
                                                          p=1.0),
                    "kornia kernel 51 (a dense 101x101 filter takes minutes per clip on a CPU); ours 101"),
    "jpeg_artifact": ("related", lambda: A.RandomJPEG(jpeg_quality=(1.0, 1.0), p=1.0),
                      "kornia: differentiable JPEG approximation at quality 1; ours: a real codec"),
    "elastic": ("related", lambda: A.RandomElasticTransform(kernel_size=(63, 63), sigma=(32.0, 32.0),
                                                            alpha=(1.0, 1.0), p=1.0),
                "different field scale and sampling"),
    "color_quantized": ("same", lambda: A.RandomPosterize(bits=3.0, p=1.0),
                        "kornia posterize keeps the top 3 bits (levels 0, 32, .., 224): related levels"),
    "contrast": ("related", lambda: A.RandomContrast(contrast=(0.2, 5.0), p=1.0), "kornia: factor around 0, not the mean"),
    "bright_transform": ("related", lambda: A.RandomBrightness(brightness=(1.5, 1.5), p=1.0), "additive RGB, not HSV V"),
    "color_shift": ("related", lambda: A.RandomRGBShift(0.5, 0.5, 0.5, p=1.0), "additive per-channel shift, not a gain"),
    "rainy": ("related", lambda: A.RandomRain(number_of_drops=(46080, 46080), drop_height=(11, 43),
                                              drop_width=(1, 1), p=1.0), "kornia draws straight 1-px drops"),
    "snow": ("related", lambda: A.RandomSnow(snow_coefficient=(0.5, 0.5), brightness=(2, 2), p=1.0),
             "kornia whitens bright areas; no flakes"),
    "foggy": ("related", lambda: A.RandomPlasmaBrightness(roughness=(0.5, 0.5), intensity=(0.6, 0.6), p=1.0),
              "plasma brightness; kornia has no fog"),
    "shadow": ("related", lambda: A.RandomPlasmaShadow(roughness=(0.5, 0.5), shade_intensity=(-0.7, -0.7), p=1.0),
               "plasma shadow, not an ellipse"),
    "random_block": ("related", lambda: A.RandomErasing(scale=(0.09, 0.49), ratio=(0.43, 2.33), p=1.0),
                     "area-based erasing"),
}
_clip = {}
ROUNDS = {"cpu": 3, "cuda": 20}


def clip(device):
    if _clip.get("device") != device:
        _clip.update(device=device, u8=natural_clip(T=8, device=device))
        _clip["f"] = _clip["u8"].float() / 255
    return _clip["u8"], _clip["f"]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", [n for n in PAIRS if n in K.NOISES])
def test_ours(benchmark, name, device):
    u8, _ = clip(device)
    relation, _, note = PAIRS[name]
    benchmark.group = f"kornia-vs-ours:{name}:{device}"
    benchmark.extra_info.update(noise=name, device=device, device_name=device_name(device), mode="default", frames=8, side="ours",
                                relation=relation, note=note)
    # the default mode (fused kernels for pointwise noises at this size); the warm-up compiles
    timed(benchmark, device, lambda: K.corrupt(u8, name, 1.0, seed=0), ROUNDS[device])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", [n for n in PAIRS if n in K.NOISES])
def test_kornia(benchmark, name, device):
    _, f = clip(device)
    relation, factory, note = PAIRS[name]
    op = factory()  # kornia draws its parameters on the input's device
    benchmark.group = f"kornia-vs-ours:{name}:{device}"
    benchmark.extra_info.update(noise=name, device=device, device_name=device_name(device), mode="kornia", frames=8, side="kornia",
                                relation=relation, note=note)
    with torch.no_grad():
        timed(benchmark, device, lambda: op(f), ROUNDS[device])
