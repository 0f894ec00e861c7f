"""PyTorch inside Slicer: detect it, describe the devices, install it on request (never at import time).

Installation goes through the PyTorch extension's ``PyTorchUtils`` (it picks the CUDA build matching the
driver); without that extension a CPU-only wheel is pip-installed. Either way the user is asked first.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import logging
import sys
from pathlib import Path

import slicer

MINIMUM_TORCH = "2.1"  # DPNSLCore's own requirement (pyproject.toml: torch>=2.1)
#: DPNSLCore's other pure-Python dependencies that Slicer does not bundle (numpy and SimpleITK it does).
EXTRA_PACKAGES = {"safetensors": "safetensors>=0.4", "tqdm": "tqdm>=4.60"}
CPU_WHEEL_INDEX = "https://download.pytorch.org/whl/cpu"


MINIMUM_PYTHON = (3, 10)  # DPNSLCore's requires-python; 3D Slicer ships Python 3.12 from 5.10 on (5.8: 3.9)


def unsupportedPython(version: tuple[int, ...] | None = None) -> str:
    """Why this Python cannot run DPNSLCore (shown on the disabled Upsample button), or "" when it can."""
    major, minor = (tuple(sys.version_info[:2]) if version is None else tuple(version[:2]))
    if (major, minor) >= MINIMUM_PYTHON:
        return ""
    return (f"DPNSL needs Python >= {MINIMUM_PYTHON[0]}.{MINIMUM_PYTHON[1]}, i.e. 3D Slicer 5.10 or later; this Slicer "
            f"runs Python {major}.{minor}: install a newer 3D Slicer")


def findCoreBeside(moduleDir: str | Path) -> Path | None:
    """Make DPNSLCore importable from a source checkout (``DPNSLSlicer/`` beside ``DPNSLCore/``) without pip.

    An editable ``pip install -e`` only takes effect after a restart (its finder runs at start-up); a checkout
    needs neither. Returns the folder put on ``sys.path``, or None when DPNSLCore is already importable or absent.
    """
    if importlib.util.find_spec("DPNSLCore") is not None:
        return None
    checkout = Path(moduleDir).resolve().parent
    if not (checkout / "DPNSLCore" / "__init__.py").is_file():
        return None
    if str(checkout) not in sys.path:
        sys.path.append(str(checkout))
    importlib.invalidate_caches()
    return checkout


def torchInstalled() -> bool:
    """True when ``import torch`` would find a package (checked without importing it)."""
    return importlib.util.find_spec("torch") is not None


def torchVersionOk(minimum: str = MINIMUM_TORCH) -> bool:
    """True when the installed torch (read from its package metadata, not imported) is at least ``minimum``."""
    try:
        version = importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        return False

    def numbers(text: str) -> tuple[int, ...]:
        parts = []
        for piece in text.split("+")[0].split(".")[:3]:
            digits = "".join(c for c in piece if c.isdigit())
            parts.append(int(digits) if digits else 0)
        return tuple(parts)

    return numbers(version) >= numbers(minimum)


def missingPackages() -> list[str]:
    """pip requirement strings of the DPNSLCore dependencies that are not installed, torch excluded."""
    return [requirement for module, requirement in EXTRA_PACKAGES.items() if importlib.util.find_spec(module) is None]


def installedSummary() -> str:
    """One line for the panel when it opens, from the package metadata only: no ``import torch`` (which takes
    seconds and initialises CUDA) every time the module is entered; devices are listed when a run starts."""
    if not torchInstalled():
        return "PyTorch not installed yet: it is installed (after asking) on the first Upsample."
    try:
        version = importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        version = "(version unknown)"
    return f"PyTorch {version} installed; its devices are listed when a run starts."


def deviceSummary() -> str:
    """One line for the panel: which devices PyTorch can use here (imports torch only if it is installed)."""
    if not torchInstalled():
        return "PyTorch not installed yet: it is installed (after asking) on the first Upsample."
    try:
        import torch
    except Exception as error:  # a broken install must not break the panel
        return f"PyTorch is installed but fails to import ({error}); reinstall it with the PyTorch Utils module."
    if torch.cuda.is_available():
        names = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
        return f"PyTorch {torch.__version__}: CPU and CUDA ({names})."
    return f"PyTorch {torch.__version__}: CPU only (no CUDA device visible)."


def setupPythonRequirements(askConfirmation: bool = True) -> bool:
    """Make ``import DPNSLCore`` work: install PyTorch and the small extras if they are missing.

    Args:
        askConfirmation: ask the user before downloading anything (always True from the GUI).

    Returns:
        True when everything is installed; False when the user declined.

    Raises:
        RuntimeError: the installation did not produce an importable torch.
    """
    if not (torchInstalled() and torchVersionOk()) and not _installTorch(askConfirmation):
        return False  # missing, or older than DPNSLCore needs: PyTorchUtils upgrades it after asking
    missing = missingPackages()
    if missing:
        if askConfirmation and not slicer.util.confirmOkCancelDisplay(
            f"DPNSL needs these Python packages: {', '.join(missing)}. Install them now?", "DPNSL setup"
        ):
            return False
        slicer.util.pip_install(" ".join(missing))
    return True


def _installTorch(askConfirmation: bool) -> bool:
    try:
        import PyTorchUtils
    except ModuleNotFoundError:
        PyTorchUtils = None
    if PyTorchUtils is not None:
        torch = PyTorchUtils.PyTorchUtilsLogic().installTorch(
            askConfirmation=askConfirmation, torchVersionRequirement=f">={MINIMUM_TORCH}"
        )
        return torch is not None
    logging.warning("DPNSL: the PyTorch extension is not installed; falling back to a CPU-only PyTorch wheel")
    if askConfirmation and not slicer.util.confirmOkCancelDisplay(
        "DPNSL needs PyTorch. The PyTorch extension (recommended, picks a GPU build) is not installed, so a "
        f"CPU-only PyTorch >= {MINIMUM_TORCH} (about 200 MB) will be downloaded now. Continue?",
        "DPNSL setup",
    ):
        return False
    slicer.util.pip_install(f"torch>={MINIMUM_TORCH} --index-url {CPU_WHEEL_INDEX}")
    if not torchInstalled():
        raise RuntimeError("PyTorch installation finished but `import torch` still fails; see the Python console")
    return True
