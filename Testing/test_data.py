"""Training data: window shapes, the scale mix, every fine axis as a slice axis, the held-out block, determinism."""

from collections import Counter

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from DPNSLCore.data.stacks import TrainingVolume, find_volume_files, load_volumes, split_block, usable_axes
from DPNSLCore.data.windows import SliceWindowDataset, parse_crop
from DPNSLCore.io.volumes import Geometry, Volume, write_volume

STRIDES = (10000.0, 100.0, 1.0)  # value = 10000 z + 100 y + x: the step along a sample's axis 0 names the source axis


def coded_volume(shape=(24, 20, 22), spacing=(1.0, 1.0, 1.0)) -> TrainingVolume:
    z, y, x = np.meshgrid(*(np.arange(n, dtype=np.float32) for n in shape), indexing="ij")
    return TrainingVolume(STRIDES[0] * z + STRIDES[1] * y + STRIDES[2] * x, spacing, "coded")


def draw(dataset, steps, batch_size=4, seed_rank=0):
    plan = dataset.batches(batch_size, steps=steps, rank=seed_rank)
    return [dataset[key] for keys in plan for key in keys]


def test_sample_shapes_and_decimation():
    ds = SliceWindowDataset([coded_volume()], [2, 3], n_lr=4, crop=(8, 12), seed=1)
    for sample in draw(ds, 10, 2):
        s = int(sample["scale"])
        lr, hr = sample["lr"], sample["hr"]
        c = hr.shape[-1]
        assert hr.shape == (1, 3 * s + 1, c, c) and lr.shape == (1, 4, c, c) and 8 <= c <= 12
        assert lr.dtype == hr.dtype == torch.float32
        torch.testing.assert_close(lr, hr[:, ::s], rtol=0, atol=0)


def test_non_integer_scale_with_sample_degradation():
    ds = SliceWindowDataset([coded_volume()], [2.5], n_lr=4, crop=8, degradation="sample")
    sample = draw(ds, 1, 1)[0]
    assert sample["hr"].shape[1] == 9 and sample["lr"].shape[1] == 4  # ceil(3 * 2.5) + 1 HR slices
    hr_z = sample["hr"][0, :, 0, 0].double()
    expected = 0.5 * (hr_z[2] + hr_z[3])  # observed slice 1 sits at HR position 2.5
    assert float(sample["lr"][0, 1, 0, 0]) == pytest.approx(float(expected), rel=1e-6)


def test_batches_share_scale_and_crop_and_the_scales_mix():
    ds = SliceWindowDataset([coded_volume()], [2, 3, 4], n_lr=4, crop=(8, 16), seed=3)
    loader = DataLoader(ds, batch_sampler=ds.batches(3, steps=300))
    counts = Counter()
    for batch in loader:
        assert batch["hr"].shape[0] == 3 and len(set(batch["scale"].tolist())) == 1
        counts[float(batch["scale"][0])] += 1
    assert set(counts) == {2.0, 3.0, 4.0}
    assert all(70 <= n <= 130 for n in counts.values()), counts  # 100 expected each


def source_axes(samples) -> Counter:
    steps = Counter()
    for sample in samples:
        step = float(sample["hr"][0, 1, 0, 0] - sample["hr"][0, 0, 0, 0])
        steps[STRIDES.index(step)] += 1  # the slice axis is never flipped, so the step is +stride
    return steps


def test_every_fine_axis_becomes_a_slice_axis():
    ds = SliceWindowDataset([coded_volume()], [2], n_lr=3, crop=8, seed=0)
    counts = source_axes(draw(ds, 60))
    assert set(counts) == {0, 1, 2} and min(counts.values()) > 30


def test_coarse_axis_is_not_a_slice_axis():
    ds = SliceWindowDataset([coded_volume(spacing=(3.0, 1.0, 1.2))], [2], n_lr=3, crop=8, seed=0)
    assert set(source_axes(draw(ds, 30))) == {1, 2}
    assert usable_axes((3.0, 1.0, 1.2), 1.5) == (1, 2) and usable_axes((3.0, 1.0, 1.2), 3.0) == (0, 1, 2)


