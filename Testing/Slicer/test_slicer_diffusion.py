"""Live diffusion in the Slicer logic: the denoising advances one step per tick, the model's
current estimate is shown in the output volume while it forms, stopping restores the volume,
and the chunked result equals the one-shot placement (tiny model trained in the session)."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from slicer_test_phantom import phantom_arrays, require_slicer_core, voxel_to_world

require_slicer_core()
if importlib.util.find_spec("torch") is None or importlib.util.find_spec("monai") is None:
    pytest.skip("the diffusion appearance needs torch and monai", allow_module_level=True)

CLICK = [26, 22, 11]


def _request(model):
    from TumorSynthSlicer.placement_logic import TumorRequest

    return TumorRequest(organ="liver", stage="early", diameterMm=12.0, method="diffusion", seed=2,
                        options={"diffusion_model": str(model)})


def test_chunked_diffusion_shows_the_estimate_and_equals_one_shot(scene, ct_node, organ_mask, engine,
                                                                   tiny_diffusion_models, diffusion_home):
    from TumorSynthSlicer import output_logic, placement_logic, segment_logic
    from TumorSynthSlicer.volume_logic import array_ijk

    model = tiny_diffusion_models.ddpm
    session = output_logic.TumorSession(ct_node)
    job = placement_logic.LiveJob(session, voxel_to_world(CLICK), _request(model), organMask=organ_mask,
                                  stepsPerTick=5)
    assert job.progressText == "starting" and job.progress == 0.0
    texts, shown = [], []
    while not job.done:
        state = job.tick()
        texts.append(job.progressText)
        shown.append(not np.array_equal(array_ijk(session.outputVolume), array_ijk(ct_node)))
        assert 0.0 <= job.progress <= 1.0
    assert texts[:4] == ["denoising: step 0 / 4", "denoising: step 1 / 4", "denoising: step 2 / 4",
                         "denoising: step 3 / 4"] and texts[-1] == "done"
    assert shown == [False, True, True, True, True]          # the estimate appears with step 1
    assert state.image is not None
    ids = segment_logic.segment_ids(session.segmentation)
    assert [segment_logic.segment_name(session.segmentation, s) for s in ids] == ["Tumor 1 (forming)"]
    placement = job.finish()
    chunked = array_ijk(session.outputVolume).copy()

    other = output_logic.TumorSession(ct_node)
    one_shot = placement_logic.place_tumor(other, voxel_to_world(CLICK), _request(model), organMask=organ_mask)
    assert np.array_equal(chunked, array_ijk(other.outputVolume))               # chunked == one-shot
    assert placement.reports[0]["appearance_info"]["model_sha256"] == \
        one_shot.reports[0]["appearance_info"]["model_sha256"]
    ids = segment_logic.segment_ids(session.segmentation)
    assert [segment_logic.segment_name(session.segmentation, s) for s in ids] == ["Tumor 1"]
    session.undo()                                                               # undo as for any tumor
    assert np.array_equal(array_ijk(session.outputVolume), array_ijk(ct_node))
    assert np.array_equal(array_ijk(ct_node), phantom_arrays()[0])               # input untouched


def test_stopping_diffusion_restores_the_output(scene, ct_node, organ_mask, engine, tiny_diffusion_models,
                                                diffusion_home):
    from TumorSynthSlicer import output_logic, placement_logic
    from TumorSynthSlicer.volume_logic import array_ijk

    session = output_logic.TumorSession(ct_node)
    first = placement_logic.place_tumor(session, voxel_to_world([20, 18, 11]),
                                        placement_logic.TumorRequest(organ="liver", diameterMm=8.0, seed=1),
                                        organMask=organ_mask)
    assert first.segmentIds
    before = array_ijk(session.outputVolume).copy()
    job = placement_logic.LiveJob(session, voxel_to_world([32, 26, 11]),
                                  _request(tiny_diffusion_models.ddpm), organMask=organ_mask)
    job.tick()
    job.tick()
    assert not np.array_equal(array_ijk(session.outputVolume), before)         # estimate shown
    job.stop()
    assert np.array_equal(array_ijk(session.outputVolume), before)             # restored exactly
    assert session.tumorCount == 1 and session.hasOutputs
