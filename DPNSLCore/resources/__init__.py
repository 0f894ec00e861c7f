"""Files shipped inside the package: the trained models and the small real sample volumes.

They live in the package (not only in the repository) so that a wheel, a non-editable ``pip install .`` and the
Slicer extension build all carry them.
"""

from __future__ import annotations

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
