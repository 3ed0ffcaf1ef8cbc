"""The module files' Logic and Test classes run headless on slicer-core.

slicer-core has no Qt, ``ScriptedLoadableModule`` or ``parameterNodeWrapper``; this test puts
minimal stand-ins for exactly those names into ``sys.modules`` (removed afterwards), imports
``TumorSynth.py`` / ``TumorSynthTrainer.py`` and drives their Logic wrappers and their own
``ScriptedLoadableModuleTest`` methods against a real MRML scene. The widgets are not
exercised (they need Slicer's GUI).
"""
from __future__ import annotations

import importlib
import sys
import types
import unittest
from unittest import mock

import numpy as np
import pytest

from slicer_test_phantom import require_slicer_core, voxel_to_world

require_slicer_core()


def _parameter_node_wrapper(cls):
    """Stand-in for slicer.parameterNodeWrapper: attributes with the declared defaults."""
    names = list(cls.__annotations__)

    class Wrapped:
        def __init__(self, _node=None):
            for name in names:
                setattr(self, name, getattr(cls, name, None))

    Wrapped.__name__ = cls.__name__
    return Wrapped


class _Logic:
    def __init__(self):
        pass

    def getParameterNode(self):
        return None


class _Test(unittest.TestCase):
    def delayDisplay(self, message, *args, **kwargs):
        pass


