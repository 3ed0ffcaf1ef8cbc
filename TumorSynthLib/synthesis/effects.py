"""Effects shared by the synthesis methods, on ROI arrays (common.md "Edge, blending, effects").

* ``soft_weight``: the tumor mask blurred in mm -> the weight of the soft edge;
* ``darkening_delta`` / ``blend_darkening``: intensity relative to this scan's parenchyma;
* ``apply_mass_effect`` (``MassEffectWarp``): radial push of the tissue around the tumor;
* ``add_capsule``, ``necrosis_mask`` / ``apply_necrosis``, ``satellite_centres``,
  ``damp_vessels``.

All sizes are in mm and converted per axis with the voxel ``spacing``; every function returns
new arrays and leaves its inputs untouched.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from scipy import ndimage

from ..anatomy.organs import intensity_profile
from ..core.volume import Box
from ..anatomy.site import Site
from .texture import TRUNCATE, gaussian_mm, sigma_voxels

#: Tumors are never darker than this on average (HU): water-like necrosis is the floor.
TUMOR_FLOOR_HU = 10.0
#: ``delta = f * max(median - DELTA_OFFSET_HU, DELTA_MIN_BASE_HU)`` (common.md).
DELTA_OFFSET_HU = 10.0
DELTA_MIN_BASE_HU = 25.0


def fill_with_parenchyma(image: np.ndarray, where: np.ndarray, site: Site,
                         rng: np.random.Generator) -> np.ndarray:
    """Voxels ``where`` (tumor past the organ contour, or on fat inside it) start from
    parenchyma-like HU (organ median + MAD-scaled noise): the tumor replaces that tissue."""
    if not where.any():
        return image
    out = np.array(image, dtype=np.float32)
    noise = rng.standard_normal(int(where.sum())).astype(np.float32)
    out[where] = np.float32(site.organ_median_hu) + np.float32(site.organ_mad_hu) * noise
    return out


def mask_box(mask: np.ndarray, margin_vox: Sequence[int] | int = 0) -> Box | None:
    """Bounding box of the true voxels (plus a margin, clipped), None when empty. Uses axis
    projections: much cheaper than ``np.nonzero`` on a large ROI."""
    lo, hi = [], []
    margin = np.broadcast_to(np.asarray(margin_vox, dtype=int), (3,))
    for axis in range(3):
        hit = np.flatnonzero(np.any(mask, axis=tuple(a for a in range(3) if a != axis)))
        if hit.size == 0:
            return None
        lo.append(max(int(hit[0]) - int(margin[axis]), 0))
        hi.append(min(int(hit[-1]) + 1 + int(margin[axis]), mask.shape[axis]))
    return Box(tuple(lo), tuple(hi))  # type: ignore[arg-type]


def _margin_box(mask: np.ndarray, margin_mm: float, spacing: Sequence[float]) -> Box | None:
    return mask_box(mask, np.ceil(margin_mm / np.asarray(spacing, dtype=float)).astype(int))


def soft_weight(mask: np.ndarray, spacing: Sequence[float], sigma_mm: float) -> np.ndarray:
    """The mask blurred by a Gaussian of ``sigma_mm`` (float32 in [0, 1], ROI shape). Only the
    mask's bounding box plus the kernel reach is filtered."""
    out = np.zeros(mask.shape, dtype=np.float32)
    box = _margin_box(mask, TRUNCATE * sigma_mm + 1e-6, spacing)
    if box is not None:
        out[box.slices] = gaussian_mm(mask[box.slices], sigma_mm, spacing)
    return out


def darkening_delta(site: Site, rng: np.random.Generator) -> tuple[float, float]:
    """(delta HU, drawn f): ``delta = f * max(median - 10, 25)`` with ``f`` from the organ's
    range; negative (a brighter tumor) for ``options["enhancement"] == "hyper"``. A hypo tumor
    whose mean would fall below 10 HU is lifted to 10 HU (a warning goes into the site)."""
    lo, hi = intensity_profile(site.organ).f_range
    f = float(rng.uniform(lo, hi))
    median = float(site.organ_median_hu)
    delta = f * max(median - DELTA_OFFSET_HU, DELTA_MIN_BASE_HU)
    if str(site.spec.options.get("enhancement", "hypo")).lower() == "hyper":
        return -delta, f
    if median - delta < TUMOR_FLOOR_HU:
        floored = median - TUMOR_FLOOR_HU
        site.warnings.append(
            f"organ parenchyma median {median:.1f} HU leaves no room for a {delta:.1f} HU drop "
            f"above the {TUMOR_FLOOR_HU:g} HU tumor floor; drop set to {floored:.1f} HU"
        )
        delta = floored
    return delta, f


def blend_darkening(
    image_roi: np.ndarray, weight: np.ndarray, delta_map: np.ndarray, allowed: np.ndarray,
) -> np.ndarray:
    """``x - w * delta_map`` where ``allowed`` (organ and tumor), ``x`` elsewhere (float32)."""
    out = np.array(image_roi, dtype=np.float32)
    sel = allowed & (weight > 0)
    out[sel] -= weight[sel] * delta_map[sel]
    return out


