"""Output kept in the physical range with the acquired slices intact (A x = y), and the rule that sets the range."""

import numpy as np
import pytest
import torch

import DPNSLCore
from DPNSLCore.ops.banded import BandedMatrix
from DPNSLCore.ops.bounds import STALL_STEPS, IntensityBounds, closest_in_box, keep_in_bounds
from DPNSLCore.ops.operators import make_degradation, simulate_acquisition


@pytest.fixture(scope="module")
def lung():
    """A piece of the shipped real 5 mm chest CT (HU, int16): the shipped model undershoots -1024 HU below air."""
    volume = DPNSLCore.read_volume(DPNSLCore.sample_path("ct_lung1_5mm_crop.nii.gz"))
    return DPNSLCore.Volume(np.ascontiguousarray(volume.array[:12, :96, :96]), volume.geometry)


def test_decimate_output_stays_in_range_and_keeps_acquired_slices_bit_exact(lung):
    free = DPNSLCore.upsample(lung, 5, bounds=None, device="cpu", degradation="decimate")
    kept = DPNSLCore.upsample(lung, 5, device="cpu", return_parts=True, degradation="decimate")
    assert free.volume.min() < -1024  # the problem being fixed
    assert kept.volume.min() >= -1024 and kept.consistency_error == 0.0
    np.testing.assert_array_equal(kept.volume[::5], lung.array)
    np.testing.assert_array_equal(kept.anchor + kept.detail, kept.volume)
    inside = (free.volume >= -1024) & (free.volume <= kept.volume.max())
    np.testing.assert_array_equal(kept.volume[inside], free.volume[inside])  # only what left the box moved
    assert any("output kept in [-1024, " in note and "% of the voxels moved" in note for note in kept.notes)


@pytest.mark.parametrize("kind", ["decimate", "profile"])
def test_the_report_counts_exactly_the_voxels_that_left_the_box(kind):
    rng = np.random.default_rng(5)
    y = torch.from_numpy(rng.uniform(0.2, 0.8, (70, 3, 4)))  # more slices than one measuring slab
    deg = make_degradation(kind, 3, 70, thickness=1.0)
    x = deg.pinv(y) + 0.3 * torch.from_numpy(rng.normal(size=(deg.n_hr, 3, 4)))
    x = x - deg.pinv(deg.forward(x) - y)
    box = IntensityBounds(0.0, 1.0, "test")
    expected = int(((x < 0.0) | (x > 1.0)).sum())
    out, report = keep_in_bounds(x.clone(), y, deg, box)
    assert 0 < expected < x.numel() and report.clipped == expected and report.columns == 12
    inside = deg.pinv(y).clamp(0.2, 0.8)  # every voxel inside: nothing moves, nothing is counted
    same, none = keep_in_bounds(inside.clone(), y, deg, box)
    assert none.clipped == 0 and torch.equal(same, inside)


@pytest.mark.parametrize(("kind", "thickness"), [("sample", 1.0), ("profile", 1.5)])
def test_sample_and_profile_end_in_the_box_and_stay_consistent(kind, thickness):
    rng = np.random.default_rng(0)
    y = torch.from_numpy(rng.uniform(0.0, 1.0, (9, 5, 5)))
    deg = make_degradation(kind, 3, 9, thickness=thickness)
    x = deg.pinv(y) + 0.5 * torch.from_numpy(rng.normal(size=(deg.n_hr, 5, 5)))
    x = x - deg.pinv(deg.forward(x) - y)  # a consistent start that leaves the box
    box = IntensityBounds(-0.5, 2.0, "test")  # room above the data: thin peaks under overlapping profiles
    before = float(torch.maximum(-0.5 - x, x - 2).clamp(min=0).max())
    out, report = keep_in_bounds(x.clone(), y, deg, box, iterations=300)
    after = float(torch.maximum(-0.5 - out, out - 2).clamp(min=0).max())
    assert before > 0.5 and after < 1e-3 * before and report.clipped > 0 and report.outside == report.fallback == 0
    assert report.iterations == 0  # the exact projection solved every column: no alternating projection
    assert float((deg.forward(out) - y).abs().max()) < 1e-9  # float64: consistent to round-off
    distance = torch.maximum(-0.5 - out, out - 2).clamp(min=0)  # every voxel left outside is counted, to the last
    assert report.outside + report.near == int((distance > 0.01 * report.tolerance).sum())
    assert report.outside == int((distance > report.tolerance).sum())  # "still outside": beyond the tolerance
    assert report.tolerance == pytest.approx(2.5e-4)


