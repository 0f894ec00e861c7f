"""Training: checkpoints and log, exact resume, the loss going down, option handling and errors."""

import csv

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from DPNSLCore.io.volumes import Geometry, Volume, write_volume
from DPNSLCore.models import PRESETS, build_model, load_checkpoint, read_checkpoint_info
from DPNSLCore.ops.operators import make_degradation
from DPNSLCore.training import state as ts
from DPNSLCore.training.train import main, resolve_args


@pytest.fixture(scope="module")
def ct_file(tmp_path_factory):
    rng = np.random.default_rng(0)
    z, y, x = np.meshgrid(np.arange(40), np.arange(20), np.arange(20), indexing="ij")
    hu = 300 * np.sin(z / 4 + y / 5) * np.cos(x / 6) + rng.normal(0, 20, z.shape)
    path = tmp_path_factory.mktemp("data") / "ct.nii.gz"
    write_volume(Volume(hu.astype(np.int16), Geometry(spacing=(0.8, 0.8, 1.0))), path)
    return path


def tiny_run(ct_file, out, steps, *extra):
    """Options of a tiny, fast run: one scale, 12 x 12 crops, validation every 2 steps."""
    return ["--data", str(ct_file), "--modality", "ct", "--scales", "2", "--crop", "12", "--batch-size", "2",
            "--steps", str(steps), "--lr-step", "3", "--lr", "1e-3", "--val-every", "2", "--log-every", "1",
            "--val-block", "0.3", "--workers", "0", "--device", "cpu", "--quiet", "--out", str(out), *extra]


def read_log(folder):
    with open(folder / ts.LOG_FILE, newline="") as handle:
        return list(csv.DictReader(handle))


def test_run_writes_model_state_best_and_log(ct_file, tmp_path):
    assert main(tiny_run(ct_file, tmp_path, 4)) == 0
    model = load_checkpoint(tmp_path / ts.MODEL_FILE)
    extra = read_checkpoint_info(tmp_path / ts.MODEL_FILE)["extra"]
    assert extra["steps"] == 4 and extra["modality"] == "ct" and extra["scales"] == [2.0]
    assert "--steps 4" in extra["command"] and extra["data"] == [str(ct_file)] and extra["wall_time_s"] >= 0
    assert model.config.replace(input_shift=0.0, input_scale=1.0) == (
        PRESETS["lean"].replace(modality="ct", acquisition={"kind": "decimate"}))
    assert model.config.input_scale > 1  # standardised from the training data (normalised CT has std < 1)
    state = ts.load_state(tmp_path)
    assert state["step"] == 4 and state["scheduler"]["last_epoch"] == 4
    assert (tmp_path / ts.BEST_FILE).is_file()
    rows = read_log(tmp_path)
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4]
    assert [float(r["lr"]) for r in rows] == [1e-3, 1e-3, 5e-4, 5e-4]
    assert rows[0]["val_psnr_x2_dpnsl"] == "" and float(rows[1]["val_psnr_x2_linear"]) > 20
    gain = float(rows[3]["val_psnr_x2_dpnsl"]) - float(rows[3]["val_psnr_x2_linear"])
    assert float(rows[3]["val_gain_x2_linear"]) == pytest.approx(gain, abs=1e-4)
    best = read_checkpoint_info(tmp_path / ts.BEST_FILE)["extra"]["val"]["val_mean_gain"]
    assert best == pytest.approx(max(float(r["val_mean_gain"]) for r in rows if r["val_mean_gain"]), abs=1e-4)


