"""DPNSLCore: measurement-consistent slice super-resolution for CT and MR (DP-NSL with Mixture-of-Splines).

Main entry points: :func:`upsample` (arrays or :class:`Volume`), :class:`UpsampleRequest` (how a request is
resolved: slice axis, scale, acquisition, output grid), :func:`load_model`, :func:`read_volume` /
:func:`write_volume`, and the command lines ``dpnsl upsample|train|evaluate|bench`` (or
``python -m DPNSLCore.<command>``).

Names are imported on first use (PEP 562), so ``import DPNSLCore`` is cheap and the torch-free parts (the request,
the grid rules, volume I/O) work where PyTorch is not installed yet, e.g. in the Slicer panel.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.2.0"

#: public name -> module that defines it
_EXPORTS = {
    "METHODS": "inference.api", "UpsampleResult": "inference.api", "upsample": "inference.api",
    "UpsampleRequest": "inference.request", "UpsamplePlan": "inference.request",
    "TilingOptions": "inference.tiling", "Cancelled": "inference.tiling", "DestripeOptions": "ops.destripe",
    "CalibrateOptions": "inference.calibrate",
    "BASELINES": "ops.baselines", "interpolate": "ops.baselines",
    "Geometry": "io.volumes", "Volume": "io.volumes", "index_to_world": "io.volumes",
    "detect_slice_axis": "io.volumes", "read_volume": "io.volumes",
    "upsampled_geometry": "io.volumes", "write_volume": "io.volumes",
    "IntensityNormalizer": "io.intensity",
    "hr_length": "ops.grid", "lr_length": "ops.grid", "check_scale": "ops.grid",
    "Degradation": "ops.operators", "make_degradation": "ops.operators",
    "measurement_consistent_projection": "ops.operators", "simulate_acquisition": "ops.operators",
    "load_model": "models.registry", "open_model": "models.registry", "LoadedModel": "models.registry",
    "resolve_device": "models.registry",
    "sample_path": "resources",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value  # cache: later look-ups skip __getattr__
        return value
    raise AttributeError(f"module 'DPNSLCore' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])

