"""The public `upsample` API with the baselines: shapes, axes, geometry, consistency, input safety, errors."""

import math

import numpy as np
import pytest

from DPNSLCore import Geometry, Volume, upsample
from DPNSLCore.io.volumes import index_to_world


@pytest.fixture
def volume() -> Volume:
    rng = np.random.default_rng(0)
    array = (rng.normal(size=(6, 10, 8)) * 100).astype(np.float32)
    t = 0.3
    direction = (math.cos(t), -math.sin(t), 0.0, math.sin(t), math.cos(t), 0.0, 0.0, 0.0, 1.0)
    return Volume(array, Geometry(spacing=(0.7, 0.8, 5.0), origin=(10.0, -20.0, 30.0), direction=direction))


@pytest.mark.parametrize("method", ["linear", "cubic"])
@pytest.mark.parametrize("axis", [0, 1, 2])
def test_observed_slices_kept_along_any_axis(method, axis):
    array = np.random.default_rng(axis).random((7, 8, 9)).astype(np.float32)
    result = upsample(array, 3, method=method, slice_axis=axis)
    n = array.shape[axis]
    assert result.volume.shape[axis] == (n - 1) * 3 + 1
    kept = np.take(result.volume, np.arange(n) * 3, axis=axis)
    np.testing.assert_array_equal(kept, array)
    assert result.consistency_error == 0.0


def test_world_positions_of_observed_slices_are_unchanged(volume):
    result = upsample(volume, 2.5, method="linear", degradation="sample")
    geo = result.geometry
    assert geo.spacing == pytest.approx((0.7, 0.8, 2.0)) and geo.origin == volume.geometry.origin
    assert geo.direction == volume.geometry.direction
    lr_idx = np.array([[j, 3, 4] for j in range(6)], float)
    hr_idx = np.array([[j * 2.5, 3, 4] for j in range(6)], float)
    np.testing.assert_allclose(index_to_world(geo, hr_idx), index_to_world(volume.geometry, lr_idx), atol=1e-9)


def test_target_spacing_gives_the_scale(volume):
    result = upsample(volume, spacing=1.0, method="linear")
    assert result.scale == 5.0 and result.volume.shape == (26, 10, 8)
    assert result.geometry.spacing[2] == pytest.approx(1.0)


def test_slice_axis_is_detected_from_geometry():
    array = np.zeros((8, 5, 6), np.float32)
    vol = Volume(array, Geometry(spacing=(0.5, 4.0, 0.5), origin=(0, 0, 0), direction=(1, 0, 0, 0, 1, 0, 0, 0, 1)))
    result = upsample(vol, 2, method="linear", slice_axis=None)
    assert result.slice_axis == 1 and result.volume.shape == (8, 9, 6)


def test_input_is_never_modified(volume):
    before = volume.array.copy()
    upsample(volume, 2, method="cubic", return_parts=True)
    np.testing.assert_array_equal(volume.array, before)


def test_parts_of_a_baseline_are_anchor_only():
    array = np.random.default_rng(1).random((4, 5, 5)).astype(np.float32)
    result = upsample(array, 2, method="linear", return_parts=True)
    np.testing.assert_array_equal(result.anchor, result.volume)
    assert not result.detail.any()


def test_sample_degradation_reports_baseline_inconsistency():
    array = np.random.default_rng(2).random((5, 4, 4)).astype(np.float32)
    result = upsample(array, 2.5, method="cubic", degradation="sample")
    assert result.volume.shape[0] == 11 and result.consistency_error > 0


# ---- errors: one per rule ----


def test_nan_input_is_rejected():
    array = np.zeros((4, 4, 4), np.float32)
    array[1, 2, 3] = np.nan
    with pytest.raises(ValueError, match="1 NaN/inf voxels"):
        upsample(array, 2, method="linear")


@pytest.mark.parametrize("shape", [(4, 4), (2, 4, 4, 4)])
def test_non_3d_input_is_rejected(shape):
    with pytest.raises(ValueError, match="must be 3-D"):
        upsample(np.zeros(shape, np.float32), 2, method="linear")


@pytest.mark.parametrize("scale", [1.0, 0.5, -3])
def test_scale_must_exceed_one(scale):
    with pytest.raises(ValueError, match="must be > 1"):
        upsample(np.zeros((4, 4, 4), np.float32), scale, method="linear")


def test_scale_or_spacing_not_both(volume):
    with pytest.raises(ValueError, match="exactly one of `scale`"):
        upsample(volume, 2, spacing=1.0, method="linear")


def test_spacing_needs_geometry():
    with pytest.raises(ValueError, match="needs the input's geometry"):
        upsample(np.zeros((4, 4, 4), np.float32), spacing=1.0, method="linear")


