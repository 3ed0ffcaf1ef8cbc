"""Results of background runs back into the scene (the Trainer module's Apply and Evaluate).

- ``load_prediction``: a ``tumorsynth segment`` labelmap -> segmentation node ("Organ",
  "Tumor" segments, closed surface for 3D) + a table of tumors from the run's summary JSON.
- ``task_labels``: any labelmap or segmentation node -> task labels {0, 1 organ, 2 tumor} on a
  reference volume's grid (what ``tumorsynth evaluate`` and ``train`` read).
- ``add_outcome_segments``: true positive / false positive / false negative tumor voxels as
  three coloured segments, so the user sees at a glance where the model is wrong.
- ``metrics_rows`` / ``sensitivity_chart``: the evaluation summary as a table and as a bar
  chart of sensitivity by tumor size.

Files are read and written through ``TumorSynthLib.core.volume`` (imported lazily), in world RAS.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np
import slicer

from . import segment_logic, table_logic
from .errors import MissingDependencyError, NodeGeometryError
from .volume_logic import array_ijk, labelmap_from_array, world_affine

TASK_NAMES = {1: "Organ", 2: "Tumor"}
TASK_COLORS = {1: (0.85, 0.65, 0.55), 2: (0.95, 0.35, 0.20)}
OUTCOME_COLORS = {
    "True positive": (0.20, 0.80, 0.30),
    "False positive": (0.95, 0.20, 0.20),
    "False negative": (0.20, 0.50, 1.00),
}
RESULT_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("Tumor", "string", ""), ("Volume", "double", "ml"), ("Diameter", "double", "mm"),
    ("R", "double", "mm"), ("A", "double", "mm"), ("S", "double", "mm"),
)
METRIC_COLUMNS: tuple[tuple[str, str, str], ...] = (("Metric", "string", ""),
                                                    ("Value", "double", ""))
DETECTION_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("Case", "string", ""), ("Reference tumor", "int", ""), ("Diameter", "double", "mm"),
    ("Size", "string", "mm"), ("Detected", "string", ""),
)
SIZE_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("Size", "string", "mm"), ("Sensitivity", "double", ""), ("Tumors", "int", ""),
    ("Detected", "int", ""), ("False positives", "int", ""),
)


def load_labelmap(scene: slicer.vtkMRMLScene, path: str | Path, name: str,
                  ) -> slicer.vtkMRMLLabelMapVolumeNode:
    """Read a labelmap file (NIfTI / NRRD) through the engine's reader, in world RAS."""
    from TumorSynthLib.core.volume_io import load_volume

    volume = load_volume(path)
    return labelmap_from_array(scene, np.rint(volume.array).astype(np.int16), volume.affine, name)


def load_prediction(scene: slicer.vtkMRMLScene, labelPath: str | Path, name: str,
                    summary: Mapping[str, Any] | None = None,
                    ) -> tuple[slicer.vtkMRMLSegmentationNode, slicer.vtkMRMLTableNode]:
    """Segmentation (closed surface) + tumor table of one ``tumorsynth segment`` result."""
    labelmap = load_labelmap(scene, labelPath, f"{name} labels")
    try:
        segmentation = segmentation_from_labelmap(labelmap, name)
    finally:
        scene.RemoveNode(labelmap)
    table = table_logic.new_table(scene, f"{name} tumors", RESULT_COLUMNS)
    table_logic.append_rows(table, RESULT_COLUMNS, tumor_rows(summary or {}))
    return segmentation, table


def segmentation_from_labelmap(labelmap: slicer.vtkMRMLLabelMapVolumeNode, name: str,
                               ) -> slicer.vtkMRMLSegmentationNode:
    """Task labels (1 organ, 2 tumor) as a segmentation with named, coloured segments."""
    segmentation = labelmap.GetScene().AddNewNodeByClass("vtkMRMLSegmentationNode", name)
    segmentation.CreateDefaultDisplayNodes()
    segmentation.SetReferenceImageGeometryParameterFromVolumeNode(labelmap)
    mapping = segment_logic.import_labelmap(segmentation, labelmap, TASK_NAMES)
    for value, segment_id in mapping.items():
        segment = segmentation.GetSegmentation().GetSegment(segment_id)
        segment.SetColor(*TASK_COLORS.get(value, (0.6, 0.6, 0.6)))
        if value == 2:
            segment.SetTag(segment.GetTerminologyEntryTagName(),
                           segment_logic.tumor_terminology(None))
    segment_logic.show_in_3d(segmentation)
    return segmentation


