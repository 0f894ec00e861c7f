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
CT_CEILING_HU = 3071.0  # the top of the CT intensity window (DESIGN.md section 5)
HIGH_MARGIN = {"ct": 0.10, "mr": 0.50}  # above the input's maximum, as a share of its range: thin slices are sharper


@dataclass(frozen=True)
class IntensityBounds:
    """The box [low, high] an output is kept in, and the rule that set it (in words)."""

    low: float
    high: float
    rule: str

    @classmethod
    def for_input(cls, array: np.ndarray | torch.Tensor, modality: str, floor: float | None = None,
                  ceiling: float | None = None) -> IntensityBounds:
        """The default box of an observed volume: CT in [-1024, max(3071, input max + 10 % of its range)] HU, MR in
        [0, input max + 50 % of its range]; never narrower than the input's own range. ``floor`` / ``ceiling``:
        -1024 / 3071 HU in the input's units (for input that is already normalised).

        The upper end is generous on purpose: deconvolving overlapping thick slices needs thin peaks well above
        the thick averages, and a tight ceiling makes {A x = y} and the box disjoint (checked with a linear program
        on the real phantom: 0 of its 30 worst columns are feasible below input max + 10 %, all of them are with a
        floor only).

        Raises:
            ValueError: unknown modality.
        """
        if modality not in ("ct", "mr"):
            raise ValueError(f"`modality` must be 'ct' or 'mr', got {modality!r}")
        values = array.detach().cpu().numpy() if isinstance(array, torch.Tensor) else np.asarray(array)
        lo_in, hi_in = float(values.min()), float(values.max())
        floor = (CT_FLOOR_HU if modality == "ct" else 0.0) if floor is None else float(floor)
        margin = HIGH_MARGIN[modality] * (hi_in - lo_in)
        low, high = min(lo_in, max(floor, lo_in - margin)), hi_in + margin
        if modality == "ct":
            high = max(high, CT_CEILING_HU if ceiling is None else float(ceiling))
            return cls(low, high, "CT: from air (-1024 HU) to max(3071 HU, input max + 10 % of its range)")
        return cls(low, high, "MR: not negative, at most the input's maximum + 50 % of its range")


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
                   iterations: int = 300) -> tuple[torch.Tensor, BoundsReport]:
    """Project ``x`` towards the box while A x = y stays true; returns (x, report).

    Args:
        x: consistent estimate (A x = y), (n_hr, Y, X); modified in place and returned.
        y: observed slices (n_lr, Y, X), inside the box.
        iterations: most alternating projections for ``sample``/``profile``, on the columns that leave the box
            (each column stops as soon as it is inside, to 1e-4 of the box's width).
    """
    low, high = bounds.low, bounds.high
    outside = (x < low) | (x > high)
    clipped = int(outside.sum())
    if clipped == 0:
        return x, BoundsReport(x.numel())
    if degradation.kind == "decimate":  # exact: the acquired slices are y, inside the box, so clipping keeps them
        x.clamp_(low, high)
        return x, BoundsReport(x.numel(), clipped)
    # only the columns that leave the box, each on its own: a column stops once it is inside (checked every
    # `check` rounds), so its result never depends on which other columns share its tile
    tolerance = 1e-4 * (high - low)
    if x.ndim != 3:
        raise ValueError(f"`x` must be one column block (n_hr, Y, X), got shape {tuple(x.shape)}")
    columns = torch.nonzero(outside.any(dim=0).reshape(-1)).squeeze(1)
    flat, y_flat = x.reshape(x.shape[0], -1), y.reshape(y.shape[0], -1)
    active, rounds, check = columns, 0, 10
    while active.numel() and rounds < iterations:
        sub, y_sub = flat[:, active].unsqueeze(-1), y_flat[:, active].unsqueeze(-1)  # (n, k, 1): k columns
        for _ in range(min(check, iterations - rounds)):
            sub.clamp_(low, high)
            sub.sub_(degradation.pinv(degradation.forward(sub) - y_sub))  # back onto A x = y (orthogonal)
        rounds += min(check, iterations - rounds)
        flat[:, active] = sub[..., 0]
        away = torch.maximum(low - sub, sub - high)[..., 0].amax(dim=0)
        active = active[away > tolerance]
    x = flat.reshape(x.shape)
    distance = torch.maximum(low - x, x - high).clamp(min=0)
    still = int((distance > 10 * tolerance).sum())
    return x, BoundsReport(x.numel(), clipped, still, float(distance.max()), rounds)
