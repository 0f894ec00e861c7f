"""Tests for DPNSLCore.io.volumes: geometry-preserving round trips, DICOM series, upsampled geometry, error paths."""

from __future__ import annotations

import math
import struct
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk  # noqa: N813

from DPNSLCore.io import nifti
from DPNSLCore.io.nifti import count_non_finite
from DPNSLCore.io.volumes import (
    Geometry,
    Volume,
    detect_slice_axis,
    index_to_world,
    read_volume,
    upsampled_geometry,
    volume_from_sitk,
    volume_to_sitk,
    write_volume,
)

ATOL_MM = 1e-4  # NIfTI stores geometry in float32


def _rotation(ax: float, ay: float, az: float) -> tuple[float, ...]:
    """Row-major 3x3 rotation (x, then y, then z) as a 9-tuple."""
    cx, sx, cy, sy, cz, sz = math.cos(ax), math.sin(ax), math.cos(ay), math.sin(ay), math.cos(az), math.sin(az)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return tuple((rz @ ry @ rx).ravel())


ROTATED = Geometry(spacing=(0.7, 0.9, 2.5), origin=(-12.5, 30.25, 100.0), direction=_rotation(0.3, -0.2, 0.5))


def _assert_geometry_close(a: Geometry, b: Geometry, atol: float = ATOL_MM) -> None:
    np.testing.assert_allclose(a.spacing, b.spacing, atol=atol)
    np.testing.assert_allclose(a.origin, b.origin, atol=atol)
    np.testing.assert_allclose(a.direction, b.direction, atol=atol)


def _volume(shape: tuple[int, int, int] = (4, 5, 6), geometry: Geometry = ROTATED) -> Volume:
    array = np.random.default_rng(0).normal(size=shape).astype(np.float32) * 100
    return Volume(array, geometry)


# ---------------------------------------------------------------------------------------------- round trips
@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".nrrd", ".mha"])
def test_round_trip_keeps_array_and_rotated_anisotropic_geometry(tmp_path: Path, suffix: str) -> None:
    vol = _volume()
    path = tmp_path / f"vol{suffix}"
    write_volume(vol, path)
    back = read_volume(path)
    assert back.array.dtype == np.float32
    np.testing.assert_array_equal(back.array, vol.array)
    _assert_geometry_close(back.geometry, vol.geometry)
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # no temporary file left behind


def test_round_trip_keeps_integer_dtype(tmp_path: Path) -> None:
    vol = Volume(np.arange(60, dtype=np.int16).reshape(3, 4, 5) - 1024, ROTATED)
    write_volume(vol, tmp_path / "ct.nrrd")
    back = read_volume(tmp_path / "ct.nrrd")
    assert back.array.dtype == np.int16
    np.testing.assert_array_equal(back.array, vol.array)


def test_sitk_helpers_round_trip_and_match_itk_axes() -> None:
    vol = _volume((2, 3, 4))
    image = volume_to_sitk(vol)
    assert image.GetSize() == (4, 3, 2)  # ITK (x, y, z) vs numpy (z, y, x)
    back = volume_from_sitk(image)
    np.testing.assert_array_equal(back.array, vol.array)
    assert back.geometry == vol.geometry


def test_bool_array_is_written_as_uint8() -> None:
    image = volume_to_sitk(Volume(np.ones((2, 2, 2), dtype=bool)))
    assert image.GetPixelID() == sitk.sitkUInt8


