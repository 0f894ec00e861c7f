"""Smooth-volume augmentation: some training windows blurred before their acquisition is simulated.

Thin training volumes are sharp (1 mm reconstructions), but many scans users give are not: a thick clinical CT's
in-plane axes (a soft reconstruction kernel), or a volume resampled by the scanner, are band-limited well below
their voxel grid. There cubic interpolation is already nearly exact (57-59 dB on the in-plane axes of
``ct_lung2_5mm`` at x2), and a network that has only seen sharp windows adds detail that is not there: the v4 CT
model is 2.6 dB below cubic on that stack. With ``train --blur-share P``, a share P of the windows is smoothed
by an isotropic Gaussian (sigma drawn per window from ``--blur-sigma LOW:HIGH`` voxels) before ``y = A x`` is
simulated; the target is the smoothed window, so the network learns to read the smoothness from its input and add
less. ``--blur-axes inplane`` smooths the slices only (a soft in-plane kernel over sharp anatomy along z): the
network then also sees smooth slices whose thin-slice truth is not smooth along the slice axis.

The draws come after a window's other draws, and none is made at share 0, so runs without the option draw
exactly the samples they always did.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812

from .acquisition import parse_range

BLUR_AXES = {"all": (0, 1, 2), "inplane": (1, 2)}  # --blur-axes: which of (slice, row, column) are smoothed


@dataclass(frozen=True)
class BlurAugment:
    """Which windows are smoothed, and how much.

    Args:
        share: probability (in [0, 1]) that a window is blurred; 0 turns the augmentation off.
        sigma: (low, high) Gaussian sigma in voxels (0 < low <= high), drawn uniformly per blurred window.
        axes: "all" (isotropic, the three axes) or "inplane" (the two in-plane axes, not the slice axis).

    Raises:
        ValueError: a value out of range.
    """

    share: float = 0.0
    sigma: tuple[float, float] = (0.5, 1.5)
    axes: str = "all"

    def __post_init__(self) -> None:
        if self.axes not in BLUR_AXES:
            raise ValueError(f"--blur-axes must be one of {', '.join(BLUR_AXES)}, got {self.axes!r}")
        if not 0.0 <= self.share <= 1.0:
            raise ValueError(f"--blur-share must lie in [0, 1], got {self.share}")
        low, high = self.sigma
        if not (0.0 < low <= high and math.isfinite(high)):
            raise ValueError(f"--blur-sigma must be LOW:HIGH voxels with 0 < LOW <= HIGH, got {low}:{high}")

    @classmethod
    def parse(cls, share: float, sigma: str, axes: str = "all") -> BlurAugment:
        """From the command line: ``--blur-share 0.3 --blur-sigma 0.5:1.5 --blur-axes all`` (or a single sigma)."""
        return cls(float(share), parse_range(sigma, "--blur-sigma", "(voxels)"), axes)

    def __call__(self, window: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        """``window`` (1, Z, Y, X), blurred with probability ``share``; the same tensor when not (no draw at 0)."""
        if self.share == 0.0 or not rng.random() < self.share:
            return window
        return gaussian_blur3d(window, float(rng.uniform(*self.sigma)), BLUR_AXES[self.axes])


def gaussian_blur3d(window: torch.Tensor, sigma: float, axes: tuple[int, ...] = BLUR_AXES["all"]) -> torch.Tensor:
    """Separable Gaussian of ``sigma`` voxels along ``axes`` of the last three (0: slices); edges replicated (no
    dark rim)."""
    radius = max(1, math.ceil(3 * sigma))
    taps = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-0.5 * (taps / sigma) ** 2)
    kernel = (kernel / kernel.sum()).to(window.dtype)
    out = window.reshape(1, 1, *window.shape[-3:])
    for axis in axes:
        shape = [1, 1, 1, 1, 1]
        shape[2 + axis] = kernel.numel()
        pad = [0, 0, 0, 0, 0, 0]
        pad[2 * (2 - axis)] = pad[2 * (2 - axis) + 1] = radius
        out = F.conv3d(F.pad(out, pad, mode="replicate"), kernel.reshape(shape))
    return out.reshape(window.shape)
