"""Training losses beyond the paper's L1: a banding penalty against stripes at the acquisition period.

A network whose HR output is built cell by cell (the Mixture-of-Splines upsampler evaluates each LR cell at the
in-cell positions of its HR slices) can put a pattern of period s into every column, and an L1-trained one
synthesises smoother slices between the acquired ones than at them (a regression to the mean). Both show as
horizontal lines in coronal and sagittal views (the banding measures of :mod:`DPNSLCore.evaluation.banding`).
The penalty compares output and truth per in-cell phase (the HR slices grouped by their position within an
acquisition period, ``ceil(s)`` groups):

- bias: the mean residual of each phase (a periodic intensity offset);
- texture: the mean in-plane |Laplacian| of each phase (periodic sharpness), output against truth.

Both are in normalised intensity units, like the L1 loss they are added to (``train --banding-weight W``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def phase_groups(n_hr: int, scale: float) -> list[Tensor]:
    """HR slice indices grouped by their position within an acquisition period, ``ceil(scale)`` groups."""
    bins = max(2, math.ceil(scale - 1e-9))
    u = torch.remainder(torch.arange(n_hr, dtype=torch.float64) / scale, 1.0)
    index = torch.clamp((u * bins + 1e-6).floor().long(), 0, bins - 1)
    return [torch.nonzero(index == b).flatten() for b in range(bins) if bool((index == b).any())]


def _laplacian_energy(x: Tensor) -> Tensor:
    """Mean in-plane |4-neighbour Laplacian| per slice: (B, 1, Z, Y, X) -> (Z,)."""
    lap = 4 * x[..., 1:-1, 1:-1] - x[..., :-2, 1:-1] - x[..., 2:, 1:-1] - x[..., 1:-1, :-2] - x[..., 1:-1, 2:]
    return lap.abs().mean(dim=(0, 1, 3, 4))


def banding_loss(output: Tensor, target: Tensor, scale: float) -> Tensor:
    """Per-phase |mean residual| plus per-phase |texture difference|, averaged over the phases.

    Args:
        output, target: (B, 1, n_hr, Y, X) HR windows (normalised intensities), slice axis -3.
        scale: the acquisition scale of the window.

    Returns:
        A scalar tensor, 0 when output equals target; differentiable in ``output``.
    """
    if output.shape != target.shape or output.ndim != 5:
        raise ValueError(f"output and target must be (B, 1, n_hr, Y, X) of one shape, got {tuple(output.shape)} and "
                         f"{tuple(target.shape)}")
    residual = (output - target).mean(dim=(0, 1, 3, 4))  # (n_hr,)
    energy_out, energy_target = _laplacian_energy(output), _laplacian_energy(target)
    terms = []
    for group in phase_groups(output.shape[-3], scale):
        group = group.to(output.device)
        terms.append(residual[group].mean().abs() + (energy_out[group].mean() - energy_target[group].mean()).abs())
    return torch.stack(terms).mean()
