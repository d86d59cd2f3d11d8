"""Occlusion family: random_block sizes and positions, target_block with an injected detector (issue 4)."""
from __future__ import annotations

import pytest
import torch

import nrvl.kernels as K
from nrvl.kernels import occlusion as O


def bright(b=1, t=8, h=40, w=60, dtype=torch.uint8):
    """Random content that is never 0, so blacked-out pixels are exactly the zeros."""
    g = torch.Generator().manual_seed(0)
    return torch.randint(1, 256, (b, t, 3, h, w), generator=g, dtype=torch.uint8).to(dtype)


# ============================================================================ random_block


def test_random_block_blacks_out_exactly_its_rectangle():
    H, W = 40, 60
    video = bright(b=2, h=H, w=W)
    out, params = K.corrupt(video, "random_block", 0.9, seed=3, return_params=True)
    for b in range(2):
        for n, t in enumerate(params["frame_idx"][b].tolist()):
            top, left, h, w = params["box"][b, n].tolist()
            assert int(0.3 * H) <= h <= int(0.7 * H) and int(0.3 * W) <= w <= int(0.7 * W)
            assert 0 <= top <= H - h and 0 <= left <= W - w
            expected = video[b, t].clone()
            expected[:, top:top + h, left:left + w] = 0
            assert torch.equal(out[b, t], expected)


def test_random_block_statistics():
    H, W = 100, 200
    video = bright(b=64, t=8, h=H, w=W)
    params = K.sample_params(video, "random_block", 1.0, seed=1)
    top, left, h, w = params["box"].reshape(-1, 4).double().unbind(-1)
    assert abs((h / H).mean() - 0.5) < 0.02 and abs((w / W).mean() - 0.5) < 0.02
    assert (h / H).min() < 0.32 and (h / H).max() > 0.68
    # Top-left uniform over the free room: on average half of it.
    assert abs((top / (H - h + 1)).mean() - 0.5) < 0.05 and abs((left / (W - w + 1)).mean() - 0.5) < 0.05
    assert (top == 0).any() and (top == H - h).any()


def test_random_block_tiny_frames_and_ratios():
    out = K.corrupt(bright(h=2, w=3), "random_block", 1.0, seed=0)
    assert (out == 0).flatten(2).any(2).all()  # at least one pixel per frame
    with pytest.raises(ValueError, match="min_ratio"):
        K.corrupt(bright(), "random_block", 0.5, seed=0, min_ratio=0.8, max_ratio=0.2)


@pytest.mark.parametrize("shape", [(2, 8, 3, 40, 60), (1, 3, 3, 1, 1), (1, 4, 3, 7, 1), (2, 2, 3, 33, 17)])
def test_random_block_uint8_path_equals_the_float_path(shape):
    g = torch.Generator().manual_seed(2)
    video = torch.randint(0, 256, shape, generator=g, dtype=torch.uint8)
    for sev in (None, 1, 3):
        ours = K.corrupt(video, "random_block", 0.6, seed=4, severity=sev)
        ref = K.corrupt(video.float(), "random_block", 0.6, seed=4, severity=sev)
        assert ours.dtype == torch.uint8 and torch.equal(ours, ref.to(torch.uint8))


# ============================================================================ target_block


class Detector:
    """Unsorted boxes with fractional coordinates; records what it was given."""

    def __init__(self, boxes, scores):
        self.boxes, self.scores, self.calls = torch.tensor(boxes), torch.tensor(scores), []

    def __call__(self, frames):
        self.calls.append(frames)
        return [{"boxes": self.boxes.clone(), "scores": self.scores.clone(), "labels": torch.zeros(len(self.scores))}
                for _ in frames]


def test_target_block_blacks_out_exactly_the_top_box():
    video = bright(b=2, t=6, h=40, w=60)
    det = Detector([[2.5, 3.0, 20.9, 10.2], [30.2, 5.7, 50.0, 30.99], [0.0, 0.0, 59.0, 39.0]], [0.5, 0.93, 0.3])
    out, params = K.corrupt(video, "target_block", 0.5, seed=4, detector=det, return_params=True)
    expected = video.clone()
    for b in range(2):
        for t in params["frame_idx"][b].tolist():
            expected[b, t, :, 5:30, 30:50] = 0  # floor of x1 y1 x2 y2 = 30 5 50 30, rows [5, 30), cols [30, 50)
    assert torch.equal(out, expected)
    # The detector saw only the chosen frames, as float [3, H, W] in 0..1, in one call.
    assert len(det.calls) == 1 and len(det.calls[0]) == 2 * 3
    f = det.calls[0][0]
    assert f.shape == (3, 40, 60) and f.dtype == torch.float32 and 0 < f.min() and f.max() <= 1
    b0, t0 = 0, params["frame_idx"][0, 0].item()
    assert torch.allclose(f, video[b0, t0].float() / 255)