def test_voxels_outside_are_counted_beyond_and_within_the_tolerance_not_round_off():
    from DPNSLCore.ops.bounds import count_outside

    distance = torch.tensor([0.0, 1e-3, 5e-3, 0.3, 0.41, 0.42, 4.0, 16.9])
    assert count_outside(distance, 0.41) == (3, 3)  # 0.42, 4, 16.9 beyond; 5e-3, 0.3, 0.41 within; 1e-3 round-off


def test_voxels_outside_by_less_than_the_stopping_tolerance_are_said():
    from DPNSLCore.ops.bounds import BoundsReport

    box = IntensityBounds(-1024.0, 3071.0, "CT")
    ct = BoundsReport(total=1000, clipped=100, outside=1, worst=16.9, near=82, tolerance=0.41).text(box)
    assert ct.endswith("; 0.10 % still outside, by at most 16.9, to keep A x = y; 8.20 % outside by less than 0.41 "
                       "(the projections' stopping tolerance; an integer output rounds them onto the range)")
    mr = BoundsReport(total=1000, clipped=100, near=5, tolerance=0.61).text(box)
    assert mr.endswith("0.50 % outside by less than 0.61 (the projections' stopping tolerance)")  # -0.6 rounds to -1
    assert "outside by less" not in BoundsReport(total=1000, clipped=100).text(box)


def qp_projection(x0, y, matrix, low, high):
    """The reference: min |x - x0|^2 subject to A x = y and low <= x <= high, by a general solver (SLSQP), on
    values scaled to about 1 (SLSQP's tolerances are absolute)."""
    from scipy.optimize import minimize

    unit = max(abs(low), abs(high))
    c, b = x0 / unit, y / unit
    result = minimize(lambda v: 0.5 * np.sum((v - c) ** 2), np.clip(c, low / unit, high / unit), jac=lambda v: v - c,
                      constraints=[{"type": "eq", "fun": lambda v: matrix @ v - b, "jac": lambda v: matrix}],
                      bounds=[(low / unit, high / unit)] * len(c), method="SLSQP",
                      options={"maxiter": 1000, "ftol": 1e-15})
    assert result.success, result.message
    return result.x * unit


@pytest.mark.parametrize(("kind", "scale", "thickness"), [("profile", 3, 1.0), ("profile", 2.5, 1.5),
                                                          ("profile", 4, 0.8)])
def test_each_column_gets_the_exact_closest_consistent_point_in_the_box(kind, scale, thickness):
    from DPNSLCore.ops.bounds import closest_in_box

    rng = np.random.default_rng(3)
    deg = make_degradation(kind, scale, 7, thickness=thickness)
    y = rng.uniform(0.2, 0.8, (6, 7))
    x0 = y @ deg.pinv_matrix.T + rng.normal(0, 0.6, (6, deg.n_hr))  # wild columns around consistent ones
    x, solved, steps = closest_in_box(torch.from_numpy(x0), torch.from_numpy(y), torch.from_numpy(deg.matrix),
                                      0.0, 1.0)
    assert bool(solved.all()) and 0 < steps <= 30
    for i in range(len(y)):
        np.testing.assert_allclose(x[i].numpy(), qp_projection(x0[i], y[i], deg.matrix, 0.0, 1.0), atol=1e-6)


def test_every_column_that_leaves_the_box_gets_the_exact_projection():
    # bright thick slices at the top of the range: the detail overshoots below air beside them; each offending
    # column ends on the closest consistent column inside the box (no alternating projection needed: iterations=0)
    deg = make_degradation("profile", 5, 6, thickness=1.0)
    y = torch.tensor([-900.0, -300.0, 3071.0, 3071.0, -300.0, -900.0], dtype=torch.float64)[:, None, None]
    y = y + torch.tensor([0.0, 60.0, -100.0])[None, None, :]  # three columns
    wiggle = torch.sin(torch.arange(deg.n_hr, dtype=torch.float64))[:, None, None]
    x = deg.pinv(y) + torch.tensor([400.0, 250.0, 500.0])[None, None, :] * wiggle
    x = x - deg.pinv(deg.forward(x) - y)
    box = IntensityBounds(-1024.0, 3480.5, "test")
    out, report = keep_in_bounds(x.clone(), y, deg, box, iterations=0)
    assert float(x.min()) < -1100 and report.outside == report.fallback == report.iterations == 0
    assert 0 < report.newton <= 30 and "the exact projection (" in report.text(box)
    for c in range(3):
        np.testing.assert_allclose(out[:, 0, c].numpy(), qp_projection(x[:, 0, c].numpy(), y[:, 0, c].numpy(),
                                                                         deg.matrix, -1024.0, 3480.5), atol=1e-5)
    assert float((deg.forward(out) - y).abs().max()) < 1e-9