# -------------------------------------------------------------------------------------------- atomic write
def test_write_uses_hidden_temp_with_same_extension_then_replaces(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "out.nii.gz"
    target.write_bytes(b"old")
    seen: list[str] = []
    real_write = sitk.WriteImage

    def spy(image, name, *args, **kwargs):
        seen.append(name)
        return real_write(image, name, *args, **kwargs)

    monkeypatch.setattr(sitk, "WriteImage", spy)
    write_volume(_volume(), target)
    temp = Path(seen[0])  # ITK writes the hidden uncompressed file; gzip_file packs it into another hidden one
    assert temp.parent == tmp_path and temp.name.startswith(".tmp-") and temp.name.endswith("-out.nii")
    assert read_volume(target).array.shape == (4, 5, 6)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.nii.gz"]


def test_a_gzip_written_in_parallel_blocks_reads_as_one_stream(tmp_path: Path) -> None:
    import gzip

    from DPNSLCore.io.nifti import gzip_file

    data = np.random.default_rng(0).integers(0, 50, 300_000, dtype=np.uint8).tobytes()
    (tmp_path / "raw").write_bytes(data)
    gzip_file(tmp_path / "raw", tmp_path / "packed.gz", workers=3, block=40_000)  # 8 members, 3 threads
    packed = (tmp_path / "packed.gz").read_bytes()
    assert packed.count(b"\x1f\x8b\x08") >= 8 and gzip.decompress(packed) == data  # members in order
    vol = Volume(np.arange(7 * 60 * 50, dtype=np.int16).reshape(7, 60, 50), Geometry(spacing=(0.5, 0.6, 2.0)))
    write_volume(vol, tmp_path / "v.nii")
    gzip_file(tmp_path / "v.nii", tmp_path / "v.nii.gz", block=4096)  # 21 members
    back = read_volume(tmp_path / "v.nii.gz")  # ITK reads them as one file
    np.testing.assert_array_equal(back.array, vol.array)
    assert back.geometry.spacing == pytest.approx(vol.geometry.spacing)


def test_failed_write_leaves_existing_file_untouched_and_no_temp(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "out.mha"
    target.write_bytes(b"old")

    def half_write(image, name, *args, **kwargs):
        Path(name).write_bytes(b"partial")
        raise RuntimeError("disk full")

    monkeypatch.setattr(sitk, "WriteImage", half_write)
    with pytest.raises(OSError, match="could not write .*disk full"):
        write_volume(_volume(), target)
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mha"]


# ------------------------------------------------------------------------------------------------- DICOM
def _write_dicom_series(folder: Path, vol: Volume, uid_suffix: str, prefix: str, thickness: str | None = None,
                        description: str | None = None, modality: str = "CT") -> None:
    """Write ``vol`` as one DICOM file per z-slice with the tags a series reader needs."""
    image = volume_to_sitk(vol)
    d = image.GetDirection()
    orientation = "\\".join(f"{v:.6f}" for v in (d[0], d[3], d[6], d[1], d[4], d[7]))
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for k in range(image.GetDepth()):
        slice_k = image[:, :, k]
        position = image.TransformIndexToPhysicalPoint((0, 0, k))
        for tag, value in (
            ("0008|0060", modality),
            ("0008|0008", "DERIVED\\SECONDARY"),
            ("0020|000d", "1.2.826.0.1.3680043.2.1125.1"),  # study instance UID
            ("0020|000e", f"1.2.826.0.1.3680043.2.1125.1.{uid_suffix}"),  # series instance UID
            ("0008|0018", f"1.2.826.0.1.3680043.2.1125.1.{uid_suffix}.{k + 1}"),  # SOP instance UID
            ("0020|0037", orientation),  # image orientation (patient)
            ("0020|0032", "\\".join(f"{v:.6f}" for v in position)),  # image position (patient)
            ("0020|0013", str(k + 1)),  # instance number
            *([("0018|0050", thickness)] if thickness else []),  # slice thickness
            *([("0008|103e", description)] if description else []),  # series description
        ):
            slice_k.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"{prefix}{k:03d}.dcm"))
        writer.Execute(slice_k)


def _stated_position(file: Path) -> list[float]:
    """ImagePositionPatient of one DICOM file."""
    return [float(v) for v in sitk.ReadImage(str(file)).GetMetaData("0020|0032").split("\\")]


SERIES_UID = "1.2.826.0.1.3680043.2.1125.1."  # + the suffix given to _write_dicom_series


def test_dicom_series_folder_reads_largest_series_with_geometry_and_says_so(tmp_path: Path) -> None:
    geometry = Geometry((0.6, 0.8, 2.0), (-50.0, 20.0, 7.5), _rotation(0.0, 0.0, 0.4))
    big = Volume(np.arange(5 * 6 * 7, dtype=np.int16).reshape(5, 6, 7), geometry)
    small = Volume(np.zeros((3, 6, 7), dtype=np.int16), geometry)
    _write_dicom_series(tmp_path, big, "2", "big", description="AX 2mm")
    _write_dicom_series(tmp_path, small, "3", "small", description="Scout")
    back = read_volume(tmp_path)
    np.testing.assert_array_equal(back.array, big.array)
    _assert_geometry_close(back.geometry, geometry, atol=1e-3)
    (note,) = back.reader_notes
    assert f"read series {SERIES_UID}2 ('AX 2mm'), 5 file(s), the one with the most files of the 2" in note
    assert f"the others: {SERIES_UID}3 ('Scout'), 3 file(s); choose another with --series UID" in note


def test_a_dicom_series_carries_its_modality_and_files_in_slice_order(tmp_path: Path) -> None:
    vol = Volume(np.arange(5 * 6 * 7, dtype=np.int16).reshape(5, 6, 7), ROTATED)
    _write_dicom_series(tmp_path, vol, "7", "mr", modality="MR")
    read = read_volume(tmp_path)
    assert read.modality == "mr" and len(read.source_files) == 5
    positions = [_stated_position(Path(f)) for f in read.source_files]
    origins = [index_to_world(read.geometry, np.array([k, 0, 0])) for k in range(5)]
    np.testing.assert_allclose(positions, origins, atol=1e-3)  # file k holds array slice k
    assert read_volume(tmp_path / "mr001.dcm").modality is None  # one file read as an image: no series header


