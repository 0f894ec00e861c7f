# ruff: noqa: E402, N801  (stand-ins must exist before Slicer's modules import; they keep Qt's class names)
"""Check DPNSL.py's parameter node and DPNSL.ui against Slicer's own parameterNodeWrapper, outside CI.

Slicer's Python sources are not in this repository (and CI cannot have them): point SLICER_PYTHON at the
``Base/Python/slicer`` folder of a Slicer checkout. The script builds stand-in PythonQt widgets from DPNSL.ui,
binds them with Slicer's real ``connectGui`` on slicer-core MRML nodes, edits the new controls from the GUI side
and the node side, drives the presenter through the bound node, and reloads the node from the scene.

    git clone --depth 1 https://github.com/Slicer/Slicer /tmp/Slicer
    SLICER_PYTHON=/tmp/Slicer/Base/Python/slicer python Testing/slicer/check_against_slicer_sources.py
"""

import importlib.util
import os
import sys
import types
import xml.etree.ElementTree as ET
from pathlib import Path

SLICER_PY = Path(os.environ.get("SLICER_PYTHON", "/tmp/slicerpy/Base/Python/slicer"))
REPO = Path(__file__).resolve().parents[2]
if not (SLICER_PY / "parameterNodeWrapper").is_dir():
    sys.exit(f"set SLICER_PYTHON to the Base/Python/slicer folder of a Slicer checkout (not found: {SLICER_PY})")


class Signal:
    def __init__(self):
        self.slots = []

    def connect(self, f):
        self.slots.append(f)

    def disconnect(self, f):
        self.slots.remove(f)

    def emit(self, *a):
        import inspect

        for f in list(self.slots):  # PythonQt drops signal arguments a slot does not take
            n = len(inspect.signature(f).parameters)
            f(*a[:n])


class QWidget:
    def __init__(self, name=""):
        self.objectName, self.enabled, self.visible, self.toolTip, self._props = name, True, True, "", {}

    def property(self, k):
        return self._props.get(k)

    def setProperty(self, k, v):
        self._props[k] = v

    def findChildren(self, cls=None):
        return []

    def isEnabled(self):
        return self.enabled

    def setEnabled(self, v):
        self.enabled = v

    def blockSignals(self, b):
        return False


def _valueWidget(name, default):
    class W(QWidget):
        def __init__(self, n=""):
            super().__init__(n)
            self._value = default
            self.valueChanged = Signal()
            self.minimum, self.maximum, self.decimals, self.singleStep = 0.0, 99.0, 2, 1.0

        @property
        def value(self):
            return self._value

        @value.setter
        def value(self, v):
            v = min(max(v, self.minimum), self.maximum)
            if v != self._value:
                self._value = v
                self.valueChanged.emit(v)

    W.__name__ = name
    return W


class QComboBox(QWidget):
    def __init__(self, n=""):
        super().__init__(n)
        self.items, self._i = [], -1
        self.currentIndexChanged = Signal()

    def clear(self):
        self.items, self._i = [], -1

    def addItem(self, t):
        self.items.append(t)
        self._i = 0 if self._i < 0 else self._i

    @property
    def currentIndex(self):
        return self._i

    @currentIndex.setter
    def currentIndex(self, i):
        if i != self._i:
            self._i = i
            self.currentIndexChanged.emit(i)

    @property
    def currentText(self):
        return self.items[self._i]


class QCheckBox(QWidget):
    def __init__(self, n=""):
        super().__init__(n)
        self._c = False
        self.toggled = Signal()
        self.stateChanged = Signal()
        self.checkable = True

    @property
    def checked(self):
        return self._c

    @checked.setter
    def checked(self, v):
        if v != self._c:
            self._c = v
            self.toggled.emit(v)
            self.stateChanged.emit(v)

    def isChecked(self):
        return self._c


class QLabel(QWidget):
    text = ""


class QLineEdit(QWidget):
    def __init__(self, n=""):
        super().__init__(n)
        self.text = ""
        self.textChanged = Signal()


class QPushButton(QCheckBox):
    def __init__(self, n=""):
        super().__init__(n)
        self.checkable = False
        self.clicked = Signal()