def test_a_column_with_no_consistent_point_in_the_box_is_said_and_stays_consistent():
    deg = make_degradation("profile", 3, 5, thickness=1.5)  # overlapping slices
    y = torch.tensor([0.0, 1.0, 0.0, 1.0, 0.0], dtype=torch.float64)[:, None, None]  # too sharp for [0, 1]
    x = deg.pinv(y)
    out, report = keep_in_bounds(x.clone(), y, deg, IntensityBounds(0.0, 1.0, "test"), iterations=50)
    assert report.fallback == 1 and report.outside > 0 and report.worst > 0
    assert float((deg.forward(out) - y).abs().max()) < 1e-9
    assert "1 column(s) without consistent values in the range found (1 by more than 1 % of it)" in report.text(
        IntensityBounds(0.0, 1.0, "test"))


def test_a_column_does_not_depend_on_its_neighbours():
    rng = np.random.default_rng(1)
    y = torch.from_numpy(rng.uniform(0.0, 1.0, (6, 4, 4)))
    deg = make_degradation("profile", 2.5, 6, thickness=1.2)
    x = deg.pinv(y) + torch.from_numpy(rng.normal(size=(deg.n_hr, 4, 4)))
    x = x - deg.pinv(deg.forward(x) - y)
    whole, _ = keep_in_bounds(x.clone(), y, deg, IntensityBounds(0.0, 1.0, "test"))
    part, _ = keep_in_bounds(x[:, :2, :3].clone(), y[:, :2, :3], deg, IntensityBounds(0.0, 1.0, "test"))
    torch.testing.assert_close(part, whole[:, :2, :3], rtol=0, atol=1e-12)


@pytest.mark.parametrize(("values", "modality", "low", "high"), [
    ((-1024, 1000), "ct", -1024, 3071),     # from air to the top of the CT window
    ((-1024, 3500), "ct", -1024, 3952.4),   # or 10 % of the range above a brighter maximum
    ((-3024, 1000), "ct", -3024, 3071),     # padding outside the field of view is never clipped
    ((-900, 100), "ct", -1024, 3071),       # a crop without air: its thin slices may still hold some
    ((0, 500), "mr", 0, np.inf),            # MR: not negative, no ceiling
    ((20, 500), "mr", 0, np.inf),
])
def test_the_default_box(values, modality, low, high):
    box = IntensityBounds.for_input(np.array(values, dtype=np.float32), modality)
    assert box.low == pytest.approx(low) and box.high == pytest.approx(high)


def test_an_mr_with_negative_values_gets_no_box_and_the_run_says_so():
    assert IntensityBounds.for_input(np.array([-3.0, 1.2]), "mr") is None  # z-scored: no physical floor
    assert IntensityBounds.for_input(np.array([0.0, 500.0]), "mr").rule == "MR: not negative"
    zscored = np.random.default_rng(0).normal(0, 1, (6, 24, 24)).astype(np.float32)
    result = DPNSLCore.upsample(zscored, 2, modality="mr", degradation="profile", device="cpu", calibrate=False)
    assert any(n.startswith("bounds: off, an MR with negative values") for n in result.notes)
    assert not any(n.startswith("output kept in") for n in result.notes)


def _thin_bright_vessel() -> np.ndarray:
    """A zero background with a dim tissue block and a bright one-slice-thick vessel in it: thick slices average the
    vessel with its dark neighbours, so its thin value lies far above every thick value."""
    x = np.zeros((31, 12, 12))
    x[6:25, 2:10, 2:10] = 100.0
    x[13, 5:7, 3:9] = 1000.0
    return x


@pytest.mark.parametrize("scale", [2, 3, 5])
def test_the_default_mr_box_holds_the_thin_truth_of_any_thick_acquisition(scale):
    # the old ceiling (thick max + 50 % of the range) cut the vessel: at x3 its 1000 lay above a box ending near 500
    thin = _thin_bright_vessel()
    thick, truth = simulate_acquisition(thin, scale, degradation="profile", thickness=1.0)
    box = IntensityBounds.for_input(thick, "mr")
    assert box.low <= truth.min() and truth.max() <= box.high


