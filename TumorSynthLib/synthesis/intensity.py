"""Tumor intensity relative to *this* scan (common.md "Intensity relative to this scan").

Shared by the appearance providers:

* ``darkening_delta``: ``delta = f * max(median - 10, 25)`` HU with ``f`` from the organ's
  range; the tumor's mean never falls below 10 HU (water-like necrosis is the floor);
* ``solid_change``: the tumor starts as solid parenchyma wherever it lies (fat inside a fatty
  pancreas, the renal sinus, tissue past the organ contour of an exophytic tumor are replaced,
  not darkened), keeping the scan's grain where it is noise and re-synthesising it
  (``ct_grain``, at the organ's measured amplitude) where it is structure;
* ``change_towards``: absolute HU made by a model turned into a smooth change (its low
  frequencies minus the scene's), so the scene's grain stays in the tumor.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage

from ..anatomy.organs import intensity_profile
from ..anatomy.parenchyma import MAD_TO_SIGMA
from ..anatomy.site import Site
from ..core.volume import Box
from .contracts import LOW_PASS_TRUNCATE, Scene

#: Tumors are never darker than this on average (HU).
TUMOR_FLOOR_HU = 10.0
DELTA_OFFSET_HU = 10.0
DELTA_MIN_BASE_HU = 25.0
#: Low frequencies farther than max(3 MAD, 40 HU) from the parenchyma median are structure
#: (fat, contour, calcification), not parenchyma: the tumor re-synthesises its grain there.
STRUCTURE_GAP_MAD, STRUCTURE_GAP_HU = 3.0, 40.0
#: CT noise correlation (Gaussian sigma, voxels) of re-synthesised grain.
GRAIN_CORRELATION_VOXELS = 0.6
GRAIN_MIN_VOXELS = 30
#: Grain (HU) assumed when the scan shows too little parenchyma to measure it.
FALLBACK_GRAIN_HU = 10.0


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


def solid_change(site: Site, scene: Scene, box: Box, mask: np.ndarray, rng: np.random.Generator,
                 draws: dict[str, Any]) -> np.ndarray:
    """Change (float32, ``box`` shape) that makes every tumor voxel of ``mask`` (in ``box``)
    solid parenchyma at the organ's median with the organ's grain; zero elsewhere.

    A tumor replaces what was there (fat lobules of a fatty pancreas, the renal sinus,
    calcifications, partial volume at the contour, tissue past the contour of an exophytic
    tumor) consistently, instead of darkening each of them by the same amount:

    * where the scan was parenchyma-like (low frequencies within ``STRUCTURE_GAP_HU`` or 3 MAD
      of the median), only the low frequencies (1-voxel Gaussian) are replaced: the scan's own
      grain stays, less its mean over those voxels (in a thin organ the blur mixes in the fat
      around it and the organ's voxels sit above their low frequencies: kept, that bias would
      brighten the tumor);
    * elsewhere (and one voxel around, where the high-pass still holds the edge) the grain is
      structure, not noise (a kidney contour, fat septa): those voxels take the median plus
      noise of the organ's measured grain (``ct_grain``), so no ghost of the old anatomy shows.

    Labelled vessels crossing the tumor are handled by the shading (compressed, not erased)."""
    out = np.zeros(mask.shape, dtype=np.float32)
    if not mask.any():
        return out
    image, low = scene.image[box.slices], scene.low_frequencies(box)
    median, gap = float(site.organ_median_hu), structure_gap_hu(site)
    structured = ndimage.binary_dilation(np.abs(low - median) > gap) & mask
    clean = mask & ~structured
    hp = image - low
    bias = float(np.mean(hp[clean])) if clean.any() else 0.0
    out[clean] = np.float32(median - bias) - low[clean]
    if structured.any():
        amplitude = organ_grain_hu(site, scene, box, mask)
        noise = ct_grain(mask.shape, amplitude, rng)
        out[structured] = np.float32(median) + noise[structured] - image[structured]
        draws.update(grain_resynthesised_voxels=int(structured.sum()), grain_resynthesised_hu=amplitude)
    return out


def structure_gap_hu(site: Site) -> float:
    """How far (HU) low frequencies may lie from the parenchyma median and still be parenchyma."""
    return max(STRUCTURE_GAP_MAD * float(site.organ_mad_hu), STRUCTURE_GAP_HU)


def organ_grain_hu(site: Site, scene: Scene, box: Box, mask: np.ndarray) -> float:
    """The organ's grain (HU) around a tumor: the robust SD of the image minus its 1-voxel blur
    over the organ's voxels of ``box`` off the tumor (``mask`` and 2 voxels around), its own
    texture included (the kidney's cortex and medulla: a tumor is at least that heterogeneous);
    with too few of those, over the organ's voxels of the box, then ``FALLBACK_GRAIN_HU``."""
    hp = scene.image[box.slices] - scene.low_frequencies(box)
    organ = scene.organ[box.slices]
    for where in (organ & ~ndimage.binary_dilation(mask, iterations=2), organ):
        if np.count_nonzero(where) >= GRAIN_MIN_VOXELS:
            return robust_sd(hp[where])
    return FALLBACK_GRAIN_HU


def ct_grain(shape: tuple[int, ...], amplitude_hu: float, rng: np.random.Generator) -> np.ndarray:
    """CT-like noise (white noise blurred by ``GRAIN_CORRELATION_VOXELS``) scaled so that its
    grain (robust SD of it minus its 1-voxel blur) is ``amplitude_hu`` (float32)."""
    noise = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), GRAIN_CORRELATION_VOXELS)
    scale = amplitude_hu / max(robust_sd(noise - ndimage.gaussian_filter(noise, 1.0)), 1e-6)
    return (np.float32(scale) * noise).astype(np.float32)


def robust_sd(values: np.ndarray) -> float:
    """1.4826 x the median absolute deviation (NaN for fewer than 5 values)."""
    values = np.asarray(values, dtype=np.float64).ravel()
    if values.size < 5:
        return float("nan")
    return float(np.median(np.abs(values - np.median(values))) * MAD_TO_SIGMA)


def change_towards(target_hu: np.ndarray, scene: Scene, box: Box, spacing: np.ndarray | None = None) -> np.ndarray:
    """Smooth change (float32, ``box`` shape) that moves the scene's low frequencies to those of
    ``target_hu`` (absolute HU in ``box``, e.g. a model's sample): the grain stays the scene's."""
    target_low = ndimage.gaussian_filter(np.asarray(target_hu, dtype=np.float32), 1.0, mode="nearest",
                                         truncate=LOW_PASS_TRUNCATE)
    return (target_low - scene.low_frequencies(box)).astype(np.float32)


__all__ = ["TUMOR_FLOOR_HU", "change_towards", "ct_grain", "darkening_delta", "organ_grain_hu", "robust_sd",
           "solid_change", "structure_gap_hu"]
