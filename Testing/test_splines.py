"""Tests of the closed-form centred cardinal B-splines (DPNSLCore.ops.splines)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.interpolate import BSpline

from DPNSLCore.ops.splines import SUPPORTED_DEGREES, bspline, support_radius

DEGREES = SUPPORTED_DEGREES


def scipy_beta(x: np.ndarray, degree: int) -> np.ndarray:
    """Independent oracle: scipy's basis element on the centred integer knots."""
    knots = np.arange(degree + 2) - (degree + 1) / 2
    return np.nan_to_num(BSpline.basis_element(knots, extrapolate=False)(x))


@pytest.mark.parametrize("degree", DEGREES)
def test_matches_scipy_basis_element(degree: int) -> None:
    x = np.linspace(-3.5, 3.5, 7001)
    got = bspline(torch.from_numpy(x), degree).numpy()
    np.testing.assert_allclose(got, scipy_beta(x, degree), rtol=0, atol=1e-6)


@pytest.mark.parametrize("degree", DEGREES)
def test_partition_of_unity(degree: int) -> None:
    x = torch.linspace(-0.5, 0.5, 1001, dtype=torch.float64)
    total = sum(bspline(x - k, degree) for k in range(-4, 5))
    torch.testing.assert_close(total, torch.ones_like(x), rtol=0, atol=1e-12)


@pytest.mark.parametrize("degree", DEGREES)
def test_support_and_non_negativity(degree: int) -> None:
    r = support_radius(degree)
    assert r == (degree + 1) / 2
    outside = torch.cat([torch.linspace(-10, -r, 101), torch.linspace(r, 10, 101)]).double()
    assert torch.all(bspline(outside, degree) == 0)
    inside = torch.linspace(-r + 1e-6, r - 1e-6, 1001, dtype=torch.float64)
    assert torch.all(bspline(inside, degree) > 0)


@pytest.mark.parametrize("degree", DEGREES)
def test_symmetry_and_unit_integral(degree: int) -> None:
    x = torch.linspace(-3, 3, 6001, dtype=torch.float64)
    values = bspline(x, degree)
    torch.testing.assert_close(values, bspline(-x, degree), rtol=0, atol=0)
    integral = torch.trapezoid(values, x).item()
    assert math.isclose(integral, 1.0, abs_tol=1e-6)


def test_known_values() -> None:
    x = torch.tensor([0.0, 0.5, 1.0, 1.5, 2.0], dtype=torch.float64)
    expected = {
        1: [1.0, 0.5, 0.0, 0.0, 0.0],
        2: [0.75, 0.5, 0.125, 0.0, 0.0],
        3: [2 / 3, 23 / 48, 1 / 6, 1 / 48, 0.0],
        4: [115 / 192, 11 / 24, 19 / 96, 1 / 24, 1 / 384],
    }
    for degree, values in expected.items():
        torch.testing.assert_close(bspline(x, degree), torch.tensor(values, dtype=torch.float64))


@pytest.mark.parametrize("degree", DEGREES)
def test_gradcheck_away_from_breakpoints(degree: int) -> None:
    breakpoints = np.arange(-(degree + 1), degree + 2) / 2  # all half-integers and integers
    rng = np.random.default_rng(degree)
    x = rng.uniform(-(degree + 1) / 2 - 0.5, (degree + 1) / 2 + 0.5, 64)
    x = x[np.min(np.abs(x[:, None] - breakpoints[None]), axis=1) > 1e-3]
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: bspline(t, degree), (xt,))


@pytest.mark.parametrize("degree", DEGREES)
def test_derivative_matches_scipy(degree: int) -> None:
    x = np.linspace(-3.2, 3.2, 641) + 1e-3  # off the breakpoints (kinks of degree 1)
    knots = np.arange(degree + 2) - (degree + 1) / 2
    expected = np.nan_to_num(BSpline.basis_element(knots, extrapolate=False).derivative()(x))
    xt = torch.tensor(x, requires_grad=True)
    bspline(xt, degree).sum().backward()
    np.testing.assert_allclose(xt.grad.numpy(), expected, rtol=0, atol=1e-12)


def test_preserves_dtype_shape_and_input() -> None:
    x = torch.randn(2, 3, 4)
    before = x.clone()
    out = bspline(x, 3)
    assert out.shape == x.shape and out.dtype == x.dtype
    torch.testing.assert_close(x, before, rtol=0, atol=0)


@pytest.mark.parametrize("degree", [0, 5, 2.0, True])
def test_rejects_unsupported_degree(degree) -> None:
    with pytest.raises(ValueError, match="`degree` must be an integer in"):
        bspline(torch.zeros(3), degree)


def test_rejects_integer_tensor() -> None:
    with pytest.raises(TypeError, match="floating-point"):
        bspline(torch.arange(3), 3)
