"""Fixtures for the Slicer-side logic tests, run headless against the ``slicer-core`` wheel.

``slicer-core`` gives Slicer's real MRML data model (scene, volume, segmentation, markups,
table and plot nodes, storage nodes) without Qt. Two things the Slicer application normally
does at start-up are done here: ``slicer.mrmlScene`` is assigned a fresh scene per test, and the
segmentation converter rules are registered (without them no segment can be created).

``TumorSynth/`` is put on ``sys.path`` so ``import TumorSynthSlicer`` works as it does inside
Slicer (where the module folder is on the path).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

MODULE_DIR = Path(__file__).resolve().parents[2] / "TumorSynth"
if str(MODULE_DIR) not in sys.path:
    sys.path.insert(0, str(MODULE_DIR))

from slicer_test_phantom import (  # noqa: E402
    LOCAL_AFFINE, PARENT, phantom_arrays, require_slicer_core,
)


@pytest.fixture
def slicer_mod():
    """The ``slicer`` package with converter rules registered (skips without slicer-core)."""
    slicer = require_slicer_core()
    from TumorSynthSlicer.segment_logic import register_converter_rules

    register_converter_rules()
    return slicer


@pytest.fixture
def scene(slicer_mod):
    """A fresh MRML scene, also assigned to ``slicer.mrmlScene`` for slicer.util helpers."""
    scene = slicer_mod.vtkMRMLScene()
    slicer_mod.mrmlScene = scene
    yield scene
    scene.Clear(1)


@pytest.fixture
def ct_node(scene, slicer_mod):
    """CT volume node with oblique, anisotropic IJK->RAS under a linear parent transform."""
    from TumorSynthSlicer.volume_logic import array_to_matrix

    ct, _organ = phantom_arrays()
    node = slicer_mod.util.addVolumeFromArray(ct.transpose(2, 1, 0), LOCAL_AFFINE, name="CT")
    transform = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "Tilt")
    transform.SetMatrixTransformToParent(array_to_matrix(PARENT))
    node.SetAndObserveTransformNodeID(transform.GetID())
    return node


@pytest.fixture
def organ_mask() -> np.ndarray:
    return phantom_arrays()[1]


@pytest.fixture
def organ_segmentation(scene, ct_node, organ_mask):
    """A segmentation node (under the CT's transform) with one "liver" segment."""
    from TumorSynthSlicer import segment_logic

    seg = segment_logic.new_segmentation_for(ct_node, "Organs")
    segment_id = segment_logic.add_mask_segment(seg, "liver", organ_mask, (0, 0, 0), ct_node)
    return seg, segment_id


@pytest.fixture
def engine():
    """The synthesis engine (skips when TumorSynthLib's synthesis API is not importable)."""
    api = pytest.importorskip("TumorSynthLib.synthesis.api",
                              reason="TumorSynthLib synthesis engine not available")
    return api
