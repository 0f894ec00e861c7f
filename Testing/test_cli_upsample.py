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
    captured = capsys.readouterr()
    lines = captured.out.splitlines()  # quiet by default: four lines, no notes
    assert len(lines) == 4 and captured.err == ""
    assert lines[0].endswith("(12 x 64 x 64): axis 0 (z): 12 slices x 5 mm -> 56 slices x 1 mm (scale 5), decimate")
    assert lines[1] == f"method {method} (no model)" and lines[2].startswith("max |A x - y| = 0 ")
    assert lines[3] == f"wrote {out} (56 x 64 x 64, int16) and its record {out}.json"


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


def test_output_that_is_the_input_is_refused_and_the_input_is_untouched(small_input, tmp_path, capsys):
    before = small_input.read_bytes()
    for name in (str(small_input), str(small_input.parent / "." / small_input.name)):
        assert main([str(small_input), "-o", name, "--scale", "2", "--method", "linear", "--overwrite"]) == 2
        assert "is the input; DPNSL never overwrites its input" in capsys.readouterr().err
    assert small_input.read_bytes() == before


def test_existing_output_needs_overwrite(small_input, tmp_path, capsys):
    out = tmp_path / "thin.nii.gz"
    out.write_bytes(b"keep me")
    assert main([str(small_input), "-o", str(out), "--scale", "2", "--method", "linear", "--quiet"]) == 2
    assert "exists; pass --overwrite" in capsys.readouterr().err and out.read_bytes() == b"keep me"
    assert main([str(small_input), "-o", str(out), "--scale", "2", "--method", "linear", "--quiet",
                 "--overwrite"]) == 0
    assert sitk.ReadImage(str(out)).GetSize()[2] == 23


def test_existing_part_file_needs_overwrite_before_any_compute(small_input, tmp_path, capsys, monkeypatch):
    parts = tmp_path / "parts"
    parts.mkdir()
    (parts / "thin_detail.nii.gz").write_bytes(b"old")
    monkeypatch.setattr("DPNSLCore.cli.run.read_volume", lambda *a: pytest.fail("read before the checks"))
    assert main([str(small_input), "-o", str(tmp_path / "thin.nii.gz"), "--scale", "2", "--save-parts", str(parts),
                 "--quiet"]) == 2
    assert "thin_detail.nii.gz' exists" in capsys.readouterr().err and not (tmp_path / "thin.nii.gz").exists()


@pytest.mark.parametrize(("name", "message"), [("thin.png", "must end with one of .nii.gz"),
                                               ("folder", "is a folder")])
def test_bad_output_names_fail_before_reading_the_input(small_input, tmp_path, capsys, monkeypatch, name, message):
    (tmp_path / "folder").mkdir()
    monkeypatch.setattr("DPNSLCore.cli.run.read_volume", lambda *a: pytest.fail("read before the checks"))
    assert main([str(small_input), "-o", str(tmp_path / name), "--scale", "2", "--quiet"]) == 2
    assert message in capsys.readouterr().err


