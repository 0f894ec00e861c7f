"""Geometry-safe volume I/O: read/write 3-D scalar volumes without losing where they sit in the world.

Conventions. Arrays are numpy ``(z, y, x)`` (slices, rows, cols), as ``SimpleITK.GetArrayFromImage`` returns
them. :class:`Geometry` follows ITK/SimpleITK: ``spacing`` and ``origin`` are in ITK index order
``(i, j, k) = (x, y, z)``, ``direction`` is the 3x3 direction cosine matrix, row-major, and world coordinates
are LPS millimetres. Numpy axis ``a`` is ITK index axis ``2 - a``. ``origin`` is the world position of the
centre of voxel ``(0, 0, 0)``, so a voxel's world position is ``origin + D @ (spacing * ijk)``.

Example:
    >>> vol = read_volume("scan.nii.gz")                      # doctest: +SKIP
    >>> axis = detect_slice_axis(vol.geometry)                 # doctest: +SKIP
    >>> hr_geometry = upsampled_geometry(vol.geometry, 2.0, axis)   # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import math
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk  # noqa: N813

from .geometry import Geometry, Volume, detect_slice_axis, index_to_world, upsampled_geometry
from .nifti import count_non_finite, gzip_file, sform

__all__ = [
    "Geometry",
    "Volume",
    "WRITE_SUFFIXES",
    "detect_slice_axis",
    "index_to_world",
    "read_volume",
    "upsampled_geometry",
    "volume_from_sitk",
    "volume_to_sitk",
    "write_volume",
]

WRITE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".mha")
#: single-file volume formats :func:`read_volume` reads (besides a DICOM series folder)
READ_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")
def volume_to_sitk(volume: Volume) -> sitk.Image:
    """Convert a :class:`Volume` to a SimpleITK image with the same voxels and geometry.

    bool arrays become uint8 and float16 becomes float32 (SimpleITK has no such pixel types).
    """
    array = volume.array
    if array.dtype == np.bool_:
        array = array.astype(np.uint8)
    elif array.dtype == np.float16:
        array = array.astype(np.float32)
    image = sitk.GetImageFromArray(array, isVector=False)
    image.SetSpacing(volume.geometry.spacing)
    image.SetOrigin(volume.geometry.origin)
    image.SetDirection(volume.geometry.direction)
    return image


def volume_from_sitk(image: sitk.Image, source: str = "image") -> Volume:
    """Convert a 3-D scalar SimpleITK image to a :class:`Volume` (array copied, (z, y, x)).

    Args:
        image: the SimpleITK image.
        source: how to name the image in error messages (e.g. its path).

    Raises:
        ValueError: if the image is not 3-D or has more than one component per voxel.
    """
    dim, size = image.GetDimension(), image.GetSize()
    if dim == 2:
        raise ValueError(
            f"{source} is a 2-D image (size {size}); DPNSL needs a 3-D volume: give the whole "
            "DICOM series folder or a 3-D NIfTI/NRRD/MHA file"
        )
    if dim != 3:
        raise ValueError(
            f"{source} is a {dim}-D image (size {size}); DPNSL needs a 3-D volume: extract one 3-D "
            "frame first (e.g. SimpleITK image[:, :, :, t] or Slicer's Sequences module)"
        )
    n_comp = image.GetNumberOfComponentsPerPixel()
    if n_comp != 1:
        raise ValueError(
            f"{source} has {n_comp} components per voxel (vector/RGB image); DPNSL needs a scalar "
            "volume: convert it to a single channel (e.g. SimpleITK VectorIndexSelectionCast) first"
        )
    return Volume(sitk.GetArrayFromImage(image), Geometry.from_sitk(image))


def _header_values(file: str, *tags: str) -> tuple[str | None, ...]:
    """Top-level DICOM tags ("gggg|eeee") of ``file`` as text (stripped), None for each one the file does not have."""
    reader = sitk.ImageFileReader()
    reader.SetFileName(file)
    reader.LoadPrivateTagsOff()
    reader.ReadImageInformation()
    return tuple(reader.GetMetaData(tag).strip() if reader.HasMetaDataKey(tag) else None for tag in tags)


def _describe_series(uid: str, files: Sequence[str]) -> str:
    (description,) = _header_values(files[0], "0008|103e")  # SeriesDescription
    return f"{uid}{f' ({description!r})' if description else ''}, {len(files)} file(s)"


def _choose_series(folder: Path, series: str | None) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The files of the series to read from ``folder`` and the notes that say which one and why.

    With ``series`` None the series with the most files is read and, when the folder holds others, a note names it
    and them; two or more series with that many files are refused (which one is meant cannot be guessed: two
    reconstructions of one scan have as many slices).
    """
    ids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder))
    if not ids:
        raise ValueError(
            f"no DICOM series found in folder {str(folder)!r}; give the folder that directly contains the "
            "DICOM files of one series, or a NIfTI (.nii/.nii.gz), NRRD or MHA/MHD file"
        )
    found = {uid: tuple(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), uid)) for uid in ids}
    listing = "; ".join(_describe_series(uid, files) for uid, files in found.items())
    if series is not None:
        if series not in found:
            raise ValueError(f"the folder {str(folder)!r} holds no DICOM series {series!r}; it holds: {listing}")
        return found[series], ()
    if len(found) == 1:
        return next(iter(found.values())), ()
    ranked = sorted(found, key=lambda uid: len(found[uid]), reverse=True)
    if len(found[ranked[0]]) == len(found[ranked[1]]):
        raise ValueError(
            f"the folder {str(folder)!r} holds {len(found)} DICOM series and more than one has the most files, so "
            f"which one to read cannot be guessed: {listing}; choose one by its SeriesInstanceUID (--series UID, "
            "read_volume(folder, series=UID)) or give a folder that holds only that series")
    others = "; ".join(_describe_series(uid, found[uid]) for uid in ranked[1:])
    note = (f"DICOM: read series {_describe_series(ranked[0], found[ranked[0]])}, the one with the most files of the "
            f"{len(found)} in {str(folder)!r}; the others: {others}; choose another with --series UID")
    return found[ranked[0]], (note,)


