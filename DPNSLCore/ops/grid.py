"""The slice-grid rules every front end shares: scale validation and snapping, HR grid length, slice-axis choice.

numpy only (no torch), so that the Slicer panel can plan a request before PyTorch is installed.

HR grid rule: the HR grid keeps the first observed slice and steps by the observed spacing divided by ``scale``.
HR slice k sits at observed position ``k / scale``; observed slice j sits at HR position ``j * scale``; the grid
has ``n_hr = ceil((n_lr - 1) * scale) + 1`` slices, exactly ``(n_lr - 1) * scale + 1`` for integer scales.

Snapping rule (the one rule): a scale within ``SCALE_SNAP`` (relative) of an integer *is* that integer, so a
target spacing of 4.9999998 mm on 25 mm slices gives scale 5, not 5.0000004.
"""

from __future__ import annotations

import math

import numpy as np

KINDS = ("decimate", "sample", "profile")  # acquisition models A
PROFILES = ("box", "gaussian")  # slice profiles of "profile"
MAX_SCALE = 64.0
SCALE_SNAP = 1e-6  # relative distance to an integer below which a scale is that integer
AXIS_TIE = 1e-6  # relative spacing difference below which two axes count as equally thick


def snap_scale(scale: float) -> float:
    """``scale`` rounded to the nearest integer when within ``SCALE_SNAP`` (relative) of it, else unchanged."""
    nearest = round(scale)
    return float(nearest) if nearest >= 1 and abs(scale - nearest) <= SCALE_SNAP * abs(scale) else float(scale)


def is_integer_scale(scale: float) -> bool:
    """True when ``scale`` snaps to an integer (see :func:`snap_scale`)."""
    return math.isfinite(scale) and float(snap_scale(scale)).is_integer()


def check_scale(scale: float, kind: str = "sample") -> float:
    """Validate a slice-axis scale factor for acquisition ``kind`` and return it, snapped (the one rule).

    Raises:
        TypeError: not a number. ValueError: not finite, <= 1, > MAX_SCALE, or non-integer for ``decimate``.
    """
    if isinstance(scale, bool) or not isinstance(scale, (int, float, np.integer, np.floating)):
        raise TypeError(f"`scale` must be a number, got {type(scale).__name__}")
    scale = float(scale)
    if not math.isfinite(scale):
        raise ValueError(f"`scale` must be finite, got {scale}; use a factor such as 2.5")
    scale = snap_scale(scale)
    if scale <= 1.0:
        raise ValueError(
            f"`scale` must be > 1, got {scale:g}; use a factor such as 2.5, or give a target spacing smaller "
            "than the input's slice spacing"
        )
    if scale > MAX_SCALE:
        raise ValueError(f"`scale` must be <= {MAX_SCALE:g}, got {scale:g}; such a factor is almost surely a typo")
    if kind == "decimate" and not scale.is_integer():
        raise ValueError(
            f"`decimate` needs an integer `scale`, got {scale:.6g}; use degradation 'sample' (or 'profile') for "
            "non-integer scales"
        )
    return scale


def hr_length(n_lr: int, scale: float) -> int:
    """Number of HR slices for ``n_lr`` observed slices at ``scale`` (see the module docstring)."""
    scale = check_scale(scale)
    if int(n_lr) < 2:
        raise ValueError(f"need at least 2 observed slices along the slice axis, got {n_lr}")
    return int(math.ceil((int(n_lr) - 1) * scale - 1e-9)) + 1


def lr_length(n_hr: int, scale: float) -> int:
    """Largest number of observed slices whose HR grid fits in ``n_hr`` slices."""
    scale = check_scale(scale)
    n_lr = int(math.floor((int(n_hr) - 1) / scale + 1e-9)) + 1
    if n_lr < 2:
        raise ValueError(f"{n_hr} HR slices are too few for scale {scale:g}: need at least {hr_length(2, scale)}")
    while hr_length(n_lr, scale) > n_hr:
        n_lr -= 1
    return n_lr


def thickest_axis(spacing_zyx: tuple[float, float, float] | np.ndarray) -> int:
    """Numpy axis (0 = z, 1 = y, 2 = x) with the largest spacing: the through-plane (slice) axis.

    Spacings within ``AXIS_TIE`` (relative) of the largest count as ties; ties go to the lowest numpy axis.
    """
    spacing = np.asarray(spacing_zyx, dtype=np.float64)
    if spacing.shape != (3,) or not np.all(np.isfinite(spacing)) or spacing.min() <= 0:
        raise ValueError(f"`spacing_zyx` must be 3 positive finite spacings (mm), got {spacing_zyx!r}")
    return int(np.flatnonzero(spacing >= spacing.max() * (1 - AXIS_TIE))[0])


def check_slice_axis(slice_axis: object) -> int:
    """``slice_axis`` as an int in {0, 1, 2}, or ValueError naming the choices."""
    if isinstance(slice_axis, bool) or not isinstance(slice_axis, (int, np.integer)) or not 0 <= slice_axis <= 2:
        raise ValueError(f"`slice_axis` must be a numpy axis 0 (z), 1 (y) or 2 (x), or 'auto', got {slice_axis!r}")
    return int(slice_axis)


def scale_grid_matrix(index_to_world: np.ndarray, slice_axis: int, scale: float) -> np.ndarray:
    """The (4, 4) or (3, 3) index-to-world matrix of the upsampled grid: the slice-axis column divided by
    ``scale``; the other columns and the origin are kept, so observed slice j stays at its world position.

    Args:
        index_to_world: matrix whose column c maps index axis c (ITK/IJK order: i = x, j = y, k = z).
        slice_axis: numpy axis of the slices (0, 1 or 2), i.e. index column ``2 - slice_axis``.
        scale: HR slices per observed slice spacing (> 1).
    """
    out = np.array(index_to_world, dtype=np.float64, copy=True)
    out[:3, 2 - check_slice_axis(slice_axis)] /= float(check_scale(scale))
    return out
