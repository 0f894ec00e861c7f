"""DPNSL.py's own DPNSLLogic, imported headless: slicer-core lacks the Qt-side pieces of a scripted module
(ScriptedLoadableModule, parameterNodeWrapper, i18n), so minimal stand-ins are installed for the import; the
logic then runs on real MRML nodes exactly as from Slicer's Python console.
"""

from __future__ import annotations

import importlib
import sys
import types

import pytest
from mrml_helpers import makeIjkToRas, requireSlicer, smoothVolume

slicer = requireSlicer()



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


def test_console_upsample_with_parts_returns_nodes(DPNSL, makeVolume):
    inputNode = makeVolume(smoothVolume((4, 6, 5)), makeIjkToRas((0.8, 0.7, 3.0)), "thick")
    logic = DPNSL.DPNSLLogic()
    assert logic.moduleName == "DPNSL" and logic._models == {}
    output, nodes = logic.upsample(inputNode, scale=4, method="linear", returnParts=True)
    assert slicer.util.arrayFromVolume(output).shape == (13, 6, 5)
    assert nodes.output is output and nodes.input is inputNode and nodes.anchor is not None
    table, chart = logic.compare(inputNode, None, scale=2, methods=["linear"])
    assert table.GetColumnName(2) == "linear" and chart.GetNumberOfPlotSeriesNodes() == 1