def _read_dicom_series(folder: Path, series: str | None = None) -> Volume:
    """Read one DICOM series of ``folder`` (not recursive) onto its regular slice grid (see :func:`read_volume`),
    with the modality its header states and its files in slice order."""
    files, notes = _choose_series(folder, series)
    volume = _read_dicom_grid(folder, files, notes)
    (modality,) = _header_values(files[0], "0008|0060")  # Modality
    return dataclasses.replace(volume, modality=modality.lower() if modality else None, source_files=files)


def _read_dicom_grid(folder: Path, files: tuple[str, ...], notes: tuple[str, ...]) -> Volume:
    """The voxels and grid of one series' ``files`` (see :func:`_read_dicom_series`)."""
    (frames,) = _header_values(files[0], "0028|0008")  # NumberOfFrames
    if len(files) == 1:
        # One file: a multi-frame (enhanced) image, which the series reader would return as a 4-D image of one frame.
        # Its per-frame positions live in functional-group sequences that SimpleITK does not expose, so GDCM's grid
        # is taken as it is (no gap or tilt check as for a series of files).
        image = sitk.ReadImage(files[0])
        if image.GetDimension() == 2 or image.GetDepth() == 1:  # GDCM reads one single-frame file as 3-D
            raise ValueError(f"the DICOM series in {str(folder)!r} is one slice ({Path(files[0]).name}); DPNSL needs "
                             "a stack: put every file of the series in that folder")
        volume = volume_from_sitk(image, source=repr(files[0]))
        return Volume(volume.array, volume.geometry, _dicom_thickness(files[0]), reader_notes=notes)
    if frames is not None and frames.isdigit() and int(frames) > 1:
        raise ValueError(
            f"the DICOM series in {str(folder)!r} is split over {len(files)} multi-frame files ({frames} frames in "
            f"{Path(files[0]).name}); DPNSL reads one multi-frame file or a series of single-frame files: give one "
            "of the files itself, or convert the series to NIfTI first (dcm2niix)")
    lattice = slice_lattice(files)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    volume = volume_from_sitk(reader.Execute(), source=repr(str(folder)))
    thickness = _dicom_thickness(files[0])
    if lattice is None or lattice.index[-1] == len(files) - 1:
        return Volume(volume.array, volume.geometry, thickness, reader_notes=notes)
    return _onto_lattice(volume, lattice, thickness, notes)


