"""DPNSL.py's own DPNSLLogic, imported headless: slicer-core lacks the Qt-side pieces of a scripted module
(ScriptedLoadableModule, parameterNodeWrapper, i18n), so minimal stand-ins are installed for the import; the
logic then runs on real MRML nodes exactly as from Slicer's Python console.
"""

from __future__ import annotations

import importlib
import sys
import types
from pathlib import Path

import pytest
from mrml_helpers import makeIjkToRas, requireSlicer, smoothVolume

slicer = requireSlicer()

from DPNSLLib.choices import DegradationModel, DeviceChoice, ModelChoice, ScaleMode  # noqa: E402

import DPNSLCore  # noqa: E402


class _LogicBase:
    """Stand-in for slicer.ScriptedLoadableModule.ScriptedLoadableModuleLogic (cooperative __init__ as in Slicer)."""

    def __init__(self, parent=None):
        super().__init__()
        self.moduleName = self.__class__.__name__.removesuffix("Logic")

    def getParameterNode(self):
        return slicer.mrmlScene.AddNewNodeByClass("vtkMRMLScriptedModuleNode")


def _reloaded(self):
    """Stand-in for ScriptedLoadableModuleWidget.onReload: records that it ran and what DPNSLLib looked like."""
    self.reloadSawLib = any(n.startswith("DPNSLLib") for n in sys.modules)


@pytest.fixture
def DPNSL(monkeypatch, scene):
    """The DPNSL module file imported with stand-ins for the GUI-only parts of Slicer's Python package."""
    stubs = {
        "slicer.ScriptedLoadableModule": dict(ScriptedLoadableModule=type("Module", (), {}),
                                              ScriptedLoadableModuleWidget=type("Widget", (), {"onReload": _reloaded}),
                                              ScriptedLoadableModuleTest=type("Test", (), {}),
                                              ScriptedLoadableModuleLogic=_LogicBase),
        "slicer.parameterNodeWrapper": dict(parameterNodeWrapper=lambda cls: cls, WithinRange=lambda lo, hi: (lo, hi)),
        "slicer.i18n": dict(tr=lambda text: text, translate=lambda context, text: text),
    }
    for name, attributes in stubs.items():
        monkeypatch.setitem(sys.modules, name, types.SimpleNamespace(**attributes))
    monkeypatch.delitem(sys.modules, "DPNSL", raising=False)
    return importlib.import_module("DPNSL")


def test_reload_also_reloads_the_helper_package(DPNSL, monkeypatch):
    for name in [n for n in sys.modules if n.startswith("DPNSLLib")]:
        monkeypatch.setitem(sys.modules, name, sys.modules[name])  # restored after the test
    widget = object.__new__(DPNSL.DPNSLWidget)
    widget.onReload()
    assert widget.reloadSawLib is False  # DPNSLLib was dropped before Slicer's reload re-imports DPNSL.py


def _clickableWidget(DPNSL, panel, shown):
    """DPNSL.py's widget without Qt: the parameter node is ``panel``, showResults records its arguments."""
    widget = object.__new__(DPNSL.DPNSLWidget)
    widget._parameterNode, widget._cancelRequested = panel, False
    widget._onProgress = lambda fraction, message: None
    widget.ui = types.SimpleNamespace(statusLabel=types.SimpleNamespace(text="", toolTip=""))
    widget.logic = DPNSL.DPNSLLogic()
    widget.logic.showResults = lambda nodes, showParts, showRouting: shown.append((nodes, showParts, showRouting))
    return widget


@pytest.mark.parametrize(("showParts", "showRouting", "added"), [(False, False, 1), (True, False, 7),
                                                                  (False, True, 7)])
def test_upsample_click_creates_only_what_is_shown_and_reuses_its_output(DPNSL, makeVolume, scene, showParts,
                                                                        showRouting, added):
    inputNode = makeVolume(smoothVolume((4, 12, 10)) - 900.0, makeIjkToRas((0.8, 0.7, 3.0)), "thick")
    panel = _panel(inputNode, scale=2.0, showParts=showParts, showRouting=showRouting)
    shown, before = [], scene.GetNumberOfNodesByClass("vtkMRMLVolumeNode")
    widget = _clickableWidget(DPNSL, panel, shown)
    widget._upsample()
    # output (+ anchor, detail, 3 routing maps and the arg-max label map when parts are shown)
    created = scene.GetNumberOfNodesByClass("vtkMRMLVolumeNode") - before
    assert created == added and panel.outputVolume is shown[0][0].output
    assert "Done: thick_x2_dpnsl" in widget.ui.statusLabel.text and "shipped CT model" in widget.ui.statusLabel.toolTip
    widget._upsample()  # a second click writes into the same output and parts
    assert scene.GetNumberOfNodesByClass("vtkMRMLVolumeNode") - before == created
    assert shown[1][0].output is shown[0][0].output


