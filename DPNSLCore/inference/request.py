"""One request object that every front end resolves the same way: slice axis, scale, acquisition and output grid.

The Python API, the command line, evaluation, the benchmark and the Slicer module all describe what the user
asked for as an :class:`UpsampleRequest` and call :meth:`UpsampleRequest.resolve` with the volume's shape and
geometry. The result, an :class:`UpsamplePlan`, is the only place where these choices are made, and it says how
each was made (``plan.notes``, ``plan.describe()``), so no front end picks an axis or an acquisition silently.

Rules:

- slice axis: the given numpy axis, or ``"auto"``: the axis with the largest spacing (ties: the lowest axis);
  an array without geometry uses axis 0.
- scale: ``scale``, or the current slice spacing divided by the target ``spacing`` (mm); snapped to an integer
  within 1e-6 relative (:func:`DPNSLCore.ops.grid.snap_scale`).
- acquisition: the given kind, or ``"auto"``: a slice profile when the model was trained on slice profiles (its
  acquisition ``profile`` or ``mix``), of the given shape (else the model's) and the given thickness (else the
  header's, else the model's, else thickness = spacing); otherwise ``decimate`` for an integer scale, else
  ``sample``.
- output grid: ``ceil((n - 1) * scale) + 1`` slices; spacing along the slice axis divided by the scale; origin
  and direction kept, so observed slice j lands on output slice ``j * scale`` at the same world position.

numpy only (no torch): the Slicer panel plans a request before PyTorch is installed.

Example:
    >>> plan = UpsampleRequest(scale=5).resolve((48, 64, 64), spacing_zyx=(5.0, 0.6, 0.6))
    >>> plan.slice_axis, plan.n_hr, plan.degradation
    (0, 236, 'decimate')
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..io.geometry import Geometry, upsampled_geometry
from ..ops.grid import (
    KINDS,
    PROFILES,
    check_scale,
    check_slice_axis,
    hr_length,
    is_integer_scale,
    scale_grid_matrix,
    thickest_axis,
)

AXIS_NAMES = ("z", "y", "x")


@dataclass(frozen=True)
class UpsampleRequest:
    """What the user asked for, before it is resolved against a volume.

    Args:
        scale: HR slices per observed slice spacing (> 1), or None when ``spacing`` is given.
        spacing: target slice spacing in mm (needs the volume's spacing), or None when ``scale`` is given.
        slice_axis: numpy axis of the slices (0, 1, 2) or "auto" (largest spacing).
        degradation: acquisition model "decimate", "sample", "profile" or "auto".
        thickness: slice thickness (box width or Gaussian FWHM) in observed slice spacings, for "profile"; None:
            the header's slice thickness divided by the spacing when the file states one, else 1 (= the spacing).
        thickness_mm: the same in mm (needs the volume's spacing); give at most one of the two.
        profile: "box" or "gaussian", for "profile" (and for "auto" when that resolves to a slice profile); None:
            the model's training profile under "auto", else box.

    Raises:
        ValueError: both or neither of scale/spacing, or an invalid choice (the message names the fix).
    """

    scale: float | None = None
    spacing: float | None = None
    slice_axis: int | str = "auto"
    degradation: str = "auto"
    thickness: float | None = None
    profile: str | None = None
    thickness_mm: float | None = None

    def __post_init__(self) -> None:
        if (self.scale is None) == (self.spacing is None):
            raise ValueError("give exactly one of `scale` (e.g. 4) or `spacing` (target slice spacing in mm)")
        if self.spacing is not None and not (_is_number(self.spacing) and self.spacing > 0):
            raise ValueError(f"`spacing` must be a positive number of mm, got {self.spacing!r}")
        if self.slice_axis is None:
            object.__setattr__(self, "slice_axis", "auto")
        if self.slice_axis != "auto":
            object.__setattr__(self, "slice_axis", check_slice_axis(self.slice_axis))
        if self.degradation is None:
            object.__setattr__(self, "degradation", "auto")
        if self.degradation not in ("auto", *KINDS):
            raise ValueError(f"`degradation` must be 'auto' or one of {KINDS}, got {self.degradation!r}")
        if self.profile is not None and self.profile not in PROFILES:
            raise ValueError(f"`profile` must be one of {PROFILES} or None (the model's, else box), got "
                             f"{self.profile!r}")
        if self.thickness is not None:
            _check_thickness(self.thickness)
        if self.thickness_mm is not None:
            if self.thickness is not None:
                raise ValueError("give at most one of `thickness` (in slice spacings) and `thickness_mm`")
            if not (_is_number(self.thickness_mm) and self.thickness_mm > 0):
                raise ValueError(f"`thickness_mm` must be a positive number of mm, got {self.thickness_mm!r}")

    def resolve(self, shape_zyx: tuple[int, int, int], *, geometry: Geometry | None = None,
                spacing_zyx: tuple[float, float, float] | None = None,
                slice_thickness: float | None = None, thickness_axis: int = 0,
                trained_acquisition: dict | None = None) -> UpsamplePlan:
        """Resolve the request for a volume of ``shape_zyx`` with ``geometry`` (or just its ``spacing_zyx``, mm).

        ``slice_thickness``: the header's slice thickness (mm) along numpy axis ``thickness_axis``
        (``Volume.slice_thickness``, ``Volume.thickness_axis``); used when that is the slice axis.
        ``trained_acquisition``: the model's ``config.acquisition``; with ``degradation="auto"`` a recorded slice
        profile is used (its thickness only when neither the request nor the header gives one).

        Raises:
            ValueError: the scale, axis or slice count do not fit this volume (the message says why and how).
        """
        if len(shape_zyx) != 3:
            raise ValueError(f"the volume must be 3-D (slices, rows, cols), got shape {tuple(shape_zyx)}")
        if geometry is not None:
            spacing_zyx = geometry.spacing_zyx
        spacing = None if spacing_zyx is None else tuple(float(v) for v in spacing_zyx)
        notes: list[str] = []
        axis = self._axis(spacing, notes)
        axis_reason = notes[0] if notes else f"slice axis {axis} ({AXIS_NAMES[axis]}): given"
        current = None if spacing is None else spacing[axis]
        if self.scale is not None:
            raw = self.scale
        elif current is None:
            raise ValueError("`spacing` needs the input's geometry: pass a Volume, or give `scale` instead")
        else:
            raw = current / float(self.spacing)
        kind, profile, fallback = self.degradation, self.profile or "box", 1.0
        trained = trained_acquisition or {}
        if kind == "auto" and trained.get("kind") in ("profile", "mix"):
            kind, fallback = "profile", default_profile_thickness(trained)
            profile = self.profile or trained.get("profile", "box")
        elif kind == "auto":
            kind = "decimate" if _is_number(raw) and is_integer_scale(float(raw)) else "sample"
            notes.append(f"acquisition {kind} (auto: {'integer' if kind == 'decimate' else 'non-integer'} scale)")
        if _is_number(raw) and float(raw) <= 1.0:  # say what the current spacing is, when known
            if self.scale is None:  # a target spacing: name it, not the scale it implies
                raise ValueError(f"`spacing` must be below the current {current:.4g} mm along the slice axis "
                                 f"(DPNSL makes slices thinner), got {float(self.spacing):g} mm (scale "
                                 f"{float(raw):.4g})")
            below = "" if current is None else f", or a target spacing below the current {current:.4g} mm"
            raise ValueError(f"`scale` must be > 1, got {float(raw):g}; use a factor such as 2.5{below}")
        scale = check_scale(raw, kind)
        n_lr = int(shape_zyx[axis])
        if n_lr < 2:
            raise ValueError(f"the slice axis ({AXIS_NAMES[axis]}) has {n_lr} slice; at least 2 are needed")
        n_hr = hr_length(n_lr, scale)
        if slice_thickness is not None and thickness_axis != axis:
            notes.append(f"the header's slice thickness {slice_thickness:.4g} mm is stated for axis {thickness_axis} "
                         f"({AXIS_NAMES[thickness_axis]}), not the slice axis: not used")
            slice_thickness = None
        thickness = self._thickness(current, slice_thickness, n_lr, kind, notes, fallback)
        if self.degradation == "auto" and kind == "profile":
            shape = "the profile given" if self.profile is not None else "the model's profile"
            notes.append(f"acquisition {profile} profile, thickness {thickness:g} spacings (auto: the model was "
                         f"trained for slice profiles; {shape})")
        out_shape = tuple(n_hr if a == axis else int(n) for a, n in enumerate(shape_zyx))
        return UpsamplePlan(
            slice_axis=axis, scale=scale, degradation=kind, profile=profile, thickness=thickness,
            input_shape=tuple(int(n) for n in shape_zyx), output_shape=out_shape,  # type: ignore[arg-type]
            input_spacing=current, geometry=None if geometry is None else upsampled_geometry(geometry, scale, axis),
            notes=tuple(notes), axis_reason=axis_reason,
        )

    def _thickness(self, current: float | None, header: float | None, n_lr: int, kind: str,
                   notes: list[str], fallback: float = 1.0) -> float:
        """The profile thickness in spacings: given, else the header's thickness (of the slice axis) over the
        spacing, else ``fallback`` (1, or the model's training thickness)."""
        if header is not None and current is not None:
            notes.append(f"{n_lr} slices, {header:.4g} mm thick every {current:.4g} mm (from the header)")
        if self.thickness is not None:
            return float(self.thickness)
        if self.thickness_mm is not None:
            if current is None:
                raise ValueError("`thickness_mm` needs the input's geometry: pass a Volume, or give `thickness` in "
                                 "slice spacings")
            thickness = _check_thickness(float(self.thickness_mm) / current)
            if kind == "profile":
                notes.append(f"profile thickness {self.thickness_mm:.4g} mm = {thickness:.4g} spacings (given)")
            return thickness
        if header is not None and current is not None:
            thickness = _check_thickness(header / current)
            if kind == "profile":
                notes.append(f"profile thickness {thickness:.4g} spacings (the header's {header:.4g} mm)")
            return thickness
        if kind == "profile" and fallback == 1.0:
            notes.append("profile thickness 1 spacing (no slice thickness in the header: thickness = spacing)")
        return _check_thickness(fallback)

    def _axis(self, spacing: tuple[float, ...] | None, notes: list[str]) -> int:
        if self.slice_axis != "auto":
            return int(self.slice_axis)
        if spacing is None:
            notes.append("slice axis 0 (z): no geometry given, pass slice_axis to choose another")
            return 0
        axis = thickest_axis(spacing)
        if max(spacing) <= min(spacing) * (1 + 1e-6):
            notes.append(f"slice axis {axis} ({AXIS_NAMES[axis]}): isotropic voxels, pass slice_axis to choose")
        else:
            shown = " x ".join(f"{v:.4g}" for v in spacing)
            notes.append(f"slice axis {axis} ({AXIS_NAMES[axis]}): the largest spacing ({shown} mm, z y x)")
        return axis


@dataclass(frozen=True)
class UpsamplePlan:
    """A resolved request: everything needed to run it and to place its output in the world.

    Attributes:
        slice_axis: numpy axis of the slices. scale: exact scale (snapped). degradation / profile / thickness:
        the acquisition model A (thickness in observed spacings). input_shape / output_shape: (z, y, x).
        input_spacing: observed slice spacing in mm (None without geometry). geometry: the output's geometry
        (None without input geometry). notes: how the axis and acquisition were chosen; axis_reason: the axis part.
    """

    slice_axis: int
    scale: float
    degradation: str
    profile: str
    thickness: float
    input_shape: tuple[int, int, int]
    output_shape: tuple[int, int, int]
    input_spacing: float | None = None
    geometry: Geometry | None = None
    notes: tuple[str, ...] = field(default=())
    axis_reason: str = ""  # how the slice axis was chosen (also the first note when it was detected)

    @property
    def n_lr(self) -> int:
        """Observed slices."""
        return self.input_shape[self.slice_axis]

    @property
    def n_hr(self) -> int:
        """Output slices."""
        return self.output_shape[self.slice_axis]

    @property
    def output_spacing(self) -> float | None:
        """Output slice spacing in mm (None without geometry)."""
        return None if self.input_spacing is None else self.input_spacing / self.scale

    def acquisition_text(self) -> str:
        """The acquisition model in words: 'decimate', 'box profile, thickness 1.5 spacings', or with the
        spacing known 'box profile, 7.5 mm thick every 5 mm'."""
        if self.degradation != "profile":
            return self.degradation
        if self.input_spacing is None:
            return f"{self.profile} profile, thickness {self.thickness:g} spacings"
        return (f"{self.profile} profile, {self.thickness * self.input_spacing:.4g} mm thick every "
                f"{self.input_spacing:.4g} mm")

    def describe(self) -> str:
        """One line: 'axis 0 (z): 48 slices x 5 mm -> 236 slices x 1 mm (scale 5), decimate'."""
        mm = "" if self.input_spacing is None else f" x {self.input_spacing:.4g} mm"
        out_mm = "" if self.output_spacing is None else f" x {self.output_spacing:.4g} mm"
        return (f"axis {self.slice_axis} ({AXIS_NAMES[self.slice_axis]}): {self.n_lr} slices{mm} -> "
                f"{self.n_hr} slices{out_mm} (scale {self.scale:g}), {self.acquisition_text()}")

    def output_matrix(self, index_to_world: np.ndarray) -> np.ndarray:
        """Index-to-world (e.g. Slicer's IJK-to-RAS, (4, 4)) of the output grid from the input's matrix."""
        return scale_grid_matrix(index_to_world, self.slice_axis, self.scale)

    def degradation_operator(self):
        """The acquisition operator A of this plan (a :class:`DPNSLCore.ops.operators.Degradation`; imports torch)."""
        from ..ops.operators import make_degradation

        return make_degradation(self.degradation, self.scale, self.n_lr, profile=self.profile,
                                thickness=self.thickness)


def default_profile_thickness(trained: dict) -> float:
    """The profile thickness (spacings) an acquisition record implies when nothing else gives one: its recorded
    value, or for a range 1 (thickness = spacing) when the range holds it, else the range's middle. Used for a
    model's default in upsample and for the thickness a mixed run validates with."""
    thickness = trained.get("thickness", 1.0)
    if isinstance(thickness, (list, tuple)):
        low, high = float(thickness[0]), float(thickness[-1])
        return 1.0 if low <= 1.0 <= high else (low + high) / 2
    return float(thickness)


def _check_thickness(value: object) -> float:
    if not (_is_number(value) and 0.0 < float(value) <= 10.0):
        raise ValueError(f"`thickness` must be in (0, 10] observed slice spacings, got {value!r}")
    return float(value)


def _is_number(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float, np.integer, np.floating)) \
        and math.isfinite(float(value))
