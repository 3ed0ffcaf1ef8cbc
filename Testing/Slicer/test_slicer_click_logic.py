"""The placement click (``click_logic``), checked against what Slicer's sources define: the
place-mode shortcut is none of Slicer's own (the Markups toolbar takes Ctrl+Shift+T), the click
node is never saved with the scene, and while a tumor forms a second click starts nothing."""
from __future__ import annotations

import ast
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from slicer_test_phantom import require_slicer_core, voxel_to_world

require_slicer_core()

MODULE_FILE = Path(__file__).resolve().parents[2] / "TumorSynth" / "TumorSynth.py"


def test_place_shortcut_is_free_in_slicer():
    from TumorSynthSlicer.click_logic import PLACE_SHORTCUT, normalize_shortcut, shortcut_conflict

    assert shortcut_conflict(PLACE_SHORTCUT) is None
    assert "qMRMLMarkupsToolBar.cxx" in shortcut_conflict("shift+ctrl+t")   # the old choice
    assert normalize_shortcut("shift+ctrl+g") == normalize_shortcut("Ctrl+Shift+G")
    assert normalize_shortcut("Ctrl+Shift+G") != normalize_shortcut("Ctrl+G")


def test_module_takes_its_shortcut_from_the_logic():
    literals = [node.value for node in ast.walk(ast.parse(MODULE_FILE.read_text()))
                if isinstance(node, ast.Constant) and isinstance(node.value, str)
                and node.value.startswith(("Ctrl+", "Alt+", "Shift+"))]
    assert literals == []


def test_click_node_is_hidden_single_point_and_not_saved_with_the_scene(scene):
    from TumorSynthSlicer.click_logic import click_node, take_click

    node = click_node(scene)
    assert click_node(scene) is node                                   # one per scene
    assert node.GetMaximumNumberOfControlPoints() == 1 and node.GetHideFromEditors()
    other = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "user points")
    other.CreateDefaultDisplayNodes()
    node.AddControlPointWorld(1.0, 2.0, 3.0)
    scene.SetSaveToXMLString(1)
    scene.Commit()
    xml = scene.GetSceneXMLString()
    assert "user points" in xml and "TumorSynth click" not in xml
    assert node.GetDisplayNode().GetSaveWithScene() == 0
    assert take_click(node) == [1.0, 2.0, 3.0] and node.GetNumberOfControlPoints() == 0
    assert take_click(node) is None


class _SlowGrowth:
    """An engine job stand-in that grows one voxel layer per step and never finishes alone."""

    def __init__(self, image, organs, spec, labels, case_id):
        self.step = 0

    def advance(self, n):
        self.step += n
        mask = np.zeros((9, 9, 9), dtype=bool)
        r = min(self.step, 4)
        mask[4 - r:5 + r, 4 - r:5 + r, 4 - r:5 + r] = True
        return SimpleNamespace(mask=mask, roi=SimpleNamespace(lo=(20, 18, 8)), done=False)


def test_second_click_while_a_tumor_forms_starts_nothing(scene, ct_node, organ_mask):
    """What the module's onPointPlaced does with the gate: the second click is refused, so
    only one "(forming)" segment exists, and the gate opens again once the job ends."""
    from TumorSynthSlicer import output_logic, placement_logic, segment_logic
    from TumorSynthSlicer.click_logic import ClickGate, click_node, take_click

    gate, node = ClickGate(), click_node(scene)
    session = output_logic.TumorSession(ct_node)
    request = placement_logic.TumorRequest(organ="liver", method="cellular", seed=1)
    jobs = []

    def click(ijk):
        node.AddControlPointWorld(*voxel_to_world(ijk))
        ras = take_click(node)
        if not gate.accept():
            return gate.message
        gate.start("growth")
        jobs.append(placement_logic.LiveJob(session, ras, request, organ_mask, stepsPerTick=1,
                                            jobFactory=_SlowGrowth))
        return None

    assert click([26, 22, 11]) is None
    jobs[0].tick()
    assert "still forming" in click([20, 20, 10]) and gate.refused == 1
    jobs[0].tick()
    names = [segment_logic.segment_name(session.segmentation, s)
             for s in segment_logic.segment_ids(session.segmentation)]
    assert names == ["Tumor 1 (forming)"] and len(jobs) == 1
    jobs[0].stop()
    gate.finish()
    assert gate.accept() and node.GetNumberOfControlPoints() == 0
