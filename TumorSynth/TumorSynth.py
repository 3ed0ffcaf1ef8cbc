"""TumorSynth: click on a CT to place a realistic synthetic tumor (liver, pancreas, kidney).

Module, widget, logic and test classes as in Slicer's scripted-module template. The widget only
wires the panel; every node-level operation lives in ``TumorSynthSlicer`` (tested headless with
``slicer-core``) and the synthesis in ``TumorSynthLib``; both are imported inside functions, so
importing this file runs no code and needs nothing beyond Slicer.
"""
import logging
import os
import random
import sys
from typing import Annotated

import qt
import slicer
import vtk
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import Choice, WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

SWITCH = ("auto", "on", "off")


def modulePaths():
    """``TumorSynthSlicer.module_paths`` (this module's folder put on sys.path first)."""
    here = os.path.dirname(os.path.abspath(__file__))
    if here not in sys.path:
        sys.path.insert(0, here)          # this folder's TumorSynthSlicer, not an installed copy
    from TumorSynthSlicer import module_paths

    return module_paths


def logicModules():
    """The TumorSynthSlicer logic modules by short name (the engine's folder on sys.path)."""
    return modulePaths().load_logic(("output", "placement", "segment", "export", "catalogue", "reader", "click"))


class TumorSynth(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("TumorSynth")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Segmentation")]
        self.parent.dependencies = []
        self.parent.contributors = ["TumorSynth developers (TumorSynth project)"]
        self.parent.helpText = _(
            "Click inside the liver, pancreas or kidney of a CT to add a realistic synthetic "
            "tumor. The input is never changed: tumors go into a new volume '&lt;CT&gt; + tumors' "
            "with one segment per tumor. Every image made here is synthetic and marked as such.")
        self.parent.acknowledgementText = _(
            "Tumor synthesis after the SyntheticTumors (CVPR 2023), Pixel2Cancer and DiffTumor "
            "papers, implemented from their descriptions.")
        iconPath = modulePaths().resource_path("Icons/TumorSynth.png")
        if os.path.exists(iconPath):
            self.parent.icon = qt.QIcon(iconPath)


@parameterNodeWrapper
class TumorSynthParameterNode:
    inputVolume: vtkMRMLScalarVolumeNode
    organSegmentation: vtkMRMLSegmentationNode
    organSegmentId: str = ""
    # organ, stage and method: the combo boxes are filled from the engine catalogue in setup()
    organ: str = "liver"
    stage: str = "early"
    diameterMm: Annotated[float, WithinRange(2.0, 120.0)] = 15.0
    method: str = "handcrafted"
    lesion: str = ""
    seed: Annotated[int, WithinRange(0, 999999)] = 0
    count: Annotated[int, WithinRange(1, 10)] = 1
    massEffect: Annotated[str, Choice(SWITCH)] = "auto"
    necrosis: Annotated[str, Choice(SWITCH)] = "auto"
    capsule: Annotated[str, Choice(SWITCH)] = "auto"
    satellites: Annotated[str, Choice(SWITCH)] = "auto"
    liveGrowth: bool = True
    qualityScore: bool = True
    exportFormat: Annotated[str, Choice(("nii.gz", "nrrd"))] = "nii.gz"


class TumorSynthWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The panel: Inputs, Tumor, Place, Result (see README.md, "3D Slicer extension"). No computation here."""

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._clickNode = None
        self._gate = None
        self.growth = None
        self.reader = None
        self._shortcut = None
        self._seen = {}

    # -- set-up --------------------------------------------------------------------------------
    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(modulePaths().resource_path("UI/TumorSynth.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = TumorSynthLogic()
        self._gate = self.logic.lib().click.ClickGate()

        self.placeWidget = slicer.qSlicerMarkupsPlaceWidget()
        self.placeWidget.setMRMLScene(slicer.mrmlScene)
        self.placeWidget.buttonsVisible = False
        self.placeWidget.placeButton().show()
        self.placeWidget.placeMultipleMarkups = slicer.qSlicerMarkupsPlaceWidget.ForcePlaceMultipleMarkups
        self.ui.placeWidgetFrame.layout().addWidget(self.placeWidget)
        self.tableView = slicer.qMRMLTableView()
        self.tableView.setMRMLScene(slicer.mrmlScene)
        self.ui.tableFrame.layout().addWidget(self.tableView)
        if slicer.util.mainWindow() is not None:   # none in --no-main-window test runs
            shortcut = self.logic.lib().click.PLACE_SHORTCUT   # not one of Slicer's own (click_logic)
            self._shortcut = qt.QShortcut(qt.QKeySequence(shortcut), slicer.util.mainWindow())
            self._shortcut.activated.connect(self.onTogglePlaceMode)

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.ui.randomSeedButton.clicked.connect(lambda: self.onRandomSeed())
        self.ui.stopGrowthButton.clicked.connect(lambda: self.growth.stop(keep=True))
        self.ui.undoButton.clicked.connect(lambda: self.onUndo())
        self.ui.clearButton.clicked.connect(lambda: self.onClear())
        self.ui.exportButton.clicked.connect(lambda: self.onExport())
        self.ui.installDependenciesButton.clicked.connect(lambda: self.onInstallDependencies())
        from TumorSynthWidgets.choices_section import TumorChoices
        from TumorSynthWidgets.growth_section import LiveGrowth
        from TumorSynthWidgets.reader_section import ReaderSection

        self.choices = TumorChoices(self.ui, self.logic, lambda: self._parameterNode)
        self.choices.connect()
        self.growth = LiveGrowth(self.ui, self._gate, self._showPlacement, self.showMessage, self._updateButtons)
        self.reader = ReaderSection(self.layout, logicModules().reader)
        self.initializeParameterNode()

    def cleanup(self) -> None:
        if self.growth is not None:
            self.growth.stop(keep=False)
        if self.reader is not None:
            self.reader.stop()
        if self._shortcut is not None:
            self._shortcut.setParent(None)
            self._shortcut = None
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        self._disconnectParameterNode()
        self.placeWidget.setPlaceModeEnabled(False)

    def _disconnectParameterNode(self) -> None:
        if self._parameterNode:
            if self._parameterNodeGuiTag is not None:
                self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.onParameterNodeModified)
        self._parameterNodeGuiTag = None

    def onSceneStartClose(self, caller, event) -> None:
        self.growth.stop(keep=False)
        self.reader.stop(removeNodes=False)
        self.setParameterNode(None)
        self._clickNode = None
        self.logic.forgetSessions()

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.inputVolume:
            self._parameterNode.inputVolume = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")

    def setParameterNode(self, inputParameterNode) -> None:
        self._disconnectParameterNode()
        self._parameterNode = inputParameterNode
        self._seen = {}
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.onParameterNodeModified)
            self._ensureClickNode()
            self.choices.updateMethodAvailability()
            self.onParameterNodeModified()

    def onParameterNodeModified(self, caller=None, event=None) -> None:
        """React to what changed (the GUI connectors write the parameter node first, so it is
        read here rather than in the widgets' own signals)."""
        p = self._parameterNode
        if not p:
            return
        self.choices.show()
        now = {"source": p.organSegmentation.GetID() if p.organSegmentation else None,
               "size": (p.stage, p.organ)}
        changed = {key for key, value in now.items() if self._seen.get(key, ()) != value}
        self._seen = now
        if "source" in changed:
            self.choices.onOrganSourceChanged()
        if "size" in changed:
            self.choices.updateDiameterRange()
        self._updateButtons()

    # -- panel state ---------------------------------------------------------------------------
    def _ensureClickNode(self) -> None:
        if self._clickNode is None or self._clickNode.GetScene() is None:
            self._clickNode = self.logic.clickNode()
            self.addObserver(self._clickNode, self._clickNode.PointPositionDefinedEvent, self.onPointPlaced)
        self.placeWidget.setCurrentNode(self._clickNode)

    def _updateButtons(self, caller=None, event=None) -> None:
        p = self._parameterNode
        session = self.logic.existingSession(p.inputVolume) if p and p.inputVolume else None
        self.placeWidget.enabled = bool(p and p.inputVolume) and not self._gate.busy
        self.ui.undoButton.enabled = bool(session and session.canUndo)
        self.ui.clearButton.enabled = bool(session and session.tumorCount)
        self.ui.exportButton.enabled = bool(session and session.tumorCount)
        self.ui.outputVolumeLabel.text = session.outputVolume.GetName() if session and session.hasOutputs else _("(created on the first tumor)")
        self.tableView.setMRMLTableNode(session.table if session and session.hasOutputs else None)

    def showMessage(self, text: str, error: bool = False, warning: bool = False) -> None:
        self.ui.statusLabel.text = text
        style = "color: #c0392b;" if error else "color: #b9770e;" if warning else ""
        self.ui.statusLabel.setStyleSheet(style)

    # -- placing ---------------------------------------------------------------------------------
    def onTogglePlaceMode(self) -> None:
        self.placeWidget.setPlaceModeEnabled(not self.placeWidget.placeModeEnabled)

    def onPointPlaced(self, caller, event) -> None:
        ras = self.logic.lib().click.take_click(caller)
        if ras is None:
            return
        if not self._gate.accept():   # a tumor is still forming: one job at a time
            self.placeWidget.setPlaceModeEnabled(False)
            self.showMessage(self._gate.message)
            return
        self._gate.start("placement")
        self.placeWidget.setPlaceModeEnabled(False)
        qt.QTimer.singleShot(0, lambda: self._placeAt(ras))   # leave the markups event first

    def _placeAt(self, ras) -> None:
        p = self._parameterNode
        try:
            if p.liveGrowth and self.logic.isLive(p.method):
                job = self.logic.startLiveJob(p, ras)
                self.growth.start(job)
                slicer.util.setSliceViewerLayers(background=job.session.outputVolume)
                self.showMessage(_("Forming... press 'Stop growth' to keep the tumor as it is."))
            else:
                with slicer.util.WaitCursor():
                    placement = self.logic.placeTumor(p, ras)
                self._gate.finish()
                self._showPlacement(placement)
        except Exception as exc:  # shown in the panel, never as a traceback dialog
            self.growth.stop(keep=False)
            self._gate.finish()
            logging.debug("TumorSynth placement failed", exc_info=True)
            self.showMessage(str(exc), error=True)
        self._updateButtons()

    def _showPlacement(self, placement) -> None:
        parts = []
        for report in placement.reports:
            d, q = report.get("diameter_measured_mm"), report.get("quality_p")
            if d is not None:
                parts.append(f"{d:.1f} mm" + ("" if q is None else _(" (quality P {p:.2f})").format(p=q)))
        message = _("Placed {count} tumor(s): {sizes}").format(count=len(placement.reports), sizes=", ".join(parts))
        if self._parameterNode.qualityScore and self.logic.qualityUnavailable:
            message += "  " + _("No quality score: {reason}").format(reason=self.logic.qualityUnavailable)
        warnings = placement.warnings
        self.showMessage("\n".join([message] + [_("Warning: {text}").format(text=w) for w in warnings]),
                         warning=bool(warnings))
        session = self.logic.existingSession(self._parameterNode.inputVolume)
        slicer.util.setSliceViewerLayers(background=session.outputVolume)

    # -- result buttons ----------------------------------------------------------------------------
    def onRandomSeed(self) -> None:
        self._parameterNode.seed = random.SystemRandom().randrange(1000000)

    def onUndo(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Undo failed."), waitCursor=True):
            self.logic.undo(self._parameterNode.inputVolume)
            self.showMessage(_("Last tumor removed."))
        self._updateButtons()

    def onClear(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Clear failed."), waitCursor=True):
            self.logic.clear(self._parameterNode.inputVolume)
            self.showMessage(_("All tumors removed."))
        self._updateButtons()

    def onExport(self) -> None:
        folder = self.ui.exportDirectoryButton.directory
        with slicer.util.tryWithErrorDisplay(_("Export failed."), waitCursor=True):
            paths = self.logic.export(self._parameterNode.inputVolume, folder, self._parameterNode.exportFormat)
            self.showMessage(_("Exported to {folder}: {files}").format(folder=folder, files=", ".join(p.name for p in paths.values())))

    def onInstallDependencies(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Installing dependencies failed."), waitCursor=True):
            installed = self.logic.installDependencies(confirm=slicer.util.confirmOkCancelDisplay)
            self.showMessage(_("Installed: {names}. Restart Slicer if a method stays unavailable.").format(names=", ".join(installed)) if installed else _("All dependencies are installed."))
        self.choices.updateMethodAvailability()


class TumorSynthLogic(ScriptedLoadableModuleLogic):
    """Node-level operations of the panel, usable without it (thin wrapper over
    ``TumorSynthSlicer``). One ``TumorSession`` (outputs + undo) per input volume.

    Example (Python console)::

        logic = slicer.util.getModuleLogic("TumorSynth")
        p = logic.getParameterNode(); p.inputVolume = ct; p.organ = "liver"
        logic.placeTumor(p, [x, y, z])
    """

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        self._sessions = {}
        self._quality = None
        self.qualityUnavailable = ""

    def getParameterNode(self):
        return TumorSynthParameterNode(super().getParameterNode())

    def lib(self):
        return logicModules()

    def clickNode(self):
        """The (single) markups node that receives placement clicks: hidden, at most one point,
        never saved with the scene (``TumorSynthSlicer.click_logic``)."""
        return self.lib().click.click_node(slicer.mrmlScene)

    def session(self, inputVolume):
        if inputVolume is None:
            raise ValueError(_("Select a CT volume first."))
        session = self._sessions.get(inputVolume.GetID())
        if session is None or session.inputVolume is not inputVolume:
            session = self.lib().output.TumorSession(inputVolume)
            self._sessions[inputVolume.GetID()] = session
        return session

    def existingSession(self, inputVolume):
        return self._sessions.get(inputVolume.GetID()) if inputVolume is not None else None

    def forgetSessions(self) -> None:
        self._sessions = {}

    def request(self, p):
        placement = self.lib().placement
        options = placement.organ_options(p.massEffect, p.necrosis, p.capsule, p.satellites, p.count, p.lesion)
        return placement.TumorRequest(organ=p.organ, stage=p.stage, diameterMm=float(p.diameterMm),
                                      method=p.method, seed=int(p.seed), options=options)

    def organMask(self, p):
        """Boolean [i, j, k] mask of the chosen organ segment on the CT grid, or None."""
        if p.organSegmentation is None or not p.organSegmentId:
            return None
        return self.lib().segment.segment_mask(p.organSegmentation, p.organSegmentId, p.inputVolume)

    def qualityFilter(self, p):
        """The default model's quality filter when the panel asks for scores (loaded once; None
        with the reason in ``qualityUnavailable`` when it cannot be loaded)."""
        if not p.qualityScore:
            return None
        if self._quality is None and not self.qualityUnavailable:
            self._quality, self.qualityUnavailable = self.lib().placement.load_quality_filter("default")
        return self._quality

    def placeTumor(self, p, ras):
        return self.lib().placement.place_tumor(self.session(p.inputVolume), ras, self.request(p), self.organMask(p),
                                                quality=self.qualityFilter(p))

    def startLiveJob(self, p, ras):
        return self.lib().placement.LiveJob(self.session(p.inputVolume), ras, self.request(p), self.organMask(p),
                                            quality=self.qualityFilter(p))

    def undo(self, inputVolume) -> None:
        self.session(inputVolume).undo()

    def clear(self, inputVolume) -> None:
        self.session(inputVolume).clear()

    def export(self, inputVolume, folder, fmt="nii.gz"):
        return self.lib().export.export_session(self.session(inputVolume), folder, fmt)

    def organSegments(self, segmentation):
        if segmentation is None:
            return []
        seg = self.lib().segment
        return [(sid, seg.segment_name(segmentation, sid)) for sid in seg.segment_ids(segmentation)]

    def guessOrgan(self, segmentation, segmentId):
        if segmentation is None or not segmentId:
            return None
        seg = self.lib().segment
        names = (seg.segment_name(segmentation, segmentId), seg.segment_terminology(segmentation, segmentId))
        return self.lib().catalogue.guess_organ(*names)

    def catalogue(self):
        return self.lib().catalogue.engine_catalogue()

    def methodAvailability(self):
        return self.lib().catalogue.panel_methods()

    def isLive(self, method):
        return self.lib().catalogue.is_live(method)

    def diameterRange(self, stage, organ):
        return self.lib().catalogue.diameter_range(stage, organ)

    def installDependencies(self, confirm):
        return self.lib().install.ensure_python_packages(confirm)


class TumorSynthTest(ScriptedLoadableModuleTest):
    """Slicer's own test runner: phantom CT, one click, undo (no downloads)."""

    def setUp(self) -> None:
        slicer.mrmlScene.Clear()

    def runTest(self) -> None:
        self.setUp()
        self.test_PlaceUndoExport()

    def test_PlaceUndoExport(self) -> None:
        import numpy as np

        logic = TumorSynthLogic()
        segmentLogic = logic.lib().segment
        from scipy.ndimage import distance_transform_edt

        from TumorSynthLib.phantom import make_abdomen

        self.delayDisplay(_("Building a phantom CT"))
        ct, organs, _names = make_abdomen(0, shape=(96, 96, 48), spacing=(3.0, 3.0, 5.0))
        ctNode = slicer.util.addVolumeFromArray(ct.array.transpose(2, 1, 0).astype(np.int16), ct.affine, name="Phantom")
        liver = organs.array == 5
        organSegmentation = segmentLogic.new_segmentation_for(ctNode, "Phantom organs")
        p = logic.getParameterNode()
        p.inputVolume = ctNode
        p.organSegmentation = organSegmentation
        p.organSegmentId = segmentLogic.add_mask_segment(organSegmentation, "liver", liver, (0, 0, 0), ctNode)
        p.diameterMm = 15.0
        deepest = np.unravel_index(np.argmax(distance_transform_edt(liver, sampling=ct.spacing)), liver.shape)
        ras = ct.affine[:3, :3] @ np.asarray(deepest, dtype=float) + ct.affine[:3, 3]
        placement = logic.placeTumor(p, ras)
        self.assertEqual(len(placement.segmentIds), 1)
        session = logic.session(ctNode)
        self.assertEqual(session.outputVolume.GetName(), "Phantom + tumors")
        self.assertTrue(np.array_equal(slicer.util.arrayFromVolume(ctNode), ct.array.transpose(2, 1, 0).astype(np.int16)))
        logic.undo(ctNode)
        self.assertEqual(session.tumorCount, 0)
        self.delayDisplay(_("Test passed"))
