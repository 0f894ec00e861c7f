"""Packaging: the wheel carries every subpackage, the shipped models and the sample data, and an installed copy
finds them; the package's modules import each other without cycles."""

import ast
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "DPNSLCore"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    build = tmp_path_factory.mktemp("build")  # keep the checkout clean: no build/ or egg-info written into it
    code = ("import os, sys, shutil; from setuptools import build_meta; "
            f"shutil.copytree({str(REPO)!r}, {str(build / 'src')!r}, ignore=shutil.ignore_patterns("
            "'.venv*', '.git', 'runs', 'out', '*.egg-info', 'build', '__pycache__')); "
            f"os.chdir({str(build / 'src')!r}); print(build_meta.build_wheel({str(out)!r}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return out / done.stdout.strip().splitlines()[-1]


def test_wheel_holds_the_models_samples_and_every_module(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for model in ("dpnsl_ct.safetensors", "dpnsl_mr.safetensors"):
        assert f"DPNSLCore/resources/models/{model}" in names
    for sample in ("ct_lung1_5mm_crop.nii.gz", "ct_chest_1mm_crop.nii.gz", "mr_t1_1mm_crop.nii.gz", "README.md"):
        assert f"DPNSLCore/resources/sample_data/{sample}" in names
    sources = {str(p.relative_to(REPO)) for p in PACKAGE.rglob("*.py")}
    assert sources <= names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "dpnsl = DPNSLCore.cli.main:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_the_wheel_states_its_license_as_an_spdx_expression(wheel):
    """PEP 639: setuptools stops building a ``license = {text = ...}`` table after 2027-02-18."""
    names = zipfile.ZipFile(wheel).namelist()
    metadata = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "License-Expression: Apache-2.0" in metadata.splitlines()


def test_an_installed_wheel_finds_its_models_and_samples(wheel, tmp_path):
    zipfile.ZipFile(wheel).extractall(tmp_path / "site")
    code = ("import DPNSLCore; from DPNSLCore.models.registry import shipped_path; "
            "print(DPNSLCore.__file__); print(shipped_path('ct')); "
            "print(DPNSLCore.sample_path('mr_t1_1mm_crop.nii.gz'))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                          env={"PYTHONPATH": str(tmp_path / "site"), "PATH": "/usr/bin:/bin"}, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.split()
    assert all(line.startswith(str(tmp_path / "site")) for line in lines), lines  # not the checkout's copy


def _module_imports(path: Path) -> set[str]:
    """DPNSLCore modules that ``path`` imports anywhere: at module level, inside functions (a lazy import is still a
    dependency) and under TYPE_CHECKING."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    package = parts[:-1] if parts[-1] != "__init__" else parts[:-1]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *(node.module.split(".") if node.module else [])])
            if module.startswith("DPNSLCore"):  # `from . import state` imports the submodule state
                found |= {module, *(f"{module}.{alias.name}" for alias in node.names)}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("DPNSLCore")}
    return found


def _import_graph() -> dict[str, set[str]]:
    modules = {".".join(p.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__"): p
               for p in PACKAGE.rglob("*.py")}
    return {m: {d for d in _module_imports(p) if d in modules and d != m} for m, p in modules.items()}


#: the layers, lowest first: a module imports only from its own layer or lower ones (the package root gives only
#: __version__; the top-level ``python -m`` entry modules sit above everything)
LAYERS = ("resources", "ops", "io", "models", "data", "inference", "evaluation", "training", "cli")


def _layer(module: str) -> int:
    parts = module.split(".")
    if len(parts) == 1:
        return -1  # the package root
    return LAYERS.index(parts[1]) if parts[1] in LAYERS else len(LAYERS)  # entry modules: upsample, train, ...


def test_no_module_imports_a_higher_layer():
    wrong = sorted(f"{m} -> {d}" for m, deps in _import_graph().items() for d in deps if _layer(d) > _layer(m))
    assert wrong == [], wrong


def test_no_import_cycles():
    graph = _import_graph()
    state: dict[str, int] = {}

    def visit(module, trail):
        state[module] = 1
        for dep in graph[module]:
            assert state.get(dep) != 1, f"import cycle: {' -> '.join([*trail, module, dep])}"
            if dep not in state:
                visit(dep, [*trail, module])
        state[module] = 2

    for module in graph:
        if module not in state:
            visit(module, [])
    # the request (the Slicer module resolves plans before PyTorch is installed) loads without torch or SimpleITK
    code = "import sys, DPNSLCore.inference.request; print(sorted({'torch', 'SimpleITK'} & set(sys.modules)))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert loaded.stdout.strip() == "[]"
