"""The isotropic patch a diffusion model sees around a tumor, and the way back (numpy, scipy).

A ``PatchGrid`` is ``n``^3 cells of ``h`` mm centred on a point of a scan region (continuous
voxel coordinates of that region): ``sample`` reads an array of the region at the cell centres
(linear interpolation, a Gaussian pre-blur when cells are coarser than the voxels, edge values
past the region's border), ``to_region`` reads a patch back at the region's voxel centres.

``patch_spacing`` chooses ``h`` from the tumor's extent: the conditioning mask's bounding box
(largest side, mm) takes ``fill`` of the patch side, never finer than ``h_min`` (1 mm). The
conditioning mask is the tumor dilated by ``mask_margin_mm`` (``dilate_mm``), so it covers the
tumor's soft edge as well.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ...core.morphology import dilate
from ...core.volume import Box, bounding_box

#: Pre-blur (sigma in voxels) per unit of downsampling beyond 1 (anti-aliasing).
ANTI_ALIAS = 0.4


@dataclass(frozen=True)
class PatchGrid:
    """``n``^3 cells of ``spacing_mm`` centred on ``center`` (voxel coordinates of a region
    whose voxels are ``voxel_mm`` apart)."""

    center: tuple[float, float, float]
    spacing_mm: float
    n: int
    voxel_mm: tuple[float, float, float]

    def axis_coords(self, axis: int) -> np.ndarray:
        """Voxel coordinates (along ``axis``) of the cell centres."""
        offsets = (np.arange(self.n) - 0.5 * (self.n - 1)) * self.spacing_mm / self.voxel_mm[axis]
        return self.center[axis] + offsets

    def cell_coords(self) -> np.ndarray:
        """(3, n, n, n) voxel coordinates of every cell centre."""
        return np.stack(np.meshgrid(*(self.axis_coords(a) for a in range(3)), indexing="ij"))

    def footprint(self, shape: tuple[int, ...], pad: int = 2) -> Box:
        """The region's box that the patch reads (clipped to ``shape``)."""
        lo = [max(int(np.floor(self.axis_coords(a)[0])) - pad, 0) for a in range(3)]
        hi = [min(int(np.ceil(self.axis_coords(a)[-1])) + pad + 1, shape[a]) for a in range(3)]
        lo = [min(lo[a], max(shape[a] - 1, 0)) for a in range(3)]
        hi = [max(hi[a], lo[a] + 1) for a in range(3)]
        return Box(tuple(lo), tuple(hi))

    def sample(self, region: np.ndarray, order: int = 1, anti_alias: bool = True) -> np.ndarray:
        """``region`` (float, the region's voxels) at the cell centres, float32 (n^3); cells
        coarser than the voxels see a Gaussian pre-blur unless ``anti_alias`` is False."""
        box = self.footprint(region.shape)
        values = np.asarray(region[box.slices], dtype=np.float32)
        sigma = [ANTI_ALIAS * max(self.spacing_mm / v - 1.0, 0.0) for v in self.voxel_mm]
        if anti_alias and order > 0 and max(sigma) > 0.05:
            values = ndimage.gaussian_filter(values, sigma, mode="nearest")
        coords = self.cell_coords() - np.asarray(box.lo, dtype=float)[:, None, None, None]
        return ndimage.map_coordinates(values, coords, order=order, mode="nearest").astype(np.float32)

    def sample_mask(self, mask: np.ndarray) -> np.ndarray:
        """The region's boolean mask on the cells (linear occupancy >= 0.5)."""
        return self.sample(np.asarray(mask, dtype=np.float32), order=1, anti_alias=False) >= 0.5

    def to_region(self, patch: np.ndarray, box: Box) -> np.ndarray:
        """``patch`` (n^3) read at the voxel centres of ``box`` (region voxels), float32;
        voxels past the patch take its edge values."""
        g = np.meshgrid(*(np.arange(box.lo[a], box.hi[a], dtype=float) for a in range(3)), indexing="ij")
        coords = np.stack([(g[a] - self.center[a]) * self.voxel_mm[a] / self.spacing_mm + 0.5 * (self.n - 1)
                           for a in range(3)])
        return ndimage.map_coordinates(np.asarray(patch, dtype=np.float32), coords, order=1,
                                       mode="nearest").astype(np.float32)


def extent_mm(mask: np.ndarray, spacing: np.ndarray) -> float:
    """Largest side (mm) of the mask's bounding box (0 for an empty mask)."""
    box = bounding_box(mask, 0)
    if box is None:
        return 0.0
    return float(np.max(np.asarray(box.shape) * np.asarray(spacing, dtype=float)))


def patch_spacing(extent: float, n: int, fill: float, h_min: float = 1.0) -> float:
    """Cell size (mm) at which an extent of ``extent`` mm takes ``fill`` of ``n`` cells."""
    return max(float(h_min), float(extent) / (float(n) * float(fill)))


def patch_for_mask(mask: np.ndarray, spacing: np.ndarray, n: int, fill: float,
                   h_min: float = 1.0, shift_cells: np.ndarray | None = None) -> PatchGrid:
    """The patch centred on the bounding-box centre of ``mask`` (plus ``shift_cells`` cells),
    with the spacing of ``patch_spacing``."""
    box = bounding_box(mask, 0)
    if box is None:
        raise ValueError("empty mask: no patch")
    h = patch_spacing(extent_mm(mask, spacing), n, fill, h_min)
    center = 0.5 * (np.asarray(box.lo, dtype=float) + np.asarray(box.hi, dtype=float) - 1.0)
    if shift_cells is not None:
        center = center + np.asarray(shift_cells, dtype=float) * h / np.asarray(spacing, dtype=float)
    return PatchGrid(tuple(float(c) for c in center), h, int(n), tuple(float(s) for s in spacing))


def ball(radius_mm: float, spacing: np.ndarray) -> np.ndarray:
    """Structuring element: the voxels within ``radius_mm`` of the centre."""
    half = np.floor(radius_mm / np.asarray(spacing, dtype=float)).astype(int)
    g = np.ogrid[tuple(slice(-h, h + 1) for h in half)]
    return sum((gi * s) ** 2 for gi, s in zip(g, spacing)) <= radius_mm**2 + 1e-6


def dilate_mm(mask: np.ndarray, spacing: np.ndarray, margin_mm: float) -> np.ndarray:
    """``mask`` grown by ``margin_mm`` (a ball in mm; unchanged when the ball is one voxel)."""
    element = ball(margin_mm, spacing)
    if element.size == 1:
        return np.asarray(mask, dtype=bool).copy()
    return dilate(mask, element)


__all__ = ["PatchGrid", "ball", "dilate_mm", "extent_mm", "patch_for_mask", "patch_spacing"]
