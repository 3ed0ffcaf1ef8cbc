"""Output nodes of one input CT and the undo of placed tumors.

A ``TumorSession`` owns, for one input volume:

- ``outputVolume``  "<CT> + tumors": a copy of the CT made on the first tumor; every tumor is
  written into it. The input volume node is never written to (not even handed to the engine).
- ``labelsVolume``  "<CT> + tumors labels": binary convention labels (1 organ, 2 tumor) on the
  same grid: the organ masks that were used plus every tumor, as exported next to the image.
- ``segmentation``  one "Tumor N" segment per tumor (terminology set, closed surface for 3D).
- ``table``         one row per tumor (method, stage, measured diameter, centre, seed, ...).

Undo keeps a bounded stack of ROI patches (the voxels a placement changed, before the change),
never whole volumes, so memory does not grow with the scan.

Example::

    session = TumorSession(ctNode)
    image, affine = session.engineImage()          # writable view of the output volume
    ... run the engine ...
    session.record(result_image, result_labels, instances, lo, hi, reports, passed_labels)
    session.undo()
    session.clear()
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import slicer

from . import segment_logic, table_logic
from .errors import NothingToUndoError
from .volume_logic import array_ijk, clone_volume_node, labelmap_on_grid, world_affine, write_patch

ORGAN_LABEL = 1
TUMOR_LABEL = 2
#: Label names of the exported labelmap (binary convention of TumorSynthLib).
LABEL_NAMES = {0: "background", ORGAN_LABEL: "organ", TUMOR_LABEL: "tumor"}
DEFAULT_UNDO_DEPTH = 10


@dataclass
class UndoStep:
    """What one placement changed: the ROI box and its voxels before the change."""

    lo: tuple[int, int, int]
    hi: tuple[int, int, int]
    image_before: np.ndarray
    labels_before: np.ndarray
    segment_ids: list[str]
    rows: int
    reports: list[dict[str, Any]] = field(default_factory=list)

    @property
    def slices(self) -> tuple[slice, slice, slice]:
        return tuple(slice(a, b) for a, b in zip(self.lo, self.hi))  # type: ignore[return-value]


class TumorSession:
    """Output nodes and undo history of the tumors placed on one input volume."""

    def __init__(self, inputVolume: slicer.vtkMRMLScalarVolumeNode,
                 undoDepth: int = DEFAULT_UNDO_DEPTH) -> None:
        self.inputVolume = inputVolume
        self.outputVolume: slicer.vtkMRMLScalarVolumeNode | None = None
        self.labelsVolume: slicer.vtkMRMLLabelMapVolumeNode | None = None
        self.segmentation: slicer.vtkMRMLSegmentationNode | None = None
        self.table: slicer.vtkMRMLTableNode | None = None
        self.reports: list[dict[str, Any]] = []
        self.tumorCount = 0
        self._undo: deque[UndoStep] = deque(maxlen=max(1, int(undoDepth)))

    # -- state ------------------------------------------------------------------------------
    @property
    def canUndo(self) -> bool:
        return bool(self._undo)

    @property
    def hasOutputs(self) -> bool:
        return all(_alive(n) for n in (self.outputVolume, self.labelsVolume,
                                         self.segmentation, self.table))

    def ensureOutputs(self) -> None:
        """Create the output nodes if they do not exist yet (or were deleted by the user)."""
        if self.hasOutputs:
            return
        self.removeOutputs()
        name = self.inputVolume.GetName()
        self.outputVolume = clone_volume_node(self.inputVolume, f"{name} + tumors")
        self.outputVolume.SetAttribute("TumorSynth.Synthetic", "1")
        self.outputVolume.SetAttribute("TumorSynth.InputVolumeID", self.inputVolume.GetID())
        zeros = np.zeros(array_ijk(self.inputVolume).shape, dtype=np.uint8)
        self.labelsVolume = labelmap_on_grid(self.outputVolume, zeros, f"{name} + tumors labels")
        self.segmentation = segment_logic.new_segmentation_for(self.outputVolume,
                                                                  f"{name} tumors")
        self.table = table_logic.new_table(self.inputVolume.GetScene(), f"{name} tumors table",
                                           table_logic.TUMOR_COLUMNS)
        self.reports, self.tumorCount = [], 0
        self._undo.clear()

    def removeOutputs(self) -> None:
        """Remove this session's output nodes from the scene (used when they are half gone)."""
        for node in (self.outputVolume, self.labelsVolume, self.segmentation, self.table):
            if _alive(node):
                remove_node(node)
        self.outputVolume = self.labelsVolume = self.segmentation = self.table = None

    # -- what the engine sees ---------------------------------------------------------------
    def engineImage(self) -> tuple[np.ndarray, np.ndarray]:
        """(``[i, j, k]`` view of the output volume, world affine); creates outputs if needed."""
        self.ensureOutputs()
        return array_ijk(self.outputVolume), world_affine(self.outputVolume)

    def engineLabels(self, organMask: np.ndarray | None) -> np.ndarray | None:
        """Binary-convention labels for the engine: the organ mask as 1 and every tumor placed
        so far as 2 (so a new tumor cannot land inside an old one); None without a mask."""
        if organMask is None:
            return None
        labels = np.where(np.asarray(organMask, dtype=bool), ORGAN_LABEL, 0).astype(np.uint8)
        if self.hasOutputs:
            labels[array_ijk(self.labelsVolume) >= TUMOR_LABEL] = TUMOR_LABEL
        return labels

    # -- recording a placement --------------------------------------------------------------
    def record(self, image: np.ndarray, labels: np.ndarray, instances: np.ndarray,
               lo: Sequence[int], hi: Sequence[int], reports: Sequence[Mapping[str, Any]],
               passedLabels: np.ndarray | None = None, organ: str | None = None) -> list[str]:
        """Write one engine result (full ``[i, j, k]`` arrays; only the ROI ``[lo, hi)`` is
        read) into the outputs, push its undo step, and return the new segment IDs."""
        self.ensureOutputs()
        lo_t = tuple(int(v) for v in lo)
        hi_t = tuple(int(v) for v in hi)
        box = tuple(slice(a, b) for a, b in zip(lo_t, hi_t))
        if passedLabels is not None:
            self._mergeOrgan(passedLabels)
        step = UndoStep(lo_t, hi_t, array_ijk(self.outputVolume)[box].copy(),
                        array_ijk(self.labelsVolume)[box].copy(), [], 0)
        write_patch(self.outputVolume, (lo_t, hi_t), np.asarray(image)[box])
        write_patch(self.labelsVolume, (lo_t, hi_t),
                    self._mergedLabels(np.asarray(labels)[box], passedLabels, box))
        from TumorSynthLib.synthesis.lesion_types import report_lesion

        first = self.tumorCount + 1
        step.reports = [dict(r) for r in reports]
        step.segment_ids = self._addSegments(np.asarray(instances)[box], lo_t, organ, step.reports)
        rows = [table_logic.tumor_row(f"{report_lesion(r).label} {first + i}", r) for i, r in enumerate(step.reports)]
        step.rows = table_logic.append_rows(self.table, table_logic.TUMOR_COLUMNS, rows)
        self.reports.extend(step.reports)
        self._undo.append(step)
        return step.segment_ids

    def _mergeOrgan(self, passedLabels: np.ndarray) -> None:
        """Keep every organ mask that was used in the exported labels."""
        state = array_ijk(self.labelsVolume)
        organ = (np.asarray(passedLabels) == ORGAN_LABEL) & (state == 0)
        if organ.any():
            state[organ] = ORGAN_LABEL
            slicer.util.arrayFromVolumeModified(self.labelsVolume)

    def _mergedLabels(self, new_roi: np.ndarray, passedLabels: np.ndarray | None,
                      box: tuple[slice, ...]) -> np.ndarray:
        """The label state inside the ROI with the voxels the engine changed taken over."""
        state_roi = array_ijk(self.labelsVolume)[box].copy()
        passed_roi = 0 if passedLabels is None else np.asarray(passedLabels)[box]
        changed = new_roi != passed_roi
        state_roi[changed] = new_roi[changed]
        return state_roi

    def _addSegments(self, instances_roi: np.ndarray, lo: Sequence[int], organ: str | None,
                     reports: Sequence[Mapping[str, Any]] = ()) -> list[str]:
        """One segment per tumor of the ROI (ascending instance values, in ``reports`` order),
        named and coded after its lesion type ("Tumor 3", "Cyst 4")."""
        from TumorSynthLib.synthesis.lesion_types import report_lesion

        ids = []
        values = sorted(int(v) for v in np.unique(instances_roi) if v > 0)
        for n, value in enumerate(values):
            self.tumorCount += 1
            lesion = report_lesion(dict(reports[n]) if n < len(reports) and len(reports) == len(values) else None)
            ids.append(segment_logic.add_mask_segment(
                self.segmentation, f"{lesion.label} {self.tumorCount}", instances_roi == value, lo,
                self.outputVolume, color=segment_logic.tumor_color(self.tumorCount),
                terminology=segment_logic.tumor_terminology(organ, lesion.property_type)))
        if ids:
            segment_logic.show_in_3d(self.segmentation)
        return ids

    # -- undo and clear ---------------------------------------------------------------------
    def undo(self) -> UndoStep:
        """Restore the voxels, segments and table rows from before the last placement."""
        if not self._undo or not self.hasOutputs:
            raise NothingToUndoError("nothing to undo: no tumor placed since the last clear "
                                     f"(undo keeps the last {self._undo.maxlen} placements)")
        step = self._undo.pop()
        write_patch(self.outputVolume, (step.lo, step.hi), step.image_before)
        write_patch(self.labelsVolume, (step.lo, step.hi), step.labels_before)
        segment_logic.remove_segments(self.segmentation, step.segment_ids)
        table_logic.remove_last_rows(self.table, step.rows)
        del self.reports[len(self.reports) - len(step.reports):]
        self.tumorCount -= len(step.segment_ids)
        return step

    def clear(self) -> None:
        """Remove every tumor: the output volume becomes a copy of the input again."""
        self._undo.clear()
        self.reports, self.tumorCount = [], 0
        if not self.hasOutputs:
            return
        array_ijk(self.outputVolume)[...] = array_ijk(self.inputVolume)
        slicer.util.arrayFromVolumeModified(self.outputVolume)
        array_ijk(self.labelsVolume)[...] = 0
        slicer.util.arrayFromVolumeModified(self.labelsVolume)
        segment_logic.remove_segments(self.segmentation,
                                      segment_logic.segment_ids(self.segmentation))
        table_logic.clear_rows(self.table)


def remove_node(node: Any) -> None:
    """Remove a node with its display and storage nodes (a bare scene keeps them otherwise)."""
    scene = node.GetScene()
    helpers = []
    for getter, count in (("GetNthDisplayNode", "GetNumberOfDisplayNodes"),
                          ("GetNthStorageNode", "GetNumberOfStorageNodes")):
        if hasattr(node, count):
            helpers += [getattr(node, getter)(i) for i in range(getattr(node, count)())]
    scene.RemoveNode(node)
    for helper in helpers:
        if helper is not None and helper.GetScene() is not None:
            scene.RemoveNode(helper)


def _alive(node: Any) -> bool:
    """True if ``node`` exists and is still in a scene."""
    return node is not None and node.GetScene() is not None
