"""The modules' menus come from the engine catalogue: nothing is listed twice."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from slicer_test_phantom import require_slicer_core

require_slicer_core()

MODULES = Path(__file__).resolve().parents[2] / "TumorSynth"


def test_menus_are_the_catalogue():
    from TumorSynthLib.anatomy.organs import ORGANS, STAGES, stage_diameter_range
    from TumorSynthLib.synthesis import registry
    from TumorSynthSlicer import catalogue_logic

    assert catalogue_logic.panel_organs() == list(ORGANS)
    assert catalogue_logic.panel_stages() == list(STAGES)
    methods = catalogue_logic.panel_methods()
    assert list(methods) == registry.method_names()
    for name, (ok, why) in methods.items():
        assert ok == registry.availability("geometry", registry.get_method(name).geometry)[0] \
            and (ok or why)
    for organ in ORGANS:
        for stage in STAGES:
            assert catalogue_logic.diameter_range(stage, organ) == stage_diameter_range(stage, organ)
    assert catalogue_logic.is_live("cellular") and not catalogue_logic.is_live("handcrafted")
    assert catalogue_logic.guess_organ("kidney_left") == "kidney"


def test_training_choices_come_from_the_engine():
    pytest.importorskip("torch")
    from TumorSynthLib.segmentation.models import MODEL_NAMES
    from TumorSynthSlicer import catalogue_logic

    choices = catalogue_logic.training_choices()
    assert choices["model"] == list(MODEL_NAMES) and "handcrafted" in choices["method"]


def _string_tuples(path: Path) -> list[tuple[str, ...]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.Tuple, ast.List)) and node.elts and all(
                isinstance(e, ast.Constant) and isinstance(e.value, str) for e in node.elts):
            out.append(tuple(e.value for e in node.elts))
    return out


@pytest.mark.parametrize("path", sorted(MODULES.glob("*.py")) + sorted((MODULES / "TumorSynthSlicer").glob("*.py")),
                         ids=lambda p: p.name)
def test_no_module_lists_engine_facts(path):
    """No tuple or list of organs, stages or methods is written in the Slicer side."""
    from TumorSynthLib.anatomy.organs import ORGANS, STAGES
    from TumorSynthLib.synthesis import registry

    facts = [set(ORGANS), set(STAGES), set(registry.method_names())]
    for values in _string_tuples(path):
        for fact in facts:
            assert len(set(values) & fact) < 2, f"{path.name} lists {values}: read it from the catalogue"
