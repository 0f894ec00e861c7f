"""Write an UpsampleResult into volume nodes: the output, and its parts kept as node references of the output.

The output node references its parts (roles below), so a second run into the same output reuses the same
part nodes, and the links survive saving and reloading the scene.
"""

from __future__ import annotations

import numpy as np

from . import display
from .colors import expertLabel
from .volumes import getOrCreateVolumeNode, setVolumeFromArray, setVolumeImage

ROLE_INPUT = "DPNSL.input"
ROLE_ANCHOR = "DPNSL.anchor"
ROLE_DETAIL = "DPNSL.detail"
ROLE_ROUTING = "DPNSL.routing"
ROLE_EXPERTS = "DPNSL.experts"


def matchDisplay(node, like) -> None:
    """Give ``node`` the window/level and colours of ``like`` so both read the same side by side."""
    source, target = like.GetDisplayNode(), node.GetDisplayNode()
    if source is None or target is None:
        return
    target.SetAndObserveColorNodeID(source.GetColorNodeID())
    target.AutoWindowLevelOff()
    target.SetWindowLevel(source.GetWindow(), source.GetLevel())


def writeOutput(scene, outputNode, inputNode, voxels, ijkToRas: np.ndarray, name: str, info: dict):
    """Fill the output volume (a new node when ``outputNode`` is None) and tag it with ``info`` attributes.

    ``voxels``: a (z, y, x) array (copied) or a vtkImageData (taken as the node's image, no copy).
    """
    outputNode = getOrCreateVolumeNode(scene, outputNode, name)
    if isinstance(voxels, np.ndarray):
        setVolumeFromArray(outputNode, voxels, ijkToRas, like=inputNode)
    else:
        setVolumeImage(outputNode, voxels, ijkToRas, like=inputNode)
    matchDisplay(outputNode, inputNode)
    outputNode.SetNodeReferenceID(ROLE_INPUT, inputNode.GetID())
    for key, value in info.items():
        outputNode.SetAttribute(f"DPNSL.{key}", str(value))
    return outputNode


def argmaxLabels(routing) -> np.ndarray:
    """1-based index of the strongest expert per voxel as uint8, computed slice by slice: a whole-volume
    ``np.argmax`` would hold an int64 array (8 bytes a voxel) as large as eight output volumes."""
    routing = np.asarray(routing)
    labels = np.empty(routing.shape[1:], dtype=np.uint8)
    for k in range(routing.shape[1]):
        labels[k] = np.argmax(routing[:, k], axis=0).astype(np.uint8) + 1
    return labels


def _part(outputNode, role: str, index: int, name: str, array, ijkToRas, className="vtkMRMLScalarVolumeNode"):
    """Reuse or create the ``index``-th part node of ``role`` and write ``array`` into it."""
    node = outputNode.GetNthNodeReference(role, index)
    if node is not None and node.GetClassName() != className:
        node = None
    node = getOrCreateVolumeNode(outputNode.GetScene(), node, name, className)
    setVolumeFromArray(node, array, ijkToRas, like=outputNode)
    outputNode.SetNthNodeReferenceID(role, index, node.GetID())
    return node


def _dropParts(outputNode, role: str, keep: int) -> None:
    """Remove the part nodes of ``role`` beyond the first ``keep`` (e.g. fewer experts than last run)."""
    scene = outputNode.GetScene()
    for index in reversed(range(keep, outputNode.GetNumberOfNodeReferences(role))):
        stale = outputNode.GetNthNodeReference(role, index)
        outputNode.RemoveNthNodeReferenceID(role, index)
        if stale is not None:
            scene.RemoveNode(stale)


def writeParts(outputNode, inputNode, result, ijkToRas: np.ndarray, step=None) -> display.PartNodes:
    """Anchor, detail, one routing map per expert and the arg-max expert label map of ``result``.

    Args:
        outputNode: the output volume the parts belong to (holds the references).
        inputNode: the observed volume (for display settings).
        result: a DPNSLCore.UpsampleResult computed with ``return_parts=True``.
        ijkToRas: (4, 4) IJK-to-RAS of the output grid.
        step: called as ``step(message)`` before each part is written (progress, and the place to cancel).

    Returns:
        The part nodes; routing/expertLabel are empty/None for methods without a router.
    """
    base = outputNode.GetName()
    step = step or (lambda message: None)
    nodes = display.PartNodes(input=inputNode, output=outputNode, expertDegrees=tuple(result.expert_degrees))
    step("writing the range anchor")
    if result.anchor is not None:
        nodes.anchor = _part(outputNode, ROLE_ANCHOR, 0, f"{base}_anchor", result.anchor, ijkToRas)
        matchDisplay(nodes.anchor, inputNode)
    step("writing the null-space detail")
    if result.detail is not None:
        nodes.detail = _part(outputNode, ROLE_DETAIL, 0, f"{base}_detail", result.detail, ijkToRas)
        display.styleSigned(nodes.detail, "Null-space detail")
    routing = [] if result.routing is None else list(result.routing)
    degrees = tuple(result.expert_degrees) or tuple(range(1, len(routing) + 1))
    for index, weights in enumerate(routing):
        step(f"writing routing map {index + 1}/{len(routing)}")
        node = _part(outputNode, ROLE_ROUTING, index, f"{base}_routing_e{index + 1}_d{degrees[index]}", weights,
                     ijkToRas)
        display.styleWeight(node, expertLabel(index, degrees[index]))
        nodes.routing.append(node)
    _dropParts(outputNode, ROLE_ROUTING, len(routing))
    if routing:
        step("computing the arg-max expert map")
        labels = argmaxLabels(result.routing)
        nodes.expertLabel = _part(outputNode, ROLE_EXPERTS, 0, f"{base}_experts", labels, ijkToRas,
                                  "vtkMRMLLabelMapVolumeNode")
        display.styleExpertLabels(nodes.expertLabel, degrees)
        nodes.expertDegrees = degrees
        outputNode.SetAttribute("DPNSL.expertDegrees", ",".join(str(d) for d in degrees))
    else:
        _dropParts(outputNode, ROLE_EXPERTS, 0)
    return nodes


def readParts(outputNode) -> display.PartNodes:
    """The part nodes an earlier run attached to ``outputNode`` (e.g. after reloading a scene)."""
    count = outputNode.GetNumberOfNodeReferences(ROLE_ROUTING)
    degrees = tuple(int(d) for d in (outputNode.GetAttribute("DPNSL.expertDegrees") or "").split(",") if d)
    return display.PartNodes(
        input=outputNode.GetNodeReference(ROLE_INPUT),
        output=outputNode,
        anchor=outputNode.GetNodeReference(ROLE_ANCHOR),
        detail=outputNode.GetNodeReference(ROLE_DETAIL),
        routing=[outputNode.GetNthNodeReference(ROLE_ROUTING, i) for i in range(count)],
        expertLabel=outputNode.GetNodeReference(ROLE_EXPERTS),
        expertDegrees=degrees,
    )


def dropAllParts(outputNode) -> None:
    """Remove the parts of an earlier run from ``outputNode`` (they would no longer match its voxels)."""
    for role in (ROLE_ANCHOR, ROLE_DETAIL, ROLE_ROUTING, ROLE_EXPERTS):
        _dropParts(outputNode, role, 0)