def measured_drop_hu(before: np.ndarray, after: np.ndarray, weight: np.ndarray,
                     exclude: np.ndarray | None = None, threshold: float = 0.9) -> float | None:
    """Mean ``before - after`` (HU) over voxels whose soft tumor weight is >= ``threshold``."""
    sel = weight >= threshold
    if exclude is not None:
        sel &= ~exclude
    if not sel.any():
        return None
    return float(np.mean(before[sel].astype(np.float64) - after[sel]))


# -- mass effect --------------------------------------------------------------------------------
class MassEffectWarp:
    """Radial displacement away from ``center_vox``: ``strength * r`` at the tumor radius ``r``,
    fading linearly to 0 at ``2 r`` (inside the tumor the content is magnified uniformly), so
    the map stays monotonic. ``apply`` resamples an array of the ROI (order 1 for images,
    0 for labels and masks); only voxels within 2 r are touched."""

    def __init__(self, shape: Sequence[int], center_vox: Sequence[float], radius_mm: float,
                 spacing: Sequence[float], strength: float = 0.3) -> None:
        spacing = np.asarray(spacing, dtype=float)
        c = np.asarray(center_vox, dtype=float)
        half = np.ceil(2.0 * radius_mm / spacing)
        lo = np.maximum(np.floor(c - half).astype(int), 0)
        hi = np.minimum(np.ceil(c + half).astype(int) + 1, np.asarray(shape))
        self.box = Box(tuple(int(v) for v in lo), tuple(int(v) for v in hi))
        offsets = [np.arange(a, b, dtype=np.float32) - np.float32(ci) for a, b, ci in zip(lo, hi, c)]
        d2 = ((offsets[0] * np.float32(spacing[0])) ** 2)[:, None, None] \
            + ((offsets[1] * np.float32(spacing[1])) ** 2)[None, :, None] \
            + ((offsets[2] * np.float32(spacing[2])) ** 2)[None, None, :]
        rho = np.sqrt(d2) / np.float32(radius_mm)
        self.where = (rho > 0) & (rho < 2.0)
        idx = np.nonzero(self.where)
        r = rho[idx]
        push = np.where(r <= 1.0, strength * r, strength * (2.0 - r))
        factor = (1.0 - push / r).astype(np.float32)    # source = centre + factor * offset
        self.coords = np.stack([np.float32(ci - a) + off[i] * factor
                                for off, i, ci, a in zip(offsets, idx, c, lo)])
        self._nearest: np.ndarray | None = None

    def apply(self, array: np.ndarray, order: int) -> np.ndarray:
        out = np.array(array, copy=True)
        src = array[self.box.slices]
        if order == 0:
            if self._nearest is None:
                hi = np.asarray(src.shape)[:, None] - 1
                idx = np.clip(np.rint(self.coords).astype(np.intp), 0, hi)
                self._nearest = np.ravel_multi_index(tuple(idx), src.shape)
            vals = src.reshape(-1)[self._nearest] if src.flags.c_contiguous else src.ravel()[self._nearest]
        else:
            vals = ndimage.map_coordinates(src.astype(np.float32), self.coords, order=1, mode="nearest")
        out[self.box.slices][self.where] = vals.astype(out.dtype, copy=False)
        return out


def apply_mass_effect(
    image_roi: np.ndarray, labels_roi: np.ndarray, center_vox: Sequence[float], radius_mm: float,
    spacing: Sequence[float], strength: float = 0.3,
) -> tuple[np.ndarray, np.ndarray]:
    """Image (linear) and labels (nearest) pushed radially away from the tumor centre."""
    warp = MassEffectWarp(image_roi.shape, center_vox, radius_mm, spacing, strength)
    return warp.apply(image_roi, 1), warp.apply(labels_roi, 0)


# -- capsule, necrosis, satellites, vessels ----------------------------------------------------
def ellipsoid_structure(radius_mm: float, spacing: Sequence[float]) -> np.ndarray:
    """Boolean structuring element: the voxels within ``radius_mm`` (at least the 6-neighbours)."""
    half = np.maximum(np.floor(radius_mm / np.asarray(spacing, dtype=float)), 0).astype(int)
    half = np.maximum(half, (half.max() == 0).astype(int))
    g = np.ogrid[tuple(slice(-h, h + 1) for h in half)]
    d2 = sum((gi * s) ** 2 for gi, s in zip(g, spacing))
    return d2 <= max(radius_mm, float(np.min(spacing))) ** 2 + 1e-6


def tumor_rim(tumor_mask: np.ndarray, spacing: Sequence[float], thickness_mm: float) -> np.ndarray:
    """The outer ``thickness_mm`` of the tumor (boolean)."""
    box = mask_box(tumor_mask, 1)
    rim = np.zeros_like(tumor_mask, dtype=bool)
    if box is None:
        return rim
    sub = tumor_mask[box.slices]
    inner = ndimage.binary_erosion(sub, ellipsoid_structure(thickness_mm, spacing))
    rim[box.slices] = sub & ~inner
    return rim


