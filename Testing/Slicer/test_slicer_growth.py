"""Live tumors from a timer (cellular growth): a preview segment grows tick by tick; finishing
records the tumor like a one-shot placement, stopping leaves the scene as before the click."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from slicer_test_phantom import require_slicer_core, voxel_to_world

require_slicer_core()
if importlib.util.find_spec("torch") is None:
    pytest.skip("the cellular method needs torch", allow_module_level=True)


def _job(ct_node, organ_mask, session=None):
    from TumorSynthSlicer import output_logic, placement_logic

    session = session or output_logic.TumorSession(ct_node)
    request = placement_logic.TumorRequest(organ="liver", stage="early", diameterMm=9.0,
                                           method="cellular", seed=1)
    return session, placement_logic.LiveJob(session, voxel_to_world([26, 22, 11]), request,
                                              organMask=organ_mask, stepsPerTick=12)


def test_growth_preview_grows_then_is_recorded(scene, ct_node, organ_mask, engine):
    from TumorSynthSlicer import segment_logic
    from TumorSynthSlicer.volume_logic import array_ijk

    session, job = _job(ct_node, organ_mask)
    sizes = []
    for _ in range(3):
        job.tick()
        ids = segment_logic.segment_ids(session.segmentation)
        assert [segment_logic.segment_name(session.segmentation, s) for s in ids] == \
            ["Tumor 1 (forming)"]
        sizes.append(segment_logic.segment_mask(session.segmentation, ids[0], ct_node).sum())
    assert sizes[0] < sizes[-1]                                     # it grows between ticks
    placement = job.finish()
    ids = segment_logic.segment_ids(session.segmentation)
    assert [segment_logic.segment_name(session.segmentation, s) for s in ids] == ["Tumor 1"]
    mask = segment_logic.segment_mask(session.segmentation, ids[0], ct_node)
    assert np.array_equal(mask, placement.result.tumor_instances.array == 1)
    assert placement.reports[0]["method"] == "cellular" and session.canUndo
    assert not np.array_equal(array_ijk(session.outputVolume), array_ijk(ct_node))


def test_stopping_a_first_growth_leaves_no_output(scene, ct_node, organ_mask, engine):
    nodes_before = scene.GetNumberOfNodes()
    session, job = _job(ct_node, organ_mask)
    job.tick()
    assert session.hasOutputs
    job.stop()
    assert not session.hasOutputs and scene.GetNumberOfNodes() == nodes_before
