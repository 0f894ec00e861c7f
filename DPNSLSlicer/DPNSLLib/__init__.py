"""Helpers of the DPNSL Slicer module: MRML glue and Qt-free logic (imports slicer, vtk, numpy, DPNSLCore only).

Kept in a sub-package because Slicer takes every top-level .py file of a module folder for a module.
DPNSLCore (and so torch) is imported lazily, on the first upsampling, never when Slicer starts.
"""

from .choices import METHODS, DegradationModel, DeviceChoice, ModelChoice, ScaleMode
from .display import PartNodes
from .logic import SliceSuperResolutionLogic

__all__ = [
    "METHODS",
    "DegradationModel",
    "DeviceChoice",
    "ModelChoice",
    "PartNodes",
    "ScaleMode",
    "SliceSuperResolutionLogic",
]