def test_target_block_top_k_severity_and_confidence():
    video = bright(t=4)
    det = Detector([[0, 0, 10, 10], [20, 20, 30, 30], [40, 0, 50, 10]], [0.9, 0.8, 0.2])
    one = K.corrupt(video, "target_block", 1.0, seed=0, detector=det)
    two = K.corrupt(video, "target_block", 1.0, seed=0, detector=det, severity=2)
    three = K.corrupt(video, "target_block", 1.0, seed=0, detector=det, severity=3)
    z = lambda o, y, x: bool((o[0, :, :, y, x] == 0).all())  # noqa: E731
    assert z(one, 5, 5) and not z(one, 25, 25)
    assert z(two, 5, 5) and z(two, 25, 25)
    assert not z(three, 5, 45)  # score 0.2 < conf 0.25: never blacked out
    assert z(K.corrupt(video, "target_block", 1.0, seed=0, detector=det, severity=3, conf=0.1), 5, 45)


def test_target_block_no_detection_leaves_frames_and_boxes_are_clamped():
    video = bright(t=4)
    none = Detector(torch.zeros(0, 4).tolist(), [])
    none.boxes = torch.zeros(0, 4)
    assert torch.equal(K.corrupt(video, "target_block", 1.0, seed=0, detector=none), video)
    wide = Detector([[-10.0, -5.0, 500.0, 20.0]], [0.99])
    out = K.corrupt(video, "target_block", 1.0, seed=0, detector=wide)
    assert (out[..., :20, :] == 0).all() and torch.equal(out[..., 20:, :], video[..., 20:, :])


def test_target_block_float_input_and_mixed_counts():
    video = bright(t=3).float()

    def det(frames):  # a different number of boxes per frame
        return [{"boxes": torch.tensor([[1.0, 1.0, 5.0, 5.0]] * (i + 1)), "scores": torch.linspace(0.3, 0.9, i + 1)}
                for i in range(len(frames))]

    out = K.corrupt(video, "target_block", 1.0, seed=0, detector=det)
    assert out.dtype == torch.float32 and (out[..., 1:5, 1:5] == 0).all()


@pytest.mark.parametrize("bad,err,match", [
    (lambda fr: None, TypeError, "one dict per frame"),
    (lambda fr: [{"boxes": torch.zeros(1, 4)}] * len(fr), TypeError, "scores"),
    (lambda fr: [{"boxes": torch.zeros(2, 4), "scores": torch.ones(1)}] * len(fr), ValueError, "numbers"),
], ids=["none", "no-scores", "count-mismatch"])
def test_target_block_rejects_bad_detector_output(bad, err, match):
    with pytest.raises(err, match=match):
        K.corrupt(bright(t=2), "target_block", 1.0, seed=0, detector=bad)


def test_target_block_parameter_errors():
    with pytest.raises(TypeError, match="detector"):
        K.corrupt(bright(t=2), "target_block", 1.0, seed=0, detector="yolo")
    with pytest.raises(ValueError, match="boxes"):
        K.corrupt(bright(t=2), "target_block", 1.0, seed=0, detector=Detector([[0, 0, 1, 1]], [1.0]), boxes=0)


def test_default_detector_without_weights_explains_how_to_provide_them(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(O, "_DETECTORS", {})
    with pytest.raises(FileNotFoundError) as e:
        K.corrupt(bright(t=2), "target_block", 1.0, seed=0)
    msg = str(e.value)
    assert str(tmp_path) in msg and "TORCH_HOME" in msg and "detector=" in msg and "never downloads" in msg
    # ratio 0 needs no detector at all
    assert torch.equal(K.corrupt(bright(t=2), "target_block", 0.0, seed=0), bright(t=2))


def test_default_detector_loads_from_the_hub_cache(tmp_path, monkeypatch):
    """With a (random-weight) checkpoint under the expected name, the default path runs offline."""
    from torchvision.models.detection import fasterrcnn_mobilenet_v3_large_fpn
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(O, "_DETECTORS", {})
    _, path = O._weights_file()
    import os
    os.makedirs(os.path.dirname(path))
    torch.manual_seed(0)
    torch.save(fasterrcnn_mobilenet_v3_large_fpn(weights=None, weights_backbone=None).state_dict(), path)
    video = bright(t=2, h=48, w=64)
    out = K.corrupt(video, "target_block", 0.5, seed=0)
    assert out.shape == video.shape
    assert "cpu" in O._DETECTORS and not O._DETECTORS["cpu"].training


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_target_block_chunks_give_the_same_result(monkeypatch, dtype):
    """Whatever the chunking of the chosen frames (one detector call each), the output is the same."""
    from noise_inputs import fake_detector

    calls = []

    def detector(frames):
        calls.append(len(frames))
        return fake_detector(frames)

    video = bright(b=2, t=6, h=30, w=44, dtype=dtype)
    whole = K.corrupt(video, "target_block", 0.9, seed=2, detector=detector, boxes=2)
    assert calls == [10]
    monkeypatch.setattr(O, "_TARGET_WORK_BYTES", 1e12)  # forces one frame per chunk
    calls.clear()
    one_by_one = K.corrupt(video, "target_block", 0.9, seed=2, detector=detector, boxes=2)
    assert calls == [1] * 10 and torch.equal(whole, one_by_one)
