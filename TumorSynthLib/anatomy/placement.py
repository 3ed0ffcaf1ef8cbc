"""Where a tumor may go: diameter choice, organ mask (labels or region growing), click
validation and snapping, sampled placement, size and overlap checks -> ``Site``.

Everything after the organ is found works on boxes around the centre, never the whole scan:
in click mode the only whole-volume work is counting the organ's voxels once (volume check).
The organ comes from ``organ_region`` (labels, or region growing from the click); sampled
centres from ``placement_sampling``.
Distances are in mm with anisotropic spacing; positions are voxel indices ``[i, j, k]`` unless
named ``*_ras``. Rules: ``specs/common.md`` ("Placement", "Stage and size").
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
from scipy import ndimage

from ..core.errors import GeometryError, InputError, PlacementError
from .organs import (
    CONVENTIONS,
    canonical_organ,
    check_stage,
    organ_label_ids,
    parenchyma_stats,
    stage_diameter_range,
    tnm_diameter_range,
    tumor_label_id,
    vessel_label_ids,
)
from .region import (
    OrganRegion,
    ball_d2,
    grow_organ_region,
    labelled_region,
    nearest_organ_voxel,
    snap_to_organ,
)
from .sampling import sample_center, sample_location
from .site import Site, TumorSpec
from ..core.volume import Box, Volume, box_around

#: A click this close (mm) to the organ is snapped onto it; farther is an error.
SNAP_MM = 3.0
#: Largest diameter (mm) accepted at all.
ABSURD_DIAMETER_MM = 200.0
#: Largest tumor volume as a fraction of the organ volume.
MAX_ORGAN_FRACTION = 0.8
#: Radius (mm) of the ball the parenchyma statistics are taken from.
STATS_RADIUS_MM = 30.0

__all__ = [
    "prepare_site",
    "choose_diameter",
    "snap_to_organ",
    "nearest_organ_voxel",
    "sample_location",
    "grow_organ_region",
    "SNAP_MM",
]


# -- diameter -----------------------------------------------------------------------------------
def choose_diameter(
    spec: TumorSpec, organ: str, stage: str, rng: np.random.Generator
) -> tuple[float, str, list[str], float | None]:
    """(diameter mm, source "requested" | "tnm" | "stage-default", warnings, drawn value or
    None). An explicit diameter wins; else ``options["tnm"]``; else uniform in the stage range."""
    lo, hi = stage_diameter_range(stage, organ)
    if spec.diameter_mm is not None:
        d = _valid_diameter(spec.diameter_mm)
        warnings = []
        if not lo <= d <= hi:
            warnings.append(
                f"requested diameter {d:g} mm is outside the {stage} range {lo:g}-{hi:g} mm for "
                f"the {organ}; using {d:g} mm"
            )
        return d, "requested", warnings, None
    tnm = spec.options.get("tnm") if spec.options else None
    source = "stage-default"
    if tnm:
        lo, hi = tnm_diameter_range(organ, str(tnm))
        source = "tnm"
    d = float(rng.uniform(lo, hi))
    return d, source, [], d


def _valid_diameter(value: object) -> float:
    try:
        d = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InputError(f"diameter_mm must be a number in mm, got {value!r}") from None
    if isinstance(value, bool) or not math.isfinite(d) or d <= 0:
        raise InputError(f"diameter_mm must be a finite number > 0 mm, got {value!r}")
    if d > ABSURD_DIAMETER_MM:
        raise InputError(
            f"diameter_mm {d:g} is absurd (more than {ABSURD_DIAMETER_MM:g} mm); give the "
            "equivalent-sphere diameter in mm, e.g. 15"
        )
    return d


# -- geometry helpers ---------------------------------------------------------------------------
def _sub(box: Box, inner: Box) -> tuple[slice, slice, slice]:
    """Slices of ``inner`` (full-image box) inside arrays cropped to ``box``."""
    return tuple(slice(a - o, b - o) for a, b, o in zip(inner.lo, inner.hi, box.lo))  # type: ignore[return-value]


# -- the main entry point -----------------------------------------------------------------------
def prepare_site(
    image: Volume, labels: Volume | None, spec: TumorSpec, convention: str,
    rng: np.random.Generator, *, roi_radius_mm: Callable[[float, str], float],
    occupied: np.ndarray | None = None,
) -> Site:
    """Validate the request and prepare the ROI of one tumor (see the module docstring).

    Image and labels must already share one grid and be finite / integer (``volume.check_*``).
    ``occupied`` (full-image, nonzero = earlier tumors) must stay at least r away.
    Raises InputError (bad request) or PlacementError (no valid place)."""
    organ = canonical_organ(spec.organ)
    conv = str(convention).strip().lower()
    if conv not in CONVENTIONS:
        raise InputError(f"unknown label convention '{convention}'; choose one of: {', '.join(CONVENTIONS)}")
    stage = check_stage(spec.stage)
    diameter, source, warnings, drawn = choose_diameter(spec, organ, stage, rng)
    draws: dict[str, object] = {}
    if drawn is not None:
        draws["diameter_mm"] = drawn
    radius = diameter / 2.0
    spacing = image.spacing
    occ = _check_occupied(occupied, image.shape)
    click = _requested_voxel(image, spec)
    lab = None if labels is None else np.asarray(labels.array)

    if click is None:
        if lab is None:
            raise PlacementError(
                "no organ labels and no click: give organ labels to sample a location, or click "
                "a point in the organ (the organ is then grown from the click)"
            )
        region = _choose_labelled_region(lab, organ, conv, rng, draws)
        center = sample_center(image, region, spec, radius, occ, rng, warnings, draws)
        snap_mm = 0.0
    else:
        region = (labelled_region(lab, organ, conv, click, spacing, SNAP_MM) if lab is not None
                  else grow_organ_region(np.asarray(image.array), click, spacing, organ,
                                         organ_label_id=_grown_label_id(image, organ, conv, click)))
        center, snap_mm = _clicked_center(image, lab, region, organ, conv, click, warnings)

    organ_ml = region.volume_ml(spacing)
    diameter = _fit_size(organ, diameter, organ_ml, drawn is not None, warnings)
    radius = diameter / 2.0
    roi = box_around(center, roi_radius_mm(diameter, stage), spacing, image.shape)
    work_mm = max(STATS_RADIUS_MM, 2 * radius) + 2 * float(spacing.max())
    work = box_around(center, work_mm, spacing, image.shape).union(roi)
    tissue_w, lesion_w = region.masks(work)
    c_work = center - np.asarray(work.lo)
    stats = parenchyma_stats(np.asarray(image.array[work.slices]), tissue_w, c_work, spacing, STATS_RADIUS_MM)
    vessel_labels_w = _vessel_label_mask(lab, work, conv)
    if click is not None:
        _check_not_vessel(image, work, c_work, tissue_w, vessel_labels_w, stats.vessel_threshold_hu, click, center)
    occupied_w = lesion_w | (occ[work.slices] if occ is not None else False)
    _check_overlap(occupied_w, c_work, spacing, radius)

    s = _sub(work, roi)
    organ_roi = (tissue_w | lesion_w)[s]
    image_roi = np.asarray(image.array[roi.slices], dtype=np.float32).copy()
    vessel_roi = vessel_labels_w[s] | (tissue_w[s] & (image_roi > stats.vessel_threshold_hu))
    center_roi = center - np.asarray(roi.lo)
    shift = np.eye(4)
    shift[:3, 3] = roi.lo
    allow_exo = _allow_exophytic(organ, spec, rng, draws)
    requested_ras = None if click is None else [float(v) for v in image.voxel_to_ras(click)]
    return Site(
        spec=spec, organ=organ, organ_label_id=region.organ_label_id,
        tumor_id=tumor_label_id(region.organ_label_id, conv), convention=conv, stage=stage,
        diameter_mm=float(diameter), diameter_source=source, roi=roi, image_roi=image_roi,
        labels_roi=(np.array(lab[roi.slices], dtype=np.result_type(lab.dtype, np.int16))
                    if lab is not None else np.zeros(roi.shape, dtype=np.int16)),
        organ_mask=organ_roi, vessel_mask=vessel_roi, occupied=occupied_w[s].copy(),
        center_vox=center_roi.astype(float), center_requested_ras=requested_ras,
        center_placed_ras=[float(v) for v in image.voxel_to_ras(center)],
        spacing=np.asarray(spacing, dtype=float), affine_roi=image.affine @ shift,
        organ_median_hu=stats.median_hu, organ_mad_hu=stats.mad_hu,
        vessel_threshold_hu=stats.vessel_threshold_hu, organ_source=region.source,
        max_inscribed_radius_mm=_inscribed_near(tissue_w | lesion_w, work, center, spacing, radius),
        allow_exophytic=allow_exo, warnings=warnings,
        details={
            "draws": draws, "organ_volume_ml": organ_ml, "snap_distance_mm": snap_mm,
            "placement": "sampled" if click is None else "click",
            "parenchyma_voxels": stats.n_voxels, "center_voxel": [float(v) for v in center],
        },
    )


# -- steps of prepare_site ----------------------------------------------------------------------
def _check_occupied(occupied: np.ndarray | None, shape: tuple[int, int, int]) -> np.ndarray | None:
    if occupied is None:
        return None
    occ = np.asarray(occupied)
    if occ.shape != tuple(shape):
        raise GeometryError(f"occupied map shape {occ.shape} differs from the image {tuple(shape)}")
    return occ != 0 if occ.dtype != bool else occ


def _requested_voxel(image: Volume, spec: TumorSpec) -> np.ndarray | None:
    """The click as a continuous voxel index (None when sampling); PlacementError outside."""
    if spec.center_ras is not None and spec.center_voxel is not None:
        raise InputError("give either center_ras or center_voxel, not both")
    point = spec.center_ras if spec.center_ras is not None else spec.center_voxel
    if point is None:
        return None
    p = np.asarray(point, dtype=float)
    if p.shape != (3,) or not np.all(np.isfinite(p)):
        raise InputError(f"the tumor centre must be 3 finite numbers, got {point!r}")
    vox = image.ras_to_voxel(p) if spec.center_ras is not None else p
    if not image.contains_voxel(vox):
        what = f"RAS {tuple(round(float(v), 1) for v in p)} mm" if spec.center_ras is not None else f"voxel {tuple(p)}"
        raise PlacementError(
            f"the tumor centre {what} lies outside the image (shape {image.shape}); "
            "click inside the scan"
        )
    return vox


def _clicked_center(
    image: Volume, lab: np.ndarray | None, region: OrganRegion, organ: str, conv: str,
    click: np.ndarray, warnings: list[str],
) -> tuple[np.ndarray, float]:
    box = box_around(click, SNAP_MM + float(image.spacing.max()), image.spacing, image.shape)
    tissue, lesion = region.masks(box)
    snapped = snap_to_organ(tissue | lesion, click - np.asarray(box.lo), image.spacing)
    if snapped is not None:
        center, dist = snapped[0] + np.asarray(box.lo), snapped[1]
        if dist > 0:
            warnings.append(f"the click was {dist:.1f} mm outside the {organ}; snapped onto it")
        return center, dist
    near = region.nearest(click, image.spacing)
    if near is None:
        raise PlacementError(region.absent_message(organ, conv))
    where = tuple(round(float(v), 1) for v in image.voxel_to_ras(near[0]))
    raise PlacementError(
        f"the click is {near[1]:.1f} mm from the nearest {organ} voxel (at RAS {where} mm); "
        f"click inside the {organ} (or within {SNAP_MM:g} mm of it)"
    )


def _grown_label_id(image: Volume, organ: str, conv: str, click: np.ndarray) -> int:
    """The organ id a grown region stands for (it sets the tumor id). Two kidney ids: the
    right kidney when the click is right (RAS +x) of the image centre, else the left."""
    ids = organ_label_ids(organ, conv)
    if len(ids) == 1:
        return ids[0]
    center = image.voxel_to_ras((np.asarray(image.shape) - 1) / 2.0)
    return ids[0] if image.voxel_to_ras(click)[0] >= center[0] else ids[1]


def _choose_labelled_region(
    lab: np.ndarray, organ: str, conv: str, rng: np.random.Generator, draws: dict[str, object]
) -> OrganRegion:
    """The organ region to sample in; for several ids (kidneys) one present id at random."""
    ids = organ_label_ids(organ, conv)
    present = [i for i in ids if np.any(lab == i)]
    if not present:
        raise PlacementError(labelled_region(lab, organ, conv, None, None, SNAP_MM).absent_message(organ, conv))
    oid = present[int(rng.integers(len(present)))] if len(present) > 1 else present[0]
    if len(ids) > 1:
        draws["organ_label_id"] = int(oid)
    return labelled_region(lab, organ, conv, None, None, SNAP_MM, organ_label_id=oid)


def _fit_size(organ: str, diameter: float, organ_ml: float, drawn: bool, warnings: list[str]) -> float:
    """The diameter to use. A requested tumor above 0.8 x the organ volume is refused; a size
    drawn from the stage range is capped at the largest allowed one (with a warning)."""
    tumor_ml = math.pi / 6.0 * diameter**3 / 1000.0
    if tumor_ml <= MAX_ORGAN_FRACTION * organ_ml:
        return diameter
    largest = (6.0 * MAX_ORGAN_FRACTION * organ_ml * 1000.0 / math.pi) ** (1.0 / 3.0)
    if drawn:
        warnings.append(
            f"the drawn {diameter:.1f} mm exceeds {MAX_ORGAN_FRACTION:g} x the {organ} volume "
            f"({organ_ml:.1f} ml); capped at {largest:.1f} mm"
        )
        return largest
    raise PlacementError(
        f"a {diameter:g} mm tumor ({tumor_ml:.1f} ml) is larger than {MAX_ORGAN_FRACTION:g} x "
        f"the {organ} volume ({organ_ml:.1f} ml); the largest allowed diameter here is "
        f"{largest:.1f} mm"
    )


def _vessel_label_mask(lab: np.ndarray | None, box: Box, conv: str) -> np.ndarray:
    ids = vessel_label_ids(conv)
    if lab is None or not ids:
        return np.zeros(box.shape, dtype=bool)
    return np.isin(lab[box.slices], ids)


def _check_not_vessel(
    image: Volume, work: Box, c_work: np.ndarray, tissue: np.ndarray, vessel_labels: np.ndarray,
    threshold: float, click: np.ndarray, center: np.ndarray,
) -> None:
    """PlacementError when the clicked or placed voxel is a labelled vessel, or the placed
    centre is organ tissue brighter than the vessel threshold (median of its 3x3x3
    neighbourhood, so that one noisy voxel does not trigger it)."""
    v = np.rint(c_work).astype(int)
    clicked = np.rint(click).astype(int) - np.asarray(work.lo)
    on_label = bool(vessel_labels[tuple(v)])
    if np.all(clicked >= 0) and np.all(clicked < vessel_labels.shape):
        on_label = on_label or bool(vessel_labels[tuple(clicked)])
    near = tuple(slice(max(a - 1, 0), a + 2) for a in v)
    img = np.asarray(image.array[work.slices])
    bright = bool(tissue[tuple(v)]) and float(np.median(img[near])) > threshold
    if on_label or bright:
        where = tuple(round(float(x), 1) for x in image.voxel_to_ras(click))
        why = "a labelled vessel" if on_label else f"brighter than the vessel threshold {threshold:.0f} HU"
        raise PlacementError(
            f"the click at RAS {where} mm is on a vessel ({why}); click in the parenchyma, away "
            "from the bright vessels"
        )


def _check_overlap(occupied: np.ndarray, c: np.ndarray, spacing: np.ndarray, radius: float) -> None:
    if not occupied.any():
        return
    d2 = ball_d2(occupied.shape, c, spacing)
    close = occupied & (d2 <= radius**2)
    if close.any():
        gap = float(np.sqrt(d2[occupied].min()))
        raise PlacementError(
            f"the tumor (radius {radius:.1f} mm) would overlap an earlier tumor {gap:.1f} mm from "
            "its centre; place it farther away or make it smaller"
        )


def _inscribed_near(organ: np.ndarray, work: Box, center: np.ndarray, spacing: np.ndarray,
                   radius: float) -> float:
    """Largest organ-inscribed ball radius (mm) among organ voxels within ``radius`` of
    ``center`` (full-image voxels); ``organ`` covers ``work``. Only the box reaching 2 r around
    the centre is used and its edges count as surface: the value is exact when below r and at
    least r otherwise (all the organ-limit test needs)."""
    box = box_around(center, 2 * radius + 2 * float(spacing.max()), spacing, work.hi)
    box = Box(tuple(max(a, b) for a, b in zip(box.lo, work.lo)), box.hi)  # type: ignore[arg-type]
    sub = organ[_sub(work, box)]
    if not sub.any():
        return 0.0
    edt = ndimage.distance_transform_edt(np.pad(sub, 1), sampling=spacing)[1:-1, 1:-1, 1:-1]
    c = center - np.asarray(box.lo)
    near = sub & (ball_d2(sub.shape, c, spacing) <= max(radius, float(spacing.max())) ** 2)
    return float(edt[near].max()) if near.any() else 0.0


def _allow_exophytic(organ: str, spec: TumorSpec, rng: np.random.Generator, draws: dict[str, object]) -> bool:
    clip = spec.options.get("clip_to_organ") if spec.options else None
    if clip is False:
        return True
    if clip is True or organ != "kidney":
        return False
    draw = float(rng.random())
    draws["exophytic_u"] = draw
    return draw < 0.5
