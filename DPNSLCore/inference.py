"""The public upsampling API: one call for the baselines and the learned model, on arrays or geometry-aware volumes.

``upsample`` never modifies its input. The network runs on normalised intensities; the projection runs in the
input's own units, so for ``decimate`` every observed slice of the output equals the input bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .intensity import IntensityNormalizer, guess_modality
from .interpolation import BASELINES, interpolate
from .io import Geometry, Volume, detect_slice_axis, upsampled_geometry
from .operators import Degradation, make_degradation, measurement_consistent_projection
from .tiling import CancelFn, ProgressFn, run_tiled
from .weights import load_model, resolve_device

METHODS = ("dpnsl", *BASELINES)


@dataclass
class UpsampleResult:
    """What :func:`upsample` returns. Arrays keep the input's axis order (slice axis where it was)."""

    volume: np.ndarray  # float32 (..., n_hr along the slice axis, ...)
    geometry: Geometry | None  # upsampled geometry when the input was a Volume
    scale: float
    degradation: str
    method: str
    slice_axis: int
    consistency_error: float  # max |A x - y| in input units (0 for decimate)
    anchor: np.ndarray | None = None  # range-space anchor B y (return_parts=True)
    detail: np.ndarray | None = None  # null-space detail (I - P A) f, in input units
    routing: np.ndarray | None = None  # (E, *volume.shape) router weights in [0, 1], experts first
    expert_degrees: tuple[int, ...] = ()

    def to_volume(self) -> Volume:
        """The result as a geometry-aware :class:`Volume` (needs an input Volume)."""
        if self.geometry is None:
            raise ValueError("the input was a bare array, so the result has no geometry; pass a Volume")
        return Volume(self.volume, self.geometry)


def _as_array(volume: np.ndarray | Volume | torch.Tensor) -> tuple[np.ndarray, Geometry | None]:
    if isinstance(volume, Volume):
        array, geometry = volume.array, volume.geometry
    elif isinstance(volume, torch.Tensor):
        array, geometry = volume.detach().cpu().numpy(), None
    elif isinstance(volume, np.ndarray):
        array, geometry = volume, None
    else:
        kind = type(volume).__name__
        raise TypeError(f"`volume` must be a numpy array, torch tensor or DPNSLCore.Volume, got {kind}")
    if array.ndim != 3:
        raise ValueError(f"`volume` must be 3-D (slices, rows, cols), got shape {array.shape}; take one channel/frame")
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise TypeError(f"`volume` must hold real numbers, got dtype {array.dtype}")
    bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
    if bad:
        raise ValueError(f"`volume` contains {bad} NaN/inf voxels; fill or mask them before upsampling")
    return array, geometry


def resolve_scale(scale: float | None, spacing: float | None, geometry: Geometry | None, slice_axis: int) -> float:
    """The scale factor from ``scale`` or a target slice ``spacing`` in mm (needs geometry)."""
    if (scale is None) == (spacing is None):
        raise ValueError("give exactly one of `scale` (e.g. 4) or `spacing` (target slice spacing in mm)")
    if spacing is None:
        return float(scale)
    if geometry is None:
        raise ValueError("`spacing` needs the input's geometry: pass a Volume, or give `scale` instead")
    if not (np.isfinite(spacing) and spacing > 0):
        raise ValueError(f"`spacing` must be a positive number of mm, got {spacing}")
    return geometry.spacing[2 - slice_axis] / float(spacing)


def _resolve_slice_axis(slice_axis: int | None, geometry: Geometry | None) -> int:
    if slice_axis is None:
        if geometry is None:
            raise ValueError("`slice_axis=None` (detect) needs a Volume with geometry; pass 0, 1 or 2")
        return detect_slice_axis(geometry)
    if slice_axis not in (0, 1, 2):
        raise ValueError(f"`slice_axis` must be 0, 1 or 2 (numpy axis of the volume), got {slice_axis}")
    return int(slice_axis)


def _run_model(model, y: torch.Tensor, deg: Degradation, norm: IntensityNormalizer, device, return_parts, tiling,
               progress, cancel):
    """Network in normalised units, projection in input units: returns (output, anchor, detail, routing)."""
    y_n = torch.as_tensor(norm.forward(y.numpy()), dtype=torch.float32)
    options = {"z_window": 8, "z_overlap": 2, "tile_size": 224, "blend": "ramp", **(tiling or {})}
    with torch.inference_mode():
        f_n, routing = run_tiled(model.estimator, y_n, deg, halo=model.estimator.receptive_radius,
                                 device=device, with_routing=return_parts, progress=progress, cancel=cancel, **options)
    cfg = model.config
    use_mcp = getattr(cfg, "use_mcp", True)
    anchor_kind = getattr(cfg, "anchor", "linear")
    projection = getattr(cfg, "projection", "pinv") if use_mcp else "none"
    _, _, detail_n = measurement_consistent_projection(y_n, f_n, deg, anchor="none", projection=projection)
    anchor = torch.full_like(f_n, float(norm.offset)) if anchor_kind == "none" else deg.anchor(y, anchor_kind)
    detail = detail_n * float(norm.scale)
    return anchor + detail, anchor, detail, routing


