"""Render DPNSL_layout.png: the module's results layout, composed headless with slicer-core (no Slicer GUI).

It runs the module's own code (DPNSLLib: upsample with parts, custom layout, view assignment), then takes each
slice view's composited RGBA image from its vtkMRMLSliceLogic, the image Slicer's slice views draw, and
arranges the views as the layout does. Colour bars stand in for Slicer's colour legends (those are drawn by a
displayable manager that needs a render window). Needs: pip install slicer-core matplotlib.

Usage:
    python Resources/Screenshots/render_layout.py [VOLUME] [--scale 5] [--model ct] [--crop 160] [--out PNG]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import slicer  # noqa: E402
import vtk  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402
from vtk.util import numpy_support  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "DPNSLSlicer"))
from DPNSLLib import colors, display  # noqa: E402
from DPNSLLib.logic import SliceSuperResolutionLogic  # noqa: E402
from DPNSLLib.volumes import ijkToRasArray, setVolumeFromArray  # noqa: E402

TITLES = {"DPNSLInput": "Input (acquired slices)", "DPNSLAnchor": "Range anchor B y",
          "DPNSLDetail": "Null-space detail (I - P A) f", "DPNSLOutput": "Output = anchor + detail",
          "DPNSLExperts": "Arg-max expert"}


def loadCropped(scene, path: Path, crop: int):
    """Read a volume with Slicer's archetype reader and keep a centred in-plane crop (geometry kept)."""
    full = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "full")
    storage = scene.AddNewNodeByClass("vtkMRMLVolumeArchetypeStorageNode")
    storage.SetFileName(str(path))
    if not storage.ReadData(full):
        raise SystemExit(f"cannot read {path}")
    array, matrix = slicer.util.arrayFromVolume(full), ijkToRasArray(full)
    j0, i0 = (max(0, (n - crop) // 2) for n in array.shape[1:])
    matrix[:3, 3] = (matrix @ [i0, j0, 0, 1])[:3]
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", path.name.split(".")[0])
    setVolumeFromArray(node, array[:, j0:j0 + crop, i0:i0 + crop].astype(np.float32), matrix)
    display_ = node.GetDisplayNode()
    display_.SetAndObserveColorNodeID("vtkMRMLColorTableNodeGrey")
    display_.AutoWindowLevelOff()
    display_.SetWindowLevel(1500, 0)  # a CT window that shows bone and soft tissue
    scene.RemoveNode(full)
    return node


def viewImage(sliceLogic, size: int) -> np.ndarray:
    """(size, size, 3) uint8 composited image of one slice view, as Slicer would draw it."""
    sliceLogic.GetSliceNode().SetDimensions(size, size, 1)
    sliceLogic.FitSliceToAll()
    connection = sliceLogic.GetImageDataConnection()
    connection.GetProducer().Update()
    image = connection.GetProducer().GetOutputDataObject(connection.GetIndex())
    width, height, _ = image.GetDimensions()
    rgba = numpy_support.vtk_to_numpy(image.GetPointData().GetScalars()).reshape(height, width, -1)[::-1]
    return (rgba[..., :3] * (rgba[..., 3:] / 255.0)).astype(np.uint8)  # over black; VTK rows run bottom-up


def render(volume: Path, scale: float, model: str, crop: int, out: Path) -> None:
    scene = slicer.vtkMRMLScene()
    slicer.mrmlScene = scene
    scene.RegisterNodeClass(slicer.vtkMRMLColorLegendDisplayNode())
    app = slicer.vtkMRMLApplicationLogic()
    app.SetMRMLScene(scene)
    colorLogic = slicer.vtkMRMLColorLogic()
    colorLogic.SetMRMLScene(scene)  # default tables (Grey)
    layoutLogic = slicer.vtkMRMLLayoutLogic()
    layoutLogic.SetMRMLScene(scene)

    inputNode = loadCropped(scene, volume, crop)
    _, nodes = SliceSuperResolutionLogic().upsample(inputNode, scale, method="dpnsl", model=model, device="auto",
                                                    returnParts=True)
    display.applyLayout(scene, True, len(nodes.routing))
    logics = vtk.vtkCollection()  # what Slicer's layout manager does when it builds the views
    for name in display.viewNames(True, len(nodes.routing)):
        sliceLogic = slicer.vtkMRMLSliceLogic()
        sliceLogic.SetMRMLApplicationLogic(app)
        sliceLogic.SetMRMLScene(scene)
        sliceLogic.SetSliceNode(scene.GetSingletonNode(name, "vtkMRMLSliceNode"))
        logics.AddItem(sliceLogic)
    app.SetSliceLogics(logics)
    orientation = display.throughPlaneOrientation(ijkToRasArray(inputNode), 0)
    names = display.assignViews(app, nodes, True, True, orientation)
    weights = f"model '{model}'" if model in ("ct", "mr") or Path(model).is_file() else \
        f"untrained '{model}' preset: layout illustration only"
    compose(app, nodes, names, out, f"{volume.name}, x{scale:g}, {orientation.lower()} views, {weights}")


def compose(app, nodes, names: list[str], out: Path, subtitle: str) -> None:
    """Arrange the view images like the layout: parts on top, one view per expert below, with colour bars."""
    top, bottom = names[:4], names[4:]
    columns = max(len(top), len(bottom))
    fig, axes = plt.subplots(2, columns, figsize=(3.2 * columns, 7.2), facecolor="#1e1e1e")
    for row, row_names in enumerate((top, bottom)):
        for column in range(columns):
            ax = axes[row, column]
            ax.axis("off")
            if column >= len(row_names):
                continue
            name = row_names[column]
            ax.imshow(viewImage(app.GetSliceLogicByLayoutName(name), 320))
            title = TITLES.get(name) or colors.expertLabel(int(name[-1]) - 1, nodes.expertDegrees[int(name[-1]) - 1])
            ax.set_title(title, color="white", fontsize=9, backgroundcolor="#6e6e6e")
    detail = nodes.detail.GetDisplayNode()
    half = detail.GetWindow() / 2
    _colorbar(fig, axes[0, 2], colors.divergingColors(), -half, half, "detail (HU)")
    _colorbar(fig, axes[1, len(bottom) - 2], colors.weightColors(), 0.0, 1.0, "router weight")
    fig.suptitle(f"DP-NSL results layout, rendered headless with slicer-core\n{subtitle}", color="white", fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    fig.savefig(out, dpi=110, facecolor=fig.get_facecolor())
    print(f"wrote {out}")


def _colorbar(fig, ax, rgba: np.ndarray, low: float, high: float, label: str) -> None:
    mappable = plt.cm.ScalarMappable(cmap=ListedColormap(rgba[:, :3]), norm=plt.Normalize(low, high))
    bar = fig.colorbar(mappable, cax=ax.inset_axes([0.86, 0.08, 0.04, 0.84]))
    bar.set_label(label, color="white", fontsize=8)
    bar.ax.tick_params(colors="white", labelsize=7)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("volume", nargs="?", type=Path,
                        default=REPO / "DPNSLCore/resources/sample_data/ct_lung1_5mm_crop.nii.gz")
    parser.add_argument("--scale", type=float, default=5.0)
    parser.add_argument("--model", default="ct")
    parser.add_argument("--crop", type=int, default=192)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("DPNSL_layout.png"))
    args = parser.parse_args()
    render(args.volume, args.scale, args.model, args.crop, args.out)
