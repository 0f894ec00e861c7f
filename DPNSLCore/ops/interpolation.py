"""Interpolation along the slice axis as small matrices: the linear anchor and the linear/cubic baselines.

Every interpolator here is an (n_out x n_in) matrix built once in float64 and applied along axis -3, so the
same code serves the range anchor of the projection and the "methods" users compare against. Interpolating
B-splines use mirror-symmetric boundaries (``scipy.ndimage`` mode ``"mirror"``). Rows whose output position
coincides with an input sample are exact unit vectors, so observed slices are reproduced bit-exactly.
"""

from __future__ import annotations

import numpy as np
import torch

_SNAP = 1e-9  # positions this close to an integer are treated as on-grid


def _bspline_np(x: np.ndarray, degree: int) -> np.ndarray:
    """Centred cardinal B-spline of degree 1 or 3 (float64 numpy, used only to build matrices)."""
    a = np.abs(x)
    if degree == 1:
        return np.clip(1.0 - a, 0.0, None)
    if degree == 3:
        inner = 2.0 / 3.0 - a**2 + 0.5 * a**3
        outer = (2.0 - a) ** 3 / 6.0
        return np.where(a < 1.0, inner, np.where(a < 2.0, outer, 0.0))
    raise ValueError(f"interpolation degree must be 1 or 3, got {degree}")


def _mirror(index: np.ndarray, n: int) -> np.ndarray:
    """Fold integer indices into [0, n) by mirror symmetry about the first and last sample."""
    if n == 1:
        return np.zeros_like(index)
    period = 2 * (n - 1)
    folded = np.abs(index) % period
    return np.where(folded >= n, period - folded, folded)


def bspline_evaluation_matrix(positions: np.ndarray, n: int, degree: int) -> np.ndarray:
    """(n_out, n) banded matrix E of the B-spline basis: ``E @ c`` evaluates the spline with coefficients ``c`` on
    ``n`` unit-spaced knots (mirror boundaries) at ``positions``; degree 1 (linear) or 3 (cubic)."""
    positions = np.asarray(positions, dtype=np.float64)
    radius = (degree + 1) // 2
    base = np.floor(positions).astype(np.int64)
    evaluation = np.zeros((positions.size, n))
    rows = np.arange(positions.size)
    for offset in range(-radius, radius + 2):
        index = base + offset
        np.add.at(evaluation, (rows, _mirror(index, n)), _bspline_np(positions - index, degree))
    return evaluation


def interpolation_matrix(positions: np.ndarray, n: int, degree: int) -> np.ndarray:
    """Matrix that evaluates the interpolating B-spline through ``n`` unit-spaced samples.

    Args:
        positions: (n_out,) output positions in input-sample units (0 = first sample).
        n: number of input samples (>= 2).
        degree: 1 (linear) or 3 (cubic).

    Returns:
        (n_out, n) float64 matrix M with ``M @ samples`` = interpolated values; rows at integer positions
        inside [0, n-1] are exact unit vectors. ``M = E C^-1`` with E :func:`bspline_evaluation_matrix` and C the
        same basis at the samples (the collocation matrix): banded factors of a dense matrix.
    """
    positions = np.asarray(positions, dtype=np.float64)
    evaluation = bspline_evaluation_matrix(positions, n, degree)
    rows = np.arange(positions.size)
    if degree > 1:  # coefficients c solve collocation @ c = samples
        collocation = bspline_evaluation_matrix(np.arange(n, dtype=np.float64), n, degree)
        evaluation = np.linalg.solve(collocation.T, evaluation.T).T
    on_grid = np.abs(positions - np.round(positions)) < _SNAP
    on_grid &= (np.round(positions) >= 0) & (np.round(positions) <= n - 1)
    evaluation[on_grid] = 0.0
    evaluation[rows[on_grid], np.round(positions[on_grid]).astype(np.int64)] = 1.0
    return evaluation


def apply_along_slices(matrix: np.ndarray | torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Apply ``matrix`` (J, K) along axis -3 of ``x`` (..., K, Y, X) -> (..., J, Y, X); ``x`` is not modified."""
    if x.ndim < 3:
        raise ValueError(f"expected a tensor with at least 3 dims (..., Z, Y, X), got shape {tuple(x.shape)}")
    m = torch.as_tensor(matrix).to(dtype=x.dtype, device=x.device)
    if x.shape[-3] != m.shape[1]:
        raise ValueError(f"slice axis (dim -3) has {x.shape[-3]} slices, the operator expects {m.shape[1]}")
    *lead, k, h, w = x.shape
    out = torch.matmul(m, x.reshape(-1, k, h * w))
    return out.reshape(*lead, m.shape[0], h, w)
