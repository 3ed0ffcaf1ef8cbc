"""Satellite nodules and the necrotic region, for geometries that do not grow them themselves.

* Satellites (advanced, p 0.3): 1-4 small deformed nodules of 3-8 mm at 1.1-1.5 tumor radii from
  the centre, each inside the allowed region.
* Necrosis (advanced, p 0.5): an irregular central part of the tumor holding 20-50 % of its
  voxels: those with the lowest "distance from the centre + smooth noise" score.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ...core.resample import coarse_grid, upsample
from ...core.stats import fast_quantile
from ...core.volume import bounding_box
from ..shapes import draw_radii, draw_shape, rasterise
from ..texture import gaussian_mm

SATELLITE_COUNT = (1, 4)
SATELLITE_DIAMETER_MM = (3.0, 8.0)
SATELLITE_DISTANCE = (1.1, 1.5)            # in tumor radii from the centre
SATELLITE_DEFORM = 0.1
NECROSIS_FRACTION = (0.2, 0.5)
SATELLITE_TRIES = 20


def satellite_centres(center_vox: Sequence[float], radius_mm: float, spacing: Sequence[float],
                      allowed: np.ndarray, rng: np.random.Generator,
                      count: int) -> list[tuple[np.ndarray, float]]:
    """Up to ``count`` (centre voxel, diameter mm) of nodules at 1.1-1.5 radii, inside
    ``allowed`` (``SATELLITE_TRIES`` directions per nodule)."""
    spacing = np.asarray(spacing, dtype=float)
    c = np.asarray(center_vox, dtype=float)
    found = []
    for _ in range(int(count)):
        diameter = float(rng.uniform(*SATELLITE_DIAMETER_MM))
        for _ in range(SATELLITE_TRIES):
            direction = rng.standard_normal(3)
            direction /= max(np.linalg.norm(direction), 1e-12)
            p = c + direction * rng.uniform(*SATELLITE_DISTANCE) * radius_mm / spacing
            v = np.rint(p).astype(int)
            if np.all(v >= 0) and np.all(v < allowed.shape) and allowed[tuple(v)]:
                found.append((p, diameter))
                break
    return found


def add_satellites(mask: np.ndarray, center_vox: Sequence[float], radius_mm: float,
                   spacing: Sequence[float], allowed: np.ndarray, rng: np.random.Generator,
                   draws: dict[str, Any]) -> np.ndarray:
    """``mask`` plus 1-4 satellite nodules (inside ``allowed``); their draws go to ``draws``."""
    count = int(rng.integers(SATELLITE_COUNT[0], SATELLITE_COUNT[1] + 1))
    found = satellite_centres(center_vox, radius_mm, spacing, allowed, rng, count)
    out = mask.copy()
    listed = []
    finest = float(np.min(spacing))
    for centre, d in found:
        small = draw_shape(draw_radii(d, rng), rng, SATELLITE_DEFORM, 0.5 * d / finest)
        out |= rasterise(small, mask.shape, centre, spacing) & allowed
        listed.append({"center_voxel_roi": [float(v) for v in centre], "diameter_mm": d})
    draws["satellites"] = listed
    return out


def necrosis_region(tumor: np.ndarray, center_vox: Sequence[float], spacing: Sequence[float],
                    rng: np.random.Generator, draws: dict[str, Any]) -> np.ndarray:
    """The necrotic core of ``tumor`` (see the module docstring)."""
    fraction = float(rng.uniform(*NECROSIS_FRACTION))
    draws["necrosis_fraction"] = fraction
    out = np.zeros_like(tumor, dtype=bool)
    box = bounding_box(tumor)
    if box is None:
        return out
    sub = tumor[box.slices]
    spacing = np.asarray(spacing, dtype=float)
    axes = [((np.arange(sl.start, sl.stop) - c) * s).astype(np.float32) for sl, c, s in zip(box.slices, center_vox, spacing)]
    dist = np.sqrt(axes[0][:, None, None] ** 2 + axes[1][None, :, None] ** 2 + axes[2][None, None, :] ** 2)
    r_eq = (3.0 * sub.sum() * np.prod(spacing) / (4.0 * np.pi)) ** (1.0 / 3.0)
    sigma = 0.3 * r_eq
    factor = coarse_grid(spacing, sigma / 1.5)
    coarse = gaussian_mm(rng.standard_normal(tuple(-(-n // f) for n, f in zip(sub.shape, factor))).astype(np.float32),
                         sigma, spacing * factor)
    noise = upsample(coarse, factor, sub.shape) if np.any(factor > 1) else coarse
    noise /= max(float(noise[sub].std()), 1e-6)
    score = dist * np.float32(1.0 / r_eq) + np.float32(0.25) * noise
    cut = fast_quantile(score[sub], fraction)
    out[box.slices] = sub & (score <= cut)
    return out


__all__ = ["add_satellites", "necrosis_region", "satellite_centres"]
