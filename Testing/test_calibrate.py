"""Calibration of the detail gain: one least-squares scale of the null-space detail, fitted on the volume's own
in-plane axes at the output spacing; A x = y holds for any gain."""

import numpy as np
import pytest
import torch

import DPNSLCore
from DPNSLCore import upsample
from DPNSLCore.inference.calibrate import CalibrateOptions, calibration_views, fit_detail_gain
from DPNSLCore.inference.request import UpsampleRequest
from DPNSLCore.io.intensity import IntensityNormalizer
from DPNSLCore.io.volumes import Geometry, Volume
from DPNSLCore.models import PRESETS, build_model
from DPNSLCore.ops.operators import make_degradation, simulate_acquisition

CPU = torch.device("cpu")


def _model(seed=0):
    torch.manual_seed(seed)
    return build_model(PRESETS["lean"].replace(modality="ct", anchor="cubic", projection="spline")).eval()


def _thick(shape=(12, 48, 48), spacing=(0.7, 0.7, 2.8), seed=0):
    rng = np.random.default_rng(seed)
    z, y, x = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
    hu = 300 * np.sin(y / 2.1) * np.cos(x / 1.9) + 60 * np.sin(1.3 * z) + rng.normal(0, 20, shape)
    return Volume(hu.astype(np.float32), Geometry(spacing=spacing))


def _normalised(vol):
    return IntensityNormalizer.for_ct().forward(vol.array.astype(np.float32))


def _plan(vol, scale, kind="decimate"):
    return UpsampleRequest(scale=scale, degradation=kind).resolve(vol.array.shape, geometry=vol.geometry)


def test_options_are_checked():
    for bad in ({"crop": 8}, {"max_slices": 4}, {"low": -0.1}, {"low": 1.0, "high": 1.0}, {"crop": True}):
        with pytest.raises(ValueError):
            CalibrateOptions(**bad)
    assert CalibrateOptions.from_value(True) == CalibrateOptions() and CalibrateOptions.from_value(False) is None
    assert DPNSLCore.CalibrateOptions is CalibrateOptions  # exported beside DestripeOptions
    with pytest.raises(TypeError, match="calibrate"):
        CalibrateOptions.from_value("yes")


def test_views_are_resampled_to_the_output_spacing_only_when_finer():
    array = np.zeros((10, 80, 60), np.float32)
    views, to = calibration_views(array, (4.0, 0.5, 0.5), 1.0, CalibrateOptions(crop=32, max_slices=16))
    assert to == 1.0 and [v.shape for v in views] == [(16, 10, 30), (16, 10, 32)]  # 0.5 mm -> 1 mm: half as many
    views, to = calibration_views(array, (4.0, 1.0, 1.0), 1.0, CalibrateOptions(crop=32, max_slices=16))
    assert to is None and [v.shape for v in views] == [(16, 10, 32), (16, 10, 32)]  # central crops only
    views, _ = calibration_views(array, (1.0, 5.0, 1.0), 1.0, CalibrateOptions(crop=32, max_slices=16))
    assert [v.shape for v in views] == [(16, 10, 32)]  # a thick scan on its side: only its fine in-plane axis


def test_a_volume_the_anchor_explains_gets_no_detail():
    """Content that varies along the slice axis only: each in-plane view is constant along its own slice axis, so
    the anchor restores it exactly and the least-squares gain of any detail is 0 (an untrained network adds some)."""
    z, y, x = np.meshgrid(np.arange(10), np.arange(48), np.arange(48), indexing="ij")
    vol = Volume((300 * np.sin(1.3 * z) + 0 * y + 0 * x).astype(np.float32), Geometry(spacing=(0.7, 0.7, 2.8)))
    report = fit_detail_gain(_model(), _normalised(vol), vol.geometry.spacing_zyx, _plan(vol, 4), CPU,
                             options=CalibrateOptions(crop=32, max_slices=32))
    assert abs(report.raw) < 1e-3 and report.gain == pytest.approx(max(report.raw, 0.0), abs=1e-12)
    assert report.views == 2 and report.psnr_gain_db > 1.0  # the untrained detail only hurts
    low = fit_detail_gain(_model(), _normalised(vol), vol.geometry.spacing_zyx, _plan(vol, 4), CPU,
                          options=CalibrateOptions(crop=32, max_slices=32, low=0.25))
    assert low.gain == 0.25 and "clipped" in low.text()


def test_a_gain_that_wins_the_views_by_less_than_the_threshold_is_not_applied():
    z, y, x = np.meshgrid(np.arange(10), np.arange(48), np.arange(48), indexing="ij")
    vol = Volume((300 * np.sin(1.3 * z) + 0 * y + 0 * x).astype(np.float32), Geometry(spacing=(0.7, 0.7, 2.8)))
    args = (_model(), _normalised(vol), vol.geometry.spacing_zyx, _plan(vol, 4), CPU)
    applied = fit_detail_gain(*args, options=CalibrateOptions(crop=32, max_slices=32))
    assert applied.applied and applied.gain == applied.fitted and applied.psnr_gain_db >= 1.0
    strict = fit_detail_gain(*args, options=CalibrateOptions(crop=32, max_slices=32,
                                                             min_gain_db=applied.psnr_gain_db + 0.01))
    assert not strict.applied and strict.gain == 1.0 and strict.fitted == pytest.approx(applied.fitted)
    assert strict.text().startswith("detail gain 1: the gain fitted on 2 in-plane view(s)")
    assert f"was {applied.fitted:.2f}, a win below {applied.psnr_gain_db + 0.01:g} dB" in strict.text()
    result = upsample(vol, 4, model=_model(), device="cpu", bounds=None,
                      calibrate=CalibrateOptions(crop=32, max_slices=32, min_gain_db=1e3))
    assert result.detail_gain == 1.0 and not result.calibration.applied and result.calibration.fitted < 0.5
    assert any(n.startswith("detail gain 1: the gain fitted") for n in result.notes)


