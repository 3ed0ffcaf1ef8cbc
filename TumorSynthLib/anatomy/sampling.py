"""Sampled placement (no click): a tumor centre drawn uniformly over the organ voxels that are
at least min(r, 5 mm) inside the surface, not brighter than the organ's vessel threshold, more
than r from earlier tumors and lesions, far enough from the scan's edges that the tumor fits in
the field of view and, for the liver, in the central 30-70 % of its cranio-caudal (RAS S) extent
(common.md "Placement"). In the liver a centre at least ``LIVER_DEPTH_FRACTION`` r deep is
preferred (still "at least min(r, 5 mm)"): a large liver tumor centred 5 mm under the capsule is
cut flat by it and reads as a wedge-shaped perfusion defect, not a mass (realism issue: the
median sphericity of advanced cellular liver tumors rose from 0.67 to 0.77 in bench_realism).

The organ's box and vessel threshold are organ-wide facts computed once per scan
(``ScanAnalysis``); a candidate is a uniform draw in the box that holds the organ, and each
then checks only a small box around it (rejection sampling). After ``REJECTION_TRIES`` misses
the exact eligible set is computed once with distance transforms on the organ's box, so the
draw stays uniform over the same set either way.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..core.errors import InputError, PlacementError
from ..core.resample import dilate_mm
from ..core.volume import Box, box_around, voxel_indices
from .region import LabelledRegion, ball_d2

#: Sampled centres keep at least min(r, this) mm from the organ surface.
SURFACE_MARGIN_MM = 5.0
#: Liver: a centre at least this fraction of r under the surface is tried first.
LIVER_DEPTH_FRACTION = 0.4
#: Default cranio-caudal band (fractions of the liver's S extent) for sampled liver tumors.
LIVER_CC_RANGE = (0.3, 0.7)
#: Sampled tumors keep this many radii from the scan's edges (a deformed tumor reaches ~1.3 r).
FOV_REACH = 1.3
#: Exophytic tumors keep this far (mm) from the organ's hilum (the fat its closing encloses).
HILUM_CLOSING_MM = 8.0
HILUM_CLEARANCE_MM = 6.0
#: Random draws tried before the exact eligible set is computed.
REJECTION_TRIES = 200
#: Candidates are drawn this many at a time (uniform in the organ's box; the organ's voxels kept).
CANDIDATE_BATCH = 64
#: Uniform draws in the organ's box to find one organ voxel (an organ filling 1 % of its box
#: is missed with probability e^-20).
ORGAN_DRAWS = 2000


def sample_center(region: LabelledRegion, radius: float, options: dict, rng: np.random.Generator,
                  warnings: list[str], draws: dict[str, object], *, surface: bool = False) -> np.ndarray:
    """A centre (full-image voxel index, float) for a tumor of ``radius`` mm (see the module
    docstring); ``surface``: an exophytic tumor, centred just under the organ's surface away
    from its hilum (``surface_center``). PlacementError when the organ has no such place."""
    if surface:
        pick = surface_center(region, radius, rng)
        if pick is not None:
            draws["center_voxel"] = [int(v) for v in pick]
            return pick.astype(float)
        warnings.append(f"no place under the {region.organ}'s surface away from its hilum; sampled inside it")
    need = min(radius, SURFACE_MARGIN_MM)
    deep = LIVER_DEPTH_FRACTION * radius if region.organ == "liver" else 0.0
    rules = _Rules(region, radius, options)
    passes = [True, False] if rules.band is not None else [False]
    for use_band in passes:
        if not use_band and rules.band is not None:
            warnings.append("no room in the central cranio-caudal band of the liver; sampled the whole liver")
        depth, pick = deep, (_draw_by_rejection(region, rules, use_band, deep, radius, rng) if deep > need else None)
        if pick is None:
            depth, pick = need, _draw_by_rejection(region, rules, use_band, need, radius, rng)
        if pick is None:
            pick = _draw_exhaustive(region, rules.eligible(use_band), need, radius, rng)
        if pick is not None:
            draws["center_voxel"] = [int(v) for v in pick]
            draws["center_min_depth_mm"] = round(float(depth), 2)
            return pick.astype(float)
    raise PlacementError(
        f"no place in the {region.organ} is {need:.1f} mm inside the surface, off vessels, "
        f"{radius:.1f} mm from earlier tumors and inside the field of view; ask for a smaller "
        "tumor or click a point"
    )


class _Rules:
    """The per-voxel rules of a sampled centre, checkable one candidate at a time (cheap) or
    for every organ voxel at once (the exhaustive fallback)."""

    def __init__(self, region: LabelledRegion, radius: float, options: dict) -> None:
        analysis = region.view.analysis
        self.analysis = analysis
        self.ids = tuple(int(i) for i in region.tissue_ids)
        self.box = analysis.box(self.ids)
        self.threshold = analysis.vessel_threshold(region.tissue_ids)
        shape, spacing = np.asarray(analysis.shape), analysis.spacing
        reach = np.floor(np.minimum(FOV_REACH * radius / spacing, 0.5 * (shape - 1)))
        self.lo, self.hi = reach, shape - 1 - reach
        self.band = _liver_band(region, options)

    def ok(self, v: np.ndarray, use_band: bool) -> np.ndarray:
        """Per candidate voxel (rows of ``v``, (n, 3)): inside the field-of-view margins, not
        brighter than the vessel threshold, in the liver band when asked."""
        keep = np.all((v >= self.lo) & (v <= self.hi), axis=1)
        keep[keep] = self.analysis.image.array[tuple(v[keep].T)] <= self.threshold
        if use_band and self.band is not None and keep.any():
            s = _s_of(self.analysis, v[keep])
            keep[keep] = (s >= self.band[0]) & (s <= self.band[1])
        return keep

    def organ_voxels(self, rng: np.random.Generator) -> np.ndarray | None:
        """Voxels ((n, 3), in draw order) drawn uniformly over the organ's voxels: batches of
        ``CANDIDATE_BATCH`` uniform draws in the organ's box, those that hit the organ kept (no
        list of the organ's voxels is built: a new scan per training sample would pay for it
        every time); None when the organ is absent or ``ORGAN_DRAWS`` draws miss it."""
        labels = self.analysis.label_array
        if self.box is None or labels is None:
            return None
        lo, size = np.asarray(self.box.lo), np.asarray(self.box.shape)
        for _ in range(-(-ORGAN_DRAWS // CANDIDATE_BATCH)):
            v = lo + rng.integers(0, size, size=(CANDIDATE_BATCH, 3))
            hit = np.isin(labels[tuple(v.T)], self.ids)
            if hit.any():
                return v[hit]
        return None

    def eligible(self, use_band: bool) -> np.ndarray:
        flat = self.analysis.indices(self.ids)
        coords = np.unravel_index(flat, self.analysis.shape)
        keep = self.analysis.image.array[coords] <= self.threshold
        for c, lo, hi in zip(coords, self.lo, self.hi):
            keep &= (c >= lo) & (c <= hi)
        if use_band and self.band is not None:
            s = _s_of(self.analysis, np.stack(coords, axis=-1))
            keep &= (s >= self.band[0]) & (s <= self.band[1])
        return flat[keep]


def _s_of(analysis, v: np.ndarray) -> np.ndarray | float:
    """RAS S (mm) of voxel index(es) ``v`` (..., 3)."""
    aff = analysis.image.affine
    return np.asarray(v, dtype=float) @ aff[2, :3] + aff[2, 3]


def surface_center(region: LabelledRegion, radius: float, rng: np.random.Generator) -> np.ndarray | None:
    """A centre for an exophytic tumor: uniform over organ voxels 2 mm to ``max(0.25 r, 3 mm)``
    under the surface, at least ``HILUM_CLEARANCE_MM`` from the hilum (the fat the organ
    encloses: its closing by ``HILUM_CLOSING_MM`` minus itself), off lesions and earlier tumors,
    inside the field of view; so the tumor bulges out of the cortex and leaves most of the organ."""
    analysis = region.view.analysis
    spacing = np.asarray(analysis.spacing, dtype=float)
    box = region.bbox(int(np.ceil((HILUM_CLOSING_MM + radius) / spacing.min())) + 1)
    tissue, lesion = region.masks(box)
    organ = tissue | lesion
    depth = ndimage.distance_transform_edt(np.pad(organ, 1), sampling=spacing)[1:-1, 1:-1, 1:-1]
    closed = ~dilate_mm(~dilate_mm(organ, HILUM_CLOSING_MM, spacing), HILUM_CLOSING_MM, spacing)
    hilum = closed & ~organ
    near_hilum = dilate_mm(hilum, HILUM_CLEARANCE_MM, spacing) if hilum.any() else hilum
    ok = tissue & (depth >= 2.0) & (depth <= max(0.25 * radius, 3.0)) & ~near_hilum
    if lesion.any():
        ok &= ndimage.distance_transform_edt(~lesion, sampling=spacing) > radius
    coords = voxel_indices(ok)
    lo = np.asarray(box.lo)
    shape = np.asarray(analysis.shape)
    reach = np.floor(np.minimum(FOV_REACH * radius / spacing, 0.5 * (shape - 1)))
    keep = np.all([(c + o >= r) & (c + o <= n - 1 - r) for c, o, r, n in zip(coords, lo, reach, shape)], axis=0)
    idx = np.flatnonzero(keep)
    if idx.size == 0:
        return None
    pick = int(idx[rng.integers(idx.size)])
    return np.array([c[pick] for c in coords]) + lo


def _fits(v: np.ndarray, region: LabelledRegion, need: float, radius: float) -> bool:
    """True when no non-organ voxel lies closer than ``need`` mm and no lesion or earlier
    tumor within ``radius`` mm of voxel ``v``: the local form of the distance-transform tests."""
    analysis = region.view.analysis
    spacing, shape = analysis.spacing, analysis.shape
    if np.any((v + 1) * spacing < need) or np.any((np.asarray(shape) - v) * spacing < need):
        return False
    if not _axes_inside(v, region, need):
        return False
    box = box_around(v, max(need, radius), spacing, shape)
    tissue, lesion = region.masks(box)
    d2 = ball_d2(box.shape, v - np.asarray(box.lo), spacing)
    if np.any(~(tissue | lesion) & (d2 < need**2)):
        return False
    return not np.any(lesion & (d2 <= radius**2))


def _axes_inside(v: np.ndarray, region: LabelledRegion, need: float) -> bool:
    """False when a voxel on one of the three axis lines through ``v``, closer than ``need`` mm,
    is not organ: a few hundred voxels that reject most candidates near the surface before
    ``_fits`` reads the whole ball (its decision is the same either way)."""
    spacing, shape = region.view.analysis.spacing, region.view.analysis.shape
    for axis in range(3):
        reach = int(np.ceil(need / spacing[axis]))
        while reach >= 1 and (reach * spacing[axis]) ** 2 >= need**2:   # ``_fits``'s own test
            reach -= 1
        if reach < 1:
            continue
        lo, hi = v.copy(), v + 1
        lo[axis], hi[axis] = max(v[axis] - reach, 0), min(v[axis] + reach + 1, shape[axis])
        tissue, lesion = region.masks(Box(tuple(int(a) for a in lo), tuple(int(b) for b in hi)))
        if not np.all(tissue | lesion):
            return False
    return True


def _draw_by_rejection(region: LabelledRegion, rules: _Rules, use_band: bool, need: float,
                       radius: float, rng: np.random.Generator) -> np.ndarray | None:
    """The first of up to ``REJECTION_TRIES`` uniform organ voxels that passes the rules and
    fits (``_fits``), or None; the cheap rules are checked for a whole batch at once."""
    tried = 0
    while tried < REJECTION_TRIES:
        batch = rules.organ_voxels(rng)
        if batch is None:
            return None
        batch = batch[:REJECTION_TRIES - tried]
        tried += len(batch)
        for v in batch[rules.ok(batch, use_band)]:
            if _fits(v, region, need, radius):
                return v
    return None


def _draw_exhaustive(region: LabelledRegion, cand: np.ndarray, need: float, radius: float,
                     rng: np.random.Generator) -> np.ndarray | None:
    """The exact eligible set on the organ's box (distance transforms), then one uniform draw."""
    if cand.size == 0:
        return None
    analysis = region.view.analysis
    spacing = analysis.spacing
    box = region.bbox(int(np.ceil(radius / spacing.min())) + 1)
    tissue, lesion = region.masks(box)
    local = np.unravel_index(cand, analysis.shape)
    ok = np.zeros(box.shape, dtype=bool)
    inside = np.all([(c >= lo) & (c < hi) for c, lo, hi in zip(local, box.lo, box.hi)], axis=0)
    ok[tuple(c[inside] - lo for c, lo in zip(local, box.lo))] = True
    surface = ndimage.distance_transform_edt(np.pad(tissue | lesion, 1), sampling=spacing)[1:-1, 1:-1, 1:-1]
    if lesion.any():
        ok &= ndimage.distance_transform_edt(~lesion, sampling=spacing) > radius
    idx = np.flatnonzero(ok & (surface >= need))
    if idx.size == 0:
        return None
    pick = np.array(np.unravel_index(int(idx[rng.integers(idx.size)]), box.shape))
    return pick + np.asarray(box.lo)


def _liver_band(region: LabelledRegion, options: dict) -> tuple[float, float] | None:
    """For the liver: the RAS S interval (mm) of the central band ``options["liver_cc_range"]``
    (default 0.3-0.7) of its cranio-caudal extent; None for other organs."""
    if region.organ != "liver":
        return None
    lo_f, hi_f = options.get("liver_cc_range", LIVER_CC_RANGE)
    if not 0.0 <= float(lo_f) < float(hi_f) <= 1.0:
        raise InputError(f"liver_cc_range must be two fractions 0 <= lo < hi <= 1, got {(lo_f, hi_f)}")
    box = region.view.analysis.box(region.tissue_ids)
    if box is None:
        return None
    corners = np.array([[a, b, c] for a in (box.lo[0], box.hi[0] - 1) for b in (box.lo[1], box.hi[1] - 1)
                        for c in (box.lo[2], box.hi[2] - 1)])
    s = _s_of(region.view.analysis, corners)
    s_min, ext = float(np.min(s)), float(np.ptp(s))
    return s_min + float(lo_f) * ext, s_min + float(hi_f) * ext


__all__ = ["LIVER_CC_RANGE", "SURFACE_MARGIN_MM", "sample_center"]