@pytest.mark.parametrize(("modality", "scale"), [("mr", 3), ("mr", 2), ("ct", 3)])
def test_keeping_the_box_never_moves_a_column_away_from_a_truth_inside_it(modality, scale):
    # the projections onto {A x = y} and the box are non-expansive towards any point of both: with the truth in the
    # box, the bounded output is never farther from it than the unbounded one, column by column
    rng = np.random.default_rng(1)
    thin = _thin_bright_vessel() if modality == "mr" else _thin_bright_vessel() * 2 - 1024
    thick, truth = simulate_acquisition(thin, scale, degradation="profile", thickness=1.0)
    deg = make_degradation("profile", scale, thick.shape[0], thickness=1.0)
    y = torch.from_numpy(thick).double()
    noisy = torch.from_numpy(truth).double() + torch.from_numpy(rng.normal(0, 300, truth.shape))
    x = deg.project_consistent(noisy.reshape(deg.n_hr, -1), y.reshape(deg.n_lr, -1)).reshape(truth.shape)
    box = IntensityBounds.for_input(thick, modality)
    bounded, report = keep_in_bounds(x.clone(), y, deg, box)
    assert report.clipped > 0
    before = (x - torch.from_numpy(truth)).square().sum(0)
    after = (bounded - torch.from_numpy(truth)).square().sum(0)
    assert bool((after <= before + 1e-6).all()) and float(after.sum()) < float(before.sum())
    assert float((deg.forward(bounded) - y).abs().max()) < 1e-6


def test_given_bounds_must_contain_the_input(lung):
    with pytest.raises(ValueError, match=r"must contain the input's range"):
        DPNSLCore.upsample(lung, 5, bounds=(-500, 500), device="cpu")
    with pytest.raises(ValueError, match=r"`bounds` must be 'auto', a \(low, high\) pair or None"):
        DPNSLCore.upsample(lung, 5, bounds="physical", device="cpu")
    out = DPNSLCore.upsample(lung, 5, bounds=(-1100, 4000), device="cpu", degradation="decimate")  # exact clipping
    assert out.volume.min() >= -1100


def test_a_profile_the_observed_slices_cannot_come_from_is_doubted_in_words():
    # air (-1024 HU, the floor) beside bone: a box of the spacing is feasible, a Gaussian's tails are not
    deg_box, deg_gauss = (make_degradation("profile", 4, 6, profile=p) for p in ("box", "gaussian"))
    y = torch.tensor([-1024.0, -1024.0, 1500.0, -1024.0, 1500.0, -1024.0], dtype=torch.float64)[:, None, None]
    y = y.expand(6, 3, 40).clone()
    y[:, :, 20:] = 40.0  # 60 of the 120 columns are soft tissue only, feasible under either profile
    box = IntensityBounds(-1024.0, 3480.5, "test")
    reports = {}
    for name, deg in {"box": deg_box, "gaussian": deg_gauss}.items():
        out, reports[name] = keep_in_bounds(deg.pinv(y), y, deg, box, iterations=40)
        assert float((deg.forward(out) - y).abs().max()) < 1e-6  # A x = y whatever the profile
    assert reports["box"].fallback == 0 and not reports["box"].implausible
    assert reports["box"].columns == reports["gaussian"].columns == 120
    assert reports["gaussian"].fallback == reports["gaussian"].impossible == 60 and reports["gaussian"].implausible
    text = reports["gaussian"].text(box)
    assert "60 column(s) without consistent values in the range found (60 by more than 1 % of it)" in text
    assert "that is 50.0 % of the columns" in text and "probably too wide" in text
    merged = reports["box"].merge(reports["gaussian"])
    assert merged.columns == 240 and merged.implausible and "that is 25.0 % of the columns" in merged.text(box)


def test_a_column_impossible_by_less_than_the_noise_margin_is_not_held_against_the_profile():
    deg = make_degradation("profile", 3, 5, thickness=1.5)  # overlapping: a bright slice between empty ones is
    box = IntensityBounds(0.0, 1.0, "test")                 # impossible, by an amount that grows with its value
    faint = torch.tensor([0.0, 0.1, 0.0, 0.1, 0.0], dtype=torch.float64)[:, None, None]
    bright = 5 * faint
    _, weak = keep_in_bounds(deg.pinv(faint), faint, deg, box, iterations=300)
    _, strong = keep_in_bounds(deg.pinv(bright), bright, deg, box, iterations=300)
    assert weak.fallback == 1 and 0 < weak.worst < 0.01 and weak.impossible == 0  # within 1 % of the range
    assert strong.fallback == strong.impossible == 1 and strong.worst > 0.01
    assert not weak.implausible and strong.implausible
    assert "probably too wide" not in weak.text(box) and "probably too wide" in strong.text(box)


