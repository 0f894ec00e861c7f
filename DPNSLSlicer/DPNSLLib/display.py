"""Show the results: display styles of the part volumes, and a linked side-by-side through-plane layout.

Only MRML is touched (layout node, slice nodes, slice composite nodes, display nodes), so the same code runs
in Slicer and against slicer-core. Layouts are registered in two steps because the slice logics (and their
composite nodes) appear only once the layout manager has built the views: :func:`applyLayout`, let the
application process events, then :func:`assignViews`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import slicer

from . import colors

LAYOUT_ID_BASE = 24100
VIEW_GROUP = 1  # the DPNSL views link among themselves, not with Red/Green/Yellow (view group 0)
"""Custom layout ids are LAYOUT_ID_BASE + 16 * showParts + number of routing views (Slicer wants > 100)."""

#: (view name, label, role) of the top row; role is the PartNodes attribute shown there.
PART_VIEWS = (
    ("DPNSLInput", "In", "input"),
    ("DPNSLAnchor", "Anc", "anchor"),
    ("DPNSLDetail", "Det", "detail"),
    ("DPNSLOutput", "Out", "output"),
)
EXPERTS_VIEW = "DPNSLExperts"


@dataclass
class PartNodes:
    """The nodes one upsampling run produced; parts are None when not asked for or not available."""

    input: object
    output: object
    anchor: object = None
    detail: object = None
    routing: list = field(default_factory=list)
    expertLabel: object = None
    expertDegrees: tuple[int, ...] = ()


def throughPlaneOrientation(ijkToRas: np.ndarray, sliceAxis: int) -> str:
    """Slice-view orientation that contains the slice axis, where slice super-resolution is visible.

    Args:
        ijkToRas: (4, 4) IJK-to-RAS of the volume; sliceAxis: numpy axis of the slices.

    Returns:
        "Coronal" when the slices stack along R (sagittal scans) or S (axial scans), "Sagittal" along A.
    """
    direction = np.abs(np.asarray(ijkToRas)[:3, 2 - sliceAxis])
    return ("Coronal", "Sagittal", "Coronal")[int(np.argmax(direction))]


SIGNED_PERCENTILE = 99.5  # of |value|: the half-width of a signed map's window
SIGNED_SAMPLE = 2_000_000  # voxels the percentile is taken over (an even subsample of larger volumes)


def signedWindowPeak(values: np.ndarray) -> float:
    """Half-width of a signed map's window: the 99.5th percentile of |value| (its maximum where that is 0).

    The maximum would let a few voxels set the window: where the physical range constraint moves a column hard
    (a saturated thick slice beside air in the quick start: 2,700 HU of detail in one column against tens of HU
    everywhere else) the whole detail map turned white. Voxels beyond the window show in the end colours.
    """
    flat = np.abs(np.asarray(values, dtype=np.float32).ravel())
    if flat.size == 0:
        return 0.0
    sample = flat[:: max(1, flat.size // SIGNED_SAMPLE)]
    peak = float(np.percentile(sample, SIGNED_PERCENTILE))
    return peak if peak > 0 else float(flat.max())


def styleSigned(volumeNode, title: str) -> None:
    """Diverging colours with the window centred at zero and symmetric (+-:func:`signedWindowPeak`), a legend."""
    peak = signedWindowPeak(slicer.util.arrayFromVolume(volumeNode))
    display = volumeNode.GetDisplayNode()
    display.SetAndObserveColorNodeID(colors.divergingTable(volumeNode.GetScene()).GetID())
    display.AutoWindowLevelOff()
    display.SetWindowLevel(2.0 * peak if peak > 0 else 1.0, 0.0)
    _addLegend(volumeNode, title)


def styleWeight(volumeNode, title: str) -> None:
    """Heat colours with the window fixed to [0, 1] (router weights), plus a legend titled ``title``."""
    display = volumeNode.GetDisplayNode()
    display.SetAndObserveColorNodeID(colors.weightTable(volumeNode.GetScene()).GetID())
    display.AutoWindowLevelOff()
    display.SetWindowLevelMinMax(0.0, 1.0)
    _addLegend(volumeNode, title)


def styleExpertLabels(labelNode, degrees: tuple[int, ...]) -> None:
    """Named colour per expert degree on the arg-max label map, plus a legend listing them."""
    labelNode.GetDisplayNode().SetAndObserveColorNodeID(colors.expertsTable(labelNode.GetScene(), degrees).GetID())
    _addLegend(labelNode, "Arg-max expert")


def _addLegend(displayableNode, title: str):
    legend = slicer.vtkSlicerColorLogic.GetColorLegendDisplayNode(displayableNode)
    if legend is None:
        legend = slicer.vtkSlicerColorLogic.AddDefaultColorLegendDisplayNode(displayableNode)
    if legend is not None:  # None only where the scene lacks the Colors module's node class
        legend.SetTitleText(title)
        legend.SetVisibility(True)
    return legend


def viewNames(showParts: bool, nRouting: int) -> list[str]:
    """Slice view names of the layout, top row first."""
    top = [name for name, _, role in PART_VIEWS if showParts or role in ("input", "output")]
    bottom = [f"DPNSLExpert{index + 1}" for index in range(nRouting)] + ([EXPERTS_VIEW] if nRouting else [])
    return top + bottom


def layoutXml(showParts: bool, nRouting: int) -> str:
    """Layout description: the part views side by side, and a second row with one view per expert."""
    labels = {name: label for name, label, _ in PART_VIEWS}
    labels.update({f"DPNSLExpert{index + 1}": f"E{index + 1}" for index in range(nRouting)})
    labels[EXPERTS_VIEW] = "Arg"
    names = viewNames(showParts, nRouting)
    rows = [names[: 4 if showParts else 2], names[4 if showParts else 2 :]]

    def view(name: str) -> str:
        return (
            f'<item><view class="vtkMRMLSliceNode" singletontag="{name}">'
            '<property name="orientation" action="default">Coronal</property>'
            f'<property name="viewlabel" action="default">{labels[name]}</property>'
            '<property name="viewcolor" action="default">#8C8C8C</property>'
            f'<property name="viewgroup" action="default">{VIEW_GROUP}</property></view></item>'
        )

    body = "".join(f'<item><layout type="horizontal">{"".join(map(view, row))}</layout></item>' for row in rows if row)
    return f'<layout type="vertical">{body}</layout>'


def layoutId(showParts: bool, nRouting: int) -> int:
    """The id of the custom layout for this choice of views (above Slicer's own ids)."""
    return LAYOUT_ID_BASE + 16 * int(bool(showParts)) + int(nRouting)


def _register(layoutNode, showParts: bool, nRouting: int) -> int:
    key, xml = layoutId(showParts, nRouting), layoutXml(showParts, nRouting)
    if layoutNode.IsLayoutDescription(key):
        layoutNode.SetLayoutDescription(key, xml)
    else:
        layoutNode.AddLayoutDescription(key, xml)
    return key


def registerLayouts(layoutNode, maxExperts: int = 3) -> list[int]:
    """Register every DPNSL layout (parts shown or not, 0..maxExperts routing views) in ``layoutNode``.

    Called at start-up so that a saved scene whose view arrangement is a DPNSL layout reopens in it.
    """
    return [_register(layoutNode, parts, n) for parts in (False, True) for n in range(maxExperts + 1)]


def applyLayout(scene, showParts: bool, nRouting: int) -> int:
    """Register (or update) the custom layout in the scene's layout node and switch to it; returns its id."""
    layoutNode = scene.GetFirstNodeByClass("vtkMRMLLayoutNode")
    if layoutNode is None:
        raise RuntimeError("the scene has no layout node (vtkMRMLLayoutNode); results cannot be laid out")
    key = _register(layoutNode, showParts, nRouting)
    layoutNode.SetViewArrangement(key)
    return key


def _layers(nodes: PartNodes, name: str) -> tuple[object, object, object, float]:
    """(background, foreground, label, foreground opacity) shown in view ``name``."""
    roles = {view: role for view, _, role in PART_VIEWS}
    if name in roles:
        return getattr(nodes, roles[name]), None, None, 0.0
    if name == EXPERTS_VIEW:
        return nodes.output, None, nodes.expertLabel, 0.0
    return nodes.output, nodes.routing[int(name.removeprefix("DPNSLExpert")) - 1], None, 0.7


def assignViews(appLogic, nodes: PartNodes, showParts: bool, showRouting: bool, orientation: str) -> list[str]:
    """Put each part in its view, in ``orientation`` aligned to the input's grid, linked, and fit to the data.

    Args:
        appLogic: the application logic (``slicer.app.applicationLogic()``) that owns the slice logics.
        nodes: what to show; routing views need ``nodes.routing`` and ``nodes.expertLabel``.
        showParts / showRouting: which rows the layout has (as given to :func:`applyLayout`).
        orientation: "Axial", "Coronal" or "Sagittal", see :func:`throughPlaneOrientation`.

    Returns:
        The view names that were filled.

    Raises:
        RuntimeError: a view of the layout has no slice logic (the layout is not shown yet).
    """
    names = viewNames(showParts, len(nodes.routing) if showRouting else 0)
    for name in names:
        sliceLogic = appLogic.GetSliceLogicByLayoutName(name)
        if sliceLogic is None:
            raise RuntimeError(f"slice view '{name}' has no slice logic yet; switch to the DPNSL layout first")
        background, foreground, label, opacity = _layers(nodes, name)
        composite = sliceLogic.GetSliceCompositeNode()
        composite.SetBackgroundVolumeID(background.GetID() if background else None)
        composite.SetForegroundVolumeID(foreground.GetID() if foreground else None)
        composite.SetLabelVolumeID(label.GetID() if label else None)
        composite.SetForegroundOpacity(opacity)
        composite.SetLabelOpacity(0.6)
        composite.SetLinkedControl(True)
        sliceNode = sliceLogic.GetSliceNode()
        sliceNode.SetOrientation(orientation)
        sliceNode.RotateToVolumePlane(nodes.input)
        sliceLogic.FitSliceToAll()
    return names
