"""Keep an output inside the physical intensity range while every acquired slice stays consistent (A x = y).

Both sets are convex: the consistent volumes {x : A x = y} and the box [low, high]. For ``decimate`` they act on
different voxels (A only reads the acquired slices, which lie inside the box), so clipping the synthesised slices
is the exact Euclidean projection onto their intersection and keeps A x = y bit for bit. For ``sample`` and
``profile`` the projection alternates between the two sets (POCS), always ending on the consistent set, and
reports how many voxels are still outside the box and by how much.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .operators import Degradation

CT_FLOOR_HU = -1024.0  # air; nothing in a CT is darker
HIGH_MARGIN = 0.10  # the output may exceed the input's maximum by 10 % of its range (thin slices are sharper)


@dataclass(frozen=True)
class IntensityBounds:
    """The box [low, high] an output is kept in, and the rule that set it (in words)."""

    low: float
    high: float
    rule: str

    @classmethod
    def for_input(cls, array: np.ndarray | torch.Tensor, modality: str, floor: float | None = None) -> IntensityBounds:
        """The default box of an observed volume: CT >= -1024 HU (``floor``: that value in the input's units), MR
        >= 0, and at most 10 % of the input's range above its maximum; never narrower than the input's own range.

        Raises:
            ValueError: unknown modality.
        """
        if modality not in ("ct", "mr"):
            raise ValueError(f"`modality` must be 'ct' or 'mr', got {modality!r}")
        values = array.detach().cpu().numpy() if isinstance(array, torch.Tensor) else np.asarray(array)
        lo_in, hi_in = float(values.min()), float(values.max())
        floor = (CT_FLOOR_HU if modality == "ct" else 0.0) if floor is None else float(floor)
        margin = HIGH_MARGIN * (hi_in - lo_in)
        low, high = min(lo_in, max(floor, lo_in - margin)), hi_in + margin
        what = "CT: not below air (-1024 HU)" if modality == "ct" else "MR: not negative"
        return cls(low, high, f"{what}, at most the input's maximum + 10 % of its range")


@dataclass(frozen=True)
class BoundsReport:
    """What keeping the box did: voxels clipped, voxels still outside (and the worst distance), iterations."""

    total: int = 0
    clipped: int = 0
    outside: int = 0
    worst: float = 0.0
    iterations: int = 0

    def merge(self, other: BoundsReport) -> BoundsReport:
        return BoundsReport(self.total + other.total, self.clipped + other.clipped, self.outside + other.outside,
                            max(self.worst, other.worst), max(self.iterations, other.iterations))

    def text(self, bounds: IntensityBounds) -> str:
        share = 100.0 * self.clipped / max(self.total, 1)
        line = f"output kept in [{bounds.low:g}, {bounds.high:g}] ({bounds.rule}): {share:.2f} % of the voxels moved"
        if self.iterations:
            line += f", {self.iterations} alternating projection(s)"
        if self.outside:
            line += (f"; {100.0 * self.outside / max(self.total, 1):.2f} % still outside, by at most "
                     f"{self.worst:.3g}, to keep A x = y")
        return line


def keep_in_bounds(x: torch.Tensor, y: torch.Tensor, degradation: Degradation, bounds: IntensityBounds, *,
                   iterations: int = 20) -> tuple[torch.Tensor, BoundsReport]:
    """Project ``x`` (..., n_hr, Y, X) towards the box while A x = y stays true; returns (x, report).

    Args:
        x: consistent estimate (A x = y), modified in place and returned.
        y: observed slices (..., n_lr, Y, X), inside the box.
        iterations: alternating projections for ``sample``/``profile``, on the columns that leave the box.
    """
    low, high = bounds.low, bounds.high
    outside = (x < low) | (x > high)
    clipped = int(outside.sum())
    if clipped == 0:
        return x, BoundsReport(x.numel())
    if degradation.kind == "decimate":  # exact: the acquired slices are y, inside the box, so clipping keeps them
        x.clamp_(low, high)
        return x, BoundsReport(x.numel(), clipped)
    # only the columns that leave the box, each on its own and for a fixed number of rounds, so the result of a
    # column never depends on which other columns share its tile
    columns = outside.any(dim=-3)
    sub = x[..., columns].unsqueeze(-1)  # (..., n_hr, k, 1)
    y_sub = y[..., columns].unsqueeze(-1)
    for _ in range(iterations):
        sub.clamp_(low, high)
        sub.sub_(degradation.pinv(degradation.forward(sub) - y_sub))  # back onto A x = y (orthogonal projection)
    x[..., columns] = sub.squeeze(-1)
    distance = torch.maximum(low - sub, sub - high).clamp(min=0)
    still = int((distance > 1e-3 * (high - low)).sum())
    return x, BoundsReport(x.numel(), clipped, still, float(distance.max()), iterations)