def test_console_upsample_with_parts_returns_nodes(DPNSL, makeVolume):
    inputNode = makeVolume(smoothVolume((4, 6, 5)), makeIjkToRas((0.8, 0.7, 3.0)), "thick")
    logic = DPNSL.DPNSLLogic()
    assert logic.moduleName == "DPNSL" and logic._models == {}
    output, nodes = logic.upsample(inputNode, scale=4, method="linear", returnParts=True)
    assert slicer.util.arrayFromVolume(output).shape == (13, 6, 5)
    assert nodes.output is output and nodes.input is inputNode and nodes.anchor is not None
    table, chart = logic.compare(inputNode, None, scale=2, methods=["linear"])
    assert table.GetColumnName(2) == "linear" and chart.GetNumberOfPlotSeriesNodes() == 1


def _panel(inputNode, **overrides):
    """The parameter node's values as the widget sees them (typed attributes)."""
    values = dict(inputVolume=inputNode, scaleMode=ScaleMode.FACTOR, scale=4.0, targetSpacing=1.0,
                  degradation=DegradationModel.DECIMATE, thickness=1.0, model=ModelChoice.CT, checkpointPath=Path(),
                  device=DeviceChoice.CPU, outputVolume=None, showParts=True, showRouting=False)
    values.update(overrides)
    return types.SimpleNamespace(**values)


def test_panel_request_maps_to_logic_arguments(DPNSL, makeVolume, monkeypatch):
    inputNode = makeVolume(smoothVolume((4, 6, 5)), makeIjkToRas((0.8, 0.7, 3.0)), "thick")
    logic = DPNSL.DPNSLLogic()
    panel = _panel(inputNode, scaleMode=ScaleMode.SPACING, degradation=DegradationModel.SAMPLE, thickness=2.0)
    assert logic.checkRequest(panel) == ""
    assert logic.requestArguments(panel) == dict(spacing=1.0, degradation="sample", thickness=2.0, model="ct",
                                                 device="cpu")
    seen = {}
    monkeypatch.setattr(DPNSLCore, "upsample", lambda array, scale, **kw: seen.update(kw, scale=scale) or 1 / 0)
    monkeypatch.setattr(logic, "loadModel", lambda model, device: f"{model}@{device}")
    with pytest.raises(ZeroDivisionError):
        logic.upsample(inputNode, **logic.requestArguments(panel), method="dpnsl")
    assert seen["scale"] == 3.0 and seen["model"] == "ct@cpu" and seen["degradation"] == "sample"


def test_panel_explains_why_upsample_is_disabled(DPNSL, makeVolume, tmp_path, monkeypatch):
    inputNode = makeVolume(smoothVolume((4, 6, 5)), makeIjkToRas((0.8, 0.7, 3.0)), "thick")
    logic = DPNSL.DPNSLLogic()
    assert "`inputNode` is None" in logic.checkRequest(_panel(None))
    with monkeypatch.context() as patch:  # Slicer 5.8 (Python 3.9): the button is disabled and says why
        patch.setattr(DPNSL.torchsetup, "unsupportedPython", lambda: "DPNSL needs Python >= 3.10")
        assert logic.checkRequest(_panel(inputNode)) == "DPNSL needs Python >= 3.10"
    assert "needs an integer `scale`, got 2.5" in logic.checkRequest(_panel(inputNode, scale=2.5))
    assert "checkpoint file not found" in logic.checkRequest(_panel(inputNode, model=ModelChoice.CHECKPOINT,
                                                                      checkpointPath=tmp_path / "none.safetensors"))
    assert "output must differ from the input" in logic.checkRequest(_panel(inputNode, outputVolume=inputNode))
    assert logic.plan(inputNode, spacing=0.75).scale == 4.0  # 3 / 0.75, snapped by DPNSLCore's one rule