_GAP_TOLERANCE = 0.01  # relative deviation of a slice step from the median step that counts as irregular
_LATERAL_TOLERANCE_MM = 0.05  # slice positions off the line along the normal by more: a tilted (sheared) series
_NORMAL_TOLERANCE = 1e-3  # difference of two slices' unit normals that counts as another orientation


def _slice_position(path: str) -> tuple[np.ndarray, np.ndarray] | None:
    """(ImagePositionPatient, slice normal) of one DICOM file from its header, or None when a tag is missing."""
    position, orientation = _header_values(path, "0020|0032", "0020|0037")
    if position is None or orientation is None:
        return None
    row, col = np.split(np.array([float(v) for v in orientation.split("\\")]), 2)
    return np.array([float(v) for v in position.split("\\")]), np.cross(row, col)


@dataclass(frozen=True)
class SliceLattice:
    """Where the files of a DICOM series sit on its regular slice grid.

    Attributes:
        index: (n_files,) grid index of each file (0 for the first; consecutive when no slice is missing).
        step: the grid spacing in mm (the median distance between neighbouring files).
        positions: (n_files,) position of each file along the slice normal, in mm.
    """

    index: np.ndarray
    step: float
    positions: np.ndarray


def slice_lattice(files: list[str] | tuple[str, ...]) -> SliceLattice | None:
    """The regular grid of a DICOM series from ImagePositionPatient of every file, or None without positions.

    SimpleITK reports one spacing for the series (from the first slices), so a gap would silently put every
    slice after it at a wrong world position. Steps that are whole multiples of the median step are missing
    slices (handled: :func:`read_volume` reads the series onto the grid); any other step is refused.

    Raises:
        ValueError: variable spacing or overlapping slices, naming the files on either side of the irregular
            step, the step and the median spacing.
    """
    if len(files) < 3:
        return None
    info = [_slice_position(f) for f in files]
    if any(i is None for i in info):
        return None  # no positions in the headers: nothing to check against
    normal = info[0][1]
    _check_one_orientation(files, [n for _, n in info])
    along = np.array([float(pos @ normal) for pos, _ in info])
    _check_not_tilted(files, np.array([pos for pos, _ in info]), along, normal)
    steps = np.diff(along)
    median = float(np.median(steps))
    if median == 0 or not np.all(np.isfinite(steps)):
        raise ValueError(f"the DICOM series in {str(Path(files[0]).parent)!r} has slices at one position; it is "
                         "not a 3-D stack (several series or repeated acquisitions in one folder?)")
    multiples = steps / median
    whole = np.round(multiples)
    bad = np.flatnonzero((whole < 1) | (np.abs(multiples - whole) > _GAP_TOLERANCE))
    if bad.size:
        k = int(bad[0])
        raise ValueError(
            f"the DICOM series is not evenly spaced (irregular or overlapping slices): {Path(files[k]).name} and "
            f"{Path(files[k + 1]).name} are {abs(steps[k]):.4g} mm apart, the median spacing is {abs(median):.4g} "
            f"mm ({bad.size} irregular step(s)), and that is not a whole number of spacings (a missing slice "
            "would be): DPNSL would place the slices after it at wrong positions; export the complete series, "
            "or resample it to even spacing first"
        )
    index = np.concatenate([[0], np.cumsum(whole.astype(np.int64))])
    return SliceLattice(index, abs(median), along)


def _check_one_orientation(files: list[str] | tuple[str, ...], normals: list[np.ndarray]) -> None:
    """Every slice of a stack must share one ImageOrientationPatient (a localizer or a second orientation in the
    same series would be stacked as if parallel)."""
    for k, other in enumerate(normals):
        if np.linalg.norm(other - normals[0]) > _NORMAL_TOLERANCE:
            raise ValueError(
                f"the DICOM series in {str(Path(files[0]).parent)!r} mixes slice orientations: "
                f"{Path(files[k]).name} is not parallel to {Path(files[0]).name} (ImageOrientationPatient); export "
                "the slices of one orientation as their own series")