def tumor_rows(summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Rows of the result table from a ``segment`` summary (``tumors`` list)."""
    rows = []
    for i, tumor in enumerate(summary.get("tumors") or [], start=1):
        centre = tumor.get("centroid_ras") or [None] * 3
        rows.append({"Tumor": f"Tumor {tumor.get('id', i)}", "Volume": tumor.get("volume_ml"),
                     "Diameter": table_logic.first_value(tumor, "equivalent_diameter_mm",
                                                         "diameter_mm"),
                     "R": centre[0], "A": centre[1], "S": centre[2]})
    return rows


def task_labels(node: slicer.vtkMRMLNode, reference: slicer.vtkMRMLVolumeNode, organ: str,
                convention: str = "auto") -> np.ndarray:
    """Task labels {0, 1 organ, 2 tumor} of ``organ`` (uint8 ``[i, j, k]``) of a labelmap or
    segmentation node on ``reference``'s grid, with the engine's label conventions: a labelmap
    is read in ``convention`` (``auto``: the engine's guess, as ``tumorsynth evaluate`` does),
    so a TotalSegmentator map's right kidney (id 2) is organ, never tumor. A segmentation's
    segments are tumor when their name says so (tumor, lesion, neoplasm), organ when the engine
    reads the name as ``organ``, and ignored otherwise."""
    engine = _task_engine()
    out = np.zeros(array_ijk(reference).shape, dtype=np.uint8)
    if node.IsA("vtkMRMLSegmentationNode"):
        for segment_id in segment_logic.segment_ids(node):
            name = segment_logic.segment_name(node, segment_id)
            is_tumor = any(word in name.lower() for word in ("tumor", "tumour", "lesion", "neoplasm"))
            if not is_tumor and engine.guess_organ_from_name(name) != engine.canonical_organ(organ):
                continue
            mask = segment_logic.segment_mask(node, segment_id, reference)
            out[mask & (out < 2)] = 2 if is_tumor else 1
        return out
    values = array_ijk(node)
    if values.shape != out.shape or not np.allclose(world_affine(node), world_affine(reference), atol=1e-3):
        raise NodeGeometryError(
            f"'{node.GetName()}' is not on the grid of '{reference.GetName()}'; resample it "
            "first (Resample Image (BRAINS) or Crop Volume) or use a segmentation node")
    conv = engine.guess_convention(values, organ) if convention == "auto" else convention
    return engine.task_label_array(values, organ, conv)


def _task_engine():
    """The engine's label-convention functions (imported lazily, as everywhere here)."""
    import types

    try:
        from TumorSynthLib.anatomy.organs import canonical_organ, guess_organ_from_name
        from TumorSynthLib.anatomy.task_labels import guess_convention, task_label_array
    except ImportError as exc:
        raise MissingDependencyError(f"the TumorSynth engine could not be loaded ({exc})") from exc
    return types.SimpleNamespace(canonical_organ=canonical_organ, guess_organ_from_name=guess_organ_from_name,
                                 guess_convention=guess_convention, task_label_array=task_label_array)


def outcome_masks(pred: np.ndarray, ref: np.ndarray) -> dict[str, np.ndarray]:
    """Voxel-wise tumor outcomes of task labels: true / false positive, false negative."""
    p, r = np.asarray(pred) == 2, np.asarray(ref) == 2
    return {"True positive": p & r, "False positive": p & ~r, "False negative": ~p & r}


def add_outcome_segments(segmentation: slicer.vtkMRMLSegmentationNode,
                         masks: Mapping[str, np.ndarray], reference: slicer.vtkMRMLVolumeNode,
                         ) -> dict[str, str]:
    """One coloured segment per outcome (empty outcomes are skipped); returns name -> ID."""
    ids = {}
    for name, mask in masks.items():
        if not mask.any():
            continue
        ids[name] = segment_logic.add_mask_segment(segmentation, name, mask, (0, 0, 0), reference,
                                                   color=OUTCOME_COLORS[name])
    segment_logic.show_in_3d(segmentation)
    return ids


def metrics_rows(summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    """"Metric / Value" rows of an evaluation summary (means of DSC / NSD, sensitivity, FP)."""
    rows = []
    for key, label in (("tumor_dsc", "Tumor DSC (mean)"), ("tumor_nsd", "Tumor NSD 2 mm (mean)"),
                       ("organ_dsc", "Organ DSC (mean)")):
        value = summary.get(key)
        rows.append({"Metric": label,
                     "Value": value.get("mean") if isinstance(value, Mapping) else value})
    for key, label in (("sensitivity", "Tumor sensitivity"), ("n_ref_tumors", "Reference tumors"),
                       ("false_positives", "False positives"),
                       ("false_positives_per_case", "False positives per case"),
                       ("n_cases", "Cases")):
        rows.append({"Metric": label, "Value": summary.get(key)})
    return rows


def detection_rows(cases: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per reference tumor of every case: size and whether the model found it."""
    return [{"Case": case.get("case_id", ""), "Reference tumor": tumor.get("id"),
             "Diameter": tumor.get("diameter_mm"), "Size": tumor.get("bucket"),
             "Detected": "yes" if tumor.get("detected") else "no"}
            for case in cases for tumor in case.get("tumors") or []]


def size_rows(summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Rows of the sensitivity-by-size table (buckets in the summary's order)."""
    return [{"Size": name, "Sensitivity": bucket.get("sensitivity"),
             "Tumors": bucket.get("n_tumors", 0), "Detected": bucket.get("detected", 0),
             "False positives": bucket.get("false_positives", 0)}
            for name, bucket in (summary.get("by_size") or {}).items()]


def sensitivity_chart(scene: slicer.vtkMRMLScene, summary: Mapping[str, Any], name: str,
                      ) -> tuple[slicer.vtkMRMLTableNode, slicer.vtkMRMLPlotChartNode]:
    """A table of sensitivity by tumor size and a bar chart of it."""
    table = table_logic.new_table(scene, f"{name} sensitivity by size", SIZE_COLUMNS)
    table_logic.append_rows(table, SIZE_COLUMNS, size_rows(summary))
    series = scene.AddNewNodeByClass("vtkMRMLPlotSeriesNode", f"{name} sensitivity")
    series.SetAndObserveTableNodeID(table.GetID())
    series.SetXColumnName("Size")
    series.SetYColumnName("Sensitivity")
    series.SetLabelColumnName("Size")
    series.SetPlotType(slicer.vtkMRMLPlotSeriesNode.PlotTypeBar)
    chart = scene.AddNewNodeByClass("vtkMRMLPlotChartNode", f"{name} sensitivity chart")
    chart.AddAndObservePlotSeriesNodeID(series.GetID())
    chart.SetTitle("Tumor sensitivity by size")
    chart.SetXAxisTitle("reference tumor diameter (mm)")
    chart.SetYAxisTitle("sensitivity")
    return table, chart
