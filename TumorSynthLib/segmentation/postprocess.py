"""Connected components of tumor masks: size filter, organ constraint, equivalent diameters.

Components are 26-connected (a tumor touching another only at a corner is one tumor), as in
the evaluation protocol. Sizes are in mm on anisotropic grids: the equivalent radius of a
component of volume V is ``(3V / (4 pi))^(1/3)``.
"""
from __future__ import annotations

import functools
import math
import warnings
from typing import Sequence

import numpy as np
from scipy import ndimage

from ..core.errors import DependencyError

#: Components with a smaller equivalent radius (mm) are removed from predictions.
MIN_RADIUS_MM = 3.0
#: A model's predictions also lose components narrower than this many of its own voxels (an
#: equivalent diameter of 3 voxels): below that the model does not resolve a tumor, and such
#: specks were most of the default model's false positives.
MIN_DIAMETER_MODEL_VOXELS = 3.0


def model_min_radius_mm(model_spacing_mm: Sequence[float]) -> float:
    """The smallest tumor radius (mm) kept from a model working at ``model_spacing_mm``:
    ``MIN_RADIUS_MM`` or half of ``MIN_DIAMETER_MODEL_VOXELS`` of its coarsest voxel side."""
    return max(MIN_RADIUS_MM, 0.5 * MIN_DIAMETER_MODEL_VOXELS * float(max(model_spacing_mm)))
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
    removed). ``min_radius_mm <= 0`` keeps everything.

    MONAI ``RemoveSmallObjects`` (26-connectivity, ``connectivity=3``) does the work. A component
    is kept when its volume reaches ``V_min = 4/3 pi min_radius_mm^3`` mm^3, i.e. when it has at
    least ``n = ceil(V_min / voxel volume)`` voxels. MONAI hands its ``min_size`` to scikit-image,
    which removes components *smaller than* it before 0.26 and *up to and including* it from 0.26
    (scikit-image issue 8001), so the threshold passed is ``n`` or ``n - 1`` as the installed
    version reads it (``_removes_equal_size``): the result is the same with either."""
    mask = np.asarray(mask, dtype=bool)
    if min_radius_mm <= 0 or not mask.any():
        return mask.copy(), 0
    min_voxels = int(math.ceil((4.0 / 3.0) * np.pi * min_radius_mm**3 / voxel_volume_mm3(spacing)))
    threshold = min_voxels - 1 if _removes_equal_size() else min_voxels
    kept = _remove_small_objects(mask, threshold) if threshold > 0 else mask.copy()
    _, removed = components(mask & ~kept)   # removed components are whole, so they stay apart
    return kept, removed


def _remove_small_objects(mask: np.ndarray, min_size: int) -> np.ndarray:
    from monai.transforms import RemoveSmallObjects

    with warnings.catch_warnings():   # scikit-image >= 0.26 renames the argument MONAI passes
        warnings.simplefilter("ignore", FutureWarning)
        try:
            out = RemoveSmallObjects(min_size=min_size, connectivity=3)(mask[None])
        except RuntimeError as exc:
            if "kimage" not in str(exc):
                raise
            raise DependencyError("removing small tumors needs scikit-image: pip install scikit-image") from exc
    return np.asarray(out[0], dtype=bool)


@functools.lru_cache(maxsize=1)
def _removes_equal_size() -> bool:
    """Whether ``RemoveSmallObjects(min_size=n)`` also removes components of exactly n voxels
    (scikit-image >= 0.26) or only smaller ones (before)."""
    probe = np.zeros((5, 1, 1), dtype=bool)
    probe[0] = probe[2:4] = True                        # components of 1 and 2 voxels
    return not _remove_small_objects(probe, 2)[2:4].any()


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
