"""Files shipped inside the package: the trained models and the small real sample volumes.

They live in the package (not only in the repository) so that a wheel, a non-editable ``pip install .`` and the
Slicer extension build all carry them.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

RESOURCES_DIR = Path(__file__).resolve().parent
MODELS_DIR = RESOURCES_DIR / "models"
SAMPLE_DATA_DIR = RESOURCES_DIR / "sample_data"


def sample_path(name: str) -> Path:
    """Path of a shipped sample volume, e.g. ``sample_path("ct_lung1_5mm_crop.nii.gz")``.

    Raises:
        FileNotFoundError: no such sample (the message lists the shipped ones).
    """
    path = SAMPLE_DATA_DIR / name
    if not path.is_file():
        shipped = sorted(p.name for p in SAMPLE_DATA_DIR.glob("*.nii.gz"))
        raise FileNotFoundError(f"no shipped sample {name!r}; shipped samples: {shipped}")
    return path


#: Shipped default models: name -> file name, searched in weight_dirs().
SHIPPED = {"ct": "dpnsl_ct.safetensors", "mr": "dpnsl_mr.safetensors"}


def weight_dirs() -> list[Path]:
    """Where shipped weights are looked up, in order: $DPNSL_WEIGHTS_DIR, then the package's resources."""
    dirs = [Path(os.environ["DPNSL_WEIGHTS_DIR"])] if os.environ.get("DPNSL_WEIGHTS_DIR") else []
    return [*dirs, MODELS_DIR]


def shipped_path(name: str) -> Path | None:
    """Path of the shipped weights called ``name`` ("ct" or "mr"), or None when not installed."""
    for folder in weight_dirs():
        candidate = folder / SHIPPED[name]
        if candidate.is_file():
            return candidate
    return None


def model_acquisition(model: str | Path) -> dict | None:
    """The acquisition a model was trained for (its config's ``acquisition``) read from the safetensors header
    alone, without PyTorch: the Slicer panel states the acquisition a run will use before torch is installed.

    ``model``: "ct", "mr" or a checkpoint path. Returns None when the file is missing, unreadable or records none
    (the full checks happen when the model is loaded).
    """
    path = shipped_path(model) if model in SHIPPED else Path(model)
    try:
        with open(path, "rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
            if not 0 < length < 100_000_000:
                return None
            header = json.loads(handle.read(length))
        config = json.loads(header.get("__metadata__", {}).get("config", "{}"))
    except (OSError, TypeError, ValueError, struct.error):
        return None
    acquisition = config.get("acquisition") if isinstance(config, dict) else None
    return acquisition if isinstance(acquisition, dict) else None
