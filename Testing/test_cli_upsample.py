"""`python -m DPNSLCore.upsample` end to end on the shipped real crop: exact slices, geometry, clean errors."""

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from DPNSLCore.cli.upsample import main
from DPNSLCore.resources import SAMPLE_DATA_DIR

SAMPLE = SAMPLE_DATA_DIR / "ct_lung1_5mm_crop.nii.gz"


@pytest.fixture(scope="module")
def small_input(tmp_path_factory) -> Path:
    """A 64x64x12 piece of the shipped lung crop (keeps the test fast)."""
    image = sitk.ReadImage(str(SAMPLE))[64:128, 64:128, 10:22]
    path = tmp_path_factory.mktemp("in") / "lung.nrrd"
    sitk.WriteImage(image, str(path))
    return path


@pytest.mark.parametrize("method", ["linear", "cubic"])
def test_writes_thin_volume_with_exact_slices_and_geometry(small_input, tmp_path, method, capsys):
    out = tmp_path / "thin.nii.gz"
    assert main([str(small_input), "-o", str(out), "--scale", "5", "--method", method, "--quiet"]) == 0
    src, dst = sitk.ReadImage(str(small_input)), sitk.ReadImage(str(out))
    a, b = sitk.GetArrayFromImage(src), sitk.GetArrayFromImage(dst)
    assert b.shape == (56, 64, 64)
    np.testing.assert_array_equal(b[::5], a.astype(np.float32))
    assert dst.GetSpacing() == pytest.approx((src.GetSpacing()[0], src.GetSpacing()[1], 1.0))
    assert dst.GetOrigin() == pytest.approx(src.GetOrigin()) and dst.GetDirection() == src.GetDirection()
    for j in (0, 5, 11):
        assert dst.TransformIndexToPhysicalPoint((3, 7, 5 * j)) == pytest.approx(
            src.TransformIndexToPhysicalPoint((3, 7, j)))
    assert "spacing 5 -> 1 mm" in capsys.readouterr().out


def test_target_spacing_and_non_integer_scale(small_input, tmp_path):
    out = tmp_path / "new" / "folder" / "thin.nrrd"  # missing folders are created
    assert main([str(small_input), "-o", str(out), "--spacing", "2", "--method", "linear", "--quiet"]) == 0
    dst = sitk.ReadImage(str(out))
    assert dst.GetSpacing()[2] == pytest.approx(2.0) and dst.GetSize()[2] == 29  # ceil(11 * 2.5) + 1


def test_missing_input_fails_cleanly(tmp_path, capsys):
    out = tmp_path / "x.nii.gz"
    assert main([str(tmp_path / "nope.nii.gz"), "-o", str(out), "--scale", "2", "--method", "linear"]) == 2
    assert "error:" in capsys.readouterr().err and not out.exists()


def test_bad_scale_fails_cleanly_without_output(small_input, tmp_path, capsys):
    out = tmp_path / "x.nii.gz"
    assert main([str(small_input), "-o", str(out), "--scale", "0.5", "--method", "linear", "--quiet"]) == 2
    assert "must be > 1" in capsys.readouterr().err and not out.exists()


def test_scale_or_spacing_is_required(small_input, tmp_path):
    with pytest.raises(SystemExit):
        main([str(small_input), "-o", str(tmp_path / "x.nii.gz")])
