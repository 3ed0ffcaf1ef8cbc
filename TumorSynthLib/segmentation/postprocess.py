"""Connected components of tumor masks: size filter, organ constraint, equivalent diameters.

Components are 26-connected (a tumor touching another only at a corner is one tumor), as in
the evaluation protocol. Sizes are in mm on anisotropic grids: the equivalent radius of a
component of volume V is ``(3V / (4 pi))^(1/3)``.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import ndimage

#: Components with a smaller equivalent radius (mm) are removed from predictions.
MIN_RADIUS_MM = 3.0
_STRUCTURE_26 = np.ones((3, 3, 3), dtype=bool)


def components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """(int32 component map 1..n, n) with 26-connectivity."""
    labels, n = ndimage.label(np.asarray(mask, dtype=bool), structure=_STRUCTURE_26)
    return labels.astype(np.int32, copy=False), int(n)


def voxel_volume_mm3(spacing: Sequence[float]) -> float:
    return float(np.prod(np.asarray(spacing, dtype=float)))


def equivalent_diameter_mm(n_voxels: int | np.ndarray, spacing: Sequence[float]) -> np.ndarray | float:
    """Diameter (mm) of the sphere with the volume of ``n_voxels`` voxels."""
    volume = np.asarray(n_voxels, dtype=float) * voxel_volume_mm3(spacing)
    return (6.0 * volume / np.pi) ** (1.0 / 3.0)


def component_sizes(labels: np.ndarray, n: int) -> np.ndarray:
    """Voxel count of components 1..n (index 0 unused)."""
    return np.bincount(labels.ravel(), minlength=n + 1)


def remove_small_components(mask: np.ndarray, spacing: Sequence[float],
                            min_radius_mm: float = MIN_RADIUS_MM) -> tuple[np.ndarray, int]:
    """(mask without components whose equivalent radius is below ``min_radius_mm``, number
    removed). ``min_radius_mm <= 0`` keeps everything."""
    mask = np.asarray(mask, dtype=bool)
    if min_radius_mm <= 0 or not mask.any():
        return mask.copy(), 0
    labels, n = components(mask)
    sizes = component_sizes(labels, n)
    min_voxels = (4.0 / 3.0) * np.pi * min_radius_mm**3 / voxel_volume_mm3(spacing)
    keep = sizes >= min_voxels
    keep[0] = False
    return keep[labels], int(np.count_nonzero(~keep[1:]))


def keep_touching(mask: np.ndarray, region: np.ndarray) -> tuple[np.ndarray, int]:
    """(components of ``mask`` that overlap or touch ``region`` (26-neighbourhood), number
    dropped). Used to keep predicted tumors inside the organ: a tumor whose voxels are all
    away from the organ is a false positive elsewhere in the body."""
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        return mask.copy(), 0
    labels, n = components(mask)
    near = ndimage.binary_dilation(np.asarray(region, dtype=bool), structure=_STRUCTURE_26)
    touching = np.unique(labels[near & mask])
    keep = np.zeros(n + 1, dtype=bool)
    keep[touching] = True
    keep[0] = False
    return keep[labels], int(n - np.count_nonzero(keep))


__all__ = ["MIN_RADIUS_MM", "components", "component_sizes", "equivalent_diameter_mm",
           "remove_small_components", "keep_touching", "voxel_volume_mm3"]
