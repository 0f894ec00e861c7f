"""Linear and cubic baselines against scipy.ndimage, exact reproduction of observed slices."""

import numpy as np
import pytest
import torch
from scipy import ndimage

from DPNSLCore.ops.baselines import interpolate
from DPNSLCore.ops.interpolation import interpolation_matrix
from DPNSLCore.ops.operators import make_degradation

ORDER = {"linear": 1, "cubic": 3}


@pytest.mark.parametrize("method", ["linear", "cubic"])
@pytest.mark.parametrize("kind,scale", [("decimate", 2), ("decimate", 5), ("sample", 2.5), ("sample", 3.7)])
def test_matches_scipy_map_coordinates(method, kind, scale):
    deg = make_degradation(kind, scale, 7)
    y = np.random.default_rng(1).random((7, 3, 2))
    out = interpolate(torch.from_numpy(y), deg, method).numpy()
    for i in range(3):
        for j in range(2):
            ref = ndimage.map_coordinates(y[:, i, j], [deg.hr_positions], order=ORDER[method], mode="mirror")
            np.testing.assert_allclose(out[:, i, j], ref, atol=1e-12)


@pytest.mark.parametrize("method", ["linear", "cubic"])
@pytest.mark.parametrize("scale", [2, 3, 4, 7])
def test_observed_slices_are_reproduced_exactly(method, scale):
    deg = make_degradation("decimate", scale, 6)
    y = torch.randn(1, 1, 6, 8, 8) * 1000
    out = interpolate(y, deg, method)
    assert torch.equal(deg.forward(out), y)


@pytest.mark.parametrize("degree", [1, 3])
def test_interpolation_reproduces_constants(degree):
    m = interpolation_matrix(np.linspace(-0.5, 5.5, 37), 6, degree)
    np.testing.assert_allclose(m.sum(axis=1), 1.0, atol=1e-12)


def test_linear_interpolation_reproduces_ramps():
    m = interpolation_matrix(np.linspace(0, 5, 31), 6, 1)
    np.testing.assert_allclose(m @ np.arange(6.0), np.linspace(0, 5, 31), atol=1e-12)


def test_unknown_method_is_rejected():
    deg = make_degradation("decimate", 2, 3)
    with pytest.raises(ValueError, match="`method` must be one of"):
        interpolate(torch.zeros(3, 2, 2), deg, "nearest")