@pytest.mark.parametrize(("kind", "profile", "thickness"), [("profile", "box", 1.0), ("profile", "box", 1.5),
                                                            ("profile", "gaussian", 0.9), ("sample", "box", 1.0)])
def test_the_banded_newton_matrix_equals_the_dense_one(kind, profile, thickness):
    deg = make_degradation(kind, 4.0 if kind == "profile" else 2.5, 9, profile=profile, thickness=thickness)
    matrix = torch.as_tensor(deg.matrix, dtype=torch.float64)
    free = torch.from_numpy(np.random.default_rng(3).integers(0, 2, (5, matrix.shape[1])).astype(np.float64))
    dense = (matrix * free[:, None, :]) @ matrix.T
    bands = BandedMatrix.from_dense(deg.matrix).gram_bands(free)
    banded = torch.zeros_like(dense)
    m = matrix.shape[0]
    for d in range(bands.shape[1]):
        banded[:, range(m - d), range(d, m)] = bands[:, d, : m - d]
        banded[:, range(d, m), range(m - d)] = bands[:, d, : m - d]
    torch.testing.assert_close(banded, dense, rtol=0, atol=1e-15)
    assert bands.shape[1] < m  # banded: fewer diagonals than rows


def test_the_exact_projection_gives_up_a_column_that_cannot_converge_and_still_solves_the_others():
    deg = make_degradation("profile", 3, 5, thickness=1.5)
    matrix = torch.as_tensor(deg.matrix, dtype=torch.float64)
    impossible = torch.tensor([0.0, 1.0, 0.0, 1.0, 0.0], dtype=torch.float64)  # no point of [0, 1] gives it
    possible = torch.tensor([0.2, 0.5, 0.9, 0.4, 0.1], dtype=torch.float64)
    y = torch.stack([impossible, possible])
    x0 = deg.pinv(y.T[:, :, None])[:, :, 0].T.contiguous() + torch.tensor([[0.0], [0.6]]).double()  # both outside
    x, solved, taken = closest_in_box(x0, y, matrix, 0.0, 1.0)
    assert solved.tolist() == [False, True] and taken == 2 * STALL_STEPS < 30  # not run to the 30-step limit
    assert float((x[1] @ matrix.T - possible).abs().max()) < 1e-9 and 0 <= float(x[1].min()) <= float(x[1].max()) <= 1


def test_the_box_is_narrowed_to_an_integer_output_type():
    box = IntensityBounds(-10.0, 750.0, "MR rule")
    narrowed = box.within_type(np.dtype(np.uint8))
    assert (narrowed.low, narrowed.high) == (0.0, 255.0) and "within uint8's range [0, 255]" in narrowed.rule
    assert box.within_type(np.dtype(np.float32)) is box and box.within_type(np.dtype(np.int16)) is box
    with pytest.raises(ValueError, match="do not overlap"):
        IntensityBounds(300.0, 750.0, "r").within_type(np.dtype(np.uint8))


def _bright_uint8_ball() -> DPNSLCore.Volume:
    """A 200 ball in a 40 background, uint8, 4 mm slices: the MR box (up to 280) is wider than uint8 holds, and
    the shipped MR model's thin slices overshoot 255 at the ball's edges."""
    z, y, x = np.mgrid[:12, :40, :40]
    r = np.sqrt(((z - 6) * 4.0) ** 2 + ((y - 20) * 0.8) ** 2 + ((x - 20) * 0.8) ** 2)
    geometry = DPNSLCore.Geometry(spacing=(0.8, 0.8, 4.0), origin=(0.0, 0.0, 0.0), direction=tuple(np.eye(3).ravel()))
    return DPNSLCore.Volume(np.where(r < 12, 200, 40).astype(np.uint8), geometry)


def test_an_integer_output_is_kept_in_its_type_so_the_cast_does_not_break_consistency():
    ball = _bright_uint8_ball()
    out = DPNSLCore.upsample(ball, 2, device="cpu", output_dtype="input")
    assert out.volume.dtype == np.uint8 and out.consistency_error <= 0.5  # the rounding only
    assert any("within uint8's range [0, 255]" in note for note in out.notes)
    assert not any("were clipped when converting" in note for note in out.notes)
    free = DPNSLCore.upsample(ball, 2, device="cpu", output_dtype="input", bounds=None)  # what the cast alone does
    assert free.consistency_error > 5
    clipped = [note for note in free.notes if "were clipped when converting" in note]
    assert len(clipped) == 1 and clipped[0].startswith("warning: ") and "uint8's range [0, 255]" in clipped[0]
    assert f"max |A x - y| after it: {free.consistency_error:.3g}" in clipped[0]


