"""Part nodes of a DP-NSL run: anchor, detail, routing maps, arg-max experts; their display and reuse.

DPNSLCore.upsample is replaced by a fake returning a known UpsampleResult (the glue is what is tested here);
one test runs a tiny untrained model end to end.
"""

from __future__ import annotations

import numpy as np
import pytest
from mrml_helpers import fakeResult, makeIjkToRas, requireSlicer, smoothVolume

slicer = requireSlicer()

from DPNSLLib import colors, parts  # noqa: E402
from DPNSLLib.logic import SliceSuperResolutionLogic  # noqa: E402

import DPNSLCore  # noqa: E402


@pytest.fixture
def run(monkeypatch, makeVolume):
    """Upsample a fresh rotated volume with the fake DP-NSL for the given expert degrees."""
    logic = SliceSuperResolutionLogic()
    inputNode = makeVolume(smoothVolume((4, 6, 5)), makeIjkToRas((0.8, 0.7, 2.5)), "thick")

    def go(degrees=(2, 3, 4), outputNode=None):
        monkeypatch.setattr(DPNSLCore, "upsample", fakeResult(degrees))
        return logic.upsample(inputNode, 3, method="dpnsl", model=object(), device="cpu", outputNode=outputNode,
                              returnParts=True)

    return go


def test_routing_maps_are_weights_in_unit_interval_summing_to_one(run):
    output, nodes = run()
    weights = np.stack([slicer.util.arrayFromVolume(node) for node in nodes.routing])
    assert weights.shape == (3, *slicer.util.arrayFromVolume(output).shape)
    assert weights.min() >= 0.0 and weights.max() <= 1.0
    np.testing.assert_allclose(weights.sum(axis=0), 1.0, atol=1e-6)
    assert [node.GetName() for node in nodes.routing] == [f"thick_x3_dpnsl_routing_e{i}_d{i + 1}" for i in (1, 2, 3)]


def test_routing_overlays_have_fixed_unit_window_heat_colours_and_legend(run):
    _, nodes = run()
    for index, node in enumerate(nodes.routing):
        display = node.GetDisplayNode()
        assert not display.GetAutoWindowLevel()
        assert (display.GetWindowLevelMin(), display.GetWindowLevelMax()) == (0.0, 1.0)
        assert display.GetColorNode().GetName() == colors.WEIGHT_NAME
        legend = slicer.vtkSlicerColorLogic.GetColorLegendDisplayNode(node)
        assert legend.GetVisibility() and legend.GetTitleText() == colors.expertLabel(index, index + 2)


def test_argmax_label_map_names_one_colour_per_expert_degree(run):
    _, nodes = run()
    weights = np.stack([slicer.util.arrayFromVolume(node) for node in nodes.routing])
    labels = slicer.util.arrayFromVolume(nodes.expertLabel)
    assert nodes.expertLabel.IsA("vtkMRMLLabelMapVolumeNode")
    np.testing.assert_array_equal(labels, np.argmax(weights, axis=0) + 1)
    table = nodes.expertLabel.GetDisplayNode().GetColorNode()
    assert table.GetNumberOfColors() == 4 and table.GetColorName(0) == "background"
    assert table.GetColorName(2) == "expert 2: cubic (degree 3) - sky blue"
    rgba = [0.0] * 4
    table.GetColor(1, rgba)
    np.testing.assert_allclose(rgba, (*colors.DEGREE_COLORS[2][1], 1.0), atol=1 / 255)  # 8-bit table


def test_detail_uses_a_diverging_map_centred_at_zero(run):
    _, nodes = run()
    detail = slicer.util.arrayFromVolume(nodes.detail)
    display = nodes.detail.GetDisplayNode()
    assert display.GetLevel() == 0.0
    assert display.GetWindow() == pytest.approx(2 * np.percentile(np.abs(detail), 99.5), rel=1e-6)
    middle = [0.0] * 4
    display.GetColorNode().GetColor(128, middle)
    assert min(middle[:3]) > 0.98  # zero detail is white


def test_anchor_plus_detail_is_the_output_and_anchor_reads_like_the_input(run):
    output, nodes = run()
    np.testing.assert_allclose(slicer.util.arrayFromVolume(nodes.anchor) + slicer.util.arrayFromVolume(nodes.detail),
                               slicer.util.arrayFromVolume(output), atol=1e-4)
    inputDisplay = nodes.input.GetDisplayNode()
    assert nodes.anchor.GetDisplayNode().GetWindow() == inputDisplay.GetWindow()


def test_rerun_with_fewer_experts_reuses_nodes_and_removes_the_extra(run, scene):
    output, first = run((2, 3, 4))
    _, second = run((2, 3), outputNode=output)
    assert [n.GetID() for n in second.routing] == [n.GetID() for n in first.routing[:2]]
    assert scene.GetNodeByID(first.routing[2].GetID()) is None
    assert second.expertLabel.GetID() == first.expertLabel.GetID()
    assert np.unique(slicer.util.arrayFromVolume(second.expertLabel)).tolist() == [1, 2]


def test_part_links_survive_saving_and_reloading_the_scene(run, scene):
    output, nodes = run()
    scene.SetSaveToXMLString(1)
    scene.Commit()
    reloaded = slicer.vtkMRMLScene()
    reloaded.SetLoadFromXMLString(1)
    reloaded.SetSceneXMLString(scene.GetSceneXMLString())
    reloaded.Import()
    again = parts.readParts(reloaded.GetNodeByID(output.GetID()))
    assert again.input.GetName() == "thick" and again.anchor.GetName() == nodes.anchor.GetName()
    assert [n.GetName() for n in again.routing] == [n.GetName() for n in nodes.routing]
    assert again.expertDegrees == (2, 3, 4) and again.expertLabel.GetName() == nodes.expertLabel.GetName()


def test_tiny_untrained_model_end_to_end(makeVolume):
    """Real network (the 'lean' preset, random weights): routing in [0, 1] sums to 1, observed slices kept."""
    array = smoothVolume((4, 12, 10))
    inputNode = makeVolume(array, makeIjkToRas((0.8, 0.7, 2.5)), "thick")
    import DPNSLCore

    lean = DPNSLCore.load_model("lean", "cpu", allow_untrained=True)  # a preset name alone is refused
    output, nodes = SliceSuperResolutionLogic().upsample(inputNode, 2, method="dpnsl", model=lean, device="cpu",
                                                         returnParts=True)
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(output)[::2], array)
    weights = np.stack([slicer.util.arrayFromVolume(node) for node in nodes.routing])
    assert len(nodes.routing) == len(nodes.expertDegrees) > 0
    assert weights.min() >= 0.0 and weights.max() <= 1.0
    np.testing.assert_allclose(weights.sum(axis=0), 1.0, atol=1e-5)