def add_capsule(image_roi: np.ndarray, tumor_mask: np.ndarray, spacing: Sequence[float],
                thickness_mm: float, lift_hu: float) -> np.ndarray:
    """A rim of ``thickness_mm`` inside the tumor raised by ``lift_hu`` (slightly brighter than
    the tumor: a pseudo-capsule), softened by a 0.5 mm blur and kept inside the tumor."""
    rim = soft_weight(tumor_rim(tumor_mask, spacing, thickness_mm), spacing, 0.5)
    out = np.array(image_roi, dtype=np.float32)
    out[tumor_mask] += np.float32(lift_hu) * rim[tumor_mask]
    return out


def necrosis_mask(
    tumor_mask: np.ndarray, center_vox: Sequence[float], spacing: Sequence[float],
    rng: np.random.Generator, fraction_range: tuple[float, float] = (0.2, 0.5),
    draws: dict[str, Any] | None = None,
) -> np.ndarray:
    """An irregular central part of the tumor holding a fraction U(``fraction_range``) of its
    voxels: the voxels with the lowest "distance from the centre + smooth noise" score."""
    fraction = float(rng.uniform(*fraction_range))
    out = np.zeros_like(tumor_mask, dtype=bool)
    box = mask_box(tumor_mask)
    if draws is not None:
        draws["necrosis_fraction"] = fraction
    if box is None:
        return out
    sub = tumor_mask[box.slices]
    spacing = np.asarray(spacing, dtype=float)
    g = np.ogrid[box.slices]
    dist = np.sqrt(sum(((gi - ci) * s) ** 2 for gi, ci, s in zip(g, center_vox, spacing)))
    r_eq = (3.0 * sub.sum() * np.prod(spacing) / (4.0 * np.pi)) ** (1.0 / 3.0)
    noise = gaussian_mm(rng.standard_normal(sub.shape).astype(np.float32), 0.3 * r_eq, spacing)
    noise /= max(float(noise[sub].std()), 1e-6)
    score = dist / r_eq + 0.25 * noise
    cut = np.quantile(score[sub], fraction)
    out[box.slices] = sub & (score <= cut)
    return out


def apply_necrosis(image_roi: np.ndarray, necrosis: np.ndarray, tumor_mask: np.ndarray,
                   spacing: Sequence[float], level_hu: float, noise_hu: np.ndarray) -> np.ndarray:
    """Tumor voxels pulled towards ``level_hu`` (+ ``noise_hu``) with a 1 mm soft edge, never
    brightened (necrosis is never brighter than the tumor)."""
    w = soft_weight(necrosis, spacing, 1.0)
    out = np.array(image_roi, dtype=np.float32)
    sel = tumor_mask & (w > 0)
    target = np.float32(level_hu) + noise_hu[sel]
    out[sel] = np.minimum(out[sel], out[sel] + w[sel] * (target - out[sel]))
    return out


def satellite_centres(
    center_vox: Sequence[float], radius_mm: float, spacing: Sequence[float], allowed: np.ndarray,
    rng: np.random.Generator, count: int, diameter_range_mm: tuple[float, float] = (3.0, 8.0),
    max_tries: int = 20,
) -> list[tuple[np.ndarray, float]]:
    """Up to ``count`` (centre voxel, diameter mm) of small nodules at 1.1-1.5 tumor radii from
    the centre, each inside ``allowed`` (tries ``max_tries`` directions per nodule)."""
    spacing = np.asarray(spacing, dtype=float)
    c = np.asarray(center_vox, dtype=float)
    found = []
    for _ in range(int(count)):
        diameter = float(rng.uniform(*diameter_range_mm))
        for _ in range(max_tries):
            direction = rng.standard_normal(3)
            direction /= max(np.linalg.norm(direction), 1e-12)
            p = c + direction * rng.uniform(1.1, 1.5) * radius_mm / spacing
            v = np.rint(p).astype(int)
            if np.all(v >= 0) and np.all(v < allowed.shape) and allowed[tuple(v)]:
                found.append((p, diameter))
                break
    return found


def damp_vessels(image_roi: np.ndarray, vessels: np.ndarray, target_hu: float,
                 factor: float = 0.5) -> np.ndarray:
    """Vessel voxels (``vessels``: those inside the tumor) moved ``factor`` of the way towards
    the tumor's attenuation: vessels crossing a tumor are compressed, not bright."""
    out = np.array(image_roi, dtype=np.float32)
    out[vessels] += np.float32(factor) * (np.float32(target_hu) - out[vessels])
    return out


__all__ = [
    "MassEffectWarp",
    "TUMOR_FLOOR_HU",
    "add_capsule",
    "apply_mass_effect",
    "apply_necrosis",
    "blend_darkening",
    "damp_vessels",
    "darkening_delta",
    "ellipsoid_structure",
    "mask_box",
    "measured_drop_hu",
    "necrosis_mask",
    "satellite_centres",
    "soft_weight",
    "sigma_voxels",
    "tumor_rim",
]
