"""PyTorch inside Slicer: device choice with CPU fallback, ask-before-install, advice when torch is missing."""

from __future__ import annotations

import builtins
import sys
import types

import numpy as np
import pytest
from mrml_helpers import requireSlicer

slicer = requireSlicer()

import torch  # noqa: E402
from DPNSLLib import logic, torchsetup  # noqa: E402

cudaAbsent = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU fallback; this machine has CUDA")


@cudaAbsent
def test_cuda_request_without_cuda_is_dpnslcores_error(makeVolume):
    # one device policy for every front end: an explicit CUDA request fails with the fix, never silently
    node = makeVolume(np.ones((3, 8, 8), np.float32), np.diag([1.0, 1.0, 3.0, 1.0]))
    with pytest.raises(ValueError, match="CUDA is not available here; use 'auto' or 'cpu'"):
        logic.SliceSuperResolutionLogic().upsample(node, 2, device="cuda")


def test_unknown_device_choice_is_rejected(makeVolume):
    node = makeVolume(np.ones((3, 8, 8), np.float32), np.diag([1.0, 1.0, 3.0, 1.0]))
    with pytest.raises(ValueError, match=r"`device` must be one of \['auto', 'cpu', 'cuda'\], got 'tpu'"):
        logic.SliceSuperResolutionLogic().upsample(node, 2, device="tpu")


def test_device_summary_names_the_torch_version():
    assert torchsetup.deviceSummary().startswith(f"PyTorch {torch.__version__}: CPU")


