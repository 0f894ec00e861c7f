"""Static checks of the Slicer module files (no Slicer needed): .ui <-> code <-> parameter node, anatomy, packaging.

The Qt panel itself cannot run here, so these tests hold the parts that can be checked by reading: every widget
the code touches exists with the right class, every SlicerParameterName binds to a parameter-node field through
a connector Slicer's parameterNodeWrapper has (docs: developer_guide/parameter_nodes/gui_connection), and the
module keeps the shape of Slicer's scripted-module template.
"""

from __future__ import annotations

import ast
import enum
import importlib.util
import json
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MODULE = REPO / "DPNSLSlicer"
SOURCE = (MODULE / "DPNSL.py").read_text()
TREE = ast.parse(SOURCE)
UI = ET.parse(MODULE / "Resources" / "UI" / "DPNSL.ui").getroot()
WIDGETS = {w.get("name"): w for w in UI.iter("widget")}

#: Connectors of slicer.parameterNodeWrapper, by parameter type (Slicer docs, "Available connectors").
CONNECTORS = {
    "bool": {"QCheckBox", "ctkCheckBox", "QPushButton"},
    "float": {"QDoubleSpinBox", "ctkSliderWidget", "ctkDoubleSlider", "ctkDoubleSpinBox"},
    "int": {"QSpinBox", "QSlider"},
    "str": {"QLineEdit", "QTextEdit", "QLabel"},
    "Path": {"ctkPathLineEdit", "ctkDirectoryButton"},
    "enum": {"QComboBox", "ctkComboBox"},
    "node": {"qMRMLNodeComboBox", "qMRMLSubjectHierarchyTreeView"},
}
#: Widgets the code drives directly (not through the parameter node), with their class.
CODE_WIDGETS = {
    "applyButton": "QPushButton", "cancelButton": "QPushButton", "compareButton": "QPushButton",
    "progressBar": "QProgressBar", "statusLabel": "QLabel", "gridLabel": "QLabel", "deviceLabel": "QLabel",
    "scaleSpinBox": "QDoubleSpinBox", "targetSpacingSpinBox": "QDoubleSpinBox", "thicknessSpinBox": "QDoubleSpinBox",
    "profileComboBox": "QComboBox", "adaptSecondsSpinBox": "QDoubleSpinBox",
    "checkpointPathLineEdit": "ctkPathLineEdit", "referenceSelector": "qMRMLNodeComboBox",
}
UNBOUND_FIELDS = {"compareTable", "compareChart",  # Compare's outputs, kept for reuse, not shown as widgets
                  "checkpointPath"}  # a str bound by hand: a Path parameter would show its unset Path() as "."