def test_a_dicom_folder_of_one_series_has_no_reader_note(tmp_path: Path) -> None:
    _write_dicom_series(tmp_path, Volume(np.zeros((3, 6, 7), dtype=np.int16), ROTATED), "2", "s")
    assert read_volume(tmp_path).reader_notes == ()


def test_the_series_argument_reads_the_series_asked_for(tmp_path: Path) -> None:
    small = Volume(np.full((3, 6, 7), 7, dtype=np.int16), ROTATED)
    _write_dicom_series(tmp_path, Volume(np.zeros((5, 6, 7), dtype=np.int16), ROTATED), "2", "big")
    _write_dicom_series(tmp_path, small, "3", "small")
    back = read_volume(tmp_path, series=f"{SERIES_UID}3")
    np.testing.assert_array_equal(back.array, small.array)
    assert back.reader_notes == ()
    with pytest.raises(ValueError, match=rf"holds no DICOM series '9.9'; it holds: {SERIES_UID}2, 5 file\(s\); "
                                         rf"{SERIES_UID}3, 3 file\(s\)"):
        read_volume(tmp_path, series="9.9")


def test_two_series_with_the_most_files_are_refused_and_listed(tmp_path: Path) -> None:
    empty = Volume(np.zeros((4, 6, 7), dtype=np.int16), ROTATED)
    for uid, kernel in (("2", "soft tissue"), ("3", "lung")):  # two reconstructions of one scan
        _write_dicom_series(tmp_path, empty, uid, uid, description=kernel)
    with pytest.raises(ValueError, match=rf"holds 2 DICOM series and more than one has the most files.*"
                                         rf"{SERIES_UID}2 \('soft tissue'\), 4 file\(s\); {SERIES_UID}3 "
                                         rf"\('lung'\), 4 file\(s\); choose one .*--series UID"):
        read_volume(tmp_path)
    assert read_volume(tmp_path, series=f"{SERIES_UID}3").array.shape == (4, 6, 7)


def test_the_series_argument_is_refused_for_a_file(tmp_path: Path) -> None:
    path = tmp_path / "v.nrrd"
    write_volume(_volume(), path)
    with pytest.raises(ValueError, match="`series` chooses a series of a DICOM folder, but .* is a file"):
        read_volume(path, series="1.2.3")


def _multi_frame(vol: Volume, path: Path, series_uid: str | None = None) -> None:
    """Write ``vol`` as one multi-frame DICOM file (ITK writes per-frame positions; its DICOM writer has no int16)."""
    image = volume_to_sitk(Volume(vol.array.astype(np.uint16), vol.geometry))
    writer = sitk.ImageFileWriter()
    if series_uid is not None:
        image.SetMetaData("0020|000e", series_uid)
        writer.KeepOriginalImageUIDOn()
    writer.SetFileName(str(path))
    writer.Execute(image)


def test_a_folder_holding_one_multi_frame_file_is_read_as_its_3d_volume(tmp_path: Path) -> None:
    geometry = Geometry((0.6, 0.8, 5.0), (-50.0, 20.0, 7.5))
    array = np.random.default_rng(3).integers(0, 4000, (6, 8, 10)).astype(np.uint16)
    _multi_frame(Volume(array, geometry), tmp_path / "enhanced.dcm")
    back = read_volume(tmp_path)  # the series reader alone would give a 4-D image of one frame
    np.testing.assert_array_equal(back.array, array)
    _assert_geometry_close(back.geometry, geometry, atol=1e-3)
    np.testing.assert_array_equal(read_volume(tmp_path / "enhanced.dcm").array, array)


def test_a_series_of_multi_frame_files_and_a_one_slice_folder_are_refused(tmp_path: Path) -> None:
    (tmp_path / "two").mkdir()
    for name in ("a.dcm", "b.dcm"):
        _multi_frame(Volume(np.zeros((3, 4, 5)), Geometry()), tmp_path / "two" / name, series_uid=f"{SERIES_UID}2")
    with pytest.raises(ValueError, match=r"split over 2 multi-frame files \(3 frames in a.dcm\).* convert the series"):
        read_volume(tmp_path / "two")
    (tmp_path / "one").mkdir()
    _write_dicom_series(tmp_path / "one", Volume(np.zeros((1, 6, 7), dtype=np.int16), ROTATED), "2", "s")
    with pytest.raises(ValueError, match=r"is one slice \(s000.dcm\); DPNSL needs a stack"):
        read_volume(tmp_path / "one")


