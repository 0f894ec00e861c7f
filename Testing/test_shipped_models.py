"""The shipped CT and MR models: they load safely, are small, know their modality, and are the default.

The quality check here is a regression guard on the repository's own thin crops (which come from training
volumes); the honest held-out numbers are in the README and come from `python -m DPNSLCore.evaluate`.
"""


import numpy as np
import pytest
import torch

import DPNSLCore
from DPNSLCore.evaluation.metrics import psnr
from DPNSLCore.io.intensity import IntensityNormalizer
from DPNSLCore.models.checkpoint import read_checkpoint_info
from DPNSLCore.models.registry import SHIPPED, shipped_path
from DPNSLCore.resources import SAMPLE_DATA_DIR

SAMPLES = SAMPLE_DATA_DIR
CROPS = {"ct": "ct_chest_1mm_crop.nii.gz", "mr": "mr_t1_1mm_crop.nii.gz"}


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_weights_are_small_and_describe_themselves(name):
    path = shipped_path(name)
    assert path is not None and path.stat().st_size < 5e6
    model = DPNSLCore.load_model(name, device="cpu")
    # both shipped models are joint CT+MR models (v5 CT, v4 MR): they take their intensity rule from the input
    assert model.config.modality is None and model.config.name == "lean"


@pytest.mark.parametrize(("name", "recipe"), [
    ("ct", ["--blur-share 0.5", "--blur-axes inplane", "--banding-weight 100", "--loss gain"]),  # v5 CT
    ("mr", ["--loss gain"])])  # v4 MR
def test_shipped_models_record_the_training_the_readme_describes(name, recipe):
    command = read_checkpoint_info(shipped_path(name))["extra"]["command"]
    assert command.startswith("python -m DPNSLCore.train") and "--modality auto" in command  # joint models
    assert all(option in command for option in recipe), command
    assert ("--blur-share" in command) == (name == "ct")  # the MR model had no smooth-volume augmentation


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_model_is_consistent_and_beats_cubic_on_the_sample_crop(name):
    volume = DPNSLCore.read_volume(SAMPLES / CROPS[name]).array.astype(np.float32)
    norm = IntensityNormalizer.for_volume(volume, name)
    lr, hr = DPNSLCore.simulate_acquisition(volume, 4)  # the paper's protocol: decimation, asked for explicitly
    learned = DPNSLCore.upsample(lr, 4, model=name, device="cpu", intensity=norm, degradation="decimate")
    cubic = DPNSLCore.upsample(lr, 4, method="cubic")
    np.testing.assert_array_equal(learned.volume[::4], lr)
    gain = psnr(norm.forward(learned.volume), norm.forward(hr)) - psnr(norm.forward(cubic.volume), norm.forward(hr))
    assert gain > {"ct": 0.1, "mr": 0.05}[name]  # measured: CT +1.64 (v5), MR +0.12 dB (v4)


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_models_assume_real_thick_slices_by_default_and_beat_cubic_there(name):
    volume = DPNSLCore.read_volume(SAMPLES / CROPS[name]).array.astype(np.float32)
    norm = IntensityNormalizer.for_volume(volume, name)
    lr, hr = DPNSLCore.simulate_acquisition(volume, 4, degradation="profile", thickness=1.0)
    learned = DPNSLCore.upsample(lr, 4, model=name, device="cpu", intensity=norm, bounds=None)
    assert (learned.plan.degradation, learned.plan.thickness) == ("profile", 1.0)  # auto: the model's mix
    assert learned.consistency_error < 1e-3 * float(np.ptp(lr))  # A x = y for the thick slices
    cubic = DPNSLCore.upsample(lr, 4, method="cubic")
    gain = psnr(norm.forward(learned.volume), norm.forward(hr)) - psnr(norm.forward(cubic.volume), norm.forward(hr))
    assert gain > 0.5


