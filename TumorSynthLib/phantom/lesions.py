"""Calibration lesions: a plain sphere of known size and contrast in an organ.

Not a tumor model (no texture, shape or stage effects): a contrast-detail object for checking a
segmentation model or the quality filter against a known answer, e.g. "a 20 mm lesion 40 HU
below the organ must be found, a 0 HU one cannot be". Sizes in mm on the image's own grid.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import ndimage

from ..anatomy.parenchyma import parenchyma_values
from ..core.errors import InputError, PlacementError
from ..core.volume import Volume, bounding_box, voxel_coords

#: Reach (voxels) of the 1-voxel blur that decides parenchyma (scipy's default truncation).
BLUR_REACH_VOXELS = 4


def lesion_centre(organ: np.ndarray, spacing: Sequence[float], diameter_mm: float,
                  rng: np.random.Generator | None = None,
                  image: np.ndarray | None = None) -> tuple[int, int, int]:
    """A voxel of ``organ`` as deep as possible for the lesion: drawn (``rng``) among voxels at
    least ``diameter_mm / 2`` from the border, or the deepest voxel when none is.

    With ``image`` (HU, same grid) the depth is measured in the organ's parenchyma (its voxels in
    the window of ``anatomy.parenchyma.parenchyma_values``), so the lesion sits in homogeneous
    tissue: the deepest part of a kidney label is its sinus (fat and hilar vessels), where a
    darker sphere is no visible lesion."""
    organ = np.asarray(organ, dtype=bool)
    box = bounding_box(organ, BLUR_REACH_VOXELS)     # the organ, its border and the blur's reach
    if box is None:
        raise PlacementError("the organ mask is empty: no place for a lesion")
    mask = organ[box.slices]
    if image is not None:
        if np.shape(image) != organ.shape:
            raise InputError(f"the image {np.shape(image)} and the organ mask {organ.shape} are not on one grid")
        mask = mask & _parenchyma_window(np.asarray(image)[box.slices], mask)
    depth = ndimage.distance_transform_edt(mask, sampling=[float(s) for s in spacing])
    deep = voxel_coords(depth >= 0.5 * float(diameter_mm))
    if rng is None or deep.size == 0:
        local = np.unravel_index(int(np.argmax(depth)), depth.shape)
    else:
        local = deep[int(rng.integers(len(deep)))]
    return tuple(int(v) + int(o) for v, o in zip(local, box.lo))  # type: ignore[return-value]


def _parenchyma_window(image: np.ndarray, organ: np.ndarray) -> np.ndarray:
    """Voxels whose HU, blurred by one voxel (so that noise does not punch holes that would cut
    the depth map), lie in the parenchyma window of ``organ``'s values (bool, ``image``'s grid:
    the organ's box)."""
    kept = parenchyma_values(np.asarray(image[organ], dtype=np.float64))
    if kept.size == 0:
        raise PlacementError("the organ holds no parenchyma (no voxel in its HU window): no place for a lesion")
    level = ndimage.gaussian_filter(np.asarray(image, dtype=np.float32), 1.0, mode="nearest",
                                    truncate=BLUR_REACH_VOXELS)
    return (level >= kept.min()) & (level <= kept.max())


def add_sphere_lesion(image: Volume, organ: np.ndarray, centre_voxel: Sequence[int], diameter_mm: float,
                      drop_hu: float, edge_mm: float = 1.0) -> tuple[Volume, np.ndarray]:
    """(new image, lesion mask): a sphere of ``diameter_mm`` at ``centre_voxel``, clipped to
    ``organ``, whose voxels are ``drop_hu`` darker (a Gaussian edge of ``edge_mm`` sigma blends
    it into the organ; nothing outside the organ changes). ``image`` is not modified."""
    if diameter_mm <= 0:
        raise InputError(f"the lesion diameter must be > 0 mm, got {diameter_mm}")
    organ = np.asarray(organ, dtype=bool)
    if organ.shape != image.shape:
        raise InputError(f"the organ mask {organ.shape} is not on the image grid {image.shape}")
    spacing = np.asarray(image.spacing, dtype=float)
    radius = 0.5 * float(diameter_mm)
    reach = np.ceil((radius + 3.0 * edge_mm) / spacing).astype(int) + 1
    lo = np.maximum(np.asarray(centre_voxel, dtype=int) - reach, 0)
    hi = np.minimum(np.asarray(centre_voxel, dtype=int) + reach + 1, image.shape)
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    grids = np.meshgrid(*[(np.arange(a, b) - c) * s for a, b, c, s in zip(lo, hi, centre_voxel, spacing)],
                        indexing="ij")
    inside = sum(g * g for g in grids) <= radius * radius
    weight = ndimage.gaussian_filter(inside.astype(np.float32), sigma=edge_mm / spacing) if edge_mm > 0 \
        else inside.astype(np.float32)
    weight *= organ[box]
    out = np.array(image.array, dtype=np.float32, copy=True)
    out[box] -= np.float32(drop_hu) * weight
    mask = np.zeros(image.shape, dtype=bool)
    mask[box] = inside & organ[box]
    if not mask.any():
        raise PlacementError("the lesion does not overlap the organ; choose a centre inside it")
    return image.with_array(out), mask


__all__ = ["lesion_centre", "add_sphere_lesion"]
