"""Mass effect: the tissue around a growing tumor is pushed aside (common.md; realism issue).

Field: radial from the placed centre, nothing moves inside the target radius ``r`` (the tumor
takes that room), the push is ``strength * r`` (mm) at ``r`` and fades linearly to 0 at ``2 r``.
The map ``p -> p - u(p)`` is one-to-one outside ``r`` (its slope is ``1 + strength``): the
tissue that was inside the tumor's room is compressed into the ring around it.

Anatomy: only soft tissue of the organ and of a ``MARGIN_MM`` band around it moves; bone
(> ``BONE_HU``), air and everything outside the body (< ``AIR_HU``) never move, and no moving
voxel takes its value from them. So the organ's contour bulges into the surrounding fat where
the tumor is large and near the surface, but ribs and the abdominal wall stay where they are.

Resampling copies voxels: the push is evaluated on blocks of about 2 mm and rounded to whole
voxels, so each block moves rigidly (each output voxel copies one input voxel). The scan's grain
is kept exactly, nothing is smoothed, labels move with the image, and the cost is a few integer
operations per voxel of the push zone.
"""
from __future__ import annotations

import numpy as np

from ...anatomy.site import Site
from ...core.resample import dilate_mm
from ...core.volume import Box, box_around
from ..contracts import EffectPlan, Scene

#: Push at the tumor border, as a fraction of its radius (common.md default 0.3).
STRENGTH = 0.3
#: The push is evaluated on blocks of about this size (mm) that move rigidly.
BLOCK_MM = 2.0
#: Soft tissue this far outside the organ (mm) may move (its contour bulges at most this far).
MARGIN_MM = 4.0
BONE_HU = 350.0
AIR_HU = -500.0


def push_scene(site: Site, plan: EffectPlan, strength: float | None = None) -> Scene:
    """The site's ROI with the mass effect of ``plan`` applied (the site's own arrays when the
    plan has none, or when an earlier tumor lies in the push zone: its labels would move)."""
    scene = Scene(site.image_roi, site.labels_roi, site.organ_mask, site.vessel_mask)
    if not plan.mass_effect:
        return scene
    strength = STRENGTH if strength is None else float(strength)
    r = 0.5 * float(site.diameter_mm)
    box = box_around(site.center_vox, 2.0 * r, site.spacing, site.image_roi.shape)
    if site.occupied[box.slices].any():
        site.warnings.append("mass effect skipped: an earlier tumor or lesion lies within 2 radii")
        return scene
    moved = _moved_voxels(site, box, r, strength)
    if moved is None:
        return scene
    dst, src = moved
    arrays = []
    for name in ("image", "labels", "organ", "vessels"):
        whole = np.array(getattr(scene, name), copy=True)
        sub = whole[box.slices].copy()
        flat = sub.reshape(-1)
        flat[dst] = flat[src]
        whole[box.slices] = sub
        arrays.append(whole)
    return Scene(*arrays, moved_voxels=int(dst.size), displacement_mm=float(strength * r))


def _moved_voxels(site: Site, box: Box, r: float, strength: float):
    """(destination, source) flat indices within ``box`` of the voxels that change, or None.

    The push is evaluated on blocks of about ``BLOCK_MM`` and rounded to whole voxels, so each
    block moves rigidly (its grain intact) and the work per voxel is a few integer operations.
    Sources lie between a voxel and the centre, so they stay inside the box."""
    spacing = np.asarray(site.spacing, dtype=float)
    image = site.image_roi[box.slices]
    shape = image.shape
    movable = _movable(site.organ_mask[box.slices], image, spacing).reshape(-1)
    block = np.maximum(np.floor(BLOCK_MM / spacing), 1).astype(int)
    c = np.asarray(site.center_vox, dtype=float) - np.asarray(box.lo)
    centres = [(np.arange(-(-n // b)) * b + 0.5 * (b - 1) - ci) * s
               for n, b, ci, s in zip(shape, block, c, spacing)]           # mm, per axis
    grid = np.meshgrid(*centres, indexing="ij", sparse=True)
    rho = np.sqrt(grid[0] ** 2 + grid[1] ** 2 + grid[2] ** 2)
    push = np.where((rho >= r) & (rho < 2.0 * r), strength * r * (2.0 - rho / r), 0.0)
    scale = np.divide(push, rho, out=np.zeros_like(rho), where=rho > 0)
    strides = (shape[1] * shape[2], shape[2], 1)
    shift = sum(np.rint(g * scale / s).astype(np.int64) * st for g, s, st in zip(grid, spacing, strides))
    flat_shift = _expand(shift, block, shape).reshape(-1)
    dst = np.flatnonzero((flat_shift != 0) & movable)
    if dst.size == 0:
        return None
    src = dst - flat_shift[dst]
    keep = movable[src]
    return dst[keep], src[keep]


def _expand(coarse: np.ndarray, block: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A per-block array repeated onto the voxels of ``shape`` (contiguous)."""
    out = coarse
    for axis, b in enumerate(block):
        if b > 1:
            out = np.repeat(out, b, axis=axis)
    return np.ascontiguousarray(out[tuple(slice(0, n) for n in shape)])


def _movable(organ: np.ndarray, image: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """Organ voxels and soft tissue within ``MARGIN_MM`` of the organ (never bone or air)."""
    near = dilate_mm(organ, MARGIN_MM, spacing)
    return near & (image > AIR_HU) & (image < BONE_HU)


__all__ = ["AIR_HU", "BONE_HU", "MARGIN_MM", "STRENGTH", "push_scene"]
