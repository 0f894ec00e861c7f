"""The panel's behaviour, headless: PanelPresenter on real MRML nodes (slicer-core) with a recording view.

What a click creates and reuses, progress through every stage, Cancel at each stage (nothing left behind), what
is enabled and why, and the acquisition line the panel shows.
"""

from __future__ import annotations

import types

import numpy as np
import pytest
from mrml_helpers import makeIjkToRas, requireSlicer, smoothVolume

slicer = requireSlicer()

from DPNSLLib.choices import DegradationModel, DeviceChoice, ModelChoice, ProfileShape, ScaleMode  # noqa: E402
from DPNSLLib.logic import SliceSuperResolutionLogic  # noqa: E402
from DPNSLLib.presenter import COMPARE_TIP, UPSAMPLE_TIP, PanelPresenter  # noqa: E402


class RecordingView:
    """A PanelView that records what the presenter shows; ``onProgress`` lets a test click Cancel mid-run."""

    def __init__(self) -> None:
        self.states, self.statuses, self.progress, self.results, self.charts = [], [], [], [], []
        self.onProgress = None

    def showState(self, state):
        self.states.append(state)

    def showStatus(self, text, toolTip=""):
        self.statuses.append((text, toolTip))

    def showProgress(self, fraction, message):
        self.progress.append((fraction, message))
        if self.onProgress is not None:
            self.onProgress(len(self.progress) - 1, message)

    def showDevice(self, text):
        pass

    def showResults(self, nodes, showParts, showRouting):
        self.results.append((nodes, showParts, showRouting))

    def showChart(self, chart):
        self.charts.append(chart)


class _Logic(SliceSuperResolutionLogic):
    def __init__(self, installed: bool = True) -> None:
        super().__init__()
        self.installed = installed

    def setupPythonRequirements(self, askConfirmation: bool = True) -> bool:
        return self.installed  # no dialogs here: torch is installed, or the user declined


def _panel(inputNode, **overrides):
    """The parameter node's values as the presenter reads them (typed attributes)."""
    values = dict(inputVolume=inputNode, scaleMode=ScaleMode.FACTOR, scale=2.0, targetSpacing=1.0,
                  degradation=DegradationModel.DECIMATE, profile=ProfileShape.BOX, thicknessMm=0.0,
                  model=ModelChoice.CT, checkpointPath="", device=DeviceChoice.CPU, adapt=False, adaptSeconds=60.0,
                  calibrate=True, ensemble=False, outputVolume=None,
                  showParts=True, showRouting=False, simulateReference=True, referenceVolume=None,
                  compareTable=None, compareChart=None)
    values.update(overrides)
    return types.SimpleNamespace(**values)


@pytest.fixture
def thick(makeVolume):
    return makeVolume(smoothVolume((4, 12, 10)) - 900.0, makeIjkToRas((0.8, 0.7, 3.0)), "thick")


def _volumes(scene) -> int:
    return scene.GetNumberOfNodesByClass("vtkMRMLVolumeNode")


@pytest.mark.parametrize(("showParts", "showRouting", "added"), [(False, False, 1), (True, False, 7),
                                                                  (False, True, 7)])
def test_a_click_creates_only_what_is_shown_and_the_next_click_reuses_it(scene, thick, showParts, showRouting,
                                                                          added):
    view, panel = RecordingView(), _panel(thick, showParts=showParts, showRouting=showRouting)
    presenter = PanelPresenter(_Logic(), view)
    before = _volumes(scene)
    output = presenter.upsample(panel)
    assert _volumes(scene) - before == added and panel.outputVolume is output  # output (+ anchor, detail,
    # 3 routing maps and the arg-max label map when parts are shown)
    assert view.results[0][0].output is output and view.results[0][1:] == (showParts, showRouting)
    assert view.statuses[-1][0].startswith("Done: thick_x2_dpnsl") and "shipped CT model" in view.statuses[-1][1]
    assert f"detail gain {output.GetAttribute('DPNSL.detailGain')})" in view.statuses[-1][0]  # said on the panel
    assert presenter.upsample(panel) is output  # the second click writes into the same output and parts
    assert _volumes(scene) - before == added
    assert [s.running for s in view.states] == [True, False, True, False]  # Cancel on while running, then off


def test_progress_reaches_every_stage_in_order(scene, thick):
    view = RecordingView()
    PanelPresenter(_Logic(), view).upsample(_panel(thick, showRouting=True))
    fractions = [f for f, _ in view.progress]
    messages = [m for _, m in view.progress]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and messages[-1] == "done"
    writing = messages[messages.index("writing the output volume"):]
    assert len(writing) >= 6 and all(f >= 0.9 for f, _ in view.progress[-len(writing):])  # every writing stage


def _stages(scene, thick) -> list[str]:
    view = RecordingView()
    PanelPresenter(_Logic(), view).upsample(_panel(thick, showRouting=True))
    return [m for _, m in view.progress]


def test_cancel_at_any_stage_leaves_nothing_behind(scene, thick):
    stages = _stages(scene, thick)
    writing = stages.index("writing the output volume")
    for k in (0, writing - 1, writing, writing + 1, len(stages) - 2):  # compute, then each kind of writing stage
        view, panel = RecordingView(), _panel(thick, showRouting=True)
        presenter = PanelPresenter(_Logic(), view)
        view.onProgress = lambda index, message, k=k, presenter=presenter: index == k and presenter.cancel()
        before = _volumes(scene)
        assert presenter.upsample(panel) is None, stages[k]
        assert _volumes(scene) == before and panel.outputVolume is None, stages[k]
        assert view.statuses[-1][0] == "Cancelled; no output was written." and not presenter.running


