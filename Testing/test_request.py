"""The one request object: every front end resolves slice axis, scale, acquisition and output grid through it."""

import math

import numpy as np
import pytest

from DPNSLCore import Geometry, UpsampleRequest, Volume, index_to_world, upsample
from DPNSLCore.ops.grid import SCALE_SNAP, check_scale, hr_length, snap_scale, thickest_axis

THICK_X = Geometry(spacing=(5.0, 1.0, 1.0))  # ITK order (x, y, z): the thick axis is x = numpy axis 2


def test_scale_or_spacing_gives_the_same_plan():
    by_scale = UpsampleRequest(scale=5).resolve((48, 8, 8), spacing_zyx=(5.0, 0.6, 0.6))
    by_spacing = UpsampleRequest(spacing=1.0).resolve((48, 8, 8), spacing_zyx=(5.0, 0.6, 0.6))
    assert by_scale.scale == by_spacing.scale == 5.0 and by_scale.degradation == by_spacing.degradation == "decimate"
    assert by_scale.n_hr == by_spacing.n_hr == 236 and by_scale.output_spacing == pytest.approx(1.0)


@pytest.mark.parametrize("target", [4.9999998, 5.0000002])
def test_one_snapping_rule_for_float_noise_in_a_spacing(target):
    # 25 mm slices to "5 mm" with float noise: scale 5, decimate, in the API as in every front end
    plan = UpsampleRequest(spacing=target).resolve((4, 8, 8), spacing_zyx=(25.0, 1.0, 1.0))
    assert plan.scale == 5.0 and plan.degradation == "decimate"
    assert snap_scale(5 * (1 + 0.5 * SCALE_SNAP)) == 5.0 and snap_scale(5 * (1 + 2 * SCALE_SNAP)) != 5.0


def test_non_integer_scale_picks_sample_and_says_so():
    plan = UpsampleRequest(scale=2.5).resolve((5, 4, 4))
    assert plan.degradation == "sample" and plan.n_hr == 11
    assert "acquisition sample (auto: non-integer scale)" in plan.notes
    assert "slice axis 0 (z): no geometry given" in plan.notes[0]


@pytest.mark.parametrize(("spacing_zyx", "axis"), [((3, 1, 1), 0), ((1, 4, 1), 1), ((1, 1, 5), 2), ((2, 2, 1), 0),
                                                   ((1, 3, 3), 1)])
def test_slice_axis_is_the_largest_spacing_ties_to_the_lowest_axis(spacing_zyx, axis):
    assert thickest_axis(spacing_zyx) == axis
    assert UpsampleRequest(scale=2).resolve((6, 6, 6), spacing_zyx=spacing_zyx).slice_axis == axis


def test_api_detects_a_thick_x_axis_like_the_cli():
    # the API's default is the CLI's: a Volume whose thick axis is x is upsampled along x
    array = np.arange(4 * 3 * 6, dtype=np.float32).reshape(4, 3, 6)
    result = upsample(Volume(array, THICK_X), 5, method="linear")
    assert result.slice_axis == 2 and result.volume.shape == (4, 3, 26)
    assert result.geometry.spacing == pytest.approx((1.0, 1.0, 1.0))
    for j in (0, 3, 5):  # observed slice j keeps its world position and its values
        np.testing.assert_array_equal(result.volume[:, :, 5 * j], array[:, :, j])
        np.testing.assert_allclose(index_to_world(result.geometry, (1, 2, 5 * j)), index_to_world(THICK_X, (1, 2, j)))


def test_output_geometry_keeps_origin_and_direction():
    rotated = Geometry((0.7, 0.8, 3.0), (10.0, -5.0, 2.5), (0.0, -1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0))
    plan = UpsampleRequest(spacing=1.2).resolve((5, 4, 4), geometry=rotated)
    assert plan.geometry.origin == rotated.origin and plan.geometry.direction == rotated.direction
    assert plan.geometry.spacing == pytest.approx((0.7, 0.8, 1.2)) and plan.n_hr == math.ceil(4 * 2.5) + 1


