"""Tumor segments for the DICOM SEG export, and reading a SEG back onto its CT series.

* ``segments_from_instances``: one segment per tumor from ``Synthesis.tumor_instances``
  (1..N per tumor, satellites share their tumor's number) and the tumor reports.
* ``segments_from_labels``: from a written case (``label.nii.gz`` + ``report.json``): the
  voxels of each tumor label id; when several tumors share an id (two liver tumors), each
  26-connected component goes to the tumor whose reported centroid is nearest (mm), so
  satellites stay with their tumor. Without a report, one segment per tumor label id.
* ``read_seg_masks``: the segments of a SEG file as boolean ``[i, j, k]`` masks on the grid
  ``load_volume`` gives the referenced CT series folder (frames matched by SOP Instance UID).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from scipy import ndimage

from ..core.errors import InputError
from ..core.volume import Volume
from ..synthesis.lesion_types import report_lesion
from .dicom_export import TumorSegment


def _segment(number: int, report: Mapping[str, Any] | None, organ: str | None, mask: np.ndarray) -> TumorSegment:
    """Segment ``number``, named and coded after its lesion type ("Cyst 2 (liver, 14 mm)")."""
    lesion = report_lesion(dict(report) if report else None)
    return TumorSegment(_label(number, report, organ, lesion.label), mask, organ, lesion.property_type)


def _label(number: int, report: Mapping[str, Any] | None, organ: str | None, word: str = "Tumor") -> str:
    parts = [f"{word} {number}"]
    if organ:
        parts.append(str(organ))
    if report and report.get("diameter_measured_mm") is not None:
        parts.append(f"{float(report['diameter_measured_mm']):.0f} mm")
    return " ".join(parts[:1]) + (f" ({', '.join(parts[1:])})" if len(parts) > 1 else "")


def segments_from_instances(instances: Volume, reports: Sequence[Mapping[str, Any]]) -> list[TumorSegment]:
    """One segment per tumor number present in ``instances`` (reports give organ and size)."""
    arr = np.asarray(instances.array)
    out = []
    for number in sorted(int(v) for v in np.unique(arr) if v > 0):
        report = reports[number - 1] if number - 1 < len(reports) else None
        organ = report.get("organ") if report else None
        out.append(_segment(number, report, organ, arr == number))
    return out


def _tumor_ids(label_names: Mapping[Any, str]) -> dict[int, str | None]:
    """{tumor label id: organ} from a label_names table (names ending in 'tumor')."""
    ids = {}
    for key, name in label_names.items():
        text = str(name).lower()
        if text.endswith("tumor"):
            organ = text[: -len("tumor")].strip("_ ") or None
            organ = "kidney" if organ and "kidney" in organ else organ
            ids[int(key)] = organ
    return ids


def segments_from_labels(labels: Volume, reports: Sequence[Mapping[str, Any]] = (),
                         label_names: Mapping[Any, str] | None = None) -> list[TumorSegment]:
    """Segments of a written case (see the module docstring). InputError when no tumor voxel
    is found."""
    arr = np.rint(np.asarray(labels.array)).astype(np.int32)
    if reports:
        by_id: dict[int, list[int]] = {}
        for n, report in enumerate(reports):
            by_id.setdefault(int(report["tumor_id"]), []).append(n)
        owner = np.zeros(arr.shape, dtype=np.int32)
        for tumor_id, members in by_id.items():
            _assign(owner, arr == tumor_id, members, reports, labels)
        segments = [_segment(n + 1, r, r.get("organ"), owner == n + 1)
                    for n, r in enumerate(reports)]
        segments = [s for s in segments if s.mask.any()]
    else:
        ids = _tumor_ids(label_names or {})
        segments = [TumorSegment(_label(n, None, organ), arr == tid, organ)
                    for n, (tid, organ) in enumerate(sorted((t, o) for t, o in ids.items() if (arr == t).any()), 1)]
    if not segments:
        raise InputError("the labels hold no tumor voxels (no tumor label id found); export a case "
                         "made by `tumorsynth synth`, `generate` or `demo`")
    return segments


def _assign(owner: np.ndarray, mask: np.ndarray, members: list[int],
            reports: Sequence[Mapping[str, Any]], labels: Volume) -> None:
    """Write tumor numbers (index + 1) into ``owner`` for the voxels of one tumor id."""
    if len(members) == 1:
        owner[mask] = members[0] + 1
        return
    centroids = np.array([reports[m].get("centroid_ras") or [np.nan] * 3 for m in members], dtype=float)
    components, count = ndimage.label(mask, structure=np.ones((3, 3, 3), dtype=bool))
    for index, box in enumerate(ndimage.find_objects(components), start=1):
        voxels = np.argwhere(components[box] == index) + [s.start for s in box]
        centre = labels.voxel_to_ras(voxels.mean(axis=0))
        distance = np.linalg.norm(centroids - centre, axis=1)
        nearest = members[int(np.nanargmin(distance))] if np.isfinite(distance).any() else members[0]
        owner[tuple(voxels.T)] = nearest + 1


# -- reading back -------------------------------------------------------------------------------------
def read_seg_masks(seg_path: str | Path, ct_folder: str | Path) -> list[dict[str, Any]]:
    """[{number, label, property_type, anatomic_region, mask}] of a SEG file; each ``mask`` is
    boolean ``[i, j, k]`` on ``load_volume(ct_folder)``'s grid."""
    import highdicom as hd
    import pydicom

    seg = hd.seg.segread(str(seg_path))
    headers = [pydicom.dcmread(str(p), stop_before_pixels=True)
               for p in sorted(Path(ct_folder).iterdir()) if p.is_file()]
    headers = [h for h in headers if "ImagePositionPatient" in h]
    if not headers:
        raise InputError(f"no CT slices in '{ct_folder}'")
    iop = np.asarray(headers[0].ImageOrientationPatient, dtype=float)
    normal = np.cross(iop[:3], iop[3:])
    headers.sort(key=lambda h: float(np.dot(np.asarray(h.ImagePositionPatient, dtype=float), normal)))
    uids = [str(h.SOPInstanceUID) for h in headers]
    numbers = [int(d.SegmentNumber) for d in seg.SegmentSequence]
    pixels = seg.get_pixels_by_source_instance(source_sop_instance_uids=uids, segment_numbers=numbers,
                                               assert_missing_frames_are_empty=True)
    out = []
    for n, desc in enumerate(seg.SegmentSequence):
        regions = getattr(desc, "AnatomicRegionSequence", None) or []
        out.append({
            "number": int(desc.SegmentNumber), "label": str(desc.SegmentLabel),
            "property_type": str(desc.SegmentedPropertyTypeCodeSequence[0].CodeValue),
            "property_category": str(desc.SegmentedPropertyCategoryCodeSequence[0].CodeValue),
            "anatomic_region": str(regions[0].CodeValue) if regions else None,
            "mask": np.asarray(pixels[..., n] > 0).transpose(2, 1, 0),   # [slice,row,col] -> [i,j,k]
        })
    return out


__all__ = ["segments_from_instances", "segments_from_labels", "read_seg_masks"]