def test_in_plane_axes_are_flipped_both_ways():
    ds = SliceWindowDataset([coded_volume()], [2], n_lr=3, crop=8, seed=5)
    signs = set()
    for sample in draw(ds, 20):
        hr = sample["hr"][0, 0]
        signs.add((float(torch.sign(hr[1, 0] - hr[0, 0])), float(torch.sign(hr[0, 1] - hr[0, 0]))))
    assert signs == {(1.0, 1.0), (1.0, -1.0), (-1.0, 1.0), (-1.0, -1.0)}


def test_large_crops_come_from_the_volumes_that_hold_them():
    small = TrainingVolume(-np.ones((60, 10, 10), np.float32), name="small")
    ds = SliceWindowDataset([small, coded_volume()], [2], n_lr=3, crop=(8, 16), seed=4)
    assert ds.crop_range == (8, 16)
    samples = draw(ds, 60, 2)
    from_small = [s for s in samples if float(s["hr"].max()) < 0]
    assert from_small and all(s["hr"].shape[-1] <= 10 for s in from_small)
    assert any(s["hr"].shape[-1] > 10 for s in samples)


def test_held_out_block_is_never_sampled_along_any_axis():
    volume = coded_volume(shape=(40, 20, 20))
    train, val = split_block(volume, 0.25, gap=3)
    assert val.array.shape[0] == 10 and train.array.shape[0] == 27 and val.name.endswith("[30:40]")
    np.testing.assert_array_equal(val.array[:, 0, 0], STRIDES[0] * np.arange(30, 40))
    samples = draw(SliceWindowDataset([train], [2, 3], n_lr=3, crop=8, seed=2), 100)
    z_seen = torch.cat([torch.floor(s["hr"].flatten() / STRIDES[0]) for s in samples])
    assert float(z_seen.max()) == 26.0  # the last training slice is reached, slices 27..39 never
    assert set(source_axes(samples)) == {0, 1, 2}


def test_same_seed_same_samples_other_seed_other_samples():
    volume = coded_volume()
    a = draw(SliceWindowDataset([volume], [2, 3], n_lr=3, crop=(8, 12), seed=7), 5)
    b = draw(SliceWindowDataset([volume], [2, 3], n_lr=3, crop=(8, 12), seed=7), 5)
    c = draw(SliceWindowDataset([volume], [2, 3], n_lr=3, crop=(8, 12), seed=8), 5)
    assert all(torch.equal(x["hr"], y["hr"]) for x, y in zip(a, b, strict=True))
    assert not all(x["hr"].shape == y["hr"].shape and torch.equal(x["hr"], y["hr"]) for x, y in zip(a, c, strict=True))


def test_a_step_is_the_same_whatever_came_before_it_and_ranks_differ():
    ds = SliceWindowDataset([coded_volume()], [2, 3], n_lr=3, crop=(8, 12), seed=7)
    whole = draw(ds, 6)
    resumed = [ds[key] for keys in ds.batches(4, start_step=3, steps=6) for key in keys]
    assert all(torch.equal(x["hr"], y["hr"]) for x, y in zip(whole[12:], resumed, strict=True))
    other_rank = [ds[key] for keys in ds.batches(4, start_step=3, steps=6, rank=1) for key in keys]
    assert [s["scale"] for s in other_rank] == [s["scale"] for s in resumed]
    assert not all(torch.equal(x["hr"], y["hr"]) for x, y in zip(other_rank, resumed, strict=True))


