"""Image-quality metrics and the paper's evaluation protocol (DESIGN.md §5); numpy in, Python floats out.

SSIM reproduces ``skimage.metrics.structural_similarity(a, b, data_range=R, gaussian_weights=True,
sigma=1.5, use_sample_covariance=False)`` on each 2-D slice: an 11-tap Gaussian (sigma 1.5) window,
K1 = 0.01, K2 = 0.03, and the mean of the SSIM map after cropping 5 pixels from each border. Because the
crop equals the filter radius, the cropped map only sees interior pixels, so a "valid" separable filter
gives it exactly. All slices of a plane are filtered at once (torch, float64), in chunks to bound memory.

Example:
    >>> a = np.random.default_rng(0).random((16, 16, 16))
    >>> psnr(a, a), ssim_3plane(a, a)
    (inf, 1.0)
"""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = [
    "center_crop",
    "evaluate_protocol",
    "exclude_border_slices",
    "per_slice_mae",
    "psnr",
    "ssim_2d_mean",
    "ssim_3plane",
]

SSIM_SIGMA = 1.5
SSIM_RADIUS = 5  # int(3.5 * sigma + 0.5), as scikit-image/ndimage: an 11-pixel window
SSIM_K1 = 0.01
SSIM_K2 = 0.03
_CHUNK_VOXELS = 1 << 17  # slices per chunk * slice size: keeps the 5 float64 maps (~5 MB) in cache


