"""Helpers that bring LR-grid tensors to HR slice positions along z (slice axis -3).

HR slice k sits at `hr_positions[k]` in LR-slice units relative to the window's first LR slice (k / s for
`decimate`); in-plane the LR and HR grids coincide, so only z needs care.
"""

from __future__ import annotations

import torch
from torch import Tensor


def check_positions(hr_positions: Tensor, n_lr: int) -> Tensor:
    """Validate HR positions and return them as a float64 1-D CPU tensor (MPS has no float64).

    Raises:
        ValueError: not 1-D, empty, non-finite, or `n_lr` < 1.
    """
    if not isinstance(hr_positions, Tensor):
        hr_positions = torch.as_tensor(hr_positions)
    if hr_positions.ndim != 1 or hr_positions.numel() == 0:
        raise ValueError(f"`hr_positions` must be a non-empty 1-D tensor (n_hr,), got shape "
                         f"{tuple(hr_positions.shape)}; pass degradation.hr_positions.")
    positions = hr_positions.detach().to(device="cpu", dtype=torch.float64)
    if not torch.isfinite(positions).all():
        raise ValueError("`hr_positions` must be finite; got NaN or inf.")
    if n_lr < 1:
        raise ValueError(f"the LR window must hold at least 1 slice, got {n_lr}.")
    return positions


def nearest_cells(positions: Tensor, n_lr: int, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """Nearest LR slice c_k = floor(p_k + 1/2) (clamped to the window) and the offsets p_k - c_k.

    Args:
        positions: (n_hr,) float64 HR positions in LR-slice units.
        n_lr: number of LR slices in the window.
        dtype: dtype of the returned offsets.

    Returns:
        (index (n_hr,) int64 on the positions' device, delta (n_hr,) of `dtype`), |delta| <= 1/2 inside
        the window.
    """
    index = torch.floor(positions + 0.5).clamp(0, n_lr - 1)
    return index.long(), (positions - index).to(dtype)


def lerp_z(x: Tensor, positions: Tensor) -> Tensor:
    """Linear interpolation of `x` (..., Z, Y, X) along z at `positions` (aligned corners, clamped ends).

    Args:
        x: (..., n_lr, Y, X) tensor on the LR grid.
        positions: (n_hr,) float64 positions in LR-slice units.

    Returns:
        (..., n_hr, Y, X); equals x exactly at integer positions.
    """
    n_lr = x.shape[-3]
    lower = torch.floor(positions).clamp(0, max(n_lr - 2, 0))
    weight = (positions - lower).clamp(0, 1 if n_lr > 1 else 0).to(x.dtype)
    i0 = lower.long().to(x.device)
    i1 = (i0 + 1).clamp(max=n_lr - 1)
    x0 = x.index_select(-3, i0)
    x1 = x.index_select(-3, i1)
    return torch.lerp(x0, x1, weight.to(x.device).view(-1, 1, 1))


def runs(index: Tensor) -> list[tuple[int, int, int]]:
    """Maximal runs of equal values in a 1-D int tensor as (start, stop, value) triples."""
    values = index.tolist()
    out: list[tuple[int, int, int]] = []
    start = 0
    for k in range(1, len(values) + 1):
        if k == len(values) or values[k] != values[start]:
            out.append((start, k, values[start]))
            start = k
    return out