def test_output_matrix_is_the_geometry_rule_for_index_to_world_matrices():
    matrix = np.eye(4)
    matrix[:3, :3] = np.diag([0.7, 0.8, 3.0])
    matrix[:3, 3] = (1.0, 2.0, 3.0)
    out = UpsampleRequest(scale=3).resolve((4, 5, 6), spacing_zyx=(3.0, 0.8, 0.7)).output_matrix(matrix)
    np.testing.assert_allclose(out @ [1, 2, 6, 1], matrix @ [1, 2, 2, 1])
    np.testing.assert_array_equal(out[:, 3], matrix[:, 3])


def test_describe_names_axis_counts_spacings_and_acquisition():
    plan = UpsampleRequest(scale=5).resolve((48, 8, 8), spacing_zyx=(5.0, 0.6, 0.6))
    assert plan.describe() == "axis 0 (z): 48 slices x 5 mm -> 236 slices x 1 mm (scale 5), decimate"
    profile = UpsampleRequest(scale=3, degradation="profile", thickness=1.5).resolve((4, 2, 2))
    assert profile.acquisition_text() == "box profile, thickness 1.5 spacings"
    in_mm = UpsampleRequest(scale=5, degradation="profile").resolve((48, 8, 8), spacing_zyx=(5.0, 0.6, 0.6))
    assert in_mm.describe() == ("axis 0 (z): 48 slices x 5 mm -> 236 slices x 1 mm (scale 5), box profile, 5 mm "
                                "thick every 5 mm")


def test_thickness_in_mm_is_divided_by_the_slice_spacing():
    plan = UpsampleRequest(scale=2, degradation="profile", thickness_mm=7.5).resolve(
        (4, 4, 4), spacing_zyx=(1.0, 1.0, 3.0), slice_thickness=2.0)
    assert plan.slice_axis == 2 and plan.thickness == 2.5  # over the slice axis' 3 mm spacing; beats the header
    assert "profile thickness 7.5 mm = 2.5 spacings (given)" in plan.notes
    with pytest.raises(ValueError, match="at most one of `thickness`"):
        UpsampleRequest(scale=2, thickness=1, thickness_mm=5)
    with pytest.raises(ValueError, match="`thickness_mm` needs the input's geometry"):
        UpsampleRequest(scale=2, degradation="profile", thickness_mm=5).resolve((4, 4, 4))


def test_grid_rule_matches_hr_length():
    for n, s in [(2, 2.0), (5, 2.5), (7, 3.3), (40, 4.0), (13, 1.7)]:
        assert UpsampleRequest(scale=s).resolve((n, 2, 2)).n_hr == hr_length(n, s) == math.ceil((n - 1) * s - 1e-9) + 1


def test_both_or_neither_of_scale_and_spacing_is_rejected():
    with pytest.raises(ValueError, match="give exactly one of `scale`"):
        UpsampleRequest(scale=2, spacing=1.0)
    with pytest.raises(ValueError, match="give exactly one of `scale`"):
        UpsampleRequest()


def test_spacing_without_geometry_is_rejected():
    with pytest.raises(ValueError, match="`spacing` needs the input's geometry: pass a Volume"):
        UpsampleRequest(spacing=1.0).resolve((4, 4, 4))


def test_target_spacing_not_below_the_current_is_explained():
    with pytest.raises(ValueError, match=r"`scale` must be > 1, got 1; .* target spacing below the current 3 mm"):
        UpsampleRequest(scale=1.0).resolve((4, 4, 4), spacing_zyx=(3.0, 1.0, 1.0))
    for target in (3.0, 6.0):
        with pytest.raises(ValueError, match=rf"`spacing` must be below the current 3 mm along the slice axis "
                                             rf".*got {target:g} mm \(scale {3 / target:.4g}\)"):
            UpsampleRequest(spacing=target).resolve((4, 4, 4), spacing_zyx=(3.0, 1.0, 1.0))


def test_decimate_with_a_non_integer_scale_is_rejected():
    with pytest.raises(ValueError, match=r"`decimate` needs an integer `scale`, got 2.5; use degradation 'sample'"):
        UpsampleRequest(scale=2.5, degradation="decimate").resolve((4, 4, 4))


