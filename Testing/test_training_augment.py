"""Smooth-volume augmentation (train --blur-share): which windows are blurred, how, and what stays as it was."""

import numpy as np
import pytest
import torch
from scipy import ndimage

from DPNSLCore.data.augment import BlurAugment, gaussian_blur3d
from DPNSLCore.data.stacks import TrainingVolume
from DPNSLCore.data.windows import SampleKey, SliceWindowDataset
from DPNSLCore.training.train import resolve_args


def dataset(blur=None):
    vol = TrainingVolume(np.random.default_rng(0).random((60, 24, 24), dtype=np.float32))
    return SliceWindowDataset([vol], "2,3", crop=16, degradation="profile", n_lr=4, blur=blur, seed=5)


def laplacian_energy(x):
    lap = ndimage.laplace(x.astype(np.float64), mode="nearest")
    return float(np.abs(lap).mean())


def test_the_blur_is_a_normalised_gaussian_with_replicated_edges():
    x = torch.from_numpy(np.random.default_rng(1).random((1, 9, 14, 12), dtype=np.float32))
    out = gaussian_blur3d(x, 1.2)
    expected = ndimage.gaussian_filter(x.numpy().astype(np.float64), (0, 1.2, 1.2, 1.2), mode="nearest",
                                       truncate=np.ceil(3 * 1.2) / 1.2)
    np.testing.assert_allclose(out.numpy(), expected, atol=2e-6)
    flat = torch.full((1, 5, 6, 7), 0.3)
    np.testing.assert_allclose(gaussian_blur3d(flat, 2.0).numpy(), 0.3, atol=1e-6)  # no dark rim, mean kept
    assert out.shape == x.shape and out.dtype == x.dtype


def test_the_inplane_blur_smooths_the_slices_and_leaves_the_slice_axis_alone():
    rng = np.random.default_rng(3)
    x = torch.from_numpy(rng.random((1, 9, 14, 12), dtype=np.float32))
    expected = ndimage.gaussian_filter(x.numpy().astype(np.float64), (0, 0, 1.2, 1.2), mode="nearest",
                                       truncate=np.ceil(3 * 1.2) / 1.2)
    np.testing.assert_allclose(gaussian_blur3d(x, 1.2, (1, 2)).numpy(), expected, atol=2e-6)
    along_z = torch.from_numpy(np.broadcast_to(rng.random((1, 9, 1, 1), dtype=np.float32), (1, 9, 6, 5)).copy())
    inplane, isotropic = BlurAugment(1.0, (1.5, 1.5), "inplane"), BlurAugment(1.0, (1.5, 1.5))
    assert torch.allclose(inplane(along_z, np.random.default_rng(0)), along_z, atol=1e-6)
    assert not torch.allclose(isotropic(along_z, np.random.default_rng(0)), along_z, atol=1e-3)


def test_share_zero_draws_the_very_samples_of_a_run_without_the_option():
    plain, off = dataset(), dataset(BlurAugment(0.0))
    for keys in plain.batches(2, steps=6):
        for key in keys:
            a, b = plain[key], off[key]
            assert torch.equal(a["hr"], b["hr"]) and torch.equal(a["lr"], b["lr"])


def test_a_blurred_window_is_the_gaussian_of_the_same_window_and_its_acquisition_follows():
    plain, blurred = dataset(), dataset(BlurAugment(1.0, (1.0, 1.0)))
    for keys in plain.batches(2, steps=4):
        key = keys[0]
        a, b = plain[key], blurred[key]  # same position and flips: the blur draws come last
        np.testing.assert_allclose(b["hr"].numpy(), gaussian_blur3d(a["hr"], 1.0).numpy(), atol=1e-7)
        deg = blurred.degradation(key.scale, key.thickness)
        np.testing.assert_allclose(deg.forward(b["hr"]).numpy(), b["lr"].numpy(), atol=1e-6)  # y = A x of the blur
        assert laplacian_energy(b["hr"][0].numpy()) < 0.5 * laplacian_energy(a["hr"][0].numpy())


def test_the_share_of_blurred_windows_is_the_option():
    plain, half = dataset(), dataset(BlurAugment(0.3, (0.5, 1.5)))
    keys = [SampleKey(step, i, 0, 2.0, 16, "profile", 1.0) for step in range(100) for i in range(2)]
    changed = [not torch.equal(plain[k]["hr"], half[k]["hr"]) for k in keys]
    assert np.mean(changed) == pytest.approx(0.3, abs=0.08)


@pytest.mark.parametrize(("flag", "value", "message"), [("--blur-share", "1.5", "blur-share must lie in"),
                                                        ("--blur-sigma", "2:1", "0 < LOW <= HIGH"),
                                                        ("--blur-sigma", "soft", "a number or LOW:HIGH"),
                                                        ("--blur-axes", "z", "blur-axes must be one of all, inplane")])
def test_bad_blur_options_are_refused_by_name(tmp_path, flag, value, message):
    with pytest.raises(ValueError, match=message):
        resolve_args(["--data", str(tmp_path), "--modality", "ct", flag, value])


def test_a_run_hands_its_blur_to_the_dataset_and_records_it(tmp_path):
    from DPNSLCore.io.volumes import Geometry, Volume, write_volume
    from DPNSLCore.training.train import _prepare_data

    path = tmp_path / "thin.nii.gz"
    write_volume(Volume(np.random.default_rng(2).integers(-1000, 1000, (40, 20, 20)).astype(np.int16),
                        Geometry(spacing=(1.0, 1.0, 1.0))), path)
    args = resolve_args(["--data", str(path), "--modality", "ct", "--crop", "12", "--scales", "2",
                         "--blur-share", "0.4", "--blur-sigma", "0.8", "--blur-axes", "inplane"])
    data, _ = _prepare_data(args)
    assert data.blur == BlurAugment(0.4, (0.8, 0.8), "inplane")
    assert (args.blur_share, args.blur_sigma, args.blur_axes) == (0.4, "0.8", "inplane")  # saved with the run
