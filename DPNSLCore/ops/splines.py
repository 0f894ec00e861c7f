"""Centred cardinal B-splines beta_d of degree 1..4 in closed form.

The Mixture-of-Splines upsampler evaluates millions of basis values per forward pass, so the basis is
written with as few tensor operations as possible while staying an exact piecewise polynomial.
For t = |x| >= 0 the centred B-spline of degree d equals the truncated-power sum over the knots to
the right of t (the mirrored form of the classical de Boor formula):

    beta_d(t) = 1/d! * sum_{j=0}^{J} (-1)^j * C(d+1, j) * ((d+1)/2 - j - t)_+^d,

with J the last j whose knot (d+1)/2 - j is positive. Each term is one clamp and one power, there are
no branches (no torch.where). The derivative is explicit, beta_d' = beta_{d-1}(x + 1/2) -
beta_{d-1}(x - 1/2), so the backward pass stores only x (first derivatives only: no double backward).

Written out, with t = |x|:

- d = 1: (1 - t)_+
- d = 2: [(3/2 - t)_+^2 - 3 (1/2 - t)_+^2] / 2
- d = 3: [(2 - t)_+^3 - 4 (1 - t)_+^3] / 6
- d = 4: [(5/2 - t)_+^4 - 5 (3/2 - t)_+^4 + 10 (1/2 - t)_+^4] / 24
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

SUPPORTED_DEGREES: tuple[int, ...] = (1, 2, 3, 4)


def _truncated_power_terms(degree: int) -> tuple[tuple[float, float], ...]:
    """(knot, weight) pairs of the mirrored truncated-power form of beta_degree for t >= 0."""
    terms = []
    for j in range(degree + 1):
        knot = (degree + 1) / 2 - j
        if knot <= 0:
            break
        weight = (-1) ** j * math.comb(degree + 1, j) / math.factorial(degree)
        terms.append((knot, weight))
    return tuple(terms)


_TERMS = {d: _truncated_power_terms(d) for d in SUPPORTED_DEGREES}


def support_radius(degree: int) -> float:
    """Half-width of the support of beta_degree: the spline is zero for |x| >= (degree + 1) / 2."""
    _check_degree(degree)
    return (degree + 1) / 2


def _check_degree(degree: int) -> None:
    if isinstance(degree, bool) or not isinstance(degree, int) or degree not in SUPPORTED_DEGREES:
        raise ValueError(
            f"`degree` must be an integer in {SUPPORTED_DEGREES}, got {degree!r}; "
            "use 1 (linear), 2 (quadratic), 3 (cubic) or 4 (quartic)."
        )


def bspline(x: Tensor, degree: int) -> Tensor:
    """Centred cardinal B-spline beta_degree evaluated elementwise (differentiable).

    beta_d is the (d+1)-fold convolution of the unit box; it is symmetric, non-negative, supported on
    [-(d+1)/2, (d+1)/2] and its integer shifts sum to one (partition of unity).

    Args:
        x: floating-point tensor of any shape, dtype and device (positions in units of the knot spacing).
        degree: spline degree, one of 1, 2, 3, 4.

    Returns:
        Tensor of the same shape, dtype and device as `x` holding beta_degree(x).

    Raises:
        ValueError: if `degree` is not 1..4.
        TypeError: if `x` is not a floating-point tensor.

    Example:
        >>> bspline(torch.tensor([0.0, 1.0, 2.0]), 3)
        tensor([0.6667, 0.1667, 0.0000])
    """
    _check_degree(degree)
    if not isinstance(x, Tensor) or not x.is_floating_point():
        raise TypeError(f"`x` must be a floating-point torch.Tensor, got {type(x).__name__} "
                        f"{getattr(x, 'dtype', '')}; convert with torch.as_tensor(x, dtype=torch.float32).")
    return _BSpline.apply(x, degree)


def _evaluate(x: Tensor, degree: int) -> Tensor:
    """beta_degree(x) by the truncated-power sum, with in-place ops on fresh temporaries."""
    t = x.abs()
    out = None
    for knot, weight in _TERMS[degree]:
        term = _power_(torch.rsub(t, knot).clamp_(min=0), degree)
        out = term.mul_(weight) if out is None else out.add_(term, alpha=weight)
    return out


def _derivative(x: Tensor, degree: int) -> Tensor:
    """beta_d'(x) = beta_{d-1}(x + 1/2) - beta_{d-1}(x - 1/2); for d = 1, -sign(x) on (-1, 1)."""
    if degree == 1:
        return -torch.sign(x) * (x.abs() < 1).to(x.dtype)
    return _evaluate(x + 0.5, degree - 1).sub_(_evaluate(x - 0.5, degree - 1))


class _BSpline(torch.autograd.Function):
    """Explicit first derivative: backward keeps only `x` (not the ~2(d+1) temporaries of autograd),
    which matters for memory when millions of basis values are evaluated per training step."""

    @staticmethod
    def forward(ctx, x: Tensor, degree: int) -> Tensor:
        ctx.save_for_backward(x)
        ctx.degree = degree
        return _evaluate(x, degree)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        (x,) = ctx.saved_tensors
        return grad * _derivative(x, ctx.degree), None


def _power_(u: Tensor, degree: int) -> Tensor:
    """u ** degree by in-place multiplications on `u` (a fresh temporary); exact for these degrees."""
    if degree == 1:
        return u
    if degree == 3:
        return (u * u).mul_(u)
    return u.mul_(u) if degree == 2 else u.mul_(u).mul_(u)
