"""Tumor intensity relative to *this* scan (common.md "Intensity relative to this scan").

Shared by the appearance providers:

* ``darkening_delta``: ``delta = f * max(median - 10, 25)`` HU with ``f`` from the organ's
  range; the tumor's mean never falls below 10 HU (water-like necrosis is the floor);
* ``fill_change``: tumor voxels that were not parenchyma (fat inside a fatty pancreas, tissue
  past the organ contour of an exophytic tumor, bright inclusions such as renal sinus
  calcifications) start from the parenchyma's level;
* ``change_towards``: absolute HU made by a model turned into a smooth change (its low
  frequencies minus the scene's), so the scene's grain stays in the tumor.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..anatomy.organs import intensity_profile
from ..anatomy.site import Site
from ..core.volume import Box
from .contracts import LOW_PASS_TRUNCATE, Scene

#: Tumors are never darker than this on average (HU).
TUMOR_FLOOR_HU = 10.0
DELTA_OFFSET_HU = 10.0
DELTA_MIN_BASE_HU = 25.0
#: Tumor voxels darker than median - FILL_BELOW_MAD x MAD (and at least 25 HU below), or below
#: the organ's parenchyma floor (fat: 0 HU in the pancreas), are not parenchyma (fat, partial
#: volume with fat, gas): they start from the parenchyma's level.
FILL_BELOW_MAD = 3.0
FILL_MIN_GAP_HU = 25.0


def darkening_delta(site: Site, rng: np.random.Generator, enhancement: str = "hypo") -> tuple[float, float]:
    """(delta HU, drawn f); negative delta (a brighter tumor) for ``enhancement="hyper"``. A
    hypo tumor whose mean would fall below 10 HU gets the largest drop that keeps it at 10 HU
    (with a warning in the site)."""
    lo, hi = intensity_profile(site.organ).f_range
    f = float(rng.uniform(lo, hi))
    median = float(site.organ_median_hu)
    delta = f * max(median - DELTA_OFFSET_HU, DELTA_MIN_BASE_HU)
    if enhancement == "hyper":
        return -delta, f
    if median - delta < TUMOR_FLOOR_HU:
        floored = max(median - TUMOR_FLOOR_HU, 0.0)
        site.warnings.append(f"organ parenchyma median {median:.1f} HU leaves no room for a {delta:.1f} HU "
                             f"drop above the {TUMOR_FLOOR_HU:g} HU tumor floor; drop set to {floored:.1f} HU")
        delta = floored
    return delta, f


def fill_change(site: Site, scene: Scene, box: Box, mask: np.ndarray) -> np.ndarray:
    """Change (float32, ``box`` shape) that brings non-parenchyma voxels of ``mask`` (in
    ``box``) to the parenchyma median; zero elsewhere."""
    median, mad = float(site.organ_median_hu), float(site.organ_mad_hu)
    fat = intensity_profile(site.organ).parenchyma_floor_hu
    floor = max(fat, min(median - FILL_BELOW_MAD * mad, median - FILL_MIN_GAP_HU))
    out = np.zeros(mask.shape, dtype=np.float32)
    ceiling = site.parenchyma.vessel_threshold_hu + FILL_MIN_GAP_HU
    outside = mask & ~scene.organ[box.slices]
    inclusion = mask & (scene.image[box.slices] > ceiling) & ~scene.vessels[box.slices]
    maybe = outside | inclusion | (mask & (scene.image[box.slices] < floor + FILL_BELOW_MAD * mad))
    if not maybe.any():  # no fat, inclusion or tissue past the contour under the tumor
        return out
    low = scene.low_frequencies(box)
    replace = outside | (mask & ((low < floor) | ((low > ceiling) & ~scene.vessels[box.slices])))
    out[replace] = np.float32(median) - low[replace]
    return out


def change_towards(target_hu: np.ndarray, scene: Scene, box: Box, spacing: np.ndarray | None = None) -> np.ndarray:
    """Smooth change (float32, ``box`` shape) that moves the scene's low frequencies to those of
    ``target_hu`` (absolute HU in ``box``, e.g. a model's sample): the grain stays the scene's."""
    target_low = ndimage.gaussian_filter(np.asarray(target_hu, dtype=np.float32), 1.0, mode="nearest",
                                         truncate=LOW_PASS_TRUNCATE)
    return (target_low - scene.low_frequencies(box)).astype(np.float32)


__all__ = ["TUMOR_FLOOR_HU", "change_towards", "darkening_delta", "fill_change"]