def test_unwritable_folder_fails_before_any_compute(small_input, tmp_path, capsys, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir()
    monkeypatch.setattr("DPNSLCore.cli.run.read_volume", lambda *a: pytest.fail("read before the checks"))
    monkeypatch.setattr("pathlib.Path.write_bytes", lambda self, data: (_ for _ in ()).throw(
        PermissionError(13, "Permission denied")))
    assert main([str(small_input), "-o", str(locked / "x.nii.gz"), "--scale", "2", "--quiet"]) == 2
    assert "cannot write into" in capsys.readouterr().err and list(locked.iterdir()) == []


def test_a_failed_part_write_leaves_no_output(small_input, tmp_path, capsys, monkeypatch):
    import DPNSLCore.cli.run as cli

    real, calls = cli.write_volume, []

    def flaky(volume, path):
        calls.append(path)
        if len(calls) == 3:
            raise OSError("disk full")
        real(volume, path)

    monkeypatch.setattr(cli, "write_volume", flaky)
    out, parts = tmp_path / "thin.nii.gz", tmp_path / "parts"
    assert main([str(small_input), "-o", str(out), "--scale", "2", "--method", "linear", "--save-parts", str(parts),
                 "--quiet"]) == 2
    assert "disk full" in capsys.readouterr().err and not out.exists() and list(parts.iterdir()) == []


def test_integer_input_gives_integer_output_unless_float32_is_asked(small_input, tmp_path):
    ints, floats = tmp_path / "i.nii.gz", tmp_path / "f.nii.gz"
    assert main([str(small_input), "-o", str(ints), "--scale", "2", "--method", "cubic", "--quiet"]) == 0
    assert main([str(small_input), "-o", str(floats), "--scale", "2", "--method", "cubic", "--quiet",
                 "--output-dtype", "float32"]) == 0
    a, b = sitk.GetArrayFromImage(sitk.ReadImage(str(ints))), sitk.GetArrayFromImage(sitk.ReadImage(str(floats)))
    src = sitk.GetArrayFromImage(sitk.ReadImage(str(small_input)))
    assert a.dtype == src.dtype == np.int16 and b.dtype == np.float32
    np.testing.assert_array_equal(a, np.rint(b))
    np.testing.assert_array_equal(a[::2], src)  # rounding keeps the decimated observed slices exact


def test_model_modality_and_choices_are_printed(small_input, tmp_path, capsys):
    assert main([str(small_input), "-o", str(tmp_path / "x.nii.gz"), "--scale", "2", "--quiet", "--verbose"]) == 0
    err = "".join(capsys.readouterr())
    assert "axis 0 (z): 12 slices x 5 mm -> 23 slices x 2.5 mm (scale 2), box profile, 5 mm thick every 5 mm" in err
    assert ("acquisition box profile, thickness 1 spacings (auto: the model was trained for slice profiles; the "
            "model's profile)") in err
    assert "model: shipped CT model (dpnsl_ct.safetensors); modality CT because the intensities look like HU" in err
    assert main([str(small_input), "-o", str(tmp_path / "y.nii.gz"), "--scale", "2", "--quiet", "--verbose",
                 "--modality", "mr"]) == 0
    assert "model: shipped MR model (dpnsl_mr.safetensors); modality MR as given" in capsys.readouterr().err


def test_a_profile_shape_given_with_auto_is_the_one_used(small_input, tmp_path, capsys):
    # the shipped models were trained on box profiles: auto keeps the slice-profile acquisition, with the shape given
    assert main([str(small_input), "-o", str(tmp_path / "g.nii.gz"), "--scale", "2", "--quiet", "--verbose",
                 "--profile", "gaussian", "--thickness", "0.85"]) == 0
    err = "".join(capsys.readouterr())
    assert "gaussian profile, 4.25 mm thick every 5 mm" in err
    assert "(auto: the model was trained for slice profiles; the profile given)" in err


def test_untrained_preset_is_refused_unless_allowed(small_input, tmp_path, capsys):
    out = tmp_path / "x.nii.gz"
    assert main([str(small_input), "-o", str(out), "--scale", "2", "--model", "lean", "--quiet", "--verbose"]) == 2
    assert "'lean' is an untrained preset" in capsys.readouterr().err and not out.exists()
    assert main([str(small_input), "-o", str(out), "--scale", "2", "--model", "lean", "--quiet", "--verbose",
                 "--allow-untrained"]) == 0
    assert "warning: the model is untrained" in capsys.readouterr().err


def test_shifted_ct_gets_a_warning(small_input, tmp_path, capsys):
    image = sitk.ReadImage(str(small_input))
    shifted = sitk.Cast(sitk.Clamp(image, lowerBound=-1024) + 1024, sitk.sitkUInt16)
    path = tmp_path / "shifted.nrrd"
    sitk.WriteImage(shifted, str(path))
    assert main([str(path), "-o", str(tmp_path / "x.nii.gz"), "--scale", "2", "--quiet", "--verbose"]) == 0
    err = capsys.readouterr().err
    assert "modality MR" in err and "look like CT stored as HU + 1024" in err


def test_dpnsl_console_script_dispatches_the_same_commands(small_input, tmp_path, capsys):
    from DPNSLCore.cli.main import main as dpnsl

    assert dpnsl(["upsample", str(small_input), "-o", str(tmp_path / "x.nii.gz"), "--scale", "2", "--method",
                  "linear", "--quiet"]) == 0
    assert dpnsl(["nope"]) == 2 and "unknown command 'nope'" in capsys.readouterr().err


def test_the_fitted_detail_gain_is_printed_and_no_calibrate_skips_it(small_input, tmp_path, capsys):
    out = tmp_path / "thin.nrrd"
    assert main([str(small_input), "-o", str(out), "--scale", "2", "--degradation", "decimate", "--verbose"]) == 0
    calibrated = capsys.readouterr().err
    assert "  detail gain " in calibrated and "in-plane view(s) of this volume, resampled to" in calibrated
    assert main([str(small_input), "-o", str(out), "--scale", "2", "--degradation", "decimate", "--no-calibrate",
                 "--overwrite", "--verbose"]) == 0
    plain = capsys.readouterr().err
    assert "detail gain" not in plain and "calibration" not in plain


def test_ensemble_is_said_and_a_bad_size_is_refused_before_any_output(small_input, tmp_path, capsys):
    out = tmp_path / "thin.nrrd"
    assert main([str(small_input), "-o", str(out), "--scale", "2", "--degradation", "decimate", "--ensemble", "2",
                 "--no-calibrate", "--verbose"]) == 0
    said = capsys.readouterr().err
    assert "  ensemble: the network's estimate averaged over 2 in-plane flips/transposes" in said
    bad = tmp_path / "bad.nrrd"
    with pytest.raises(SystemExit):
        main([str(small_input), "-o", str(bad), "--scale", "2", "--ensemble", "3"])
    assert "--ensemble: invalid choice: 3 (choose from 1, 2, 4, 8)" in capsys.readouterr().err
    assert not bad.exists()


def test_ctrl_c_during_the_run_or_the_writing_leaves_no_output(small_input, tmp_path, capsys, monkeypatch):
    import DPNSLCore.cli.run as cli

    out, parts = tmp_path / "x.nii.gz", tmp_path / "parts"
    written, write = [], cli.write_volume

    def interrupted_at_the_second_file(volume, path):
        written.append(path)
        if len(written) == 2:
            raise KeyboardInterrupt
        write(volume, path)

    monkeypatch.setattr(cli, "write_volume", interrupted_at_the_second_file)
    args = [str(small_input), "-o", str(out), "--scale", "2", "--method", "linear", "--save-parts", str(parts),
            "--quiet"]
    assert main(args) == 130
    assert "interrupted: nothing written" in capsys.readouterr().err
    assert not out.exists() and not any(parts.iterdir()) and len(written) == 2

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "upsample", interrupted)
    assert main(args) == 130 and not out.exists()


def test_a_run_that_does_not_fit_in_memory_fails_cleanly_without_output(small_input, tmp_path, capsys, monkeypatch):
    from DPNSLCore.inference import api

    monkeypatch.setattr(api, "available_memory_bytes", lambda: 1000)
    out = tmp_path / "thin.nii.gz"
    assert main([str(small_input), "-o", str(out), "--scale", "4", "--method", "linear", "--quiet"]) == 2
    assert "error: this run needs about" in capsys.readouterr().err and not out.exists()
