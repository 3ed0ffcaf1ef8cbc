"""Masks <-> segments on the transformed oblique CT; terminology; labelmap import."""
from __future__ import annotations

from pathlib import Path

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


def _slicer_terminologies():
    """Slicer's terminology files, as trame-slicer ships them (the [web] extra), loaded into
    Slicer's own terminology logic; skips when they are not installed."""
    import importlib.util

    import pytest
    import slicer

    spec = importlib.util.find_spec("trame_slicer")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("Slicer's terminology files come with trame-slicer (pip install -e '.[web]')")
    folder = Path(next(iter(spec.submodule_search_locations))) / "resources" / "terminologies"
    logic = slicer.vtkSlicerTerminologiesModuleLogic()
    for path in sorted(folder.glob("SegmentationCategoryType*.json")):
        assert logic.LoadTerminologyFromFile(str(path))
    for path in sorted(folder.glob("AnatomicRegion*.json")):
        assert logic.LoadRegionContextFromFile(str(path))
    return logic


def _has_type(logic, context: str, category_code: str, type_code: str) -> bool:
    import slicer

    category, kind = slicer.vtkSlicerTerminologyCategory(), slicer.vtkSlicerTerminologyType()
    for i in range(logic.GetNumberOfCategoriesInTerminology(context)):
        logic.GetNthCategoryInTerminology(context, i, category)
        if category.GetCodeValue() != category_code:
            continue
        for j in range(logic.GetNumberOfTypesInTerminologyCategory(context, category)):
            logic.GetNthTypeInTerminologyCategory(context, category, j, kind)
            if kind.GetCodeValue() == type_code:
                return True
    return False


def test_tumor_terminology_names_an_entry_that_exists_in_its_context():
    """Slicer's General Anatomy list has no Neoplasm (only Mass) under Morphologically Altered
    Structure; the DICOM master list has it, and its anatomic context has the organs."""
    import slicer

    from TumorSynthLib.synthesis.lesion_types import SNOMED_CYST
    from TumorSynthSlicer.segment_logic import tumor_terminology

    logic = _slicer_terminologies()
    general = "Segmentation category and type - 3D Slicer General Anatomy list"
    assert not _has_type(logic, general, "49755003", "108369006")
    assert _has_type(logic, general, "49755003", "4147007")              # Mass
    for organ, code in (("liver", "10200004"), ("pancreas", "15776009"), ("kidney", "64033007")):
        entry = slicer.vtkSlicerTerminologyEntry()
        assert logic.DeserializeTerminologyEntry(tumor_terminology(organ), entry)
        context = entry.GetTerminologyContextName()
        assert _has_type(logic, context, entry.GetCategoryObject().GetCodeValue(),
                         entry.GetTypeObject().GetCodeValue()), (organ, context)
        assert entry.GetAnatomicRegionObject().GetCodeValue() == code
        assert logic.UpdateEntryFromLoadedTerminologies(entry, [], [])
        assert entry.GetTerminologyContextName() == context     # found where it says it is
    cyst = slicer.vtkSlicerTerminologyEntry()
    assert logic.DeserializeTerminologyEntry(tumor_terminology("kidney", SNOMED_CYST), cyst)
    assert cyst.GetTypeObject().GetCodeValue() == "367643001"
    assert _has_type(logic, cyst.GetTerminologyContextName(), "49755003", "367643001")
