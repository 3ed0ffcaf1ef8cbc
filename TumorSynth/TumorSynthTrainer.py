"""TumorSynthTrainer: train, apply and evaluate tumor segmentation models in the background.

Each job runs ``tumorsynth train|segment|evaluate --events jsonl`` as a separate process (the
GUI stays responsive; Cancel ends the whole process tree, training keeps ``last.pt``; Resume
continues it). Results come back as segmentation nodes (closed surface), tables and a chart.
The widget only wires the panel; the jobs live in ``TumorSynthSlicer.trainer_logic``.
"""
import os
import sys
from typing import Annotated, Union

import qt
import slicer
from slicer import (
    vtkMRMLLabelMapVolumeNode,
    vtkMRMLScalarVolumeNode,
    vtkMRMLSegmentationNode,
)
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

DEVICES = ("auto", "cpu", "cuda")


def modulePaths():
    """``TumorSynthSlicer.module_paths`` (this module's folder put on sys.path first)."""
    here = os.path.dirname(os.path.abspath(__file__))
    if here not in sys.path:
        sys.path.insert(0, here)          # this folder's TumorSynthSlicer, not an installed copy
    from TumorSynthSlicer import module_paths

    return module_paths


def trainerModules():
    """The TumorSynthSlicer logic modules by short name (the engine's folder on sys.path)."""
    return modulePaths().load_logic(("process", "trainer", "catalogue"))