def _check_not_tilted(files: list[str] | tuple[str, ...], positions: np.ndarray, along: np.ndarray,
                      normal: np.ndarray) -> None:
    """The slices must step along their normal. A gantry-tilted CT steps at an angle to it: its voxels lie on a
    sheared grid, which a volume's direction matrix cannot describe, so every slice after the first would be
    placed off its true position (and the reported spacing would be the oblique distance)."""
    offsets = positions - positions[0]
    lateral = offsets - np.outer(along - along[0], normal)  # each slice's offset across its normal
    drift = np.linalg.norm(lateral, axis=1)
    worst = int(np.argmax(drift))
    if drift[worst] <= _LATERAL_TOLERANCE_MM:
        return
    angle = float(np.degrees(np.arctan2(drift[worst], abs(along[worst] - along[0]))))
    raise ValueError(
        f"the DICOM series in {str(Path(files[0]).parent)!r} is tilted: its slices step {angle:.3g} degrees off "
        f"their normal (gantry tilt), so a regular grid would place {Path(files[worst]).name} {drift[worst]:.3g} mm "
        "from its true position; DPNSL upsamples along the slice normal and does not resample the slices: correct "
        "the tilt first (dcm2niix resamples tilted series), or load the series in 3D Slicer's DICOM module with "
        "'Acquisition geometry regularization' on (Application settings, DICOM), which places it through a "
        "transform that the DPNSL module's output follows")


def _onto_lattice(volume: Volume, lattice: SliceLattice, thickness: float | None, notes: tuple[str, ...]) -> Volume:
    """Place the acquired slices of ``volume`` on their grid rows and fill the missing rows linearly."""
    n = int(lattice.index[-1]) + 1
    acquired = lattice.index
    full = np.empty((n, *volume.array.shape[1:]), dtype=volume.array.dtype)
    full[acquired] = volume.array
    missing = np.setdiff1d(np.arange(n), acquired)
    after = np.searchsorted(acquired, missing)  # the acquired neighbours on either side of each gap
    lo, hi = acquired[after - 1], acquired[after]
    weight = ((missing - lo) / (hi - lo)).reshape(-1, 1, 1)
    below, above = full[lo].astype(np.float64), full[hi].astype(np.float64)
    filled = below + weight * (above - below)
    if np.issubdtype(full.dtype, np.integer):
        filled = np.round(filled)
    full[missing] = filled.astype(full.dtype)
    g = volume.geometry
    geometry = Geometry((g.spacing[0], g.spacing[1], lattice.step), g.origin, g.direction)
    return Volume(full, geometry, thickness, tuple(int(k) for k in missing), notes)


