"""Write a volume as a derived DICOM series (CT Image or MR Image storage, one file per slice), atomically.

The series is new (Series and SOP Instance UIDs) and of the input's modality. From a DICOM input it keeps the
patient, the study and the frame of reference, and the acquisition attributes that still describe the derived
images (kVp for CT; sequence, TR, TE, TI, flip angle and field strength for MR); nothing else is copied, so no
stale SliceLocation, window or private tag claims the old grid. A non-DICOM input gets a new study with an
anonymous patient (``DicomContext.notes`` says so). Geometry comes from the output :class:`Volume`: each file is
one slice along numpy axis 0 with its ImagePositionPatient, the volume's ImageOrientationPatient and PixelSpacing,
and SliceThickness = SpacingBetweenSlices = the new slice spacing. Pixels are 16-bit integers with the rescale that
gives back the output's values (integer outputs exactly; float outputs to half a rescale step).

Built on pydicom (datasets, UIDs, file meta); ``dciodvfy`` (dicom3tools) accepts every file (tested where
installed).
"""

from __future__ import annotations

import datetime
import os
import secrets
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .geometry import Volume, index_to_world

__all__ = ["DicomContext", "dicom_context", "write_dicom_series"]

#: Storage SOP classes by modality (classic single-frame IODs, read by every PACS and viewer)
SOP_CLASSES = {"ct": "1.2.840.10008.5.1.4.1.1.2", "mr": "1.2.840.10008.5.1.4.1.1.4"}
#: Patient and study attributes kept from a DICOM input (the linkage a PACS files the result by)
PATIENT_STUDY = ("PatientName", "PatientID", "IssuerOfPatientID", "PatientBirthDate", "PatientSex", "PatientAge",
                 "StudyInstanceUID", "StudyDate", "StudyTime", "StudyID", "AccessionNumber",
                 "ReferringPhysicianName", "StudyDescription", "FrameOfReferenceUID", "PositionReferenceIndicator",
                 "SpecificCharacterSet", "BodyPartExamined", "PatientPosition")
#: Acquisition attributes that still describe every derived slice (same scan, same contrast)
ACQUISITION = {"ct": ("KVP",),
               "mr": ("ScanningSequence", "SequenceVariant", "ScanOptions", "MRAcquisitionType", "RepetitionTime",
                      "EchoTime", "EchoTrainLength", "InversionTime", "FlipAngle", "MagneticFieldStrength",
                      "ImagingFrequency", "ImagedNucleus")}
#: Type 1 / 2 attributes of the CT and MR Image modules when the input gives none
DEFAULTS = {"ct": {"KVP": None},
            "mr": {"ScanningSequence": "RM", "SequenceVariant": "NONE", "ScanOptions": None,
                   "MRAcquisitionType": None, "RepetitionTime": None, "EchoTime": None, "EchoTrainLength": None}}
MANUFACTURER = "DPNSL"


@dataclass(frozen=True)
class DicomContext:
    """What a derived series takes from its input, and what it says about itself.

    Attributes:
        modality: "ct" or "mr" (the IOD written).
        kept: attribute keyword -> value taken from the input (patient, study, frame of reference, acquisition).
        series_description: SeriesDescription of the new series.
        derivation: DerivationDescription (what made it: DPNSL, scale, acquisition model, model file).
        notes: what the writer decided for the user to read (e.g. a new study for a non-DICOM input).
    """

    modality: str
    kept: dict = field(default_factory=dict)
    series_description: str = "DPNSL thin slices"
    derivation: str = "DPNSL"
    notes: tuple[str, ...] = ()


def dicom_context(source: Volume | None, modality: str, *, series_description: str, derivation: str) -> DicomContext:
    """The context of a series derived from ``source``: its patient, study, frame of reference and acquisition
    attributes when it was read from DICOM (``Volume.source_files``), else a new anonymous study (said in notes).

    Raises:
        ValueError: ``modality`` is not "ct" or "mr".
    """
    import pydicom

    if modality not in SOP_CLASSES:
        raise ValueError(f"a DICOM output is written as CT or MR, got modality {modality!r}")
    files = source.source_files if source is not None else ()
    if not files:
        note = ("DICOM: the input is not DICOM, so the series gets a new study and frame of reference and an "
                "anonymous patient (PatientName 'Anonymous', no PatientID); link it to the patient in the PACS")
        return DicomContext(modality, {}, series_description, derivation, (note,))
    header = pydicom.dcmread(files[0], stop_before_pixels=True)
    wanted = PATIENT_STUDY + ACQUISITION[modality]
    kept = {k: header.data_element(k).value for k in wanted if k in header and header.data_element(k).value != ""}
    return DicomContext(modality, kept, series_description, derivation, ())


def _decimal(value: float) -> str:
    """A DS value (at most 16 characters) as precise as it allows."""
    for digits in range(10, -1, -1):
        text = f"{value:.{digits}f}".rstrip("0").rstrip(".") if digits else f"{value:.0f}"
        if len(text) <= 16:
            return "0" if text in ("-0", "") else text
    return f"{value:.6g}"


def _pixels(array: np.ndarray) -> tuple[np.ndarray, float, float]:
    """(stored 16-bit values, slope, intercept) with stored * slope + intercept = the array's values: integer arrays
    that fit 16 bits exactly (slope 1), others mapped linearly onto the full unsigned 16-bit range."""
    if np.issubdtype(array.dtype, np.integer):
        low, high = int(array.min()), int(array.max())
        if -32768 <= low and high <= 32767:
            return array.astype(np.int16), 1.0, 0.0
        if 0 <= low and high <= 65535:
            return array.astype(np.uint16), 1.0, 0.0
    low, high = float(array.min()), float(array.max())
    slope = (high - low) / 65535.0 if high > low else 1.0
    stored = np.rint((array.astype(np.float64) - low) / slope)
    return np.clip(stored, 0, 65535).astype(np.uint16), slope, low


