"""Fixtures for the Slicer-glue tests: real MRML scenes from slicer-core (pip install slicer-core).

Test modules that need MRML call ``mrml_helpers.requireSlicer`` at import, so without slicer-core they are
skipped with a reason instead of failing; the .ui/AST test needs no Slicer at all.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from mrml_helpers import requireSlicer

REPO = Path(__file__).resolve().parents[2]
MODULE_DIR = REPO / "DPNSLSlicer"
for path in (str(REPO), str(MODULE_DIR)):
    if path not in sys.path:
        sys.path.insert(0, path)


@pytest.fixture
def scene():
    """A fresh MRML scene, also set as ``slicer.mrmlScene`` (slicer.util helpers use it)."""
    slicer = requireSlicer()
    mrmlScene = slicer.vtkMRMLScene()
    mrmlScene.RegisterNodeClass(slicer.vtkMRMLColorLegendDisplayNode())  # done by the Colors module in Slicer
    previous = getattr(slicer, "mrmlScene", None)
    slicer.mrmlScene = mrmlScene
    yield mrmlScene
    mrmlScene.Clear(1)
    slicer.mrmlScene = previous


@pytest.fixture
def makeVolume(scene):
    """Factory: a scalar volume node from a (z, y, x) array and a (4, 4) IJK-to-RAS matrix."""
    import slicer

    def make(array: np.ndarray, ijkToRas: np.ndarray, name: str = "input", className="vtkMRMLScalarVolumeNode"):
        node = scene.AddNewNodeByClass(className, name)
        node.SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(ijkToRas))
        slicer.util.updateVolumeFromArray(node, array)
        node.CreateDefaultDisplayNodes()
        return node

    return make
