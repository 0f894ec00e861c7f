"""Banding measures: does an upsampled volume show stripes at the acquisition period? (DESIGN.md section 5)

A method that keeps the acquired slices and synthesises smoother ones between them makes the texture change with
the period of the acquisition: horizontal lines in coronal and sagittal views. Two measures, both about 1.0 on a
real thin-slice volume and on any method without banding:

- :func:`acquisition_periodicity`: the through-plane power spectrum, averaged over tissue columns, at the
  acquisition frequency 1/s (median over the spectral resolution 1/n), divided by the median of its neighbouring
  frequencies (within a factor 1.3 of 1/s). Interpolation makes it < 1 (linear interpolation has a zero at 1/s):
  a smooth output is not a striped one, but it is not a real thin volume either.
- :func:`acquired_texture_ratio`: the mean in-plane high-pass energy (|2-D Laplacian|) of the output slices that
  sit on acquired positions, divided by that of the synthesised slices (> 1: the synthesised slices are smoother,
  a regression to the mean).

Both take the volume with the slice axis at ``axis`` and the scale of the upsampling; they measure a picture and
need no reference, so they apply to real thick scans as well.
"""

from __future__ import annotations

import numpy as np

__all__ = ["acquisition_periodicity", "acquired_texture_ratio", "banding", "banding_or_none"]

_NEIGHBOUR_BAND = 1.3  # neighbours: frequencies within [f0 / 1.3, f0 * 1.3], outside the peak's own width


_MAX_COLUMNS = 8192  # tissue columns used for the spectrum (evenly strided): enough for a stable mean


def _slices_first(volume: np.ndarray, axis: int) -> np.ndarray:
    """A view with the slice axis first (no copy: whole clinical volumes are measured slice by slice)."""
    array = np.moveaxis(np.asarray(volume), axis, 0)
    if array.ndim != 3 or array.shape[0] < 8:
        raise ValueError(f"`volume` must be 3-D with at least 8 slices along axis {axis}, got {np.shape(volume)}")
    return array


def tissue_columns(array: np.ndarray, fraction: float = 0.1) -> np.ndarray:
    """(Y, X) mask of the columns whose mean lies above min + ``fraction`` * range (not air or background)."""
    lo, hi = float(array.min()), float(array.max())
    mask = array.mean(axis=0, dtype=np.float64) > lo + fraction * (hi - lo)
    return mask if mask.any() else np.ones(array.shape[1:], bool)


def acquisition_periodicity(volume: np.ndarray, scale: float, *, axis: int = 0) -> float:
    """Power at frequency 1/scale over the median power of its neighbours, through-plane, tissue columns only.

    Each tissue column's profile along the slice axis is detrended (least-squares line), Hann-windowed and
    zero-padded 8x; the periodograms are averaged over columns.

    Raises:
        ValueError: fewer than 8 slices, or ``scale`` too small or too large for the slice count.
    """
    array = _slices_first(volume, axis)
    n = array.shape[0]
    if not 2.0 <= float(scale) <= n / 3:
        raise ValueError(f"`scale` must lie in [2, {n / 3:.3g}] for {n} slices (three periods), got {scale}")
    columns = np.flatnonzero(tissue_columns(array))
    columns = columns[:: max(1, len(columns) // _MAX_COLUMNS)]
    profiles = array.reshape(n, -1)[:, columns].astype(np.float64)  # (n, columns)
    t = np.arange(n) - (n - 1) / 2
    slope = (t @ profiles) / (t @ t)
    detrended = profiles - profiles.mean(axis=0) - np.outer(t, slope)
    windowed = detrended * np.hanning(n)[:, None]
    size = 8 * n
    power = (np.abs(np.fft.rfft(windowed, n=size, axis=0)) ** 2).mean(axis=1)
    freqs = np.fft.rfftfreq(size)
    f0 = 1.0 / float(scale)
    width = 1.0 / n  # the spectral resolution of n slices: the peak's own width
    peak = np.median(power[np.abs(freqs - f0) <= width])
    band = (freqs >= f0 / _NEIGHBOUR_BAND) & (freqs <= f0 * _NEIGHBOUR_BAND) & (np.abs(freqs - f0) > width)
    reference = float(np.median(power[band]))
    if not reference > 0:  # no through-plane texture at all (a constant or linear volume): no stripes either
        return 1.0 if not peak > 0 else float("inf")
    return float(peak / reference)


def _laplacian_energy(array: np.ndarray, indices: np.ndarray, mask: np.ndarray) -> float:
    """Mean |4-neighbour Laplacian| over the tissue pixels of slices ``indices``, one slice at a time."""
    inner, total = mask[1:-1, 1:-1], 0.0
    for k in indices:
        s = array[k].astype(np.float64)
        lap = 4 * s[1:-1, 1:-1] - s[:-2, 1:-1] - s[2:, 1:-1] - s[1:-1, :-2] - s[1:-1, 2:]
        total += float(np.abs(lap)[inner].mean())
    return total / max(len(indices), 1)


def acquired_slice_indices(n_hr: int, scale: float) -> np.ndarray:
    """HR indices nearest to the acquired positions j * scale (exact for integer scales)."""
    positions = np.arange(0, (n_hr - 1) / scale + 1e-9) * scale
    return np.unique(np.clip(np.rint(positions).astype(int), 0, n_hr - 1))


def acquired_texture_ratio(volume: np.ndarray, scale: float, *, axis: int = 0) -> float:
    """Mean in-plane |Laplacian| of the acquired output slices over that of the synthesised ones (tissue only)."""
    array = _slices_first(volume, axis)
    acquired = acquired_slice_indices(array.shape[0], scale)
    synthesised = np.setdiff1d(np.arange(array.shape[0]), acquired)
    mask = tissue_columns(array)
    return _laplacian_energy(array, acquired, mask) / max(_laplacian_energy(array, synthesised, mask), 1e-12)


def banding_or_none(volume: np.ndarray, scale: float, *, axis: int = 0) -> tuple[float | None, float | None]:
    """:func:`banding`, or (None, None) where the stack or the scale does not allow it (for reports)."""
    try:
        return banding(volume, scale, axis=axis)
    except ValueError:
        return None, None


def banding(volume: np.ndarray, scale: float, *, axis: int = 0) -> tuple[float, float]:
    """(periodicity at 1/scale, acquired / synthesised texture ratio); both ~1.0 without banding."""
    return acquisition_periodicity(volume, scale, axis=axis), acquired_texture_ratio(volume, scale, axis=axis)
