"""Per-slice error curves as MRML: one table (a column per method) and one plot series per method in a chart."""

from __future__ import annotations

import numpy as np
import slicer

from .choices import METHOD_LABELS

#: Line colour per method in the chart (RGB in [0, 1]).
METHOD_COLORS: dict[str, tuple[float, float, float]] = {
    "linear": (0.55, 0.55, 0.55),
    "cubic": (0.25, 0.55, 0.95),
    "dpnsl": (0.90, 0.25, 0.20),
}
SERIES_ROLE = "DPNSL.series"


def perSliceMae(prediction: np.ndarray, reference: np.ndarray, sliceAxis: int) -> np.ndarray:
    """Mean absolute error of each slice along ``sliceAxis``, ignoring NaN reference voxels.

    Args:
        prediction, reference: same-shape (z, y, x) arrays; NaN in ``reference`` marks voxels without data.
        sliceAxis: numpy axis of the slices.

    Returns:
        (n,) float64 array; NaN for slices with no reference voxel.

    Raises:
        ValueError: shapes differ.
    """
    if prediction.shape != reference.shape:
        raise ValueError(f"prediction shape {prediction.shape} != reference shape {reference.shape}")
    prediction, reference = np.moveaxis(prediction, sliceAxis, 0), np.moveaxis(reference, sliceAxis, 0)
    mae = np.full(prediction.shape[0], np.nan)
    for k in range(prediction.shape[0]):  # one slice at a time: no full-size float64 copies
        error = np.abs(prediction[k].astype(np.float64) - reference[k])
        valid = np.isfinite(error)
        if valid.any():
            mae[k] = float(error[valid].mean())
    return mae


def fillMaeTable(scene, tableNode, positionsMm: np.ndarray, curves: dict[str, np.ndarray], name: str):
    """Write the curves into ``tableNode`` (or a new table): columns slice, position (mm), then one per method.

    Args:
        scene: MRML scene used when a new table is needed.
        tableNode: table to overwrite, or None.
        positionsMm: (n,) distance of each HR slice from the first one along the slice axis.
        curves: method id ("linear", "cubic", "dpnsl") -> (n,) per-slice MAE.
        name: name of a new table.

    Returns:
        The table node; its column names are "slice", "position (mm)" and the method ids.
    """
    if tableNode is None:
        tableNode = scene.AddNewNodeByClass("vtkMRMLTableNode", scene.GenerateUniqueName(name))
    slices = np.arange(len(positionsMm), dtype=np.float64)
    columns = [slices, np.asarray(positionsMm, dtype=np.float64)] + [np.asarray(c, np.float64) for c in curves.values()]
    slicer.util.updateTableFromArray(tableNode, columns, ["slice", "position (mm)", *curves.keys()])
    return tableNode


def fillMaeChart(scene, chartNode, tableNode, methods: list[str], title: str):
    """One line series per method from ``tableNode`` in ``chartNode`` (or a new chart); series are reused.

    Returns:
        The chart node; it holds exactly one series per method, named after the method's label.
    """
    if chartNode is None:
        chartNode = scene.AddNewNodeByClass("vtkMRMLPlotChartNode", scene.GenerateUniqueName(title))
    existing = {chartNode.GetNthPlotSeriesNode(i).GetAttribute(SERIES_ROLE): chartNode.GetNthPlotSeriesNode(i)
                for i in range(chartNode.GetNumberOfPlotSeriesNodes())}
    chartNode.RemoveAllPlotSeriesNodeIDs()
    for method in methods:
        series = existing.pop(method, None) or scene.AddNewNodeByClass("vtkMRMLPlotSeriesNode")
        series.SetName(f"{METHOD_LABELS.get(method, method)} MAE")
        series.SetAttribute(SERIES_ROLE, method)
        series.SetAndObserveTableNodeID(tableNode.GetID())
        series.SetXColumnName("position (mm)")
        series.SetYColumnName(method)
        series.SetPlotType(slicer.vtkMRMLPlotSeriesNode.PlotTypeScatter)
        series.SetMarkerStyle(slicer.vtkMRMLPlotSeriesNode.MarkerStyleNone)
        series.SetColor(*METHOD_COLORS.get(method, (0.0, 0.0, 0.0)))
        chartNode.AddAndObservePlotSeriesNodeID(series.GetID())
    for stale in existing.values():
        scene.RemoveNode(stale)
    chartNode.SetTitle(title)
    chartNode.SetXAxisTitle("position along the slice axis (mm)")
    chartNode.SetYAxisTitle("mean absolute error per slice")
    return chartNode
