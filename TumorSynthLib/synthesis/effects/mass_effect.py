"""Mass effect: the tissue around a growing tumor is pushed aside (common.md; realism issue).

Field: radial from the placed centre, nothing moves inside the target radius ``r`` (the tumor
takes that room), the push is ``strength * r`` (mm) at ``r`` and fades linearly to 0 at ``2 r``.
The map ``p -> p - u(p)`` is one-to-one outside ``r`` (its slope is ``1 + strength``): the
tissue that was inside the tumor's room is compressed into the ring around it.

Anatomy: only soft tissue of the organ and of a ``MARGIN_MM`` band around it moves; bone
(> ``BONE_HU``), air and everything outside the body (< ``AIR_HU``) never move, and no moving
voxel takes its value from them. So the organ's contour bulges into the surrounding fat where
the tumor is large and near the surface, but ribs and the abdominal wall stay where they are.

Resampling is nearest-neighbour (each output voxel copies one input voxel): the scan's grain is
kept exactly, nothing is smoothed, and labels move with the image.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from ...anatomy.site import Site
from ...core.volume import Box, box_around
from ..contracts import EffectPlan, Scene

#: Push at the tumor border, as a fraction of its radius (common.md default 0.3).
STRENGTH = 0.3
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
    out = Scene(scene.image.copy(), scene.labels.copy(), scene.organ.copy(), scene.vessels.copy(),
                moved_voxels=int(dst[0].size), displacement_mm=float(strength * r))
    for name in ("image", "labels", "organ", "vessels"):
        before, after = getattr(scene, name)[box.slices], getattr(out, name)[box.slices]
        after[dst] = before[src]
    return out


def _moved_voxels(site: Site, box: Box, r: float, strength: float):
    """(destination, source) index tuples within ``box`` of the voxels that change, or None."""
    image = site.image_roi[box.slices]
    movable = _movable(site.organ_mask[box.slices], image, site.spacing)
    c = np.asarray(site.center_vox, dtype=float) - np.asarray(box.lo)
    idx = np.nonzero(movable)
    off = [(i - ci).astype(np.float32) * np.float32(s) for i, ci, s in zip(idx, c, site.spacing)]
    rho = np.sqrt(off[0] ** 2 + off[1] ** 2 + off[2] ** 2)
    ring = (rho >= r) & (rho < 2.0 * r)
    push = np.float32(strength * r) * (np.float32(2.0 * r) - rho[ring]) / np.float32(r)
    factor = 1.0 - push / rho[ring]
    src = tuple(np.clip(np.rint(ci + o[ring] * factor / s).astype(np.intp), 0, n - 1)
                for o, ci, s, n in zip(off, c, site.spacing, image.shape))
    dst = tuple(i[ring] for i in idx)
    keep = np.zeros(dst[0].shape, dtype=bool)
    for d, s_ in zip(dst, src):
        keep |= d != s_
    keep &= movable[src]
    if not keep.any():
        return None
    return tuple(d[keep] for d in dst), tuple(s_[keep] for s_ in src)


def _movable(organ: np.ndarray, image: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """Organ voxels and soft tissue within ``MARGIN_MM`` of the organ (never bone or air)."""
    near = _dilate_mm(organ, MARGIN_MM, spacing)
    return near & (image > AIR_HU) & (image < BONE_HU)


def _dilate_mm(mask: np.ndarray, radius_mm: float, spacing: np.ndarray) -> np.ndarray:
    """``mask`` dilated by an ellipsoid of ``radius_mm`` (per-axis voxels), computed on blocks
    of about ``radius_mm / 2`` so that the cost stays small on fine grids (the reach is then
    exact to within one block, rounded down so it never exceeds ``radius_mm`` + one block)."""
    block = np.maximum(np.floor(0.5 * radius_mm / np.asarray(spacing, float)), 1).astype(int)
    coarse = _block_any(mask, block)
    half = np.floor(radius_mm / (block * np.asarray(spacing, float))).astype(int)
    if np.all(half == 0):
        return mask.copy()
    g = np.ogrid[tuple(slice(-h, h + 1) for h in half)]
    structure = sum((gi / max(h, 1)) ** 2 for gi, h in zip(g, half)) <= 1.0
    grown = ndimage.binary_dilation(coarse, structure=structure)
    for axis, b in enumerate(block):
        grown = np.repeat(grown, b, axis=axis)
    return grown[tuple(slice(0, n) for n in mask.shape)] | mask


def _block_any(mask: np.ndarray, block: np.ndarray) -> np.ndarray:
    pad = [(0, (-n) % b) for n, b in zip(mask.shape, block)]
    m = np.pad(mask, pad)
    shape = []
    for n, b in zip(m.shape, block):
        shape += [n // b, int(b)]
    return m.reshape(shape).any(axis=(1, 3, 5))


__all__ = ["AIR_HU", "BONE_HU", "MARGIN_MM", "STRENGTH", "push_scene"]