qt = types.ModuleType("qt")
for name, cls in dict(
    QWidget=QWidget,
    QComboBox=QComboBox,
    QCheckBox=QCheckBox,
    QLabel=QLabel,
    QLineEdit=QLineEdit,
    QPushButton=QPushButton,
    QDoubleSpinBox=_valueWidget("QDoubleSpinBox", 0.0),
    QSpinBox=_valueWidget("QSpinBox", 0),
    QSlider=_valueWidget("QSlider", 0),
    QProgressBar=_valueWidget("QProgressBar", 0),
    QTextEdit=QLineEdit,
    QColor=type("QColor", (), {}),
    QObject=QWidget,
    QTimer=type("QTimer", (), {}),
    QVBoxLayout=QWidget,
    QFormLayout=QWidget,
).items():
    setattr(qt, name, cls)
ctk = types.ModuleType("ctk")


class ctkPathLineEdit(QWidget):
    def __init__(self, n=""):
        super().__init__(n)
        self.currentPath = ""
        self.currentPathChanged = Signal()


for name in (
    "ctkCollapsibleButton",
    "ctkCheckablePushButton",
    "ctkRangeWidget",
    "ctkDirectoryButton",
    "ctkColorPickerButton",
    "ctkComboBox",
    "ctkDoubleRangeSlider",
    "ctkCheckBox",
):
    setattr(ctk, name, type(name, (QWidget,), {}))
ctk.ctkPathLineEdit = ctkPathLineEdit
for name in ("ctkSliderWidget", "ctkDoubleSlider", "ctkDoubleSpinBox"):
    setattr(ctk, name, _valueWidget(name, 0.0))
sys.modules["qt"], sys.modules["ctk"] = qt, ctk

import slicer  # slicer-core


class qMRMLNodeComboBox(QWidget):
    def __init__(self, n=""):
        super().__init__(n)
        self._node = None
        self.currentNodeChanged = Signal()
        self.nodeTypes = []

    def currentNode(self):
        return self._node

    def setCurrentNode(self, node):
        if node is not self._node:
            self._node = node
            self.currentNodeChanged.emit(node)

    def setMRMLScene(self, s):
        pass


for name in ("qMRMLSliderWidget", "qMRMLSpinBox", "qMRMLSubjectHierarchyTreeView", "qMRMLWidget", "qMRMLRangeWidget"):
    setattr(slicer, name, type(name, (QWidget,), {}))
slicer.qMRMLNodeComboBox = qMRMLNodeComboBox


def load(modname, path, package=False):
    spec = importlib.util.spec_from_file_location(
        modname, path, submodule_search_locations=[str(path.parent)] if package else None
    )
    mod = importlib.util.module_from_spec(spec)
    sys.modules[modname] = mod
    spec.loader.exec_module(mod)
    return mod


pnw = load("slicer.parameterNodeWrapper", SLICER_PY / "parameterNodeWrapper" / "__init__.py", package=True)
slicer.parameterNodeWrapper = pnw
print("Slicer's parameterNodeWrapper loaded from the mirror")

# DPNSL.py's parameter node class, taken from its source (the rest of the module needs the Qt app)
sys.path[:0] = [str(REPO), str(REPO / "DPNSLSlicer")]
import ast

source = (REPO / "DPNSLSlicer" / "DPNSL.py").read_text()
tree = ast.parse(source)
node_src = ast.get_source_segment(
    source, next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "DPNSLParameterNode")
)
from typing import Annotated

from DPNSLLib.choices import DegradationModel, DeviceChoice, ModelChoice, ProfileShape, ScaleMode

ns = dict(
    Annotated=Annotated,
    WithinRange=pnw.WithinRange,
    parameterNodeWrapper=pnw.parameterNodeWrapper,
    Path=Path,
    DegradationModel=DegradationModel,
    DeviceChoice=DeviceChoice,
    ModelChoice=ModelChoice,
    ProfileShape=ProfileShape,
    ScaleMode=ScaleMode,
    vtkMRMLScalarVolumeNode=slicer.vtkMRMLScalarVolumeNode,
    vtkMRMLTableNode=slicer.vtkMRMLTableNode,
    vtkMRMLPlotChartNode=slicer.vtkMRMLPlotChartNode,
)
exec(node_src, ns)
DPNSLParameterNode = pnw.parameterNodeWrapper(
    ns["DPNSLParameterNode"]
)  # the decorator line is not in the class segment