def test_declining_the_pytorch_install_runs_nothing(scene, thick):
    view, before = RecordingView(), _volumes(scene)
    assert PanelPresenter(_Logic(installed=False), view).upsample(_panel(thick)) is None
    assert _volumes(scene) == before and view.statuses == [("PyTorch is required; nothing was run.", "")]


def test_what_is_enabled_and_why(scene, thick, tmp_path, monkeypatch):
    presenter = PanelPresenter(_Logic(), RecordingView())
    state = presenter.state(_panel(thick))
    assert state.applyEnabled and state.applyTip == UPSAMPLE_TIP and state.compareTip == COMPARE_TIP
    assert state.scaleEnabled and not state.spacingEnabled and not state.profileEnabled
    assert presenter.state(_panel(thick, degradation=DegradationModel.PROFILE)).profileEnabled
    assert presenter.state(_panel(thick, scaleMode=ScaleMode.SPACING)).spacingEnabled
    assert "`inputNode` is None" in presenter.state(_panel(None)).applyTip
    assert "needs an integer `scale`, got 2.5" in presenter.state(_panel(thick, scale=2.5)).applyTip
    missing = presenter.state(_panel(thick, model=ModelChoice.CHECKPOINT, checkpointPath=tmp_path / "no.safetensors"))
    assert not missing.applyEnabled and "checkpoint file not found" in missing.applyTip and missing.checkpointEnabled
    unset = presenter.state(_panel(thick, model=ModelChoice.CHECKPOINT))  # nothing chosen yet
    assert "(none selected)" in unset.applyTip and unset.checkpointPath == ""
    assert presenter.state(_panel(thick, checkpointPath=".")).checkpointPath == ""  # a scene saved with Path()
    assert "output must differ" in presenter.state(_panel(thick, outputVolume=thick)).applyTip
    noReference = presenter.state(_panel(thick, simulateReference=False))
    assert not noReference.compareEnabled and noReference.compareTip == "Select a reference volume"
    assert noReference.referenceEnabled and noReference.applyEnabled
    from DPNSLLib import presenter as module

    monkeypatch.setattr(module.torchsetup, "unsupportedPython", lambda: "DPNSL needs Python >= 3.10")
    assert presenter.state(_panel(thick)).applyTip == "DPNSL needs Python >= 3.10"


def test_the_panel_maps_to_logic_arguments_with_the_thickness_in_mm(scene, thick):
    presenter = PanelPresenter(_Logic(), RecordingView())
    assert presenter.requestArguments(_panel(thick, scaleMode=ScaleMode.SPACING)) == dict(
        spacing=1.0, degradation="decimate", profile="box", thicknessMm=None, model="ct", device="cpu", adapt=None,
        calibrate=True, ensemble=1)
    assert presenter.requestArguments(_panel(thick, adapt=True, adaptSeconds=30.0))["adapt"] == 30.0
    assert presenter.requestArguments(_panel(thick, ensemble=True))["ensemble"] == 8  # all 8 in-plane symmetries
    assert presenter.requestArguments(_panel(thick, calibrate=False))["calibrate"] is False
    assert presenter.state(_panel(thick, adapt=True)).adaptEnabled
    assert not presenter.state(_panel(thick)).adaptEnabled
    args = presenter.requestArguments(_panel(thick, degradation=DegradationModel.PROFILE,
                                             profile=ProfileShape.GAUSSIAN, thicknessMm=4.5))
    assert (args["degradation"], args["profile"], args["thicknessMm"]) == ("profile", "gaussian", 4.5)
    run_only = ("model", "device", "adapt", "calibrate", "ensemble")
    plan = presenter.logic.plan(thick, **{k: v for k, v in args.items() if k not in run_only})
    assert plan.thickness == 1.5 and plan.profile == "gaussian"  # 4.5 mm over the 3 mm slice spacing


def test_the_grid_line_states_the_acquisition_the_model_will_use(scene, thick, tmp_path):
    from DPNSLCore.models import PRESETS, build_model, save_checkpoint

    presenter = PanelPresenter(_Logic(), RecordingView())
    line = presenter.state(_panel(thick, degradation=DegradationModel.PROFILE, thicknessMm=4.5)).grid
    assert line == "k axis: 4 slices x 3 mm -> 7 slices x 1.5 mm (scale 2), box profile, 4.5 mm thick every 3 mm"
    mixed = save_checkpoint(build_model(PRESETS["lean"].replace(modality="ct", acquisition={
        "kind": "mix", "profile": "box", "thickness": [0.75, 1.5], "decimate_share": 0.4})),
        tmp_path / "m.safetensors")
    panel = _panel(thick, degradation=DegradationModel.AUTO, model=ModelChoice.CHECKPOINT, checkpointPath=mixed)
    assert presenter.state(panel).grid.endswith("(scale 2), box profile, 3 mm thick every 3 mm")
    panel.thicknessMm = 6.0
    assert presenter.state(panel).grid.endswith("box profile, 6 mm thick every 3 mm")
    # and the run uses what the line says
    output = presenter.upsample(panel)
    assert output.GetAttribute("DPNSL.acquisition") == "box profile, 6 mm thick every 3 mm"
    assert output.GetAttribute("DPNSL.degradation") == "profile"


def test_compare_writes_into_its_previous_table_and_chart(scene, thick):
    view, panel = RecordingView(), _panel(thick)
    presenter = PanelPresenter(_Logic(), view)
    table, chart = presenter.compare(panel)
    assert (panel.compareTable, panel.compareChart) == (table, chart) and view.charts == [chart]
    before = scene.GetNumberOfNodesByClass("vtkMRMLTableNode")
    assert presenter.compare(panel) == (table, chart)
    assert scene.GetNumberOfNodesByClass("vtkMRMLTableNode") == before
    assert np.isfinite(slicer.util.arrayFromTableColumn(table, "dpnsl")).all()
