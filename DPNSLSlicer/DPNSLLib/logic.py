"""The Qt-free logic: upsample a volume node and compare methods, returning MRML nodes.

``DPNSLLogic`` in DPNSL.py adds this class to Slicer's ScriptedLoadableModuleLogic; everything here runs
from the Python console and headless (slicer-core). DPNSLCore (hence torch) is imported on first use only.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from . import charts, parts, torchsetup
from .choices import METHODS, DegradationModel, DeviceChoice, enumValue
from .volumes import (
    checkScalarVolume,
    checkSliceAxis,
    ijkToRasArray,
    resampleToGrid,
    spacingZyx,
    upsampledIjkToRas,
    volumeArray,
)

ProgressFn = Callable[[float, str], None]
CancelFn = Callable[[], bool]


def importCore():
    """Import DPNSLCore, turning a missing PyTorch into advice instead of a bare ModuleNotFoundError."""
    try:
        import DPNSLCore
    except ModuleNotFoundError as error:
        if error.name == "torch":
            raise RuntimeError(
                "PyTorch is not installed: run DPNSLLogic().setupPythonRequirements() in the Python console, "
                "or click Upsample in the DPNSL module, which offers to install it."
            ) from error
        raise
    return DPNSLCore


def expectedSliceCount(nLr: int, scale: float) -> int:
    """HR slices for ``nLr`` observed ones: ceil((nLr - 1) * scale) + 1, DPNSLCore's grid rule (for the panel)."""
    return int(math.ceil((int(nLr) - 1) * float(scale) - 1e-9)) + 1


def checkMethods(methods: Sequence[str]) -> list[str]:
    """Validate method ids against :data:`METHODS`; returns them as a list.

    Raises:
        ValueError: empty, or an unknown method.
    """
    methods = [methods] if isinstance(methods, str) else list(methods)
    unknown = [m for m in methods if m not in METHODS]
    if not methods or unknown:
        raise ValueError(f"methods must be a non-empty selection of {list(METHODS)}, got {methods!r}")
    return methods


def _scaled(progress: ProgressFn | None, start: float, width: float) -> ProgressFn | None:
    """Progress callback that maps [0, 1] onto [start, start + width] of an outer task."""
    if progress is None:
        return None
    return lambda fraction, message: progress(start + width * float(fraction), message)


