"""Banding measures: ~1 on real thin volumes, far from 1 on striped or interpolated ones, and clean errors."""

import numpy as np
import pytest

import DPNSLCore
from DPNSLCore.evaluation.banding import (
    acquired_slice_indices,
    acquired_texture_ratio,
    acquisition_periodicity,
    banding,
)


@pytest.fixture(scope="module")
def thin():
    """The shipped real thin CT crop (64 x 96 x 96, 1 mm slices), in HU."""
    return DPNSLCore.read_volume(DPNSLCore.sample_path("ct_chest_1mm_crop.nii.gz")).array.astype(np.float64)


@pytest.mark.parametrize("sample", ["ct_chest_1mm_crop.nii.gz", "mr_t1_1mm_crop.nii.gz"])
@pytest.mark.parametrize("scale", [4, 5])
def test_a_real_thin_volume_shows_no_banding(sample, scale):
    # 64 slices give a coarse spectrum (few independent frequencies near 1/s), hence the wide periodicity band;
    # on the full shared thin volumes it is 0.84-1.30
    volume = DPNSLCore.read_volume(DPNSLCore.sample_path(sample)).array
    periodicity, texture = banding(volume, scale)
    assert 0.5 < periodicity < 2.0 and 0.95 < texture < 1.05


def test_stripes_at_the_acquired_slices_are_detected(thin):
    striped = thin.copy()
    striped[::4] += 100.0  # acquired slices brighter: horizontal lines in a coronal view
    assert acquisition_periodicity(striped, 4) > 5.0 > 3 * acquisition_periodicity(thin, 4)


def test_smoother_synthesised_slices_are_detected(thin):
    # keep the acquired slices, replace the others by a smooth interpolation: a regression to the mean
    lr, _ = DPNSLCore.simulate_acquisition(thin, 4)
    linear = DPNSLCore.upsample(lr, 4, method="linear").volume
    assert acquired_texture_ratio(linear, 4) > 1.1
    assert acquisition_periodicity(linear, 4) < 0.5  # linear interpolation has a zero at 1/s: too smooth


def test_the_slice_axis_is_respected(thin):
    striped = thin.copy()
    striped[::4] += 100.0
    moved = np.moveaxis(striped, 0, 2)
    assert acquisition_periodicity(moved, 4, axis=2) == pytest.approx(acquisition_periodicity(striped, 4))


def test_acquired_indices_for_integer_and_non_integer_scales():
    np.testing.assert_array_equal(acquired_slice_indices(13, 4), [0, 4, 8, 12])
    np.testing.assert_array_equal(acquired_slice_indices(11, 2.5), [0, 2, 5, 8, 10])  # rint(0, 2.5, 5, 7.5, 10)


def test_a_volume_without_texture_has_no_banding():
    flat = np.ones((40, 8, 8))
    assert acquisition_periodicity(flat, 4) == 1.0


def test_too_short_stacks_and_scales_are_rejected(thin):
    with pytest.raises(ValueError, match="at least 8 slices"):
        banding(thin[:5], 2)
    with pytest.raises(ValueError, match=r"`scale` must lie in \[2, 21.3\] for 64 slices"):
        acquisition_periodicity(thin, 30)
