"""Sampled placement (no click): a tumor centre drawn uniformly over the organ voxels that are
at least min(r, 5 mm) inside the surface, not brighter than the vessel threshold, more than r
from earlier tumors and, for the liver, in the central 30-70 % of its cranio-caudal (RAS S)
extent (common.md "Placement"). Used by ``placement.prepare_site``.

Rejection sampling with local checks keeps this fast (no whole-organ distance transform); after
``REJECTION_TRIES`` misses the exact eligible set is computed once with distance transforms, so
the draw stays uniform over the same set either way.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..core.errors import InputError, PlacementError
from .region import LabelledRegion, ball_d2
from .organs import parenchyma_values, robust_median_mad
from .site import TumorSpec
from ..core.volume import Volume, box_around

#: Sampled centres keep at least min(r, this) mm from the organ surface.
SURFACE_MARGIN_MM = 5.0
#: Default cranio-caudal band (fractions of the liver's S extent) for sampled liver tumors.
LIVER_CC_RANGE = (0.3, 0.7)
#: Random draws tried before the exact eligible set is computed.
REJECTION_TRIES = 200


def sample_location(
    candidates: np.ndarray, surface_mm: np.ndarray, min_surface_mm: float,
    rng: np.random.Generator,
) -> np.ndarray | None:
    """A voxel index drawn uniformly among ``candidates`` (bool) whose distance to the organ
    surface (``surface_mm``, same shape) is at least ``min_surface_mm``; None if there is none."""
    idx = np.flatnonzero(candidates & (surface_mm >= min_surface_mm))
    if idx.size == 0:
        return None
    return np.array(np.unravel_index(int(idx[rng.integers(idx.size)]), candidates.shape))


def sample_center(
    image: Volume, region: LabelledRegion, spec: TumorSpec,
    radius: float, occ: np.ndarray | None, rng: np.random.Generator, warnings: list[str],
    draws: dict[str, object],
) -> np.ndarray:
    """Uniform over tissue voxels >= min(r, 5 mm) inside the surface, not brighter than the
    vessel threshold, > r from earlier tumors and, for the liver, in the central cranio-caudal
    band. Vessel-label voxels are never organ voxels, so they are avoided by construction.
    Rejection sampling with local checks (no whole-organ distance transform); after
    ``REJECTION_TRIES`` misses the exact set is computed once (``sample_location``)."""
    shape = image.shape
    flat = np.flatnonzero(region.tissue_full())
    coords = np.unravel_index(flat, shape)
    values = np.asarray(image.array[coords], dtype=np.float64)
    keep = values <= _global_vessel_threshold(values)
    need = min(radius, SURFACE_MARGIN_MM)
    tries = [flat[keep & band]] if (band := _liver_band(image, coords, spec, region.organ)) is not None else []
    tries.append(flat[keep])
    for n_try, cand in enumerate(tries):
        if n_try == 1 and len(tries) == 2:
            warnings.append("no room in the central cranio-caudal band of the liver; sampled the whole liver")
        pick = _draw_by_rejection(cand, shape, image.spacing, region, need, radius, occ, rng)
        if pick is None:
            pick = _draw_exhaustive(cand, image, region, need, radius, occ, rng)
        if pick is not None:
            draws["center_voxel"] = [int(v) for v in pick]
            return pick.astype(float)
    raise PlacementError(
        f"no place in the {region.organ} is {need:.1f} mm inside the surface, off vessels and "
        f"{radius:.1f} mm from earlier tumors; ask for a smaller tumor or click a point"
    )


def _fits(v: np.ndarray, shape: tuple[int, int, int], spacing: np.ndarray, region: LabelledRegion,
          need: float, radius: float, occ: np.ndarray | None) -> bool:
    """True when no non-organ voxel (nor the outside of the image) lies closer than ``need`` mm
    and no occupied voxel within ``radius`` mm of voxel ``v``: the local form of the EDT tests."""
    if np.any((v + 1) * spacing < need) or np.any((np.asarray(shape) - v) * spacing < need):
        return False
    box = box_around(v, need, spacing, shape)
    tissue, lesion = region.masks(box)
    if np.any(~(tissue | lesion) & (ball_d2(box.shape, v - np.asarray(box.lo), spacing) < need**2)):
        return False
    box = box_around(v, radius, spacing, shape)
    _, occupied = region.masks(box)
    if occ is not None:
        occupied |= occ[box.slices]
    return not np.any(occupied & (ball_d2(box.shape, v - np.asarray(box.lo), spacing) <= radius**2))


def _draw_by_rejection(cand: np.ndarray, shape: tuple[int, int, int], spacing: np.ndarray,
                       region: LabelledRegion, need: float, radius: float,
                       occ: np.ndarray | None, rng: np.random.Generator) -> np.ndarray | None:
    if cand.size == 0:
        return None
    for _ in range(REJECTION_TRIES):
        v = np.array(np.unravel_index(int(cand[rng.integers(cand.size)]), shape))
        if _fits(v, shape, spacing, region, need, radius, occ):
            return v
    return None


def _draw_exhaustive(cand: np.ndarray, image: Volume, region: LabelledRegion, need: float,
                     radius: float, occ: np.ndarray | None, rng: np.random.Generator) -> np.ndarray | None:
    """The exact eligible set on the organ's box (distance transforms), then one uniform draw."""
    if cand.size == 0:
        return None
    spacing = image.spacing
    box = region.bbox(int(np.ceil(radius / spacing.min())) + 1)
    tissue, lesion = region.masks(box)
    ok = np.zeros(image.shape, dtype=bool)
    ok.flat[cand] = True
    ok = ok[box.slices]
    surface = ndimage.distance_transform_edt(np.pad(tissue | lesion, 1), sampling=spacing)[1:-1, 1:-1, 1:-1]
    occupied = lesion | (occ[box.slices] if occ is not None else False)
    if occupied.any():
        ok &= ndimage.distance_transform_edt(~occupied, sampling=spacing) > radius
    pick = sample_location(ok, surface, need, rng)
    return None if pick is None else pick + np.asarray(box.lo)


def _global_vessel_threshold(values: np.ndarray) -> float:
    kept = parenchyma_values(values.astype(np.float64))
    med, mad = robust_median_mad(kept if kept.size else values.astype(np.float64))
    return med + 3.0 * mad


def _liver_band(image: Volume, coords: tuple[np.ndarray, ...], spec: TumorSpec,
                organ: str) -> np.ndarray | None:
    """For the liver: which of the organ voxels ``coords`` lie in the central band
    ``options["liver_cc_range"]`` (default 0.3-0.7) of its RAS S extent; None otherwise."""
    if organ != "liver":
        return None
    lo_f, hi_f = spec.options.get("liver_cc_range", LIVER_CC_RANGE) if spec.options else LIVER_CC_RANGE
    if not 0.0 <= float(lo_f) < float(hi_f) <= 1.0:
        raise InputError(f"liver_cc_range must be two fractions 0 <= lo < hi <= 1, got {(lo_f, hi_f)}")
    s = sum(image.affine[2, a] * coords[a] for a in range(3)) + image.affine[2, 3]
    if s.size == 0:
        return np.zeros(0, dtype=bool)
    s_min, ext = s.min(), s.max() - s.min()
    return (s >= s_min + float(lo_f) * ext) & (s <= s_min + float(hi_f) * ext)