def _loadChoices():
    spec = importlib.util.spec_from_file_location("dpnsl_choices", MODULE / "DPNSLLib" / "choices.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


CHOICES = _loadChoices()


def _class(name: str) -> ast.ClassDef:
    return next(node for node in TREE.body if isinstance(node, ast.ClassDef) and node.name == name)


def _fields() -> dict[str, str]:
    """Parameter-node field -> kind ('bool', 'float', 'enum', 'node', ...), from DPNSL.py's annotations."""
    fields = {}
    for statement in _class("DPNSLParameterNode").body:
        if isinstance(statement, ast.AnnAssign):
            text = ast.unparse(statement.annotation)
            base = re.sub(r"^Annotated\[(\w+),.*\]$", r"\1", text)
            if base.startswith("vtkMRML"):
                kind = "node"
            elif isinstance(getattr(CHOICES, base, None), type) and issubclass(getattr(CHOICES, base), enum.Enum):
                kind = "enum"
            else:
                kind = base
            fields[statement.target.id] = (kind, base)
    return fields


def _bindings() -> dict[str, ET.Element]:
    out = {}
    for widget in UI.iter("widget"):
        for prop in widget.findall("property"):
            if prop.get("name") == "SlicerParameterName":
                out[prop.findtext("string")] = widget
    return out


def test_every_slicer_parameter_name_is_a_field_with_a_matching_connector():
    fields, bindings = _fields(), _bindings()
    assert set(bindings) == set(fields) - UNBOUND_FIELDS
    for name, widget in bindings.items():
        kind, base = fields[name]
        assert widget.get("class") in CONNECTORS[kind], f"{name}: {widget.get('class')} cannot bind a {kind}"
        if kind == "node":
            nodeTypes = [s.text for p in widget.findall("property") if p.get("name") == "nodeTypes"
                         for s in p.iter("string")]
            assert base in nodeTypes, f"{widget.get('name')} lists {nodeTypes}, the field is a {base}"


def test_enum_combo_boxes_are_left_empty_for_the_wrapper_to_fill():
    fields = _fields()
    for name, widget in _bindings().items():
        if fields[name][0] == "enum":
            assert widget.find("item") is None, f"{widget.get('name')} has static items"


def test_every_widget_the_code_references_exists_with_the_right_class():
    referenced = {node.attr for node in ast.walk(TREE) if isinstance(node, ast.Attribute)
                  and isinstance(node.value, ast.Attribute) and node.value.attr == "ui"}
    assert referenced == set(CODE_WIDGETS), "update CODE_WIDGETS with the widgets DPNSL.py uses"
    for name, cls in CODE_WIDGETS.items():
        assert name in WIDGETS, f"DPNSL.py uses self.ui.{name}, missing from DPNSL.ui"
        assert WIDGETS[name].get("class") == cls


def test_node_selectors_receive_the_scene_and_custom_widgets_are_declared():
    connected = {c.findtext("receiver") for c in UI.iter("connection")
                 if c.findtext("signal") == "mrmlSceneChanged(vtkMRMLScene*)" and c.findtext("sender") == "DPNSL"}
    selectors = {name for name, w in WIDGETS.items() if w.get("class") == "qMRMLNodeComboBox"}
    assert selectors == connected == {"inputSelector", "outputSelector", "referenceSelector"}
    declared = {c.findtext("class") for c in UI.iter("customwidget")}
    used = {w.get("class") for w in WIDGETS.values() if w.get("class")[0] in "cq"}
    assert used <= declared
    assert UI.find("widget").get("class") == "qMRMLWidget" and UI.find("widget").get("name") == "DPNSL"


def test_output_selector_creates_a_new_volume_by_default():
    props = {p.get("name"): p for p in WIDGETS["outputSelector"].findall("property")}
    assert props["noneEnabled"].findtext("bool") == "true"
    assert props["noneDisplay"].findtext("string") == "Create new volume"


def test_module_follows_the_scripted_module_template():
    bases = {node.name: [ast.unparse(b) for b in node.bases] for node in TREE.body if isinstance(node, ast.ClassDef)}
    assert bases["DPNSL"] == ["ScriptedLoadableModule"]
    assert bases["DPNSLWidget"] == ["ScriptedLoadableModuleWidget", "VTKObservationMixin"]
    assert bases["DPNSLLogic"][0] == "ScriptedLoadableModuleLogic"
    assert bases["DPNSLTest"] == ["ScriptedLoadableModuleTest"]
    decorators = [ast.unparse(d) for d in _class("DPNSLParameterNode").decorator_list]
    assert decorators == ["parameterNodeWrapper"]
    methods = {f.name for f in _class("DPNSLWidget").body if isinstance(f, ast.FunctionDef)}
    assert {"setup", "cleanup", "enter", "exit", "onSceneStartClose", "onSceneEndClose", "initializeParameterNode",
            "setParameterNode", "_refresh", "showState", "showStatus", "showProgress"} <= methods
    assert len(SOURCE.splitlines()) < 500


def test_each_button_action_has_exactly_one_try_with_error_display():
    for function in _class("DPNSLWidget").body:
        if isinstance(function, ast.FunctionDef) and re.fullmatch(r"on\w+Button", function.name):
            guards = [w for w in ast.walk(function) if isinstance(w, ast.With)
                      and "tryWithErrorDisplay" in ast.unparse(w.items[0].context_expr)]
            expected = 0 if function.name == "onCancelButton" else 1
            assert len(guards) == expected, function.name


def _moduleImports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in tree.body:  # module level only: lazy imports inside functions are allowed
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


PYTHON_FILES = sorted((MODULE / "DPNSLLib").glob("*.py")) + [MODULE / "DPNSL.py"]


@pytest.mark.parametrize("path", PYTHON_FILES, ids=lambda p: p.name)
def test_nothing_imports_torch_or_dpnslcore_when_slicer_loads_the_module(path):
    imports = _moduleImports(path)
    assert not imports & {"torch", "DPNSLCore"}, "import them lazily: Slicer may start without PyTorch"
    if path.parent.name == "DPNSLLib":
        assert imports - set(sys.stdlib_module_names) <= {"slicer", "vtk", "numpy"}


def test_cmake_lists_every_script_and_resource():
    cmake = (MODULE / "CMakeLists.txt").read_text()
    for path in sorted((MODULE / "DPNSLLib").glob("*.py")):
        assert f"DPNSLLib/{path.name}" in cmake
    for resource in re.findall(r"Resources/\S+", cmake.split("slicerMacroBuildScriptedModule")[0]):
        assert (MODULE / resource.replace("${MODULE_NAME}", "DPNSL")).is_file()
    top = (REPO / "CMakeLists.txt").read_text()
    for needed in ("find_package(Slicer REQUIRED)", "include(${Slicer_USE_FILE})", "add_subdirectory(DPNSLSlicer)",
                   "include(${Slicer_EXTENSION_GENERATE_CONFIG})", "include(${Slicer_EXTENSION_CPACK})",
                   'set(EXTENSION_DEPENDS "PyTorch")'):
        assert needed in top


def test_extension_description_and_catalog_entry():
    keys = {line.split()[0] for line in (REPO / "DPNSL.s4ext").read_text().splitlines() if line and line[0] != "#"}
    assert {"scm", "scmurl", "scmrevision", "depends", "build_subdirectory", "homepage", "contributors", "category",
            "iconurl", "status", "description", "screenshoturls", "enabled"} <= keys
    entry = json.loads((REPO / "DPNSL.json").read_text())
    assert {"$schema", "category", "scm_url"} <= set(entry)
    assert set(entry) <= {"$schema", "category", "scm_url", "scm_revision", "scm_type", "build_dependencies",
                          "build_subdirectory", "enabled", "tier"}  # schema v1.0.1: additionalProperties false
    assert entry["build_dependencies"] == ["PyTorch"]
