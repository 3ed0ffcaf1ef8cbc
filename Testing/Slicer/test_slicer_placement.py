"""A RAS click on an oblique, anisotropic CT under a parent transform -> a tumor where clicked.

Checks the acceptance points of the interactive module's logic: the tumor centre lands within
half a voxel of the click (world RAS), the input volume node is bit-identical afterwards, the
output segmentation has one "Tumor N" segment per tumor holding exactly the tumor's voxels,
and undo / clear restore the previous arrays.
"""
from __future__ import annotations

import numpy as np
import pytest

from slicer_test_phantom import SPACING, phantom_arrays, require_slicer_core, voxel_to_world

require_slicer_core()

CLICK_VOXEL = np.array([24.3, 20.6, 10.2])     # inside the organ, between voxel centres
SECOND_VOXEL = np.array([33.0, 27.0, 12.0])


def _request(**kw):
    from TumorSynthSlicer.placement_logic import TumorRequest

    return TumorRequest(**{"organ": "liver", "stage": "early", "diameterMm": 10.0,
                           "method": "handcrafted", "seed": 3, **kw})


def _world_centroid(mask: np.ndarray) -> np.ndarray:
    return voxel_to_world(np.argwhere(mask).mean(axis=0))


@pytest.fixture
def placed(scene, ct_node, organ_segmentation, engine):
    """One tumor placed by a click, with the organ taken from a segment."""
    from TumorSynthSlicer import output_logic, placement_logic, segment_logic

    seg, segment_id = organ_segmentation
    organ = segment_logic.segment_mask(seg, segment_id, ct_node)
    session = output_logic.TumorSession(ct_node)
    click = voxel_to_world(CLICK_VOXEL)
    placement = placement_logic.place_tumor(session, click, _request(), organMask=organ)
    return session, placement, click, organ


def test_tumor_lands_at_the_click_and_input_is_untouched(placed, ct_node):
    from TumorSynthSlicer.segment_logic import segment_mask
    from TumorSynthSlicer.volume_logic import array_ijk, world_affine

    session, placement, click, _organ = placed
    report = placement.reports[0]
    placed_voxel = np.asarray(report["center_voxel"])
    voxel_at_click = np.linalg.inv(world_affine(ct_node)) @ np.append(click, 1.0)
    assert np.all(np.abs(placed_voxel - voxel_at_click[:3]) <= 0.5 + 1e-6)
    assert np.linalg.norm(np.asarray(report["center_placed_ras"]) - click) <= 0.5 * SPACING.max()

    mask = segment_mask(session.segmentation, placement.segmentIds[0], ct_node)
    assert np.array_equal(mask, placement.result.tumor_instances.array == 1)
    assert np.linalg.norm(_world_centroid(mask) - click) <= max(SPACING.max(), 0.15 * 10.0)
    assert np.array_equal(array_ijk(ct_node), phantom_arrays()[0])          # bit-identical
    output = array_ijk(session.outputVolume)
    assert np.array_equal(output, placement.result.image.array)
    assert not np.array_equal(output[mask], array_ijk(ct_node)[mask])        # the tumor shows
    assert np.array_equal(output[~mask], array_ijk(ct_node)[~mask]) or \
        session.outputVolume.GetName() == "CT + tumors"


def test_outputs_are_named_segmented_and_tabulated(placed, ct_node):
    from TumorSynthSlicer import segment_logic, table_logic
    from TumorSynthSlicer.volume_logic import array_ijk

    session, placement, _click, organ = placed
    assert session.outputVolume.GetName() == "CT + tumors"
    assert session.outputVolume.GetTransformNodeID() == ct_node.GetTransformNodeID()
    assert [segment_logic.segment_name(session.segmentation, s)
            for s in segment_logic.segment_ids(session.segmentation)] == ["Tumor 1"]
    labels = array_ijk(session.labelsVolume)
    assert np.array_equal(labels == 2, placement.result.tumor_instances.array > 0)
    assert np.all(labels[organ & (labels != 2)] == 1)
    assert table_logic.column_values(session.table, "Tumor") == ["Tumor 1"]
    assert table_logic.column_values(session.table, "Method") == ["handcrafted"]
    diameter = float(table_logic.column_values(session.table, "Diameter")[0])
    assert diameter == pytest.approx(placement.reports[0]["diameter_measured_mm"], rel=1e-3)


