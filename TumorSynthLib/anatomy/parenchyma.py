"""Robust HU statistics of an organ's parenchyma (common.md "Intensity relative to this scan").

The tumor's darkening is relative to the parenchyma measured in *this* scan: median and robust
spread (scaled MAD) of the organ voxels near the site that lie in [floor, median + 3 MAD] (floor
-30 HU; 0 HU for the often fatty pancreas, whose non-fat parenchyma is what a tumor darkens),
which drops fat, partial volume and enhanced vessels.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..core.errors import InputError
from ..core.stats import fast_median

#: MAD values are scaled by this so they estimate a Gaussian standard deviation.
MAD_TO_SIGMA = 1.4826
#: Floor (HU) of the scaled MAD, so that a noise-free organ still gets a usable window.
MAD_FLOOR_HU = 1.0
#: Lower bound (HU) of the parenchyma window: drops fat and partial volume with fat.
PARENCHYMA_LOW_HU = -30.0
#: Fewest parenchyma voxels ``parenchyma_stats`` accepts.
MIN_PARENCHYMA_VOXELS = 10
#: Robust statistics are taken over at most this many values (a fixed pseudo-random sample of
#: larger sets: the median's error is then under 1 % of the spread, and medians of 10^5-10^6
#: values would cost most of a small tumor's time).
MAX_STAT_VALUES = 1 << 15


@dataclass(frozen=True)
class ParenchymaStats:
    """Robust HU statistics of the organ parenchyma around a site. ``mad_hu`` is the median
    absolute deviation scaled by 1.4826 (a standard-deviation estimate), floored at 1 HU;
    ``vessel_threshold_hu = median_hu + 3 * mad_hu``; ``n_voxels`` were used."""

    median_hu: float
    mad_hu: float
    vessel_threshold_hu: float
    n_voxels: int


def fixed_sample(values: np.ndarray, max_values: int = MAX_STAT_VALUES) -> np.ndarray:
    """``values`` (1D) or, when longer than ``max_values``, a sample of that many drawn from a
    seed fixed by their count (deterministic; not a stride, since a scan's noise can differ
    between even and odd voxels, e.g. after interpolation)."""
    if values.size <= max_values:
        return values
    return values[np.random.default_rng(values.size).integers(0, values.size, max_values)]


def robust_median_mad(values: np.ndarray) -> tuple[float, float]:
    """(median, scaled MAD floored at ``MAD_FLOOR_HU``) of a 1D array of HU."""
    med = fast_median(values)
    mad = fast_median(np.abs(values - med)) * MAD_TO_SIGMA
    return med, max(mad, MAD_FLOOR_HU)


def parenchyma_values(values: np.ndarray, floor_hu: float = PARENCHYMA_LOW_HU) -> np.ndarray:
    """Organ HU values restricted to the parenchyma window [``floor_hu``, median + 3 MAD], where
    median and MAD are first taken over the values above the floor."""
    above = values[values >= floor_hu]
    med, mad = robust_median_mad(above if above.size else values)
    keep = (values >= floor_hu) & (values <= med + 3.0 * mad)
    return values[keep]


def parenchyma_stats(
    image: np.ndarray, organ_mask: np.ndarray, center_vox: Sequence[float],
    spacing: Sequence[float], radius_mm: float = 30.0, floor_hu: float = PARENCHYMA_LOW_HU,
) -> ParenchymaStats:
    """Median / MAD of the organ voxels within ``radius_mm`` (mm, anisotropic spacing) of
    ``center_vox`` that lie in [``floor_hu``, median + 3 MAD] (first pass: all organ voxels in the
    ball; second pass: the window). Drops fat, partial volume and enhanced vessels.
    Only the box around the ball is read. InputError if fewer than 10 voxels remain."""
    spacing = np.asarray(spacing, dtype=float)
    c = np.asarray(center_vox, dtype=float)
    half = np.ceil(radius_mm / spacing)
    lo = np.maximum(np.floor(c - half).astype(int), 0)
    hi = np.minimum(np.ceil(c + half).astype(int) + 1, np.asarray(image.shape))
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    grids = np.ogrid[box]
    d2 = sum(((g - ci) * s) ** 2 for g, ci, s in zip(grids, c, spacing))
    sel = np.asarray(organ_mask[box], dtype=bool) & (d2 <= radius_mm**2)
    values = fixed_sample(np.asarray(image[box])[sel]).astype(np.float64)
    kept = parenchyma_values(values, floor_hu) if values.size else values
    if kept.size < MIN_PARENCHYMA_VOXELS:
        raise InputError(
            f"only {kept.size} organ parenchyma voxels (HU in [{floor_hu:g}, median + 3 MAD]) lie within "
            f"{radius_mm:g} mm of the site; the organ mask is too small here or the image is not "
            "CT in HU: check the organ labels and the image"
        )
    med, mad = robust_median_mad(kept)
    return ParenchymaStats(
        median_hu=med, mad_hu=mad, vessel_threshold_hu=med + 3.0 * mad, n_voxels=int(kept.size)
    )


__all__ = ["MAD_TO_SIGMA", "ParenchymaStats", "fixed_sample", "parenchyma_stats", "parenchyma_values", "robust_median_mad"]