def upsample(
    volume: np.ndarray | Volume | torch.Tensor,
    scale: float | None = None,
    *,
    spacing: float | None = None,
    model: torch.nn.Module | str | None = None,
    method: str = "dpnsl",
    degradation: str = "decimate",
    thickness: float = 1.0,
    profile: str = "box",
    slice_axis: int | None = 0,
    device: str = "auto",
    return_parts: bool = False,
    intensity: IntensityNormalizer | None = None,
    tiling: dict | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
) -> UpsampleResult:
    """Turn a thick-slice volume into a thin-slice one; every observed slice is kept (A x = y).

    Args:
        volume: (Z, Y, X) array/tensor, or a :class:`Volume` (then the result carries the new geometry).
        scale: HR slices per observed slice spacing (> 1), or give ``spacing``, the target slice spacing in mm.
        model: a loaded model, a checkpoint path, a shipped name ("ct", "mr") or preset; None picks the shipped
            model for the volume's modality (CT if it looks like Hounsfield units, else MR).
        method: "dpnsl", "linear" or "cubic".
        degradation: how the input was acquired: "decimate" (integer scale), "sample" or "profile".
        thickness, profile: slice profile for ``degradation="profile"`` (thickness in LR spacings).
        slice_axis: numpy axis of the slices, or None to detect it from the geometry (largest spacing).
        device: "auto" (CUDA when present), "cpu", "cuda" or "cuda:N".
        return_parts: also return the anchor, the null-space detail and the routing maps.
        intensity: how to map the input to the network's [0, 1] range; default: the model's modality rule (CT:
            fixed HU window; MR: the input's own min/max). Pass ``IntensityNormalizer("mr", 1.0, 0.0)`` for input
            that is already normalised.
        tiling: inference options: ``z_window``, ``z_overlap`` (observed slices), ``tile_size`` (voxels),
            ``blend`` ("ramp", or "mean" for the paper's stride-1 averaging); bounds the peak memory.
        progress: called as ``progress(fraction, message)``; cancel: return True to stop (raises Cancelled).

    Raises:
        ValueError / TypeError: bad input, scale, method, degradation, axis or device, with the fix.

    Example:
        >>> out = upsample(np.zeros((4, 8, 8), np.float32), 2, method="linear")
        >>> out.volume.shape
        (7, 8, 8)
    """
    if method not in METHODS:
        raise ValueError(f"`method` must be one of {METHODS}, got {method!r}")
    array, geometry = _as_array(volume)
    axis = _resolve_slice_axis(slice_axis, geometry)
    s = resolve_scale(scale, spacing, geometry, axis)
    y = torch.from_numpy(np.moveaxis(array, axis, 0).astype(np.float32))  # a copy: the input stays untouched
    deg = make_degradation(degradation, s, y.shape[0], profile=profile, thickness=thickness)
    parts: dict[str, np.ndarray | None] = {"anchor": None, "detail": None, "routing": None}
    degrees: tuple[int, ...] = ()
    if method == "dpnsl":
        dev = resolve_device(device)
        net = model if isinstance(model, torch.nn.Module) else load_model(model or guess_modality(array), dev)
        if intensity is None:
            modality = getattr(net, "modality", None) or guess_modality(array)
            intensity = IntensityNormalizer.for_ct() if modality == "ct" else IntensityNormalizer.for_mr(array)
        out, anchor, detail, routing = _run_model(net.to(dev).eval(), y, deg, intensity, dev, return_parts, tiling,
                                                  progress, cancel)
        degrees = tuple(getattr(net.config, "degrees", ()))
        if return_parts:
            parts = {"anchor": anchor, "detail": detail, "routing": routing}
    else:
        out = interpolate(y, deg, method)
        if progress is not None:
            progress(1.0, f"{method} interpolation done")
        if return_parts:
            parts["anchor"], parts["detail"] = out, torch.zeros_like(out)
    err = float((deg.forward(out) - y).abs().max())

    def back(t: torch.Tensor | None, lead: int = 0) -> np.ndarray | None:
        return None if t is None else np.ascontiguousarray(np.moveaxis(t.numpy(), lead, lead + axis))

    return UpsampleResult(
        volume=back(out), geometry=None if geometry is None else upsampled_geometry(geometry, s, axis), scale=s,
        degradation=degradation, method=method, slice_axis=axis, consistency_error=err, anchor=back(parts["anchor"]),
        detail=back(parts["detail"]), routing=back(parts["routing"], 1), expert_degrees=degrees,
    )
