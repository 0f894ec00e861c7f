"""Slice-axis operators: grid rule, A A+ = I, exact consistency of the projection, error messages."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from DPNSLCore.ops.operators import (
    hr_length,
    lr_length,
    make_degradation,
    measurement_consistent_projection,
    null_space_detail,
    simulate_acquisition,
)

SCALES = [1.5, 2, 2.5, 3, 3.7, 4, 7]
INTEGER_SCALES = [2, 3, 4, 7]
KINDS_FOR = {s: ["decimate", "sample", "profile"] if float(s).is_integer() else ["sample", "profile"] for s in SCALES}
CASES = [(kind, s) for s in SCALES for kind in KINDS_FOR[s]]


def _naive_decimate(x: np.ndarray, s: int) -> np.ndarray:
    """Independent oracle: keep every s-th slice."""
    return x[..., ::s, :, :]


@pytest.mark.parametrize("n_lr,scale,expected", [(4, 2, 7), (4, 4, 13), (4, 2.5, 9), (5, 2.5, 11), (2, 1.5, 3)])
def test_hr_grid_rule_known_values(n_lr, scale, expected):
    assert hr_length(n_lr, scale) == expected
    assert lr_length(expected, scale) == n_lr


@pytest.mark.parametrize("scale", SCALES)
def test_observed_slices_lie_on_hr_positions(scale):
    deg = make_degradation("sample", scale, 5)
    # observed slice j sits at LR position j; the HR grid step is 1/scale and starts at slice 0
    assert deg.hr_positions[0] == 0.0
    assert np.allclose(np.diff(deg.hr_positions), 1.0 / scale)
    assert deg.hr_positions[-1] >= deg.n_lr - 1 > deg.hr_positions[-1] - 1.0 / scale - 1e-12


@pytest.mark.parametrize("kind,scale", CASES)
def test_a_pinv_is_identity(kind, scale):
    deg = make_degradation(kind, scale, 7)
    np.testing.assert_allclose(deg.matrix @ deg.pinv_matrix, np.eye(7), atol=1e-12)
    for anchor in ("linear", "cubic"):
        np.testing.assert_allclose(deg.matrix @ deg.anchor_matrix(anchor), np.eye(7), atol=1e-12)


@pytest.mark.parametrize("kind,scale", CASES)
def test_rows_of_a_are_averages(kind, scale):
    deg = make_degradation(kind, scale, 6)
    np.testing.assert_allclose(deg.matrix.sum(axis=1), 1.0, atol=1e-12)
    assert (deg.matrix >= 0).all()


@pytest.mark.parametrize("scale", INTEGER_SCALES)
def test_decimate_matches_naive_oracle_and_zero_pad(scale):
    deg = make_degradation("decimate", scale, 5)
    x = torch.randn(2, 1, deg.n_hr, 3, 4)
    np.testing.assert_array_equal(deg.forward(x).numpy(), _naive_decimate(x.numpy(), scale))
    y = torch.randn(2, 1, 5, 3, 4)
    padded = deg.pinv(y).numpy()
    np.testing.assert_array_equal(padded[..., ::scale, :, :], y.numpy())
    mask = np.ones(deg.n_hr, bool)
    mask[::scale] = False
    assert (padded[..., mask, :, :] == 0).all()


@settings(max_examples=25, deadline=None)
@given(
    scale=st.sampled_from(INTEGER_SCALES),
    n_lr=st.integers(2, 6),
    seed=st.integers(0, 2**31 - 1),
    magnitude=st.sampled_from([1e-3, 1.0, 1e3, 1e6]),
)
def test_decimate_projection_is_bit_exact_for_any_f(scale, n_lr, seed, magnitude):
    gen = torch.Generator().manual_seed(seed)
    deg = make_degradation("decimate", scale, n_lr)
    y = torch.randn(1, 1, n_lr, 3, 5, generator=gen)
    f = torch.randn(1, 1, deg.n_hr, 3, 5, generator=gen) * magnitude
    out, anchor, detail = measurement_consistent_projection(y, f, deg)
    assert torch.equal(deg.forward(out), y)
    assert torch.equal(deg.forward(anchor), y)
    assert torch.equal(deg.forward(detail), torch.zeros_like(y))
    assert torch.equal(out, anchor + detail)


@settings(max_examples=30, deadline=None)
@given(case=st.sampled_from(CASES), n_lr=st.integers(2, 6), seed=st.integers(0, 2**31 - 1),
       anchor_kind=st.sampled_from(["linear", "cubic"]))
def test_projection_is_consistent_for_any_f(case, n_lr, seed, anchor_kind):
    kind, scale = case
    gen = torch.Generator().manual_seed(seed)
    deg = make_degradation(kind, scale, n_lr, thickness=1.3)
    y = torch.rand(2, n_lr, 4, 3, generator=gen)
    f = torch.randn(2, deg.n_hr, 4, 3, generator=gen) * 10
    out, anchor, detail = measurement_consistent_projection(y, f, deg, anchor=anchor_kind)
    tol = 1e-5 * y.abs().max().item()
    assert (deg.forward(out) - y).abs().max().item() <= tol
    assert (deg.forward(anchor) - y).abs().max().item() <= tol
    assert out.shape == f.shape and out.dtype == f.dtype


@pytest.mark.parametrize("kind,scale", CASES)
def test_projection_preserves_dtype_and_inputs(kind, scale):
    deg = make_degradation(kind, scale, 4)
    y = torch.rand(4, 5, 5, dtype=torch.float64)
    f = torch.rand(deg.n_hr, 5, 5, dtype=torch.float64)
    y0, f0 = y.clone(), f.clone()
    out, _, _ = measurement_consistent_projection(y, f, deg)
    assert out.dtype == torch.float64
    assert torch.equal(y, y0) and torch.equal(f, f0)
    assert (deg.forward(out) - y).abs().max().item() < 1e-12


def test_anchor_equals_linear_interpolation_for_decimate():
    deg = make_degradation("decimate", 3, 4)
    y = torch.tensor([0.0, 3.0, 9.0, 0.0]).reshape(4, 1, 1)
    expected = torch.tensor([0, 1, 2, 3, 5, 7, 9, 6, 3, 0], dtype=torch.float32).reshape(10, 1, 1)
    assert torch.equal(deg.anchor(y), expected)
    assert torch.equal(deg.linear(y), expected)


@pytest.mark.parametrize("scale", INTEGER_SCALES)
def test_cubic_anchor_is_the_cubic_baseline_for_decimate(scale):
    from DPNSLCore.ops.baselines import interpolate

    deg = make_degradation("decimate", scale, 6)
    y = torch.rand(6, 3, 3)
    assert torch.equal(deg.anchor(y, "cubic"), interpolate(y, deg, "cubic"))
    out, _, _ = measurement_consistent_projection(y, torch.rand(deg.n_hr, 3, 3), deg, anchor="cubic")
    assert torch.equal(deg.forward(out), y)


def test_projection_ablations():
    deg = make_degradation("decimate", 2, 3)
    y, f = torch.rand(3, 2, 2), torch.rand(5, 2, 2)
    out, anchor, detail = measurement_consistent_projection(y, f, deg, anchor="none", projection="none")
    assert torch.equal(out, f) and torch.equal(anchor, torch.zeros_like(f))
    out, _, _ = measurement_consistent_projection(y, f, deg, anchor="linear", projection="none")
    assert torch.allclose(out, deg.anchor(y) + f)
    out, _, _ = measurement_consistent_projection(y, f, deg, projection="linear")
    assert torch.allclose(deg.forward(out), y)  # A L = I for decimate, so P = L is consistent too


def test_box_profile_weights_match_numerical_integral():
    deg = make_degradation("profile", 3, 4, thickness=1.0)
    # slice 1 is centred on HR index 3 and averages the piecewise-linear signal over [1.5, 4.5]
    z = np.linspace(1.5, 4.5, 300001)
    k = np.arange(deg.n_hr)
    hat = np.clip(1 - np.abs(z[None] - k[:, None]), 0, None)
    expected = hat.mean(axis=1)
    np.testing.assert_allclose(deg.matrix[1], expected / expected.sum(), atol=1e-5)


def test_gaussian_profile_is_symmetric_and_wider_than_sampling():
    deg = make_degradation("profile", 4, 5, profile="gaussian", thickness=1.5)
    row = deg.matrix[2]
    np.testing.assert_allclose(row[8 - 3 : 8], row[8 + 3 : 8 : -1], atol=1e-9)
    assert (row > 1e-3).sum() > 4


def test_simulate_acquisition_trims_and_keeps_axis():
    vol = np.random.default_rng(0).random((5, 23, 6)).astype(np.float32)
    lr, hr = simulate_acquisition(vol, 4, slice_axis=1)
    assert hr.shape == (5, 21, 6) and lr.shape == (5, 6, 6)
    np.testing.assert_array_equal(lr, vol[:, 0:21:4, :])


# ---- error paths: one test per rule, checking the message ----


@pytest.mark.parametrize("scale", [1.0, 0.5, -2.0, 0.0])
def test_scale_must_exceed_one(scale):
    with pytest.raises(ValueError, match="must be > 1"):
        make_degradation("sample", scale, 4)


@pytest.mark.parametrize("scale", [math.nan, math.inf, -math.inf])
def test_scale_must_be_finite(scale):
    with pytest.raises(ValueError, match="must be finite"):
        make_degradation("sample", scale, 4)


def test_absurd_scale_is_rejected():
    with pytest.raises(ValueError, match="typo"):
        make_degradation("sample", 1000, 4)


def test_decimate_needs_integer_scale():
    with pytest.raises(ValueError, match="use degradation 'sample'"):
        make_degradation("decimate", 2.5, 4)


def test_too_few_slices():
    with pytest.raises(ValueError, match="at least 2 observed slices"):
        make_degradation("decimate", 2, 1)


def test_non_3d_input_is_rejected():
    deg = make_degradation("decimate", 2, 3)
    with pytest.raises(ValueError, match="slice axis at dim -3"):
        deg.forward(torch.zeros(5, 4))


def test_wrong_slice_count_is_rejected():
    deg = make_degradation("sample", 2.5, 3)
    with pytest.raises(ValueError, match="expects 6"):
        deg.forward(torch.zeros(7, 4, 4))


def test_unknown_kind_is_rejected():
    with pytest.raises(ValueError, match="`degradation` must be one of"):
        make_degradation("nearest", 2, 3)


def test_hr_stack_must_fit_grid():
    with pytest.raises(ValueError, match="trim the stack to 9"):
        make_degradation("sample", 2.5, n_hr=10)


def test_non_finite_network_output_is_rejected():
    deg = make_degradation("decimate", 2, 3)
    f = torch.zeros(5, 2, 2)
    f[1, 0, 0] = math.nan
    with pytest.raises(ValueError, match="NaN or inf"):
        measurement_consistent_projection(torch.zeros(3, 2, 2), f, deg)


def test_too_thick_profile_is_rejected():
    with pytest.raises(ValueError, match="thickness"):
        make_degradation("profile", 2, 4, thickness=0.0)


@pytest.mark.parametrize("kind,scale,thickness", [("decimate", 4, 1.0), ("sample", 2.5, 1.0), ("profile", 3, 1.0),
                                                  ("profile", 5, 1.5), ("profile", 3, 0.75)])
def test_the_spline_projection_is_consistent_and_has_no_seam(kind, scale, thickness):
    from DPNSLCore.ops.operators import null_space_detail

    deg = make_degradation(kind, scale, 9, thickness=thickness)
    f = torch.from_numpy(np.random.default_rng(0).normal(size=(deg.n_hr, 3, 3)))
    detail = null_space_detail(f, deg, "spline", anchor="cubic")
    assert torch.abs(deg.forward(detail)).max() < 1e-10  # A (I - B A) f = 0
    if kind == "decimate":  # exactly zero at the acquired slices, whatever the round-off
        assert torch.equal(detail[:: int(scale)], torch.zeros_like(detail[:: int(scale)]))
    # a constant network output is all range: no detail at all (pinv leaves a comb of zeros at the acquired
    # slices for decimate, and an oscillating remainder for the profiles)
    ones = torch.ones(deg.n_hr, 2, 2, dtype=torch.float64)
    assert torch.abs(null_space_detail(ones, deg, "spline", anchor="cubic")).max() < 1e-9
    if kind == "decimate":
        assert torch.abs(null_space_detail(ones, deg, "pinv")).max() == 1.0
    # the projector's curvature is far below the minimum-norm one's
    curvature = lambda b: np.linalg.norm(np.diff(b, 2, axis=0))  # noqa: E731
    assert curvature(deg.anchor_matrix("cubic")) < 0.75 * curvature(deg.pinv_matrix) or kind == "decimate"


@pytest.mark.parametrize("scale,thickness", [(3, 1.0), (5, 1.0), (3, 1.5), (5, 1.5)])
def test_the_profile_anchor_is_the_consistent_spline_not_the_min_norm_correction(scale, thickness):
    from DPNSLCore.ops.interpolation import interpolation_matrix

    deg = make_degradation("profile", scale, 12, thickness=thickness)
    b = deg.anchor_matrix("cubic")
    m = interpolation_matrix(deg.hr_positions, 12, 3)
    np.testing.assert_allclose(deg.matrix @ b, np.eye(12), atol=1e-12)
    np.testing.assert_allclose(b, m @ np.linalg.inv(deg.matrix @ m), atol=1e-10)  # B = M (A M)^-1
    old = m + deg.pinv_matrix @ (np.eye(12) - deg.matrix @ m)
    curvature = lambda x: np.linalg.norm(np.diff(x, 2, axis=0))  # noqa: E731
    assert curvature(b) < curvature(old)


def test_the_spline_projection_needs_an_anchor():
    from DPNSLCore.models.config import preset
    from DPNSLCore.ops.operators import null_space_detail

    with pytest.raises(ValueError, match="needs anchor 'linear' or 'cubic'"):
        preset("lean").replace(projection="spline", anchor="none")
    deg = make_degradation("decimate", 2, 4)
    with pytest.raises(ValueError, match="needs anchor 'linear' or 'cubic'"):
        null_space_detail(torch.zeros(deg.n_hr, 1, 1), deg, "spline", anchor="none")


@pytest.mark.parametrize(("kind", "scale", "thickness", "profile"), [
    ("profile", 4, 1.0, "box"), ("profile", 3, 1.5, "box"), ("sample", 2.5, 1.0, "box"), ("decimate", 3, 1.0, "box"),
    ("profile", 5, 0.9, "gaussian")])
def test_the_band_forms_of_a_and_of_the_anchor_equal_the_dense_matrices(kind, scale, thickness, profile, monkeypatch):
    # long series go through band operations (linear in the slices); they must be the same operators
    import DPNSLCore.ops.operators as operators

    monkeypatch.setattr(operators, "DENSE_ROWS", 8)
    monkeypatch.setattr(operators, "ANCHOR_DENSE_ROWS", 8)
    deg = make_degradation(kind, scale, 40, profile=profile, thickness=thickness)
    rng = np.random.default_rng(0)
    y = torch.from_numpy(rng.normal(size=(2, 40, 3, 4)))
    f = torch.from_numpy(rng.normal(size=(2, deg.n_hr, 3, 4)))
    from DPNSLCore.ops.interpolation import apply_along_slices

    for anchor in ("linear", "cubic"):
        torch.testing.assert_close(deg.apply_anchor(y, anchor), apply_along_slices(deg.anchor_matrix(anchor), y),
                                   rtol=0, atol=1e-12)
    torch.testing.assert_close(deg.forward(f), apply_along_slices(deg.matrix, f) if kind != "decimate"
                               else f[:, ::scale], rtol=0, atol=1e-12)
    detail = null_space_detail(f, deg, "spline", anchor="cubic")
    assert float(deg.forward(detail).abs().max()) < 1e-10  # still in the null space
    assert deg._band.get(("anchor", "cubic")) is not None  # the band path ran


@pytest.mark.parametrize("n_lr", [20, 150])
def test_the_consistent_projection_is_the_orthogonal_one_for_short_and_long_series(n_lr):
    # dense A+ below 128 observed slices, A^T (A A^T)^-1 through the band Cholesky factor beyond
    deg = make_degradation("profile", 3, n_lr, thickness=1.5)
    rng = np.random.default_rng(1)
    x = torch.from_numpy(rng.normal(size=(deg.n_hr, 7)))
    y = torch.from_numpy(rng.normal(size=(n_lr, 7)))
    expected = x - torch.from_numpy(deg.pinv_matrix) @ (torch.from_numpy(deg.matrix) @ x - y)
    torch.testing.assert_close(deg.project_consistent(x, y), expected, rtol=0, atol=1e-10)