def test_unknown_method_is_rejected():
    with pytest.raises(ValueError, match="`method` must be one of"):
        upsample(np.zeros((4, 4, 4), np.float32), 2, method="nearest")


def test_bad_slice_axis_is_rejected():
    with pytest.raises(ValueError, match="`slice_axis` must be a numpy axis 0 \\(z\\), 1 \\(y\\) or 2 \\(x\\)"):
        upsample(np.zeros((4, 4, 4), np.float32), 2, method="linear", slice_axis=3)


def test_single_slice_is_rejected():
    with pytest.raises(ValueError, match="has 1 slice; at least 2 are needed"):
        upsample(np.zeros((1, 4, 4), np.float32), 2, method="linear")


def test_non_numeric_input_is_rejected():
    with pytest.raises(TypeError, match="real numbers"):
        upsample(np.zeros((3, 4, 4), complex), 2, method="linear")


def test_a_preallocated_output_is_written_in_place_and_checked():
    from DPNSLCore import upsample

    y = np.random.default_rng(0).normal(0, 100, (12, 5, 6)).astype(np.float32)  # slice axis 2 chosen below
    reference = upsample(y, 2, method="cubic", slice_axis=1)
    out = np.full(reference.volume.shape, np.nan, np.float32)
    result = upsample(y, 2, method="cubic", slice_axis=1, out=out)
    assert result.volume is out
    np.testing.assert_array_equal(out, reference.volume)
    with pytest.raises(ValueError, match=r"`out` must be a numpy array of shape \(12, 9, 6\) and dtype float32"):
        upsample(y, 2, method="cubic", slice_axis=1, out=np.zeros((12, 9, 6), np.float64))


def test_a_run_whose_arrays_do_not_fit_in_memory_is_refused_before_any_work(monkeypatch):
    from DPNSLCore.inference import api

    array = np.zeros((6, 32, 32), np.int16)  # x4: 21 slices
    voxels = 21 * 32 * 32

    def gib(n: int) -> str:
        return f"{n / 2**30:.3g} GiB"

    monkeypatch.setattr(api, "available_memory_bytes", lambda: voxels * 2)  # room for an int16 output only
    assert upsample(array, 4, method="linear", output_dtype="input").volume.dtype == np.int16
    with pytest.raises(MemoryError, match=rf"needs about {gib(voxels * 10)} for its whole-volume arrays \(output "
                                          rf"{gib(voxels * 2)}, anchor and detail {gib(voxels * 8)}\) and this "
                                          rf"machine has {gib(voxels * 2)} left .*leave out the parts"):
        upsample(array, 4, method="linear", output_dtype="input", return_parts=True)
    with pytest.raises(MemoryError, match=rf"\(output {gib(voxels * 4)}\) .*an integer output type"):
        upsample(array, 4, method="linear", output_dtype="float32")
    monkeypatch.setattr(api, "available_memory_bytes", lambda: 0)
    upsample(array, 4, method="linear", out=np.empty((21, 32, 32), np.float32))  # preallocated: needs nothing more
    monkeypatch.setattr(api, "available_memory_bytes", lambda: None)  # not known (not Linux): no check
    upsample(array, 4, method="linear", return_parts=True)


def test_the_memory_estimate_counts_each_whole_volume_array():
    from DPNSLCore.inference.allocator import available_memory_bytes
    from DPNSLCore.inference.engine import output_bytes

    shape = (10, 20, 30)
    assert output_bytes(shape, np.dtype(np.int16), parts=False, n_experts=3) == {"output": 12000}
    assert output_bytes(shape, np.dtype(np.float32), parts=True, n_experts=3) == {
        "output": 24000, "anchor and detail": 48000, "routing maps": 72000}
    assert output_bytes(shape, np.dtype(np.float32), parts=True, n_experts=0, preallocated=True) == {
        "anchor and detail": 48000}
    available = available_memory_bytes()
    assert available is None or available > 0  # /proc/meminfo on Linux, None elsewhere


def test_the_modality_a_header_states_picks_the_model_and_the_note_says_so():
    ct_like = np.full((6, 12, 12), 40, np.int16)
    ct_like[:, :4] = -1000  # plenty of air: the intensities alone say CT
    stated = upsample(Volume(ct_like, Geometry(spacing=(1.0, 1.0, 3.0)), modality="mr"), 2, device="cpu",
                      calibrate=False)
    assert stated.modality == "mr"
    assert any("modality MR because the header says MR" in n for n in stated.notes)
    guessed = upsample(Volume(ct_like, Geometry(spacing=(1.0, 1.0, 3.0))), 2, device="cpu", calibrate=False)
    assert guessed.modality == "ct" and any("modality CT because the intensities look like HU" in n
                                            for n in guessed.notes)
