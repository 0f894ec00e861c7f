"""The Qt-free logic: upsample a volume node and compare methods, returning MRML nodes.

``DPNSLLogic`` in DPNSL.py adds this class to Slicer's ScriptedLoadableModuleLogic; everything here runs
from the Python console and headless (slicer-core). DPNSLCore (hence torch) is imported on first use only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import slicer

from . import charts, parts, torchsetup
from .choices import METHODS, DegradationModel, DeviceChoice, ProfileShape, enumValue
from .volumes import checkScalarVolume, ijkToRasArray, newImage, resampleToGrid, spacingZyx, volumeArray

ProgressFn = Callable[[float, str], None]
#: The network's tiling inside Slicer: memory first, since the scene already holds the volumes. Measured on a
#: 512x512x100 CT at x4 (output 0.19 GiB, 2 threads, Resources/Results/slicer_memory.py): peak 0.30 GiB beyond the
#: scene (1.6x the output) and 86 s, 0.23 GiB still held after the click; 64-voxel tiles of 8 slices: 0.43 GiB,
#: 83 s; DPNSLCore's default (224, 48): 1.35 GiB, 65 s. Handing freed memory back after each tile keeps 0.09 GiB
#: less after the click. The output is the same (the tiling never changes the result).
SLICER_TILING = {"tile_size": 32, "z_window": 16, "release_memory": True}
CancelFn = Callable[[], bool]


def importCore():
    """Import DPNSLCore, turning a missing PyTorch into advice instead of a bare ModuleNotFoundError."""
    unsupported = torchsetup.unsupportedPython()
    if unsupported:
        raise RuntimeError(unsupported)
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


def runRecordJson(result, inputShape, spacing, inputName: str) -> str:
    """The run's provenance record (the same builder as the command line's ``<output>.json``), as JSON text for the
    output node's ``DPNSL.record`` attribute."""
    import json

    from DPNSLCore.inference.record import run_record

    record = run_record(result, input_shape=tuple(inputShape), input_spacing_zyx=tuple(spacing), source=inputName,
                        command="DPNSLLogic().upsample (3D Slicer)")
    return json.dumps(record, default=str)


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


class _Stages:
    """Progress over a whole run: the computation takes [0, 0.9], then each writing stage reports its name; every
    stage, and the end, checks ``cancel`` first (raising DPNSLCore.Cancelled), so a Cancel is honoured until the
    end. A cancelled run removes what it created; an output node it was given keeps the new voxels, without parts."""

    def __init__(self, progress: ProgressFn | None, cancel: CancelFn | None, count: int) -> None:
        self.progress, self.cancel, self.count, self.seen = progress, cancel, max(count, 1), 0
        self.compute = _scaled(progress, 0.0, 0.9)

    def __call__(self, message: str) -> None:
        if self.cancel is not None and self.cancel():
            raise importCore().Cancelled(f"cancelled before {message}")
        self.seen += 1
        if self.progress is not None:
            self.progress(min(0.9 + 0.1 * self.seen / (self.count + 1), 0.99), message)

    def finish(self) -> None:
        """The last check for a Cancel (raising DPNSLCore.Cancelled), then 100 %."""
        if self.cancel is not None and self.cancel():
            raise importCore().Cancelled("cancelled at the end")
        if self.progress is not None:
            self.progress(1.0, "done")