@pytest.mark.parametrize(("crop", "expected"), [("ct_lung1_5mm_crop.nii.gz", "ct"), ("mr_t1_1mm_crop.nii.gz", "mr")])
def test_default_model_follows_the_modality(crop, expected):
    volume = DPNSLCore.read_volume(SAMPLES / crop).array[:6, :32, :32]
    other = {"ct": "mr", "mr": "ct"}[expected]
    result = DPNSLCore.upsample(volume, 2, device="cpu", degradation="decimate")
    same = DPNSLCore.upsample(volume, 2, device="cpu", model=expected, modality=expected, degradation="decimate")
    wrong = DPNSLCore.upsample(volume, 2, device="cpu", model=other, modality=other, degradation="decimate")
    assert result.model_source.startswith(f"shipped {expected.upper()} model") and result.modality == expected
    np.testing.assert_array_equal(result.volume, same.volume)  # the right weights *and* the right intensity rule
    assert np.abs(result.volume - wrong.volume).max() > 1e-3
    np.testing.assert_array_equal(result.volume[::2], volume)


def test_shipped_model_result_does_not_depend_on_the_z_window_on_a_real_scan():
    # the real 5 mm chest CT crop: windows of 1, 3 and 7 slices against one whole-volume window (<= 5e-3 HU: float32
    # round-off of sums taken in another order, ~2e-6 of the values; destripe's in-plane means add to it)
    volume = DPNSLCore.read_volume(SAMPLES / "ct_lung1_5mm_crop.nii.gz")
    part = DPNSLCore.Volume(np.ascontiguousarray(volume.array[:20, 40:104, 60:124]), volume.geometry)
    whole = DPNSLCore.upsample(part, 5, device="cpu", tiling={"z_window": 64, "tile_size": 64}).volume
    for tiling in ({"z_window": 1, "tile_size": 64}, {"z_window": 3, "tile_size": 24},
                   {"z_window": 7, "tile_size": 50}):
        np.testing.assert_allclose(DPNSLCore.upsample(part, 5, device="cpu", tiling=tiling).volume, whole, rtol=0,
                                   atol=5e-3)


def test_a_model_given_by_the_caller_is_not_changed():
    model = DPNSLCore.load_model("ct", device="cpu").train()  # in training mode, as a training loop leaves it
    before = {k: v.clone() for k, v in model.state_dict().items()}
    volume = DPNSLCore.read_volume(SAMPLES / "ct_lung1_5mm_crop.nii.gz").array[:5, :24, :24]
    DPNSLCore.upsample(volume, 2, model=model, device="cpu")
    assert model.training and all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.device.type == "cpu" for p in model.parameters())


def test_a_model_of_another_modality_than_asked_is_refused_and_the_joint_models_take_either():
    from DPNSLCore.models import PRESETS, build_model

    volume = DPNSLCore.read_volume(SAMPLES / "mr_t1_1mm_crop.nii.gz").array[:5, :24, :24]
    ct_only = build_model(PRESETS["lean"].replace(modality="ct"))
    with pytest.raises(ValueError, match=r"the given model was trained on CT, but modality='mr' was asked for"):
        DPNSLCore.upsample(volume, 2, model=ct_only, modality="mr", device="cpu")
    ct = DPNSLCore.read_volume(SAMPLES / "ct_lung1_5mm_crop.nii.gz").array[:5, :24, :24]
    joint = DPNSLCore.upsample(ct, 2, model="mr", modality="ct", device="cpu")  # a joint CT+MR model
    assert joint.modality == "ct" and any("a model for any modality" in n and "as given" in n for n in joint.notes)


def test_importing_the_command_module_keeps_the_function_callable():
    import DPNSLCore.upsample  # noqa: F401  (binds DPNSLCore.upsample to the module)

    result = DPNSLCore.upsample(np.zeros((3, 4, 4), np.float32), 2, method="linear")
    assert result.volume.shape == (5, 4, 4)


def test_the_acquisition_of_a_model_is_read_without_torch(tmp_path):
    import subprocess
    import sys

    from DPNSLCore.models.registry import load_model
    from DPNSLCore.resources import model_acquisition

    for name in ("ct", "mr"):
        assert model_acquisition(name) == load_model(name).config.acquisition
    assert model_acquisition(tmp_path / "missing.safetensors") is None
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    assert model_acquisition(tmp_path / "junk.safetensors") is None
    code = ("import sys; sys.modules['torch'] = None; from DPNSLCore.resources import model_acquisition; "
            "model_acquisition('ct'); print('ok')")  # importing torch would raise
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "ok"