def test_second_tumor_writes_into_the_same_output_then_undo_and_clear(placed, ct_node):
    from TumorSynthSlicer import placement_logic, segment_logic, table_logic
    from TumorSynthSlicer.errors import NothingToUndoError
    from TumorSynthSlicer.volume_logic import array_ijk

    session, _placement, _click, organ = placed
    after_first = array_ijk(session.outputVolume).copy()
    labels_first = array_ijk(session.labelsVolume).copy()
    second = placement_logic.place_tumor(session, voxel_to_world(SECOND_VOXEL),
                                         _request(seed=4, options={"count": 2}),
                                         organMask=organ)
    assert len(second.segmentIds) == 2                       # count=2: one segment per tumor
    assert [segment_logic.segment_name(session.segmentation, s) for s in second.segmentIds] == \
        ["Tumor 2", "Tumor 3"]
    assert table_logic.column_values(session.table, "Tumor") == ["Tumor 1", "Tumor 2", "Tumor 3"]
    first_mask = segment_logic.segment_mask(session.segmentation,
                                            segment_logic.segment_ids(session.segmentation)[0],
                                            ct_node)
    for sid in second.segmentIds:                            # never inside the first tumor
        assert not (segment_logic.segment_mask(session.segmentation, sid, ct_node)
                    & first_mask).any()

    session.undo()
    assert np.array_equal(array_ijk(session.outputVolume), after_first)
    assert np.array_equal(array_ijk(session.labelsVolume), labels_first)
    assert len(segment_logic.segment_ids(session.segmentation)) == 1
    assert table_logic.column_values(session.table, "Tumor") == ["Tumor 1"]

    session.clear()
    assert np.array_equal(array_ijk(session.outputVolume), array_ijk(ct_node))
    assert not array_ijk(session.labelsVolume).any()
    assert segment_logic.segment_ids(session.segmentation) == []
    assert table_logic.column_values(session.table, "Tumor") == []
    with pytest.raises(NothingToUndoError):
        session.undo()
    assert np.array_equal(array_ijk(ct_node), phantom_arrays()[0])


def test_click_outside_the_organ_leaves_no_output(scene, ct_node, organ_mask, engine):
    from TumorSynthLib.core.errors import PlacementError
    from TumorSynthSlicer import output_logic, placement_logic

    session = output_logic.TumorSession(ct_node)
    nodes_before = scene.GetNumberOfNodes()
    with pytest.raises(PlacementError):
        placement_logic.place_tumor(session, voxel_to_world([2, 2, 2]), _request(),
                                    organMask=organ_mask)
    assert not session.hasOutputs
    assert scene.GetNumberOfNodes() == nodes_before


def test_a_cyst_from_the_lesion_menu_is_placed_and_reported_benign(scene, ct_node, organ_segmentation, engine):
    from TumorSynthSlicer import output_logic, placement_logic, segment_logic

    seg, segment_id = organ_segmentation
    organ = segment_logic.segment_mask(seg, segment_id, ct_node)
    session = output_logic.TumorSession(ct_node)
    request = _request(options=placement_logic.organ_options(lesion="cyst"))
    placement = placement_logic.place_tumor(session, voxel_to_world(CLICK_VOXEL), request, organMask=organ)
    report = placement.reports[0]
    assert report["lesion"] == "cyst" and report["benign"] is True and report["appearance"] == "cyst"
    segment_id = placement.segmentIds[0]
    assert segment_logic.segment_name(session.segmentation, segment_id) == "Cyst 1"
    assert "367643001" in segment_logic.segment_terminology(session.segmentation, segment_id)


class FixedScore:
    """A stand-in quality filter: every tumor scores ``p`` (records the masks it saw)."""

    def __init__(self, p: float) -> None:
        self.p, self.sizes = p, []

    def score_volume(self, image, mask) -> float:
        assert mask.shape == image.shape
        self.sizes.append(int(mask.sum()))
        return self.p


def test_quality_p_fills_the_table_when_a_filter_is_given(scene, ct_node, organ_segmentation, engine):
    from TumorSynthSlicer import output_logic, placement_logic, segment_logic, table_logic

    seg, segment_id = organ_segmentation
    organ = segment_logic.segment_mask(seg, segment_id, ct_node)
    session = output_logic.TumorSession(ct_node)
    plain = placement_logic.place_tumor(session, voxel_to_world(CLICK_VOXEL), _request(), organMask=organ)
    assert "quality_p" not in plain.reports[0]
    scorer = FixedScore(0.83)
    scored = placement_logic.place_tumor(session, voxel_to_world(SECOND_VOXEL), _request(seed=4),
                                         organMask=organ, quality=scorer)
    assert scored.reports[0]["quality_p"] == 0.83
    assert scorer.sizes == [int((scored.result.tumor_instances.array == 1).sum())]
    assert table_logic.column_values(session.table, "Quality P") == ["nan", "0.83"]


def test_default_quality_filter_loads_or_says_why(tiny_segmentation_run, tmp_path):
    from TumorSynthSlicer import placement_logic

    quality, reason = placement_logic.load_quality_filter(str(tiny_segmentation_run.checkpoint), "cpu")
    assert quality is not None and reason == "" and quality.organ == "liver"
    missing, reason = placement_logic.load_quality_filter(str(tmp_path / "none.pt"), "cpu")
    assert missing is None and "neither" in reason
