"""Masks <-> segments on the transformed oblique CT; terminology; labelmap import."""
from __future__ import annotations

import numpy as np

from slicer_test_phantom import require_slicer_core

require_slicer_core()


def test_roi_mask_round_trips_through_a_segment(ct_node):
    from TumorSynthSlicer import segment_logic

    seg = segment_logic.new_segmentation_for(ct_node, "Tumors")
    roi = np.zeros((6, 5, 4), dtype=bool)
    roi[1:5, 2:4, 1:3] = True
    roi[0, 0, 0] = True
    term = segment_logic.tumor_terminology("liver")
    segment_id = segment_logic.add_mask_segment(seg, "Tumor 1", roi, (10, 7, 3), ct_node,
                                                terminology=term)
    expected = np.zeros(ct_node.GetImageData().GetDimensions(), dtype=bool)
    expected[10:16, 7:12, 3:7] = roi
    assert np.array_equal(segment_logic.segment_mask(seg, segment_id, ct_node), expected)
    assert seg.GetTransformNodeID() == ct_node.GetTransformNodeID()
    assert segment_logic.segment_terminology(seg, segment_id) == term
    assert "SCT^108369006^Neoplasm" in term and "SCT^10200004^Liver" in term


def test_import_labelmap_names_segments_by_value(scene, ct_node):
    from TumorSynthSlicer import segment_logic
    from TumorSynthSlicer.volume_logic import labelmap_on_grid

    labels = np.zeros(ct_node.GetImageData().GetDimensions(), dtype=np.uint8)
    labels[5:20, 5:20, 5:10] = 1
    labels[8:11, 8:11, 6:8] = 2
    labelmap = labelmap_on_grid(ct_node, labels, "pred")
    seg = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "pred seg")
    mapping = segment_logic.import_labelmap(seg, labelmap, {1: "Organ", 2: "Tumor"})
    assert [segment_logic.segment_name(seg, mapping[v]) for v in (1, 2)] == ["Organ", "Tumor"]
    assert np.array_equal(segment_logic.segment_mask(seg, mapping[2], labelmap), labels == 2)


def test_organ_is_guessed_from_segment_name_or_terminology():
    from TumorSynthSlicer.catalogue_logic import guess_organ
    from TumorSynthSlicer.placement_logic import organ_options
    from TumorSynthSlicer.segment_logic import tumor_terminology

    assert guess_organ("kidney_left", "") == "kidney"
    assert guess_organ("Segment_1", tumor_terminology("pancreas")) == "pancreas"
    assert guess_organ("Segment_1", "") is None
    assert organ_options(massEffect="on", necrosis="off", count=3) == \
        {"mass_effect": True, "necrosis": False, "count": 3}
