"""Export of a session: files that TumorSynthLib reads back on the same (world) geometry."""
from __future__ import annotations

import json

import numpy as np
import pytest

from slicer_test_phantom import require_slicer_core, voxel_to_world

require_slicer_core()


@pytest.fixture
def session_with_tumor(scene, ct_node, organ_mask, engine):
    from TumorSynthSlicer import output_logic, placement_logic

    session = output_logic.TumorSession(ct_node)
    request = placement_logic.TumorRequest(organ="liver", diameterMm=12.0, seed=5)
    placement_logic.place_tumor(session, voxel_to_world([26, 22, 11]), request,
                                organMask=organ_mask)
    return session


@pytest.mark.parametrize("fmt", ["nii.gz", "nrrd"])
def test_export_round_trips_through_tumorsynthlib(session_with_tumor, ct_node, tmp_path, fmt):
    from TumorSynthLib.core.volume_io import load_volume
    from TumorSynthSlicer import segment_logic
    from TumorSynthSlicer.export_logic import export_session
    from TumorSynthSlicer.volume_logic import array_ijk, world_affine

    session = session_with_tumor
    paths = export_session(session, tmp_path / "out", fmt=fmt)
    affine = world_affine(session.outputVolume)

    image = load_volume(paths["image"])
    assert image.shape == array_ijk(session.outputVolume).shape
    assert np.allclose(image.affine, affine, atol=1e-4)
    assert np.array_equal(image.array, array_ijk(session.outputVolume))
    assert image.metadata.get("synthetic") is True

    label = load_volume(paths["label"])
    assert np.allclose(label.affine, affine, atol=1e-4)
    assert np.array_equal(label.array, array_ijk(session.labelsVolume))

    tumor = segment_logic.segment_mask(session.segmentation,
                                       segment_logic.segment_ids(session.segmentation)[0], ct_node)
    seg = load_volume(paths["segmentation"])
    assert seg.shape == tumor.shape and np.allclose(seg.affine, affine, atol=1e-4)
    assert np.array_equal(seg.array > 0, tumor)

    report = json.loads(paths["report"].read_text())
    assert report["synthetic"] is True and report["tumor_count"] == 1
    assert report["tumors"][0]["method"] == "handcrafted"
    assert report["label_names"] == {"0": "background", "1": "organ", "2": "tumor"}
    # the scene's segmentation keeps its parent transform (only the written copy is hardened)
    assert session.segmentation.GetTransformNodeID() == ct_node.GetTransformNodeID()


def test_export_before_any_tumor_says_what_to_do(scene, ct_node, tmp_path):
    from TumorSynthSlicer.errors import SlicerLogicError
    from TumorSynthSlicer.export_logic import export_session
    from TumorSynthSlicer.output_logic import TumorSession

    with pytest.raises(SlicerLogicError, match="place at least one tumor"):
        export_session(TumorSession(ct_node), tmp_path)