def test_an_integer_output_type_must_hold_the_input():
    values = np.linspace(-5.0, 300.0, 4 * 6 * 6, dtype=np.float32).reshape(4, 6, 6)
    with pytest.raises(ValueError, match=r"uint8 holds \[0, 255\], the input's values span \[-5, 300\]"):
        DPNSLCore.upsample(values, 2, method="linear", output_dtype=np.uint8)
    assert DPNSLCore.upsample(values, 2, method="linear", output_dtype=np.int16).volume.dtype == np.int16


@pytest.mark.parametrize("n_lr", [150, 600])
def test_the_bounds_step_on_a_long_series_uses_no_dense_solve_and_keeps_every_column_consistent(n_lr, monkeypatch):
    # a 150-600-slice series: the exact projection's Newton systems are band matrices, factorised without LAPACK
    # (the dense batched solve was cubic in the slices and met degenerate pivots on a 150-slice crop)
    def refuse(*args, **kwargs):
        raise AssertionError("a dense LAPACK solve was called")

    monkeypatch.setattr(torch.linalg, "solve", refuse)
    monkeypatch.setattr(torch.linalg, "lu_factor", refuse)
    rng = np.random.default_rng(5)
    deg = make_degradation("profile", 4, n_lr, thickness=1.0)
    thin = np.where(rng.random((deg.n_hr, 3, 4)) < 0.3, -1024.0, rng.uniform(-100, 400, (deg.n_hr, 3, 4)))
    y = deg.forward(torch.from_numpy(thin))
    x = deg.anchor(y, "cubic") + torch.from_numpy(rng.normal(0, 400, thin.shape))  # consistent? not yet:
    x = deg.project_consistent(x.reshape(deg.n_hr, -1), y.reshape(n_lr, -1)).reshape(thin.shape)
    box = IntensityBounds.for_input(y, "ct")
    out, report = keep_in_bounds(x.clone(), y, deg, box)
    assert report.clipped > 0 and report.newton > 0 and report.fallback == 0
    assert float(out.min()) >= box.low - report.tolerance and float((deg.forward(out) - y).abs().max()) < 1e-6


def test_the_band_solve_leaves_its_right_hand_side_unchanged():
    from DPNSLCore.ops.banded import band_cholesky, band_cholesky_solve

    band = BandedMatrix.from_dense(make_degradation("profile", 3, 9, thickness=1.5).matrix)
    factor, ok = band_cholesky(band.gram_bands())
    rhs = torch.randn(9, 4, dtype=torch.float64).T  # (k, m) whose transpose is contiguous
    before = rhs.clone()
    band_cholesky_solve(factor, rhs)
    assert bool(ok.all()) and torch.equal(rhs, before)


def test_the_band_cholesky_refuses_matrices_that_are_not_positive_definite():
    """Each matrix of the batch is judged on its own: a zero or negative pivot anywhere (the last row included, where
    no later division would turn it into a NaN) or a NaN marks that matrix unsolved and leaves the others alone."""
    from DPNSLCore.ops.banded import band_cholesky, band_cholesky_solve

    good = torch.tensor([[4.0, 5.0, 6.0], [1.0, 1.0, 0.0]], dtype=torch.float64)  # tridiagonal, diagonally dominant
    bands = torch.stack([good, good.clone(), good.clone(), good.clone()])  # (k, p + 1, m)
    bands[1] = torch.tensor([[1.0, 2.0, 1.0], [1.0, 1.0, 0.0]])  # exactly singular: the last pivot is 1 - 1 = 0
    bands[2, 0, 0] = -1.0  # a negative first pivot
    bands[3, 1, 1] = float("nan")
    factor, ok = band_cholesky(bands)
    assert ok.tolist() == [True, False, False, False]
    dense = torch.diag(good[0]) + torch.diag(good[1, :2], -1) + torch.diag(good[1, :2], 1)
    rhs = torch.randn(4, 3, dtype=torch.float64)
    assert torch.allclose(band_cholesky_solve(factor[:1], rhs[:1])[0], torch.linalg.solve(dense, rhs[0]))
