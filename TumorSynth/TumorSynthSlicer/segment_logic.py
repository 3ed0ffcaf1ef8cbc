"""Segments <-> boolean masks ``[i, j, k]`` on a volume's voxel grid.

A mask goes into a segment as a ``vtkOrientedImageData`` whose extent covers only the mask's
box (a tumor's ROI, not the whole scan) and whose image-to-world matrix is the reference
volume's *local* IJKToRAS; the segmentation node sits under the same parent transform as the
volume, so both line up in world RAS. Reading a segment back goes through Slicer's own export
to a temporary labelmap on the reference grid.

Standard terminology (SNOMED CT, from Slicer's "DICOM master list") is set on tumor
segments so that they are recognised as neoplasms of the given organ.

Example::

    segmentId = add_mask_segment(segNode, "Tumor 1", mask_roi, box, ctNode, color=(1, 0.4, 0.2),
                                 terminology=tumor_terminology("liver"))
    mask = segment_mask(segNode, segmentId, ctNode)      # bool [i, j, k] on ctNode's grid
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import slicer
import vtk
import vtk.util.numpy_support as vtk_np

from .volume_logic import array_ijk, array_to_matrix, local_ijk_to_ras

#: The DICOM master list: it holds Morphologically Altered Structure / Neoplasm (Slicer's General
#: Anatomy list has only Mass under that category, so a Neoplasm entry naming it would not resolve).
_CONTEXT = "Segmentation category and type - DICOM master list"
_ANATOMIC_CONTEXT = "Anatomic codes - DICOM master list"
_ANATOMY = {
    "liver": "SCT^10200004^Liver",
    "pancreas": "SCT^15776009^Pancreas",
    "kidney": "SCT^64033007^Kidney",
}

#: Distinct colours for tumor segments (cycled): warm tones that stand out on CT.
TUMOR_COLORS = (
    (0.95, 0.35, 0.20), (0.98, 0.75, 0.15), (0.85, 0.20, 0.55), (0.55, 0.85, 0.25),
    (0.20, 0.70, 0.95), (0.65, 0.40, 0.90),
)


def tumor_terminology(organ: str | None, property_type: Sequence[str] | None = None) -> str:
    """Terminology entry string of a lesion (SNOMED ``property_type`` as (value, scheme,
    meaning); default a neoplasm), with the organ as anatomic region if known."""
    from TumorSynthLib.synthesis.lesion_types import SNOMED_CATEGORY, SNOMED_NEOPLASM

    category = "{1}^{0}^{2}".format(*SNOMED_CATEGORY)
    kind = "{1}^{0}^{2}".format(*(property_type or SNOMED_NEOPLASM))
    region = _ANATOMY.get((organ or "").lower(), "^^")
    return f"{_CONTEXT}~{category}~{kind}~^^~{_ANATOMIC_CONTEXT}~{region}~^^"


def tumor_color(index: int) -> tuple[float, float, float]:
    """Colour of the ``index``-th tumor (1-based)."""
    return TUMOR_COLORS[(index - 1) % len(TUMOR_COLORS)]


def new_segmentation_for(volume: slicer.vtkMRMLVolumeNode, name: str,
                            ) -> slicer.vtkMRMLSegmentationNode:
    """A new segmentation node whose reference geometry is ``volume`` and whose parent
    transform is the volume's, with display nodes created."""
    segmentation = volume.GetScene().AddNewNodeByClass("vtkMRMLSegmentationNode", name)
    segmentation.CreateDefaultDisplayNodes()
    segmentation.SetReferenceImageGeometryParameterFromVolumeNode(volume)
    segmentation.SetAndObserveTransformNodeID(volume.GetTransformNodeID())
    return segmentation


def oriented_image_from_mask(mask: np.ndarray, lo: Sequence[int], ijk_to_ras: np.ndarray,
                             ) -> slicer.vtkOrientedImageData:
    """A binary ``vtkOrientedImageData`` holding ``mask`` (``[i, j, k]``) at voxel offset
    ``lo`` of the grid described by ``ijk_to_ras``."""
    mask = np.asarray(mask, dtype=bool)
    image = slicer.vtkOrientedImageData()
    lo = [int(v) for v in lo]
    hi = [a + n - 1 for a, n in zip(lo, mask.shape)]
    image.SetExtent(lo[0], hi[0], lo[1], hi[1], lo[2], hi[2])
    image.AllocateScalars(vtk.VTK_UNSIGNED_CHAR, 1)
    scalars = vtk_np.vtk_to_numpy(image.GetPointData().GetScalars())
    scalars[:] = mask.transpose(2, 1, 0).astype(np.uint8).ravel()
    image.SetImageToWorldMatrix(array_to_matrix(ijk_to_ras))
    return image


def set_segment_mask(segmentation: slicer.vtkMRMLSegmentationNode, segment_id: str,
                     mask: np.ndarray, lo: Sequence[int], reference: slicer.vtkMRMLVolumeNode,
                     ) -> None:
    """Replace the content of ``segment_id`` inside the mask's box with ``mask``."""
    image = oriented_image_from_mask(mask, lo, local_ijk_to_ras(reference))
    logic = slicer.vtkSlicerSegmentationsModuleLogic
    ok = logic.SetBinaryLabelmapToSegment(image, segmentation, segment_id, logic.MODE_REPLACE,
                                          image.GetExtent())
    if not ok:
        raise RuntimeError(f"could not write the mask into segment '{segment_id}'")


