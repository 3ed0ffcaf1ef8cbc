"""Panel sections of the module files (``TumorSynthWidgets``) without Qt: the live growth driving
a real live job on a stand-in timer (progress shown, the gate held while the job runs and freed
after, the placement shown on finish, nothing kept on discard, an error reported in the panel),
and the combo boxes that mirror parameter node fields."""
from __future__ import annotations

import importlib
import importlib.util
import sys
from types import SimpleNamespace
from unittest import mock

import pytest

from panel_standins import Combo
from slicer_test_phantom import require_slicer_core, voxel_to_world

require_slicer_core()
if importlib.util.find_spec("torch") is None:
    pytest.skip("the cellular method needs torch", allow_module_level=True)


@pytest.fixture
def section_class(monkeypatch):
    monkeypatch.setitem(sys.modules, "qt", mock.MagicMock(name="qt"))
    monkeypatch.delitem(sys.modules, "TumorSynthWidgets.growth_section", raising=False)
    yield importlib.import_module("TumorSynthWidgets.growth_section").LiveGrowth
    sys.modules.pop("TumorSynthWidgets.growth_section", None)


class Panel:
    """The panel's widgets and callbacks as the section sees them."""

    def __init__(self) -> None:
        from TumorSynthSlicer.click_logic import ClickGate

        self.ui = SimpleNamespace(stopGrowthButton=SimpleNamespace(visible=True),
                                  growthProgressBar=SimpleNamespace(visible=True, value=0, format=""))
        self.gate = ClickGate()
        self.placements, self.messages, self.updates = [], [], 0

    def section(self, cls):
        def update():
            self.updates += 1

        return cls(self.ui, self.gate, self.placements.append,
                   lambda text, error=False: self.messages.append((text, error)), update)


def _live_job(ct_node, organ_mask):
    from TumorSynthSlicer import output_logic, placement_logic

    session = output_logic.TumorSession(ct_node)
    request = placement_logic.TumorRequest(organ="liver", stage="early", diameterMm=9.0,
                                           method="cellular", seed=1)
    return session, placement_logic.LiveJob(session, voxel_to_world([26, 22, 11]), request,
                                              organMask=organ_mask, stepsPerTick=40)


def test_a_live_job_runs_to_its_end_and_is_shown(section_class, scene, ct_node, organ_mask, engine):
    panel = Panel()
    growth = panel.section(section_class)
    assert not panel.ui.stopGrowthButton.visible and not panel.ui.growthProgressBar.visible
    session, job = _live_job(ct_node, organ_mask)
    panel.gate.start("placement")
    growth.start(job)
    assert panel.gate.job == "growth" and not panel.gate.accept()      # one job at a time
    assert panel.ui.stopGrowthButton.visible and panel.ui.growthProgressBar.visible
    growth.timer.start.assert_called_once()
    shown = []
    for _ in range(200):
        growth.tick()
        if growth.job is None:
            break
        bar = panel.ui.growthProgressBar
        assert (bar.value, bar.format) == (round(100 * job.progress), job.progressText)
        shown.append(bar.format)
    assert growth.job is None and len(shown) >= 2 and shown[0].startswith("growing")
    assert len(panel.placements) == 1 and panel.placements[0].reports and session.tumorCount == 1
    assert panel.gate.accept() and panel.updates == 1 and panel.messages == []
    assert not panel.ui.stopGrowthButton.visible and not panel.ui.growthProgressBar.visible
    growth.stop(keep=True)                                              # nothing running: no-op
    assert len(panel.placements) == 1 and panel.updates == 1


def test_stop_without_keeping_discards_and_a_failing_tick_is_reported(section_class, scene, ct_node,
                                                                      organ_mask, engine):
    panel = Panel()
    growth = panel.section(section_class)
    session, job = _live_job(ct_node, organ_mask)
    growth.start(job)
    growth.tick()
    growth.stop(keep=False)
    assert session.tumorCount == 0 and panel.placements == [] and panel.gate.accept()
    assert growth.timer.stop.called and not panel.ui.stopGrowthButton.visible

    broken = mock.MagicMock(progress=0.0, progressText="")
    broken.tick.side_effect = RuntimeError("the organ mask vanished")
    growth.start(broken)
    growth.tick()
    broken.stop.assert_called_once()
    assert panel.messages == [("the organ mask vanished", True)] and panel.gate.accept()
    assert growth.job is None and not panel.ui.growthProgressBar.visible