def test_the_summary_shown_on_entering_the_module_does_not_import_torch(monkeypatch):
    realImport = builtins.__import__

    def refuseTorch(name, *args, **kwargs):
        if name == "torch":
            raise AssertionError("torch imported")
        return realImport(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", refuseTorch)
    import importlib.metadata

    expected = importlib.metadata.version("torch")
    assert torchsetup.installedSummary() == f"PyTorch {expected} installed; its devices are listed when a run starts."


@pytest.fixture
def dialogs(monkeypatch):
    """Record confirmations and pip installs instead of showing or running them."""
    calls = {"confirm": [], "pip": [], "answer": True}

    def confirm(text, title=""):
        calls["confirm"].append(text)
        return calls["answer"]

    monkeypatch.setattr(slicer.util, "confirmOkCancelDisplay", confirm, raising=False)
    monkeypatch.setattr(slicer.util, "pip_install", lambda req: calls["pip"].append(req))
    return calls


def test_nothing_is_asked_or_installed_when_everything_is_there(dialogs, monkeypatch):
    monkeypatch.setattr(torchsetup, "missingPackages", lambda: [])
    assert torchsetup.setupPythonRequirements(askConfirmation=True)
    assert dialogs == {"confirm": [], "pip": [], "answer": True}


def test_missing_torch_goes_through_the_pytorch_extension(dialogs, monkeypatch):
    received = {}

    class FakeLogic:
        def installTorch(self, **kwargs):
            received.update(kwargs)
            return None  # the user declined in PyTorchUtils' own dialog

    monkeypatch.setattr(torchsetup, "torchInstalled", lambda: False)
    monkeypatch.setitem(sys.modules, "PyTorchUtils", types.SimpleNamespace(PyTorchUtilsLogic=FakeLogic))
    assert torchsetup.setupPythonRequirements(askConfirmation=True) is False
    assert received == {"askConfirmation": True, "torchVersionRequirement": f">={torchsetup.MINIMUM_TORCH}"}
    assert dialogs["pip"] == []


def test_a_too_old_torch_is_upgraded_through_the_extension(dialogs, monkeypatch):
    received = {}

    class FakeLogic:
        def installTorch(self, **kwargs):
            received.update(kwargs)
            return object()

    monkeypatch.setattr(torchsetup.importlib.metadata, "version", lambda name: "1.13.1+cpu")
    monkeypatch.setattr(torchsetup, "missingPackages", lambda: [])
    monkeypatch.setitem(sys.modules, "PyTorchUtils", types.SimpleNamespace(PyTorchUtilsLogic=FakeLogic))
    assert not torchsetup.torchVersionOk() and torchsetup.setupPythonRequirements(askConfirmation=True)
    assert received == {"askConfirmation": True, "torchVersionRequirement": f">={torchsetup.MINIMUM_TORCH}"}


@pytest.mark.parametrize(("version", "ok"), [("2.13.0+cpu", True), ("2.1.0", True), ("2.0.1", False),
                                              ("10.0", True), ("2.1.0a0+git", True)])
def test_torch_version_check(monkeypatch, version, ok):
    monkeypatch.setattr(torchsetup.importlib.metadata, "version", lambda name: version)
    assert torchsetup.torchVersionOk() is ok


def test_without_the_extension_a_cpu_wheel_is_installed_only_after_asking(dialogs, monkeypatch):
    monkeypatch.setattr(torchsetup, "torchInstalled", lambda: False)
    monkeypatch.setattr(torchsetup, "missingPackages", lambda: [])
    monkeypatch.setitem(sys.modules, "PyTorchUtils", None)  # import raises ModuleNotFoundError
    dialogs["answer"] = False
    assert torchsetup.setupPythonRequirements(askConfirmation=True) is False
    assert len(dialogs["confirm"]) == 1 and dialogs["pip"] == []
    dialogs["answer"] = True
    with pytest.raises(RuntimeError, match=r"`import torch` still fails"):  # our fake pip installs nothing
        torchsetup.setupPythonRequirements(askConfirmation=True)
    assert dialogs["pip"] == [f"torch>={torchsetup.MINIMUM_TORCH} --index-url {torchsetup.CPU_WHEEL_INDEX}"]


def test_missing_extras_are_installed_after_asking(dialogs, monkeypatch):
    monkeypatch.setattr(torchsetup, "missingPackages", lambda: ["safetensors>=0.4"])
    assert torchsetup.setupPythonRequirements(askConfirmation=True)
    assert "safetensors>=0.4" in dialogs["confirm"][0] and dialogs["pip"] == ["safetensors>=0.4"]


def test_dpnslcore_is_found_beside_the_module_in_a_checkout(tmp_path, monkeypatch):
    (tmp_path / "DPNSLSlicer").mkdir()
    (tmp_path / "DPNSLCore").mkdir()
    (tmp_path / "DPNSLCore" / "__init__.py").write_text("")
    real = torchsetup.importlib.util.find_spec
    monkeypatch.setattr(torchsetup.importlib.util, "find_spec",
                        lambda name, *a: None if name == "DPNSLCore" else real(name, *a))
    monkeypatch.setattr(sys, "path", list(sys.path))
    assert torchsetup.findCoreBeside(tmp_path / "DPNSLSlicer") == tmp_path.resolve()
    assert str(tmp_path.resolve()) in sys.path
    assert torchsetup.findCoreBeside(tmp_path / "elsewhere" / "DPNSLSlicer") is None  # no checkout there
    monkeypatch.setattr(torchsetup.importlib.util, "find_spec", real)
    assert torchsetup.findCoreBeside(tmp_path / "DPNSLSlicer") is None  # already importable: nothing to do


def test_python_before_3_10_is_refused_with_the_slicer_version_to_use(monkeypatch):
    assert torchsetup.unsupportedPython((3, 12)) == "" and torchsetup.unsupportedPython() == ""
    message = torchsetup.unsupportedPython((3, 9))
    assert message == ("DPNSL needs Python >= 3.10, i.e. 3D Slicer 5.10 or later; this Slicer runs Python 3.9: "
                       "install a newer 3D Slicer")
    monkeypatch.setattr(torchsetup, "unsupportedPython", lambda: message)
    with pytest.raises(RuntimeError, match="DPNSL needs Python >= 3.10"):
        logic.importCore()


def test_missing_torch_at_run_time_gives_advice(monkeypatch):
    realImport = builtins.__import__

    def noTorch(name, *args, **kwargs):
        if name == "DPNSLCore":
            raise ModuleNotFoundError("No module named 'torch'", name="torch")
        return realImport(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", noTorch)
    with pytest.raises(RuntimeError, match=r"PyTorch is not installed: run DPNSLLogic\(\).setupPythonRequirements\(\)"):
        logic.importCore()
