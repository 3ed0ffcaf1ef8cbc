"""Evaluation metrics on task labels {0 background, 1 organ, 2 tumor}.

Per case:

* ``tumor_dsc``: Dice of label 2; NaN (left out of means) when the reference has no tumor.
* ``tumor_nsd``: normalised surface Dice of label 2 at ``tolerance_mm`` (2 mm), MONAI
  ``compute_surface_dice`` with the voxel spacing; NaN when the reference has no tumor.
* ``organ_dsc``: Dice of the organ *region* (labels 1 and 2 together: the organ with its
  tumors, as organ segmentations are usually scored).
* tumor-wise detection: reference tumors are 26-connected components of label 2; a reference
  tumor is *detected* when a predicted tumor component (after removing components below
  ``min_radius_mm`` equivalent radius) overlaps it by >= 1 voxel; a predicted component that
  touches no reference tumor is a *false positive*. Both are stratified by equivalent diameter
  into ``SIZE_BUCKETS`` (< 10, 10-20, 20-50, > 50 mm).
"""
from __future__ import annotations

import math
import warnings
from typing import Any, Sequence

import numpy as np

from ..core.volume import Volume, bounding_box, check_same_grid
from .postprocess import (
    MIN_RADIUS_MM,
    component_sizes,
    components,
    equivalent_diameter_mm,
    remove_small_components,
    voxel_volume_mm3,
)

NSD_TOLERANCE_MM = 2.0
SIZE_BUCKETS: tuple[tuple[str, float, float], ...] = (
    ("<10", 0.0, 10.0), ("10-20", 10.0, 20.0), ("20-50", 20.0, 50.0), (">50", 50.0, math.inf),
)


def size_bucket(diameter_mm: float) -> str:
    """Name of the bucket holding ``diameter_mm`` (lower bound inclusive)."""
    for name, lo, hi in SIZE_BUCKETS:
        if lo <= diameter_mm < hi:
            return name
    return SIZE_BUCKETS[-1][0]


def dice(pred: np.ndarray, ref: np.ndarray) -> float:
    """2|A&B| / (|A|+|B|) by MONAI ``compute_dice``; NaN when both masks are empty, 0 when only
    the reference is empty.

    MONAI returns NaN for every empty reference (``ignore_empty=True``) or 1 when both are empty
    (``ignore_empty=False``); TumorSynth keeps NaN (left out of means) for "nothing to find and
    nothing found" and 0 for a false alarm, so both-empty is decided here and MONAI runs with
    ``ignore_empty=False``. The reference is passed one-hot in float64 so the ratio is computed
    in double precision; counting happens in the box around both masks."""
    import torch
    from monai.metrics import compute_dice

    p, r = np.asarray(pred, dtype=bool), np.asarray(ref, dtype=bool)
    box = bounding_box(p | r)
    if box is None:
        return float("nan")
    p, r = torch.from_numpy(p[box.slices]), torch.from_numpy(r[box.slices])
    onehot_pred = torch.stack([~p, p]).unsqueeze(0)
    onehot_ref = torch.stack([~r, r]).unsqueeze(0).to(torch.float64)
    value = compute_dice(onehot_pred, onehot_ref, include_background=False, ignore_empty=False)
    return float(value.reshape(-1)[0])