def _series_datasets(volume: Volume, context: DicomContext, series_uid: str, number: int) -> list:
    """One pydicom FileDataset per slice along numpy axis 0 (not written)."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    from .. import __version__

    stored, slope, intercept = _pixels(volume.array)
    geometry = volume.geometry
    direction = np.asarray(geometry.direction, dtype=np.float64).reshape(3, 3)
    spacing_x, spacing_y, spacing_z = geometry.spacing
    orientation = [_decimal(v) for v in (*direction[:, 0], *direction[:, 1])]  # row (x) then column (y) cosines
    normal = np.cross(direction[:, 0], direction[:, 1])
    image_kind = "AXIAL" if abs(normal[2]) > 0.9 else "OTHER"  # CT's value 3: AXIAL for transverse slices
    now = datetime.datetime.now()
    kept = dict(context.kept)
    study_uid = kept.pop("StudyInstanceUID", None) or generate_uid()
    frame_uid = kept.pop("FrameOfReferenceUID", None) or generate_uid()
    sop_class = SOP_CLASSES[context.modality]
    datasets = []
    for k in range(volume.array.shape[0]):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = sop_class
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID, ds.SOPInstanceUID = sop_class, meta.MediaStorageSOPInstanceUID
        ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = "Anonymous^", "", "", ""
        ds.PatientPosition, ds.Laterality = "", ""
        ds.StudyDate, ds.StudyTime = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
        ds.ReferringPhysicianName, ds.StudyID, ds.AccessionNumber = "", "", ""
        ds.PositionReferenceIndicator = ""
        for keyword, value in DEFAULTS[context.modality].items():
            setattr(ds, keyword, "" if value is None else value)
        for keyword, value in kept.items():
            setattr(ds, keyword, value)
        ds.StudyInstanceUID, ds.FrameOfReferenceUID = study_uid, frame_uid
        ds.Modality = context.modality.upper()
        ds.SeriesInstanceUID, ds.SeriesNumber = series_uid, number
        ds.SeriesDescription = context.series_description[:64]
        ds.SeriesDate, ds.SeriesTime = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
        ds.ContentDate, ds.ContentTime = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
        ds.Manufacturer, ds.ManufacturerModelName = MANUFACTURER, "DPNSLCore"
        ds.SoftwareVersions = __version__
        ds.ImageType = ["DERIVED", "SECONDARY", image_kind]
        ds.DerivationDescription = context.derivation[:1024]
        ds.InstanceNumber = k + 1
        ds.PatientOrientation = ""
        ds.AcquisitionNumber = ""
        ds.ImagePositionPatient = [_decimal(v) for v in index_to_world(geometry, np.array([k, 0.0, 0.0]))]
        ds.ImageOrientationPatient = orientation
        ds.PixelSpacing = [_decimal(spacing_y), _decimal(spacing_x)]  # between rows, then between columns
        ds.SliceThickness = ds.SpacingBetweenSlices = _decimal(spacing_z)
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.Rows, ds.Columns = int(stored.shape[1]), int(stored.shape[2])
        ds.BitsAllocated = ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 1 if stored.dtype == np.int16 else 0
        if context.modality == "ct" or (slope, intercept) != (1.0, 0.0):  # the MR IOD has no rescale of its own:
            ds.RescaleIntercept, ds.RescaleSlope = _decimal(intercept), _decimal(slope)  # only for float values
        ds.PixelData = np.ascontiguousarray(stored[k]).tobytes()
        datasets.append(ds)
    return datasets


def write_dicom_series(volume: Volume, folder: str | Path, context: DicomContext, *, overwrite: bool = False,
                       series_number: int = 1001) -> list[Path]:
    """Write ``volume`` as a new DICOM series into ``folder`` (created; one file per slice along numpy axis 0).

    Atomic: the files are written into a hidden sibling folder that is renamed to ``folder`` at the end, so a
    failed run leaves no partial series (and, with ``overwrite``, the old folder is replaced only then).

    Returns:
        The written files, in slice order.

    Raises:
        ValueError: ``folder`` exists and is not empty without ``overwrite``, or is a file.
        OSError: writing failed (nothing is left behind).
    """
    from pydicom.uid import generate_uid

    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"DICOM output {str(folder)!r} is a file; give a folder for the series")
    if folder.is_dir() and any(folder.iterdir()) and not overwrite:
        raise ValueError(f"DICOM output folder {str(folder)!r} is not empty; pass --overwrite to replace it, or "
                         "choose another folder")
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = folder.parent / f".tmp-{secrets.token_hex(4)}-{folder.name}"
    staging.mkdir()
    try:
        datasets = _series_datasets(volume, context, generate_uid(), series_number)
        names = [f"{k + 1:05d}.dcm" for k in range(len(datasets))]
        for ds, name in zip(datasets, names, strict=True):
            ds.save_as(staging / name, enforce_file_format=True)
        _replace_folder(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return [folder / name for name in names]


def _replace_folder(new: Path, folder: Path) -> None:
    """Move ``new`` to ``folder``; an existing ``folder`` is set aside first and removed once the move is done."""
    old = None
    if folder.exists():
        old = folder.parent / f".old-{secrets.token_hex(4)}-{folder.name}"
        os.replace(folder, old)
    try:
        os.replace(new, folder)
    except BaseException:
        if old is not None:
            os.replace(old, folder)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def series_files(folder: str | Path) -> Sequence[Path]:
    """The .dcm files of a series written by :func:`write_dicom_series`, in slice order."""
    return sorted(Path(folder).glob("*.dcm"))