def _pair(pred: np.ndarray, ref: np.ndarray, ndims: tuple[int, ...] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Validate two same-shape arrays (``ndim`` in ``ndims`` unless None); return them as float64 numpy."""
    pred, ref = np.asarray(pred), np.asarray(ref)
    if pred.shape != ref.shape:
        raise ValueError(f"`pred` and `ref` must have the same shape, got {pred.shape} and {ref.shape}")
    if pred.size == 0 or (ndims is not None and pred.ndim not in ndims):
        wanted = "" if ndims is None else " or ".join(f"{n}-D" for n in ndims) + " "
        raise ValueError(f"`pred` and `ref` must be non-empty {wanted}arrays, got shape {pred.shape}")
    return pred.astype(np.float64, copy=False), ref.astype(np.float64, copy=False)


def _check_range(data_range: float) -> float:
    if not (isinstance(data_range, (int, float, np.number)) and math.isfinite(data_range) and data_range > 0):
        raise ValueError(f"`data_range` must be a finite number > 0, got {data_range!r}; use 1.0 for [0, 1] data")
    return float(data_range)


def psnr(pred: np.ndarray, ref: np.ndarray, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB: ``10 log10(data_range^2 / mean((pred - ref)^2))``.

    Args:
        pred, ref: same-shape arrays of any dimension.
        data_range: peak value (1.0 for normalised volumes).

    Returns:
        PSNR in dB; ``inf`` when the arrays are equal.

    Raises:
        ValueError: on a shape mismatch, empty arrays or a non-positive ``data_range``.
    """
    pred, ref = _pair(pred, ref)
    data_range = _check_range(data_range)
    mse = float(np.mean((pred - ref) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(data_range**2 / mse)


def _gaussian_taps() -> torch.Tensor:
    x = torch.arange(-SSIM_RADIUS, SSIM_RADIUS + 1, dtype=torch.float64)
    w = torch.exp(-0.5 * (x / SSIM_SIGMA) ** 2)
    return w / w.sum()


def _valid_filter(t: torch.Tensor, dim: int, taps: torch.Tensor) -> torch.Tensor:
    """Correlate ``t`` with ``taps`` along ``dim`` keeping only fully-covered positions (length n - 10)."""
    m = t.shape[dim] - (len(taps) - 1)
    out = t.narrow(dim, 0, m) * float(taps[0])
    for k in range(1, len(taps)):
        out.add_(t.narrow(dim, k, m), alpha=float(taps[k]))
    return out


def _ssim_map_sum(a: torch.Tensor, b: torch.Tensor, c1: float, c2: float) -> float:
    """Sum of the cropped SSIM maps of a batch of slices ``a``, ``b``: (N, H, W) float64."""
    taps = _gaussian_taps()
    stack = torch.stack([a, b, a * a, b * b, a * b])  # (5, N, H, W)
    mu_a, mu_b, m_aa, m_bb, m_ab = _valid_filter(_valid_filter(stack, 2, taps), 3, taps)
    var_a, var_b, cov = m_aa - mu_a * mu_a, m_bb - mu_b * mu_b, m_ab - mu_a * mu_b
    num = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
    den = (mu_a * mu_a + mu_b * mu_b + c1) * (var_a + var_b + c2)
    return float((num / den).sum())


def ssim_2d_mean(pred: np.ndarray, ref: np.ndarray, data_range: float = 1.0, axis: int = 0) -> float:
    """Mean 2-D SSIM over all slices perpendicular to ``axis`` (one slice for 2-D input).

    Equals the mean over slices of scikit-image's ``structural_similarity`` with ``gaussian_weights=True``,
    ``sigma=1.5``, ``use_sample_covariance=False`` (see module docstring).

    Args:
        pred, ref: (H, W) images or (D0, D1, D2) volumes of the same shape; slice sides must be >= 11.
        data_range: dynamic range of the data (1.0 for normalised volumes).
        axis: for 3-D input, the axis the slices are taken along (0: axial z, 1: coronal y, 2: sagittal x).

    Raises:
        ValueError: on a shape mismatch, a bad ``axis``/``data_range``, or slices smaller than 11 x 11.
    """
    pred, ref = _pair(pred, ref, (2, 3))
    data_range = _check_range(data_range)
    if pred.ndim == 2:
        pred, ref, axis = pred[None], ref[None], 0
    if axis not in (0, 1, 2):
        raise ValueError(f"`axis` must be 0, 1 or 2, got {axis!r}")
    a, b = torch.from_numpy(pred).movedim(axis, 0), torch.from_numpy(ref).movedim(axis, 0)
    n, h, w = a.shape
    win = 2 * SSIM_RADIUS + 1
    if min(h, w) < win:
        raise ValueError(
            f"SSIM needs slices of at least {win}x{win} (11-pixel Gaussian window), got {h}x{w} "
            f"slices along axis {axis} of shape {pred.shape}"
        )
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    chunk = max(1, _CHUNK_VOXELS // (h * w))
    total = sum(
        _ssim_map_sum(a[i : i + chunk].contiguous(), b[i : i + chunk].contiguous(), c1, c2) for i in range(0, n, chunk)
    )
    return total / (n * (h - win + 1) * (w - win + 1))


def ssim_3plane(pred: np.ndarray, ref: np.ndarray, data_range: float = 1.0) -> float:
    """Paper's SSIM: mean of the axial (z), coronal (y) and sagittal (x) mean 2-D SSIMs of a volume.

    Args:
        pred, ref: (Z, Y, X) volumes of the same shape, every side >= 11.
        data_range: dynamic range (1.0 for normalised volumes).

    Raises:
        ValueError: on a shape mismatch, non-3-D input, a side < 11 or a bad ``data_range``.
    """
    pred, ref = _pair(pred, ref, (3,))
    return sum(ssim_2d_mean(pred, ref, data_range, axis) for axis in range(3)) / 3.0


def per_slice_mae(pred: np.ndarray, ref: np.ndarray, slice_axis: int = 0) -> np.ndarray:
    """Mean absolute error of each slice along ``slice_axis``: (n_slices,) float64.

    Raises:
        ValueError: on a shape mismatch, non-3-D input or ``slice_axis`` not in {0, 1, 2}.
    """
    pred, ref = _pair(pred, ref, (3,))
    if slice_axis not in (0, 1, 2):
        raise ValueError(f"`slice_axis` must be 0, 1 or 2, got {slice_axis!r}")
    other = tuple(a for a in range(3) if a != slice_axis)
    return np.abs(pred - ref).mean(axis=other)


def center_crop(volume: np.ndarray, size: int = 256, slice_axis: int = 0) -> np.ndarray:
    """Centre crop of the two in-plane axes (all but ``slice_axis``) to ``size``; shorter axes are kept whole.

    The crop starts at ``(n - size) // 2``. Returns a view of ``volume``.

    Raises:
        ValueError: if ``volume`` is not 3-D, ``size`` not a positive integer or ``slice_axis`` not in {0,1,2}.
    """
    volume = np.asarray(volume)
    if volume.ndim != 3:
        raise ValueError(f"`volume` must be 3-D, got shape {volume.shape}")
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"`size` must be a positive integer, got {size!r}")
    if slice_axis not in (0, 1, 2):
        raise ValueError(f"`slice_axis` must be 0, 1 or 2, got {slice_axis!r}")
    index = []
    for axis, n in enumerate(volume.shape):
        start = 0 if axis == slice_axis or n <= size else (n - size) // 2
        stop = n if axis == slice_axis or n <= size else start + size
        index.append(slice(start, stop))
    return volume[tuple(index)]


def exclude_border_slices(volume: np.ndarray, s: int) -> np.ndarray:
    """Drop the first ``s`` and last ``s`` slices along axis 0 (protocol: borders lack LR neighbours); a view.

    Raises:
        ValueError: if ``s`` is not a non-negative integer or fewer than one slice would remain.
    """
    volume = np.asarray(volume)
    if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 0:
        raise ValueError(f"`s` must be a non-negative integer, got {s!r}")
    if volume.ndim < 1 or volume.shape[0] <= 2 * s:
        raise ValueError(
            f"cannot exclude {s} slices at each end of a volume of shape {volume.shape}: "
            f"needs more than {2 * s} slices along axis 0"
        )
    return volume[s : volume.shape[0] - s]


def evaluate_protocol(pred: np.ndarray, ref: np.ndarray, scale: float) -> dict[str, float]:
    """Paper protocol (DESIGN.md §5) on normalised, centre-cropped (Z, Y, X) volumes with slice axis 0.

    Clips ``pred`` to [0, 1], drops the first and last ``ceil(scale)`` slices of both volumes, then computes
    PSNR (peak 1) over the remaining volume and the three-plane SSIM (data range 1).

    Args:
        pred: (Z, Y, X) super-resolved volume, normalised to [0, 1] (values outside are clipped).
        ref: (Z, Y, X) ground-truth HR volume, same shape, in [0, 1].
        scale: the upsampling factor s > 1 (integer for the paper's protocol).

    Returns:
        ``{"psnr": dB, "ssim": value}``.

    Raises:
        ValueError: on a shape mismatch, ``scale`` <= 1, or volumes too small once borders are excluded.
    """
    pred, ref = _pair(pred, ref, (3,))
    if not (isinstance(scale, (int, float, np.number)) and math.isfinite(scale) and scale > 1):
        raise ValueError(f"`scale` must be a finite number > 1, got {scale!r}")
    s = math.ceil(float(scale) - 1e-9)
    pred = exclude_border_slices(np.clip(pred, 0.0, 1.0), s)
    ref = exclude_border_slices(ref, s)
    return {"psnr": psnr(pred, ref), "ssim": ssim_3plane(pred, ref)}