def test_ctrl_c_keeps_the_last_checkpoint_says_how_to_resume_and_the_resume_is_exact(ct_file, tmp_path, capsys,
                                                                                       monkeypatch):
    import DPNSLCore.training.train as module

    straight, split = tmp_path / "straight", tmp_path / "split"
    assert main(tiny_run(ct_file, straight, 4, "--checkpoint-every", "2")) == 0
    calls, optimise = [], module._optimise

    def interrupted_at_step_3(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return optimise(*args, **kwargs)

    monkeypatch.setattr(module, "_optimise", interrupted_at_step_3)
    assert main(tiny_run(ct_file, split, 4, "--checkpoint-every", "2")) == 130
    err = capsys.readouterr().err
    assert f"interrupted: the checkpoints written so far in {split} are kept" in err
    assert f"--resume {split}" in err and ts.load_state(split)["step"] == 2
    monkeypatch.setattr(module, "_optimise", optimise)
    assert main(["--resume", str(split), "--steps", "4", "--quiet"]) == 0
    a, b = load_file(straight / ts.MODEL_FILE), load_file(split / ts.MODEL_FILE)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_metric_log_drops_rows_after_the_resumed_step(tmp_path):
    log = ts.MetricLog(tmp_path / "log.csv", ["step", "loss"])
    for step in range(1, 6):
        log.append({"step": step, "loss": 1.0 / step})
    assert [r["step"] for r in ts.MetricLog(tmp_path / "log.csv", ["step", "loss"], resume_step=3).read()] == [
        "1", "2", "3"]
    with pytest.raises(ValueError, match="other columns"):
        ts.MetricLog(tmp_path / "log.csv", ["step", "loss", "lr"], resume_step=3)


def test_resume_continues_bit_identically(ct_file, tmp_path):
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert main(tiny_run(ct_file, straight, 4)) == 0
    assert main(tiny_run(ct_file, split, 2)) == 0
    assert main(["--resume", str(split), "--steps", "4", "--quiet"]) == 0
    a, b = load_file(straight / ts.MODEL_FILE), load_file(split / ts.MODEL_FILE)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert [r["loss"] for r in read_log(straight)] == [r["loss"] for r in read_log(split)]
    assert ts.load_state(split)["step"] == 4


def test_loss_option_changes_the_training(ct_file, tmp_path):
    # same seed and data: only the loss differs, so the weights and the logged losses must differ
    l1, mse = tmp_path / "l1", tmp_path / "mse"
    assert main(tiny_run(ct_file, l1, 2, "--loss", "l1")) == 0
    assert main(tiny_run(ct_file, mse, 2, "--loss", "mse")) == 0
    a, b = load_file(l1 / ts.MODEL_FILE), load_file(mse / ts.MODEL_FILE)
    assert any(not torch.equal(a[k], b[k]) for k in a)
    first_l1, first_mse = float(read_log(l1)[0]["loss"]), float(read_log(mse)[0]["loss"])
    assert first_mse < first_l1  # squared errors of normalised intensities (< 1) are smaller than absolute ones


def test_gain_loss_trains_from_the_anchor_in_decibels(ct_file, tmp_path):
    assert main(tiny_run(ct_file, tmp_path, 3, "--loss", "gain")) == 0
    losses = [float(r["loss"]) for r in read_log(tmp_path)]
    assert abs(losses[0]) < 0.01  # a fresh model is the anchor up to its near-zero last layer: about 0 dB of change
    assert min(losses) < 0  # dB against the anchor: below 0 once better than it (L1 and MSE are never negative)
    assert ts.load_args(tmp_path)["loss"] == "gain"


def test_a_joint_run_normalises_each_volume_by_its_own_rule_and_makes_a_model_for_any_modality(ct_file, tmp_path,
                                                                                                capsys):
    z, y, x = np.meshgrid(np.arange(40), np.arange(20), np.arange(20), indexing="ij")
    mr_file, air_file = tmp_path / "mr.nii.gz", tmp_path / "air.nii.gz"
    write_volume(Volume((400 + 300 * np.sin(z / 3) * np.cos(y / 4 + x / 5)).astype(np.int16),
                        Geometry(spacing=(1.0, 1.0, 1.0))), mr_file)
    hu = np.where(x < 5, -1000, 40 + 300 * np.sin(z / 4 + y / 5))  # a body in air: guessed CT
    write_volume(Volume(hu.astype(np.int16), Geometry(spacing=(1.0, 1.0, 1.0))), air_file)
    ct_model = tmp_path / "ct"
    assert main(tiny_run(ct_file, ct_model, 1)) == 0
    run = tmp_path / "joint"
    argv = tiny_run(ct_file, run, 2, "--data", str(air_file), str(mr_file), "--modality", "auto",
                    "--init", str(ct_model / ts.MODEL_FILE))  # a CT model may start a joint run
    assert main(argv) == 0
    assert "modalities: air.nii.gz CT, mr.nii.gz MR" in capsys.readouterr().out  # said, not silent
    assert ts.load_args(run)["volume_modalities"] == {str(air_file): "ct", str(mr_file): "mr"}
    model = load_checkpoint(run / ts.MODEL_FILE)
    assert model.config.modality is None
    assert read_checkpoint_info(run / ts.MODEL_FILE)["extra"]["volume_modalities"][str(mr_file)] == "mr"
    from DPNSLCore import upsample

    volume = (400 + 300 * np.sin(z / 3)).astype(np.float32)[:9]
    result = upsample(volume, 2, model=model, device="cpu", degradation="decimate")
    assert result.modality == "mr"
    assert any("a model for any modality: the rule follows the input, guessed" in n for n in result.notes)
    assert main(argv[:-2] + ["--init", str(ct_model / ts.MODEL_FILE), "--out", str(tmp_path / "again")]) == 0


def test_only_rank_0_lists_the_modalities_of_a_joint_run(ct_file, tmp_path, capsys):
    from DPNSLCore.training.train import _prepare_data

    argv = tiny_run(ct_file, tmp_path / "run", 1, "--modality", "auto")
    _prepare_data(resolve_args(argv), report=False)  # another rank of a torchrun job: silent
    assert "modalities:" not in capsys.readouterr().out
    _prepare_data(resolve_args(argv))
    assert "modalities: " in capsys.readouterr().out


def test_checkpoint_config_records_the_modality(ct_file, tmp_path):
    assert main(tiny_run(ct_file, tmp_path, 1)) == 0
    assert read_checkpoint_info(tmp_path / ts.MODEL_FILE)["config"].modality == "ct"
    assert load_checkpoint(tmp_path / ts.MODEL_FILE).config.modality == "ct"


def test_the_profile_acquisition_reaches_validation_checkpoint_and_upsample(ct_file, tmp_path):
    thin, thick = tmp_path / "t1", tmp_path / "t15"
    assert main(tiny_run(ct_file, thin, 2, "--degradation", "profile", "--thickness", "1.0")) == 0
    assert main(tiny_run(ct_file, thick, 2, "--degradation", "profile", "--thickness", "1.5")) == 0
    # the validator simulates the trained acquisition: the linear baseline scores differ with the thickness
    assert read_log(thin)[-1]["val_psnr_x2_linear"] != read_log(thick)[-1]["val_psnr_x2_linear"]
    info = read_checkpoint_info(thick / ts.MODEL_FILE)
    expected = {"kind": "profile", "profile": "box", "thickness": 1.5}
    assert info["config"].acquisition == expected and info["extra"]["acquisition"] == expected
    from DPNSLCore import upsample

    y = np.random.default_rng(0).normal(0, 100, (6, 12, 12)).astype(np.float32)
    result = upsample(y, 2, model=str(thick / ts.MODEL_FILE), device="cpu")  # degradation auto: the model's
    assert (result.plan.degradation, result.plan.thickness) == ("profile", 1.5)
    assert ("acquisition box profile, thickness 1.5 spacings (auto: the model was trained for slice profiles; the "
            "model's profile)") in result.notes
    assert upsample(y, 2, model=str(thick / ts.MODEL_FILE), device="cpu", degradation="decimate").plan.degradation \
        == "decimate"  # an explicit choice wins


def test_resume_refuses_to_change_the_recipe(ct_file, tmp_path):
    assert main(tiny_run(ct_file, tmp_path, 1)) == 0
    with pytest.raises(ValueError, match=r"cannot change: \['lr'\]"):
        resolve_args(["--resume", str(tmp_path), "--lr", "0.5"])


def test_l1_training_reduces_the_loss_on_a_fixed_batch():
    torch.manual_seed(0)
    model = build_model(PRESETS["lean"])
    deg = make_degradation("decimate", 2, 4)
    z = torch.arange(deg.n_hr, dtype=torch.float32).view(1, 1, -1, 1, 1)
    hr = 0.5 + 0.2 * torch.sin(z * 1.3 + torch.linspace(0, 3, 12).view(1, 1, 1, -1, 1)).expand(2, 1, -1, 12, 12)
    y = deg.forward(hr)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3, betas=(0.9, 0.999))
    losses = []
    for _ in range(30):
        loss = torch.nn.functional.l1_loss(model(y, deg)["output"], hr)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]


