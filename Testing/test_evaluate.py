"""Evaluation protocol: known answers, tables and CSV, the learned-model path, the paired check, error paths."""

import csv
import math
from dataclasses import replace

import numpy as np
import pytest

from DPNSLCore.data.stacks import TrainingVolume
from DPNSLCore.evaluation.evaluate import ProtocolOptions, evaluate, main, score_volume
from DPNSLCore.evaluation.paired import paired_check
from DPNSLCore.evaluation.report import write_report
from DPNSLCore.io.intensity import IntensityNormalizer
from DPNSLCore.io.volumes import Geometry, Volume, write_volume
from DPNSLCore.models import PRESETS, build_model

IDENTITY = IntensityNormalizer("mr", 1.0, 0.0)  # data already in [0, 1]
FAST = ProtocolOptions(ssim=False, device="cpu")


def z_profile(values, size=16) -> TrainingVolume:
    """A volume constant in-plane whose slices follow ``values``."""
    column = np.asarray(values, np.float32)[:, None, None]
    return TrainingVolume(np.broadcast_to(column, (len(values), size, size)).copy(), name="z", normalizer=IDENTITY)


def test_linear_along_z_is_reproduced_exactly_by_linear_interpolation():
    volume = z_profile((8 + np.arange(25)) / 64)  # dyadic values: x2 and x4 weights are exact in float32
    scores = score_volume(volume, [2, 3, 4], ["linear"], options=ProtocolOptions(device="cpu"))
    for score in scores:
        assert score.ssim == pytest.approx(1.0) and score.consistency == 0.0
        if score.scale == 3:  # weights 1/3, 2/3 round in float32
            assert score.psnr > 130 and score.mae.max() < 1e-6
        else:
            assert score.psnr == math.inf and not score.mae.any()


def test_hand_computed_psnr_of_an_alternating_profile():
    # HR slices 0.5, 0.6, 0.5, 0.6, ...: y (every 2nd) is all 0.5, so linear misses 0.1 on each odd slice.
    volume = z_profile(0.5 + 0.1 * (np.arange(21) % 2))
    [score] = score_volume(volume, [2], ["linear"], options=FAST)
    # slices 2..18 are scored (the first and last 2 dropped): 8 odd slices of 17, squared error 0.01
    assert score.psnr == pytest.approx(10 * math.log10(17 / (8 * 0.01)), abs=1e-4)
    np.testing.assert_allclose(score.mae, 0.1 * (np.arange(21) % 2), atol=1e-6)


def test_acquired_slices_have_zero_error_for_consistent_methods():
    rng = np.random.default_rng(0)
    volume = TrainingVolume(rng.random((19, 12, 12), dtype=np.float32), name="noise", normalizer=IDENTITY)
    for score in score_volume(volume, [3], ["linear", "cubic"], options=FAST):
        assert score.consistency == 0.0
        assert not score.mae[::3].any() and score.mae[1::3].min() > 0


def test_sample_degradation_reports_baseline_inconsistency():
    rng = np.random.default_rng(1)
    volume = TrainingVolume(rng.random((21, 12, 12), dtype=np.float32), name="noise", normalizer=IDENTITY)
    options = ProtocolOptions(degradation="sample", ssim=False, device="cpu")
    [score] = score_volume(volume, [2.5], ["cubic"], options=options)
    assert score.consistency > 1e-3


def test_untrained_model_runs_the_product_path_and_stays_consistent():
    rng = np.random.default_rng(2)
    hu = rng.normal(0, 300, (13, 16, 16)).astype(np.float32)
    norm = IntensityNormalizer.for_ct()
    volume = TrainingVolume(norm.forward(hu), name="ct", normalizer=norm)
    model = build_model(PRESETS["lean"].replace(modality="ct"))
    [score] = score_volume(volume, [3], ["dpnsl"], model=model, options=FAST)
    assert score.consistency < 1e-6 and score.mae[::3].max() < 1e-6 and math.isfinite(score.psnr)


