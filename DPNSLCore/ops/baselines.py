"""The interpolation baselines users compare against (linear and cubic B-splines along the slice axis).

They place each observed slice at its acquisition position and interpolate; they ignore the slice profile, which is
what makes them baselines rather than consistent reconstructions for ``sample``/``profile``.
"""

from __future__ import annotations

import torch

from .interpolation import apply_along_slices, interpolation_matrix
from .operators import Degradation

__all__ = ["BASELINES", "interpolate"]

#: Baseline methods and the B-spline degree each one uses.
BASELINES: dict[str, int] = {"linear": 1, "cubic": 3}


def interpolate(y: torch.Tensor, degradation: Degradation, method: str = "linear") -> torch.Tensor:
    """Interpolate observed slices ``y`` (..., n_lr, Y, X) onto the HR grid of ``degradation``.

    Each observed slice is placed at its acquisition position (``j * scale`` HR steps) and the slice axis is
    interpolated with a linear or interpolating cubic B-spline; the slice profile is ignored (that is what
    makes these baselines, not consistent reconstructions, for ``sample``/``profile``).

    Raises:
        ValueError: unknown ``method``.
    """
    if method not in BASELINES:
        raise ValueError(f"`method` must be one of {sorted(BASELINES)}, got {method!r}")
    matrix = interpolation_matrix(degradation.hr_positions, degradation.n_lr, BASELINES[method])
    return degradation.restore_observed(apply_along_slices(matrix, y), y)