def test_parameter_combos_write_the_pick_and_follow_the_node():
    from TumorSynthWidgets.parameter_combos import ParameterCombos

    organ, method = Combo(), Combo()
    node = SimpleNamespace(organ="kidney", method="cellular")
    combos = ParameterCombos(((organ, "organ"), (method, "method")), lambda: node)
    combos.fill({"organ": ["liver", "pancreas", "kidney"], "method": ["handcrafted", "cellular"]})
    combos.connect()
    combos.show()                                              # the node's values are selected
    assert (organ.currentText, method.currentText) == ("kidney", "cellular")
    organ.setCurrentIndex(1)                                   # the user picks: the node follows
    assert node.organ == "pancreas" and node.method == "cellular"
    node.method = "handcrafted"
    combos.show()
    assert method.currentText == "handcrafted" and not method.blocked
    combos.fill({"organ": ["liver"], "method": ["cellular"]})  # refilled: no signal, node kept
    assert node.organ == "pancreas"
    ParameterCombos(((organ, "organ"),), lambda: None).show()  # no parameter node: nothing happens


@pytest.fixture
def job_panel_class(monkeypatch):
    import types

    monkeypatch.setitem(sys.modules, "qt", mock.MagicMock(name="qt"))
    monkeypatch.setitem(sys.modules, "slicer.i18n", types.SimpleNamespace(tr=lambda text: text))
    monkeypatch.delitem(sys.modules, "TumorSynthWidgets.job_section", raising=False)
    yield importlib.import_module("TumorSynthWidgets.job_section").JobPanel
    sys.modules.pop("TumorSynthWidgets.job_section", None)


def _trainer_ui():
    button = lambda: SimpleNamespace(enabled=None)                  # noqa: E731
    return SimpleNamespace(progressBar=SimpleNamespace(maximum=None, value=None), etaLabel=SimpleNamespace(text=""),
                           lossLabel=SimpleNamespace(text=""), statusLabel=SimpleNamespace(text=""),
                           trainButton=button(), resumeButton=button(), applyButton=button(),
                           evaluateButton=button(), cancelButton=button())


def test_job_panel_shows_a_run_from_its_events_to_its_outcome(job_panel_class):
    from TumorSynthSlicer.progress_logic import RunProgress

    ui, logic, view, refreshed = _trainer_ui(), mock.MagicMock(), mock.MagicMock(), []
    logic.describeResult.return_value = "Trained: DSC 0.80"
    panel = job_panel_class(ui, logic, view, lambda: refreshed.append(True))
    panel.setRunning(True)
    assert ui.cancelButton.enabled and not any(getattr(ui, b).enabled for b in
                                               ("trainButton", "resumeButton", "applyButton", "evaluateButton"))
    progress = RunProgress()
    progress.update({"event": "start", "total": 40})
    panel.onProgress(progress)
    assert ui.progressBar.maximum == 100 and ui.progressBar.value == 0 and ui.etaLabel.text == "estimating..."
    progress.update({"event": "progress", "step": 10, "total": 40, "eta_s": 30.0, "loss": 0.5})
    progress.update({"event": "validation", "step": 10, "metrics": {"tumor_dsc": 0.61}})
    panel.onProgress(progress)
    assert ui.progressBar.value == 25 and ui.lossLabel.text == "step 10: loss 0.5000"
    assert ui.etaLabel.text.startswith("ETA") and "validation DSC 0.610" in ui.etaLabel.text
    logic.syncCurves.assert_called_with(progress)

    progress.update({"event": "warning", "message": "case 3 has no liver"})
    progress.update({"event": "done", "step": 40})
    table = object()
    panel.onDone(SimpleNamespace(progress=progress, outputs={"table": table}))
    assert ui.statusLabel.text == "Trained: DSC 0.80\n1 warning(s), e.g. case 3 has no liver"
    view.setMRMLTableNode.assert_called_once_with(table)
    assert refreshed == [True] and not ui.cancelButton.enabled and ui.trainButton.enabled

    for status, error, expected in (("cancelled", None, "Cancelled. Training keeps last.pt"),
                                    ("error", "CUDA out of memory", "CUDA out of memory"),
                                    ("error", None, "The job failed")):
        ended = RunProgress(status=status, error=error)
        panel.onDone(SimpleNamespace(progress=ended, outputs={}))
        assert ui.statusLabel.text.startswith(expected)
    panel.onCancel()
    logic.cancel.assert_called_once()
    assert ui.statusLabel.text.startswith("Cancelling")
