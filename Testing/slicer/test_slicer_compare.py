"""Compare: per-slice MAE against a simulated or a real thin-slice reference, as a table and a plot chart."""

from __future__ import annotations

import numpy as np
import pytest
from mrml_helpers import makeIjkToRas, requireSlicer, smoothVolume

slicer = requireSlicer()

from DPNSLLib import charts  # noqa: E402
from DPNSLLib.logic import SliceSuperResolutionLogic  # noqa: E402


def naiveMae(prediction, reference, axis):
    """Oracle: loop over slices, mean of |difference| over the finite reference voxels."""
    out = []
    for k in range(prediction.shape[axis]):
        p, r = np.take(prediction, k, axis=axis), np.take(reference, k, axis=axis)
        mask = np.isfinite(r)
        out.append(np.abs(p[mask] - r[mask]).mean() if mask.any() else np.nan)
    return np.array(out)


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_per_slice_mae_matches_a_naive_loop_and_skips_nan(axis):
    rng = np.random.default_rng(1)
    prediction, reference = rng.normal(size=(5, 6, 7)), rng.normal(size=(5, 6, 7))
    reference[1, 2, 3] = np.nan
    index = [slice(None)] * 3
    index[axis] = 2
    reference[tuple(index)] = np.nan  # a slice without reference data
    expected = naiveMae(prediction, reference, axis)
    np.testing.assert_allclose(charts.perSliceMae(prediction, reference, axis), expected, equal_nan=True)
    assert np.isnan(charts.perSliceMae(prediction, reference, axis)[2])


def test_per_slice_mae_rejects_different_shapes():
    with pytest.raises(ValueError, match=r"prediction shape \(2, 3, 4\) != reference shape \(2, 3, 5\)"):
        charts.perSliceMae(np.zeros((2, 3, 4)), np.zeros((2, 3, 5)), 0)


@pytest.fixture
def thin(makeVolume):
    return makeVolume(smoothVolume((13, 6, 5), seed=3), makeIjkToRas((0.8, 0.7, 1.0)), "thin")


def test_simulated_compare_table_and_chart(thin):
    table, chart = SliceSuperResolutionLogic().compare(thin, None, 3, methods=["linear", "cubic"])
    columns = [table.GetColumnName(i) for i in range(table.GetNumberOfColumns())]
    assert columns == ["slice", "position (mm)", "linear", "cubic"]
    assert table.GetNumberOfRows() == 13
    np.testing.assert_allclose(slicer.util.arrayFromTableColumn(table, "position (mm)"), np.arange(13.0), atol=1e-9)
    for method in ("linear", "cubic"):
        mae = slicer.util.arrayFromTableColumn(table, method)
        np.testing.assert_array_equal(mae[::3], 0.0)  # acquired slices are reproduced exactly
        assert (mae[1::3] > 0).all()
    series = [chart.GetNthPlotSeriesNode(i) for i in range(chart.GetNumberOfPlotSeriesNodes())]
    assert [s.GetName() for s in series] == ["Linear MAE", "Cubic B-spline MAE"]
    assert [s.GetYColumnName() for s in series] == ["linear", "cubic"]
    assert all(s.GetTableNode() is table and s.GetXColumnName() == "position (mm)" for s in series)


def test_compare_reuses_its_table_chart_and_series(scene, thin):
    logic = SliceSuperResolutionLogic()
    table, chart = logic.compare(thin, None, 3, methods=["linear", "cubic"])
    ids = [chart.GetNthPlotSeriesNodeID(i) for i in range(2)]
    table2, chart2 = logic.compare(thin, None, 2, methods=["linear"], tableNode=table, chartNode=chart)
    assert (table2.GetID(), chart2.GetID()) == (table.GetID(), chart.GetID())
    assert [chart.GetNthPlotSeriesNodeID(i) for i in range(chart.GetNumberOfPlotSeriesNodes())] == ids[:1]
    assert scene.GetNumberOfNodesByClass("vtkMRMLPlotSeriesNode") == 1  # the unused cubic series is removed
    assert table.GetNumberOfRows() == 13 and table.GetNumberOfColumns() == 3


def test_real_reference_on_the_output_grid_gives_the_simulated_curves(makeVolume, thin):
    thick = slicer.util.arrayFromVolume(thin)[::3].copy()
    matrix = makeIjkToRas((0.8, 0.7, 1.0))
    matrix[:3, 2] *= 3
    thickNode = makeVolume(thick, matrix, "thick")
    logic = SliceSuperResolutionLogic()
    real, _ = logic.compare(thickNode, thin, 3, methods=["linear", "cubic"])
    simulated, _ = logic.compare(thin, None, 3, methods=["linear", "cubic"])
    for method in ("linear", "cubic"):
        np.testing.assert_allclose(slicer.util.arrayFromTableColumn(real, method),
                                   slicer.util.arrayFromTableColumn(simulated, method), rtol=1e-5, atol=1e-3)


def test_reference_must_not_be_the_input(thin):
    with pytest.raises(ValueError, match=r"`referenceNode` is the input itself"):
        SliceSuperResolutionLogic().compare(thin, thin, 3, methods=["linear"])


def test_reference_under_another_transform_is_rejected(scene, makeVolume, thin):
    other = makeVolume(np.zeros((4, 6, 5), np.float32), np.eye(4), "moved")
    other.SetAndObserveTransformNodeID(scene.AddNewNodeByClass("vtkMRMLLinearTransformNode").GetID())
    with pytest.raises(ValueError, match=r"under different transforms; harden them first"):
        SliceSuperResolutionLogic().compare(thin, other, 3, methods=["linear"])


def test_compare_needs_known_methods(thin):
    with pytest.raises(ValueError, match=r"methods must be a non-empty selection"):
        SliceSuperResolutionLogic().compare(thin, None, 3, methods=[])
