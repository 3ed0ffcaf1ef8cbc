"""Small hand-built cases for the synthesis tests (stand alone, no phantom module needed).

``toy_case()`` -> (image, organs): TotalSegmentator ids, liver 5 (large), kidney 2, a thin
pancreas 7, fat around, venous-like HU with noise, spacing 1.5 x 1.5 x 2.5 mm.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from TumorSynthLib.core.volume import Volume

SPACING = (1.5, 1.5, 2.5)
#: Organ centres in mm from voxel (0, 0, 0) (the affine is diagonal, no offset).
LIVER_MM = (80.0, 85.0, 70.0)
KIDNEY_MM = (130.0, 120.0, 60.0)
PANCREAS_MM = (110.0, 40.0, 70.0)


def _ellipsoid(shape, center_mm, radii_mm):
    g = np.ogrid[tuple(slice(0, n) for n in shape)]
    return sum(((gi * s - c) / r) ** 2 for gi, s, c, r in zip(g, SPACING, center_mm, radii_mm)) <= 1.0


@lru_cache(maxsize=1)
def _arrays() -> tuple[np.ndarray, np.ndarray]:
    shape = (120, 110, 56)
    lab = np.zeros(shape, dtype=np.uint8)
    lab[_ellipsoid(shape, LIVER_MM, (65, 50, 50))] = 5
    lab[_ellipsoid(shape, KIDNEY_MM, (22, 20, 40))] = 2
    lab[_ellipsoid(shape, PANCREAS_MM, (50, 9, 9))] = 7
    hu = np.full(shape, -100.0)
    hu[lab == 5], hu[lab == 2], hu[lab == 7] = 110.0, 160.0, 100.0
    img = (hu + np.random.default_rng(0).normal(0, 10, shape)).astype(np.float32)
    return img, lab


def toy_case() -> tuple[Volume, Volume]:
    img, lab = _arrays()
    aff = np.diag([*SPACING, 1.0])
    return Volume(img.copy(), aff, {"case_id": "toy"}), Volume(lab.copy(), aff.copy())


def ras_of_mm(position_mm) -> tuple[float, float, float]:
    """RAS of a position given in mm from voxel 0 (the toy affine is diagonal)."""
    return tuple(float(v) for v in position_mm)
