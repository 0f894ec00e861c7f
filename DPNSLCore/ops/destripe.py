"""Remove the part of the null-space detail that is locked to the acquisition's phase (stripes), keeping A x = y.

Where a slice sits relative to the anatomy is the scanner's choice, so the true detail x - B A x has no pattern that
repeats with the slice period: measured on a leave-out MR (patient 26 T1, box profile x4), the 1/s component of the
true detail has a phase coherence of 0.01 across tissue columns, the shipped network's 0.22 (a mean of -3.4 at the
slice boundaries against +1.2 at the centres). That locked pattern is what reads as horizontal lines in coronal and
sagittal views (periodicity 1.9 against the truth's 1.2).

:func:`remove_phase_locked` estimates it locally: at every HR slice, the mean of the detail over the slices of the
same phase within ``periods`` periods either side, smoothed in-plane by a Gaussian of ``sigma`` voxels (a matmul
per axis); and subtracts its null-space part ``(I - P A) c``, so the output stays exactly consistent (for
``decimate`` the detail stays exactly 0 at the acquired slices). On that MR it takes the periodicity from 1.90 to
1.26 and PSNR up by 0.06 dB: it removes an error, not a texture (README, "Destripe A/B": on the leave-out patients
0.00 to +0.29 dB).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .operators import Degradation, null_space_detail
from .switch import options_from_switch

__all__ = ["DestripeOptions", "phase_period", "phase_locked_part", "remove_phase_locked"]

_MAX_CYCLE = 8  # a scale p / q repeats its phases every q observed slices: looked for up to q = 8


@dataclass(frozen=True)
class DestripeOptions:
    """How the phase-locked part of the detail is estimated.

    Args:
        sigma: in-plane Gaussian (voxels, > 0) over which the same-phase means are taken: the locked pattern is
            coherent across neighbouring columns, true detail is not. 3 by the headline protocol (unseen patients,
            through-plane, both acquisitions, x2-x7): against no destripe its worst cell is -0.023 dB (MS 26 FLAIR,
            decimation x7) and it takes the periodicity as low as 2 did; 2, the default before, removed true detail
            too and cost up to -0.062 dB (LIDC-0314 CT, thick slices x5) though it won more on one MR (T1, up to
            +0.14 against +0.11 dB); docs/what-did-not-help.md.
        periods: same-phase slices on each side along the slice axis (>= 1) that the mean takes in.

    Raises:
        ValueError: a value out of range.
    """

    sigma: float = 3.0
    periods: int = 1

    def __post_init__(self) -> None:
        if isinstance(self.sigma, bool) or not isinstance(self.sigma, (int, float)) or not self.sigma > 0:
            raise ValueError(f"`sigma` must be a number > 0 (voxels), got {self.sigma!r}")
        if isinstance(self.periods, bool) or not isinstance(self.periods, int) or self.periods < 1:
            raise ValueError(f"`periods` must be an integer >= 1, got {self.periods!r}")

    @property
    def radius(self) -> int:
        """In-plane reach (voxels) of the estimate: the extra tiling halo it needs to be tile-independent."""
        return int(math.ceil(3 * self.sigma))

    @classmethod
    def from_value(cls, value: DestripeOptions | bool | None) -> DestripeOptions | None:
        """True: the defaults; False or None: off; options: themselves (:mod:`DPNSLCore.ops.switch`)."""
        return options_from_switch(cls, value, "destripe")


def phase_period(scale: float) -> int | None:
    """HR slices after which the acquired positions repeat their phase (``scale * q`` for the smallest q <= 8 that
    makes it whole), or None for a scale with no short period (e.g. 2.7183)."""
    for q in range(1, _MAX_CYCLE + 1):
        period = round(scale * q)
        if period >= 2 and abs(scale * q - period) < 1e-6:
            return int(period)
    return None


def _gaussian_matrix(n: int, sigma: float, radius: int, like: torch.Tensor) -> torch.Tensor:
    """(n, n) G with (v @ G)[j] = the Gaussian-weighted mean of v around j, edges replicated: one matmul per
    axis, ~5x faster on 2 cores than a 13-tap convolution of the same result."""
    t = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-0.5 * (t / sigma) ** 2)
    kernel = kernel / kernel.sum()
    matrix = torch.zeros(n, n, dtype=torch.float64)
    j = torch.arange(n)
    for tap, weight in zip(range(-radius, radius + 1), kernel.tolist(), strict=True):
        matrix.index_put_(((j + tap).clamp(0, n - 1), j), torch.full((n,), weight, dtype=torch.float64),
                          accumulate=True)
    return matrix.to(like)


def phase_locked_part(detail: torch.Tensor, period: int, options: DestripeOptions) -> torch.Tensor:
    """(n_hr, Y, X) local same-phase means of ``detail`` (n_hr, Y, X): along the slice axis over ``2 * periods + 1``
    slices of the same phase (mirrored at the ends), in-plane by a Gaussian (edges replicated)."""
    if detail.ndim != 3:
        raise ValueError(f"`detail` must be (n_hr, Y, X), got shape {tuple(detail.shape)}")
    n, height, width = detail.shape
    out = torch.empty_like(detail)
    sigma, r = float(options.sigma), options.radius
    along_y, along_x = _gaussian_matrix(height, sigma, r, detail), _gaussian_matrix(width, sigma, r, detail)
    offsets = np.arange(-options.periods, options.periods + 1)
    for phase in range(min(period, n)):
        seq = detail[phase::period]
        m = seq.shape[0]
        idx = np.arange(m)[:, None] + offsets[None, :]
        idx = np.where(idx < 0, -idx, idx)
        idx = np.where(idx >= m, 2 * (m - 1) - idx, idx)
        mean = seq[torch.from_numpy(np.clip(idx, 0, m - 1).reshape(-1))].reshape(m, len(offsets), height, width)
        out[phase::period] = along_y.T @ (mean.mean(dim=1) @ along_x)
    return out


def remove_phase_locked(detail: torch.Tensor, degradation: Degradation, options: DestripeOptions, *,
                        projection: str, anchor: str) -> torch.Tensor:
    """``detail - (I - P A) c`` with c = :func:`phase_locked_part`: still in the null space of A (A x = y holds), and
    ``detail`` itself when the scale has no short phase period.

    Args:
        detail: (n_hr, Y, X) null-space detail of one column, in any intensity units.
        projection, anchor: the model's null-space projection P (see :func:`null_space_detail`).
    """
    period = phase_period(float(degradation.scale))
    if period is None:
        return detail
    locked = phase_locked_part(detail, period, options)
    return detail - null_space_detail(locked, degradation, projection, anchor=anchor)
