"""DICOM series output: geometry and values read back by SimpleITK and pydicom as the NIfTI output, patient and study
kept from a DICOM input and nothing stale, dciodvfy (dicom3tools) where installed, atomic writes, the JSON record."""

from __future__ import annotations

import hashlib
import json
import locale
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from DPNSLCore.cli.upsample import main
from DPNSLCore.io.dicom_out import dicom_context, write_dicom_series
from DPNSLCore.io.volumes import Geometry, Volume, index_to_world, read_volume, volume_to_sitk
from DPNSLCore.resources import SAMPLE_DATA_DIR

STUDY_UID = "1.2.826.0.1.3680043.2.1125.77"
OBLIQUE = (0.96, -0.2, 0.1934, 0.22, 0.97, -0.1032, -0.1669, 0.1397, 0.9760)  # a rotation, gantry-free


def _orthonormal(direction):
    u, _, vt = np.linalg.svd(np.asarray(direction).reshape(3, 3))
    return tuple((u @ vt).ravel())


def _write_input_series(folder: Path, vol: Volume, modality: str) -> None:
    """A DICOM series with patient and study identifiers, and tags that describe the old grid only. (GDCM's writer
    sets the C locale of the process when it writes a person name: restored after, so later tests read UTF-8.)"""
    saved = locale.setlocale(locale.LC_ALL)
    try:
        _write_series_files(folder, vol, modality)
    finally:
        locale.setlocale(locale.LC_ALL, saved)


def _write_series_files(folder: Path, vol: Volume, modality: str) -> None:
    image = volume_to_sitk(vol)
    d = image.GetDirection()
    orientation = "\\".join(f"{v:.6f}" for v in (d[0], d[3], d[6], d[1], d[4], d[7]))
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(image.GetDepth()):
        slice_k = image[:, :, k]
        position = image.TransformIndexToPhysicalPoint((0, 0, k))
        for tag, value in (("0008|0060", modality), ("0010|0010", "Doe^Jane"), ("0010|0020", "PID-42"),
                           ("0010|0030", "19700101"), ("0010|0040", "F"), ("0020|000d", STUDY_UID),
                           ("0008|0050", "ACC-7"), ("0020|0010", "S1"), ("0020|0052", STUDY_UID + ".9"),
                           ("0020|000e", STUDY_UID + ".1"), ("0008|0018", f"{STUDY_UID}.1.{k + 1}"),
                           ("0020|0037", orientation), ("0020|0032", "\\".join(f"{v:.6f}" for v in position)),
                           ("0020|0013", str(k + 1)), ("0018|0050", "5"), ("0020|1041", f"{5.0 * k:.1f}"),
                           ("0028|1050", "40"), ("0028|1051", "400"), ("0018|0080", "2000"), ("0018|0081", "90")):
            slice_k.SetMetaData(tag, value)
        path = folder / f"in{k:03d}.dcm"
        writer.SetFileName(str(path))
        writer.Execute(slice_k)
        ds = pydicom.dcmread(path)
        ds.private_block(0x0009, "ACME", create=True).add_new(0x01, "LO", "old grid")  # a private tag
        ds.save_as(path)


def _thick(modality: str, direction=None) -> Volume:
    rng = np.random.default_rng(4)
    base = -1000 if modality == "CT" else 0
    array = (base + rng.integers(0, 1400, (6, 20, 24))).astype(np.int16)
    geometry = Geometry((0.7, 0.8, 5.0), (-40.0, 12.5, 100.0), direction or (1, 0, 0, 0, 1, 0, 0, 0, 1))
    return Volume(array, geometry)


