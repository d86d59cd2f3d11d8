"""The weather family's fast paths give the same bits as the straightforward ops they replace."""
from __future__ import annotations

import pytest
import torch

import nrvl.kernels as K
from nrvl.kernels import _procedural as proc
from nrvl.kernels import random as rng
from nrvl.kernels import weather as Wm


def natural(t=4, h=45, w=67, seed=0):
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(t, 3, h // 8 + 2, w // 8 + 2, generator=g)
    x = torch.nn.functional.interpolate(low, size=(h, w), mode="bicubic", align_corners=False)
    return (x * 200 + 25 + torch.randn(t, 3, h, w, generator=g) * 8).clamp(0, 255).to(torch.uint8)


def _plasma_reference(seeds, stream, mapsize, wibbledecay):
    """The plasma as first written: out-of-place ops and random.uniform."""
    B = seeds.shape[0]
    m = torch.zeros(B, mapsize, mapsize)
    step, wibble, level = mapsize, 100.0, 0
    counters = torch.arange(3 * mapsize.bit_length(), dtype=torch.int32)

    def wibbled_mean(acc, phase):
        key = rng.keys(seeds, stream, counters[3 * level + phase])[:, None, None, :]
        i = torch.arange(acc[0].numel(), dtype=torch.int32).reshape(acc.shape[1:])
        return acc / 4 + wibble * (wibble * (2.0 * rng.uniform(key, i) - 1.0))

    while step >= 2:
        h = step // 2
        corner = m[:, 0::step, 0::step]
        sq = corner + corner.roll(-1, 1)
        sq = sq + sq.roll(-1, 2)
        m[:, h::step, h::step] = wibbled_mean(sq, 0)
        dr, ul = m[:, h::step, h::step], m[:, 0::step, 0::step]
        m[:, 0::step, h::step] = wibbled_mean((dr + dr.roll(1, 1)) + (ul + ul.roll(-1, 2)), 1)
        m[:, h::step, 0::step] = wibbled_mean((dr + dr.roll(1, 2)) + (ul + ul.roll(-1, 1)), 2)
        step //= 2
        wibble /= wibbledecay
        level += 1
    m = m - m.amin(dim=(1, 2), keepdim=True)
    return m / m.amax(dim=(1, 2), keepdim=True)


@pytest.mark.parametrize("size,decay", [(2, 1.4), (64, 1.4), (256, 2.0)])
def test_plasma_is_the_out_of_place_reference_bit_for_bit(size, decay):
    seeds = torch.tensor([5, 123456789012])
    assert torch.equal(proc.plasma_fractal(seeds, "foggy/plasma", size, decay),
                       _plasma_reference(seeds, "foggy/plasma", size, decay))


def _frost_crops_gather(pick, crop, H, W, **bank_args):
    """Per-pixel advanced-index gather of the crops (the first implementation)."""
    bank, sizes = Wm.frost_bank(H, W, "cpu", **bank_args)
    Kb = bank.shape[0]
    k = (pick * Kb).floor().to(torch.int64).clamp_(0, Kb - 1)
    room = torch.stack([sizes[k, 0] - H, sizes[k, 1] - W], -1).clamp_min(0)
    off = torch.minimum((crop * room.clamp_min(1)).floor().to(torch.int64), room)
    ys = torch.arange(H)[None, None, :, None] + off[:, 0, None, None, None]
    xs = torch.arange(W)[None, None, None, :] + off[:, 1, None, None, None]
    return bank[k[:, None, None, None], torch.arange(3)[None, :, None, None], ys, xs]


def test_frost_crops_are_the_per_pixel_gather(tmp_path):
    g = torch.Generator().manual_seed(0)
    pick, crop = torch.rand(9, generator=g), torch.rand(9, 2, generator=g)
    crop[0] = 0.0
    crop[1] = 0.999999
    for H, W in ((36, 48), (37, 53)):
        assert torch.equal(Wm._frost_crops(pick, crop, H, W, torch.device("cpu")),
                           _frost_crops_gather(pick, crop, H, W))
    # User textures of different sizes, padded in the bank.
    from torchvision.io import write_png
    write_png(torch.randint(0, 256, (3, 20, 30), dtype=torch.uint8, generator=g), str(tmp_path / "a.png"))
    write_png(torch.randint(0, 256, (3, 70, 41), dtype=torch.uint8, generator=g), str(tmp_path / "b.png"))
    assert torch.equal(Wm._frost_crops(pick, crop, 36, 48, torch.device("cpu"), texture_dir=str(tmp_path)),
                       _frost_crops_gather(pick, crop, 36, 48, texture_dir=str(tmp_path)))


@pytest.mark.parametrize("name,severity", [("shadow", None), ("shadow", 3), ("frost", None), ("frost", 1)])
def test_uint8_fast_path_is_the_float_path_rounded(name, severity):
    video = natural()
    params = K.sample_params(video, name, 1.0, seed=9, severity=severity)
    fast = K.apply_params(video, name, params, severity=severity)
    slow = K.apply_params(video.float(), name, params, severity=severity).round().to(torch.uint8)
    assert torch.equal(fast, slow)