def test_slice_thickness_is_read_from_dicom_and_nrrd_headers(tmp_path: Path) -> None:
    geometry = Geometry((0.6, 0.8, 5.0), (-50.0, 20.0, 7.5))
    (tmp_path / "dicom").mkdir()
    _write_dicom_series(tmp_path / "dicom", Volume(np.zeros((4, 6, 7), dtype=np.int16), geometry), "6", "s",
                        thickness="6.25")
    assert read_volume(tmp_path / "dicom").slice_thickness == pytest.approx(6.25)
    nrrd = tmp_path / "t.nrrd"
    header = ("NRRD0004\ntype: short\ndimension: 3\nspace: left-posterior-superior\nsizes: 2 2 3\n"
              "space directions: (1,0,0) (0,1,0) (0,0,5)\nthicknesses: nan nan 4.5\nkinds: domain domain domain\n"
              "endian: little\nencoding: raw\nspace origin: (0,0,0)\n\n")
    nrrd.write_bytes(header.encode() + bytes(24))
    assert read_volume(nrrd).slice_thickness == 4.5 and read_volume(nrrd).thickness_axis == 0
    write_volume(Volume(np.zeros((3, 2, 2), np.int16), geometry), tmp_path / "t.nii.gz")
    assert read_volume(tmp_path / "t.nii.gz").slice_thickness is None  # NIfTI has no thickness field


def _nrrd_with_thicknesses(path: Path, directions: str, thicknesses: str) -> Path:
    header = (f"NRRD0004\ntype: short\ndimension: 3\nspace: left-posterior-superior\nsizes: 4 3 2\n"
              f"space directions: {directions}\nthicknesses: {thicknesses}\nendian: little\nencoding: raw\n"
              "space origin: (0,0,0)\n\n")
    path.write_bytes(header.encode() + bytes(2 * 24))
    return path


def test_a_nrrd_thickness_stated_for_another_axis_is_read_for_that_axis(tmp_path: Path) -> None:
    from DPNSLCore import upsample
    from DPNSLCore.inference.request import UpsampleRequest

    sagittal = _nrrd_with_thicknesses(tmp_path / "x.nrrd", "(5,0,0) (0,0.8,0) (0,0,0.8)", "3 nan nan")
    volume = read_volume(sagittal)  # slices along x (numpy axis 2), 3 mm thick every 5 mm
    assert (volume.slice_thickness, volume.thickness_axis) == (3.0, 2)
    plan = UpsampleRequest(scale=2, degradation="profile").resolve(
        volume.array.shape, geometry=volume.geometry, slice_thickness=volume.slice_thickness,
        thickness_axis=volume.thickness_axis)
    assert plan.slice_axis == 2 and plan.thickness == pytest.approx(0.6)  # 3 mm over the 5 mm spacing
    notes = upsample(volume, 2, method="linear", degradation="profile", device="cpu").notes
    assert "4 slices, 3 mm thick every 5 mm (from the header)" in notes  # upsample passes the axis on
    forced = UpsampleRequest(scale=2, degradation="profile", slice_axis=0).resolve(
        volume.array.shape, geometry=volume.geometry, slice_thickness=3.0, thickness_axis=2)
    assert forced.thickness == 1.0
    assert "the header's slice thickness 3 mm is stated for axis 2 (x), not the slice axis: not used" in forced.notes
    every = _nrrd_with_thicknesses(tmp_path / "all.nrrd", "(5,0,0) (0,0.8,0) (0,0,0.8)", "3 0.8 0.8")
    assert (read_volume(every).slice_thickness, read_volume(every).thickness_axis) == (3.0, 2)  # the slices'


def test_dicom_series_with_a_missing_slice_is_read_onto_its_grid_at_true_positions(tmp_path: Path) -> None:
    geometry = Geometry((0.6, 0.8, 5.0), (-50.0, 20.0, 7.5), _rotation(0.0, 0.3, 0.4))
    array = np.random.default_rng(0).integers(-1000, 1000, (8, 6, 7)).astype(np.int16)
    _write_dicom_series(tmp_path, Volume(array, geometry), "4", "s")
    (tmp_path / "s004.dcm").unlink()  # slice 4 lost: 10 mm between s003 and s005
    vol = read_volume(tmp_path)
    assert vol.array.shape == (8, 6, 7) and vol.filled_slices == (4,)
    acquired = [0, 1, 2, 3, 5, 6, 7]
    np.testing.assert_array_equal(vol.array[acquired], array[acquired])  # every acquired slice, unchanged
    np.testing.assert_array_equal(vol.array[4], np.round((array[3].astype(float) + array[5]) / 2).astype(np.int16))
    assert vol.geometry.spacing == pytest.approx((0.6, 0.8, 5.0))
    for k in acquired:  # ... at the world position its own file states
        stated = _stated_position(tmp_path / f"s{k:03d}.dcm")
        np.testing.assert_allclose(index_to_world(vol.geometry, np.array([k, 0, 0])), stated, atol=1e-4)


