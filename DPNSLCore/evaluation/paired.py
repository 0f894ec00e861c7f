"""Real-data check on a thick/thin pair of one session (e.g. a 5 mm and a 1 mm reconstruction of one scan).

Nothing is registered: both series share the scanner's world frame. Each method upsamples the thick volume
along its slice axis to the thin spacing; the result is resampled (linear) onto the thin grid in world
coordinates, and PSNR (peak 1, normalised intensities) is measured over the voxels the result covers.
The thin series is a different reconstruction, not the truth of a simulated acquisition, so the numbers
rank methods rather than measure absolute accuracy.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk  # noqa: N813

from ..inference.api import upsample
from ..io.intensity import IntensityNormalizer
from ..io.volumes import Volume, detect_slice_axis, read_volume, volume_to_sitk
from .loading import load_dpnsl
from .metrics import psnr


@dataclass
class PairedRow:
    """PSNR of one method against the thin series over ``voxels`` overlapping voxels, at ``scale``, assuming the
    thick series was acquired as ``acquisition`` (the plan's words, e.g. "box profile, 5 mm thick every 5 mm")."""

    method: str
    psnr: float
    voxels: int
    scale: float
    acquisition: str = ""


def resample_onto(volume: Volume, reference: Volume) -> np.ndarray:
    """``volume`` resampled (linear) onto ``reference``'s grid in world coordinates; NaN outside ``volume``."""
    moving = volume_to_sitk(Volume(volume.array.astype(np.float32), volume.geometry))
    fixed = volume_to_sitk(Volume(np.zeros(reference.array.shape, np.float32), reference.geometry))
    out = sitk.Resample(moving, fixed, sitk.Transform(), sitk.sitkLinear, float("nan"), sitk.sitkFloat32)
    return sitk.GetArrayFromImage(out)


def pair_slice_axis(thick: Volume, thin: Volume) -> tuple[int, float]:
    """The thick series' slice axis (numpy order) and the thin series' spacing along it (mm).

    Raises:
        ValueError: the thin series is not finer along that axis.
    """
    axis = detect_slice_axis(thick.geometry)
    target = thin.geometry.spacing_zyx[axis]
    if target >= thick.geometry.spacing_zyx[axis] * (1 - 1e-6):
        raise ValueError(f"the thin series ({target:g} mm) must have finer slices than the thick one "
                         f"({thick.geometry.spacing_zyx[axis]:g} mm) along numpy axis {axis}")
    return axis, target


def paired_check(thick_path: str | Path, thin_path: str | Path, methods: Sequence[str], *,
                 checkpoint: str | None = None, modality: str = "auto", degradation: str | None = None,
                 profile: str | None = None, thickness: float | None = None, device: str = "auto", model=None,
                 out: str | Path | None = None,
                 destripe: bool = True, calibrate: bool = True, ensemble: int = 1) -> list[PairedRow]:
    """Upsample the thick series with each method and compare with the thin series (module docstring).

    Args:
        thick_path, thin_path: the two series (files or DICOM folders) of one session.
        methods: subset of "linear", "cubic", "dpnsl".
        modality: "ct" (fixed HU window for both), "mr" (each series by its own range) or "auto".
        degradation: the acquisition assumed of the thick series; default "auto" (resolved by upsample: a model's
            recorded profile, else decimate for an integer spacing ratio and sample otherwise), or "profile" when
            ``profile`` or ``thickness`` is given.
        profile, thickness: the slice profile ("box" or "gaussian"; default the model's, else box) and its
            thickness in thick spacings (default: the thick series' header, else 1), for a profile acquisition.
        destripe, calibrate, ensemble: upsample's ``destripe``, ``calibrate`` and ``ensemble`` for DP-NSL.

    Raises:
        FileNotFoundError: a path is missing. ValueError: the thin series is not finer along the slice axis,
        or the series do not overlap.
    """
    thick, thin = read_volume(thick_path), read_volume(thin_path)
    axis, target = pair_slice_axis(thick, thin)
    kind = modality if modality in ("ct", "mr") else None
    thick_norm = IntensityNormalizer.for_volume(thick.array, kind or "auto")
    thin_norm = IntensityNormalizer.for_volume(thin.array, thick_norm.kind)
    if "dpnsl" in methods and model is None:
        model = load_dpnsl(checkpoint, thick_norm.kind, device)
    reference = thin_norm.forward(thin.array.astype(np.float32))
    if degradation is None:
        degradation = "auto" if profile is None and thickness is None else "profile"
    rows = []
    for method in methods:
        result = upsample(thick, spacing=target, method=method, model=model if method == "dpnsl" else None,
                          degradation=degradation, profile=profile, thickness=thickness, slice_axis=axis,
                          device=device, modality=thick_norm.kind, destripe=destripe, calibrate=calibrate,
                          ensemble=ensemble)
        resampled = resample_onto(result.to_volume(), thin)
        mask = np.isfinite(resampled)
        if not mask.any():
            raise ValueError(f"{thick_path} and {thin_path} do not overlap in world coordinates")
        pred = thick_norm.forward(resampled[mask])
        rows.append(PairedRow(method, psnr(pred, reference[mask]), int(mask.sum()), result.plan.scale,
                              result.plan.acquisition_text()))
    if out is not None:
        write_paired(rows, out, f"{Path(thick_path).name} -> {Path(thin_path).name}")
    return rows


def paired_markdown(rows: Sequence[PairedRow], title: str = "") -> str:
    """Markdown table of a paired check."""
    lines = [title, ""] if title else []
    lines += ["| method | scale | PSNR vs thin (dB) | overlapping voxels | acquisition assumed |",
              "|---|---|---|---|---|"]
    lines += [f"| {r.method} | ×{r.scale:g} | {r.psnr:.2f} | {r.voxels} | {r.acquisition} |" for r in rows]
    return "\n".join(lines) + "\n"


def write_paired(rows: Sequence[PairedRow], out: str | Path, title: str) -> None:
    """Write ``paired.md`` and ``paired.csv`` under ``out`` (created if needed)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / ".paired.md.tmp").write_text(paired_markdown(rows, title), encoding="utf-8")
    os.replace(out / ".paired.md.tmp", out / "paired.md")
    with open(out / ".paired.csv.tmp", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["method", "scale", "psnr", "voxels", "acquisition"])
        writer.writerows([r.method, f"{r.scale:g}", r.psnr, r.voxels, r.acquisition] for r in rows)
    os.replace(out / ".paired.csv.tmp", out / "paired.csv")
