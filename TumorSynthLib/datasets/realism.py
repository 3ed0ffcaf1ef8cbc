"""How real a synthetic tumor looks, in numbers (the realism benchmark and its tests).

For one tumor of a ``Synthesis`` against the scan it was made in:

* ``size_ratio`` (measured / target diameter) and ``components`` (26-connected parts);
* ``drop_hu``: the median HU of the organ shell's parenchyma (organ voxels 3-15 mm from the
  tumor above the organ's fat floor, before) minus the mean HU of the tumor's core (voxels
  >= 2 mm inside it, after; None below ``MIN_CORE_VOXELS``);
* ``grain_ratio``: the robust SD (1.4826 MAD) of the high-pass image (image minus its 1-voxel
  Gaussian blur) in the tumor core over the same in the organ shell, both after: 1 when the
  tumor keeps the scan's grain (None for tumors without a core of ``MIN_GRAIN_VOXELS``: the
  estimate of a smaller one is noise);
* ``edge_width_mm``: the distance over which the change rises from 10 % to 90 % of the core's;
* voxels changed outside the organ by class (``changed_bone``, ``changed_air``,
  ``changed_soft``) and farther than 10 mm outside it (``changed_far``);
* ``organ_share`` (the share of the organ's voxels the tumor took), ``fat_share`` (tumor voxels that were fat,
  < -30 HU, before), ``outside_share`` (tumor voxels more than 2 mm outside the organ);
* ``sphericity``, ``elongation``, ``flatness`` (``anatomy.measure.shape_metrics``) and
  ``fov_contact`` (the tumor touches the scan's edge).
"""
from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage

from ..anatomy.measure import shape_metrics
from ..anatomy.organs import intensity_profile, organ_label_ids
from ..core.volume import Volume, box_around
from ..synthesis.intensity import robust_sd

SHELL_MM = (3.0, 15.0)
#: Fewest core voxels for a drop (a mean) and for a grain ratio (a robust SD: its relative
#: standard error is about 1.2 / sqrt(n) for independent voxels, more for CT's correlated
#: noise, so below ~150 voxels one tumor's ratio is noise, not grain).
MIN_CORE_VOXELS = 20
MIN_GRAIN_VOXELS = 150
CORE_MM = 2.0
FAR_MM = 10.0
FAT_HU = -30.0
BONE_HU, AIR_HU = 350.0, -500.0


def tumor_metrics(image: Volume, labels: Volume, result: Any, index: int = 0) -> dict[str, Any]:
    """The realism figures of tumor ``index`` of ``result`` made in (``image``, ``labels``)
    (TotalSegmentator convention; see the module docstring)."""
    report = result.reports[index]
    tumor_full = result.tumor_instances.array == index + 1
    spacing = image.spacing
    reach = SHELL_MM[1] + FAR_MM + 2.0 * report["diameter_target_mm"]
    center = np.asarray(report["centroid_voxel"] or report["center_voxel"])
    box = box_around(center, reach, spacing, image.shape)
    sl = box.slices
    before = np.asarray(image.array[sl], dtype=np.float32)
    after = np.asarray(result.image.array[sl], dtype=np.float32)
    tumor = tumor_full[sl]
    organ = _organ(labels.array[sl], report)
    inside = ndimage.distance_transform_edt(tumor, sampling=spacing)
    outside = ndimage.distance_transform_edt(~tumor, sampling=spacing)
    organ_dist = ndimage.distance_transform_edt(~organ, sampling=spacing)
    core = inside >= CORE_MM
    shell = organ & ~tumor & (outside >= SHELL_MM[0]) & (outside <= SHELL_MM[1])
    parenchyma = shell & (before >= intensity_profile(report["organ"]).parenchyma_floor_hu)
    hp = after - ndimage.gaussian_filter(after, 1.0)
    changed = after != before
    not_organ = ~organ & ~tumor
    out: dict[str, Any] = {
        "size_ratio": report["diameter_measured_mm"] / report["diameter_target_mm"],
        "components": int(ndimage.label(tumor, structure=np.ones((3, 3, 3)))[1]),
        "drop_hu": (float(np.median(before[parenchyma]) - after[core].mean())
                    if parenchyma.any() and core.sum() >= MIN_CORE_VOXELS else None),
        "grain_ratio": (robust_sd(hp[core]) / robust_sd(hp[shell])
                        if shell.sum() >= MIN_GRAIN_VOXELS and core.sum() >= MIN_GRAIN_VOXELS else None),
        "edge_width_mm": _edge_width(before - after, inside, outside, core),
        "changed_bone": int(np.count_nonzero(changed & not_organ & (before > BONE_HU))),
        "changed_air": int(np.count_nonzero(changed & not_organ & (before < AIR_HU))),
        "changed_soft": int(np.count_nonzero(changed & not_organ & (before >= AIR_HU) & (before <= BONE_HU))),
        "changed_far": int(np.count_nonzero(changed & (organ_dist > FAR_MM) & ~tumor)),
        "organ_share": float((tumor & organ).sum() / max(int(_organ(labels.array, report).sum()), 1)),
        "fat_share": float(np.mean(before[tumor] < FAT_HU)) if tumor.any() else None,
        "outside_share": float(np.mean(organ_dist[tumor] > 2.0)) if tumor.any() else None,
        "fov_contact": any("field of view" in w for w in report["warnings"]),
    }
    out.update(shape_metrics(tumor, spacing))
    return out


def _organ(labels: np.ndarray, report: dict[str, Any]) -> np.ndarray:
    """The tumor's organ in the input labels (for a kidney: the kidney it was placed in)."""
    if report["convention"] == "totalseg" and report["organ"] == "kidney":
        return labels == report["organ_label_id"]
    return np.isin(labels, organ_label_ids(report["organ"], report["convention"]))


def _edge_width(change: np.ndarray, inside: np.ndarray, outside: np.ndarray, core: np.ndarray) -> float | None:
    """mm between the 10 % and 90 % points of the change's profile across the tumor surface
    (signed distance binned by 0.5 mm, from 6 mm outside to 6 mm inside)."""
    level = float(np.median(change[core])) if core.any() else 0.0
    if abs(level) < 1.0:
        return None
    signed = np.where(inside > 0, inside, -outside)
    bins = np.arange(-6.0, 6.01, 0.5)
    which = np.digitize(signed, bins)
    profile = []
    for b in range(1, len(bins)):
        sel = which == b
        profile.append(float(np.mean(change[sel])) / level if sel.any() else np.nan)
    prof = np.asarray(profile)
    centres = 0.5 * (bins[1:] + bins[:-1])
    ok = np.isfinite(prof)
    if ok.sum() < 4:
        return None
    prof = np.maximum.accumulate(np.clip(prof[ok], 0, None))
    x = centres[ok]
    if prof[-1] < 0.9 or prof[0] > 0.1:
        return None
    return float(np.interp(0.9, prof, x) - np.interp(0.1, prof, x))


def summarise(rows: list[dict[str, Any]], key: str) -> float | None:
    """The median of a metric over rows (None when absent everywhere)."""
    values = [r[key] for r in rows if r.get(key) is not None and np.isfinite(r[key])]
    return float(np.median(values)) if values else None


__all__ = ["summarise", "tumor_metrics"]