def test_dicom_series_with_two_gaps_fills_each_row(tmp_path: Path) -> None:
    geometry = Geometry((0.6, 0.8, 2.5))
    array = np.arange(10 * 2 * 2, dtype=np.int16).reshape(10, 2, 2) * 3
    _write_dicom_series(tmp_path, Volume(array, geometry), "7", "s")
    for k in (2, 6, 7):
        (tmp_path / f"s{k:03d}.dcm").unlink()
    vol = read_volume(tmp_path)
    assert vol.filled_slices == (2, 6, 7)
    np.testing.assert_array_equal(vol.array, array)  # a linear ramp is filled exactly


def _rewrite_tag(file: Path, tag: str, value: str) -> None:
    """Change one header tag of a written DICOM file in place."""
    image = sitk.ReadImage(str(file))
    image.SetMetaData(tag, value)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    writer.SetFileName(str(file))
    writer.Execute(image)


def _six_slices(folder: Path, uid_suffix: str) -> None:
    """Six empty 5 mm slices s000.dcm ... s005.dcm, at z = 0, 5, ... 25 mm, for the header-rewriting tests."""
    _write_dicom_series(folder, Volume(np.zeros((6, 6, 7), dtype=np.int16), Geometry((0.6, 0.8, 5.0))), uid_suffix,
                        "s")


def test_dicom_series_with_variable_spacing_is_refused(tmp_path: Path) -> None:
    _six_slices(tmp_path, "5")
    _rewrite_tag(tmp_path / "s005.dcm", "0020|0032", "0\\0\\27.0")  # 2 mm too far: an irregular step, not a gap
    with pytest.raises(ValueError, match=r"irregular or overlapping slices\): s004.dcm and s005.dcm are 7 mm apart.*"
                                         r"not a whole number of spacings"):
        read_volume(tmp_path)


def test_a_gantry_tilted_dicom_series_is_refused_with_its_angle(tmp_path: Path) -> None:
    _six_slices(tmp_path, "8")
    shift = 5.0 * np.tan(np.radians(15.0))  # each slice 15 degrees off the normal, as a tilted gantry steps
    for k in range(6):
        _rewrite_tag(tmp_path / f"s{k:03d}.dcm", "0020|0032", f"0\\{k * shift:.6f}\\{5.0 * k:.6f}")
    with pytest.raises(ValueError, match=r"is tilted: its slices step 15 degrees off their normal \(gantry tilt\), "
                                         r"so a regular grid would place s005.dcm 6.7 mm from its true position"):
        read_volume(tmp_path)


def test_a_series_that_is_tilted_by_less_than_the_header_precision_is_read(tmp_path: Path) -> None:
    _six_slices(tmp_path, "9")
    _rewrite_tag(tmp_path / "s003.dcm", "0020|0032", "0.01\\-0.01\\15.0")  # rounding in the header, not a tilt
    assert read_volume(tmp_path).array.shape == (6, 6, 7)


def test_a_series_that_mixes_slice_orientations_is_refused(tmp_path: Path) -> None:
    _six_slices(tmp_path, "10")
    _rewrite_tag(tmp_path / "s004.dcm", "0020|0037", "1\\0\\0\\0\\0\\-1")  # a coronal slice among axial ones
    with pytest.raises(ValueError, match=r"mixes slice orientations: s004.dcm is not parallel to s000.dcm"):
        read_volume(tmp_path)


# ------------------------------------------------------------------------------------------- NIfTI NaN
@pytest.mark.parametrize("name", ["nan.nii.gz", "nan.nii"])
def test_nifti_nan_and_inf_voxels_are_refused_not_read_as_zero(tmp_path: Path, name: str) -> None:
    array = np.linspace(-5.0, 5.0, 4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6)
    array[1, 2, 3], array[2, 0, 0] = np.nan, np.inf
    sitk.WriteImage(sitk.GetImageFromArray(array), str(tmp_path / name))
    assert np.isfinite(sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / name)))).all()  # what ITK alone does
    with pytest.raises(ValueError, match=r"holds 2 NaN/Inf voxel\(s\), which the NIfTI reader would turn into 0"):
        read_volume(tmp_path / name)
    finite = tmp_path / f"ok-{name}"
    sitk.WriteImage(sitk.GetImageFromArray(np.nan_to_num(array, posinf=0.0).astype(np.float64)), str(finite))
    assert count_non_finite(finite) == 0 and read_volume(finite).array.dtype == np.float64
    integers = tmp_path / "int.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((4, 5, 6), np.int16)), str(integers))
    assert count_non_finite(integers) is None  # integer data cannot hold NaN: not read twice


