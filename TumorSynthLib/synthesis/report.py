"""The report of one tumor: declared fields read from the stages' typed outputs (JSON-able).

* identity: ``method``, ``lesion`` (tumor | cyst | hemangioma), ``benign``, ``geometry``, ``appearance``, ``stage``, ``organ``, ``organ_label_id``,
  ``tumor_id``, ``necrosis_label_id``, ``convention``, ``organ_source``, ``synthetic`` (true),
  ``version``, ``seed``, ``case_id``, ``variant``, ``index``;
* sizes (mm): ``diameter_requested_mm`` (null when drawn), ``diameter_target_mm``,
  ``diameter_source``, ``diameter_measured_mm`` (equivalent sphere of the final mask),
  ``recist_long_mm``, ``recist_short_mm``, ``volume_ml``, ``n_voxels``,
  ``size_limited_by_organ``, ``largest_inscribed_radius_mm`` (largest organ-inscribed ball
  within r of the centre, measured after the tumor: the organ holding it), ``organ_fill_fraction``
  (tumor volume / that ball's volume), ``organ_volume_ml``;
* positions: ``center_requested_ras`` (null when sampled), ``center_placed_ras``,
  ``center_voxel``, ``centroid_ras``, ``centroid_voxel``, ``placement`` (click | sampled),
  ``snap_distance_mm``;
* intensity (HU): ``organ_median_hu``, ``organ_mad_hu``, ``delta_hu`` (the drop the appearance
  aimed at), ``mean_tumor_hu``, ``measured_drop_hu`` (the parenchyma median minus the mean HU of the
  tumor's core: voxels of soft weight >= 0.9, necrosis excluded);
* ``effects`` (the plan), ``mass_effect`` (voxels moved, largest push in mm),
  ``geometry_info`` / ``appearance_info`` (the providers' facts), ``draws`` (every random
  number, by stage), ``roi`` ([[lo], [hi]] voxels), ``warnings``, ``quality`` (with a quality
  filter), ``timing`` (seconds: the only part that differs between identical runs).
"""
from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage

from .. import __version__
from ..anatomy.measure import measure_mask
from ..core.files import to_jsonable
from ..core.volume import box_around
from .lesion_types import report_fields
from .pipeline import TumorOutcome

#: Every key a tumor report has (``quality`` is added when a quality filter ran).
REPORT_KEYS = (
    "method", "lesion", "benign", "geometry", "appearance", "stage", "organ", "organ_label_id", "tumor_id", "necrosis_label_id",
    "convention", "organ_source", "synthetic", "version", "seed", "case_id", "variant", "index",
    "diameter_requested_mm", "diameter_target_mm", "diameter_source", "diameter_measured_mm", "recist_long_mm",
    "recist_short_mm", "volume_ml", "n_voxels", "size_limited_by_organ", "largest_inscribed_radius_mm",
    "organ_fill_fraction", "organ_volume_ml", "center_requested_ras", "center_placed_ras", "center_voxel",
    "centroid_ras", "centroid_voxel", "placement", "snap_distance_mm", "organ_median_hu", "organ_mad_hu",
    "delta_hu", "mean_tumor_hu", "measured_drop_hu", "effects", "mass_effect", "geometry_info",
    "appearance_info", "draws", "roi", "warnings", "timing",
)
#: An organ thinner (inscribed radius) than this fraction of the tumor's radius gets a warning.
THIN_ORGAN_FRACTION = 0.5
#: The inscribed-ball search runs on a grid of at most this many cells per axis.
INSCRIBED_CELLS = 32


def build_report(outcome: TumorOutcome, *, method: str, index: int, case_id: str, variant: int) -> dict[str, Any]:
    """The JSON-able report of one tumor (keys: the module docstring)."""
    site, geometry, shading = outcome.site, outcome.geometry, outcome.shading
    m = measure_mask(geometry.mask, site.affine_roi)
    r = 0.5 * site.diameter_mm
    r_in = largest_inscribed_near(outcome.scene.organ, site.center_vox, site.spacing, r, also=geometry.mask)
    sphere_ml = 4.0 / 3.0 * np.pi * r_in**3 / 1000.0
    lo = np.asarray(site.roi.lo, dtype=float)
    warnings = list(site.warnings) + field_of_view_warnings(outcome) + thin_organ_warnings(site, r_in)
    limited = geometry.size_limited
    report = {
        "method": method, **report_fields(site.options), "geometry": outcome.geometry_name,
        "appearance": outcome.appearance_name, "stage": site.stage, "organ": site.organ,
        "organ_label_id": int(site.organ_label_id), "tumor_id": int(outcome.tumor_id),
        "necrosis_label_id": outcome.necrosis_id, "convention": site.convention,
        "organ_source": site.organ_source, "synthetic": True, "version": __version__,
        "seed": int(site.spec.seed), "case_id": case_id, "variant": int(variant), "index": int(index),
        "diameter_requested_mm": None if site.spec.diameter_mm is None else float(site.spec.diameter_mm),
        "diameter_target_mm": float(site.diameter_mm), "diameter_source": site.diameter_source,
        "diameter_measured_mm": m["equivalent_diameter_mm"], "recist_long_mm": m["recist_long_mm"],
        "recist_short_mm": m["recist_short_mm"], "volume_ml": m["volume_ml"], "n_voxels": m["n_voxels"],
        "size_limited_by_organ": bool(limited), "largest_inscribed_radius_mm": r_in,
        "organ_fill_fraction": m["volume_ml"] / sphere_ml if sphere_ml > 0 else None,
        "organ_volume_ml": float(site.organ_volume_ml),
        "center_requested_ras": site.center_requested_ras, "center_placed_ras": site.center_placed_ras,
        "center_voxel": site.center_voxel, "centroid_ras": m["centroid_ras"],
        "centroid_voxel": None if m["centroid_voxel"] is None else [float(v) for v in np.asarray(m["centroid_voxel"]) + lo],
        "placement": site.placement, "snap_distance_mm": float(site.snap_distance_mm),
        "organ_median_hu": float(site.organ_median_hu), "organ_mad_hu": float(site.organ_mad_hu),
        "delta_hu": outcome.appearance.target_drop_hu, "mean_tumor_hu": shading.mean_tumor_hu,
        "measured_drop_hu": shading.measured_drop_hu,
        "effects": {**outcome.plan.to_dict(), "necrosis": shading.necrosis is not None},
        "mass_effect": {"moved_voxels": int(outcome.scene.moved_voxels),
                        "displacement_mm": float(outcome.scene.displacement_mm)},
        "geometry_info": geometry.info, "appearance_info": outcome.appearance.info,
        "draws": outcome.draws, "roi": site.roi.to_list(), "warnings": warnings,
        "timing": dict(outcome.timing),
    }
    assert tuple(report) == REPORT_KEYS, "report keys and REPORT_KEYS differ"
    return to_jsonable(report)


