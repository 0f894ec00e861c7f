import logging
import sys
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import slicer
import vtk
from DPNSLLib import display, torchsetup
from DPNSLLib.choices import DegradationModel, DeviceChoice, ModelChoice, ProfileShape, ScaleMode
from DPNSLLib.logic import SliceSuperResolutionLogic
from DPNSLLib.presenter import PanelPresenter, PanelState
from DPNSLLib.volumes import ijkToRasArray
from slicer import vtkMRMLPlotChartNode, vtkMRMLScalarVolumeNode, vtkMRMLTableNode
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

torchsetup.findCoreBeside(Path(__file__).parent)  # a source checkout works without pip install or restart

#
# DPNSL
#


class DPNSL(ScriptedLoadableModule):
    """Slice super-resolution of CT/MR volumes with measurement-consistent null-space learning (DP-NSL)."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("DP-NSL Slice Super-Resolution")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Filtering")]
        self.parent.dependencies = []
        self.parent.contributors = ["DPNSL contributors"]
        self.parent.helpText = _("""
Upsample a thick-slice CT or MR volume along its slice axis. Every acquired slice is kept exactly
(measurement-consistent projection); the network only adds the null-space detail between them.
Shows the input, the range anchor, the null-space detail and the output side by side, the routing
maps of the Mixture-of-Splines experts, and per-slice error curves against linear and cubic interpolation.
See the <a href="https://github.com/dpnsl/DPNSL#use-it-in-3d-slicer">module documentation</a>.
""")
        self.parent.acknowledgementText = _("""
