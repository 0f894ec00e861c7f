"""Volume nodes <-> numpy arrays with their full geometry, kept in the node's own IJK-to-RAS matrix.

Arrays follow ``slicer.util.arrayFromVolume``: (k, j, i) = (z, y, x), so numpy axis ``a`` is IJK axis ``2 - a``.
Geometry never goes through LPS or a (spacing, origin, direction) triple: the upsampled grid is the input's
IJK-to-RAS with the slice-axis column divided by the scale and the same origin (DPNSLCore's
``UpsamplePlan.output_matrix``, the one rule), so voxel 0 stays where it was, the direction (including any
rotation or shear) is kept, and HR slice ``k`` lies at LR position ``k / s``.
"""

from __future__ import annotations

import numpy as np
import slicer
import vtk
from vtk.util import numpy_support


def ijkToRasArray(volumeNode) -> np.ndarray:
    """The node's IJK-to-RAS matrix as a (4, 4) float64 array (column c maps IJK axis c, column 3 = origin)."""
    matrix = vtk.vtkMatrix4x4()
    volumeNode.GetIJKToRASMatrix(matrix)
    return slicer.util.arrayFromVTKMatrix(matrix).astype(np.float64)


def spacingZyx(ijkToRas: np.ndarray) -> np.ndarray:
    """Voxel spacing in mm per numpy axis (z, y, x), from the column norms of a (4, 4) IJK-to-RAS matrix."""
    return np.linalg.norm(np.asarray(ijkToRas)[:3, :3], axis=0)[::-1]


def checkScalarVolume(volumeNode, argName: str = "inputNode") -> None:
    """Reject what cannot be upsampled slice-wise: no node, label maps, vector/4-D and 2-D volumes.

    Raises:
        ValueError: with the node's name, what is wrong and what to pick instead.
    """
    if volumeNode is None:
        raise ValueError(f"`{argName}` is None: select a scalar volume (e.g. a CT or MR series) first.")
    if not volumeNode.IsA("vtkMRMLScalarVolumeNode") or volumeNode.IsA("vtkMRMLLabelMapVolumeNode"):
        raise ValueError(
            f"`{argName}` must be a scalar volume node, got {volumeNode.GetClassName()} "
            f"'{volumeNode.GetName()}'; label maps, vector and 4-D volumes cannot be upsampled."
        )
    image = volumeNode.GetImageData()
    if image is None:
        raise ValueError(f"`{argName}` '{volumeNode.GetName()}' has no image data; load or compute it first.")
    components = image.GetNumberOfScalarComponents()
    if components != 1:
        raise ValueError(
            f"`{argName}` '{volumeNode.GetName()}' has {components} components per voxel (a 4-D or vector "
            "volume); extract one frame or component as a scalar volume first."
        )
    dims = image.GetDimensions()
    if min(dims) < 2:
        raise ValueError(
            f"`{argName}` '{volumeNode.GetName()}' is 2-D (dimensions {tuple(dims)} in i, j, k); slice "
            "super-resolution needs a 3-D volume with at least 2 slices along every axis."
        )


def volumeArray(volumeNode, argName: str = "inputNode") -> np.ndarray:
    """Validated (z, y, x) voxel array of a scalar volume node (a view: do not write into it)."""
    checkScalarVolume(volumeNode, argName)
    return slicer.util.arrayFromVolume(volumeNode)


def getOrCreateVolumeNode(scene, node, name: str, className: str = "vtkMRMLScalarVolumeNode"):
    """Reuse ``node`` when given (it must be a ``className``), else add a new ``className`` node to ``scene``.

    Raises:
        ValueError: ``node`` is of another class (e.g. a label map given as the output volume).
    """
    if node is None:
        return scene.AddNewNodeByClass(className, scene.GenerateUniqueName(name))
    if node.GetClassName() != className:
        raise ValueError(f"node '{node.GetName()}' is a {node.GetClassName()}, expected a {className}.")
    return node


