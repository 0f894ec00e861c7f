"""DPNSLCore: measurement-consistent slice super-resolution for CT and MR (DP-NSL with Mixture-of-Splines).

Main entry points: :func:`upsample` (arrays or :class:`Volume`), :func:`load_model`, :func:`read_volume` /
:func:`write_volume`, and the command lines ``python -m DPNSLCore.upsample|train|evaluate|bench``.
"""

from .inference import METHODS, UpsampleResult, resolve_scale, upsample
from .interpolation import BASELINES, interpolate
from .io import Geometry, Volume, detect_slice_axis, read_volume, upsampled_geometry, write_volume
from .operators import (
    Degradation,
    hr_length,
    lr_length,
    make_degradation,
    measurement_consistent_projection,
    simulate_acquisition,
)
from .tiling import Cancelled
from .weights import load_model, resolve_device

__version__ = "0.1.0"

__all__ = [
    "BASELINES",
    "METHODS",
    "Cancelled",
    "Degradation",
    "Geometry",
    "UpsampleResult",
    "Volume",
    "detect_slice_axis",
    "hr_length",
    "interpolate",
    "load_model",
    "lr_length",
    "make_degradation",
    "measurement_consistent_projection",
    "read_volume",
    "resolve_device",
    "resolve_scale",
    "simulate_acquisition",
    "upsample",
    "upsampled_geometry",
    "write_volume",
]
