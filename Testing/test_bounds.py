"""Output kept in the physical range with the acquired slices intact (A x = y), and the rule that sets the range."""

import numpy as np
import pytest
import torch

import DPNSLCore
from DPNSLCore.ops.bounds import IntensityBounds, keep_in_bounds
from DPNSLCore.ops.operators import make_degradation


@pytest.fixture(scope="module")
def lung():
    """A piece of the shipped real 5 mm chest CT (HU, int16): the shipped model undershoots -1024 HU below air."""
    volume = DPNSLCore.read_volume(DPNSLCore.sample_path("ct_lung1_5mm_crop.nii.gz"))
    return DPNSLCore.Volume(np.ascontiguousarray(volume.array[:12, :96, :96]), volume.geometry)


def test_decimate_output_stays_in_range_and_keeps_acquired_slices_bit_exact(lung):
    free = DPNSLCore.upsample(lung, 5, bounds=None, device="cpu", degradation="decimate")
    kept = DPNSLCore.upsample(lung, 5, device="cpu", return_parts=True, degradation="decimate")
    assert free.volume.min() < -1024  # the problem being fixed
    assert kept.volume.min() >= -1024 and kept.consistency_error == 0.0
    np.testing.assert_array_equal(kept.volume[::5], lung.array)
    np.testing.assert_array_equal(kept.anchor + kept.detail, kept.volume)
    inside = (free.volume >= -1024) & (free.volume <= kept.volume.max())
    np.testing.assert_array_equal(kept.volume[inside], free.volume[inside])  # only what left the box moved
    assert any("output kept in [-1024, " in note and "% of the voxels moved" in note for note in kept.notes)


@pytest.mark.parametrize(("kind", "thickness"), [("sample", 1.0), ("profile", 1.5)])
def test_sample_and_profile_end_in_the_box_and_stay_consistent(kind, thickness):
    rng = np.random.default_rng(0)
    y = torch.from_numpy(rng.uniform(0.0, 1.0, (9, 5, 5)))
    deg = make_degradation(kind, 3, 9, thickness=thickness)
    x = deg.pinv(y) + 0.5 * torch.from_numpy(rng.normal(size=(deg.n_hr, 5, 5)))
    x = x - deg.pinv(deg.forward(x) - y)  # a consistent start that leaves the box
    box = IntensityBounds(-0.5, 2.0, "test")  # room above the data: thin peaks under overlapping profiles
    before = float(torch.maximum(-0.5 - x, x - 2).clamp(min=0).max())
    out, report = keep_in_bounds(x.clone(), y, deg, box, iterations=300)
    after = float(torch.maximum(-0.5 - out, out - 2).clamp(min=0).max())
    assert before > 0.5 and after < 1e-3 * before and report.clipped > 0 and 0 < report.iterations <= 300
    assert float((deg.forward(out) - y).abs().max()) < 1e-9  # float64: consistent to round-off


def test_a_column_does_not_depend_on_its_neighbours():
    rng = np.random.default_rng(1)
    y = torch.from_numpy(rng.uniform(0.0, 1.0, (6, 4, 4)))
    deg = make_degradation("profile", 2.5, 6, thickness=1.2)
    x = deg.pinv(y) + torch.from_numpy(rng.normal(size=(deg.n_hr, 4, 4)))
    x = x - deg.pinv(deg.forward(x) - y)
    whole, _ = keep_in_bounds(x.clone(), y, deg, IntensityBounds(0.0, 1.0, "test"))
    part, _ = keep_in_bounds(x[:, :2, :3].clone(), y[:, :2, :3], deg, IntensityBounds(0.0, 1.0, "test"))
    torch.testing.assert_close(part, whole[:, :2, :3], rtol=0, atol=1e-12)


@pytest.mark.parametrize(("values", "modality", "low", "high"), [
    ((-1024, 1000), "ct", -1024, 3071),     # from air to the top of the CT window
    ((-1024, 3500), "ct", -1024, 3952.4),   # or 10 % of the range above a brighter maximum
    ((-3024, 1000), "ct", -3024, 3071),     # padding outside the field of view is never clipped
    ((-900, 100), "ct", -1000, 3071),       # within the margin, but not below air
    ((0, 500), "mr", 0, 750),               # MR: not negative, input max + 50 % of the range
    ((20, 500), "mr", 0, 740),
])
def test_the_default_box(values, modality, low, high):
    box = IntensityBounds.for_input(np.array(values, dtype=np.float32), modality)
    assert box.low == pytest.approx(low) and box.high == pytest.approx(high)


def test_given_bounds_must_contain_the_input(lung):
    with pytest.raises(ValueError, match=r"must contain the input's range"):
        DPNSLCore.upsample(lung, 5, bounds=(-500, 500), device="cpu")
    with pytest.raises(ValueError, match=r"`bounds` must be 'auto', a \(low, high\) pair or None"):
        DPNSLCore.upsample(lung, 5, bounds="physical", device="cpu")
    out = DPNSLCore.upsample(lung, 5, bounds=(-1100, 4000), device="cpu", degradation="decimate")  # exact clipping
    assert out.volume.min() >= -1100