def surface_dice(pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float],
                 tolerance_mm: float = NSD_TOLERANCE_MM) -> float:
    """Normalised surface Dice at ``tolerance_mm`` (MONAI ``compute_surface_dice``); NaN when
    both masks are empty, 0 when exactly one is. Computed in the box around both masks."""
    import torch
    from monai.metrics import compute_surface_dice

    p, r = np.asarray(pred, dtype=bool), np.asarray(ref, dtype=bool)
    if not p.any() and not r.any():
        return float("nan")
    if not p.any() or not r.any():
        return 0.0
    margin = [int(math.ceil(tolerance_mm / s)) + 2 for s in spacing]
    box = bounding_box(p | r, margin)
    p, r = np.pad(p[box.slices], 1), np.pad(r[box.slices], 1)

    def onehot(m: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(m)
        return torch.stack([~t, t]).unsqueeze(0).float()

    with warnings.catch_warnings():  # MONAI 1.6 warns about its own internal deprecated argument
        warnings.simplefilter("ignore", FutureWarning)
        nsd = compute_surface_dice(onehot(p), onehot(r), class_thresholds=[float(tolerance_mm)],
                                   include_background=False, spacing=[float(s) for s in spacing])
    return float(nsd.reshape(-1)[0])


def match_tumors(pred_tumor: np.ndarray, ref_tumor: np.ndarray,
                 spacing: Sequence[float]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(reference tumors, predicted tumors): each with ``diameter_mm``, ``volume_ml``,
    ``bucket``; references carry ``detected``, predictions ``false_positive``."""
    ref_lab, n_ref = components(ref_tumor)
    pred_lab, n_pred = components(pred_tumor)
    hit_refs = set(np.unique(ref_lab[pred_lab > 0]).tolist()) - {0}
    hit_preds = set(np.unique(pred_lab[ref_lab > 0]).tolist()) - {0}
    vox_ml = voxel_volume_mm3(spacing) / 1000.0

    def rows(lab: np.ndarray, n: int, hits: set[int], flag: str, invert: bool) -> list[dict[str, Any]]:
        sizes = component_sizes(lab, n)
        out = []
        for i in range(1, n + 1):
            diameter = float(equivalent_diameter_mm(int(sizes[i]), spacing))
            hit = i in hits
            out.append({"id": i, "diameter_mm": diameter, "volume_ml": float(sizes[i]) * vox_ml,
                        "bucket": size_bucket(diameter), flag: (not hit) if invert else hit})
        return out

    return rows(ref_lab, n_ref, hit_refs, "detected", False), rows(pred_lab, n_pred, hit_preds,
                                                                   "false_positive", True)


def evaluate_case(pred: Volume, ref: Volume, case_id: str = "", *,
                  min_radius_mm: float = MIN_RADIUS_MM,
                  tolerance_mm: float = NSD_TOLERANCE_MM) -> dict[str, Any]:
    """Metrics of one case (task labels on the same grid; GeometryError otherwise)."""
    check_same_grid(ref, pred, "prediction")
    spacing = ref.spacing
    p, r = np.asarray(pred.array), np.asarray(ref.array)
    pred_tumor, _ = remove_small_components(p == 2, spacing, min_radius_mm)
    ref_tumor = r == 2
    has_ref = bool(ref_tumor.any())
    ref_rows, pred_rows = match_tumors(pred_tumor, ref_tumor, spacing)
    vox_ml = voxel_volume_mm3(spacing) / 1000.0
    return {
        "case_id": case_id,
        "tumor_dsc": dice(pred_tumor, ref_tumor) if has_ref else float("nan"),
        "tumor_nsd": surface_dice(pred_tumor, ref_tumor, spacing, tolerance_mm) if has_ref else float("nan"),
        "organ_dsc": dice(p >= 1, r >= 1),
        "n_ref_tumors": len(ref_rows),
        "n_detected": sum(t["detected"] for t in ref_rows),
        "n_pred_tumors": len(pred_rows),
        "false_positives": sum(t["false_positive"] for t in pred_rows),
        "ref_tumor_ml": float(ref_tumor.sum()) * vox_ml,
        "pred_tumor_ml": float(pred_tumor.sum()) * vox_ml,
        "tumors": ref_rows,
        "predicted_tumors": pred_rows,
    }


def _stats(values: list[float]) -> dict[str, float | int | None]:
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=float)
    if v.size == 0:
        return {"mean": None, "median": None, "std": None, "n": 0}
    return {"mean": float(v.mean()), "median": float(np.median(v)), "std": float(v.std()), "n": int(v.size)}


def summarize(cases: list[dict[str, Any]]) -> dict[str, Any]:
    """Overall figures: mean / median DSC and NSD, sensitivity and false positives by size."""
    by_size: dict[str, dict[str, Any]] = {}
    for name, lo, hi in SIZE_BUCKETS:
        refs = [t for c in cases for t in c["tumors"] if t["bucket"] == name]
        fps = [t for c in cases for t in c["predicted_tumors"] if t["bucket"] == name and t["false_positive"]]
        detected = sum(t["detected"] for t in refs)
        by_size[name] = {"range_mm": [lo, None if math.isinf(hi) else hi], "n_tumors": len(refs),
                         "detected": detected,
                         "sensitivity": detected / len(refs) if refs else None,
                         "false_positives": len(fps)}
    n_ref = sum(c["n_ref_tumors"] for c in cases)
    n_det = sum(c["n_detected"] for c in cases)
    n_fp = sum(c["false_positives"] for c in cases)
    return {
        "n_cases": len(cases),
        "tumor_dsc": _stats([c["tumor_dsc"] for c in cases]),
        "tumor_nsd": _stats([c["tumor_nsd"] for c in cases]),
        "organ_dsc": _stats([c["organ_dsc"] for c in cases]),
        "n_ref_tumors": n_ref,
        "sensitivity": n_det / n_ref if n_ref else None,
        "false_positives": n_fp,
        "false_positives_per_case": n_fp / len(cases) if cases else None,
        "by_size": by_size,
    }


__all__ = ["SIZE_BUCKETS", "NSD_TOLERANCE_MM", "size_bucket", "dice", "surface_dice",
           "match_tumors", "evaluate_case", "summarize"]