def test_scores_record_the_fitted_detail_gain(tmp_path):
    rng = np.random.default_rng(3)
    norm = IntensityNormalizer.for_ct()
    volume = TrainingVolume(norm.forward(rng.normal(0, 300, (13, 24, 24)).astype(np.float32)), name="ct",
                            normalizer=norm)
    model = build_model(PRESETS["lean"].replace(modality="ct"))
    scores = score_volume(volume, [3], ["linear", "dpnsl"], model=model, options=FAST)
    plain = score_volume(volume, [3], ["dpnsl"], model=model, options=replace(FAST, calibrate=False))
    assert scores[0].detail_gain == 1.0 and plain[0].detail_gain == 1.0
    assert 0.0 <= scores[1].detail_gain <= 1.5 and scores[1].calibration_db is not None  # fitted (or 1 if it won
    assert scores[0].calibration_db is None and plain[0].calibration_db is None  # too little on the views)
    write_report(scores, tmp_path, title="t")
    with open(tmp_path / "scores.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [float(r["detail_gain"]) for r in rows] == [1.0, scores[1].detail_gain]
    assert [r["calibration_db"] for r in rows] == ["", str(scores[1].calibration_db)]


@pytest.fixture
def ct_file(tmp_path):
    z = np.arange(29, dtype=np.float32)[:, None, None]
    yx = np.sin(np.arange(20, dtype=np.float32) / 3)[None, :, None] * np.ones((1, 1, 20), np.float32)
    hu = (-200 + 40 * z + 100 * yx + 5 * np.cos(z)).astype(np.int16)
    path = tmp_path / "ct.nii.gz"
    write_volume(Volume(hu, Geometry(spacing=(0.8, 0.8, 1.0))), path)
    return path


def test_report_files_hold_every_scale_and_method(ct_file, tmp_path):
    out = tmp_path / "report"
    result = evaluate([ct_file], "2,3", "linear,cubic", modality="ct", out=out, options=ProtocolOptions(device="cpu"))
    assert [(r.scale, r.method) for r in result.summary] == [(2, "linear"), (2, "cubic"), (3, "linear"), (3, "cubic")]
    text = (out / "results.md").read_text(encoding="utf-8")
    assert "| ×2 | cubic |" in result.markdown and text.endswith(result.markdown[-40:])
    with open(out / "summary.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["scale"], r["method"]) for r in rows] == [(f"{r.scale:g}", r.method) for r in result.summary]
    linear = [r for r in rows if r["method"] == "linear"][0]
    assert float(linear["psnr_mean"]) == pytest.approx(result.scores[0].psnr) and float(linear["psnr_std"]) == 0.0
    assert float(linear["gain_vs_linear"]) == 0.0 and float(linear["max_consistency_error"]) == 0.0
    for name in ("mae_x2.png", "mae_x3.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_thick_slice_protocol_simulates_box_profiles(ct_file):
    paper = evaluate([ct_file], "3", "linear", modality="ct", options=FAST)
    thick = evaluate([ct_file], "3", "linear", modality="ct",
                     options=ProtocolOptions(ssim=False, device="cpu", degradation="profile", thickness=1.0))
    assert "box profile (thickness 1 spacings)" in thick.markdown and "decimate" in paper.markdown
    assert thick.scores[0].psnr != paper.scores[0].psnr  # another acquisition, other observed slices
    assert thick.scores[0].consistency > 0  # linear ignores the profile: not consistent with it
    wider = evaluate([ct_file], "3", "linear", modality="ct",
                     options=ProtocolOptions(ssim=False, device="cpu", degradation="profile", thickness=1.5))
    assert wider.scores[0].psnr != thick.scores[0].psnr  # the thickness reaches the simulation


def test_evaluate_command_line_takes_the_thickness(ct_file, capsys):
    assert main(["--data", str(ct_file), "--scales", "3", "--methods", "linear", "--no-ssim", "--modality", "ct",
                 "--degradation", "profile", "--thickness", "1.5"]) == 0
    assert "box profile (thickness 1.5 spacings)" in capsys.readouterr().out


def test_block_restricts_the_slices(ct_file):
    result = evaluate([ct_file], "2", "linear", modality="ct", block="4:21", options=FAST)
    assert result.scores[0].volume.endswith("[4:21]") and result.scores[0].mae.size == 17


def test_held_out_is_the_block_training_held_out(ct_file):
    result = evaluate([ct_file], "2", "linear", modality="ct", held_out=0.25, options=FAST)
    assert result.scores[0].volume.endswith("[22:29]") and result.scores[0].mae.size == 7
    with pytest.raises(ValueError, match="not both"):
        evaluate([ct_file], "2", "linear", block="0:10", held_out=0.25)


def test_paired_check_is_exact_for_linear_data_on_shifted_grids(tmp_path):
    thin_hu = np.broadcast_to((-300 + 25 * np.arange(21, dtype=np.float32))[:, None, None], (21, 12, 12))
    thin = Volume(thin_hu.astype(np.float32), Geometry(spacing=(1, 1, 1), origin=(0, 0, -2)))  # z = -2 .. 18 mm
    write_volume(thin, tmp_path / "thin.nrrd")
    thick = thin_hu[2::5].astype(np.float32)  # slices at z = 0, 5, 10, 15 mm
    write_volume(Volume(thick, Geometry(spacing=(1, 1, 5), origin=(0, 0, 0))), tmp_path / "thick.nrrd")
    rows = paired_check(tmp_path / "thick.nrrd", tmp_path / "thin.nrrd", ["linear", "cubic"], modality="ct",
                        out=tmp_path / "paired")
    linear = rows[0]
    assert linear.scale == 5.0 and linear.voxels == 16 * 144 and linear.psnr > 100
    assert (tmp_path / "paired" / "paired.md").read_text().count("| ×5 |") == 2
    assert linear.acquisition == "decimate"  # auto, no trained profile: decimate for the integer ratio


def test_paired_check_uses_the_given_slice_profile(tmp_path):
    thin_hu = (-300 + 40 * np.sin(np.arange(41, dtype=np.float32) / 3))[:, None, None] * np.ones((1, 10, 10))
    write_volume(Volume(thin_hu.astype(np.float32), Geometry(spacing=(1, 1, 1))), tmp_path / "thin.nrrd")
    write_volume(Volume(thin_hu[::5].astype(np.float32), Geometry(spacing=(1, 1, 5))), tmp_path / "thick.nrrd")
    rows = {}
    for label, options in {"auto": {}, "box": {"thickness": 1.2}, "gauss": {"profile": "gaussian"}}.items():
        (row,) = paired_check(tmp_path / "thick.nrrd", tmp_path / "thin.nrrd", ["cubic"], modality="ct", **options)
        rows[label] = row
    assert rows["auto"].acquisition == "decimate"
    assert rows["box"].acquisition == "box profile, 6 mm thick every 5 mm"  # given: profile, not decimate
    assert rows["gauss"].acquisition == "gaussian profile, 5 mm thick every 5 mm"
    main_out = tmp_path / "cli"
    assert main(["--paired", str(tmp_path / "thick.nrrd"), str(tmp_path / "thin.nrrd"), "--methods", "cubic",
                 "--modality", "ct", "--profile", "gaussian", "--thickness", "0.9",
                 "--out", str(main_out)]) == 0
    assert "gaussian profile, 4.5 mm thick every 5 mm" in (main_out / "paired.md").read_text()


# ---- errors: one per rule ----


def test_missing_data_path_is_reported(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        evaluate([tmp_path / "missing.nii.gz"], "2", "linear")


def test_scale_not_above_one_is_rejected(ct_file):
    with pytest.raises(ValueError, match="factors > 1"):
        evaluate([ct_file], "1,2", "linear")


def test_unknown_method_is_rejected(ct_file):
    with pytest.raises(ValueError, match="subset of dpnsl, linear, cubic"):
        evaluate([ct_file], "2", "linear,nearest")


def test_too_few_slices_for_the_ssim_window_is_explained():
    with pytest.raises(ValueError, match="4 scored slices at scale 3.*--no-ssim"):
        score_volume(z_profile(np.linspace(0, 1, 10)), [3], ["linear"], options=ProtocolOptions(device="cpu"))


def test_scales_a_short_block_cannot_hold_are_skipped_and_listed(ct_file):
    result = evaluate([ct_file], "2,7", "linear", modality="ct", block="0:20", options=ProtocolOptions(device="cpu"))
    assert [s.scale for s in result.scores] == [2.0]
    assert "skipped" in result.markdown and "scale 7" in result.markdown
    with pytest.raises(ValueError, match="no volume is long enough"):
        evaluate([ct_file], "7", "linear", modality="ct", block="0:20", options=ProtocolOptions(device="cpu"))


def test_model_of_another_modality_is_rejected():
    model = build_model(PRESETS["lean"].replace(modality="ct"))
    with pytest.raises(ValueError, match="trained on CT"):
        score_volume(z_profile(np.linspace(0, 1, 9)), [2], ["dpnsl"], model=model, options=FAST)


def test_command_line_errors_exit_with_code_2(ct_file, capsys):
    assert main(["--data", str(ct_file), "--scales", "0.5"]) == 2
    assert "factors > 1" in capsys.readouterr().err
    assert main(["--data", str(ct_file) + ".missing", "--methods", "linear"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["--scales", "2"]) == 2
    assert "--data" in capsys.readouterr().err


def test_command_line_prints_the_table(ct_file, capsys):
    assert main(["--data", str(ct_file), "--scales", "2", "--methods", "linear", "--no-ssim", "--modality", "ct"]) == 0
    assert "| ×2 | linear |" in capsys.readouterr().out


def test_hr_axes_score_a_thick_scan_along_its_in_plane_axes_and_a_thin_one_along_all(tmp_path):
    from DPNSLCore.data.stacks import TrainingVolume
    from DPNSLCore.evaluation.evaluate import volume_views

    thick = TrainingVolume(np.zeros((6, 20, 30), np.float32), (5.0, 0.6, 0.7), "thick")
    views = volume_views(thick, "hr")
    assert [v.name for v in views] == ["thick [along y]", "thick [along x]"]
    assert [v.array.shape for v in views] == [(20, 6, 30), (30, 6, 20)] and views[1].spacing == (0.7, 5.0, 0.6)
    assert len(volume_views(TrainingVolume(np.zeros((8, 8, 8), np.float32), (1.0, 0.45, 0.45)), "hr")) == 3
    assert volume_views(thick, "z") == [thick]
    thin = TrainingVolume(np.zeros((8, 8, 8), np.float32), (1.0, 0.45, 0.45), "thin")
    assert volume_views(thin, "auto") == [thin] and len(volume_views(thick, "auto")) == 2
    with pytest.raises(ValueError, match="'z', 'hr' or 'auto'"):
        volume_views(thick, "all")


def test_dpnsl_gets_the_products_mr_input_rule_on_a_normalised_stack():
    """The protocol normalises MR by min/max; the network then gets upsample's own MR input rule, as users do."""
    from DPNSLCore.evaluation.evaluate import upsample_normalised

    rng = np.random.default_rng(0)
    lr = rng.uniform(0.0, 0.4, (5, 12, 12)).astype(np.float32)
    lr[2, 3, 3] = 1.0  # one bright voxel: the protocol's maximum
    model = build_model(PRESETS["lean"].replace(modality="mr"))
    result = upsample_normalised(lr, 2, "dpnsl", model=model, normalizer=IntensityNormalizer("mr", 1.0, 0.0),
                                 device="cpu", calibrate=False)
    assert any(note.startswith("MR intensities given to the network from ") and "the maximum 1 lies" in note
               for note in result.notes)
    ct = upsample_normalised(lr, 2, "dpnsl", model=build_model(PRESETS["lean"].replace(modality="ct")),
                             normalizer=IntensityNormalizer.for_ct(), device="cpu", calibrate=False)
    assert not any(note.startswith("MR intensities") for note in ct.notes)  # CT: the HU window, as given


def test_no_bounds_leaves_the_network_output_where_it_is_and_says_so():
    rng = np.random.default_rng(7)
    norm = IntensityNormalizer.for_ct()
    volume = TrainingVolume(norm.forward(rng.normal(-600, 500, (13, 24, 24)).astype(np.float32)), name="ct",
                            normalizer=norm)
    model = build_model(PRESETS["lean"].replace(modality="ct"))
    options = replace(FAST, degradation="profile", calibrate=False)
    kept = score_volume(volume, [3], ["dpnsl"], model=model, options=options)[0]
    free = score_volume(volume, [3], ["dpnsl"], model=model, options=replace(options, bounds=False))[0]
    assert kept.psnr != free.psnr and kept.consistency < 1e-4 and free.consistency < 1e-4
    assert "without the physical range" in replace(options, bounds=False).acquisition_text()
