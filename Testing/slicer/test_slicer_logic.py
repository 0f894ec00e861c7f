"""The Qt-free Logic on real MRML nodes: geometry of the output, node reuse, validation (baselines only)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from mrml_helpers import makeIjkToRas, requireSlicer, smoothVolume

slicer = requireSlicer()

from DPNSLLib.logic import SliceSuperResolutionLogic  # noqa: E402
from DPNSLLib.volumes import ijkToRasArray  # noqa: E402

SPACINGS = {0: (0.7, 0.8, 3.0), 1: (0.7, 3.0, 0.8), 2: (3.0, 0.8, 0.7)}  # IJK spacing; numpy slice axis = key


@pytest.fixture
def logic():
    return SliceSuperResolutionLogic()


def _rasOf(matrix: np.ndarray, zyx: np.ndarray) -> np.ndarray:
    """(N, 3) RAS of (N, 3) numpy-order (k, j, i) indices."""
    ijk1 = np.concatenate([zyx[:, ::-1], np.ones((len(zyx), 1))], axis=1)
    return (ijk1 @ matrix.T)[:, :3]


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_rotated_anisotropic_volume_keeps_observed_slices_in_place(logic, makeVolume, axis):
    shape = [6, 7, 8]
    shape[axis] = 5
    array, matrix = smoothVolume(tuple(shape)), makeIjkToRas(SPACINGS[axis])
    inputNode = makeVolume(array, matrix)
    output = logic.upsample(inputNode, 3, method="linear")
    out, outMatrix = slicer.util.arrayFromVolume(output), ijkToRasArray(output)
    assert out.shape[axis] == 13 and np.delete(out.shape, axis).tolist() == np.delete(array.shape, axis).tolist()
    # every voxel of every observed slice: same RAS position and the same value in the output
    lrIndex = np.argwhere(np.ones(array.shape, bool)).astype(np.float64)
    hrIndex = lrIndex.copy()
    hrIndex[:, axis] *= 3
    np.testing.assert_allclose(_rasOf(outMatrix, hrIndex), _rasOf(matrix, lrIndex), atol=1e-9)
    np.testing.assert_array_equal(np.take(out, np.arange(0, 13, 3), axis=axis), array)
    np.testing.assert_allclose(outMatrix[:, 3], matrix[:, 3])  # first slice (origin) kept
    assert output.GetAttribute("DPNSL.consistencyError") == "0"


def test_non_integer_sample_scale_puts_hr_slice_k_at_lr_position_k_over_s(logic, makeVolume):
    array, matrix = smoothVolume((5, 6, 7)), makeIjkToRas(SPACINGS[0])
    output = logic.upsample(makeVolume(array, matrix), 2.5, method="cubic", degradation="sample")
    assert slicer.util.arrayFromVolume(output).shape == (11, 6, 7)  # ceil(4 * 2.5) + 1
    k = np.array([[0.0, 1.0, 2.0], [3.0, 1.0, 2.0], [10.0, 5.0, 6.0]])
    np.testing.assert_allclose(_rasOf(ijkToRasArray(output), k), _rasOf(matrix, k * [[1 / 2.5, 1, 1]]), atol=1e-9)
    assert output.GetAttribute("DPNSL.degradation") == "sample" and output.GetAttribute("DPNSL.method") == "cubic"


def test_target_spacing_gives_the_scale(logic, makeVolume):
    node = makeVolume(smoothVolume((4, 5, 6)), makeIjkToRas(SPACINGS[0]))
    output = logic.upsample(node, spacing=1.0, method="linear")
    assert output.GetAttribute("DPNSL.scale") == "3"
    np.testing.assert_allclose(np.linalg.norm(ijkToRasArray(output)[:3, 2]), 1.0)
    assert logic.gridSummary(node, spacing=1.0) == "k axis: 4 slices x 3 mm -> 10 slices x 1 mm (scale 3), decimate"


def test_plan_is_dpnslcores_request_in_any_orientation(logic, makeVolume):
    import DPNSLCore

    for spacingIjk, axis in [((0.7, 0.8, 3.0), 0), ((0.7, 4.0, 0.8), 1), ((5.0, 0.8, 0.8), 2)]:
        node = makeVolume(smoothVolume((5, 6, 7)), makeIjkToRas(spacingIjk))
        plan = logic.plan(node, 2.5)
        expected = DPNSLCore.UpsampleRequest(scale=2.5).resolve((5, 6, 7), spacing_zyx=spacingIjk[::-1])
        assert plan == expected and plan.slice_axis == axis
        assert plan.n_hr == DPNSLCore.hr_length((5, 6, 7)[axis], 2.5) and plan.degradation == "sample"


def test_isotropic_volume_defaults_to_the_k_axis_and_says_so(logic, makeVolume):
    plan = logic.plan(makeVolume(smoothVolume((3, 4, 5)), makeIjkToRas((1.0, 1.0, 1.0))), 2)
    assert plan.slice_axis == 0 and any("isotropic" in note for note in plan.notes)


def test_slice_axis_out_of_range_is_rejected(logic, makeVolume):
    with pytest.raises(ValueError, match=r"`slice_axis` must be a numpy axis 0 \(z\), 1 \(y\) or 2 \(x\).*got 3"):
        logic.plan(makeVolume(smoothVolume((3, 4, 5)), np.eye(4)), 2, sliceAxis=3)


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_output_matrix_maps_hr_index_k_to_lr_position_k_over_s(logic, makeVolume, axis):
    matrix, scale = makeIjkToRas((0.7, 0.9, 3.0)), 2.5
    hr = logic.plan(makeVolume(smoothVolume((5, 6, 7)), matrix), scale, sliceAxis=axis).output_matrix(matrix)
    for k in (0, 1, 5, 7):
        hrIndex, lrIndex = np.array([2.0, 3.0, 4.0, 1.0]), np.array([2.0, 3.0, 4.0, 1.0])
        hrIndex[2 - axis], lrIndex[2 - axis] = k, k / scale
        np.testing.assert_allclose(hr @ hrIndex, matrix @ lrIndex, atol=1e-9)
    np.testing.assert_array_equal(hr[:, 3], matrix[:, 3])  # origin kept


def test_output_node_and_parts_are_reused(logic, scene, makeVolume):
    node = makeVolume(smoothVolume((4, 5, 6)), makeIjkToRas(SPACINGS[0]))
    first, parts1 = logic.upsample(node, 2, method="linear", returnParts=True)
    count = scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode")
    second, parts2 = logic.upsample(node, 3, method="cubic", outputNode=first, returnParts=True)
    assert second.GetID() == first.GetID() and parts2.anchor.GetID() == parts1.anchor.GetID()
    assert parts2.detail.GetID() == parts1.detail.GetID()
    assert scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode") == count
    assert slicer.util.arrayFromVolume(second).shape == (10, 5, 6)
    logic.upsample(node, 2, method="linear", outputNode=first)  # without parts: stale parts are removed
    assert first.GetNodeReference("DPNSL.anchor") is None
    assert scene.GetNodeByID(parts1.anchor.GetID()) is None


def test_output_and_parts_follow_the_inputs_transform(logic, scene, makeVolume):
    """A volume under a transform (a registration, or the acquisition transform Slicer's DICOM module gives a tilted
    series) is upsampled in its own space: the output and its parts must sit under the same transform to overlay."""
    node = makeVolume(smoothVolume((4, 5, 6)), makeIjkToRas(SPACINGS[0]))
    transform = scene.AddNewNodeByClass("vtkMRMLGridTransformNode")
    node.SetAndObserveTransformNodeID(transform.GetID())
    output, nodes = logic.upsample(node, 2, method="linear", returnParts=True)
    assert output.GetTransformNodeID() == transform.GetID()
    assert nodes.anchor.GetTransformNodeID() == transform.GetID() == nodes.detail.GetTransformNodeID()


def test_new_output_by_default_never_the_input(logic, makeVolume):
    node = makeVolume(smoothVolume((4, 5, 6)), makeIjkToRas(SPACINGS[0]), "thick")
    a, b = logic.upsample(node, 2, method="linear"), logic.upsample(node, 2, method="linear")
    assert a.GetID() != b.GetID() and a.GetName() == "thick_x2_linear"
    with pytest.raises(ValueError, match=r"`outputNode` is the input volume 'thick': DPNSL never overwrites"):
        logic.upsample(node, 2, method="linear", outputNode=node)


def test_no_input_is_rejected(logic):
    with pytest.raises(ValueError, match=r"`inputNode` is None: select a scalar volume"):
        logic.upsample(None, 2, method="linear")


def test_two_d_input_is_rejected(logic, makeVolume):
    node = makeVolume(np.zeros((1, 5, 6), np.float32), np.eye(4), "slice")
    with pytest.raises(ValueError, match=r"'slice' is 2-D"):
        logic.upsample(node, 2, method="linear")


def test_four_d_input_is_rejected(logic, makeVolume):
    node = makeVolume(np.zeros((3, 5, 6, 4), np.float32), np.eye(4), "dyn", "vtkMRMLVectorVolumeNode")
    with pytest.raises(ValueError, match=r"'dyn' has 4 components per voxel"):
        logic.upsample(node, 2, method="linear")


@pytest.mark.parametrize("scale", [1.0, 0.5, -2.0])
def test_scale_at_most_one_is_rejected(logic, makeVolume, scale):
    node = makeVolume(smoothVolume((4, 5, 6)), makeIjkToRas(SPACINGS[0]))
    with pytest.raises(ValueError, match=r"`scale` must be > 1, got .*target spacing below the current 3 mm"):
        logic.upsample(node, scale, method="linear", degradation="sample")


def test_target_spacing_coarser_than_input_is_rejected(logic, makeVolume):
    node = makeVolume(smoothVolume((4, 5, 6)), makeIjkToRas(SPACINGS[0]))
    with pytest.raises(ValueError, match=r"`spacing` must be below the current 3 mm .*got 6 mm \(scale 0.5\)"):
        logic.upsample(node, spacing=6.0, method="linear", degradation="sample")


def test_scale_and_spacing_together_are_rejected(logic, makeVolume):
    node = makeVolume(smoothVolume((4, 5, 6)), makeIjkToRas(SPACINGS[0]))
    with pytest.raises(ValueError, match=r"give exactly one of `scale`"):
        logic.upsample(node, 2, spacing=1.0, method="linear")
    with pytest.raises(ValueError, match=r"give exactly one of `scale`"):
        logic.upsample(node, method="linear")


def test_decimate_needs_an_integer_scale(logic, makeVolume):
    node = makeVolume(smoothVolume((4, 5, 6)), makeIjkToRas(SPACINGS[0]))
    with pytest.raises(ValueError, match=r"`decimate` needs an integer `scale`, got 2.5; use degradation 'sample'"):
        logic.upsample(node, 2.5, method="linear", degradation="decimate")
    plan = logic.plan(node, 2.9999999)  # float noise from a spacing is snapped, with DPNSLCore's rule
    assert (plan.scale, plan.slice_axis, plan.degradation) == (3.0, 0, "decimate")
    assert logic.upsample(node, 2.5, method="linear").GetAttribute("DPNSL.degradation") == "sample"  # auto


def test_unknown_method_and_degradation_are_rejected(logic, makeVolume):
    node = makeVolume(smoothVolume((4, 5, 6)), makeIjkToRas(SPACINGS[0]))
    with pytest.raises(ValueError, match=r"methods must be a non-empty selection of \['linear', 'cubic', 'dpnsl'\]"):
        logic.upsample(node, 2, method="nearest")
    with pytest.raises(ValueError, match=r"`degradation` must be one of \['auto', 'decimate', 'sample', 'profile'\]"):
        logic.upsample(node, 2, method="linear", degradation="blur")


def test_checkpoint_choice_needs_an_existing_file(logic, tmp_path):
    assert logic.modelSpec("mr") == "mr"
    with pytest.raises(ValueError, match=r"checkpoint file not found: .*missing.safetensors"):
        logic.modelSpec("checkpoint", tmp_path / "missing.safetensors")
    path = tmp_path / "m.safetensors"
    path.write_bytes(b"")
    assert logic.modelSpec("checkpoint", path) == str(path)
    from pathlib import Path

    for unset in (Path(), "", None):  # the parameter node's default Path() is "."
        with pytest.raises(ValueError, match=r"checkpoint file not found: \(none selected\)"):
            logic.modelSpec("checkpoint", unset)


def test_models_are_loaded_once_per_model_and_device(logic, monkeypatch):
    import DPNSLCore

    calls = []
    monkeypatch.setattr(DPNSLCore, "open_model", lambda name, device: calls.append((name, device)) or object())
    first = logic.loadModel("ct", "cpu")
    assert logic.loadModel("ct", "cpu") is first and calls == [("ct", "cpu")]
    logic.loadModel("mr", "cpu")
    assert calls == [("ct", "cpu"), ("mr", "cpu")]
    assert logic.loadModel(None, "cpu") is None  # DPNSLCore then picks CT or MR from the intensities
    module = object()
    assert logic.loadModel(module, "cpu") is module


def test_the_output_says_which_model_made_it(logic, makeVolume):
    node = makeVolume(smoothVolume((4, 16, 16)) - 1000.0, makeIjkToRas(SPACINGS[0]))  # HU-like: the CT model
    output = logic.upsample(node, 2, model="ct", device="cpu")
    notes = output.GetAttribute("DPNSL.notes")
    assert "model: shipped CT model (dpnsl_ct.safetensors)" in notes
    assert "acquisition box profile, thickness 1 spacings (auto" in notes
    record = json.loads(output.GetAttribute("DPNSL.record"))  # the command line's record, on the node
    assert record["model"]["file"].endswith("dpnsl_ct.safetensors") and len(record["model"]["sha256"]) == 64
    assert record["plan"]["scale"] == 2 and record["notes"][-1] in notes and "network" in record["timings_s"]


def test_destripe_is_on_by_default_said_and_can_be_turned_off(logic, makeVolume):
    node = makeVolume(smoothVolume((6, 16, 16)) * 400.0 - 900.0, makeIjkToRas(SPACINGS[0]))
    on = logic.upsample(node, 3, model="ct", device="cpu")
    off = logic.upsample(node, 3, model="ct", device="cpu", destripe=False)
    assert "destripe: the detail's part locked to the slice phase removed" in on.GetAttribute("DPNSL.notes")
    assert "destripe" not in off.GetAttribute("DPNSL.notes")
    assert not np.array_equal(slicer.util.arrayFromVolume(on), slicer.util.arrayFromVolume(off))


def test_calibration_is_on_reads_the_nodes_spacing_and_keeps_the_acquired_slices(logic, makeVolume):
    node = makeVolume(smoothVolume((6, 40, 40)) * 400.0 - 900.0, makeIjkToRas(SPACINGS[0]))
    output = logic.upsample(node, 2, model="ct", device="cpu", degradation="decimate")
    notes = output.GetAttribute("DPNSL.notes")
    # 0.7 / 0.8 mm in-plane, 1.5 mm output slices: the views are resampled to 1.5 mm, so the node's spacing arrived
    assert "fitted on 2 in-plane view(s) of this volume, resampled to 1.5 mm" in notes, notes
    gain = output.GetAttribute("DPNSL.detailGain")  # the same gain, as an attribute (1 when the fit won too little)
    assert f"detail gain {gain} fitted" in notes or (gain == "1.00" and "detail gain 1: the gain fitted" in notes)
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(output)[::2], slicer.util.arrayFromVolume(node))
    plain = logic.upsample(node, 2, model="ct", device="cpu", degradation="decimate", calibrate=False)
    assert "detail gain" not in plain.GetAttribute("DPNSL.notes")


def test_the_self_ensemble_reaches_the_run_and_is_said(logic, makeVolume):
    node = makeVolume(smoothVolume((6, 24, 24)) * 400.0 - 900.0, makeIjkToRas(SPACINGS[0]))
    run = dict(model="ct", device="cpu", degradation="decimate", calibrate=False)
    eight, one = logic.upsample(node, 2, ensemble=8, **run), logic.upsample(node, 2, **run)
    assert "ensemble: the network's estimate averaged over 8 in-plane flips" in eight.GetAttribute("DPNSL.notes")
    assert "ensemble" not in one.GetAttribute("DPNSL.notes")
    voxels = slicer.util.arrayFromVolume(eight)
    np.testing.assert_array_equal(voxels[::2], slicer.util.arrayFromVolume(node))  # acquired slices unchanged
    assert not np.array_equal(voxels, slicer.util.arrayFromVolume(one))


def _thickCt(makeVolume):
    return makeVolume(smoothVolume((4, 12, 10)) - 900.0, makeIjkToRas(SPACINGS[0]), "thick")


def test_progress_reports_every_stage_up_to_the_end(logic, makeVolume):
    seen = []
    logic.upsample(_thickCt(makeVolume), 2, model="ct", device="cpu", returnParts=True,
                   progress=lambda fraction, message: seen.append((fraction, message)))
    fractions, messages = [f for f, _ in seen], [m for _, m in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and messages[-1] == "done"
    for stage in ("writing the output volume", "writing the range anchor", "writing the null-space detail",
                  "writing routing map 3/3", "computing the arg-max expert map"):
        assert stage in messages
    assert max(f for f, m in seen if m.startswith("tile")) <= 0.9  # the computation, then the writing


def test_cancel_at_any_stage_leaves_no_new_node(logic, scene, makeVolume):
    import DPNSLCore

    inputNode = _thickCt(makeVolume)
    checks = []
    logic.upsample(inputNode, 2, model="ct", device="cpu", returnParts=True, cancel=lambda: checks.append(1) and False)
    before = scene.GetNumberOfNodesByClass("vtkMRMLVolumeNode")
    for stop in range(len(checks)):  # cancel at the first, second, ... check of a whole run
        calls = []

        def cancel(calls=calls, stop=stop):
            calls.append(1)
            return len(calls) > stop

        with pytest.raises(DPNSLCore.Cancelled):
            logic.upsample(inputNode, 2, model="ct", device="cpu", returnParts=True, cancel=cancel)
        assert scene.GetNumberOfNodesByClass("vtkMRMLVolumeNode") == before, f"left nodes behind at check {stop}"
    assert len(checks) >= 8  # the tiles and every writing stage are checkpoints


def test_an_integer_input_gives_an_output_of_its_type(logic, makeVolume):
    array = np.round(smoothVolume((4, 6, 7))).astype(np.int16)
    output = logic.upsample(makeVolume(array, makeIjkToRas(SPACINGS[0])), 2, method="cubic")
    result = slicer.util.arrayFromVolume(output)
    assert result.dtype == np.int16
    np.testing.assert_array_equal(result[::2], array)


def test_a_models_recorded_profile_is_used_like_in_every_front_end(logic, makeVolume, tmp_path):
    from DPNSLCore.models import PRESETS, build_model, save_checkpoint

    path = tmp_path / "profile.safetensors"
    config = PRESETS["lean"].replace(modality="ct", acquisition={"kind": "profile", "profile": "box",
                                                                 "thickness": 1.0})
    save_checkpoint(build_model(config), path)
    output = logic.upsample(_thickCt(makeVolume), 2, model=str(path), device="cpu")  # degradation auto
    assert output.GetAttribute("DPNSL.degradation") == "profile"
    assert "(auto: the model was trained for slice profiles; the model's profile)" in output.GetAttribute("DPNSL.notes")
    plan = logic.plan(_thickCt(makeVolume), 2, model=str(path), profile="gaussian")  # the panel's shape, under auto
    assert (plan.degradation, plan.profile) == ("profile", "gaussian")


@pytest.mark.parametrize("axis", [0, 2])
def test_the_output_is_computed_into_the_nodes_own_voxels(logic, makeVolume, monkeypatch, axis):
    import DPNSLCore

    shape = [6, 7, 8]
    shape[axis] = 5
    inputNode = makeVolume(np.round(smoothVolume(tuple(shape))).astype(np.int16), makeIjkToRas(SPACINGS[axis]))
    seen = {}
    upsample = DPNSLCore.upsample
    monkeypatch.setattr(DPNSLCore, "upsample", lambda *a, **kw: seen.setdefault("out", kw["out"]) is not None
                        and upsample(*a, **kw))
    output = logic.upsample(inputNode, 3, method="cubic")
    voxels = slicer.util.arrayFromVolume(output)
    assert voxels.dtype == np.int16 and np.shares_memory(voxels, seen["out"])  # written in place: no copy
    expected = upsample(slicer.util.arrayFromVolume(inputNode), 3, method="cubic", slice_axis=axis,
                        output_dtype="input").volume
    np.testing.assert_array_equal(voxels, expected)


def test_inside_slicer_the_network_runs_in_small_tiles_with_the_same_result(logic, makeVolume, monkeypatch):
    from DPNSLLib.logic import SLICER_TILING

    import DPNSLCore

    inputNode = makeVolume(np.round(smoothVolume((5, 20, 18)) - 900).astype(np.int16), makeIjkToRas(SPACINGS[0]))
    seen = []
    upsample = DPNSLCore.upsample
    monkeypatch.setattr(DPNSLCore, "upsample", lambda *a, **kw: seen.append(kw["tiling"]) or upsample(*a, **kw))
    small = slicer.util.arrayFromVolume(logic.upsample(inputNode, 2, model="ct", device="cpu")).copy()
    large = slicer.util.arrayFromVolume(logic.upsample(inputNode, 2, model="ct", device="cpu",
                                                       tiling={"tile_size": 224, "z_window": 48}))
    assert seen == [SLICER_TILING, {"tile_size": 224, "z_window": 48}]
    np.testing.assert_allclose(small, large, atol=1)  # the same voxels up to the int16 rounding of round-off