class TumorSynthTrainer(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("TumorSynth Trainer")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Segmentation")]
        self.parent.dependencies = []
        self.parent.contributors = ["TumorSynth developers (TumorSynth project)"]
        self.parent.helpText = _(
            "Train a tumor segmentation model on CT scans with synthetic tumors added on the fly, "
            "apply it to a volume, and evaluate predictions against references. Jobs run in the "
            "background; trained models can be removed from this panel.")
        self.parent.acknowledgementText = _("Built on MONAI and PyTorch (through the PyTorch extension).")
        iconPath = modulePaths().resource_path("Icons/TumorSynthTrainer.png")
        if os.path.exists(iconPath):
            self.parent.icon = qt.QIcon(iconPath)


@parameterNodeWrapper
class TumorSynthTrainerParameterNode:
    trainImage: vtkMRMLScalarVolumeNode
    trainLabel: vtkMRMLLabelMapVolumeNode
    # organ, model (architecture) and method: combo boxes filled from the engine in setup()
    organ: str = "liver"
    model: str = "unet"
    method: str = "handcrafted"
    stageMix: str = "early=0.8,intermediate=0.1,advanced=0.1"
    maxSteps: Annotated[int, WithinRange(1, 10000000)] = 2000
    maxMinutes: Annotated[float, WithinRange(0.0, 100000.0)] = 0.0
    device: Annotated[str, Choice(DEVICES)] = "auto"
    runName: str = "liver-run"
    applyVolume: vtkMRMLScalarVolumeNode
    applyOrgans: Union[vtkMRMLSegmentationNode, vtkMRMLLabelMapVolumeNode, None]
    prediction: Union[vtkMRMLSegmentationNode, vtkMRMLLabelMapVolumeNode, None]
    reference: Union[vtkMRMLSegmentationNode, vtkMRMLLabelMapVolumeNode, None]
    gridVolume: vtkMRMLScalarVolumeNode


class TumorSynthTrainerWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """Train / Apply / Evaluate panels sharing one progress area. No computation here."""

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._pairs = []

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(modulePaths().resource_path("UI/TumorSynthTrainer.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = TumorSynthTrainerLogic()
        self.resultsView = slicer.qMRMLTableView()
        self.resultsView.setMRMLScene(slicer.mrmlScene)
        self.ui.resultsFrame.layout().addWidget(self.resultsView)
        from TumorSynthWidgets.job_section import JobPanel

        self.jobPanel = JobPanel(self.ui, self.logic, self.resultsView, self.refreshModels)
        self.ui.runDirectoryButton.directory = self.logic.defaultRunsFolder()

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.ui.addPairButton.clicked.connect(self.onAddPair)
        self.ui.clearPairsButton.clicked.connect(self.onClearPairs)
        self.ui.trainButton.clicked.connect(lambda: self.onTrain(resume=False))
        self.ui.resumeButton.clicked.connect(lambda: self.onTrain(resume=True))
        self.ui.cancelButton.clicked.connect(self.jobPanel.onCancel)
        self.ui.showChartButton.clicked.connect(self.onShowChart)
        self.ui.refreshModelsButton.clicked.connect(self.refreshModels)
        self.ui.registerModelButton.clicked.connect(self.onRegisterModel)
        self.ui.removeModelButton.clicked.connect(self.onRemoveModel)
        self.ui.applyButton.clicked.connect(self.onApply)
        self.ui.evaluateButton.clicked.connect(self.onEvaluate)
        from TumorSynthWidgets.parameter_combos import ParameterCombos

        self.combos = ParameterCombos(((self.ui.organComboBox, "organ"), (self.ui.architectureComboBox, "model"),
                                       (self.ui.methodComboBox, "method")), lambda: self._parameterNode)
        self.fillChoicesFromEngine()
        self.combos.connect()
        self.initializeParameterNode()
        self.refreshModels()
        self.jobPanel.setRunning(False)

    def cleanup(self) -> None:
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        if self._parameterNode and self._parameterNodeGuiTag is not None:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
        self._parameterNodeGuiTag = None

    def onSceneStartClose(self, caller, event) -> None:
        self.setParameterNode(None)
        self.onClearPairs()

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())

    def setParameterNode(self, inputParameterNode) -> None:
        if self._parameterNode and self._parameterNodeGuiTag is not None:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
        self._parameterNodeGuiTag = None
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.combos.show()

    # -- training ------------------------------------------------------------------------------
    def onAddPair(self) -> None:
        p = self._parameterNode
        if not (p.trainImage and p.trainLabel):
            self.ui.statusLabel.text = _("Pick a volume and its labelmap first.")
            return
        self._pairs.append((p.trainImage, p.trainLabel))
        self.ui.trainPairsList.addItem(f"{p.trainImage.GetName()}  +  {p.trainLabel.GetName()}")

    def onClearPairs(self) -> None:
        self._pairs = []
        self.ui.trainPairsList.clear()

    def onTrain(self, resume: bool) -> None:
        data = self.ui.trainDataPathLineEdit.currentPath or self._pairs
        runDir = os.path.join(self.ui.runDirectoryButton.directory, self._parameterNode.runName)
        with slicer.util.tryWithErrorDisplay(_("Could not start training."), waitCursor=True):
            self.logic.ensureDependencies(confirm=slicer.util.confirmOkCancelDisplay)
            self.ui.logTextEdit.clear()
            self.logic.train(self._parameterNode, data, runDir, resume, **self.jobPanel.callbacks())
            self.jobPanel.setRunning(True)

    def onShowChart(self) -> None:
        if self.logic.curves is not None:
            slicer.modules.plots.logic().ShowChartInLayout(self.logic.curves.chart)

    # -- engine choices --------------------------------------------------------------------------
    def fillChoicesFromEngine(self) -> None:
        """Organs, architectures and available methods as the engine lists them."""
        try:
            choices = self.logic.trainingChoices()
        except Exception as exc:   # no engine or torch yet: say how to install them
            self.ui.statusLabel.text = str(exc)
            return
        self.combos.fill(choices)

    # -- apply / evaluate ----------------------------------------------------------------------
    def refreshModels(self) -> None:
        """Fill Apply's model list; keep the selection, else select the shipped default model."""
        combo = self.ui.modelComboBox
        current = self._currentModel()
        choices = self.logic.modelChoices()
        combo.clear()
        for label, value in choices:
            combo.addItem(label, value)
        combo.setCurrentIndex(trainerModules().trainer.choice_index(choices, current))
        self.ui.modelsFolderLabel.text = self.logic.modelsFolderText()

    def _currentModel(self):
        combo = self.ui.modelComboBox
        return combo.itemData(combo.currentIndex) if combo.currentIndex >= 0 else None

    def onRegisterModel(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Could not register the model."), waitCursor=True):
            entry = self.logic.registerLastCheckpoint()
            self.ui.statusLabel.text = _("Registered model '{id}'.").format(id=entry["id"])
        self.refreshModels()

    def onRemoveModel(self) -> None:
        modelId = self._currentModel()
        if not modelId or not slicer.util.confirmYesNoDisplay(_("Delete model '{id}' and its file?").format(id=modelId)):
            return
        with slicer.util.tryWithErrorDisplay(_("Could not remove the model."), waitCursor=True):
            self.logic.removeModel(modelId)
        self.refreshModels()

    def onApply(self) -> None:
        p = self._parameterNode
        with slicer.util.tryWithErrorDisplay(_("Could not start the segmentation."), waitCursor=True):
            if not self._currentModel() or not p.applyVolume:
                raise ValueError(_("Pick a model and a volume first."))
            self.logic.ensureDependencies(confirm=slicer.util.confirmOkCancelDisplay)
            self.logic.segment(self._currentModel(), p.applyVolume, p.applyOrgans, p.device, p.organ, **self.jobPanel.callbacks())
            self.jobPanel.setRunning(True)

    def onEvaluate(self) -> None:
        p = self._parameterNode
        with slicer.util.tryWithErrorDisplay(_("Could not start the evaluation."), waitCursor=True):
            if not (p.prediction and p.reference and p.gridVolume):
                raise ValueError(_("Pick a prediction, a reference and the CT they belong to."))
            self.logic.ensureDependencies(confirm=slicer.util.confirmOkCancelDisplay)
            self.logic.evaluate(p.prediction, p.reference, p.gridVolume, p.organ, **self.jobPanel.callbacks())
            self.jobPanel.setRunning(True)


class TumorSynthTrainerLogic(ScriptedLoadableModuleLogic):
    """Background jobs with results in the scene (thin wrapper over ``trainer_logic``).

    Example::

        logic = slicer.util.getModuleLogic("TumorSynthTrainer")
        logic.train(logic.getParameterNode(), "/data/healthy_livers", "/tmp/runs/liver1", False)
    """

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        self._jobs = None
        self.curves = None
        self._checkpoints = []

    def getParameterNode(self):
        return TumorSynthTrainerParameterNode(super().getParameterNode())

    def jobs(self):
        lib = trainerModules()
        install, process, trainer = lib.install, lib.process, lib.trainer
        if self._jobs is None or self._jobs.scene is not slicer.mrmlScene:
            engineDir = install.engine_dir(modulePaths().MODULE_DIR)
            self._jobs = trainer.BackgroundJobs(slicer.mrmlScene, lambda ms, fn: qt.QTimer.singleShot(ms, fn),
                                                python=process.python_executable(),
                                                libDir=str(engineDir) if engineDir else None)
        return self._jobs

    def trainingChoices(self):
        """{"organ": [...], "model": [...], "method": [...]} from the engine (methods that run here)."""
        return trainerModules().catalogue.training_choices()

    def defaultRunsFolder(self) -> str:
        return os.path.join(os.path.expanduser("~"), "TumorSynthRuns")

    def ensureDependencies(self, confirm) -> None:
        # PyTorch first (PyTorch extension), then the rest (install_logic says why)
        trainerModules().install.ensure_python_packages(confirm)

    def train(self, p, data, runDir, resume, onUpdate=None, onLog=None, onDone=None):
        trainer = trainerModules().trainer
        request = trainer.TrainRequest(
            data=data, outDir=runDir, organ=p.organ, method=p.method, model=p.model,
            maxSteps=int(p.maxSteps), maxMinutes=float(p.maxMinutes) or None, device=p.device,
            stageMix=p.stageMix or None, resume=resume)
        if not resume or self.curves is None:
            self.curves = self._newCurves()

        def done(result):
            self._checkpoints += [str(result.outputs[k]) for k in ("best.pt", "last.pt") if k in result.outputs]
            if onDone:
                onDone(result)

        return self.jobs().train(request, onUpdate=onUpdate, onLog=onLog, onDone=done)

    def _newCurves(self):
        from TumorSynthSlicer.progress_logic import CurveTables

        return CurveTables(slicer.mrmlScene, "TumorSynth training")

    def syncCurves(self, progress) -> None:
        if self.curves is not None:
            self.curves.sync(progress)

    def segment(self, model, volume, organs=None, device="auto", organ="liver", onUpdate=None, onLog=None, onDone=None):
        return self.jobs().segment(model, volume, organs, device, organ, onUpdate=onUpdate, onLog=onLog, onDone=onDone)

    def evaluate(self, prediction, reference, grid, organ="liver", onUpdate=None, onLog=None, onDone=None):
        return self.jobs().evaluate(prediction, reference, grid, organ, onUpdate=onUpdate, onLog=onLog, onDone=onDone)

    def cancel(self) -> None:
        if self._jobs is not None:
            self._jobs.cancel()

    def models(self):
        try:
            return trainerModules().trainer.list_models()
        except Exception:   # engine not installed yet: the list is simply empty
            return []

    def trainedCheckpoints(self):
        return [c for c in self._checkpoints if os.path.exists(c)]

    def modelChoices(self):
        """(label, id or path) of Apply's model list, the shipped default model first."""
        return trainerModules().trainer.model_choices(self.models(), self.trainedCheckpoints())

    def registerLastCheckpoint(self):
        checkpoints = self.trainedCheckpoints()
        if not checkpoints:
            raise ValueError(_("No checkpoint from this session: train a model first."))
        return trainerModules().trainer.register_model(checkpoints[0], description=_("trained in 3D Slicer"))

    def removeModel(self, modelId) -> None:
        if os.path.exists(modelId):
            raise ValueError(_("This checkpoint is not registered; delete its run folder to remove it."))
        trainerModules().trainer.remove_model(modelId)

    def modelsFolderText(self) -> str:
        try:
            return _("User models are stored in {folder}").format(folder=trainerModules().trainer.models_folder())
        except Exception:
            return ""

    def describeResult(self, result) -> str:
        outputs = result.outputs
        if result.kind == "train":
            return _("Training done: {files}").format(files=", ".join(str(outputs[k]) for k in ("best.pt", "last.pt") if k in outputs))
        if result.kind == "segment":
            return _("Segmented: {n} tumor(s).").format(n=outputs.get("summary", {}).get("tumor_count", 0))
        summary = outputs.get("summary", {})
        dsc = (summary.get("tumor_dsc") or {}).get("mean")
        return _("Evaluated: tumor DSC {dsc}, sensitivity {sens}.").format(
            dsc="n/a" if dsc is None else f"{dsc:.3f}", sens=summary.get("sensitivity", "n/a"))


class TumorSynthTrainerTest(ScriptedLoadableModuleTest):
    """Slicer's own test runner: the registry and the job plumbing on a phantom (no downloads,
    no training: that is covered by Testing/Slicer with slicer-core)."""

    def setUp(self) -> None:
        slicer.mrmlScene.Clear()

    def runTest(self) -> None:
        self.setUp()
        self.test_EvaluateOutcomes()

    def test_EvaluateOutcomes(self) -> None:
        import numpy as np

        logic = TumorSynthTrainerLogic()
        results = trainerModules().trainer.results_logic
        labels = np.zeros((40, 40, 20), dtype=np.uint8)
        labels[5:30, 5:30, 3:15] = 1
        labels[10:14, 10:14, 6:9] = 2
        grid = slicer.util.addVolumeFromArray(np.zeros(labels.shape[::-1], np.int16), name="grid")
        reference = slicer.util.addVolumeFromArray(labels.transpose(2, 1, 0), name="reference", nodeClassName="vtkMRMLLabelMapVolumeNode")
        masks = results.outcome_masks(results.task_labels(reference, grid, "liver"),
                                      results.task_labels(reference, grid, "liver"))
        self.assertEqual(int(masks["True positive"].sum()), 4 * 4 * 3)
        self.assertIsInstance(logic.models(), list)
        self.delayDisplay(_("Test passed"))
