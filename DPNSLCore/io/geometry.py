"""Where a volume sits in the world: :class:`Geometry` (spacing, origin, direction), :class:`Volume` (voxels plus
geometry and what the header said), and the grid rules every layer uses (index to world, the slice axis, the
upsampled grid). No file I/O here (:mod:`.volumes` reads and writes).

Conventions. Arrays are numpy ``(z, y, x)`` (slices, rows, cols), as ``SimpleITK.GetArrayFromImage`` returns
them. :class:`Geometry` follows ITK/SimpleITK: ``spacing`` and ``origin`` are in ITK index order
``(i, j, k) = (x, y, z)``, ``direction`` is the 3x3 direction cosine matrix, row-major, and world coordinates
are LPS millimetres. Numpy axis ``a`` is ITK index axis ``2 - a``. ``origin`` is the world position of the
centre of voxel ``(0, 0, 0)``, so a voxel's world position is ``origin + D @ (spacing * ijk)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..ops.grid import check_scale, check_slice_axis, thickest_axis

if TYPE_CHECKING:
    import SimpleITK as sitk  # noqa: N813

__all__ = ["Geometry", "Volume", "detect_slice_axis", "index_to_world", "upsampled_geometry"]

_IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
_ORTHONORMAL_TOL = 1e-3


def _float_tuple(name: str, value: object, length: int) -> tuple[float, ...]:
    """Convert ``value`` to a tuple of ``length`` finite floats or raise a ValueError naming ``name``."""
    try:
        out = tuple(float(v) for v in value)  # type: ignore[union-attr]
    except (TypeError, ValueError) as exc:
        raise ValueError(f"`{name}` must be {length} numbers, got {value!r}") from exc
    if len(out) != length or not all(math.isfinite(v) for v in out):
        raise ValueError(f"`{name}` must be {length} finite numbers, got {value!r}")
    return out


@dataclass(frozen=True)
class Geometry:
    """Where a voxel grid sits in the world (ITK convention, LPS mm); the single source of truth for geometry.

    Args:
        spacing: voxel size in mm along ITK index axes (x, y, z); positive and finite.
        origin: world position (mm) of the centre of voxel (0, 0, 0), ITK order (x, y, z).
        direction: 3x3 direction cosines, row-major 9-tuple; column c is the world direction of index axis c.
            Must be orthonormal (to 1e-3).

    Raises:
        ValueError: on wrong lengths, non-finite values, non-positive spacing or a non-orthonormal direction.
    """

    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
    direction: tuple[float, ...] = _IDENTITY

    def __post_init__(self) -> None:
        spacing = _float_tuple("spacing", self.spacing, 3)
        if min(spacing) <= 0:
            raise ValueError(f"`spacing` must be positive (mm), got {spacing}; check the file's header")
        direction = _float_tuple("direction", self.direction, 9)
        d = np.asarray(direction).reshape(3, 3)
        error = float(np.abs(d.T @ d - np.eye(3)).max())
        if error > _ORTHONORMAL_TOL:
            raise ValueError(
                f"`direction` must be an orthonormal 3x3 matrix (row-major 9-tuple), got {direction} "
                f"(|D^T D - I| = {error:.3g}); sheared or scaled grids are not supported: resample first"
            )
        object.__setattr__(self, "spacing", spacing)
        object.__setattr__(self, "origin", _float_tuple("origin", self.origin, 3))
        object.__setattr__(self, "direction", direction)

    @property
    def direction_matrix(self) -> np.ndarray:
        """(3, 3) float64 direction cosine matrix; column c is the world direction of ITK index axis c."""
        return np.asarray(self.direction, dtype=np.float64).reshape(3, 3)

    @property
    def spacing_zyx(self) -> tuple[float, float, float]:
        """Spacing (mm) in numpy axis order (z, y, x)."""
        return (self.spacing[2], self.spacing[1], self.spacing[0])

    @classmethod
    def from_spacing_zyx(cls, spacing_zyx: Sequence[float]) -> Geometry:
        """A grid of the given spacing in numpy axis order (z, y, x), at the origin, axis-aligned: the voxel size of
        an array, when that is all that is known (e.g. a simulated stack)."""
        return cls(spacing=tuple(float(v) for v in spacing_zyx)[::-1])

    @classmethod
    def from_sitk(cls, image: sitk.Image) -> Geometry:
        """Geometry of a 3-D SimpleITK image."""
        return cls(image.GetSpacing(), image.GetOrigin(), image.GetDirection())


@dataclass
class Volume:
    """A 3-D scalar volume: voxel array plus its geometry.

    Args:
        array: (Z, Y, X) numpy array, any real dtype, every axis of length >= 1.
        geometry: where the grid sits in the world; defaults to unit spacing at the origin.
        slice_thickness: thickness (mm) of the slices along numpy axis ``thickness_axis`` as the header states it
            (DICOM SliceThickness, NRRD ``thicknesses``); None when the header has none (NIfTI, MHA).
        thickness_axis: the numpy axis ``slice_thickness`` is stated for: 0 (the file's slice axis) for DICOM;
            for NRRD the axis of the field's entry (a volume resampled so that its slices run along x or y).
        filled_slices: indices along numpy axis 0 of slices that were not acquired: a DICOM series with missing
            files is read onto its regular grid, each gap filled by linear interpolation of its acquired
            neighbours (see :func:`read_volume`); empty for complete data.
        reader_notes: what the reader chose where the file left a choice (e.g. which of a folder's DICOM series it
            read), one sentence each, for the front ends to show; empty when there was nothing to choose.
        modality: the modality the header states, lower case ("ct", "mr", ... from DICOM Modality); None when the
            format has no such field (NIfTI, NRRD, MHA).
        source_files: the DICOM files of the series read (the reader's order: that of the acquired slices along
            axis 0; empty for other formats): a DICOM output takes the patient, study and frame of reference from
            them.

    Raises:
        TypeError: if ``array`` is not a numpy array or ``geometry`` not a :class:`Geometry`.
        ValueError: if ``array`` is not 3-D or has an empty axis, or the thickness is not positive.
    """

    array: np.ndarray
    geometry: Geometry = Geometry()
    slice_thickness: float | None = None
    filled_slices: tuple[int, ...] = ()
    reader_notes: tuple[str, ...] = ()
    thickness_axis: int = 0
    modality: str | None = None
    source_files: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.array, np.ndarray):
            raise TypeError(f"`array` must be a numpy array (z, y, x), got {type(self.array).__name__}")
        if self.array.ndim != 3 or min(self.array.shape) < 1:
            raise ValueError(f"`array` must be 3-D (z, y, x) with no empty axis, got shape {self.array.shape}")
        if not isinstance(self.geometry, Geometry):
            raise TypeError(f"`geometry` must be a Geometry, got {type(self.geometry).__name__}")
        if self.slice_thickness is not None and not (math.isfinite(self.slice_thickness) and self.slice_thickness > 0):
            raise ValueError(f"`slice_thickness` must be a positive number of mm or None, got {self.slice_thickness!r}")
        object.__setattr__(self, "filled_slices", tuple(int(k) for k in self.filled_slices))
        object.__setattr__(self, "reader_notes", tuple(str(n) for n in self.reader_notes))
        object.__setattr__(self, "source_files", tuple(str(f) for f in self.source_files))
        if self.thickness_axis not in (0, 1, 2):
            raise ValueError(f"`thickness_axis` must be a numpy axis 0, 1 or 2, got {self.thickness_axis!r}")
        if any(not 0 <= k < self.array.shape[0] for k in self.filled_slices):
            raise ValueError(f"`filled_slices` must be indices along axis 0 (< {self.array.shape[0]}), got "
                             f"{self.filled_slices}")


def detect_slice_axis(geometry: Geometry) -> int:
    """Numpy axis (0=z, 1=y, 2=x) with the largest spacing: the through-plane (slice) axis.

    Spacings equal to within 1e-6 relative count as ties, and ties go to the lowest numpy axis (z first);
    the rule is :func:`DPNSLCore.ops.grid.thickest_axis`.
    """
    return thickest_axis(geometry.spacing_zyx)


def upsampled_geometry(geometry: Geometry, scale: float, slice_axis: int = 0) -> Geometry:
    """Geometry of the volume upsampled ``scale`` times along ``slice_axis``.

    HR slice k sits at LR position k / scale, so LR slice j coincides with HR index j * scale: the spacing
    along the slice axis is divided by ``scale`` while origin (first slice's world position) and direction
    are unchanged.

    Args:
        geometry: geometry of the low-resolution volume.
        scale: upsampling factor s > 1 (any real, e.g. 2.5; snapped like every scale, see ``ops.grid``).
        slice_axis: numpy axis (0=z, 1=y, 2=x) being upsampled; ITK index axis ``2 - slice_axis``.

    Raises:
        ValueError: if ``scale`` is not a finite number > 1 or ``slice_axis`` not in {0, 1, 2}.
    """
    try:
        scale = check_scale(scale)
    except TypeError as exc:
        raise ValueError(f"`scale` must be a finite number > 1, got {scale!r}; use a factor such as 2 or 2.5") from exc
    itk_axis = 2 - check_slice_axis(slice_axis)
    spacing = list(geometry.spacing)
    spacing[itk_axis] /= scale
    return Geometry(tuple(spacing), geometry.origin, geometry.direction)  # type: ignore[arg-type]


def index_to_world(geometry: Geometry, zyx_index: np.ndarray) -> np.ndarray:
    """World (LPS mm) coordinates of continuous voxel indices given in numpy order.

    Args:
        geometry: the grid's geometry.
        zyx_index: (..., 3) indices (z, y, x), fractional allowed (e.g. (N, 3) or (3,)).

    Returns:
        (..., 3) float64 world points (x, y, z order of LPS space).

    Raises:
        ValueError: if the last axis of ``zyx_index`` is not of length 3.
    """
    idx = np.asarray(zyx_index, dtype=np.float64)
    if idx.ndim == 0 or idx.shape[-1] != 3:
        raise ValueError(f"`zyx_index` must have shape (..., 3) in (z, y, x) order, got shape {idx.shape}")
    ijk = idx[..., ::-1] * np.asarray(geometry.spacing)
    return ijk @ geometry.direction_matrix.T + np.asarray(geometry.origin)