def setVolumeFromArray(volumeNode, array: np.ndarray, ijkToRas: np.ndarray, *, like=None) -> None:
    """Write a (z, y, x) array and its (4, 4) IJK-to-RAS matrix into ``volumeNode``.

    Args:
        volumeNode: target node (its previous voxels and geometry are replaced).
        array: (z, y, x) voxels; copied.
        ijkToRas: (4, 4) matrix, e.g. ``plan.output_matrix(ijkToRasArray(inputNode))``.
        like: optional source node whose parent transform the target follows (so both overlay in RAS).
    """
    volumeNode.SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(np.asarray(ijkToRas, dtype=np.float64)))
    slicer.util.updateVolumeFromArray(volumeNode, np.ascontiguousarray(array))
    if like is not None:
        volumeNode.SetAndObserveTransformNodeID(like.GetTransformNodeID())
    if volumeNode.GetDisplayNode() is None:
        volumeNode.CreateDefaultDisplayNodes()


def newImage(shapeZyx: tuple[int, int, int], dtype) -> tuple[vtk.vtkImageData, np.ndarray]:
    """A fresh single-component vtkImageData of ``shapeZyx`` and ``dtype`` and a writeable (z, y, x) numpy view of
    its voxels: DPNSLCore writes the output straight into it (``upsample(..., out=view)``), so the output volume
    exists once in memory, not as a numpy result plus its copy in the node."""
    image = vtk.vtkImageData()
    image.SetDimensions(int(shapeZyx[2]), int(shapeZyx[1]), int(shapeZyx[0]))
    image.AllocateScalars(numpy_support.get_vtk_array_type(np.dtype(dtype)), 1)
    view = numpy_support.vtk_to_numpy(image.GetPointData().GetScalars()).reshape(tuple(int(n) for n in shapeZyx))
    return image, view


def setVolumeImage(volumeNode, image: vtk.vtkImageData, ijkToRas: np.ndarray, *, like=None) -> None:
    """Give ``volumeNode`` the voxels ``image`` (taken, not copied) and its (4, 4) IJK-to-RAS matrix."""
    volumeNode.SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(np.asarray(ijkToRas, dtype=np.float64)))
    volumeNode.SetAndObserveImageData(image)
    if like is not None:
        volumeNode.SetAndObserveTransformNodeID(like.GetTransformNodeID())
    if volumeNode.GetDisplayNode() is None:
        volumeNode.CreateDefaultDisplayNodes()


def resampleToGrid(sourceNode, ijkToRas: np.ndarray, shapeZyx: tuple[int, int, int]) -> np.ndarray:
    """Sample ``sourceNode`` on another grid (trilinear, NaN outside the source), as a (z, y, x) float32 array.

    Exact (no blurring) when the target grid points coincide with source voxels, e.g. a thin-slice reference
    acquired on the upsampled grid. Parent transforms are not applied: both grids are taken in the same RAS.

    Args:
        sourceNode: scalar volume node to sample.
        ijkToRas: (4, 4) IJK-to-RAS of the target grid.
        shapeZyx: target array shape (z, y, x).
    """
    rasToSourceIjk = np.linalg.inv(ijkToRasArray(sourceNode))
    reslice = vtk.vtkImageReslice()
    reslice.SetInputData(sourceNode.GetImageData())  # Slicer image data: origin 0, spacing 1 (geometry in the node)
    reslice.SetResliceAxes(slicer.util.vtkMatrixFromArray(rasToSourceIjk @ np.asarray(ijkToRas, dtype=np.float64)))
    reslice.SetOutputOrigin(0.0, 0.0, 0.0)
    reslice.SetOutputSpacing(1.0, 1.0, 1.0)
    reslice.SetOutputExtent(0, shapeZyx[2] - 1, 0, shapeZyx[1] - 1, 0, shapeZyx[0] - 1)
    reslice.SetOutputScalarType(vtk.VTK_FLOAT)
    reslice.SetInterpolationModeToLinear()
    reslice.SetBackgroundLevel(float("nan"))
    reslice.Update()
    data = numpy_support.vtk_to_numpy(reslice.GetOutput().GetPointData().GetScalars())
    return data.reshape(shapeZyx).astype(np.float32, copy=True)
