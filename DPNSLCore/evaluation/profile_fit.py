"""Measure a scanner's slice profile from a thick/thin pair of one session (``evaluate --paired ... --fit-profile``).

A thick reconstruction is the patient averaged over a slice profile; the upsampler has to assume one (``upsample``'s
``profile`` and ``thickness``; by default a box as thick as the header says, else as the spacing). Where the
scanner also reconstructed a thin series of the same acquisition, the profile can be measured instead of assumed:
resample the thin series onto the HR grid of the thick one (world coordinates, linear), apply the very acquisition
operator A the upsampler would use (:func:`DPNSLCore.ops.operators.make_degradation`) for each candidate profile,
and compare with the thick slices. The candidate with the smallest error is what to pass for that scanner's thick
series (``--profile``/``--thickness``). The thin series has its own slice profile, so the fit is relative to it.

Measured on the real skull phantom (5 mm from 1 mm): a Gaussian of FWHM 0.85 spacings fits best (5.7 HU), the box
of the spacing, the default, gives 21.3 HU (README, "Which slice profile").
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..io.volumes import Volume, read_volume, upsampled_geometry
from ..ops.grid import PROFILES, hr_length
from ..ops.operators import make_degradation
from .paired import pair_slice_axis, resample_onto

__all__ = ["ProfileFit", "DEFAULT_CANDIDATES", "fit_slice_profile", "profile_fit_markdown", "write_profile_fit"]

_THICKNESSES = tuple(round(0.5 + 0.05 * i, 2) for i in range(21))  # 0.5 ... 1.5 spacings
DEFAULT_CANDIDATES = tuple((p, t) for p in PROFILES for t in _THICKNESSES)
_SUPPORT = 1e-9  # weights below this (of a row summing to 1) are outside a profile's support
MAX_COLUMNS = 65536  # columns compared (evenly strided): enough for a stable error, bounded memory


@dataclass(frozen=True)
class ProfileFit:
    """How well ``profile`` of ``thickness`` (in thick spacings) predicts the thick slices from the thin series:
    ``rmse`` in the series' units (HU for CT) over ``slices`` thick slices and ``columns`` columns each."""

    profile: str
    thickness: float
    rmse: float
    slices: int
    columns: int
    spacing: float  # the thick slice spacing (mm), for the thickness in mm

    @property
    def thickness_mm(self) -> float:
        return self.thickness * self.spacing


def fit_slice_profile(thick_path: str | Path, thin_path: str | Path,
                      candidates: Sequence[tuple[str, float]] = DEFAULT_CANDIDATES) -> list[ProfileFit]:
    """Each candidate slice profile's error in predicting the thick series from the thin one, best first.

    Only the thick slices whose profile (the widest candidate's) lies inside the thin series, and the columns
    the thin series covers over all of them, are compared, the same for every candidate.

    Raises:
        FileNotFoundError: a path is missing. ValueError: the thin series is not finer along the thick series'
        slice axis, an unknown profile, or no thick slice lies inside the thin series.
    """
    for profile, _ in candidates:
        if profile not in PROFILES:
            raise ValueError(f"`profile` must be one of {PROFILES}, got {profile!r}")
    thick, thin = read_volume(thick_path), read_volume(thin_path)
    axis, target = pair_slice_axis(thick, thin)
    spacing = thick.geometry.spacing_zyx[axis]
    scale = spacing / target
    n_lr = thick.array.shape[axis]
    n_hr = hr_length(n_lr, scale)
    shape = list(thick.array.shape)
    shape[axis] = n_hr
    grid = Volume(np.zeros(shape, np.float32), upsampled_geometry(thick.geometry, scale, axis))
    x = np.moveaxis(resample_onto(Volume(thin.array, thin.geometry), grid), axis, 0).reshape(n_hr, -1)
    y = np.moveaxis(thick.array, axis, 0).reshape(n_lr, -1).astype(np.float64)
    matrices = {c: make_degradation("profile", scale, n_lr, profile=c[0], thickness=c[1]).matrix
                for c in candidates}
    support = np.zeros((n_lr, n_hr), bool)
    for a in matrices.values():
        support |= a > _SUPPORT
    inside = np.isfinite(x)
    covered = np.array([inside[row].all(axis=0).any() for row in support])
    ends = support[:, 0] | support[:, -1]  # a row cut by the grid's ends is renormalised: not the real profile
    slices = np.flatnonzero(covered & ~ends)
    if slices.size == 0:
        raise ValueError(f"no slice of {thick_path} lies inside {thin_path} with its whole profile; the series must "
                         "overlap by more than one thick slice")
    rows = support[slices].any(axis=0)
    columns = inside[rows].all(axis=0)
    keep = np.flatnonzero(columns)
    columns = np.zeros_like(columns)
    columns[keep[:: max(1, -(-keep.size // MAX_COLUMNS))]] = True
    x_used = np.where(rows[:, None], x, 0.0)[:, columns].astype(np.float64)
    fits = []
    for (profile, thickness), a in matrices.items():
        residual = a[slices] @ x_used - y[slices][:, columns]
        fits.append(ProfileFit(profile, float(thickness), float(np.sqrt(np.mean(residual ** 2))), int(slices.size),
                               int(columns.sum()), float(spacing)))
    return sorted(fits, key=lambda f: f.rmse)


def profile_fit_markdown(fits: Sequence[ProfileFit], title: str = "") -> str:
    """Table of :func:`fit_slice_profile`'s result (one row per thickness, a column per profile) and the best."""
    lines = [title, ""] if title else []
    profiles = [p for p in PROFILES if any(f.profile == p for f in fits)]
    by = {(f.profile, f.thickness): f.rmse for f in fits}
    lines += ["| thickness (spacings) | " + " | ".join(f"{p} RMSE" for p in profiles) + " |",
              "|---" * (len(profiles) + 1) + "|"]
    for t in sorted({f.thickness for f in fits}):
        cells = [f"{by[(p, t)]:.2f}" if (p, t) in by else "–" for p in profiles]
        lines.append(f"| {t:g} | " + " | ".join(cells) + " |")
    best = fits[0]
    lines += ["", f"best: {best.profile} profile, thickness {best.thickness:g} spacings ({best.thickness_mm:.3g} mm), "
              f"RMSE {best.rmse:.3g} over {best.slices} thick slices x {best.columns} columns; upsample that "
              f"scanner's thick series with --profile {best.profile} --thickness {best.thickness:g}"]
    return "\n".join(lines) + "\n"


def write_profile_fit(fits: Sequence[ProfileFit], out: str | Path | None, title: str) -> str:
    """The markdown of :func:`profile_fit_markdown`, also written to ``out/profile_fit.md`` when ``out`` is given
    (atomically: a finished file or none)."""
    text = profile_fit_markdown(fits, title)
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        (out / ".profile_fit.md.tmp").write_text(text, encoding="utf-8")
        os.replace(out / ".profile_fit.md.tmp", out / "profile_fit.md")
    return text
