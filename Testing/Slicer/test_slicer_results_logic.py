"""Results of Apply / Evaluate into the scene: prediction segmentation + tumor table, task
labels from nodes, TP/FP/FN segments, metrics table and the sensitivity-by-size chart."""
from __future__ import annotations

import json

import numpy as np
import pytest

from slicer_test_phantom import require_slicer_core

require_slicer_core()


def _task_labels(shape):
    labels = np.zeros(shape, dtype=np.uint8)
    labels[10:40, 8:36, 4:18] = 1
    labels[14:20, 12:18, 8:12] = 2
    return labels


def test_prediction_file_becomes_segmentation_and_table(scene, ct_node, tmp_path, engine):
    from TumorSynthLib.core.volume import Volume
    from TumorSynthLib.core.volume_io import save_volume
    from TumorSynthSlicer import results_logic, segment_logic, table_logic
    from TumorSynthSlicer.volume_logic import world_affine

    labels = _task_labels(ct_node.GetImageData().GetDimensions())
    path = save_volume(Volume(labels, world_affine(ct_node)), tmp_path / "pred.nii.gz")
    summary = {"tumor_count": 1, "tumors": [{"id": 1, "volume_ml": 0.4,
                                             "equivalent_diameter_mm": 9.1,
                                             "centroid_ras": [1.0, 2.0, 3.0]}]}
    seg, table = results_logic.load_prediction(scene, path, "pred", summary)
    ids = segment_logic.segment_ids(seg)
    assert [segment_logic.segment_name(seg, s) for s in ids] == ["Organ", "Tumor"]
    assert np.array_equal(segment_logic.segment_mask(seg, ids[1], ct_node), labels == 2)
    assert seg.GetSegmentation().ContainsRepresentation("Closed surface")
    assert table_logic.column_values(table, "Diameter") == ["9.1"]
    assert json.loads(json.dumps(results_logic.tumor_rows(summary)))[0]["R"] == 1.0


def test_outcomes_are_three_coloured_segments(scene, ct_node):
    from TumorSynthSlicer import results_logic, segment_logic

    ref = _task_labels(ct_node.GetImageData().GetDimensions())
    pred = ref.copy()
    pred[14:17, 12:18, 8:12] = 1          # part of the tumor missed
    pred[30:33, 20:23, 10:12] = 2          # a false tumor
    masks = results_logic.outcome_masks(pred, ref)
    assert masks["True positive"].sum() + masks["False negative"].sum() == (ref == 2).sum()
    seg = segment_logic.new_segmentation_for(ct_node, "outcomes")
    ids = results_logic.add_outcome_segments(seg, masks, ct_node)
    assert list(ids) == ["True positive", "False positive", "False negative"]
    colors = {seg.GetSegmentation().GetSegment(s).GetColor() for s in ids.values()}
    assert len(colors) == 3
    for name, sid in ids.items():
        assert np.array_equal(segment_logic.segment_mask(seg, sid, ct_node), masks[name])


def test_task_labels_from_segmentation_and_labelmap(scene, ct_node):
    from TumorSynthSlicer import results_logic, segment_logic
    from TumorSynthSlicer.errors import NodeGeometryError
    from TumorSynthSlicer.volume_logic import labelmap_on_grid

    ref = _task_labels(ct_node.GetImageData().GetDimensions())
    seg = segment_logic.new_segmentation_for(ct_node, "manual")
    segment_logic.add_mask_segment(seg, "liver", ref >= 1, (0, 0, 0), ct_node)
    segment_logic.add_mask_segment(seg, "Liver tumor", ref == 2, (0, 0, 0), ct_node)
    segment_logic.add_mask_segment(seg, "kidney_right", np.zeros_like(ref, bool), (0, 0, 0), ct_node)
    assert np.array_equal(results_logic.task_labels(seg, ct_node, "liver"), ref)
    totalseg = np.where(ref == 2, 205, np.where(ref == 1, 5, 0)).astype(np.int16)
    labelmap = labelmap_on_grid(ct_node, totalseg, "ts")
    assert np.array_equal(results_logic.task_labels(labelmap, ct_node, "liver"), ref)
    small = labelmap_on_grid(ct_node, totalseg[:-1], "cropped")
    with pytest.raises(NodeGeometryError, match="resample"):
        results_logic.task_labels(small, ct_node, "liver")


