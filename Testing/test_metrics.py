"""Tests for DPNSLCore.evaluation.metrics: PSNR by hand, SSIM against scikit-image (oracle), protocol helpers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter
from skimage.metrics import structural_similarity

from DPNSLCore.evaluation.metrics import (
    center_crop,
    evaluate_protocol,
    exclude_border_slices,
    per_slice_mae,
    psnr,
    ssim_2d_mean,
    ssim_3plane,
)

SSIM_ATOL = 1e-4


def _sk_ssim(a: np.ndarray, b: np.ndarray, data_range: float = 1.0) -> float:
    """The reference: scikit-image SSIM with the paper's Gaussian window."""
    return float(
        structural_similarity(
            a, b, data_range=data_range, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
        )
    )


def _sk_plane_mean(a: np.ndarray, b: np.ndarray, axis: int, data_range: float = 1.0) -> float:
    return float(
        np.mean([_sk_ssim(np.take(a, i, axis), np.take(b, i, axis), data_range) for i in range(a.shape[axis])])
    )


def _pair(kind: str, shape: tuple[int, ...], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A reference in [0, 1] and a degraded copy: white noise ('random') or a blurred field ('smooth')."""
    rng = np.random.default_rng(seed)
    ref = rng.random(shape)
    if kind == "smooth":
        ref = gaussian_filter(ref, 2.0)
        ref = (ref - ref.min()) / (ref.max() - ref.min())
    pred = np.clip(ref + 0.05 * rng.standard_normal(shape), 0, 1)
    return pred, ref


# -------------------------------------------------------------------------------------------------- PSNR
def test_psnr_hand_computed() -> None:
    ref = np.zeros((2, 2))
    pred = np.array([[0.1, 0.0], [0.0, 0.0]])  # MSE = 0.01 / 4 = 0.0025
    assert psnr(pred, ref) == pytest.approx(10 * math.log10(1 / 0.0025))  # 26.0206 dB
    assert psnr(pred, ref, data_range=2.0) == pytest.approx(10 * math.log10(4 / 0.0025))


def test_psnr_of_equal_arrays_is_inf() -> None:
    a = np.random.default_rng(1).random((3, 4, 5))
    assert psnr(a, a.copy()) == math.inf


def test_psnr_rejects_shape_mismatch() -> None:
    with pytest.raises(ValueError, match=r"same shape, got \(3, 4\) and \(4, 3\)"):
        psnr(np.zeros((3, 4)), np.zeros((4, 3)))


def test_psnr_rejects_bad_data_range() -> None:
    with pytest.raises(ValueError, match="`data_range` must be a finite number > 0"):
        psnr(np.zeros(3), np.ones(3), data_range=0.0)


# -------------------------------------------------------------------------------------------------- SSIM
@pytest.mark.parametrize("kind", ["random", "smooth"])
@pytest.mark.parametrize("data_range", [1.0, 2.0])
def test_ssim_2d_matches_skimage(kind: str, data_range: float) -> None:
    pred, ref = _pair(kind, (23, 31))
    assert ssim_2d_mean(pred, ref, data_range=data_range) == pytest.approx(
        _sk_ssim(pred, ref, data_range), abs=SSIM_ATOL
    )


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_ssim_2d_mean_of_volume_is_mean_of_skimage_slices(axis: int) -> None:
    pred, ref = _pair("smooth", (12, 14, 16), seed=axis)
    assert ssim_2d_mean(pred, ref, axis=axis) == pytest.approx(_sk_plane_mean(pred, ref, axis), abs=SSIM_ATOL)


@pytest.mark.parametrize("kind", ["random", "smooth"])
def test_ssim_3plane_is_mean_of_three_skimage_plane_means(kind: str) -> None:
    pred, ref = _pair(kind, (13, 17, 21))  # distinct sides catch axis mix-ups
    expected = np.mean([_sk_plane_mean(pred, ref, axis) for axis in range(3)])
    assert ssim_3plane(pred, ref) == pytest.approx(expected, abs=SSIM_ATOL)


def test_ssim_of_identical_volumes_is_one() -> None:
    a = np.random.default_rng(2).random((11, 12, 13)).astype(np.float32)
    assert ssim_3plane(a, a.copy()) == pytest.approx(1.0, abs=1e-12)


def test_ssim_rejects_slices_smaller_than_window() -> None:
    with pytest.raises(ValueError, match=r"at least 11x11 .* got 10x20"):
        ssim_3plane(np.zeros((20, 10, 20)), np.zeros((20, 10, 20)))


def test_ssim_rejects_shape_mismatch() -> None:
    with pytest.raises(ValueError, match="same shape"):
        ssim_3plane(np.zeros((12, 12, 12)), np.zeros((12, 12, 13)))


def test_ssim_3plane_rejects_2d_input() -> None:
    with pytest.raises(ValueError, match=r"non-empty 3-D arrays, got shape \(12, 12\)"):
        ssim_3plane(np.zeros((12, 12)), np.zeros((12, 12)))


# ------------------------------------------------------------------------------------------ MAE and crops
@pytest.mark.parametrize("axis", [0, 1, 2])
def test_per_slice_mae_known_values(axis: int) -> None:
    shape = [2, 3, 4]
    shape[axis] = 3
    ref = np.zeros(shape)
    pred = np.moveaxis(np.moveaxis(np.zeros(shape), axis, 0) + np.array([0.0, -1.0, 2.5])[:, None, None], 0, axis)
    np.testing.assert_allclose(per_slice_mae(pred, ref, slice_axis=axis), [0.0, 1.0, 2.5])


def test_per_slice_mae_rejects_shape_mismatch() -> None:
    with pytest.raises(ValueError, match="same shape"):
        per_slice_mae(np.zeros((2, 3, 4)), np.zeros((2, 3, 5)))


def test_center_crop_crops_in_plane_only_and_keeps_small_axes() -> None:
    vol = np.arange(3 * 300 * 200).reshape(3, 300, 200)
    out = center_crop(vol, 256)
    assert out.shape == (3, 256, 200)
    np.testing.assert_array_equal(out, vol[:, 22:278, :])
    out1 = center_crop(vol.transpose(1, 0, 2), 100)  # (300, 3, 200): y shorter than 100 kept, x cropped
    assert out1.shape == (300, 3, 100)
    assert center_crop(vol, 256, slice_axis=1).shape == (3, 300, 200)


def test_center_crop_rejects_bad_size() -> None:
    with pytest.raises(ValueError, match="`size` must be a positive integer"):
        center_crop(np.zeros((2, 2, 2)), 0)


def test_exclude_border_slices() -> None:
    vol = np.arange(10)[:, None, None] * np.ones((10, 2, 2))
    np.testing.assert_array_equal(exclude_border_slices(vol, 2)[:, 0, 0], [2, 3, 4, 5, 6, 7])
    with pytest.raises(ValueError, match="cannot exclude 5 slices"):
        exclude_border_slices(vol, 5)


# ---------------------------------------------------------------------------------------------- protocol
def test_protocol_ignores_border_slices_and_clips_pred() -> None:
    _, ref = _pair("smooth", (16, 12, 12))
    ref = ref * 0.8
    pred = ref.copy()
    pred[:2] = 7.0  # border slices (s = 2): excluded
    pred[-2:] = -3.0
    ref[5, 5, 5], pred[5, 5, 5] = 1.0, 1.7  # clipped to 1.0
    result = evaluate_protocol(pred, ref, 2)
    assert result == {"psnr": math.inf, "ssim": pytest.approx(1.0, abs=1e-12)}


def test_protocol_psnr_known_value() -> None:
    _, ref = _pair("smooth", (17, 12, 12))
    ref = ref * 0.8
    pred = ref + 0.1  # MSE 0.01 -> 20 dB, no clipping since pred <= 0.9
    result = evaluate_protocol(pred, ref, 3)
    assert result["psnr"] == pytest.approx(20.0)
    assert result["ssim"] == pytest.approx(ssim_3plane(pred[3:-3], ref[3:-3]))


def test_protocol_rejects_bad_scale() -> None:
    with pytest.raises(ValueError, match="`scale` must be a finite number > 1"):
        evaluate_protocol(np.zeros((20, 12, 12)), np.zeros((20, 12, 12)), 1)