class SliceSuperResolutionLogic:
    """Upsampling and comparison on volume nodes; models are loaded once per (model, device) and cached."""

    def __init__(self) -> None:
        self._models: dict[tuple[str, str], object] = {}

    def setupPythonRequirements(self, askConfirmation: bool = True) -> bool:
        """Install PyTorch and DPNSLCore's extras after asking; see :func:`torchsetup.setupPythonRequirements`."""
        return torchsetup.setupPythonRequirements(askConfirmation)

    def plan(self, inputNode, scale: float | None = None, spacing: float | None = None, sliceAxis: int | None = None,
             degradation: str = "auto", thickness: float | None = None, *, profile: str | None = None,
             thicknessMm: float | None = None, model=None):
        """Resolve a request with DPNSLCore's one request object (``DPNSLCore.UpsampleRequest``): slice axis, exact
        scale, acquisition model and output grid, from the node's own IJK-to-RAS spacing. Needs no PyTorch.

        ``thickness`` (slice spacings) or ``thicknessMm``: the slice profile's width; neither: the slice spacing.
        ``model`` ("ct", "mr", a checkpoint path or a loaded model): with ``degradation="auto"`` its recorded
        training acquisition applies, as in the run itself (read from the file header, without PyTorch).

        Raises:
            ValueError: missing/2-D/4-D input, both or neither of scale/spacing, scale <= 1, non-integer decimate.
        """
        checkScalarVolume(inputNode)
        kind = enumValue(degradation, DegradationModel, "degradation")
        try:
            from DPNSLCore.inference.request import UpsampleRequest
            from DPNSLCore.resources import model_acquisition
        except ModuleNotFoundError as error:
            raise RuntimeError("DPNSLCore is not importable: install the DPNSL extension, or see the README's "
                               "'From a source checkout' steps") from error
        request = UpsampleRequest(scale=scale, spacing=spacing, degradation=kind, thickness=thickness,
                                  thickness_mm=thicknessMm,
                                  profile=None if profile is None else enumValue(profile, ProfileShape, "profile"),
                                  slice_axis="auto" if sliceAxis is None else sliceAxis)
        if isinstance(model, (str, Path)):
            trained = model_acquisition(model)
        else:
            trained = getattr(getattr(model, "config", None), "acquisition", None)
        shape = slicer.util.arrayFromVolume(inputNode).shape
        return request.resolve(shape, spacing_zyx=tuple(spacingZyx(ijkToRasArray(inputNode))),
                               trained_acquisition=trained)

    def gridSummary(self, inputNode, scale: float | None = None, spacing: float | None = None,
                    sliceAxis: int | None = None, degradation: str = "auto", thickness: float | None = None, *,
                    profile: str | None = None, thicknessMm: float | None = None, model=None) -> str:
        """One line for the panel: 'k axis: 48 slices x 5 mm -> 236 slices x 1 mm (scale 5), box profile, 5 mm
        thick every 5 mm'."""
        try:
            plan = self.plan(inputNode, scale, spacing, sliceAxis, degradation, thickness, profile=profile,
                             thicknessMm=thicknessMm, model=model)
        except ValueError as error:
            return str(error)
        return f"{'kji'[plan.slice_axis]} axis: " + plan.describe().split(": ", 1)[1]

    def modelSpec(self, choice: str, checkpointPath: str | Path | None = None) -> str:
        """Model argument for :meth:`upsample` from the panel: "ct", "mr", or the checkpoint's path.

        Raises:
            ValueError: "checkpoint" without an existing file.
        """
        if choice in ("ct", "mr"):
            return choice
        if choice != "checkpoint":
            raise ValueError(f"`model` choice must be 'ct', 'mr' or 'checkpoint', got {choice!r}")
        # the parameter node's unset Path() is Path("."): no checkpoint chosen, not a file called "."
        path = Path(checkpointPath) if checkpointPath and str(checkpointPath) not in ("", ".") else None
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
            self._models[key] = importCore().open_model(model, device)  # says where it came from
        return self._models[key]

    def _run(self, array: np.ndarray, plan, method: str, model, device: str, returnParts: bool,
             progress: ProgressFn | None, cancel: CancelFn | None, adapt: float | None = None, out=None,
             tiling=None, destripe: bool = True, calibrate: bool = True, spacing=None, ensemble: int = 1):
        """One DPNSLCore.upsample call with ``plan``'s axis, scale and acquisition (resolved with the model's
        recorded acquisition by :meth:`plan`, so the panel's line and the run agree); the network gets the cached
        model. ``spacing``: the array's voxel size (mm, numpy order), which adaptation and calibration read."""
        core = importCore()
        if spacing is not None:  # only the voxel size travels: the output grid is the plan's
            array = core.Volume(array, core.Geometry.from_spacing_zyx(spacing))
        options = dict(method=method, degradation=plan.degradation, thickness=plan.thickness, profile=plan.profile,
                       slice_axis=plan.slice_axis, return_parts=returnParts, progress=progress, cancel=cancel,
                       output_dtype="input", out=out,  # int16 in, int16 out: half of float32
                       tiling=SLICER_TILING if tiling is None else tiling)
        if method == "dpnsl":
            device = enumValue(device, DeviceChoice, "device")
            options.update(model=self.loadModel(model, device), device=device, adapt=adapt or None,
                           destripe=destripe, calibrate=calibrate, ensemble=ensemble)
        return core.upsample(array, plan.scale, **options)

    def upsample(self, inputNode, scale: float | None = None, *, spacing: float | None = None,
                 method: str = "dpnsl", degradation: str = "auto", thickness: float | None = None,
                 thicknessMm: float | None = None, profile: str | None = None, model=None, device: str = "auto",
                 sliceAxis: int | None = None, outputNode=None, returnParts: bool = False,
                 progress: ProgressFn | None = None, cancel: CancelFn | None = None, adapt: float | None = None,
                 tiling=None, destripe: bool = True, calibrate: bool = True, ensemble: int = 1):
        """Upsample ``inputNode`` along its slice axis into a new (or the given) volume node.

        Args:
            inputNode: observed scalar volume node (any orientation; slice axis = largest spacing by default).
            scale / spacing: give one: scale factor > 1, or target slice spacing in mm.
            method: "dpnsl", "linear" or "cubic".
            degradation: "auto" (the model's training acquisition when it learnt slice profiles, else decimate for
                integer scales and sample otherwise), "decimate", "sample" or "profile"; profile: "box" or
                "gaussian"; thickness (slice spacings) or thicknessMm: its width, by default the slice spacing.
            model: "ct", "mr", a checkpoint path or a loaded model (DP-NSL only); None guesses from intensities.
            device: "auto", "cpu" or "cuda" (DPNSLCore's policy: "cuda" without CUDA is an error).
            sliceAxis: numpy axis (0 = k, 1 = j, 2 = i) or None to detect.
            outputNode: volume to overwrite (never the input), or None for a new one.
            returnParts: also make anchor, detail, routing and arg-max expert nodes.
            progress: ``progress(fraction, message)``; cancel: return True to stop (raises DPNSLCore.Cancelled).
            adapt: seconds of self-supervised adaptation of a copy of the model to this volume (DP-NSL only;
                None: off), see DPNSLCore.inference.adapt.
            tiling: DPNSLCore.TilingOptions (or a dict of its fields): the network's working memory, never the
                result; None: :data:`SLICER_TILING` (small tiles: memory first inside Slicer).
            destripe: remove the part of the network's detail locked to the slice phase (DPNSLCore.ops.destripe;
                A x = y still holds); False keeps the raw network detail.
            calibrate: fit one gain of the network's detail to this volume on its own in-plane axes first
                (DPNSLCore.inference.calibrate; DP-NSL only; A x = y holds for any gain).
            ensemble: 1 (off), 2, 4 or 8: average the network's estimate over that many in-plane flips/transposes
                (DPNSLCore.inference.ensemble; that many times the network's time; A x = y still holds).

        Returns:
            The output volume node, or ``(outputNode, PartNodes)`` when ``returnParts`` is True.

        Raises:
            ValueError: invalid input, output, scale or choices (the message says how to fix it).
        """
        if outputNode is not None and inputNode is not None and outputNode.GetID() == inputNode.GetID():
            raise ValueError(f"`outputNode` is the input volume '{inputNode.GetName()}': DPNSL never overwrites "
                             "its input; pass outputNode=None to create a new volume")
        checkMethods([method])
        plan = self.plan(inputNode, scale, spacing, sliceAxis, degradation, thickness, profile=profile,
                         thicknessMm=thicknessMm, model=model if method == "dpnsl" else None)
        stages = _Stages(progress, cancel, 6 + 3 if returnParts else 1)
        array = volumeArray(inputNode)
        importCore()  # a missing PyTorch is explained before anything is allocated
        from DPNSLCore.inference.api import resolve_output_dtype

        image, voxels = newImage(plan.output_shape, resolve_output_dtype("input", array))  # the node's own voxels
        result = self._run(array, plan, method, model, device, returnParts, stages.compute, cancel, adapt,
                           out=voxels, tiling=tiling, destripe=destripe, calibrate=calibrate, ensemble=ensemble,
                           spacing=spacingZyx(ijkToRasArray(inputNode)))
        if result.volume is not voxels:  # a result computed elsewhere (never by DPNSLCore.upsample with `out`)
            voxels[...] = result.volume
        stages("writing the output volume")  # the last cancel before anything is written
        ijkToRas = plan.output_matrix(ijkToRasArray(inputNode))
        info = {"scale": f"{plan.scale:g}", "method": method, "degradation": result.plan.degradation,
                "acquisition": plan.acquisition_text(), "sliceAxis": plan.slice_axis,
                "consistencyError": f"{result.consistency_error:.6g}", "detailGain": f"{result.detail_gain:.2f}",
                "notes": " | ".join([*plan.notes, *result.notes[len(result.plan.notes):]]),  # the plan's, then
                "record": runRecordJson(result, array.shape, spacingZyx(ijkToRasArray(inputNode)),
                                        inputNode.GetName())}  # the model and bounds notes of the run; the record
        output = parts.writeOutput(inputNode.GetScene(), outputNode, inputNode, image, ijkToRas,
                                   f"{inputNode.GetName()}_x{plan.scale:g}_{method}", info)
        try:
            nodes = parts.writeParts(output, inputNode, result, ijkToRas, step=stages) if returnParts else None
            if not returnParts:
                parts.dropAllParts(output)
            stages.finish()  # a Cancel clicked during the last stage is honoured too
        except importCore().Cancelled:  # leave nothing half-made: no parts, and no output this run created
            parts.dropAllParts(output)
            if outputNode is None:
                output.GetScene().RemoveNode(output)
            raise
        return (output, nodes) if returnParts else output

    def compare(self, inputNode, referenceNode=None, scale: float | None = None, *, spacing: float | None = None,
                methods: Sequence[str] = METHODS, degradation: str = "auto", thickness: float | None = None,
                thicknessMm: float | None = None, profile: str | None = None, model=None, device: str = "auto",
                sliceAxis: int | None = None, tableNode=None, chartNode=None, progress: ProgressFn | None = None,
                cancel: CancelFn | None = None, adapt: float | None = None, calibrate: bool = True,
                ensemble: int = 1):
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
        plan = self.plan(inputNode, scale, spacing, sliceAxis, degradation, thickness, profile=profile,
                         thicknessMm=thicknessMm, model=model if "dpnsl" in methods else None)
        s, axis, kind = plan.scale, plan.slice_axis, plan.degradation
        array, ijkToRas = volumeArray(inputNode), ijkToRasArray(inputNode)
        observedSpacing = spacingZyx(ijkToRas)
        if referenceNode is None:
            observed, reference = importCore().simulate_acquisition(array, s, degradation=kind,
                                                                    thickness=plan.thickness, profile=plan.profile,
                                                                    slice_axis=axis)
            step = float(spacingZyx(ijkToRas)[axis])
            observedSpacing = np.where(np.arange(3) == axis, observedSpacing * s, observedSpacing)
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
            result = self._run(observed, plan, method, model, device, False, part, cancel, adapt,
                               calibrate=calibrate, spacing=observedSpacing, ensemble=ensemble)
            if reference is None:
                reference = resampleToGrid(referenceNode, plan.output_matrix(ijkToRas), result.volume.shape)
            curves[method] = charts.perSliceMae(result.volume, reference, axis)
        positions = step * np.arange(reference.shape[axis])
        scene = inputNode.GetScene()
        table = charts.fillMaeTable(scene, tableNode, positions, curves, f"{inputNode.GetName()}_x{s:g}_MAE")
        chart = charts.fillMaeChart(scene, chartNode, table, list(curves), f"Per-slice MAE: {title}")
        return table, chart
