"""Results display: colour tables, through-plane orientation, the custom linked layout and its views."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pytest
from mrml_helpers import fakeResult, makeIjkToRas, requireSlicer, smoothVolume

slicer = requireSlicer()

import vtk  # noqa: E402
from DPNSLLib import colors, display  # noqa: E402
from DPNSLLib.logic import SliceSuperResolutionLogic  # noqa: E402


def test_diverging_colours_are_white_at_zero_and_symmetric():
    rgba = colors.divergingColors(257)
    np.testing.assert_allclose(rgba[128], [1, 1, 1, 1])
    assert rgba[0, 2] > rgba[0, 0] and rgba[-1, 0] > rgba[-1, 2]  # blue below zero, red above
    np.testing.assert_allclose(np.abs(rgba[:128, :3] - 1).sum(1)[::-1] > 0, True)


def test_a_few_extreme_voxels_do_not_set_the_detail_window():
    detail = np.random.default_rng(0).normal(0, 20, (20, 30, 30)).astype(np.float32)
    detail[3, 4, 5] = 2700.0  # one column moved hard by the range constraint
    peak = display.signedWindowPeak(detail)
    assert 40 < peak < 70  # ~2.8 sigma of the bulk, not 2700
    sparse = np.zeros((10, 10, 10), np.float32)
    sparse[0, 0, 0] = -5.0  # almost all zero (decimate's acquired slices): the maximum
    assert display.signedWindowPeak(sparse) == 5.0 and display.signedWindowPeak(np.zeros(0)) == 0.0


def test_weight_colours_brighten_monotonically():
    luminance = colors.weightColors()[:, :3].sum(axis=1)
    assert luminance[0] == 0.0 and luminance[-1] == 3.0 and (np.diff(luminance) >= 0).all()


def test_expert_label_names_follow_the_degrees():
    names, rgba = colors.expertColors((2, 3, 4))
    assert names[1:] == ["expert 1: quadratic (degree 2) - orange", "expert 2: cubic (degree 3) - sky blue",
                         "expert 3: quartic (degree 4) - magenta"]
    assert rgba.shape == (4, 4) and rgba[0, 3] == 0.0


def test_colour_tables_are_found_again_by_name(scene):
    first = colors.weightTable(scene)
    assert colors.weightTable(scene).GetID() == first.GetID()
    assert scene.GetNumberOfNodesByClass("vtkMRMLColorTableNode") == 1


def test_all_layouts_are_registered_at_start_up_in_their_own_view_group(scene):
    layoutNode = scene.GetFirstNodeByClass("vtkMRMLLayoutNode") or scene.AddNewNodeByClass("vtkMRMLLayoutNode")
    ids = display.registerLayouts(layoutNode)
    assert len(set(ids)) == 8 and all(layoutNode.IsLayoutDescription(i) for i in ids)
    assert display.layoutId(True, 2) in ids and display.applyLayout(scene, True, 2) == display.layoutId(True, 2)
    properties = ET.fromstring(display.layoutXml(True, 3)).iter("property")
    groups = {e.text for e in properties if e.get("name") == "viewgroup"}
    assert groups == {str(display.VIEW_GROUP)} and display.VIEW_GROUP != 0  # not linked with the standard views


def test_filling_a_colour_table_fires_one_modified_event(scene):
    table = colors.weightTable(scene)  # 256 colours
    events = []
    table.AddObserver(vtk.vtkCommand.ModifiedEvent, lambda caller, event: events.append(event))
    colors.weightTable(scene)
    assert len(events) <= 1  # not one per SetColor


@pytest.mark.parametrize(("columnAxis", "expected"), [(2, "Coronal"), (1, "Sagittal"), (0, "Coronal")])
def test_through_plane_view_contains_the_slice_axis(columnAxis, expected):
    matrix = np.eye(4)
    matrix[:3, :3] = np.eye(3)[:, [(columnAxis + 1) % 3, (columnAxis + 2) % 3, columnAxis]]  # k along RAS axis
    assert display.throughPlaneOrientation(matrix, 0) == expected


def test_layout_xml_has_one_view_per_part_and_expert():
    root = ET.fromstring(display.layoutXml(True, 3))
    tags = [view.get("singletontag") for view in root.iter("view")]
    assert tags == ["DPNSLInput", "DPNSLAnchor", "DPNSLDetail", "DPNSLOutput", "DPNSLExpert1", "DPNSLExpert2",
                    "DPNSLExpert3", "DPNSLExperts"]
    assert len(root.findall("./item/layout")) == 2  # two rows
    assert display.viewNames(False, 0) == ["DPNSLInput", "DPNSLOutput"]


@pytest.fixture
def app(scene):
    """Application + layout logic, and a helper that builds slice logics as Slicer's layout manager does."""
    appLogic = slicer.vtkMRMLApplicationLogic()
    appLogic.SetMRMLScene(scene)
    layoutLogic = slicer.vtkMRMLLayoutLogic()
    layoutLogic.SetMRMLScene(scene)
    logics = vtk.vtkCollection()

    def buildViews():
        for index in range(scene.GetNumberOfNodesByClass("vtkMRMLSliceNode")):
            sliceNode = scene.GetNthNodeByClass(index, "vtkMRMLSliceNode")
            if appLogic.GetSliceLogicByLayoutName(sliceNode.GetLayoutName()) is None:
                sliceLogic = slicer.vtkMRMLSliceLogic()
                sliceLogic.SetMRMLApplicationLogic(appLogic)
                sliceLogic.SetMRMLScene(scene)
                sliceLogic.SetSliceNode(sliceNode)
                logics.AddItem(sliceLogic)
        appLogic.SetSliceLogics(logics)

    appLogic.buildViews = buildViews
    yield appLogic
    for index in range(logics.GetNumberOfItems()):  # detach observers before the scene is cleared
        logics.GetItemAsObject(index).SetMRMLScene(None)
    layoutLogic.SetMRMLScene(None)
    appLogic.SetMRMLScene(None)