def test_totalseg_kidney_is_never_tumor_and_matches_the_cli_evaluation(scene, ct_node, tmp_path):
    """A TotalSegmentator map's right kidney (id 2) is organ for a kidney task and nothing for a
    liver task; the Trainer's task labels give the same figures as ``tumorsynth evaluate`` on
    the raw TotalSegmentator files."""
    from TumorSynthLib.core.volume_io import save_volume
    from TumorSynthLib.segmentation.evaluate import evaluate_predictions
    from TumorSynthLib.volume import Volume
    from TumorSynthSlicer import results_logic
    from TumorSynthSlicer.volume_logic import labelmap_on_grid, world_affine

    ref = _task_labels(ct_node.GetImageData().GetDimensions())
    ts = np.where(ref == 2, 205, np.where(ref == 1, 5, 0)).astype(np.int16)
    ts[:3] = np.where(ts[:3] == 0, 2, ts[:3])                   # right kidney beside the liver
    pred = ts.copy()
    pred[ts == 205] = 5                                         # the prediction misses the tumor
    pred[10:13, 10:13, 5:7] = 205                               # and finds a false one
    ref_node, pred_node = labelmap_on_grid(ct_node, ts, "ref"), labelmap_on_grid(ct_node, pred, "pred")
    liver_task = results_logic.task_labels(ref_node, ct_node, "liver")
    assert np.array_equal(liver_task, ref) and not (liver_task[:3][ts[:3] == 2]).any()
    assert (results_logic.task_labels(ref_node, ct_node, "kidney")[ts == 2] == 1).all()
    affine = world_affine(ct_node)
    raw, task = tmp_path / "raw", tmp_path / "task"
    for folder, arrays in ((raw, (pred, ts)), (task, (results_logic.task_labels(pred_node, ct_node, "liver"),
                                                       results_logic.task_labels(ref_node, ct_node, "liver")))):
        save_volume(Volume(arrays[0], affine), folder / "pred" / "case.nii.gz")
        save_volume(Volume(arrays[1], affine), folder / "gt" / "case.nii.gz")
    a = evaluate_predictions(raw / "pred", raw / "gt", tmp_path / "a", organ="liver")
    b = evaluate_predictions(task / "pred", task / "gt", tmp_path / "b", organ="liver")
    for key in ("tumor_dsc", "organ_dsc", "sensitivity", "false_positives_per_case"):
        assert a[key] == b[key], key


def test_metrics_table_and_sensitivity_chart(scene):
    from TumorSynthSlicer import results_logic, table_logic

    summary = {"n_cases": 2, "tumor_dsc": {"mean": 0.61}, "tumor_nsd": {"mean": 0.55},
               "organ_dsc": {"mean": 0.93}, "sensitivity": 0.75, "n_ref_tumors": 4,
               "false_positives": 1, "false_positives_per_case": 0.5,
               "by_size": {"<10": {"n_tumors": 2, "detected": 1, "sensitivity": 0.5,
                                   "false_positives": 1},
                           "10-20": {"n_tumors": 2, "detected": 2, "sensitivity": 1.0,
                                     "false_positives": 0},
                           "20-50": {"n_tumors": 0, "detected": 0, "sensitivity": None,
                                     "false_positives": 0}}}
    rows = results_logic.metrics_rows(summary)
    assert rows[0] == {"Metric": "Tumor DSC (mean)", "Value": 0.61}
    table, chart = results_logic.sensitivity_chart(scene, summary, "eval")
    assert table_logic.column_values(table, "Size") == ["<10", "10-20", "20-50"]
    assert table_logic.column_values(table, "Sensitivity")[:2] == ["0.5", "1"]
    series = chart.GetNthPlotSeriesNode(0)
    assert series.GetPlotType() == series.PlotTypeBar and series.GetYColumnName() == "Sensitivity"


def test_apply_offers_the_shipped_default_model_first(monkeypatch, tmp_path):
    from TumorSynthSlicer import trainer_logic

    monkeypatch.setenv("TUMORSYNTH_HOME", str(tmp_path / "home"))
    entries = [{"id": "liver-1", "source": "user", "organ": "liver"},
               {"id": "default", "source": "shipped", "organ": "liver,pancreas,kidney"}]
    choices = trainer_logic.model_choices(entries, ["/runs/a/best.pt"])
    assert [value for _label, value in choices] == ["default", "liver-1", "/runs/a/best.pt"]
    assert choices[0][0].startswith("default: shipped model (liver, pancreas, kidney")
    assert trainer_logic.choice_index(choices) == 0                  # a new user: the default
    assert trainer_logic.choice_index(choices, "/runs/a/best.pt") == 2   # keeps the user's pick
    assert trainer_logic.choice_index(choices[1:], "gone") == 0
    assert trainer_logic.choice_index([]) == -1
    listed = [m["id"] for m in trainer_logic.list_models()]
    assert "default" in listed                                       # the registry ships it