Method: Dual-Prior guided Null-Space Learning with Mixture-of-Splines. Module layout follows the 3D Slicer
scripted module template by Jean-Christophe Fillion-Robin (Kitware), Andras Lasso (PerkLab) and Steve Pieper
(Isomics), partially funded by NIH grant 3P41RR013218-12S1.
""")

        # Additional initialization step after application startup is complete
        slicer.app.connect("startupCompleted()", onStartupCompleted)


def onStartupCompleted():
    """Register the sample data and the DPNSL layouts (so a saved scene reopens in its DPNSL layout)."""
    registerSampleData()
    layoutManager = slicer.app.layoutManager()
    if layoutManager is not None:  # no layout manager without a main window (e.g. --no-main-window)
        display.registerLayouts(layoutManager.layoutLogic().GetLayoutNode())


#
# Register sample data sets in Sample Data module
#


def registerSampleData():
    """Add the small real scans shipped inside DPNSLCore (DPNSLCore/resources/sample_data) to the Sample Data
    module (no download). Importing DPNSLCore.resources needs no PyTorch."""
    import SampleData

    try:
        from DPNSLCore.resources import SAMPLE_DATA_DIR
    except ImportError:
        logging.warning("DPNSL: DPNSLCore is not importable, so its sample data is not registered")
        return
    for fileName, sampleName in (("ct_lung1_5mm_crop.nii.gz", "DPNSL chest CT, 5 mm slices"),
                                 ("ct_chest_1mm_crop.nii.gz", "DPNSL chest CT, 1 mm slices"),
                                 ("mr_t1_1mm_crop.nii.gz", "DPNSL brain MR T1, 1 mm slices")):
        SampleData.SampleDataLogic.registerCustomSampleDataSource(
            category="DPNSL",
            sampleName=sampleName,
            uris=Path(SAMPLE_DATA_DIR, fileName).resolve().as_uri(),  # urllib copies file:// URIs into the cache
            fileNames=fileName,
            nodeNames=fileName.split(".")[0],
        )


#
# DPNSLParameterNode
#


@parameterNodeWrapper
class DPNSLParameterNode:
    """
    The panel's state, saved with the scene.

    inputVolume - thick-slice volume to upsample.
    scaleMode - whether `scale` or `targetSpacing` defines the new grid.
    scale - HR slices per observed slice spacing.
    targetSpacing - wanted slice spacing in mm.
    degradation / profile / thicknessMm - how the slices were acquired (slice profile: its shape and thickness in
        mm, 0 = the slice spacing).
    model / checkpointPath - bundled CT or MR weights, or a checkpoint file.
    device - where the network runs.
    adapt / adaptSeconds - fine-tune a copy of the model on the input's own in-plane axes first, for that long.
    calibrate - fit the strength of the network's detail to the input on its own in-plane axes first.
    ensemble - average the network's estimate over the 8 in-plane flips/transposes of the input (8x its time).
    outputVolume - volume to write (None: a new volume on every run; never the input).
    showParts / showRouting - what the results layout shows.
    simulateReference / referenceVolume - Compare against a simulated or a real thin-slice reference.
    compareTable / compareChart - Compare's outputs, reused by the next Compare.
    """

    inputVolume: vtkMRMLScalarVolumeNode
    scaleMode: ScaleMode = ScaleMode.FACTOR
    scale: Annotated[float, WithinRange(1.01, 16.0)] = 4.0
    targetSpacing: Annotated[float, WithinRange(0.01, 50.0)] = 1.0
    degradation: DegradationModel = DegradationModel.AUTO
    profile: ProfileShape = ProfileShape.BOX
    thicknessMm: Annotated[float, WithinRange(0.0, 100.0)] = 0.0
    model: ModelChoice = ModelChoice.CT
    checkpointPath: str = ""  # a str, bound by hand: a Path parameter shows its unset value Path() as "."
    device: DeviceChoice = DeviceChoice.AUTO
    adapt: bool = False
    adaptSeconds: Annotated[float, WithinRange(5.0, 3600.0)] = 60.0
    calibrate: bool = True
    ensemble: bool = False
    outputVolume: vtkMRMLScalarVolumeNode
    showParts: bool = True
    showRouting: bool = False
    simulateReference: bool = True
    referenceVolume: vtkMRMLScalarVolumeNode
    compareTable: vtkMRMLTableNode
    compareChart: vtkMRMLPlotChartNode


#
# DPNSLWidget
#


class DPNSLWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """Thin view: the .ui binds to the parameter node; every decision (what is enabled, what a click does, the
    status) lives in DPNSLLib.presenter.PanelPresenter, tested headless. This class only copies them onto Qt."""

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)  # needed for parameter node observation
        self.logic = None
        self.presenter = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)

        # Load widget from .ui file (created by Qt Designer).
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/DPNSL.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)

        # Set scene in MRML widgets (the .ui connects mrmlSceneChanged to each node selector).
        uiWidget.setMRMLScene(slicer.mrmlScene)

        self.logic = DPNSLLogic()
        self.presenter = PanelPresenter(self.logic, self)

        # These connections ensure that we update parameter node when scene is closed
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)

        # Buttons
        self.ui.applyButton.connect("clicked(bool)", self.onApplyButton)
        self.ui.cancelButton.connect("clicked(bool)", self.onCancelButton)
        self.ui.compareButton.connect("clicked(bool)", self.onCompareButton)
        self.ui.checkpointPathLineEdit.connect("currentPathChanged(QString)", self.onCheckpointPathChanged)

        # Make sure parameter node is initialized (needed for module reload)
        self.initializeParameterNode()

    def onReload(self) -> None:
        """Reload DPNSLLib too: Slicer's Reload re-imports DPNSL.py only, so drop the helper package's modules and
        the fresh DPNSL.py imports them anew."""
        for name in [n for n in sys.modules if n == "DPNSLLib" or n.startswith("DPNSLLib.")]:
            del sys.modules[name]
        super().onReload()

    def cleanup(self) -> None:
        """Called when the application closes and the module widget is destroyed."""
        self.removeObservers()

    def enter(self) -> None:
        """Called each time the user opens this module."""
        self.initializeParameterNode()
        self.ui.deviceLabel.text = torchsetup.installedSummary()  # no torch import on every module open

    def exit(self) -> None:
        """Called each time the user opens a different module."""
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._refresh)

    def onSceneStartClose(self, caller, event) -> None:
        """Called just before the scene is closed."""
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        """Called just after the scene is closed."""
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        """Ensure parameter node exists and observed."""
        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.inputVolume:
            firstVolumeNode = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
            if firstVolumeNode and not firstVolumeNode.IsA("vtkMRMLLabelMapVolumeNode"):
                self._parameterNode.inputVolume = firstVolumeNode

    def setParameterNode(self, inputParameterNode: Optional[DPNSLParameterNode]) -> None:  # noqa: UP045 (Py 3.9)
        """Set and observe parameter node; the GUI follows it through the SlicerParameterName bindings."""
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._refresh)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            # Note: in the .ui file, a Qt dynamic property called "SlicerParameterName" is set on each
            # ui element that needs connection.
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._refresh)
            self._refresh()

    def _refresh(self, caller=None, event=None) -> None:
        self.presenter.refresh(self._parameterNode)

    # ---- PanelView: what the presenter shows ---------------------------------------------------------------
    def showState(self, state: PanelState) -> None:
        self.ui.scaleSpinBox.enabled = state.scaleEnabled
        self.ui.targetSpacingSpinBox.enabled = state.spacingEnabled
        self.ui.profileComboBox.enabled = state.profileEnabled
        self.ui.thicknessSpinBox.enabled = state.profileEnabled
        self.ui.checkpointPathLineEdit.enabled = state.checkpointEnabled
        if self.ui.checkpointPathLineEdit.currentPath != state.checkpointPath:
            self.ui.checkpointPathLineEdit.currentPath = state.checkpointPath  # empty, never "."
        self.ui.adaptSecondsSpinBox.enabled = state.adaptEnabled
        self.ui.referenceSelector.enabled = state.referenceEnabled
        self.ui.gridLabel.text = state.grid
        self.ui.applyButton.enabled = state.applyEnabled
        self.ui.applyButton.toolTip = _(state.applyTip)
        self.ui.compareButton.enabled = state.compareEnabled
        self.ui.compareButton.toolTip = _(state.compareTip)
        self.ui.cancelButton.enabled = state.running
        self.ui.progressBar.visible = state.running

    def showStatus(self, text: str, toolTip: str = "") -> None:
        self.ui.statusLabel.text = _(text)
        self.ui.statusLabel.toolTip = toolTip

    def showProgress(self, fraction: float, message: str) -> None:
        self.ui.progressBar.value = int(round(100 * max(0.0, min(1.0, fraction))))
        self.ui.statusLabel.text = message
        slicer.app.processEvents()  # draws the progress and lets a Cancel click through

    def showDevice(self, text: str) -> None:
        self.ui.deviceLabel.text = text

    def showResults(self, nodes, showParts: bool, showRouting: bool) -> None:
        self.logic.showResults(nodes, showParts, showRouting)

    def showChart(self, chart) -> None:
        slicer.modules.plots.logic().ShowChartInLayout(chart)

    # ---- clicks ------------------------------------------------------------------------------------------
    def onCheckpointPathChanged(self, path: str) -> None:
        if self._parameterNode:
            self._parameterNode.checkpointPath = path

    def onCancelButton(self) -> None:
        self.presenter.cancel()

    def onApplyButton(self) -> None:
        """Run processing when user clicks "Upsample" button."""
        # no wait cursor: the install dialogs may appear first, and a run shows its own progress bar and Cancel
        with slicer.util.tryWithErrorDisplay(_("Failed to upsample the volume."), waitCursor=False):
            self.presenter.upsample(self._parameterNode)

    def onCompareButton(self) -> None:
        """Per-slice MAE curves of linear, cubic and DP-NSL, shown in a plot view."""
        with slicer.util.tryWithErrorDisplay(_("Failed to compare the methods."), waitCursor=False):
            self.presenter.compare(self._parameterNode)


#
# DPNSLLogic
#


class DPNSLLogic(ScriptedLoadableModuleLogic, SliceSuperResolutionLogic):
    """Everything the panel does, callable from the Python console without it:

    logic = slicer.util.getModuleLogic("DPNSL")   # or DPNSL.DPNSLLogic()
    output, nodes = logic.upsample(volumeNode, scale=4, method="dpnsl", returnParts=True)
    table, chart = logic.compare(volumeNode, None, scale=4)

    Upsampling and comparison live in DPNSLLib.logic.SliceSuperResolutionLogic (Qt-free, tested headless).
    """

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        SliceSuperResolutionLogic.__init__(self)

    def getParameterNode(self):
        return DPNSLParameterNode(super().getParameterNode())

    def showResults(self, nodes, showParts: bool = True, showRouting: bool = False) -> None:
        """Switch to the DPNSL layout: input, anchor, detail, output side by side, routing maps below."""
        showParts = bool(showParts and nodes.anchor is not None)
        showRouting = bool(showRouting and nodes.routing)
        display.applyLayout(slicer.mrmlScene, showParts, len(nodes.routing) if showRouting else 0)
        slicer.app.processEvents()  # let the layout manager create the new slice views
        axis = int(nodes.output.GetAttribute("DPNSL.sliceAxis"))
        orientation = display.throughPlaneOrientation(ijkToRasArray(nodes.input), axis)
        display.assignViews(slicer.app.applicationLogic(), nodes, showParts, showRouting, orientation)


#
# DPNSLTest
#


class DPNSLTest(ScriptedLoadableModuleTest):
    """Runs inside Slicer (Reload and Test, or the generated ctest) on a synthetic volume, no download."""

    def setUp(self):
        """Do whatever is needed to reset the state - typically a scene clear will be enough."""
        slicer.mrmlScene.Clear()

    def runTest(self):
        """Run as few or as many tests as needed here."""
        self.setUp()
        self.test_DPNSL1()

    def test_DPNSL1(self):
        """Upsample a rotated anisotropic volume: geometry, kept slices, parts, routing, Compare table."""
        self.delayDisplay("Starting the test")
        logic = DPNSLLogic()
        self.assertTrue(logic.setupPythonRequirements(askConfirmation=not slicer.app.testingEnabled()))

        rng = np.random.default_rng(0)
        voxels = rng.normal(100.0, 40.0, size=(6, 24, 20)).astype(np.float32)
        ijkToRas = np.diag([0.8, 0.9, 4.0, 1.0])
        ijkToRas[:3, :3] = _rotation(25.0) @ ijkToRas[:3, :3]
        ijkToRas[:3, 3] = (-10.0, 20.0, 5.0)
        inputNode = slicer.util.addVolumeFromArray(voxels, ijkToRas, name="DPNSLTestInput")

        output, nodes = logic.upsample(inputNode, scale=2, method="dpnsl", model="ct", device="cpu", returnParts=True)
        upsampled = slicer.util.arrayFromVolume(output)
        self.assertEqual(upsampled.shape, (11, 24, 20))
        np.testing.assert_array_equal(upsampled[::2], voxels)  # decimate: observed slices kept bit for bit
        expected = ijkToRas.copy()
        expected[:3, 2] /= 2
        np.testing.assert_allclose(ijkToRasArray(output), expected, atol=1e-9)
        routing = np.stack([slicer.util.arrayFromVolume(node) for node in nodes.routing])
        self.assertGreaterEqual(routing.min(), 0.0)
        self.assertLessEqual(routing.max(), 1.0)
        np.testing.assert_allclose(routing.sum(axis=0), 1.0, atol=1e-4)

        table, chart = logic.compare(inputNode, None, scale=2, model="ct", device="cpu")
        self.assertEqual(chart.GetNumberOfPlotSeriesNodes(), 3)
        self.assertEqual(slicer.util.arrayFromTableColumn(table, "linear")[0], 0.0)  # observed slice: exact
        logic.showResults(nodes, showParts=True, showRouting=True)
        self.delayDisplay("Test passed")


def _rotation(degrees: float) -> np.ndarray:
    c, s = np.cos(np.deg2rad(degrees)), np.sin(np.deg2rad(degrees))
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])