def test_apply_layout_registers_and_shows_it(scene, app):
    layoutId = display.applyLayout(scene, True, 2)
    layoutNode = scene.GetFirstNodeByClass("vtkMRMLLayoutNode")
    assert layoutNode.GetViewArrangement() == layoutId == display.LAYOUT_ID_BASE + 18
    assert display.applyLayout(scene, True, 2) == layoutId  # registering twice updates, not fails
    for name in display.viewNames(True, 2):
        assert scene.GetSingletonNode(name, "vtkMRMLSliceNode") is not None


def test_views_show_the_parts_linked_through_plane(scene, app, makeVolume, monkeypatch):

    import DPNSLCore

    monkeypatch.setattr(DPNSLCore, "upsample", fakeResult((2, 3)))
    inputNode = makeVolume(smoothVolume((4, 6, 5)), makeIjkToRas((0.8, 0.7, 2.5), angles=(0, 0, 0)))
    _, nodes = SliceSuperResolutionLogic().upsample(inputNode, 2, method="dpnsl", model=object(), device="cpu",
                                                    returnParts=True)
    display.applyLayout(scene, True, 2)
    with pytest.raises(RuntimeError, match=r"slice view 'DPNSLInput' has no slice logic yet"):
        display.assignViews(app, nodes, True, True, "Coronal")
    app.buildViews()
    names = display.assignViews(app, nodes, True, True, "Coronal")
    assert len(names) == 7
    shown = {}
    for name in names:
        composite = app.GetSliceLogicByLayoutName(name).GetSliceCompositeNode()
        assert composite.GetLinkedControl()
        assert app.GetSliceLogicByLayoutName(name).GetSliceNode().GetOrientation() == "Coronal"
        shown[name] = (composite.GetBackgroundVolumeID(), composite.GetForegroundVolumeID(),
                       composite.GetLabelVolumeID())
    assert shown["DPNSLInput"] == (inputNode.GetID(), None, None)
    assert shown["DPNSLAnchor"][0] == nodes.anchor.GetID() and shown["DPNSLDetail"][0] == nodes.detail.GetID()
    assert shown["DPNSLExpert2"] == (nodes.output.GetID(), nodes.routing[1].GetID(), None)
    assert shown["DPNSLExperts"] == (nodes.output.GetID(), None, nodes.expertLabel.GetID())
