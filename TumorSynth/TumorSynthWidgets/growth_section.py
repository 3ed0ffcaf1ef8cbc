"""The TumorSynth module's live growth: a live job (cellular growth, diffusion denoising) advanced
in chunks on a Qt timer, with its progress bar and "Stop growth" button (Slicer only).

Kept apart from ``TumorSynth.py`` so that each file has one job; the job itself
(``TumorSynthSlicer.placement_logic``) is tested headless, this file only drives it.
"""
import qt

#: Interval of the timer that advances a live job by one chunk (ms): the GUI stays responsive.
GROWTH_TICK_MS = 50


class LiveGrowth:
    """Runs one live job at a time: ``start`` shows the progress bar and the Stop button and
    starts the timer, each tick advances the job by one chunk, ``stop(keep=True)`` keeps the
    tumor as it is (``job.finish()``: the placement is shown), ``stop(keep=False)`` discards it.
    ``gate`` is the panel's click gate (released when the job ends); ``showPlacement``,
    ``showMessage`` and ``updateButtons`` are the panel's own callbacks."""

    def __init__(self, ui, gate, showPlacement, showMessage, updateButtons) -> None:
        self.ui, self.gate = ui, gate
        self.showPlacement, self.showMessage, self.updateButtons = showPlacement, showMessage, updateButtons
        self.job = None
        self.timer = qt.QTimer()
        self.timer.setInterval(GROWTH_TICK_MS)
        self.timer.timeout.connect(self.tick)
        self.ui.stopGrowthButton.visible = False
        self.ui.growthProgressBar.visible = False

    def start(self, job) -> None:
        self.job = job
        self.gate.job = "growth"
        self.ui.stopGrowthButton.visible = True
        self._showProgress()
        self.timer.start()

    def tick(self) -> None:
        if self.job is None:
            return
        try:
            self.job.tick()
            self._showProgress()
            if self.job.done:
                self.stop(keep=True)
        except Exception as exc:  # shown in the panel, never as a traceback dialog
            job = self._release()
            try:
                job.stop()
            finally:
                self.showMessage(str(exc), error=True)
                self.updateButtons()

    def stop(self, keep: bool = True) -> None:
        self.timer.stop()
        if self.job is None:
            return
        job = self._release()
        try:
            if keep:
                self.showPlacement(job.finish())
            else:
                job.stop()
        except Exception as exc:
            self.showMessage(str(exc), error=True)
        self.updateButtons()

    def _release(self):
        """Stop the timer, forget the job, free the gate and hide the job's widgets; the job."""
        self.timer.stop()
        job, self.job = self.job, None
        self.gate.finish()
        self.ui.stopGrowthButton.visible = False
        self._showProgress()
        return job

    def _showProgress(self) -> None:
        bar = self.ui.growthProgressBar
        bar.visible = self.job is not None
        if self.job is not None:
            bar.value = int(round(100 * self.job.progress))
            bar.format = self.job.progressText