def test_default_lr_step_is_a_fifth_of_the_steps(ct_file, tmp_path):
    args = resolve_args(["--data", str(ct_file), "--modality", "mr", "--steps", "1000", "--out", str(tmp_path)])
    assert args.lr_step == 200 and args.checkpoint_every == args.val_every and args.val_block == 0.15


# ---- errors: one per rule ----


def test_missing_data_path_exits_with_a_message(tmp_path, capsys):
    assert main(tiny_run(tmp_path / "missing.nii.gz", tmp_path / "out", 1)) == 2
    assert "does not exist" in capsys.readouterr().err


def test_scale_not_above_one_is_rejected(ct_file, tmp_path):
    with pytest.raises(ValueError, match="factors > 1"):
        resolve_args(["--data", str(ct_file), "--modality", "ct", "--scales", "1,2"])


def test_modality_is_required(ct_file):
    with pytest.raises(ValueError, match="--modality"):
        resolve_args(["--data", str(ct_file)])


def test_amp_needs_cuda(ct_file, tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    assert main([*tiny_run(ct_file, tmp_path, 1), "--amp"]) == 2
    assert "--amp needs a CUDA device" in capsys.readouterr().err


def test_resume_without_a_run_folder_is_explained(tmp_path):
    with pytest.raises(FileNotFoundError, match="--resume needs a run folder"):
        resolve_args(["--resume", str(tmp_path)])


def test_validation_block_too_short_for_the_scales(ct_file, tmp_path, capsys):
    assert main([*tiny_run(ct_file, tmp_path, 1), "--val-scales", "4", "--val-block", "0.2"]) == 2
    assert "raise --val-block" in capsys.readouterr().err


def test_mse_loss_and_cubic_anchor_are_recorded_in_the_run(ct_file, tmp_path):
    from DPNSLCore.models import load_checkpoint

    assert main(tiny_run(ct_file, tmp_path, 2, "--loss", "mse", "--anchor", "cubic", "--input-scale", "5")) == 0
    model = load_checkpoint(tmp_path / "last.safetensors")
    assert model.config.anchor == "cubic" and model.config.input_scale == 5.0
    assert float(read_log(tmp_path)[-1]["loss"]) < 0.05  # squared errors of normalised CT are small


def test_a_mixed_run_draws_both_acquisitions_records_them_and_resumes_exactly(ct_file, tmp_path):
    args = ("--degradation", "mix", "--thickness", "0.75:1.5", "--decimate-share", "0.5", "--scales", "1.5:3",
            "--val-scales", "2", "--projection", "spline", "--anchor", "cubic")
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert main(tiny_run(ct_file, straight, 4, *args)) == 0
    assert main(tiny_run(ct_file, split, 2, *args)) == 0
    assert main(["--resume", str(split), "--steps", "4", "--quiet"]) == 0
    a, b = load_file(straight / ts.MODEL_FILE), load_file(split / ts.MODEL_FILE)
    assert all(torch.equal(a[k], b[k]) for k in a)
    row = read_log(straight)[-1]  # both protocols are validated, the mean gain is over both
    gains = [float(row[f"val_gain_x2_{tag}_linear"]) for tag in ("decimate", "profile")]
    assert float(row["val_mean_gain"]) == pytest.approx(np.mean(gains), abs=1e-4)
    info = read_checkpoint_info(straight / ts.MODEL_FILE)
    assert info["config"].acquisition == {"kind": "mix", "profile": "box", "thickness": [0.75, 1.5],
                                          "decimate_share": 0.5}
    assert info["config"].projection == "spline" and info["extra"]["scales"] == "1.5:3"
    from DPNSLCore import upsample

    y = np.random.default_rng(0).normal(0, 100, (6, 12, 12)).astype(np.float32)
    result = upsample(y, 2, model=str(straight / ts.MODEL_FILE), device="cpu")  # a real scan: the slice profile
    assert (result.plan.degradation, result.plan.thickness) == ("profile", 1.0)
    assert result.consistency_error < 1e-3


def test_thick_volumes_train_whole_and_only_thin_z_axes_give_validation_blocks(ct_file, tmp_path):
    thick = tmp_path / "thick.nii.gz"
    hu = np.random.default_rng(1).normal(0, 100, (8, 30, 30)).astype(np.int16)
    write_volume(Volume(hu, Geometry(spacing=(0.8, 0.8, 5.0))), thick)
    args = resolve_args(tiny_run(ct_file, tmp_path / "run", 1) + ["--data", str(ct_file), str(thick)])
    from DPNSLCore.training.train import _prepare_data

    dataset, val = _prepare_data(args)
    assert [v.name for v in val] == [f"{ct_file}[28:40]"]  # the thin volume's z block only
    assert dataset.volumes[1].array.shape == (8, 30, 30)  # the thick one whole: its in-plane axes train


def test_fine_tuning_with_the_banding_penalty_starts_from_the_given_weights(ct_file, tmp_path):
    base, tuned = tmp_path / "base", tmp_path / "tuned"
    assert main(tiny_run(ct_file, base, 2)) == 0
    assert main(tiny_run(ct_file, tuned, 1, "--init", str(base / ts.MODEL_FILE), "--banding-weight", "1")) == 0
    a, b = load_checkpoint(base / ts.MODEL_FILE), load_checkpoint(tuned / ts.MODEL_FILE)
    assert (a.config.input_shift, a.config.input_scale) == (b.config.input_shift, b.config.input_scale)
    changed = [k for k, v in a.state_dict().items() if not torch.equal(v, b.state_dict()[k])]
    assert changed and len(changed) < len(a.state_dict()) + 1  # one step away from the base, not a fresh start
    fresh = tmp_path / "fresh"
    assert main(tiny_run(ct_file, fresh, 1, "--banding-weight", "1")) == 0
    c = load_checkpoint(fresh / ts.MODEL_FILE)
    step = sum(float((b.state_dict()[k] - a.state_dict()[k]).abs().max()) for k in a.state_dict())
    jump = sum(float((c.state_dict()[k] - a.state_dict()[k]).abs().max()) for k in a.state_dict())
    assert step < jump
    assert main(tiny_run(ct_file, tmp_path / "bad", 1, "--init", str(base / ts.MODEL_FILE),
                         "--projection", "spline", "--anchor", "cubic")) == 2


def test_validation_ignores_held_out_blocks_without_signal(tmp_path):
    from DPNSLCore.data.stacks import TrainingVolume
    from DPNSLCore.io.intensity import IntensityNormalizer
    from DPNSLCore.training.validation import Validator

    rng = np.random.default_rng(0)
    signal = TrainingVolume(rng.random((20, 16, 16), dtype=np.float32), name="signal",
                            normalizer=IntensityNormalizer("mr", 1.0, 0.0))
    empty = TrainingVolume(np.zeros((20, 16, 16), np.float32), name="background",
                           normalizer=IntensityNormalizer("mr", 1.0, 0.0))
    model = build_model(PRESETS["lean"].replace(modality="mr"))
    alone = Validator([signal], [2], crop=16)(model)
    both = Validator([signal, empty], [2], crop=16)(model)
    assert np.isfinite(both["val_mean_gain"])
    assert both["val_psnr_x2_linear"] == pytest.approx(alone["val_psnr_x2_linear"])


def _skull_stripped(path, top_blank):
    """An atlas-space MR whose last ``top_blank`` z slices are background (zeros), as the MS patients' are."""
    rng = np.random.default_rng(2)
    mr = rng.integers(100, 1000, (40, 20, 20)).astype(np.int16)
    mr[40 - top_blank:] = 0
    write_volume(Volume(mr, Geometry(spacing=(1.0, 1.0, 1.0))), path)
    return path


def test_a_run_whose_held_out_blocks_are_all_background_is_refused_with_the_fix(tmp_path, capsys):
    mr = _skull_stripped(tmp_path / "mr.nii.gz", top_blank=14)  # --val-block 0.3 holds out the last 12 slices
    run = [a if a != "ct" else "mr" for a in tiny_run(mr, tmp_path / "run", 2)]
    assert main(run) == 2
    err = capsys.readouterr().err
    assert "no validation volume holds any signal" in err and f"{mr}[28:40]" in err and "--val-data" in err
    assert not (tmp_path / "run").exists()  # refused before anything was written
    assert main([*run, "--val-block", "0"]) == 0
    assert "no validation: last.safetensors is the model" in capsys.readouterr().out
    assert (tmp_path / "run" / ts.MODEL_FILE).is_file() and not (tmp_path / "run" / ts.BEST_FILE).exists()


def test_a_blank_held_out_block_beside_others_is_named_and_left_out(ct_file, tmp_path, capsys):
    mr = _skull_stripped(tmp_path / "mr.nii.gz", top_blank=14)
    args = resolve_args(tiny_run(ct_file, tmp_path / "run", 1) + ["--data", str(ct_file), str(mr), "--modality",
                                                                    "auto"])
    from DPNSLCore.training.train import _prepare_data

    _, val = _prepare_data(args)
    assert [v.name for v in val] == [f"{ct_file}[28:40]"]
    assert f"validation: {mr}[28:40] left out (background only" in capsys.readouterr().out


def test_mr_intensity_option_reaches_the_training_volumes(tmp_path):
    from DPNSLCore.io.intensity import IntensityNormalizer
    from DPNSLCore.training.train import _prepare_data

    values = np.linspace(0.0, 1000.0, 30 * 20 * 20, dtype=np.float32).reshape(30, 20, 20)
    values[0, 0, :2] = 40_000.0
    path = tmp_path / "mr.nii.gz"
    write_volume(Volume(values, Geometry(spacing=(1.0, 1.0, 1.0))), path)
    base = ["--data", str(path), "--modality", "mr", "--scales", "2", "--crop", "12", "--out", str(tmp_path / "r")]
    assert resolve_args(base).mr_intensity == "protocol"  # the default: runs saved before the option mean this
    dataset, val = _prepare_data(resolve_args([*base, "--mr-intensity", "input"]), report=False)
    assert dataset.volumes[0].normalizer == val[0].normalizer == IntensityNormalizer.for_mr_input(values)
    dataset, _ = _prepare_data(resolve_args(base), report=False)
    assert dataset.volumes[0].normalizer == IntensityNormalizer.for_mr(values)
