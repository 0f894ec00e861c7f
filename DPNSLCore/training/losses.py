"""Training losses beyond the paper's L1: the PSNR gain over the anchor, and a banding penalty against stripes.

**Gain loss** (``train --loss gain``): the mean over the batch of each sample's PSNR change against the range
anchor, ``10 log10((mse(output) + eps) / (mse(anchor) + eps))`` dB (lower is better; 0 = the anchor). L1 and MSE
sum errors over the batch, so a crop where the anchor is nearly exact (the smooth in-plane axes of a soft-kernel CT
at x2, where cubic reaches 57-59 dB) weighs next to nothing against a hard one, and the network learns to add
detail everywhere; the evaluation scores every stack in dB, and so does this loss: each sample counts by its own
relative improvement. ``eps`` (1e-6, a PSNR of 60 dB) keeps flat crops from dominating.

**Banding penalty**:

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

GAIN_EPS = 1e-6  # squared error in normalised units below which samples count as exact (60 dB PSNR)


def gain_loss(output: Tensor, anchor: Tensor, target: Tensor, eps: float = GAIN_EPS) -> Tensor:
    """Mean per-sample PSNR change of ``output`` against ``anchor`` (dB; negative = better than the anchor).

    Args:
        output, anchor, target: (B, ...) tensors of one shape, normalised intensities; ``anchor`` needs no gradient.
        eps: added to both mean squared errors (> 0).

    Returns:
        A scalar tensor, differentiable in ``output``; exactly 0 when ``output`` equals ``anchor``.
    """
    if not output.shape == anchor.shape == target.shape or output.ndim < 2:
        raise ValueError(f"output, anchor and target must be (B, ...) of one shape, got {tuple(output.shape)}, "
                         f"{tuple(anchor.shape)} and {tuple(target.shape)}")
    if not eps > 0:
        raise ValueError(f"`eps` must be > 0, got {eps}")
    dims = tuple(range(1, output.ndim))
    mse_out = (output - target).square().mean(dim=dims)
    mse_anchor = (anchor.detach() - target).square().mean(dim=dims)
    return (10.0 * torch.log10((mse_out + eps) / (mse_anchor + eps))).mean()


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