def add_mask_segment(segmentation: slicer.vtkMRMLSegmentationNode, name: str, mask: np.ndarray,
                     lo: Sequence[int], reference: slicer.vtkMRMLVolumeNode, *,
                     color: Sequence[float] = (1.0, 0.4, 0.2), terminology: str | None = None,
                     ) -> str:
    """Add a segment called ``name`` holding ``mask`` (box at ``lo``); returns its ID."""
    segment_id = segmentation.GetSegmentation().AddEmptySegment("", name, list(color))
    if not segment_id:
        raise RuntimeError(
            "could not add a segment; in slicer-core register the segmentation converter "
            "rules first (register_converter_rules)"
        )
    if terminology:
        segment = segmentation.GetSegmentation().GetSegment(segment_id)
        segment.SetTag(segment.GetTerminologyEntryTagName(), terminology)
    set_segment_mask(segmentation, segment_id, mask, lo, reference)
    return segment_id


def segment_mask(segmentation: slicer.vtkMRMLSegmentationNode, segment_id: str,
                 reference: slicer.vtkMRMLVolumeNode) -> np.ndarray:
    """Boolean ``[i, j, k]`` mask of one segment resampled onto ``reference``'s grid."""
    scene = reference.GetScene()
    labelmap = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "__tumorsynth_tmp__")
    try:
        ids = vtk.vtkStringArray()
        ids.InsertNextValue(segment_id)
        logic = slicer.vtkSlicerSegmentationsModuleLogic()
        if not logic.ExportSegmentsToLabelmapNode(segmentation, ids, labelmap, reference):
            raise RuntimeError(f"could not export segment '{segment_id}'")
        return array_ijk(labelmap) > 0
    finally:
        scene.RemoveNode(labelmap)


def segment_ids(segmentation: slicer.vtkMRMLSegmentationNode) -> list[str]:
    """IDs of every segment, in display order."""
    ids = vtk.vtkStringArray()
    segmentation.GetSegmentation().GetSegmentIDs(ids)
    return [ids.GetValue(i) for i in range(ids.GetNumberOfValues())]


def segment_name(segmentation: slicer.vtkMRMLSegmentationNode, segment_id: str) -> str:
    segment = segmentation.GetSegmentation().GetSegment(segment_id)
    return "" if segment is None else segment.GetName()


def segment_terminology(segmentation: slicer.vtkMRMLSegmentationNode, segment_id: str) -> str:
    """The segment's terminology entry string ("" when none is set)."""
    segment = segmentation.GetSegmentation().GetSegment(segment_id)
    if segment is None:
        return ""
    value = vtk.reference("")
    segment.GetTag(segment.GetTerminologyEntryTagName(), value)
    return str(value)


def remove_segments(segmentation: slicer.vtkMRMLSegmentationNode, ids: Sequence[str]) -> None:
    for segment_id in ids:
        segmentation.GetSegmentation().RemoveSegment(segment_id)


def show_in_3d(segmentation: slicer.vtkMRMLSegmentationNode) -> None:
    """Make the closed surface (the 3D representation) and keep it updated."""
    segmentation.CreateClosedSurfaceRepresentation()


def import_labelmap(segmentation: slicer.vtkMRMLSegmentationNode,
                    labelmap: slicer.vtkMRMLLabelMapVolumeNode,
                    names: dict[int, str] | None = None) -> dict[int, str]:
    """Import every non-zero label of ``labelmap`` as a segment; rename them from ``names``.

    Returns {label value: segment ID}. Labels are imported in increasing order.
    """
    values = sorted(int(v) for v in np.unique(array_ijk(labelmap)) if v != 0)
    before = set(segment_ids(segmentation))
    if not slicer.vtkSlicerSegmentationsModuleLogic().ImportLabelmapToSegmentationNode(
            labelmap, segmentation):
        raise RuntimeError(f"could not import '{labelmap.GetName()}' into a segmentation")
    new_ids = [sid for sid in segment_ids(segmentation) if sid not in before]
    mapping = dict(zip(values, new_ids))
    for value, sid in mapping.items():
        if names and value in names:
            segmentation.GetSegmentation().GetSegment(sid).SetName(names[value])
    return mapping


def register_converter_rules() -> None:
    """Register the labelmap <-> closed surface conversion rules when none are registered.

    Slicer's application does this at start-up; a bare ``slicer-core`` scene must do it
    itself, otherwise segments cannot even be created.
    """
    factory = slicer.vtkSegmentationConverterFactory.GetInstance()
    if len(factory.GetConverterRules()) > 0:
        return
    for rule in ("vtkBinaryLabelmapToClosedSurfaceConversionRule",
                 "vtkClosedSurfaceToBinaryLabelmapConversionRule",
                 "vtkClosedSurfaceToFractionalLabelmapConversionRule",
                 "vtkFractionalLabelmapToClosedSurfaceConversionRule"):
        factory.RegisterConverterRule(getattr(slicer, rule)())
