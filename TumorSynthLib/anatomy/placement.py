"""Where a tumor may go: diameter choice, organ region (labels or region growing), click
validation and snapping, sampled placement, size and overlap checks -> ``Site``.

Everything works on boxes around the centre, read through a ``ScanView``; whole-organ facts
(volume, candidate voxels) come from the cached ``ScanAnalysis``. Distances are in mm with
anisotropic spacing; positions are voxel indices ``[i, j, k]`` unless named ``*_ras``.
Rules: ``specs/common.md`` ("Placement", "Stage and size").
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

from ..core.errors import InputError, PlacementError
from ..core.volume import Box, box_around, is_any
from .analysis import ScanView
from .organs import (
    canonical_organ,
    check_stage,
    intensity_profile,
    organ_label_ids,
    stage_diameter_range,
    tnm_diameter_range,
    tumor_label_id,
    vessel_label_ids,
)
from .parenchyma import parenchyma_stats
from .region import (
    OrganRegion,
    ball_d2,
    grow_organ_region,
    labelled_region,
    snap_to_organ,
)
from .sampling import sample_center
from .site import Site, TumorSpec

#: A click this close (mm) to the organ is snapped onto it; farther is an error.
SNAP_MM = 3.0
#: Largest diameter (mm) accepted at all.
ABSURD_DIAMETER_MM = 200.0
#: Largest tumor volume as a fraction of the organ volume.
MAX_ORGAN_FRACTION = 0.8
#: Kidney tumors below the advanced stage grow exophytic with this probability (common.md).
EXOPHYTIC_P = 0.5
#: Radius (mm) of the ball the parenchyma statistics are taken from.
STATS_RADIUS_MM = 30.0


def choose_diameter(spec: TumorSpec, organ: str, stage: str,
                    rng: np.random.Generator) -> tuple[float, str, list[str], float | None]:
    """(diameter mm, source "requested" | "tnm" | "stage-default", warnings, drawn value or
    None). An explicit diameter wins; else ``options["tnm"]``; else uniform in the stage range."""
    lo, hi = stage_diameter_range(stage, organ)
    if spec.diameter_mm is not None:
        d = valid_diameter(spec.diameter_mm)
        warnings = []
        if not lo <= d <= hi:
            warnings.append(f"requested diameter {d:g} mm is outside the {stage} range {lo:g}-{hi:g} mm "
                            f"for the {organ}; using {d:g} mm")
        return d, "requested", warnings, None
    tnm = (spec.options or {}).get("tnm")
    source = "stage-default"
    if tnm:
        lo, hi = tnm_diameter_range(organ, str(tnm))
        source = "tnm"
    d = float(rng.uniform(lo, hi))
    return d, source, [], d


def valid_diameter(value: object) -> float:
    """``value`` as a diameter in mm, or InputError (not a number, <= 0, absurd)."""
    try:
        d = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InputError(f"diameter_mm must be a number in mm, got {value!r}") from None
    if isinstance(value, bool) or not math.isfinite(d) or d <= 0:
        raise InputError(f"diameter_mm must be a finite number > 0 mm, got {value!r}")
    if d > ABSURD_DIAMETER_MM:
        raise InputError(f"diameter_mm {d:g} is absurd (more than {ABSURD_DIAMETER_MM:g} mm); give the "
                         "equivalent-sphere diameter in mm, e.g. 15")
    return d


def prepare_site(view: ScanView, spec: TumorSpec, rng: np.random.Generator, *,
                 roi_radius_mm: Callable[[float, str], float]) -> Site:
    """Validate the request and prepare the ROI of one tumor (see the module docstring).
    ``roi_radius_mm(diameter, stage)`` says how much room around the centre the synthesis
    needs. Raises InputError (bad request) or PlacementError (no valid place)."""
    analysis = view.analysis
    organ = canonical_organ(spec.organ)
    stage = check_stage(spec.stage)
    diameter, source, warnings, drawn = choose_diameter(spec, organ, stage, rng)
    draws: dict[str, object] = {} if drawn is None else {"diameter_mm": drawn}
    spacing = analysis.spacing
    click = _requested_voxel(view, spec)
    region = _region(view, spec, organ, click, rng, draws)
    diameter = _fit_size(organ, diameter, region.volume_ml(), drawn is not None, warnings)
    radius = diameter / 2.0
    exophytic = _allow_exophytic(organ, stage, spec, rng, draws)
    if click is None:
        center = sample_center(region, radius, dict(spec.options or {}), rng, warnings, draws,
                               surface=exophytic and organ == "kidney")
        snap_mm = 0.0
    else:
        center, snap_mm = _clicked_center(view, region, organ, click, warnings)
    roi = box_around(center, roi_radius_mm(diameter, stage), spacing, analysis.shape)
    stats_box = box_around(center, STATS_RADIUS_MM + float(spacing.max()), spacing, analysis.shape)
    tissue_s, _ = region.masks(stats_box)
    c_stats = center - np.asarray(stats_box.lo)
    stats = parenchyma_stats(view.image_box(stats_box), tissue_s, c_stats, spacing, STATS_RADIUS_MM,
                             intensity_profile(organ).parenchyma_floor_hu)
    labels_roi = view.labels_box(roi)
    tissue, lesion = region.masks(roi, labels_roi)
    image_roi = view.image_box(roi)
    vessels = is_any(labels_roi, vessel_label_ids(analysis.convention))
    vessels |= tissue & (image_roi > stats.vessel_threshold_hu)
    center_roi = center - np.asarray(roi.lo)
    if click is not None:
        _check_not_vessel(view, roi, labels_roi, image_roi, tissue, stats.vessel_threshold_hu,
                          center_roi, click)
    occupied = lesion | view.occupied_box(roi)
    _check_overlap(occupied, center_roi, spacing, radius)
    shift = np.eye(4)
    shift[:3, 3] = roi.lo
    return Site(
        spec=spec, organ=organ, organ_label_id=region.organ_label_id,
        tumor_id=tumor_label_id(region.organ_label_id, analysis.convention),
        convention=analysis.convention, stage=stage, diameter_mm=float(diameter),
        diameter_source=source, roi=roi, scan_shape=tuple(analysis.shape), affine_roi=view.image.affine @ shift,
        spacing=np.asarray(spacing, dtype=float), image_roi=image_roi, labels_roi=labels_roi,
        organ_mask=tissue | lesion, vessel_mask=vessels & ~occupied, occupied=occupied,
        center_vox=center_roi.astype(float),
        center_requested_ras=None if click is None else [float(v) for v in view.image.voxel_to_ras(click)],
        center_placed_ras=[float(v) for v in view.image.voxel_to_ras(center)],
        parenchyma=stats, organ_source=region.source, organ_volume_ml=region.volume_ml(),
        placement="sampled" if click is None else "click", snap_distance_mm=float(snap_mm),
        allow_exophytic=exophytic, draws=draws, warnings=warnings,
    )


def _region(view: ScanView, spec: TumorSpec, organ: str, click: np.ndarray | None,
            rng: np.random.Generator, draws: dict[str, object]) -> OrganRegion:
    """The organ region: from the labels (for a sampled kidney tumor, one present kidney at
    random), or grown from the click when there are no labels."""
    if not view.has_labels:
        if click is None:
            raise PlacementError("no organ labels and no click: give organ labels to sample a location, "
                                 "or click a point in the organ (the organ is then grown from the click)")
        return grow_organ_region(view, click, organ, organ_label_id=_grown_label_id(view, organ, click))
    if click is not None:
        return labelled_region(view, organ, click, SNAP_MM)
    ids = organ_label_ids(organ, view.analysis.convention)
    present = [i for i in ids if view.analysis.count((i,)) > 0]
    if not present:
        raise PlacementError(labelled_region(view, organ).absent_message())
    chosen = present[int(rng.integers(len(present)))] if len(present) > 1 else present[0]
    if len(ids) > 1:
        draws["organ_label_id"] = int(chosen)
    return labelled_region(view, organ, organ_label_id=chosen)


def _requested_voxel(view: ScanView, spec: TumorSpec) -> np.ndarray | None:
    """The click as a continuous voxel index (None when sampling); PlacementError outside."""
    if spec.center_ras is not None and spec.center_voxel is not None:
        raise InputError("give either center_ras or center_voxel, not both")
    point = spec.center_ras if spec.center_ras is not None else spec.center_voxel
    if point is None:
        return None
    try:
        p = np.asarray(point, dtype=float)
    except (TypeError, ValueError):
        raise InputError(f"the tumor centre must be 3 numbers, got {point!r}") from None
    if p.shape != (3,) or not np.all(np.isfinite(p)):
        raise InputError(f"the tumor centre must be 3 finite numbers, got {point!r}")
    vox = view.image.ras_to_voxel(p) if spec.center_ras is not None else p
    if not view.image.contains_voxel(vox):
        what = (f"RAS {tuple(round(float(v), 1) for v in p)} mm" if spec.center_ras is not None
                else f"voxel {tuple(float(v) for v in p)}")
        raise PlacementError(f"the tumor centre {what} lies outside the image (shape {view.image.shape}); "
                             "click inside the scan")
    return vox


def _clicked_center(view: ScanView, region: OrganRegion, organ: str, click: np.ndarray,
                    warnings: list[str]) -> tuple[np.ndarray, float]:
    spacing = view.analysis.spacing
    box = box_around(click, SNAP_MM + float(spacing.max()), spacing, view.analysis.shape)
    tissue, lesion = region.masks(box)
    snapped = snap_to_organ(tissue | lesion, click - np.asarray(box.lo), spacing, SNAP_MM)
    if snapped is not None:
        center, dist = snapped[0] + np.asarray(box.lo), snapped[1]
        if dist > 0:
            warnings.append(f"the click was {dist:.1f} mm outside the {organ}; snapped onto it")
        return center, dist
    near = region.nearest(click)
    if near is None:
        raise PlacementError(region.absent_message())
    where = tuple(round(float(v), 1) for v in view.image.voxel_to_ras(near[0]))
    raise PlacementError(f"the click is {near[1]:.1f} mm from the nearest {organ} voxel (at RAS {where} mm); "
                         f"click inside the {organ} (or within {SNAP_MM:g} mm of it)")


def _grown_label_id(view: ScanView, organ: str, click: np.ndarray) -> int:
    """The organ id a grown region stands for (it sets the tumor id). Two kidney ids: the
    right kidney when the click is right (RAS +x) of the image centre, else the left."""
    ids = organ_label_ids(organ, view.analysis.convention)
    if len(ids) == 1:
        return ids[0]
    image = view.image
    center = image.voxel_to_ras((np.asarray(image.shape) - 1) / 2.0)
    return ids[0] if image.voxel_to_ras(click)[0] >= center[0] else ids[1]


def _fit_size(organ: str, diameter: float, organ_ml: float, drawn: bool, warnings: list[str]) -> float:
    """The diameter to use. A requested tumor above 0.8 x the organ volume is refused; a size
    drawn from the stage range is capped at the largest allowed one (with a warning)."""
    tumor_ml = math.pi / 6.0 * diameter**3 / 1000.0
    if tumor_ml <= MAX_ORGAN_FRACTION * organ_ml:
        return diameter
    largest = (6.0 * MAX_ORGAN_FRACTION * organ_ml * 1000.0 / math.pi) ** (1.0 / 3.0)
    if drawn:
        warnings.append(f"the drawn {diameter:.1f} mm exceeds {MAX_ORGAN_FRACTION:g} x the {organ} volume "
                        f"({organ_ml:.1f} ml); capped at {largest:.1f} mm")
        return largest
    raise PlacementError(f"a {diameter:g} mm tumor ({tumor_ml:.1f} ml) is larger than {MAX_ORGAN_FRACTION:g} x "
                         f"the {organ} volume ({organ_ml:.1f} ml); the largest allowed diameter here is "
                         f"{largest:.1f} mm")


def _check_not_vessel(view: ScanView, roi: Box, labels: np.ndarray, image: np.ndarray, tissue: np.ndarray,
                      threshold: float, center: np.ndarray, click: np.ndarray) -> None:
    """PlacementError when the clicked or placed voxel is a labelled vessel, or the placed
    centre is organ tissue brighter than the vessel threshold (median of its 3x3x3
    neighbourhood, so that one noisy voxel does not trigger it)."""
    v = np.rint(center).astype(int)
    c = np.rint(click - np.asarray(roi.lo)).astype(int)
    labelled = is_any(labels, vessel_label_ids(view.analysis.convention))
    on_label = bool(labelled[tuple(v)])
    if np.all(c >= 0) and np.all(c < labels.shape):
        on_label = on_label or bool(labelled[tuple(c)])
    near = tuple(slice(max(a - 1, 0), a + 2) for a in v)
    bright = bool(tissue[tuple(v)]) and float(np.median(image[near])) > threshold
    if on_label or bright:
        where = tuple(round(float(x), 1) for x in view.image.voxel_to_ras(click))
        why = "a labelled vessel" if on_label else f"brighter than the vessel threshold {threshold:.0f} HU"
        raise PlacementError(f"the click at RAS {where} mm is on a vessel ({why}); click in the parenchyma, "
                             "away from the bright vessels")


def _check_overlap(occupied: np.ndarray, c: np.ndarray, spacing: np.ndarray, radius: float) -> None:
    if not occupied.any():
        return
    d2 = ball_d2(occupied.shape, c, spacing)
    close = occupied & (d2 <= radius**2)
    if close.any():
        gap = float(np.sqrt(d2[occupied].min()))
        raise PlacementError(f"the tumor (radius {radius:.1f} mm) would overlap an earlier tumor or lesion "
                             f"{gap:.1f} mm from its centre; place it farther away or make it smaller")


def _allow_exophytic(organ: str, stage: str, spec: TumorSpec, rng: np.random.Generator,
                     draws: dict[str, object]) -> bool:
    """Whether the tumor may grow past the organ's contour: always with ``clip_to_organ=0``,
    never with ``clip_to_organ=1``; kidney tumors by default: advanced ones always (they bulge
    out of the cortex and leave most of the kidney), others with probability 0.5."""
    clip = (spec.options or {}).get("clip_to_organ")
    if clip is False:
        return True
    if clip is True or organ != "kidney":
        return False
    draw = float(rng.random())
    draws["exophytic_u"] = draw
    return stage == "advanced" or draw < EXOPHYTIC_P


__all__ = ["ABSURD_DIAMETER_MM", "SNAP_MM", "Box", "choose_diameter", "prepare_site", "valid_diameter"]
