"""Destripe: the detail's phase-locked part is removed, A x = y still holds, and nothing else moves much."""

import numpy as np
import pytest
import torch

from DPNSLCore.inference.api import upsample
from DPNSLCore.io.intensity import IntensityNormalizer
from DPNSLCore.models import PRESETS, build_model
from DPNSLCore.ops.destripe import DestripeOptions, phase_locked_part, phase_period, remove_phase_locked
from DPNSLCore.ops.operators import make_degradation, null_space_detail

IDENTITY = IntensityNormalizer("mr", 1.0, 0.0)


def random_model(projection="spline", seed=0):
    torch.manual_seed(seed)
    model = build_model(PRESETS["lean"].replace(modality="mr", anchor="cubic", projection=projection))
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.2)
    return model.eval()


@pytest.mark.parametrize("scale,period", [(2, 2), (4, 4), (2.5, 5), (1.5, 3), (4 / 3, 4), (2.7183, None)])
def test_phase_period(scale, period):
    assert phase_period(scale) == period


def test_options_are_validated():
    assert DestripeOptions.from_value(True) == DestripeOptions() and DestripeOptions.from_value(False) is None
    assert DestripeOptions(sigma=1.0).radius == 3
    with pytest.raises(ValueError, match="`sigma` must be a number > 0"):
        DestripeOptions(sigma=0)
    with pytest.raises(ValueError, match="`periods` must be an integer >= 1, got 0"):
        DestripeOptions(periods=0)
    with pytest.raises(TypeError, match="`destripe` must be True, False or a DestripeOptions"):
        DestripeOptions.from_value("yes")


@pytest.mark.parametrize("kind,scale", [("decimate", 4), ("profile", 4), ("sample", 2.5)])
def test_a_pure_phase_pattern_is_removed_and_the_rest_is_kept(kind, scale):
    deg = make_degradation(kind, scale, 24)
    period = phase_period(scale)
    pattern = torch.tensor([0.0, 1.0, -2.0, 0.5, 3.0])[torch.arange(deg.n_hr) % period]
    stripes = null_space_detail(pattern[:, None, None].expand(-1, 10, 10).contiguous(), deg, "spline")
    assert float(stripes.abs().max()) > 0.1
    options = DestripeOptions()
    left = remove_phase_locked(stripes, deg, options, projection="spline", anchor="cubic")
    # locked to the phase everywhere: all of it goes (away from the ends, where the anchor's boundary rule bends
    # the pattern: the consistent spline of a box profile reaches a few periods)
    middle = slice(deg.n_hr // 3, 2 * deg.n_hr // 3)
    assert float(left[middle].abs().max()) < 1e-3 * float(stripes.abs().max())
    # a detail that changes sign from column to column has no local phase mean: it stays (the edges, replicated
    # over the Gaussian's reach, are left out)
    checker = (-1.0) ** (torch.arange(24)[:, None] + torch.arange(24)[None, :])
    texture = null_space_detail(torch.randn(deg.n_hr, 1, 1) * checker, deg, "spline")
    kept = remove_phase_locked(texture, deg, options, projection="spline", anchor="cubic")
    inner = (slice(None), slice(options.radius, -options.radius), slice(options.radius, -options.radius))
    assert float((kept - texture)[inner].abs().max()) < 0.02 * float(texture.abs().max())
    assert float(phase_locked_part(texture, period, options)[inner].abs().max()) < 0.02


@pytest.mark.parametrize("kind,scale", [("decimate", 3), ("profile", 4), ("sample", 2.5)])
def test_upsample_destriped_output_is_consistent_and_differs(kind, scale):
    y = torch.rand(12, 20, 18, generator=torch.Generator().manual_seed(2)).numpy()
    run = {"model": random_model(), "degradation": kind, "device": "cpu", "intensity": IDENTITY, "bounds": None,
           "return_parts": True, "calibrate": False}  # the random network's detail as it is
    on, off = upsample(y, scale, **run), upsample(y, scale, destripe=False, **run)
    assert on.consistency_error <= 1e-5 and off.consistency_error <= 1e-5
    if kind == "decimate":
        np.testing.assert_array_equal(on.volume[::3], y)  # the acquired slices, bit for bit
    assert float(np.abs(on.volume - off.volume).max()) > 1e-4
    np.testing.assert_allclose(on.volume, on.anchor + on.detail, atol=1e-6)
    assert any(note.startswith("destripe: the detail's part locked") for note in on.notes)
    assert not any(note.startswith("destripe") for note in off.notes)


def test_upsample_says_when_a_scale_has_no_phase_period():
    y = torch.rand(10, 12, 12, generator=torch.Generator().manual_seed(3)).numpy()
    run = {"model": random_model(), "degradation": "sample", "device": "cpu", "intensity": IDENTITY}
    on, off = upsample(y, 2.7183, **run), upsample(y, 2.7183, destripe=False, **run)
    assert "destripe: off, the scale 2.7183 has no short phase period" in on.notes
    np.testing.assert_array_equal(on.volume, off.volume)


def test_destripe_leaves_the_baselines_alone():
    y = torch.rand(8, 6, 6).numpy()
    np.testing.assert_array_equal(upsample(y, 2, method="cubic").volume,
                                  upsample(y, 2, method="cubic", destripe=False).volume)