scene = slicer.vtkMRMLScene()
slicer.mrmlScene = scene
raw = scene.AddNewNodeByClass("vtkMRMLScriptedModuleNode")
p = DPNSLParameterNode(raw)
print("defaults:", p.degradation, p.profile, p.thicknessMm, p.adapt, p.adaptSeconds)

# widgets from the .ui
ui = ET.parse(REPO / "DPNSLSlicer/Resources/UI/DPNSL.ui").getroot()
widgets = {}
for w in ui.iter("widget"):
    cls = (
        getattr(qt, w.get("class"), None) or getattr(ctk, w.get("class"), None) or getattr(slicer, w.get("class"), None)
    )
    if cls is None:
        continue
    obj = cls(w.get("name"))
    for prop in w.findall("property"):
        if prop.get("name") == "SlicerParameterName":
            obj.setProperty("SlicerParameterName", prop.find("string").text)
    widgets[w.get("name")] = obj
uiNS = types.SimpleNamespace(**widgets)
bound = [n for n, w in widgets.items() if w.property("SlicerParameterName")]
tag = p.connectGui(uiNS)
print(
    f"connectGui bound {len(bound)} widgets:",
    sorted(w.property("SlicerParameterName") for w in widgets.values() if w.property("SlicerParameterName")),
)

# GUI -> node and node -> GUI for the new controls
profile = widgets["profileComboBox"]
print("profile items:", profile.items)
profile.currentIndex = 1
assert p.profile == ProfileShape.GAUSSIAN, p.profile
spin = widgets["thicknessSpinBox"]
print("thickness spin range from WithinRange:", spin.minimum, spin.maximum)
spin.value = 7.5
assert p.thicknessMm == 7.5
p.thicknessMm = 0.0
assert spin.value == 0.0
widgets["adaptCheckBox"].checked = True
assert p.adapt is True
widgets["adaptSecondsSpinBox"].value = 120.0
assert p.adaptSeconds == 120.0
assert p.calibrate is True and widgets["calibrateCheckBox"].checked  # on by default
widgets["calibrateCheckBox"].checked = False
assert p.calibrate is False
widgets["calibrateCheckBox"].checked = True
assert p.calibrate is True
assert p.ensemble is False and not widgets["ensembleCheckBox"].checked  # off by default
widgets["ensembleCheckBox"].checked = True
assert p.ensemble is True
deg = widgets["degradationComboBox"]
print("degradation items:", deg.items)
deg.currentIndex = [e for e in DegradationModel].index(DegradationModel.PROFILE)
assert p.degradation == DegradationModel.PROFILE

# the presenter, driven through the bound parameter node
import numpy as np
from DPNSLLib.logic import SliceSuperResolutionLogic
from DPNSLLib.presenter import PanelPresenter

vol = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "thick")
m = np.diag([0.7, 0.7, 5.0, 1.0])
vol.SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(m))
slicer.util.updateVolumeFromArray(vol, np.zeros((6, 16, 16), np.int16))
widgets["inputSelector"].setCurrentNode(vol)
assert p.inputVolume is vol or p.inputVolume.GetID() == vol.GetID()
widgets["scaleSpinBox"].value = 5.0


class View:
    def __getattr__(self, n):
        return lambda *a, **k: None


presenter = PanelPresenter(SliceSuperResolutionLogic(), View())
print("grid:", presenter.state(p).grid)
spin.value = 10.0
print("grid:", presenter.state(p).grid)
print("request:", presenter.requestArguments(p))
# scene round trip of the parameter node
p2 = DPNSLParameterNode(raw)
assert p2.profile == ProfileShape.GAUSSIAN and p2.thicknessMm == 10.0 and p2.adapt and p2.adaptSeconds == 120.0
assert p2.calibrate is True and presenter.requestArguments(p)["calibrate"] is True
assert p2.ensemble is True and presenter.requestArguments(p)["ensemble"] == 8
assert p.checkpointPath == "" and presenter.state(p).checkpointPath == ""  # bound by the widget: never "."
p.disconnectGui(tag)
print("OK: every binding works with Slicer's parameterNodeWrapper")
