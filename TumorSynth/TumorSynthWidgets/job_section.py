"""The TumorSynthTrainer module's job area: progress bar, ETA, loss, log, outcome, results table
and chart of the one background job (train, segment or evaluate), and Cancel (Slicer only).

Kept apart from ``TumorSynthTrainer.py`` so that each file has one job; the job's state comes
from ``TumorSynthSlicer.progress_logic`` and ``trainer_logic`` (tested headless), this file
only shows it.
"""
import qt
import slicer
from slicer.i18n import tr as _

#: Lines kept in the job log (older lines are dropped: a long training writes thousands).
LOG_LIMIT_LINES = 2000


class JobPanel:
    """Shows one background job. ``ui``: the module's widgets; ``logic``: the module logic
    (``syncCurves``, ``describeResult``, ``cancel``); ``resultsView``: the table view of the
    results; ``refreshModels``: called when a job ends (a training may have added a model)."""

    def __init__(self, ui, logic, resultsView, refreshModels) -> None:
        self.ui, self.logic, self.resultsView, self.refreshModels = ui, logic, resultsView, refreshModels

    def callbacks(self):
        """The ``onUpdate`` / ``onLog`` / ``onDone`` callbacks of a job started by the logic."""
        return {"onUpdate": self.onProgress, "onLog": self.onLog, "onDone": self.onDone}

    def onProgress(self, progress) -> None:
        fraction = progress.fraction
        self.ui.progressBar.maximum = 100 if fraction is not None else 0   # 0: busy indicator
        self.ui.progressBar.value = progress.percent
        dice = progress.lastDice()
        self.ui.etaLabel.text = progress.etaText() + ("" if dice is None else _("  |  validation DSC {d:.3f}").format(d=dice))
        if progress.losses:
            self.ui.lossLabel.text = _("step {s}: loss {l:.4f}").format(s=progress.losses[-1][0], l=progress.losses[-1][1])
        self.logic.syncCurves(progress)

    def onLog(self, line: str) -> None:
        self.ui.logTextEdit.appendPlainText(line)
        if self.ui.logTextEdit.document().blockCount > LOG_LIMIT_LINES:
            cursor = self.ui.logTextEdit.textCursor()
            cursor.movePosition(qt.QTextCursor.Start)
            cursor.select(qt.QTextCursor.BlockUnderCursor)
            cursor.removeSelectedText()

    def onDone(self, result) -> None:
        """The job ended: its outcome in the status line, its table and chart shown when done."""
        self.setRunning(False)
        progress = result.progress
        if progress.status == "done":
            message = self.logic.describeResult(result)
            self.showResult(result)
        elif progress.status == "cancelled":
            message = _("Cancelled. Training keeps last.pt: press Resume to continue.")
        else:
            message = progress.error or _("The job failed; see the log below.")
        if progress.warnings:
            message += "\n" + _("{count} warning(s), e.g. {text}").format(count=len(progress.warnings),
                                                                      text=progress.warnings[0])
        self.ui.statusLabel.text = message
        self.refreshModels()

    def showResult(self, result) -> None:
        outputs = result.outputs
        table = outputs.get("table") or outputs.get("metricsTable")
        if table is not None:
            self.resultsView.setMRMLTableNode(table)
        if outputs.get("chart") is not None:
            slicer.modules.plots.logic().ShowChartInLayout(outputs["chart"])

    def onCancel(self) -> None:
        self.logic.cancel()
        self.ui.statusLabel.text = _("Cancelling: the run saves its checkpoint first...")

    def setRunning(self, running: bool) -> None:
        """While a job runs only Cancel is enabled: one job at a time."""
        for button in (self.ui.trainButton, self.ui.resumeButton, self.ui.applyButton, self.ui.evaluateButton):
            button.enabled = not running
        self.ui.cancelButton.enabled = running