def largest_inscribed_near(organ: np.ndarray, center_vox: np.ndarray, spacing: np.ndarray, radius: float,
                           also: np.ndarray | None = None) -> float:
    """Radius (mm) of the largest ball inside ``organ`` (or ``also``, e.g. the tumor: same
    shape) whose centre lies within ``radius`` of ``center_vox`` (ROI voxels). Only the box
    reaching 2 r is used, its edges count as surface, and the distance transform runs on a
    grid of at most ``INSCRIBED_CELLS`` cells per axis (exact to within one cell: the value says
    whether the organ could hold the tumor); the masks are only read on that grid."""
    box = box_around(center_vox, 2.0 * radius + 2.0 * float(np.max(spacing)), spacing, organ.shape)
    step = np.maximum(np.ceil(np.asarray(box.shape) / INSCRIBED_CELLS), 1).astype(int)
    cells = tuple(slice(sl.start, sl.stop, s) for sl, s in zip(box.slices, step))
    coarse = organ[cells] if also is None else organ[cells] | also[cells]
    if not coarse.any():
        return 0.0
    cell = np.asarray(spacing, dtype=float) * step
    edt = ndimage.distance_transform_edt(np.pad(coarse, 1), sampling=cell)[1:-1, 1:-1, 1:-1]
    c = (np.asarray(center_vox, dtype=float) - np.asarray(box.lo)) / step
    g = np.ogrid[tuple(slice(0, n) for n in coarse.shape)]
    d2 = sum(((gi - ci) * s) ** 2 for gi, ci, s in zip(g, c, cell))
    near = coarse & (d2 <= max(radius, float(cell.max())) ** 2)
    return float(edt[near].max()) if near.any() else 0.0


def thin_organ_warnings(site, inscribed_mm: float) -> list[str]:
    """A warning when the organ is much thinner than the tumor at its place (a thin pancreas
    cannot hold an advanced tumor: it follows the organ or stops short of its size)."""
    if site.allow_exophytic or inscribed_mm >= THIN_ORGAN_FRACTION * 0.5 * site.diameter_mm:
        return []
    return [f"the {site.organ} is only about {2 * inscribed_mm:.0f} mm thick here, too thin for a "
            f"{site.diameter_mm:.0f} mm ({site.stage}) tumor: it follows the organ or stays smaller; "
            "choose a smaller size or a thicker part of the organ"]


def field_of_view_warnings(outcome: TumorOutcome) -> list[str]:
    """A warning when the tumor touches the edge of the scan (it is cut flat there)."""
    site, mask = outcome.site, outcome.geometry.mask
    faces = []
    for axis in range(3):
        for at_edge, index in ((site.roi.lo[axis] == 0, 0), (site.roi.hi[axis] == site.scan_shape[axis], -1)):
            if at_edge:
                cut = [slice(None)] * 3
                cut[axis] = index
                faces.append(bool(mask[tuple(cut)].any()))
    if any(faces):
        return ["the tumor touches the edge of the scan's field of view and is cut flat there; "
                "place it farther from the first / last slice or make it smaller"]
    return []


def report_warnings(reports: list[dict[str, Any]]) -> list[str]:
    """Every warning of ``reports``, once each, prefixed with the tumor's number when there are
    several (what the CLI prints, the events carry and the Slicer panel shows)."""
    out: list[str] = []
    for n, report in enumerate(reports, 1):
        for warning in report.get("warnings") or []:
            text = f"tumor {n}: {warning}" if len(reports) > 1 else str(warning)
            if text not in out:
                out.append(text)
    return out


__all__ = ["REPORT_KEYS", "build_report", "field_of_view_warnings", "largest_inscribed_near", "report_warnings"]