def test_one_bright_or_negative_spike_does_not_change_the_mr_output_elsewhere():
    """Min/max scaling would give the network a tissue contrast 8x too low for one spike at 8x the maximum (the
    detail gain drops to 0.17, the output moves by 10 units on average far from the spike); the MR input rule
    spans the 0.1th to the 99.9th percentile, so the rest of the volume comes out as without the spike."""
    volume = DPNSLCore.read_volume(SAMPLES / CROPS["mr"])
    clean = np.ascontiguousarray(volume.array[:16, :48, :48]).astype(np.float32)
    spiked = clean.copy()
    spiked[5, 3, 3] = 8 * clean.max()
    geometry = DPNSLCore.Geometry(spacing=(1.0, 1.0, 4.0))
    far = np.ones(clean.shape[1:], bool)
    far[:19, :19] = False  # beyond the network's and destripe's reach (15 voxels) of the spike's column
    reference = DPNSLCore.upsample(DPNSLCore.Volume(clean, geometry), 4, device="cpu")
    out = DPNSLCore.upsample(DPNSLCore.Volume(spiked, geometry), 4, device="cpu")
    assert np.abs(out.volume - reference.volume)[:, far].mean() < 0.1
    assert out.detail_gain == pytest.approx(reference.detail_gain, abs=1e-3)
    assert any("the maximum 32760 lies 8x as far from the lower end" in note for note in out.notes)
    dipped = clean.copy()
    dipped[5, 3, 3] = -8 * clean.max()  # a negative spike: the lower end is a percentile too
    free = DPNSLCore.upsample(DPNSLCore.Volume(clean, geometry), 4, device="cpu", bounds=None)
    low = DPNSLCore.upsample(DPNSLCore.Volume(dipped, geometry), 4, device="cpu", bounds=None)  # the MR box's floor
    assert np.abs(low.volume - free.volume)[:, far].mean() < 1e-3  # moves to the spike's -32760: not the rule's doing
    assert any("the minimum -32760 lies below" in note for note in low.notes)
    minmax = DPNSLCore.upsample(DPNSLCore.Volume(dipped, geometry), 4, device="cpu", bounds=None,
                                intensity=IntensityNormalizer.for_mr(dipped))
    assert np.abs(minmax.volume - free.volume)[:, far].mean() > 1.0
    minmax = DPNSLCore.upsample(DPNSLCore.Volume(spiked, geometry), 4, device="cpu",
                                intensity=IntensityNormalizer.for_mr(spiked))
    assert np.abs(minmax.volume - reference.volume)[:, far].mean() > 1.0  # what the rule protects against


@pytest.mark.filterwarnings("ignore:warning. precision bfloat16 on a CPU without native:UserWarning")  # any CPU
def test_the_band_forms_and_a_bfloat16_encoder_on_a_real_scan(monkeypatch):
    """The real 5 mm chest crop with the shipped model and every default step: the band forms of A and of the anchor
    (forced here on 48 slices) give the dense forms' output to 0.01 HU; the bfloat16 encoder moves it by a few HU at
    most and keeps A x = y to the int16 rounding."""
    import DPNSLCore.ops.operators as operators

    volume = DPNSLCore.read_volume(SAMPLES / "ct_lung1_5mm_crop.nii.gz")
    crop = DPNSLCore.Volume(np.ascontiguousarray(volume.array[:, 64:128, 64:128]), volume.geometry)
    dense = DPNSLCore.upsample(crop, 3, device="cpu", output_dtype="float32", precision="float32")
    half = DPNSLCore.upsample(crop, 3, device="cpu", output_dtype="float32", precision="bfloat16")
    monkeypatch.setattr(operators, "DENSE_ROWS", 8)
    monkeypatch.setattr(operators, "ANCHOR_DENSE_ROWS", 8)
    band = DPNSLCore.upsample(crop, 3, device="cpu", output_dtype="float32", precision="float32")
    np.testing.assert_allclose(band.volume, dense.volume, rtol=0, atol=1e-2)
    assert band.consistency_error < 1e-3 and half.consistency_error < 1e-3
    difference = np.abs(half.volume - dense.volume)
    assert 0 < float(difference.mean()) < 2.0 and float(difference.max()) < 60.0  # HU