@pytest.mark.parametrize("order", ["<", ">"])
def test_non_finite_voxels_are_counted_in_a_nifti_2_file_of_either_byte_order(tmp_path: Path, order: str,
                                                                               monkeypatch) -> None:
    data = np.array([1.5, np.nan, np.inf, -np.inf, 2.5, 0.0], dtype=order + "f8")
    header = bytearray(544)
    struct.pack_into(f"{order}i", header, 0, 540)  # sizeof_hdr of NIfTI-2
    struct.pack_into(f"{order}h", header, 12, 64)  # datatype float64
    struct.pack_into(f"{order}8q", header, 16, 3, 1, 2, 3, 1, 1, 1, 1)  # dim
    struct.pack_into(f"{order}q", header, 168, 544)  # vox_offset
    struct.pack_into(f"{order}i", header, 348, 2)  # sform_code
    srow = np.arange(1.0, 13.0)
    struct.pack_into(f"{order}12d", header, 400, *srow)  # srow_x, srow_y, srow_z
    (tmp_path / "two.nii").write_bytes(bytes(header) + data.tobytes())
    assert count_non_finite(tmp_path / "two.nii") == 3
    np.testing.assert_array_equal(nifti.sform(tmp_path / "two.nii"), srow.reshape(3, 4))
    monkeypatch.setattr(nifti, "_CHUNK", 16)  # two values a read: the counts add up over the chunks
    assert count_non_finite(tmp_path / "two.nii") == 3
    (tmp_path / "text.nii").write_bytes(b"not a nifti file at all" * 40)
    assert count_non_finite(tmp_path / "text.nii") is None and nifti.sform(tmp_path / "text.nii") is None


# ------------------------------------------------------------------------------------------- NIfTI sform
_SROW = 280  # offset of srow_x in a NIfTI-1 header: srow_x, srow_y, srow_z, 4 float32 each


def _nifti_with_sform(tmp_path: Path, name: str, edit) -> Path:
    """A NIfTI-1 file as SimpleITK writes it (qform = sform = the ROTATED grid), its srow then changed by ``edit``."""
    base = tmp_path / "base.nii"
    write_volume(_volume((5, 6, 7)), base)
    header = bytearray(base.read_bytes())
    srow = np.array(struct.unpack_from("<12f", header, _SROW), dtype=np.float64).reshape(3, 4)
    struct.pack_into("<12f", header, _SROW, *edit(srow).ravel())
    (tmp_path / name).write_bytes(bytes(header))
    return tmp_path / name


def test_a_sheared_sform_that_the_reader_ignores_is_refused(tmp_path: Path) -> None:
    def shear(srow: np.ndarray) -> np.ndarray:
        srow[0, 1] += 0.3  # a shear (0.3 mm per row, 5 rows to the last): ITK then takes the qform
        return srow

    path = _nifti_with_sform(tmp_path, "shear.nii", shear)
    _assert_geometry_close(Geometry.from_sitk(sitk.ReadImage(str(path))), ROTATED)  # ITK alone: the qform, silently
    with pytest.raises(ValueError, match=r"states two different grids: its sform .* used the qform instead; the two "
                                         r"place the grid's corners up to 1.5 mm apart .*fslorient -copyqform2sform"):
        read_volume(path)


def test_a_sform_with_another_slice_spacing_is_refused_naming_both(tmp_path: Path) -> None:
    def thinner(srow: np.ndarray) -> np.ndarray:
        srow[:, 2] /= 2  # the sform's slice axis at half the header's slice spacing (1.25 mm instead of 2.5)
        return srow

    with pytest.raises(ValueError, match=r"spacing by the sform 0.7 x 0.9 x 1.25 mm, by the qform 0.7 x 0.9 x 2.5 mm"):
        read_volume(_nifti_with_sform(tmp_path, "thin.nii", thinner))


def test_a_sform_that_the_reader_follows_is_read_with_its_geometry(tmp_path: Path) -> None:
    def moved(srow: np.ndarray) -> np.ndarray:
        srow[:, 3] += (50.0, -20.0, 7.0)  # another place, still a rotation: ITK and FSL both use the sform
        return srow

    back = read_volume(_nifti_with_sform(tmp_path, "moved.nii", moved))
    np.testing.assert_allclose(back.geometry.origin, np.add(ROTATED.origin, (-50.0, 20.0, 7.0)), atol=1e-3)
    assert read_volume(_nifti_with_sform(tmp_path, "same.nii", lambda srow: srow)).geometry.spacing == pytest.approx(
        ROTATED.spacing)


# ------------------------------------------------------------------------------------------- error paths
def test_missing_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_volume(tmp_path / "nope.nii.gz")