def read_volume(path: str | Path, series: str | None = None) -> Volume:
    """Read a 3-D scalar volume with its geometry.

    Args:
        path: a NIfTI (.nii, .nii.gz), NRRD (.nrrd, .nhdr), MetaImage (.mha, .mhd) file, or a folder holding a
            DICOM series: a series of single-frame files or one multi-frame (enhanced) file. When the folder holds
            several series, the one with the most files is read and ``Volume.reader_notes`` names it and the
            others; a tie for the most files is refused.
        series: the SeriesInstanceUID of the series to read from a DICOM folder (None: as above).

    A DICOM series is placed by ImagePositionPatient of every file, not by the spacing of its first slices: a
    series with missing files (a step that is a whole number of spacings) is read onto its regular grid, each
    acquired slice in its own row at its true world position, the missing rows filled by linear interpolation
    of their acquired neighbours and listed in ``Volume.filled_slices``; any other irregular step is refused.

    Returns:
        The :class:`Volume`, array (Z, Y, X) in the file's pixel type (DICOM rescale slope/intercept applied).

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: if the file cannot be read as an image, the folder holds no DICOM series (or not ``series``,
            or several equally large ones), ``series`` is given for a file, or the image is not a 3-D scalar
            volume.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"`path` does not exist: {str(path)!r}; check the spelling and the folder")
    if series is not None and not path.is_dir():
        raise ValueError(f"`series` chooses a series of a DICOM folder, but {str(path)!r} is a file; give the folder, "
                         "or leave `series` out")
    try:
        if path.is_dir():
            return _read_dicom_series(path, series)
        image = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise ValueError(
            f"could not read {str(path)!r} as an image ({reason}); supported: NIfTI (.nii/.nii.gz), NRRD, "
            "MHA/MHD files or a DICOM series folder"
        ) from exc
    volume = volume_from_sitk(image, source=repr(str(path)))
    if path.name.lower().endswith((".nii", ".nii.gz")):
        if bad := count_non_finite(path):
            raise ValueError(f"{str(path)!r} holds {bad} NaN/Inf voxel(s), which the NIfTI reader would turn into 0 "
                             "(a valid intensity) without a word; fill or mask them first (e.g. set them to the "
                             "background value), then give the volume again")
        _check_sform_was_used(path, volume)
    stated = _nrrd_thickness(path, image.GetSpacing())
    return volume if stated is None else Volume(volume.array, volume.geometry, stated[0], thickness_axis=stated[1])


_SFORM_TOLERANCE_MM = 0.1  # corners of the grid placed further apart by the sform and by the reader: not the same grid


def _check_sform_was_used(path: Path, volume: Volume) -> None:
    """Refuse a NIfTI file whose sform the reader did not follow.

    ITK reads the sform when it is a rotation with the pixdim spacings, else the qform (InsightSoftwareConsortium
    itkNiftiImageIO: "unexpected scales in sform"); FSL and nibabel read the sform. When the two grids differ the
    output, written with the reader's grid, would not overlay the input in those tools, and the slice spacing that
    sets the scale may be the other one.
    """
    affine = sform(path)
    if affine is None:
        return
    unit = np.array([[k, j, i] for k in (0, 1) for j in (0, 1) for i in (0, 1)])
    corners = unit * (np.array(volume.array.shape) - 1)  # (z, y, x) indices of the grid's 8 corners
    read = index_to_world(volume.geometry, corners) * np.array([-1.0, -1.0, 1.0])  # LPS -> the sform's RAS
    stated = corners[:, ::-1] @ affine[:, :3].T + affine[:, 3]  # the sform takes (i, j, k) = (x, y, z) indices
    apart = float(np.linalg.norm(read - stated, axis=1).max())
    if apart <= _SFORM_TOLERANCE_MM:
        return
    sform_spacing = np.linalg.norm(affine[:, :3], axis=0)
    raise ValueError(
        f"{str(path)!r} states two different grids: its sform (what FSL and nibabel use) is not a rotation with the "
        f"voxel size of its header, so the NIfTI reader (ITK, as 3D Slicer) used the qform instead; the two place "
        f"the grid's corners up to {apart:.3g} mm apart (spacing by the sform {_mm(sform_spacing)} mm, by the qform "
        f"{_mm(volume.geometry.spacing)} mm). The output would carry the qform's grid and not overlay this input in "
        "the tools that use the sform. Make the header consistent first: if the qform is right, `fslorient "
        "-copyqform2sform FILE`; if the sform is, resample the image onto it (e.g. FSL flirt -applyxfm, ANTs), "
        "then give the volume again")


def _mm(values: Sequence[float]) -> str:
    return " x ".join(f"{v:.4g}" for v in values)


def _positive(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) and value > 0 else None


def _dicom_thickness(file: str) -> float | None:
    """SliceThickness (0018,0050) of one DICOM file, or None."""
    (text,) = _header_values(file, "0018|0050")
    return _positive(text) if text is not None else None


def _nrrd_thickness(path: Path, spacing_xyz: Sequence[float]) -> tuple[float, int] | None:
    """(thickness mm, numpy axis) from the ``thicknesses`` field of a NRRD header (SimpleITK drops it), or None.

    The field has one entry per axis (ITK order x, y, z; "nan" where none is stated); the stated entry along the
    largest spacing is the slices' (a volume resampled so its slices run along x states it there).
    """
    if not path.name.lower().endswith((".nrrd", ".nhdr")):
        return None
    with open(path, "rb") as handle:
        for raw in iter(handle.readline, b""):
            line = raw.decode("latin-1").strip()
            if not line:
                break  # end of the header
            if line.lower().startswith("thicknesses:"):
                values = [_positive(v) for v in line.split(":", 1)[1].split()]
                stated = [i for i, v in enumerate(values[:len(spacing_xyz)]) if v is not None]
                if len(values) != len(spacing_xyz) or not stated:
                    return None
                itk_axis = max(stated, key=lambda i: spacing_xyz[i])
                return values[itk_axis], len(spacing_xyz) - 1 - itk_axis
    return None


def _write_suffix(path: Path) -> str:
    """The supported suffix ``path`` ends with, or raise ValueError."""
    name = path.name.lower()
    for suffix in WRITE_SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            return suffix
    raise ValueError(
        f"`path` must end with one of {', '.join(WRITE_SUFFIXES)}, got {path.name!r}; "
        "(.mhd/.nhdr write two files and cannot be written atomically: use .mha or .nrrd)"
    )


def write_volume(volume: Volume, path: str | Path, format: str = "auto", *, source: Volume | None = None,
                 overwrite: bool = False) -> None:
    """Write a volume to NIfTI/NRRD/MHA, or as a DICOM series, atomically: never leaves a half-written output.

    A file is written to a hidden temporary file in the same folder (same extension, so SimpleITK picks the same
    writer), then moved over ``path`` with ``os.replace``. NRRD and MHA are zlib-compressed; NIfTI is compressed
    when the name ends with ``.nii.gz``. NIfTI stores geometry in float32 (~1e-5 mm round trip).

    ``format="dicom"`` writes a derived CT or MR series (the volume's ``modality``, else guessed from its values)
    into the folder ``path`` (:mod:`.dicom_out`); ``source``: the volume it was made from, whose DICOM patient,
    study and frame of reference it keeps (a non-DICOM source or none: a new anonymous study).

    Args:
        volume: the volume to write.
        path: output file (its folder must exist; an existing file is replaced), or the series folder for DICOM.
        format: "auto" (from the file name) or "dicom".
        overwrite: DICOM only: replace a folder that already holds files.

    Raises:
        TypeError: if ``volume`` is not a :class:`Volume`.
        ValueError: on an unsupported extension or format, or a DICOM folder that is not empty.
        FileNotFoundError: if the output folder does not exist.
        OSError: if writing fails (the temporary file is removed, ``path`` is untouched).
    """
    if not isinstance(volume, Volume):
        raise TypeError(f"`volume` must be a Volume, got {type(volume).__name__}; wrap arrays in Volume(...)")
    path = Path(path)
    if format == "dicom":
        from .dicom_out import dicom_context, write_dicom_series
        from .intensity import guess_modality

        modality = volume.modality if volume.modality in ("ct", "mr") else guess_modality(volume.array)
        context = dicom_context(source, modality, series_description="DPNSL", derivation="DPNSL")
        write_dicom_series(volume, path, context, overwrite=overwrite)
        return
    if format != "auto":
        raise ValueError(f"`format` must be 'auto' (from the file name) or 'dicom', got {format!r}")
    _write_suffix(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"output folder does not exist: {str(path.parent)!r}; create it first")
    tmp = path.parent / f".tmp-{secrets.token_hex(4)}-{path.name}"
    raw = tmp.with_name(tmp.name[:-3]) if path.name.endswith(".nii.gz") else None  # ITK writes it, gzip_file packs it
    try:
        if raw is not None:
            sitk.WriteImage(volume_to_sitk(volume), str(raw), useCompression=False)
            gzip_file(raw, tmp)
        else:
            sitk.WriteImage(volume_to_sitk(volume), str(tmp), useCompression=True)
        os.replace(tmp, path)
    except RuntimeError as exc:
        raise OSError(f"could not write {str(path)!r}: {str(exc).strip()}") from exc
    finally:
        tmp.unlink(missing_ok=True)
        if raw is not None:
            raw.unlink(missing_ok=True)