@pytest.mark.parametrize("kind", ["decimate", "profile"])
def test_the_fitted_gain_is_the_best_one_on_the_calibration_views(kind):
    """Independent check through the public API: upsample each view's simulated acquisition and score a grid of
    gains; the fitted one must beat them all (it is the least-squares optimum)."""
    vol, scale, options = _thick(), 2, CalibrateOptions(crop=32, max_slices=40, high=50.0, min_gain_db=0.0)
    model, normalised = _model(), _normalised(vol)
    report = fit_detail_gain(model, normalised, vol.geometry.spacing_zyx, _plan(vol, scale, kind), CPU,
                             options=options)
    views, _ = calibration_views(normalised, vol.geometry.spacing_zyx, vol.geometry.spacing_zyx[0] / scale, options)
    pairs = []
    for view in views:
        lr, hr = simulate_acquisition(view, scale, degradation=kind)
        res = upsample(lr, scale, model=model, degradation=kind, slice_axis=0, device="cpu", return_parts=True,
                       intensity=IntensityNormalizer("mr", 1.0, 0.0), bounds=None, destripe=False)
        r = model.estimator.receptive_radius  # the fit leaves the in-plane rim out
        keep = (slice(2, -2), slice(r, -r), slice(r, -r))
        pairs.append((hr[keep] - res.anchor[keep], res.detail[keep]))

    def error(g):
        return sum(float(((t - g * d) ** 2).sum()) for t, d in pairs)

    assert report.applied and report.gain == pytest.approx(report.raw) and 0 < report.gain < 50
    for g in (0.0, 1.0, report.gain * 0.9, report.gain * 1.1, report.gain + 0.05, report.gain - 0.05):
        assert error(report.gain) <= error(g) * (1 + 1e-5)


@pytest.mark.parametrize("kind", ["decimate", "profile"])
def test_upsample_scales_the_detail_and_keeps_the_acquired_slices(kind):
    vol, model = _thick(), _model()
    plain = upsample(vol, 4, model=model, degradation=kind, device="cpu", return_parts=True, bounds=None,
                     calibrate=False)
    fitted = upsample(vol, 4, model=model, degradation=kind, device="cpu", return_parts=True, bounds=None,
                      calibrate=CalibrateOptions(crop=32, max_slices=40, min_gain_db=0.0))
    gain = fitted.detail_gain
    assert plain.detail_gain == 1.0 and 0.0 <= gain < 1.0  # the untrained detail is damped
    assert any(n.startswith(f"detail gain {gain:.2f}") and "2 in-plane view(s)" in n for n in fitted.notes)
    np.testing.assert_array_equal(fitted.anchor, plain.anchor)
    np.testing.assert_allclose(fitted.detail, gain * plain.detail, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(fitted.volume, fitted.anchor + fitted.detail, atol=1e-3)
    deg = make_degradation(kind, 4, vol.array.shape[0])
    if kind == "decimate":
        np.testing.assert_array_equal(fitted.volume[::4], vol.array)  # bit for bit
    assert float((deg.forward(torch.from_numpy(fitted.volume)) - torch.from_numpy(vol.array)).abs().max()) < 1e-3
    assert fitted.consistency_error < 1e-3


def test_a_volume_too_small_to_calibrate_on_is_upsampled_as_it_is_and_says_so():
    vol, model = _thick(shape=(4, 12, 10)), _model()
    res = upsample(vol, 4, model=model, degradation="decimate", device="cpu", calibrate=True)
    assert res.detail_gain == 1.0
    assert any(n.startswith("calibration: off, the in-plane views") and "too small for scale 4" in n for n in res.notes)
    np.testing.assert_array_equal(res.volume, upsample(vol, 4, model=model, degradation="decimate",
                                                       device="cpu").volume)


def test_calibration_is_the_default_said_first_and_independent_of_the_tiling():
    vol, model, seen = _thick(shape=(12, 40, 36)), _model(seed=3), []
    whole = upsample(vol, 2, model=model, degradation="decimate", device="cpu",
                     progress=lambda fraction, message: seen.append(message))
    assert seen[0] == "calibrating the detail on the volume's in-plane axes"
    assert any(n.startswith("detail gain") for n in whole.notes)
    assert whole.calibration is not None and whole.detail_gain == whole.calibration.gain
    tiled = upsample(vol, 2, model=model, degradation="decimate", device="cpu",
                     tiling={"tile_size": 8, "z_window": 3})
    assert tiled.detail_gain == whole.detail_gain
    np.testing.assert_allclose(tiled.volume, whole.volume, rtol=0, atol=1e-3)


def test_a_non_integer_scale_is_calibrated_under_sample_and_stays_consistent():
    vol, model = _thick(shape=(12, 48, 44)), _model(seed=1)
    res = upsample(vol, 2.5, model=model, degradation="sample", device="cpu", bounds=None)
    assert any(n.startswith("detail gain") for n in res.notes) and res.consistency_error < 1e-3


def test_calibration_leaves_the_baselines_alone():
    vol = _thick()
    a = upsample(vol, 2, method="cubic", calibrate=True)
    assert a.detail_gain == 1.0 and not any("detail gain" in n for n in a.notes)
    np.testing.assert_array_equal(a.volume, upsample(vol, 2, method="cubic").volume)