class SliceSuperResolutionLogic:
    """Upsampling and comparison on volume nodes; models are loaded once per (model, device) and cached."""

    def __init__(self) -> None:
        self._models: dict[tuple[str, str], object] = {}

    def setupPythonRequirements(self, askConfirmation: bool = True) -> bool:
        """Install PyTorch and DPNSLCore's extras after asking; see :func:`torchsetup.setupPythonRequirements`."""
        return torchsetup.setupPythonRequirements(askConfirmation)

    def resolveScale(self, inputNode, scale: float | None = None, spacing: float | None = None,
                     sliceAxis: int | None = None, degradation: str = "decimate") -> tuple[float, int]:
        """Scale factor and slice axis of a request, validated.

        Args:
            inputNode: the observed volume node.
            scale: HR slices per observed slice (> 1), or None when ``spacing`` is given.
            spacing: target slice spacing in mm (smaller than the input's), or None when ``scale`` is given.
            sliceAxis: numpy axis of the slices, None to detect it (largest spacing).
            degradation: "decimate" needs an integer scale.

        Returns:
            (scale, sliceAxis); a scale within 1e-6 of an integer is snapped to it.

        Raises:
            ValueError: missing/2-D/4-D input, both or neither of scale/spacing, scale <= 1, non-integer decimate.
        """
        checkScalarVolume(inputNode)
        axis = checkSliceAxis(sliceAxis, inputNode)
        kind = enumValue(degradation, DegradationModel, "degradation")
        current = float(spacingZyx(ijkToRasArray(inputNode))[axis])
        if (scale is None) == (spacing is None):
            raise ValueError("give exactly one of `scale` (e.g. 4) or `spacing` (target slice spacing in mm)")
        if spacing is not None:
            if not (np.isfinite(spacing) and spacing > 0):
                raise ValueError(f"`spacing` must be a positive number of mm, got {spacing}")
            scale = current / float(spacing)
        scale = float(scale)
        if abs(scale - round(scale)) < 1e-6:
            scale = float(round(scale))
        if not (np.isfinite(scale) and scale > 1):
            raise ValueError(
                f"`scale` must be > 1, got {scale:g}; use a factor such as 2.5, or a target spacing below the "
                f"current {current:.3g} mm"
            )
        if kind == "decimate" and scale != round(scale):
            raise ValueError(
                f"degradation 'decimate' keeps every s-th slice, so `scale` must be an integer, got {scale:.4g}; "
                "round it, or choose degradation 'sample'"
            )
        n = inputNode.GetImageData().GetDimensions()[2 - axis]
        if n < 2:
            raise ValueError(f"the slice axis has {n} slice; at least 2 are needed")
        return scale, axis

    def gridSummary(self, inputNode, scale: float | None = None, spacing: float | None = None,
                    sliceAxis: int | None = None, degradation: str = "decimate") -> str:
        """One line for the panel: '40 slices x 5.00 mm -> 157 slices x 1.250 mm (scale 4)', or what is wrong."""
        try:
            s, axis = self.resolveScale(inputNode, scale, spacing, sliceAxis, degradation)
        except ValueError as error:
            return str(error)
        n = inputNode.GetImageData().GetDimensions()[2 - axis]
        current = float(spacingZyx(ijkToRasArray(inputNode))[axis])
        axisName = "kji"[axis]
        return (f"{axisName} axis: {n} slices x {current:.3g} mm -> {expectedSliceCount(n, s)} slices x "
                f"{current / s:.4g} mm (scale {s:g})")

    def modelSpec(self, choice: str, checkpointPath: str | Path | None = None) -> str:
        """Model argument for :meth:`upsample` from the panel: "ct", "mr", or the checkpoint's path.

        Raises:
            ValueError: "checkpoint" without an existing file.
        """
        if choice in ("ct", "mr"):
            return choice
        if choice != "checkpoint":
            raise ValueError(f"`model` choice must be 'ct', 'mr' or 'checkpoint', got {choice!r}")
        path = Path(checkpointPath) if checkpointPath else None
        if path is None or not path.is_file():
            raise ValueError(f"checkpoint file not found: {str(path) if path else '(none selected)'}; pick a "
                             ".safetensors checkpoint")
        return str(path)

    def loadModel(self, model: object, device: str):
        """A loaded model for ``model`` (name or path) on ``device``, cached across runs.

        A module is returned as is; None stays None so that DPNSLCore picks the bundled model from the
        volume's intensities (CT if they look like Hounsfield units, else MR).
        """
        if model is None or not isinstance(model, (str, Path)):
            return model
        key = (str(model), device)
        if key not in self._models:
            self._models[key] = importCore().load_model(model, device)
        return self._models[key]

    def _run(self, array: np.ndarray, scale: float, method: str, degradation: str, thickness: float, model,
             device: str, axis: int, returnParts: bool, progress: ProgressFn | None, cancel: CancelFn | None):
        """One DPNSLCore.upsample call; the network gets the cached model and a device with CPU fallback."""
        core = importCore()
        options = dict(method=method, degradation=degradation, thickness=thickness, slice_axis=axis,
                       return_parts=returnParts, progress=progress, cancel=cancel)
        if method == "dpnsl":
            resolved, note = torchsetup.resolveDevice(enumValue(device, DeviceChoice, "device"))
            if note:
                logging.warning(note)
                if progress is not None:
                    progress(0.0, note)
            options.update(model=self.loadModel(model, resolved), device=resolved)
        return core.upsample(array, scale, **options)

    def upsample(self, inputNode, scale: float | None = None, *, spacing: float | None = None,
                 method: str = "dpnsl", degradation: str = "decimate", thickness: float = 1.0, model=None,
                 device: str = "auto", sliceAxis: int | None = None, outputNode=None, returnParts: bool = False,
                 progress: ProgressFn | None = None, cancel: CancelFn | None = None):
        """Upsample ``inputNode`` along its slice axis into a new (or the given) volume node.

        Args:
            inputNode: observed scalar volume node (any orientation; slice axis = largest spacing by default).
            scale / spacing: give one: scale factor > 1, or target slice spacing in mm.
            method: "dpnsl", "linear" or "cubic".
            degradation: "decimate" (integer scale), "sample" or "profile"; thickness: profile width in
                observed slice spacings.
            model: "ct", "mr", a checkpoint path or a loaded model (DP-NSL only); None guesses from intensities.
            device: "auto", "cpu" or "cuda" (falls back to the CPU with a warning when CUDA is absent).
            sliceAxis: numpy axis (0 = k, 1 = j, 2 = i) or None to detect.
            outputNode: volume to overwrite (never the input), or None for a new one.
            returnParts: also make anchor, detail, routing and arg-max expert nodes.
            progress: ``progress(fraction, message)``; cancel: return True to stop (raises DPNSLCore.Cancelled).

        Returns:
            The output volume node, or ``(outputNode, PartNodes)`` when ``returnParts`` is True.

        Raises:
            ValueError: invalid input, output, scale or choices (the message says how to fix it).
        """
        if outputNode is not None and inputNode is not None and outputNode.GetID() == inputNode.GetID():
            raise ValueError(f"`outputNode` is the input volume '{inputNode.GetName()}': DPNSL never overwrites "
                             "its input; pass outputNode=None to create a new volume")
        checkMethods([method])
        s, axis = self.resolveScale(inputNode, scale, spacing, sliceAxis, degradation)
        kind = enumValue(degradation, DegradationModel, "degradation")
        result = self._run(volumeArray(inputNode), s, method, kind, thickness, model, device, axis, returnParts,
                           progress, cancel)
        ijkToRas = upsampledIjkToRas(ijkToRasArray(inputNode), axis, s)
        info = {"scale": f"{s:g}", "method": method, "degradation": kind, "sliceAxis": axis,
                "consistencyError": f"{result.consistency_error:.6g}"}
        output = parts.writeOutput(inputNode.GetScene(), outputNode, inputNode, result.volume, ijkToRas,
                                   f"{inputNode.GetName()}_x{s:g}_{method}", info)
        if not returnParts:
            parts.dropAllParts(output)
            return output
        return output, parts.writeParts(output, inputNode, result, ijkToRas)

    def compare(self, inputNode, referenceNode=None, scale: float | None = None, *, spacing: float | None = None,
                methods: Sequence[str] = METHODS, degradation: str = "decimate", thickness: float = 1.0,
                model=None, device: str = "auto", sliceAxis: int | None = None, tableNode=None, chartNode=None,
                progress: ProgressFn | None = None, cancel: CancelFn | None = None):
        """Per-slice MAE of each method against a thin-slice reference, as a table and a chart.

        With ``referenceNode=None`` the input plays the thin-slice truth: it is downsampled by ``scale`` with
        ``degradation`` (DPNSLCore.simulate_acquisition), upsampled back, and compared. Otherwise the input is
        upsampled and the reference is sampled on the output grid (NaN outside it, ignored).

        Returns:
            (tableNode, chartNode): columns "slice", "position (mm)" and one per method; one series per method.

        Raises:
            ValueError: invalid inputs or scale; reference equal to the input or under another transform.
        """
        methods = checkMethods(methods)
        s, axis = self.resolveScale(inputNode, scale, spacing, sliceAxis, degradation)
        kind = enumValue(degradation, DegradationModel, "degradation")
        array, ijkToRas = volumeArray(inputNode), ijkToRasArray(inputNode)
        if referenceNode is None:
            observed, reference = importCore().simulate_acquisition(array, s, degradation=kind, thickness=thickness,
                                                                    slice_axis=axis)
            step = float(spacingZyx(ijkToRas)[axis])
            title = f"{inputNode.GetName()} simulated x{s:g} {kind}"
        else:
            checkScalarVolume(referenceNode, "referenceNode")
            if referenceNode.GetID() == inputNode.GetID():
                raise ValueError("`referenceNode` is the input itself; pick the thin-slice scan, or None to simulate")
            if referenceNode.GetTransformNodeID() != inputNode.GetTransformNodeID():
                raise ValueError("`referenceNode` and `inputNode` are under different transforms; harden them first")
            observed, reference = array, None
            step = float(spacingZyx(ijkToRas)[axis]) / s
            title = f"{inputNode.GetName()} x{s:g} vs {referenceNode.GetName()}"
        curves: dict[str, np.ndarray] = {}
        for index, method in enumerate(methods):
            part = _scaled(progress, index / len(methods), 1.0 / len(methods))
            result = self._run(observed, s, method, kind, thickness, model, device, axis, False, part, cancel)
            if reference is None:
                reference = resampleToGrid(referenceNode, upsampledIjkToRas(ijkToRas, axis, s), result.volume.shape)
            curves[method] = charts.perSliceMae(result.volume, reference, axis)
        positions = step * np.arange(reference.shape[axis])
        scene = inputNode.GetScene()
        table = charts.fillMaeTable(scene, tableNode, positions, curves, f"{inputNode.GetName()}_x{s:g}_MAE")
        chart = charts.fillMaeChart(scene, chartNode, table, list(curves), f"Per-slice MAE: {title}")
        return table, chart