@pytest.mark.parametrize(("field", "value", "message"), [
    ("degradation", "thick", "`degradation` must be 'auto' or one of"),
    ("profile", "tent", "`profile` must be one of"),
    ("thickness", 0.0, r"`thickness` must be in \(0, 10\]"),
    ("slice_axis", 3, "`slice_axis` must be a numpy axis"),
    ("spacing", -1.0, "`spacing` must be a positive number of mm"),
])
def test_each_bad_choice_names_itself(field, value, message):
    kwargs = {"scale": 2} if field != "spacing" else {}
    with pytest.raises(ValueError, match=message):
        UpsampleRequest(**kwargs, **{field: value})


def test_check_scale_rejects_non_numbers_and_huge_factors():
    with pytest.raises(TypeError, match="`scale` must be a number"):
        check_scale("4")
    with pytest.raises(ValueError, match="almost surely a typo"):
        check_scale(500)


def test_profile_thickness_comes_from_the_header_else_the_spacing():
    from_header = UpsampleRequest(scale=2, degradation="profile").resolve((4, 4, 4), spacing_zyx=(5.0, 1.0, 1.0),
                                                                          slice_thickness=7.5)
    assert from_header.thickness == 1.5
    assert "4 slices, 7.5 mm thick every 5 mm (from the header)" in from_header.notes
    assert "profile thickness 1.5 spacings (the header's 7.5 mm)" in from_header.notes
    plain = UpsampleRequest(scale=2, degradation="profile").resolve((4, 4, 4), spacing_zyx=(5.0, 1.0, 1.0))
    assert plain.thickness == 1.0 and any("thickness = spacing" in n for n in plain.notes)
    given = UpsampleRequest(scale=2, degradation="profile", thickness=0.8).resolve(
        (4, 4, 4), spacing_zyx=(5.0, 1.0, 1.0), slice_thickness=7.5)
    assert given.thickness == 0.8  # the caller's choice wins over the header


def test_a_header_thickness_of_another_axis_is_not_used():
    plan = UpsampleRequest(scale=2, degradation="profile").resolve((4, 4, 4), spacing_zyx=(1.0, 1.0, 5.0),
                                                                   slice_thickness=7.5)
    assert plan.slice_axis == 2 and plan.thickness == 1.0


def test_volume_thickness_reaches_the_api():
    volume = Volume(np.zeros((4, 6, 6), np.float32), Geometry(spacing=(1.0, 1.0, 4.0)), slice_thickness=6.0)
    result = upsample(volume, 2, method="linear", degradation="profile")
    assert result.plan.thickness == 1.5
    with pytest.raises(ValueError, match="`slice_thickness` must be a positive number of mm"):
        Volume(np.zeros((4, 6, 6)), slice_thickness=0.0)


@pytest.mark.parametrize(("given", "trained", "expected", "why"), [
    (None, "box", "box", "the model's profile"),
    (None, "gaussian", "gaussian", "the model's profile"),
    ("gaussian", "box", "gaussian", "the profile given"),
    ("box", "gaussian", "box", "the profile given"),
])
def test_auto_uses_the_profile_shape_given_else_the_models(given, trained, expected, why):
    plan = UpsampleRequest(scale=5, profile=given).resolve(
        (8, 4, 4), spacing_zyx=(5.0, 1.0, 1.0), trained_acquisition={"kind": "mix", "profile": trained,
                                                                    "thickness": [0.75, 1.5]})
    assert (plan.degradation, plan.profile) == ("profile", expected)
    assert any(n.endswith(f"(auto: the model was trained for slice profiles; {why})") for n in plan.notes)


def test_an_explicit_slice_profile_without_a_shape_is_a_box():
    assert UpsampleRequest(scale=2, degradation="profile").resolve((4, 4, 4)).profile == "box"
    assert UpsampleRequest(scale=2, degradation="profile", profile="gaussian").resolve((4, 4, 4)).profile == "gaussian"