def test_load_volumes_from_a_folder_normalises_ct(tmp_path):
    hu = np.full((6, 12, 12), -1024, np.int16)
    hu[2:4] = 3071
    write_volume(Volume(hu, Geometry(spacing=(0.7, 0.7, 2.0))), tmp_path / "a.nii.gz")
    write_volume(Volume(hu[:, :10], Geometry()), tmp_path / "b.nrrd")
    (tmp_path / "notes.txt").write_text("not a volume")
    volumes = load_volumes([tmp_path], "ct")
    assert [v.array.shape for v in volumes] == [(6, 12, 12), (6, 10, 12)]
    assert volumes[0].spacing == pytest.approx((2.0, 0.7, 0.7)) and volumes[0].array.dtype == np.float32
    assert volumes[0].array.min() == 0.0 and volumes[0].array.max() == 1.0 and volumes[0].normalizer.kind == "ct"


# ---- errors: one per rule ----


def test_missing_data_path_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist.*nope"):
        find_volume_files([tmp_path / "nope.nii.gz"])


def test_folder_without_volumes_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="no volume files"):
        find_volume_files([tmp_path])


def test_scale_not_above_one_is_rejected():
    with pytest.raises(ValueError, match="factors > 1"):
        SliceWindowDataset([coded_volume()], [2, 1])


def test_non_integer_scale_needs_sample_degradation():
    with pytest.raises(ValueError, match="--degradation sample"):
        SliceWindowDataset([coded_volume()], [2.5])


def test_crop_larger_than_every_view_is_rejected():
    with pytest.raises(ValueError, match="largest in-plane size of any training view is 22.*lower --crop"):
        SliceWindowDataset([coded_volume()], [2], crop=(32, 64))


def test_bad_crop_text_is_rejected():
    with pytest.raises(ValueError, match="range such as 64:256"):
        parse_crop("big")
    with pytest.raises(ValueError, match="min <= max"):
        parse_crop("64:32")


def test_volume_too_short_for_the_largest_window_is_rejected():
    with pytest.raises(ValueError, match="at least 13 slices"):
        SliceWindowDataset([coded_volume(shape=(12, 12, 12))], [4], n_lr=4, crop=8)


def test_val_block_fraction_out_of_range_is_rejected():
    with pytest.raises(ValueError, match=r"fraction in \(0, 1\)"):
        split_block(coded_volume(), 1.5)


def test_mr_volumes_can_be_scaled_as_the_network_sees_them_at_inference(tmp_path):
    from DPNSLCore.io.intensity import IntensityNormalizer

    values = np.linspace(0.0, 1000.0, 10 * 20 * 20, dtype=np.float32).reshape(10, 20, 20)
    values[0, 0, :2] = 40_000.0  # two bright voxels: min/max would put the tissue below 0.025
    write_volume(Volume(values, Geometry(spacing=(1.0, 1.0, 1.0))), tmp_path / "mr.nii.gz")
    protocol, = load_volumes([tmp_path / "mr.nii.gz"], "mr")
    seen, = load_volumes([tmp_path / "mr.nii.gz"], "mr", mr_rule="input")
    assert protocol.normalizer == IntensityNormalizer.for_mr(values)
    assert seen.normalizer == IntensityNormalizer.for_mr_input(values) and seen.normalizer.scale < 1000.0
    np.testing.assert_array_equal(seen.array, seen.normalizer.forward(values))
    assert float(np.median(seen.array)) > 0.4 > float(np.median(protocol.array))
    hu = np.full((8, 10, 10), -1000.0, np.float32)
    hu[:, 3:7, 3:7] = 40.0
    write_volume(Volume(hu, Geometry(spacing=(1.0, 1.0, 1.0))), tmp_path / "ct.nii.gz")
    ct, = load_volumes([tmp_path / "ct.nii.gz"], "auto", mr_rule="input")
    assert ct.normalizer == IntensityNormalizer.for_ct()  # CT keeps its HU window
    with pytest.raises(ValueError, match="`mr_rule` must be one of"):
        load_volumes([tmp_path / "mr.nii.gz"], "mr", mr_rule="robust")
