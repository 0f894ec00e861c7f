"""In-plane self-ensemble: the average is over the right symmetries, A x = y still holds, the output is exactly
symmetric, and bad sizes are refused."""

import numpy as np
import pytest
import torch

from DPNSLCore.evaluation.evaluate import ProtocolOptions
from DPNSLCore.inference.api import upsample
from DPNSLCore.inference.ensemble import ENSEMBLE_SIZES, check_ensemble, ensemble_average
from DPNSLCore.io.intensity import IntensityNormalizer
from DPNSLCore.models import PRESETS, build_model

IDENTITY = IntensityNormalizer("mr", 1.0, 0.0)

#: the 8 in-plane symmetries of a (Z, Y, X) array, as numpy views
SYMMETRIES = [
    lambda a: a, lambda a: a[:, ::-1], lambda a: a[:, :, ::-1], lambda a: a[:, ::-1, ::-1],
    lambda a: a.transpose(0, 2, 1), lambda a: a.transpose(0, 2, 1)[:, ::-1],
    lambda a: a.transpose(0, 2, 1)[:, :, ::-1], lambda a: a.transpose(0, 2, 1)[:, ::-1, ::-1],
]


def random_model(seed=0):
    torch.manual_seed(seed)
    model = build_model(PRESETS["lean"].replace(modality="mr", anchor="cubic", projection="spline"))
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.2)
    return model.eval()


@pytest.mark.parametrize("bad", [0, 3, 16, True, 2.0, "8", None])
def test_bad_sizes_are_refused_with_the_allowed_ones(bad):
    with pytest.raises(ValueError, match=r"`ensemble` must be one of \(1, 2, 4, 8\)"):
        check_ensemble(bad)
    with pytest.raises(ValueError, match="`ensemble` must be one of"):
        upsample(np.zeros((4, 6, 6), np.float32), 2, method="linear", ensemble=bad)


def test_the_average_is_over_the_flips_then_the_transposes():
    """Known averages over 1, 2, 4 and 8 symmetries of a square: a ramp along x is flipped away, a bowl along x
    (flip-symmetric) is only shared with y by the transposes."""
    y = torch.rand(3, 5, 5)
    ramp, bowl = torch.arange(5.0), (torch.arange(5.0) - 2) ** 2

    def fn(t):
        return t + ramp, t + bowl, t * 2  # two non-symmetric parts and a symmetric (linear) one

    for size in (1, 2, 4, 8):
        first, second, third = ensemble_average(fn, y, size)
        torch.testing.assert_close(first, y + (ramp if size == 1 else 2.0))
        torch.testing.assert_close(second, y + (bowl if size < 8 else 0.5 * (bowl + bowl[:, None])))
        torch.testing.assert_close(third, y * 2)  # equivariant parts are unchanged


def test_the_average_keeps_non_square_shapes_and_leading_dims():
    y = torch.rand(1, 1, 4, 6, 9)
    out, = ensemble_average(lambda t: (t[:, :, :2] ** 2,), y, 8)  # fewer slices out than in: fine
    assert out.shape == (1, 1, 2, 6, 9)
    torch.testing.assert_close(out, y[:, :, :2] ** 2)


@pytest.mark.parametrize("size", [1, 4])
def test_a_part_not_asked_for_stays_none(size):
    y = torch.rand(1, 1, 3, 5, 5)
    out, missing = ensemble_average(lambda t: (t * 2, None), y, size)
    assert missing is None
    torch.testing.assert_close(out, y * 2)


def test_the_average_never_writes_into_what_fn_returned():
    kept = torch.arange(24, dtype=torch.float32).reshape(1, 2, 3, 4)
    before = kept.clone()
    (mean,) = ensemble_average(lambda t: (kept,), torch.zeros(1, 2, 3, 4), 2)
    assert torch.equal(kept, before)
    assert torch.equal(mean, (before + before.flip(-1)) / 2)


