"""Self-supervised adaptation to the input volume: a copy learns from the volume's in-plane axes."""

import numpy as np
import pytest
import torch

from DPNSLCore import Cancelled, upsample
from DPNSLCore.inference.adapt import AdaptOptions, adapt_model
from DPNSLCore.inference.request import UpsampleRequest
from DPNSLCore.io.volumes import Geometry, Volume
from DPNSLCore.models import PRESETS, build_model


def _thick(seed=0, shape=(12, 40, 40)):
    rng = np.random.default_rng(seed)
    z, y, x = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
    hu = 400 * np.sign(np.sin(y / 1.7)) * np.sign(np.cos(x / 2.3)) + 100 * np.sin(z) + rng.normal(0, 2, shape)
    return Volume(hu.astype(np.float32), Geometry(spacing=(0.7, 0.7, 3.5)))


def _model():
    torch.manual_seed(0)
    return build_model(PRESETS["lean"].replace(modality="ct", anchor="cubic", projection="spline"))


def test_adaptation_works_on_a_copy_and_keeps_every_acquired_slice():
    model, vol = _model(), _thick()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    res = upsample(vol, 2, model=model, degradation="decimate", device="cpu",
                   adapt=AdaptOptions(60, max_steps=3, crop=16))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # the caller's model: untouched
    np.testing.assert_array_equal(res.volume[::2], vol.array)
    assert any(n.startswith("adapted to this volume: 3 steps") and "2 in-plane view(s)" in n for n in res.notes)
    plain = upsample(vol, 2, model=model, degradation="decimate", device="cpu")
    assert not np.array_equal(plain.volume, res.volume)  # the adapted copy upsampled


def test_a_step_budget_makes_adaptation_reproducible():
    vol, options = _thick(), AdaptOptions(60, max_steps=4, crop=16)
    a = upsample(vol, 2, model=_model(), degradation="decimate", device="cpu", adapt=options)
    b = upsample(vol, 2, model=_model(), degradation="decimate", device="cpu", adapt=options)
    np.testing.assert_array_equal(a.volume, b.volume)


def test_adaptation_learns_the_volume_under_the_plans_acquisition():
    vol = _thick()
    normalised = np.clip((vol.array + 1024) / 4095, 0, 1).astype(np.float32)
    plan = UpsampleRequest(scale=2, degradation="decimate").resolve(vol.array.shape, geometry=vol.geometry)
    start = _model().eval()
    before = {k: v.clone() for k, v in start.state_dict().items()}
    adapted, report = adapt_model(start, normalised, vol.geometry.spacing_zyx, plan,
                                  AdaptOptions(120, lr=3e-3, max_steps=60, crop=16), torch.device("cpu"))
    assert report.steps == 60 and report.views == 2 and not adapted.training and adapted is not start
    assert not start.training and all(torch.equal(before[k], v) for k, v in start.state_dict().items())
    assert report.loss_last < 0.85 * report.loss_first  # measured 0.71


def test_cancel_stops_adaptation_and_bad_budgets_are_refused():
    calls = []
    with pytest.raises(Cancelled):
        upsample(_thick(), 2, model=_model(), degradation="decimate", device="cpu", adapt=AdaptOptions(60, crop=16),
                 cancel=lambda: calls.append(1) or len(calls) > 2)
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="positive number of seconds"):
            AdaptOptions(bad)
    tiny = Volume(np.zeros((4, 6, 6), np.float32), Geometry(spacing=(0.7, 0.7, 3.5)))
    with pytest.raises(ValueError, match="cannot adapt to this volume"):
        upsample(tiny, 4, model=_model(), degradation="decimate", device="cpu", adapt=5)
