"""Colour tables for the parts: a diverging map for the signed detail, a ramp for router weights, expert labels.

The tables are plain ``vtkMRMLColorTableNode`` s built here (no dependence on which default tables a scene
happens to hold), found again by name so repeated runs reuse them.
"""

from __future__ import annotations

import numpy as np

DIVERGING_NAME = "DPNSL Diverging"
WEIGHT_NAME = "DPNSL Router weight"
EXPERTS_NAME = "DPNSL Experts"

#: Colour (name, RGB) per B-spline degree of an expert; one colour per degree so maps read the same everywhere.
DEGREE_COLORS: dict[int, tuple[str, tuple[float, float, float]]] = {
    1: ("grey", (0.60, 0.60, 0.60)),
    2: ("orange", (0.95, 0.55, 0.10)),
    3: ("sky blue", (0.25, 0.60, 0.95)),
    4: ("magenta", (0.85, 0.20, 0.65)),
    5: ("green", (0.30, 0.75, 0.30)),
}
_DEGREE_WORDS = {1: "linear", 2: "quadratic", 3: "cubic", 4: "quartic", 5: "quintic"}


def divergingColors(n: int = 256) -> np.ndarray:
    """(n, 4) RGBA ramp blue -> white -> red, white at the middle entry: zero maps to white."""
    blue, white, red = np.array([0.23, 0.30, 0.75]), np.ones(3), np.array([0.71, 0.02, 0.15])
    t = np.linspace(-1.0, 1.0, n)[:, None]
    rgb = np.where(t < 0, white + (blue - white) * (-t), white + (red - white) * t)
    return np.concatenate([rgb, np.ones((n, 1))], axis=1)


def weightColors(n: int = 256) -> np.ndarray:
    """(n, 4) RGBA heat ramp black -> red -> yellow -> white for router weights in [0, 1]."""
    t = np.linspace(0.0, 1.0, n)
    rgb = np.stack([np.clip(3 * t, 0, 1), np.clip(3 * t - 1, 0, 1), np.clip(3 * t - 2, 0, 1)], axis=1)
    return np.concatenate([rgb, np.ones((n, 1))], axis=1)


def expertLabel(index: int, degree: int) -> str:
    """Human name of expert ``index`` (0-based) with B-spline ``degree``, e.g. 'expert 2: cubic (degree 3)'."""
    word = _DEGREE_WORDS.get(degree, f"degree {degree}")
    return f"expert {index + 1}: {word} (degree {degree})"


def expertColors(degrees: tuple[int, ...]) -> tuple[list[str], np.ndarray]:
    """Names and (E + 1, 4) RGBA colours of the arg-max label map; label 0 is transparent background.

    Label ``e + 1`` is expert ``e``; its colour is fixed by its degree (see :data:`DEGREE_COLORS`).
    """
    names = ["background"]
    rgba = [(0.0, 0.0, 0.0, 0.0)]
    for index, degree in enumerate(degrees):
        colorName, rgb = DEGREE_COLORS.get(int(degree), ("white", (1.0, 1.0, 1.0)))
        names.append(f"{expertLabel(index, int(degree))} - {colorName}")
        rgba.append((*rgb, 1.0))
    return names, np.asarray(rgba, dtype=np.float64)


def getOrCreateColorTable(scene, name: str, rgba: np.ndarray, names: list[str] | None = None):
    """Find the ``vtkMRMLColorTableNode`` called ``name`` in ``scene`` (or add it) and fill it with ``rgba``.

    Args:
        scene: the MRML scene.
        name: node name, also the key used to find it again.
        rgba: (N, 4) colours in [0, 1].
        names: optional N colour names (label maps show them); default 'c0'..'cN-1'.

    Returns:
        The colour table node, with exactly N colours.
    """
    node = scene.GetFirstNode(name, "vtkMRMLColorTableNode")
    if node is None:
        node = scene.AddNewNodeByClass("vtkMRMLColorTableNode", name)
    wasModifying = node.StartModify()  # one Modified event for the whole table, not one per SetColor
    try:
        node.SetTypeToUser()
        node.SetNumberOfColors(len(rgba))
        node.GetLookupTable().SetTableRange(0, len(rgba) - 1)
        for index, color in enumerate(np.asarray(rgba, dtype=np.float64)):
            label = names[index] if names is not None else f"c{index}"
            node.SetColor(index, label, *(float(c) for c in color))
        node.SetAttribute("Category", "DPNSL")
    finally:
        node.EndModify(wasModifying)
    return node


def divergingTable(scene):
    """The shared blue-white-red table for signed volumes (window centred at zero)."""
    return getOrCreateColorTable(scene, DIVERGING_NAME, divergingColors())


def weightTable(scene):
    """The shared heat table for router weights (window fixed to [0, 1])."""
    return getOrCreateColorTable(scene, WEIGHT_NAME, weightColors())


def expertsTable(scene, degrees: tuple[int, ...]):
    """The label table of the arg-max expert map for these expert degrees."""
    names, rgba = expertColors(tuple(degrees))
    return getOrCreateColorTable(scene, EXPERTS_NAME, rgba, names)
