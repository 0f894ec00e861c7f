"""Tests for DPNSLCore.io.intensity: the paper's CT/MR normalisation with known values, inverse and errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from DPNSLCore.io.intensity import IntensityNormalizer, explain_modality, guess_modality


def test_ct_forward_known_values() -> None:
    norm = IntensityNormalizer.for_ct()
    hu = np.array([-3000.0, -1024.0, -1000.0, 0.0, 3071.0, 5000.0])
    expected = np.array([0.0, 0.0, 24 / 4095, 1024 / 4095, 1.0, 1.0])
    np.testing.assert_allclose(norm.forward(hu), expected, rtol=0, atol=1e-12)
    assert (norm.kind, norm.scale, norm.offset) == ("ct", 4095.0, -1024.0)


def test_ct_inverse_undoes_forward_inside_window() -> None:
    norm = IntensityNormalizer.for_ct()
    hu = np.linspace(-1024.0, 3071.0, 17)
    np.testing.assert_allclose(norm.inverse(norm.forward(hu)), hu, atol=1e-9)
    np.testing.assert_allclose(norm.inverse(np.array([0.0, 1.0])), [-1024.0, 3071.0])


def test_integer_input_gives_float32_and_input_is_not_modified() -> None:
    hu = np.array([-1024, 0, 3071], dtype=np.int16)
    out = IntensityNormalizer.for_ct().forward(hu)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(hu, [-1024, 0, 3071])
    assert IntensityNormalizer.for_ct().forward(hu.astype(np.float64)).dtype == np.float64


def test_torch_tensor_in_tensor_out_same_values() -> None:
    norm = IntensityNormalizer.for_mr(np.array([10.0, 30.0]))
    x = torch.tensor([10.0, 20.0, 30.0, 40.0])
    out = norm.forward(x)
    assert isinstance(out, torch.Tensor)
    torch.testing.assert_close(out, torch.tensor([0.0, 0.5, 1.0, 1.0]))
    torch.testing.assert_close(norm.inverse(out[:3]), x[:3])


def test_mr_uses_volume_range() -> None:
    vol = np.array([[[2.0, 4.0], [6.0, 3.0]]])
    norm = IntensityNormalizer.for_mr(vol)
    assert (norm.kind, norm.scale, norm.offset) == ("mr", 4.0, 2.0)
    np.testing.assert_allclose(norm.forward(vol), [[[0.0, 0.5], [1.0, 0.25]]])
    np.testing.assert_allclose(norm.inverse(norm.forward(vol)), vol)


def test_mr_constant_volume_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"`volume` is constant \(every voxel = 7.0\)"):
        IntensityNormalizer.for_mr(np.full((2, 3, 4), 7.0))


def test_mr_non_finite_volume_is_rejected() -> None:
    with pytest.raises(ValueError, match="`volume` must be finite"):
        IntensityNormalizer.for_mr(np.array([0.0, np.nan, 1.0]))


def test_dict_round_trip_is_json_ready() -> None:
    norm = IntensityNormalizer.for_mr(np.array([-5.0, 95.0]))
    data = json.loads(json.dumps(norm.to_dict()))
    assert data == {"kind": "mr", "scale": 100.0, "offset": -5.0}
    assert IntensityNormalizer.from_dict(data) == norm


def test_from_dict_rejects_missing_keys() -> None:
    with pytest.raises(ValueError, match="exactly the keys"):
        IntensityNormalizer.from_dict({"kind": "ct", "scale": 4095.0})


def test_unknown_kind_is_rejected() -> None:
    with pytest.raises(ValueError, match="`kind` must be one of"):
        IntensityNormalizer("pet", 1.0, 0.0)


def test_non_positive_scale_is_rejected() -> None:
    with pytest.raises(ValueError, match="`scale` must be finite and > 0"):
        IntensityNormalizer("mr", 0.0, 0.0)


def _ct_phantom(air_fraction: float) -> np.ndarray:
    """1000 voxels: ``air_fraction`` of air (-1000 HU), the rest soft tissue (40 HU)."""
    vol = np.full(1000, 40.0)
    vol[: int(round(air_fraction * 1000))] = -1000.0
    return vol.reshape(10, 10, 10)


def test_guess_modality_ct_when_air_present() -> None:
    assert guess_modality(_ct_phantom(0.30)) == "ct"
    assert guess_modality(torch.from_numpy(_ct_phantom(0.05))) == "ct"


def test_guess_modality_mr_for_non_negative_or_little_air() -> None:
    assert guess_modality(np.random.default_rng(0).uniform(0, 1200, (8, 8, 8))) == "mr"
    assert guess_modality(_ct_phantom(0.0)) == "mr"  # no air: the 1st percentile is 40 HU


def test_a_ct_crop_with_little_air_is_ct_because_its_minimum_reaches_air() -> None:
    # a mediastinal crop: 0.1 % air (trachea), the rest soft tissue; its 1st percentile is 40 HU
    crop = np.full((20, 20, 20), 40.0)
    crop[:2, :2, :2] = -1000.0  # 8 voxels: not yet enough
    assert guess_modality(crop) == "mr"
    crop[:2, :6, :6] = -1000.0  # 72 voxels, 0.9 %
    guess = explain_modality(crop)
    assert guess.modality == "ct" and "reach air in HU (72 voxels" in guess.reason
    spike = np.random.default_rng(0).uniform(0, 1000, (20, 20, 20))
    spike[3, 3, 3] = -30000  # one outlier voxel of an MR is not air
    assert guess_modality(spike) == "mr"
    zscored = np.random.default_rng(0).normal(0, 1, (10, 10, 10))  # an MR z-scored: negative, never near -900
    assert guess_modality(zscored) == "mr" and guess_modality(zscored - 5) == "mr"


def test_the_header_modality_wins_over_the_intensities() -> None:
    assert explain_modality(_ct_phantom(0.3), stated="MR") == explain_modality(_ct_phantom(0.0), stated="mr")
    assert explain_modality(_ct_phantom(0.0), stated="CT").reason == "the header says CT"
    assert explain_modality(_ct_phantom(0.3), stated="PT").modality == "ct"  # neither CT nor MR: the intensities


def test_guess_modality_rejects_empty() -> None:
    with pytest.raises(ValueError, match="must not be empty"):
        guess_modality(np.zeros((0, 4, 4)))


def test_for_volume_auto_and_bad_modality() -> None:
    assert IntensityNormalizer.for_volume(_ct_phantom(0.3)) == IntensityNormalizer.for_ct()
    assert IntensityNormalizer.for_volume(np.array([1.0, 3.0])).kind == "mr"
    with pytest.raises(ValueError, match="`modality` must be 'auto', 'ct' or 'mr'"):
        IntensityNormalizer.for_volume(np.array([1.0, 3.0]), modality="xray")


def test_mr_input_rule_spans_the_0_1th_to_the_99_9th_percentile_not_a_few_extreme_voxels() -> None:
    values = np.linspace(10.0, 1010.0, 100_000).astype(np.float32)
    values[-20:] = 50_000.0  # 0.02 % of the voxels: vessels, fat or a spike
    values[:20] = -9_000.0  # and a few negative ones (a reconstruction artefact)
    rule = IntensityNormalizer.for_mr_input(values)
    low, high = np.percentile(values, [0.1, 99.9])
    assert rule.offset == pytest.approx(low) and rule.offset + rule.scale == pytest.approx(high)
    assert float(rule.forward(np.float32(50_000.0))) == 1.0 and float(rule.forward(np.float32(-9_000.0))) == 0.0
    assert IntensityNormalizer.for_mr(values).scale == 59_000.0  # the protocol's rule is unchanged
    background = np.zeros(10_000, np.float32)
    background[-200:] = np.linspace(1.0, 7.0, 200)  # mostly background: the lower end is its minimum, 0
    assert IntensityNormalizer.for_mr_input(background).offset == 0.0
    sparse = np.zeros(10_000, np.float32)
    sparse[:5] = 7.0  # both percentiles are 0: min/max instead
    assert (IntensityNormalizer.for_mr_input(sparse).offset, IntensityNormalizer.for_mr_input(sparse).scale) == (0, 7)
    with pytest.raises(ValueError, match=r"`percentile` must lie in \[50, 100\]"):
        IntensityNormalizer.for_mr_input(values, percentile=10)