@pytest.fixture
def modules(scene, slicer_mod, monkeypatch, tmp_path):
    """Import both module files with stand-ins for the Qt-only Slicer names."""
    stubs = {
        "qt": mock.MagicMock(name="qt"),
        "ctk": mock.MagicMock(name="ctk"),
        "slicer.i18n": types.SimpleNamespace(tr=lambda text: text,
                                             translate=lambda context, text: text),
        "slicer.parameterNodeWrapper": types.SimpleNamespace(
            parameterNodeWrapper=_parameter_node_wrapper, Choice=lambda *a: None,
            WithinRange=lambda *a: None),
        "slicer.ScriptedLoadableModule": types.SimpleNamespace(
            ScriptedLoadableModule=type("ScriptedLoadableModule", (), {}),
            ScriptedLoadableModuleWidget=type("ScriptedLoadableModuleWidget", (), {}),
            ScriptedLoadableModuleLogic=_Logic, ScriptedLoadableModuleTest=_Test),
    }
    for name, module in stubs.items():
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setenv("TUMORSYNTH_HOME", str(tmp_path / "home"))
    for name in ("TumorSynth", "TumorSynthTrainer"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    yield importlib.import_module("TumorSynth"), importlib.import_module("TumorSynthTrainer")
    for name in ("TumorSynth", "TumorSynthTrainer"):
        sys.modules.pop(name, None)


def test_interactive_logic_places_undoes_and_exports(modules, scene, ct_node, organ_segmentation,
                                                     tmp_path, engine):
    TumorSynth, _trainer = modules
    logic = TumorSynth.TumorSynthLogic()
    seg, segment_id = organ_segmentation
    p = logic.getParameterNode()
    p.inputVolume, p.organSegmentation, p.organSegmentId = ct_node, seg, segment_id
    p.diameterMm, p.seed, p.necrosis = 10.0, 2, "off"
    assert logic.guessOrgan(seg, segment_id) == "liver"
    assert logic.organSegments(seg) == [(segment_id, "liver")]
    assert logic.methodAvailability()["handcrafted"] == (True, "")
    assert logic.diameterRange("early", "liver") == (8.0, 20.0)
    assert logic.request(p).options == {"necrosis": False}

    placement = logic.placeTumor(p, voxel_to_world([26, 22, 11]))
    session = logic.existingSession(ct_node)
    assert placement.segmentIds and session.tumorCount == 1
    paths = logic.export(ct_node, tmp_path / "export", "nrrd")
    assert paths["image"].name == "image.nrrd" and paths["segmentation"].exists()
    logic.undo(ct_node)
    assert session.tumorCount == 0 and not session.canUndo
    click = logic.clickNode()
    assert click is logic.clickNode() and click.GetMaximumNumberOfControlPoints() == 1


def test_module_self_tests_pass_headless(modules, scene, engine):
    """The ScriptedLoadableModuleTest classes Slicer's ctest runs, run here on slicer-core."""
    TumorSynth, TumorSynthTrainer = modules
    for case in (TumorSynth.TumorSynthTest(), TumorSynthTrainer.TumorSynthTrainerTest()):
        case.runTest()


def test_trainer_logic_describes_results_and_lists_models(modules):
    _ts, TumorSynthTrainer = modules
    from TumorSynthSlicer.progress_logic import RunProgress
    from TumorSynthSlicer.trainer_logic import JobResult

    logic = TumorSynthTrainer.TumorSynthTrainerLogic()
    assert logic.models() == [] or all("id" in m for m in logic.models())
    assert "home" in logic.modelsFolderText()
    with pytest.raises(ValueError, match="train a model first"):
        logic.registerLastCheckpoint()
    summary = {"tumor_dsc": {"mean": 0.5}, "sensitivity": 0.75}
    text = logic.describeResult(JobResult("evaluate", RunProgress(), {"summary": summary}))
    assert "0.500" in text and "0.75" in text
    assert np.isclose(RunProgress(total=4, step=1).fraction, 0.25)


def test_tumor_choices_section_follows_the_engine_and_the_organ_segment(modules, scene, ct_node,
                                                                        organ_segmentation, engine):
    """The panel's choices section (``TumorSynthWidgets.choices_section``) over the real logic:
    combo boxes filled from the engine catalogue, the organ guessed from the chosen segment, the
    diameter kept in the stage's range, missing dependencies shown."""
    from types import SimpleNamespace

    from panel_standins import Combo
    from TumorSynthWidgets.choices_section import TumorChoices

    TumorSynth, _trainer = modules
    logic = TumorSynth.TumorSynthLogic()
    ui = SimpleNamespace(organComboBox=Combo(), stageComboBox=Combo(), methodComboBox=Combo(),
                         lesionComboBox=Combo(), organSegmentComboBox=Combo(),
                         dependencyStatusLabel=SimpleNamespace(text=""),
                         diameterSliderWidget=SimpleNamespace(minimum=None, maximum=None))
    p = logic.getParameterNode()
    p.organ, p.stage, p.diameterMm = "pancreas", "early", 60.0
    choices = TumorChoices(ui, logic, lambda: p)
    choices.connect()
    catalogue = logic.lib().catalogue
    assert [t for t, _d in ui.organComboBox.items] == catalogue.panel_organs()
    assert [t for t, _d in ui.methodComboBox.items] == list(catalogue.panel_methods())
    choices.show()
    assert ui.organComboBox.currentText == "pancreas" and ui.stageComboBox.currentText == "early"
    choices.updateDiameterRange()                                    # 60 mm is no early tumor
    lo, hi = logic.diameterRange("early", "pancreas")
    assert (ui.diameterSliderWidget.minimum, ui.diameterSliderWidget.maximum) == (lo, hi) and lo <= p.diameterMm <= hi
    choices.updateMethodAvailability()
    availability = logic.methodAvailability()
    rows = ui.methodComboBox.rows
    assert [r.enabled for r in rows] == [availability[m][0] for m in availability]
    assert ui.dependencyStatusLabel.text

    seg, segment_id = organ_segmentation
    p.organSegmentation, p.organSegmentId = seg, ""
    choices.onOrganSourceChanged()                                   # the "liver" segment is chosen
    assert ui.organSegmentComboBox.items == [("liver", segment_id)] and ui.organSegmentComboBox.enabled
    assert p.organSegmentId == segment_id and p.organ == "liver"
    ui.organComboBox.setCurrentIndex(ui.organComboBox.findText("kidney"))   # the user overrides
    assert p.organ == "kidney"
