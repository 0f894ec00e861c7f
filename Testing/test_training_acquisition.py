"""Training acquisitions: scale lists and ranges, the decimate/profile mix, and what a model records."""

import numpy as np
import pytest

from DPNSLCore.data.acquisition import ScaleSpec, TrainingAcquisition
from DPNSLCore.data.stacks import TrainingVolume
from DPNSLCore.data.windows import SliceWindowDataset


def test_scale_text_is_a_list_or_a_range():
    assert ScaleSpec.parse("2,3,4").values == (2.0, 3.0, 4.0)
    spec = ScaleSpec.parse("1.5:7")
    assert (spec.low, spec.high, spec.largest, spec.integers()) == (1.5, 7.0, 7.0, (2, 3, 4, 5, 6, 7))
    assert spec.to_json() == "1.5:7"
    for bad in ("7:1.5", "1:3", "a:b"):
        with pytest.raises(ValueError, match="LOW"):
            ScaleSpec.parse(bad)


def test_the_mix_draws_integer_decimation_and_continuous_profiles_in_range():
    acq = TrainingAcquisition("mix", ScaleSpec.parse("1.5:7"), thickness=(0.75, 1.5), decimate_share=0.4)
    rng = np.random.default_rng(0)
    draws = [acq.draw(rng) for _ in range(2000)]
    decimate = [d for d in draws if d.kind == "decimate"]
    profile = [d for d in draws if d.kind == "profile"]
    assert len(decimate) / len(draws) == pytest.approx(0.4, abs=0.04)
    assert {d.scale for d in decimate} == {2.0, 3.0, 4.0, 5.0, 6.0, 7.0} and all(d.thickness == 0 for d in decimate)
    scales = np.array([d.scale for d in profile])
    thickness = np.array([d.thickness for d in profile])
    assert 1.5 <= scales.min() and scales.max() <= 7 and len(np.unique(scales)) == len(scales)  # continuous
    assert 0.75 <= thickness.min() and thickness.max() <= 1.5 and thickness.std() > 0.15
    assert acq.record() == {"kind": "mix", "profile": "box", "thickness": [0.75, 1.5], "decimate_share": 0.4}


def test_decimation_without_an_integer_scale_is_refused():
    with pytest.raises(ValueError, match="decimate needs integer scales"):
        TrainingAcquisition("mix", ScaleSpec.parse("2.2:2.8"))
    with pytest.raises(ValueError, match="every scale must be an integer for decimate"):
        TrainingAcquisition("decimate", ScaleSpec.parse("2,2.5"))
    with pytest.raises(ValueError, match="thickness"):
        TrainingAcquisition("profile", ScaleSpec.parse("2"), thickness=(1.5, 1.0))


def test_windows_follow_their_batch_draw():
    vol = TrainingVolume(np.random.default_rng(0).random((60, 20, 20), dtype=np.float32))
    ds = SliceWindowDataset([vol], "1.5:5", crop=12, degradation="mix", thickness=(0.75, 1.5), n_lr=4)
    plan = ds.batches(2, steps=40)
    kinds = set()
    for keys in plan:
        item = ds[keys[0]]
        deg = ds.degradation(keys[0].scale, keys[0].thickness)
        kinds.add(deg.kind)
        assert item["hr"].shape[1] == deg.n_hr and item["lr"].shape[1] == 4
        np.testing.assert_allclose(deg.forward(item["hr"]).numpy(), item["lr"].numpy(), atol=1e-6)
        assert item["thickness"] == keys[0].thickness and (deg.kind == "profile") == (keys[0].thickness > 0)
        if deg.kind == "profile":
            assert deg.thickness == pytest.approx(keys[0].thickness)
    assert kinds == {"decimate", "profile"}


def test_the_banding_loss_sees_periodic_bias_and_texture_and_nothing_else():
    import torch

    from DPNSLCore.training.losses import banding_loss, phase_groups

    assert [g.tolist() for g in phase_groups(9, 4)] == [[0, 4, 8], [1, 5], [2, 6], [3, 7]]
    assert len(phase_groups(12, 2.5)) == 3
    rng = torch.Generator().manual_seed(0)
    target = torch.rand(2, 1, 13, 10, 10, generator=rng)
    assert banding_loss(target, target, 4) == 0
    periodic = target.clone()
    periodic[:, :, ::4] += 0.05  # brighter acquired slices: a bias with the acquisition's period
    assert banding_loss(periodic, target, 4) > 0.01
    smooth = target.clone()
    smooth[:, :, 1::4] = 0.5 * (target[:, :, 0:-1:4] + target[:, :, 2::4])  # blurrier synthesised slices
    assert banding_loss(smooth, target, 4) > 0.01
    output = periodic.clone().requires_grad_()
    banding_loss(output, target, 4).backward()
    assert output.grad.abs().sum() > 0


def test_the_gain_loss_is_the_mean_per_sample_psnr_change_against_the_anchor():
    import math

    import torch

    from DPNSLCore.training.losses import gain_loss

    rng = torch.Generator().manual_seed(0)
    target = torch.rand(2, 1, 5, 6, 6, generator=rng, dtype=torch.float64)
    anchor = target + 0.1 * torch.randn(target.shape, generator=rng, dtype=torch.float64)
    assert gain_loss(anchor, anchor, target) == 0  # the anchor itself: no change
    half = target + (anchor - target) / 2  # errors halved: mse / 4 in both samples, -6.02 dB (up to eps)
    assert float(gain_loss(half, anchor, target, eps=1e-12)) == pytest.approx(-10 * math.log10(4), abs=1e-6)
    # each sample counts by its own ratio: an easy sample (anchor error 1e-3 of the other's) made 4x worse weighs as
    # much as a hard one made 4x better, whatever the absolute errors (MSE would see only the hard sample)
    easy_hard = torch.stack([target[0] + 1e-3 * (anchor[0] - target[0]), anchor[1]])
    output = torch.stack([target[0] + 2e-3 * (anchor[0] - target[0]), half[1]])
    assert float(gain_loss(output, easy_hard, target, eps=1e-20)) == pytest.approx(0.0, abs=1e-6)
    assert float(gain_loss(output, easy_hard, target)) < -1  # eps = 60 dB: errors below it count as exact
    out = half.clone().requires_grad_()
    anc = anchor.clone().requires_grad_()
    gain_loss(out, anc, target).backward()
    assert out.grad.abs().sum() > 0 and anc.grad is None  # the anchor is a constant of the loss
    with pytest.raises(ValueError, match="one shape"):
        gain_loss(half, anchor[:1], target)
    with pytest.raises(ValueError, match="eps"):
        gain_loss(half, anchor, target, eps=0)