@pytest.mark.parametrize("kind,scale", [("decimate", 3), ("profile", 4), ("sample", 2.5)])
def test_upsample_with_ensemble_is_consistent_and_exactly_symmetric(kind, scale):
    y = torch.rand(8, 14, 14, generator=torch.Generator().manual_seed(5)).numpy()
    run = {"model": random_model(), "degradation": kind, "device": "cpu", "intensity": IDENTITY, "bounds": None,
           "calibrate": False, "return_parts": True}
    one = upsample(y, scale, **run)
    eight = upsample(y, scale, ensemble=8, **run)
    assert eight.consistency_error <= 1e-5
    if kind == "decimate":
        np.testing.assert_array_equal(eight.volume[::3], y)  # the acquired slices, bit for bit
    assert float(np.abs(eight.volume - one.volume).max()) > 1e-3
    np.testing.assert_allclose(eight.volume, eight.anchor + eight.detail, atol=1e-6)
    np.testing.assert_allclose(eight.routing.sum(axis=0), 1.0, atol=1e-5)
    assert any(n.startswith("ensemble: the network's estimate averaged over 8 in-plane flips") for n in eight.notes)
    assert not any(n.startswith("ensemble") for n in one.notes)
    for g in SYMMETRIES[1:]:  # upsampling a flipped/transposed input gives the flipped/transposed output
        turned = upsample(np.ascontiguousarray(g(y)), scale, ensemble=8, **run).volume
        np.testing.assert_allclose(turned, g(eight.volume), atol=2e-5)
    single_turned = upsample(np.ascontiguousarray(SYMMETRIES[5](y)), scale, **run).volume
    assert float(np.abs(single_turned - SYMMETRIES[5](one.volume)).max()) > 1e-3  # one pass is not symmetric


def test_ensemble_does_not_depend_on_the_tiles():
    y = torch.rand(8, 20, 17, generator=torch.Generator().manual_seed(6)).numpy()
    run = {"model": random_model(), "degradation": "decimate", "device": "cpu", "intensity": IDENTITY,
           "ensemble": 4, "calibrate": False}
    whole = upsample(y, 2, **run).volume
    tiled = upsample(y, 2, tiling={"tile_size": 7, "z_window": 3}, **run).volume
    np.testing.assert_allclose(tiled, whole, atol=2e-6)


def test_baselines_ignore_the_ensemble_and_the_protocol_says_it():
    y = np.random.default_rng(0).random((6, 8, 8)).astype(np.float32)
    np.testing.assert_array_equal(upsample(y, 2, method="cubic", ensemble=8).volume,
                                  upsample(y, 2, method="cubic").volume)
    assert "self-ensemble of 8" in ProtocolOptions(ensemble=8).acquisition_text()
    assert "ensemble" not in ProtocolOptions().acquisition_text()
    assert ENSEMBLE_SIZES == (1, 2, 4, 8)


def test_the_detail_gain_is_fitted_to_the_ensembled_detail():
    """Calibration must fit the detail the run adds: with ensemble N it runs the same N passes."""
    from DPNSLCore.inference.calibrate import CalibrateOptions, fit_detail_gain
    from DPNSLCore.inference.request import UpsampleRequest
    from DPNSLCore.io.volumes import Geometry, Volume

    rng = np.random.default_rng(1)
    vol = Volume(rng.random((12, 40, 40)).astype(np.float32), Geometry(spacing=(0.7, 0.7, 2.8)))
    model, options = random_model(seed=2), CalibrateOptions(crop=32, max_slices=40, min_gain_db=0.0)
    plan = UpsampleRequest(scale=4, degradation="decimate").resolve(vol.array.shape, geometry=vol.geometry)
    fits = {n: fit_detail_gain(model, vol.array, (2.8, 0.7, 0.7), plan, torch.device("cpu"), options=options,
                               ensemble=n).raw for n in (1, 8)}
    assert abs(fits[8] - fits[1]) > 1e-3
    run = upsample(vol, 4, model=model, degradation="decimate", device="cpu", intensity=IDENTITY,
                   calibrate=CalibrateOptions(crop=32, max_slices=40, high=100.0, min_gain_db=0.0), destripe=False,
                   ensemble=8, precision="float32")  # the fits above are float32 (auto may take bfloat16)
    assert run.detail_gain == pytest.approx(min(max(fits[8], 0.0), 100.0), rel=1e-6)