def test_folder_without_dicom_is_reported(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match="no DICOM series found"):
        read_volume(tmp_path)


def test_unreadable_file_is_reported(tmp_path: Path) -> None:
    (tmp_path / "junk.nii.gz").write_text("not an image")
    with pytest.raises(ValueError, match="could not read .*junk.nii.gz"):
        read_volume(tmp_path / "junk.nii.gz")


def test_2d_image_is_rejected_with_fix(tmp_path: Path) -> None:
    sitk.WriteImage(sitk.Image(5, 6, sitk.sitkFloat32), str(tmp_path / "slice.nii.gz"))
    with pytest.raises(ValueError, match="2-D image.*DICOM series folder or a 3-D"):
        read_volume(tmp_path / "slice.nii.gz")


def test_4d_image_is_rejected_with_fix(tmp_path: Path) -> None:
    sitk.WriteImage(sitk.JoinSeries([sitk.Image(4, 5, 6, sitk.sitkFloat32)] * 2), str(tmp_path / "t.nii.gz"))
    with pytest.raises(ValueError, match="4-D image.*extract one 3-D frame"):
        read_volume(tmp_path / "t.nii.gz")


def test_vector_image_is_rejected_with_fix(tmp_path: Path) -> None:
    sitk.WriteImage(sitk.Compose([sitk.Image(4, 5, 6, sitk.sitkFloat32)] * 3), str(tmp_path / "rgb.mha"))
    with pytest.raises(ValueError, match="3 components per voxel.*single channel"):
        read_volume(tmp_path / "rgb.mha")


def test_write_rejects_two_file_formats(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"must end with one of .*use \.mha"):
        write_volume(_volume(), tmp_path / "vol.mhd")
    assert list(tmp_path.iterdir()) == []


def test_write_rejects_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="output folder does not exist"):
        write_volume(_volume(), tmp_path / "missing" / "vol.nii.gz")


def test_write_rejects_non_volume(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="`volume` must be a Volume"):
        write_volume(np.zeros((2, 2, 2)), tmp_path / "vol.nii.gz")  # type: ignore[arg-type]


def test_geometry_from_numpy_order_spacing_round_trips() -> None:
    geometry = Geometry.from_spacing_zyx(np.array([5.0, 0.7, 0.6]))
    assert geometry.spacing == (0.6, 0.7, 5.0) and geometry.spacing_zyx == (5.0, 0.7, 0.6)


def test_geometry_rejects_non_positive_spacing() -> None:
    with pytest.raises(ValueError, match="`spacing` must be positive"):
        Geometry(spacing=(1.0, 0.0, 1.0))


def test_geometry_rejects_non_orthonormal_direction() -> None:
    with pytest.raises(ValueError, match="`direction` must be an orthonormal"):
        Geometry(direction=(2.0, 0, 0, 0, 1, 0, 0, 0, 1))


def test_geometry_rejects_wrong_length_and_nan() -> None:
    with pytest.raises(ValueError, match="`origin` must be 3 finite numbers"):
        Geometry(origin=(0.0, 0.0))
    with pytest.raises(ValueError, match="`spacing` must be 3 finite numbers"):
        Geometry(spacing=(1.0, float("nan"), 1.0))


def test_volume_rejects_non_3d_array() -> None:
    with pytest.raises(ValueError, match=r"must be 3-D \(z, y, x\).*\(4, 5\)"):
        Volume(np.zeros((4, 5)))


@pytest.mark.parametrize("scale", [1, 0.5, float("nan"), float("inf"), True])
def test_upsampled_geometry_rejects_bad_scale(scale: float) -> None:
    with pytest.raises(ValueError, match="`scale` must be (finite|> 1|a finite number > 1)"):
        upsampled_geometry(ROTATED, scale)


def test_upsampled_geometry_rejects_bad_slice_axis() -> None:
    with pytest.raises(ValueError, match="`slice_axis` must be a numpy axis"):
        upsampled_geometry(ROTATED, 2.0, slice_axis=3)


def test_index_to_world_rejects_bad_shape() -> None:
    with pytest.raises(ValueError, match=r"shape \(\.\.\., 3\)"):
        index_to_world(ROTATED, np.zeros((4, 2)))


# --------------------------------------------------------------------------------------- geometry helpers
@pytest.mark.parametrize(
    ("spacing_xyz", "expected"),
    [((0.8, 0.8, 3.0), 0), ((0.8, 3.0, 0.8), 1), ((3.0, 0.8, 0.8), 2), ((1.0, 1.0, 1.0), 0), ((2.0, 2.0, 1.0), 1)],
)
def test_detect_slice_axis_picks_largest_spacing_ties_to_lowest_numpy_axis(spacing_xyz, expected) -> None:
    assert detect_slice_axis(Geometry(spacing=spacing_xyz)) == expected


