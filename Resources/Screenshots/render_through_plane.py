"""Render through-plane (coronal) views of a real thick scan upsampled by several methods, at two CT windows.

This is where slice super-resolution is judged: stripes at the acquired slices, ringing below air and kinks show
in the coronal and sagittal planes, at a soft-tissue and an air (lung) window. Each row is a method, the columns
are the windows; pixels are square in mm (the through-plane axis is resampled for display only).

    python Resources/Screenshots/render_through_plane.py ../shared/data/ct_lung1_5mm.nii.gz --scale 5 \\
        --models "v3 without destripe=ct:no-destripe,v3=ct" -o Resources/Screenshots/lung1_coronal_x5.png

A MODEL ending in ``:no-destripe`` runs with ``destripe=False`` (upsample's default is on), one ending in
``:no-calibrate`` with ``calibrate=False`` (the detail as the network made it), one ending in ``:sigma=S`` with
``DestripeOptions(sigma=S)`` (the in-plane reach of the destripe estimate, in voxels), one ending in ``:box=T`` or
``:gaussian=T`` assumes that slice profile of thickness T spacings, one ending in ``:ensemble=N`` runs the in-plane
self-ensemble of N passes, one ending in ``:minmax`` gives the network the MR input by min/max (the rule before
``IntensityNormalizer.for_mr_input``). ``--reference THIN`` adds a first row: a thin series of the same session (the
real phantom pair), resampled onto the output grid. An MR scan is shown at two windows of its own: the whole tissue
range (0 to the 99.9th percentile) and its brightest part (the 98th to the 99.99th percentile: lesions, vessels).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import DPNSLCore  # noqa: E402
from DPNSLCore.evaluation.banding import banding_or_none  # noqa: E402
from DPNSLCore.evaluation.paired import resample_onto  # noqa: E402
from DPNSLCore.io.intensity import IntensityNormalizer, guess_modality  # noqa: E402
from DPNSLCore.io.volumes import Geometry, index_to_world  # noqa: E402
from DPNSLCore.ops.destripe import DestripeOptions  # noqa: E402

WINDOWS = {"soft tissue (W400 L40)": (40.0, 400.0), "lung (W1500 L-600)": (-600.0, 1500.0)}


def _mr_windows(array: np.ndarray) -> dict[str, tuple[float, float]]:
    """(level, width) of an MR scan's tissue range and of its brightest part, from its percentiles."""
    p98, p999, p9999 = (float(v) for v in np.percentile(array, [98, 99.9, 99.99]))
    return {"tissue (0 to p99.9)": (p999 / 2, p999), "bright (p98 to p99.99)": ((p98 + p9999) / 2, p9999 - p98)}


def _coronal(volume: np.ndarray, row: int, dz: float, dx: float) -> np.ndarray:
    """(z, x) plane at ``row``, resampled along z by nearest neighbour so that pixels are square."""
    plane = volume[:, row, :].astype(np.float32)
    repeat = max(1, round(dz / dx))
    return np.repeat(plane, repeat, axis=0)


def _options(flag: str, volume: DPNSLCore.Volume) -> dict:
    """upsample's options for a MODEL's flag: "" (defaults), "no-destripe", "sigma=S", "no-calibrate", "box=T",
    "gaussian=T", "ensemble=N" or "minmax"."""
    if flag == "minmax":
        return {"intensity": IntensityNormalizer.for_mr(volume.array)}
    if flag == "":
        return {}
    if flag == "no-destripe":
        return {"destripe": False}
    if flag == "no-calibrate":
        return {"calibrate": False}
    if flag.startswith("sigma="):
        return {"destripe": DestripeOptions(sigma=float(flag.removeprefix("sigma=")))}
    if flag.startswith("ensemble="):
        return {"ensemble": int(flag.removeprefix("ensemble="))}
    for profile in ("box", "gaussian"):
        if flag.startswith(f"{profile}="):
            return {"degradation": "profile", "profile": profile, "thickness": float(flag.removeprefix(f"{profile}="))}
    raise SystemExit(f"error: unknown model flag {flag!r}: use :no-destripe, :no-calibrate, :sigma=S, :box=T, "
                     ":gaussian=T, :ensemble=N or :minmax")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("volume")
    p.add_argument("--scale", type=float, required=True)
    p.add_argument("--models", default="ct", help="LABEL=MODEL,... (MODEL: ct, mr or a checkpoint path)")
    p.add_argument("--crop", type=int, default=256, help="centre crop in-plane (voxels)")
    p.add_argument("--row", type=float, default=0.5, help="coronal row as a fraction of the crop")
    p.add_argument("--reference", help="a thin series of the same session, shown first (resampled onto the output "
                   "grid in world coordinates; black where it does not reach)")
    p.add_argument("-o", "--output", required=True)
    args = p.parse_args(argv)
    vol = DPNSLCore.read_volume(args.volume)
    _, h, w = vol.array.shape
    c = args.crop
    y0, x0 = (h - c) // 2, (w - c) // 2
    crop = np.ascontiguousarray(vol.array[:, y0:y0 + c, x0:x0 + c])
    origin = index_to_world(vol.geometry, np.array([0.0, y0, x0]))  # the crop keeps its place in the world
    geometry = Geometry(vol.geometry.spacing, tuple(float(v) for v in origin), vol.geometry.direction)
    cropped = DPNSLCore.Volume(crop, geometry, vol.slice_thickness, thickness_axis=vol.thickness_axis)
    rows = [("cubic", DPNSLCore.upsample(cropped, args.scale, method="cubic"))]
    if args.reference:
        thin = DPNSLCore.read_volume(args.reference)
        on_grid = resample_onto(thin, rows[0][1].to_volume())
        rows.insert(0, (f"thin reference ({Path(args.reference).name})",
                        SimpleNamespace(volume=np.nan_to_num(on_grid, nan=-1024.0))))
    for item in args.models.split(","):
        label, model = item.split("=", 1) if "=" in item else (item, item)
        model, _, flag = model.partition(":")
        rows.append((f"DP-NSL {label}", DPNSLCore.upsample(cropped, args.scale, model=model, device="cpu",
                                                           **_options(flag, cropped))))
    dz = vol.geometry.spacing_zyx[0] / args.scale
    dx = vol.geometry.spacing_zyx[2]
    row = int(args.row * c)
    lo, hi = float(crop.min()), float(crop.max())
    windows = WINDOWS if guess_modality(crop) == "ct" else _mr_windows(crop)
    fig, axes = plt.subplots(len(rows), len(windows), figsize=(4.2 * len(windows), 2.6 * len(rows)), squeeze=False)
    for i, (label, res) in enumerate(rows):
        plane = _coronal(res.volume, row, dz, dx)
        p_, t_ = banding_or_none(np.clip((res.volume.astype(np.float32) - lo) / (hi - lo), 0, 1), args.scale)
        for j, (name, (level, width)) in enumerate(windows.items()):
            ax = axes[i][j]
            ax.imshow(plane, cmap="gray", vmin=level - width / 2, vmax=level + width / 2, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(f"{label}\nperiodicity {p_:.2f}, texture {t_:.2f}", fontsize=8)
            if i == 0:
                ax.set_title(name, fontsize=9)
    fig.suptitle(f"{Path(args.volume).name}, x{args.scale:g}, coronal row {row} of the centre {c}x{c}", fontsize=9)
    fig.tight_layout()
    fig.savefig(args.output, dpi=110)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
