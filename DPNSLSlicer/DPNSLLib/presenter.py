"""The panel's behaviour without Qt: what each click does, what is enabled, what the status says.

``DPNSLWidget`` in DPNSL.py is a thin view: it forwards parameter-node changes and button clicks to a
:class:`PanelPresenter` and copies what the presenter decides onto its Qt widgets (the :class:`PanelView`
methods). Everything here imports only slicer, numpy and DPNSLCore, so the click behaviour (nodes created and
reused, progress through every stage, cancel at any stage) is tested headless with slicer-core.

The panel's parameters are read by attribute from the parameter node (``DPNSLParameterNode`` in DPNSL.py):
inputVolume, scaleMode, scale, targetSpacing, degradation, profile, thicknessMm (0: the slice spacing),
model, checkpointPath, device, adapt / adaptSeconds, calibrate, ensemble, outputVolume, showParts, showRouting,
simulateReference, referenceVolume, compareTable, compareChart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from . import display, torchsetup
from .choices import DegradationModel, ModelChoice, ScaleMode
from .logic import SliceSuperResolutionLogic, importCore


@dataclass(frozen=True)
class PanelState:
    """What the panel shows for the current parameters; the widget copies it onto its Qt widgets."""

    scaleEnabled: bool
    spacingEnabled: bool
    profileEnabled: bool  # the profile shape and the thickness apply to the slice-profile acquisition only
    checkpointEnabled: bool
    checkpointPath: str  # shown in the path box: "" when none is chosen
    adaptEnabled: bool  # the seconds box follows the Adapt checkbox
    referenceEnabled: bool
    applyEnabled: bool
    applyTip: str
    compareEnabled: bool
    compareTip: str
    grid: str  # the resolved request: axis, slice counts and spacings, acquisition
    running: bool  # progress bar shown and Cancel enabled


class PanelView(Protocol):
    """What the presenter asks of the widget."""

    def showState(self, state: PanelState) -> None: ...

    def showStatus(self, text: str, toolTip: str = "") -> None: ...

    def showProgress(self, fraction: float, message: str) -> None: ...  # also lets Qt process events

    def showDevice(self, text: str) -> None: ...

    def showResults(self, nodes, showParts: bool, showRouting: bool) -> None: ...

    def showChart(self, chart) -> None: ...


ENSEMBLE_PASSES = 8  # the panel's self-ensemble checkbox: all 8 in-plane symmetries (DPNSLCore.inference.ensemble)
UPSAMPLE_TIP = "Upsample the input volume along its slice axis"
COMPARE_TIP = "Per-slice MAE of linear, cubic and DP-NSL"


class PanelPresenter:
    """The panel's decisions, from the parameters to the Logic calls and back to the view.

    Args:
        logic: the Qt-free Logic (DPNSLLogic in Slicer).
        view: the widget (or a recording stand-in in tests).
    """

    def __init__(self, logic: SliceSuperResolutionLogic, view: PanelView) -> None:
        self.logic, self.view = logic, view
        self.running = False
        self.cancelRequested = False

    # ---- parameters -> Logic arguments -------------------------------------------------------------------
    @staticmethod
    def scaleArguments(p) -> dict:
        """``scale`` or ``spacing`` keyword for the Logic calls, from the panel's scale mode."""
        return {"scale": p.scale} if p.scaleMode == ScaleMode.FACTOR else {"spacing": p.targetSpacing}

    @staticmethod
    def acquisitionArguments(p) -> dict:
        """``degradation``, ``profile`` and ``thicknessMm`` (None for 0: the slice spacing) for the Logic calls."""
        thickness = float(p.thicknessMm) if p.thicknessMm and p.thicknessMm > 0 else None
        return {"degradation": p.degradation.value, "profile": p.profile.value, "thicknessMm": thickness}

    def requestArguments(self, p) -> dict:
        """Keyword arguments of ``logic.upsample`` / ``logic.compare`` from the parameters."""
        return dict(self.scaleArguments(p), **self.acquisitionArguments(p),
                    model=self.logic.modelSpec(p.model.value, p.checkpointPath), device=p.device.value,
                    adapt=float(p.adaptSeconds) if p.adapt else None, calibrate=bool(p.calibrate),
                    ensemble=ENSEMBLE_PASSES if p.ensemble else 1)

    def checkRequest(self, p) -> str:
        """Why the request cannot run (the Upsample tooltip), or "" when it can."""
        unsupported = torchsetup.unsupportedPython()
        if unsupported:
            return unsupported
        try:
            if p.outputVolume and p.inputVolume and p.outputVolume.GetID() == p.inputVolume.GetID():
                return "The output must differ from the input: pick another output or 'Create new volume'"
            self.logic.modelSpec(p.model.value, p.checkpointPath)
            self.logic.plan(p.inputVolume, **self.scaleArguments(p), **self.acquisitionArguments(p))
        except (ValueError, RuntimeError) as error:
            return str(error)
        return ""

    def gridText(self, p) -> str:
        """The resolved request in one line, with the acquisition the chosen model will use."""
        if not p.inputVolume:
            return ""
        try:
            model = self.logic.modelSpec(p.model.value, p.checkpointPath)
        except ValueError:
            model = None
        return self.logic.gridSummary(p.inputVolume, **self.scaleArguments(p), **self.acquisitionArguments(p),
                                      model=model)

    # ---- what is enabled ---------------------------------------------------------------------------------
    def state(self, p) -> PanelState:
        """The panel's state for parameters ``p``."""
        reason = self.checkRequest(p)
        compareReason = reason or ("" if p.simulateReference or p.referenceVolume else "Select a reference volume")
        return PanelState(
            scaleEnabled=p.scaleMode == ScaleMode.FACTOR,
            spacingEnabled=p.scaleMode != ScaleMode.FACTOR,
            profileEnabled=p.degradation in (DegradationModel.PROFILE, DegradationModel.AUTO),
            checkpointEnabled=p.model == ModelChoice.CHECKPOINT,
            checkpointPath="" if str(p.checkpointPath) in ("", ".") else str(p.checkpointPath),
            adaptEnabled=bool(p.adapt),
            referenceEnabled=not p.simulateReference,
            applyEnabled=not reason and not self.running,
            applyTip=reason or UPSAMPLE_TIP,
            compareEnabled=not compareReason and not self.running,
            compareTip=compareReason or COMPARE_TIP,
            grid=self.gridText(p),
            running=self.running,
        )

    def refresh(self, p) -> None:
        """Show the state for ``p`` (called on every parameter change)."""
        if p is not None:
            self.view.showState(self.state(p))

    # ---- clicks ------------------------------------------------------------------------------------------
    def cancel(self) -> None:
        """Cancel: the running Logic call stops at its next stage and leaves nothing behind."""
        if self.running:
            self.cancelRequested = True
            self.view.showStatus("Cancelling...")

    def _isCancelled(self) -> bool:
        return self.cancelRequested

    def _guarded(self, p, work) -> Any:
        """Install PyTorch after asking, run ``work`` with progress and cancel, report a cancel as a status."""
        if not self.logic.setupPythonRequirements(askConfirmation=True):
            self.view.showStatus("PyTorch is required; nothing was run.")
            return None
        self.view.showDevice(torchsetup.deviceSummary())
        cancelled = importCore().Cancelled
        self.running, self.cancelRequested = True, False
        self.view.showStatus("Running...")
        self.refresh(p)
        reused = p.outputVolume
        try:
            return work()
        except cancelled:
            self.view.showStatus("Cancelled; no output was written." if reused is None else
                                 f"Cancelled; '{reused.GetName()}' may hold this run's voxels, without parts: "
                                 "run again to complete it.")
            return None
        finally:
            self.running, self.cancelRequested = False, False
            self.refresh(p)

    def upsample(self, p):
        """The Upsample click: writes the output (and the parts that are shown) and reuses them next time.

        Returns:
            The output node, or None when cancelled or PyTorch was not installed.
        """
        return self._guarded(p, lambda: self._upsample(p))

    def _upsample(self, p):
        wantParts = bool(p.showParts or p.showRouting)  # parts cost several output volumes: only when shown
        result = self.logic.upsample(p.inputVolume, **self.requestArguments(p), method="dpnsl",
                                     outputNode=p.outputVolume, returnParts=wantParts,
                                     progress=self.view.showProgress, cancel=self._isCancelled)
        output, nodes = result if wantParts else (result, None)
        p.outputVolume = output  # the next Upsample writes into this volume instead of creating another
        self.view.showResults(nodes if nodes is not None else display.PartNodes(p.inputVolume, output),
                              p.showParts, p.showRouting)
        error, gain = output.GetAttribute("DPNSL.consistencyError"), output.GetAttribute("DPNSL.detailGain")
        self.view.showStatus(f"Done: {output.GetName()} (max |A x - y| = {error}, detail gain {gain})",
                             (output.GetAttribute("DPNSL.notes") or "").replace(" | ", "\n"))
        return output

    def compare(self, p):
        """The Compare click: per-slice MAE of each method, into the previous table and chart when there are."""
        return self._guarded(p, lambda: self._compare(p))

    def _compare(self, p):
        reference = None if p.simulateReference else p.referenceVolume
        table, chart = self.logic.compare(p.inputVolume, reference, **self.requestArguments(p),
                                          tableNode=p.compareTable, chartNode=p.compareChart,
                                          progress=self.view.showProgress, cancel=self._isCancelled)
        p.compareTable, p.compareChart = table, chart
        self.view.showChart(chart)
        self.view.showStatus(f"Compared: see the chart and table '{table.GetName()}'")
        return table, chart
