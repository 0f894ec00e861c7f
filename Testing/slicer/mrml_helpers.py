"""Helpers shared by the Slicer-glue tests: skip without slicer-core, synthetic geometry and volumes, a fake result.

A module of its own (not conftest.py) so test files can import it by a unique name.
"""

from __future__ import annotations

import numpy as np
import pytest

SKIP_REASON = "slicer-core is not installed (pip install slicer-core); the Slicer MRML glue tests need real MRML nodes"


def requireSlicer():
    """Import slicer-core's ``slicer`` or skip the calling test module with a clear reason."""
    slicer = pytest.importorskip("slicer", reason=SKIP_REASON)
    if not hasattr(slicer, "vtkMRMLScene"):  # e.g. the unrelated PyPI package also called "slicer"
        pytest.skip(f"the importable `slicer` is not 3D Slicer's MRML; {SKIP_REASON}", allow_module_level=True)
    return slicer


def rotationMatrix(angles_deg: tuple[float, float, float]) -> np.ndarray:
    """(3, 3) rotation about R, then A, then S by the given angles (degrees)."""
    ax, ay, az = np.deg2rad(angles_deg)
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def makeIjkToRas(spacingIjk, origin=(-12.5, 30.0, 7.25), angles=(20.0, -35.0, 50.0)) -> np.ndarray:
    """(4, 4) IJK-to-RAS: rotated, anisotropic, off-origin."""
    matrix = np.eye(4)
    matrix[:3, :3] = rotationMatrix(angles) @ np.diag(spacingIjk)
    matrix[:3, 3] = origin
    return matrix


def smoothVolume(shape: tuple[int, int, int], seed: int = 0) -> np.ndarray:
    """(z, y, x) float32 smooth random field in HU-like units (a few hundred), deterministic."""
    rng = np.random.default_rng(seed)
    z, y, x = np.meshgrid(*(np.linspace(0, 1, n) for n in shape), indexing="ij")
    field = sum(rng.uniform(50, 200) * np.sin(rng.uniform(1, 6) * z + rng.uniform(1, 6) * y + rng.uniform(1, 6) * x
                                              + rng.uniform(0, 6)) for _ in range(4))
    return field.astype(np.float32)


def fakeResult(degrees: tuple[int, ...]):
    """An UpsampleResult with linear output, a signed detail and softmax routing over ``degrees`` experts."""
    import DPNSLCore

    real = DPNSLCore.upsample

    def upsample(array, scale, **kwargs):
        base = real(array, scale, method="linear", slice_axis=kwargs["slice_axis"], return_parts=True)
        shape = base.volume.shape
        grid = np.meshgrid(*(np.linspace(0, 3, n) for n in shape), indexing="ij")
        logits = np.stack([np.sin((e + 1) * grid[0] + grid[1] - e * grid[2]) * 3 for e in range(len(degrees))])
        routing = np.exp(logits) / np.exp(logits).sum(axis=0, keepdims=True)
        detail = (25 * np.sin(grid[0] * 2) * np.cos(grid[2])).astype(np.float32)
        return DPNSLCore.UpsampleResult(
            volume=base.volume + detail, geometry=None, plan=base.plan, method="dpnsl", consistency_error=0.0,
            anchor=base.volume, detail=detail, routing=routing.astype(np.float32), expert_degrees=degrees)

    return upsample