def _check_series_matches(folder: Path, reference: Volume) -> None:
    """SimpleITK and pydicom read the series back with the reference's geometry and values."""
    back = read_volume(folder)
    np.testing.assert_array_equal(back.array, reference.array)
    np.testing.assert_allclose(back.geometry.spacing, reference.geometry.spacing, atol=1e-3)
    np.testing.assert_allclose(back.geometry.origin, reference.geometry.origin, atol=1e-3)
    np.testing.assert_allclose(back.geometry.direction, reference.geometry.direction, atol=1e-5)
    files = sorted(folder.glob("*.dcm"))
    for k in (0, len(files) - 1):
        ds = pydicom.dcmread(files[k])
        np.testing.assert_allclose([float(v) for v in ds.ImagePositionPatient],
                                   index_to_world(reference.geometry, np.array([k, 0.0, 0.0])), atol=1e-3)
        np.testing.assert_array_equal(ds.pixel_array * float(ds.get("RescaleSlope", 1))
                                      + float(ds.get("RescaleIntercept", 0)), reference.array[k])
        assert float(ds.SliceThickness) == float(ds.SpacingBetweenSlices) == pytest.approx(
            reference.geometry.spacing[2])


@pytest.mark.parametrize(("modality", "direction"), [("CT", None), ("MR", _orthonormal(OBLIQUE))])
def test_a_dicom_input_gives_a_derived_series_with_the_nifti_geometry_and_values(tmp_path, modality, direction):
    source = _thick(modality, direction)
    _write_input_series(tmp_path / "in", source, modality)
    args = ["--scale", "5", "--method", "cubic", "--quiet"]
    assert main([str(tmp_path / "in"), "-o", str(tmp_path / "thin.nii.gz"), *args]) == 0
    assert main([str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--format", "dicom", *args]) == 0
    nifti = read_volume(tmp_path / "thin.nii.gz")
    _check_series_matches(tmp_path / "out", nifti)
    first = pydicom.dcmread(sorted((tmp_path / "out").glob("*.dcm"))[0])
    original = pydicom.dcmread(tmp_path / "in" / "in000.dcm")
    for keyword in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyInstanceUID",
                    "AccessionNumber", "StudyID", "FrameOfReferenceUID"):
        assert first.data_element(keyword).value == original.data_element(keyword).value, keyword
    assert first.Modality == modality and first.SeriesInstanceUID != original.SeriesInstanceUID
    assert first.SOPInstanceUID not in {pydicom.dcmread(f).SOPInstanceUID for f in (tmp_path / "in").iterdir()}
    assert list(first.ImageType)[:2] == ["DERIVED", "SECONDARY"] and "DPNSL" in first.SeriesDescription
    assert "x5" in first.DerivationDescription and "cubic" in first.DerivationDescription
    for stale in ("SliceLocation", "WindowCenter", "WindowWidth"):
        assert stale not in first, stale
    assert not any(element.tag.is_private for element in first)
    if modality == "MR":
        assert float(first.RepetitionTime) == 2000 and float(first.EchoTime) == 90  # still true of every slice


def test_a_non_dicom_input_gets_a_new_anonymous_study_and_the_run_says_so(tmp_path, capsys):
    sample = SAMPLE_DATA_DIR / "ct_lung1_5mm_crop.nii.gz"
    small = tmp_path / "small.nrrd"
    sitk.WriteImage(sitk.ReadImage(str(sample))[60:100, 50:90, 5:15], str(small))
    assert main([str(small), "-o", str(tmp_path / "out"), "--format", "dicom", "--scale", "2", "--method", "linear",
                 "--quiet"]) == 0
    assert "the input is not DICOM, so the series gets a new study" in capsys.readouterr().err
    ds = pydicom.dcmread(sorted((tmp_path / "out").glob("*.dcm"))[0])
    assert str(ds.PatientName) == "Anonymous^" and ds.PatientID == "" and ds.Modality == "CT"
    record = json.loads((tmp_path / "out.json").read_text())
    assert record["format"] == "dicom" and record["writer_notes"][0].startswith("DICOM: the input is not DICOM")


def test_float_values_are_stored_with_a_rescale_that_gives_them_back(tmp_path):
    values = np.linspace(-3.25, 7.5, 4 * 6 * 5, dtype=np.float32).reshape(4, 6, 5)
    volume = Volume(values, Geometry((0.5, 0.5, 1.5)))
    write_dicom_series(volume, tmp_path / "f", dicom_context(None, "mr", series_description="t", derivation="t"))
    back = read_volume(tmp_path / "f")
    step = (7.5 + 3.25) / 65535
    np.testing.assert_allclose(back.array, values, atol=step / 2 + 1e-6)


def test_a_failed_series_write_leaves_no_folder_and_an_existing_one_is_replaced_only_at_the_end(tmp_path,
                                                                                             monkeypatch):
    volume = _thick("CT")
    context = dicom_context(None, "ct", series_description="t", derivation="t")
    write_dicom_series(volume, tmp_path / "out", context)
    before = sorted(p.name for p in (tmp_path / "out").iterdir())
    calls = []
    real = pydicom.dataset.FileDataset.save_as

    def flaky(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise OSError("disk full")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(pydicom.dataset.FileDataset, "save_as", flaky)
    with pytest.raises(OSError, match="disk full"):
        write_dicom_series(volume, tmp_path / "out", context, overwrite=True)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == before  # the old series, untouched
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no staging folder left
    with pytest.raises(ValueError, match="is not empty; pass --overwrite"):
        write_dicom_series(volume, tmp_path / "out", context)


def test_the_record_beside_the_output_names_the_model_file_and_its_hash(tmp_path, capsys):
    sample = SAMPLE_DATA_DIR / "ct_lung1_5mm_crop.nii.gz"
    small = tmp_path / "small.nrrd"
    sitk.WriteImage(sitk.ReadImage(str(sample))[60:124, 50:114, 5:17], str(small))
    out = tmp_path / "thin.nii.gz"
    assert main([str(small), "-o", str(out), "--scale", "2", "--quiet"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4 and lines[1].startswith("model: shipped CT model (dpnsl_ct.safetensors); CT because")
    record = json.loads((tmp_path / "thin.nii.gz.json").read_text())
    model_file = Path(record["model"]["file"])
    assert record["model"]["sha256"] == hashlib.sha256(model_file.read_bytes()).hexdigest()
    assert record["plan"]["scale"] == 2 and record["plan"]["degradation"] == "profile"
    assert record["max_abs_Ax_minus_y"] <= 0.5 and record["input"]["shape_zyx"] == [12, 64, 64]
    assert any(n.startswith("model: shipped CT model") for n in record["notes"])
    assert {"read", "network", "write"} <= set(record["timings_s"]) and record["dpnsl_version"]
    assert record["command"].startswith("dpnsl upsample ")


@pytest.mark.skipif(shutil.which("dciodvfy") is None, reason="dciodvfy (Debian package dicom3tools) not installed")
@pytest.mark.parametrize("modality", ["CT", "MR"])
def test_dciodvfy_finds_no_error_in_the_written_files(tmp_path, modality):
    source = _thick(modality, _orthonormal(OBLIQUE))
    _write_input_series(tmp_path / "in", source, modality)
    assert main([str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--format", "dicom", "--scale", "2",
                 "--method", "linear", "--quiet"]) == 0
    values = np.random.default_rng(0).uniform(0, 5, (3, 6, 5)).astype(np.float32)
    write_dicom_series(Volume(values), tmp_path / "float", dicom_context(None, modality.lower(),
                                                                          series_description="t", derivation="t"))
    for path in [*sorted((tmp_path / "out").glob("*.dcm"))[:2], *sorted((tmp_path / "float").glob("*.dcm"))[:1]]:
        report = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=60)
        errors = [line for line in (report.stdout + report.stderr).splitlines() if line.startswith("Error")]
        assert errors == [], (path, errors)


def test_write_volume_writes_a_dicom_series_of_the_results_modality(tmp_path):
    from DPNSLCore import upsample
    from DPNSLCore.io.volumes import write_volume

    source = _thick("MR")
    _write_input_series(tmp_path / "in", source, "MR")
    read = read_volume(tmp_path / "in")
    result = upsample(read, 2, method="linear", output_dtype="input")
    write_volume(result.to_volume(), tmp_path / "out", format="dicom", source=read)
    ds = pydicom.dcmread(sorted((tmp_path / "out").glob("*.dcm"))[0])
    assert ds.Modality == "MR" and ds.PatientID == "PID-42"  # the modality from the header, the patient kept
    _check_series_matches(tmp_path / "out", result.to_volume())
    with pytest.raises(ValueError, match="`format` must be 'auto'"):
        write_volume(result.to_volume(), tmp_path / "x.nii.gz", format="png")