def test_index_to_world_matches_simpleitk() -> None:
    image = volume_to_sitk(_volume())
    zyx = np.array([[0, 0, 0], [1.5, 2.0, 3.25], [3, 4, 5]])
    expected = [image.TransformContinuousIndexToPhysicalPoint(tuple(p[::-1])) for p in zyx]
    np.testing.assert_allclose(index_to_world(ROTATED, zyx), expected, atol=1e-9)
    np.testing.assert_allclose(index_to_world(ROTATED, zyx[1]), expected[1], atol=1e-9)


@pytest.mark.parametrize("slice_axis", [0, 1, 2])
@pytest.mark.parametrize("scale", [2, 2.5, 4])
def test_lr_slice_j_sits_at_hr_index_j_times_scale(tmp_path: Path, scale: float, slice_axis: int) -> None:
    n_lr = 4
    lr_shape = [5, 6, 7]
    lr_shape[slice_axis] = n_lr
    hr_geometry = upsampled_geometry(ROTATED, scale, slice_axis)
    itk_axis = 2 - slice_axis
    assert hr_geometry.spacing[itk_axis] == pytest.approx(ROTATED.spacing[itk_axis] / scale)
    assert hr_geometry.origin == ROTATED.origin and hr_geometry.direction == ROTATED.direction

    hr_shape = list(lr_shape)
    hr_shape[slice_axis] = math.ceil((n_lr - 1) * scale) + 1
    path = tmp_path / "hr.nii.gz"
    write_volume(Volume(np.zeros(hr_shape, dtype=np.float32), hr_geometry), path)
    read_back = read_volume(path).geometry

    lr_index = np.tile([1.0, 2.0, 3.0], (n_lr, 1))
    lr_index[:, slice_axis] = np.arange(n_lr)
    hr_index = lr_index.copy()
    hr_index[:, slice_axis] *= scale
    lr_world = index_to_world(ROTATED, lr_index)
    np.testing.assert_allclose(index_to_world(hr_geometry, hr_index), lr_world, atol=1e-9)
    np.testing.assert_allclose(index_to_world(read_back, hr_index), lr_world, atol=ATOL_MM * 10)


def test_a_series_with_a_missing_slice_upsamples_with_every_acquired_slice_in_place(tmp_path: Path) -> None:
    from DPNSLCore import upsample

    geometry = Geometry((0.6, 0.8, 5.0), (-50.0, 20.0, 7.5), _rotation(0.0, 0.3, 0.4))
    array = np.random.default_rng(1).integers(-900, 900, (9, 16, 16)).astype(np.int16)
    _write_dicom_series(tmp_path, Volume(array, geometry), "8", "s")
    (tmp_path / "s005.dcm").unlink()
    res = upsample(read_volume(tmp_path), 5, degradation="decimate", device="cpu")
    assert any("1 slice(s) missing from the series (rows 5 of 9" in n for n in res.notes)
    out = res.to_volume()
    for k in (0, 1, 2, 3, 4, 6, 7, 8):
        np.testing.assert_array_equal(out.array[5 * k], array[k])
        stated = _stated_position(tmp_path / f"s{k:03d}.dcm")
        np.testing.assert_allclose(index_to_world(out.geometry, np.array([5 * k, 0, 0])), stated, atol=1e-4)


def test_the_command_line_names_the_series_it_read_and_reads_the_one_asked_for(tmp_path: Path, capsys) -> None:
    from DPNSLCore.cli.upsample import main

    folder = tmp_path / "dicom"
    folder.mkdir()
    geometry = Geometry((0.6, 0.8, 5.0), (-50.0, 20.0, 7.5), _rotation(0.0, 0.3, 0.4))
    big = np.random.default_rng(2).integers(-900, 900, (4, 8, 8)).astype(np.int16)
    _write_dicom_series(folder, Volume(big, geometry), "2", "big", description="AX 5mm")
    _write_dicom_series(folder, Volume(np.full((3, 8, 8), 5, dtype=np.int16), geometry), "3", "small")
    assert main([str(folder), "-o", str(tmp_path / "a.nii.gz"), "--scale", "2", "--method", "linear", "--quiet"]) == 0
    assert f"DICOM: read series {SERIES_UID}2 ('AX 5mm'), 4 file(s)" in capsys.readouterr().err
    np.testing.assert_array_equal(read_volume(tmp_path / "a.nii.gz").array[::2], big)
    assert main([str(folder), "-o", str(tmp_path / "b.nii.gz"), "--scale", "2", "--method", "linear", "--quiet",
                 "--series", f"{SERIES_UID}3"]) == 0
    assert "DICOM: read series" not in capsys.readouterr().err
    np.testing.assert_array_equal(read_volume(tmp_path / "b.nii.gz").array, 5)
