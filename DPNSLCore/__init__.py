"""DPNSLCore: measurement-consistent slice super-resolution for CT and MR (DP-NSL with Mixture-of-Splines)."""

from .interpolation import BASELINES, interpolate
from .operators import (
    Degradation,
    hr_length,
    lr_length,
    make_degradation,
    measurement_consistent_projection,
    simulate_acquisition,
)

__version__ = "0.1.0"

__all__ = [
    "BASELINES",
    "Degradation",
    "hr_length",
    "interpolate",
    "lr_length",
    "make_degradation",
    "measurement_consistent_projection",
    "simulate_acquisition",
]
