"""MRML volume glue: geometry round trips, validation, resampling (real MRML nodes); the slice axis and the
output grid come from DPNSLCore's request and are tested in test_slicer_logic."""

from __future__ import annotations

import numpy as np
import pytest
from mrml_helpers import makeIjkToRas, requireSlicer, smoothVolume

slicer = requireSlicer()

from DPNSLLib import volumes  # noqa: E402


def test_ijk_to_ras_round_trip_keeps_rotation_and_origin(makeVolume):
    matrix = makeIjkToRas((0.7, 0.9, 3.0))
    node = makeVolume(np.zeros((3, 4, 5), np.float32), matrix)
    np.testing.assert_allclose(volumes.ijkToRasArray(node), matrix, atol=1e-12)
    np.testing.assert_allclose(volumes.spacingZyx(matrix), [3.0, 0.9, 0.7], atol=1e-12)


def test_set_volume_from_array_writes_voxels_geometry_and_transform(scene, makeVolume):
    source = makeVolume(np.zeros((2, 2, 2), np.float32), np.eye(4))
    transform = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
    source.SetAndObserveTransformNodeID(transform.GetID())
    target = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "target")
    array, matrix = smoothVolume((4, 5, 6)), makeIjkToRas((0.5, 0.6, 2.0))
    volumes.setVolumeFromArray(target, array, matrix, like=source)
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(target), array)
    np.testing.assert_allclose(volumes.ijkToRasArray(target), matrix, atol=1e-12)
    assert target.GetTransformNodeID() == transform.GetID()
    assert target.GetDisplayNode() is not None


def test_no_input_is_rejected_with_advice():
    with pytest.raises(ValueError, match=r"`inputNode` is None: select a scalar volume"):
        volumes.volumeArray(None)


def test_two_d_volume_is_rejected(makeVolume):
    node = makeVolume(np.zeros((1, 8, 9), np.float32), np.eye(4), "flat")
    with pytest.raises(ValueError, match=r"'flat' is 2-D \(dimensions \(9, 8, 1\)"):
        volumes.volumeArray(node)


def test_four_d_vector_volume_is_rejected(makeVolume):
    node = makeVolume(np.zeros((3, 4, 5, 2), np.float32), np.eye(4), "frames", "vtkMRMLVectorVolumeNode")
    with pytest.raises(ValueError, match=r"'frames' has 2 components per voxel \(a 4-D or vector volume\)"):
        volumes.volumeArray(node)


def test_multi_component_scalar_node_is_rejected(scene):
    import vtk

    image = vtk.vtkImageData()
    image.SetDimensions(5, 4, 3)
    image.AllocateScalars(vtk.VTK_FLOAT, 3)
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "rgb")
    node.SetAndObserveImageData(image)
    with pytest.raises(ValueError, match=r"'rgb' has 3 components per voxel \(a 4-D or vector volume\)"):
        volumes.volumeArray(node)


def test_label_map_is_rejected(makeVolume):
    node = makeVolume(np.zeros((3, 4, 5), np.uint8), np.eye(4), "seg", "vtkMRMLLabelMapVolumeNode")
    with pytest.raises(ValueError, match=r"got vtkMRMLLabelMapVolumeNode 'seg'; label maps"):
        volumes.volumeArray(node)


def test_volume_without_image_data_is_rejected(scene):
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "empty")
    with pytest.raises(ValueError, match=r"'empty' has no image data"):
        volumes.volumeArray(node)


def test_reused_node_must_have_the_right_class(scene):
    label = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "lab")
    with pytest.raises(ValueError, match=r"'lab' is a vtkMRMLLabelMapVolumeNode, expected a vtkMRMLScalarVolumeNode"):
        volumes.getOrCreateVolumeNode(scene, label, "x")
    assert volumes.getOrCreateVolumeNode(scene, None, "x").GetName().startswith("x")


def test_resample_on_coinciding_grid_is_exact_and_nan_outside(makeVolume):
    fine = makeIjkToRas((0.8, 0.7, 1.0))
    array = smoothVolume((9, 6, 5))
    reference = makeVolume(array, fine, "thin")
    target = fine.copy()
    target[:3, 3] = fine[:3, :3] @ np.array([1.0, 2.0, 3.0]) + fine[:3, 3]  # start at voxel (i=1, j=2, k=3)
    out = volumes.resampleToGrid(reference, target, (8, 4, 4))
    np.testing.assert_allclose(out[:6], array[3:9, 2:6, 1:5], rtol=1e-6, atol=1e-4)
    assert np.isnan(out[6:]).all()  # beyond the last reference slice
