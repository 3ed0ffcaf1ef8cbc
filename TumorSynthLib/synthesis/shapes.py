"""Tumor shapes: a randomly rotated ellipsoid deformed by a smooth random displacement field,
rasterised in millimetres on the scan's own (possibly anisotropic) grid.

The ellipsoid lives in "unit" coordinates ``u = R^T p / radii`` (``p`` in mm from the centre,
``R`` a random rotation), where it is the unit ball. A displacement ``D(u)`` (random vectors on a
coarse 5^3 control grid, cubic B-spline upsampled, largest norm ``deform_fraction``) moves
the surface: a voxel is inside when ``|u + D(u)| <= 1``. Because ``|D| <= deform_fraction``,
only the shell ``1 - f < |u| < 1 + f`` needs the field, and ``|u + D(u)|^2`` is tabulated once
per shape on a lattice (trilinear look-up per voxel), which keeps large tumors cheap.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Sequence

import numpy as np
from scipy import ndimage

from ..core.morphology import dilate
from ..core.resample import coarse_grid, expand_blocks
from ..core.volume import Box, box_around

#: Per-axis radii vary by this fraction around d/2 before the geometric-mean rescale.
RADIUS_SPREAD = 0.25
#: Large shapes are rasterised from a level evaluated every (smallest radius / this) mm.
LEVEL_CELLS_PER_RADIUS = 12.0
#: Control points per axis of the displacement grid, spanning [-CONTROL_EXTENT, CONTROL_EXTENT].
CONTROL_POINTS = 5
CONTROL_EXTENT = 1.5


def draw_radii(diameter_mm: float, rng: np.random.Generator) -> np.ndarray:
    """Per-axis radii (mm): d/2 x U(0.75, 1.25) each, rescaled so their geometric mean is d/2
    (so the undeformed ellipsoid has exactly the equivalent diameter ``diameter_mm``)."""
    r = 0.5 * float(diameter_mm)
    radii = r * rng.uniform(1.0 - RADIUS_SPREAD, 1.0 + RADIUS_SPREAD, size=3)
    return radii * (r / float(np.prod(radii) ** (1.0 / 3.0)))


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A uniformly random 3x3 rotation matrix (QR of a Gaussian matrix, sign-fixed, det +1)."""
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


@dataclass
class EllipsoidShape:
    """A drawn shape, rasterisable at any scale (the tumor is grown / shrunk by ``scale`` to
    correct for clipping without drawing again).

    ``field`` holds ``|u + D(u)|^2`` sampled on a regular lattice over the unit-coordinate cube
    ``[-CONTROL_EXTENT, CONTROL_EXTENT]^3`` (cubic spline of the control grid, evaluated once);
    rasterising then needs one trilinear look-up per voxel of the surface shell.
    """

    radii_mm: np.ndarray            # (3,) mm
    rotation: np.ndarray            # (3, 3)
    deform_fraction: float          # max displacement, fraction of the radius
    field: np.ndarray               # (n, n, n) float32: |u + D(u)|^2 on the lattice

    def to_draws(self) -> dict[str, Any]:
        return {
            "radii_mm": [float(v) for v in self.radii_mm],
            "rotation": [[float(v) for v in row] for row in self.rotation],
            "deform_fraction": float(self.deform_fraction),
        }

    def extent_mm(self, scale: float = 1.0) -> float:
        """Radius (mm) of a ball that surely holds the shape at ``scale``."""
        return float(self.radii_mm.max()) * scale * (1.0 + self.deform_fraction)


def _lattice_points(max_radius_vox: float) -> int:
    """Lattice size: about one lattice step per voxel across the shell, 9 to 41 points."""
    return int(np.clip(np.ceil(2.0 * CONTROL_EXTENT * max_radius_vox), 9, 41))


@lru_cache(maxsize=64)
def _spline_basis(n: int) -> np.ndarray:
    """(n, CONTROL_POINTS) cubic B-spline weights of the control points at n lattice positions
    spanning the control grid (so a 3D field is ``einsum`` of three of these: separable)."""
    x = np.linspace(0.0, CONTROL_POINTS - 1.0, n)
    eye = np.eye(CONTROL_POINTS)
    basis = np.stack([ndimage.map_coordinates(e, x[None], order=3, prefilter=False, mode="nearest")
                      for e in eye], axis=1)
    basis.flags.writeable = False
    return basis


def draw_shape(radii_mm: Sequence[float], rng: np.random.Generator, deform_fraction: float,
               max_radius_vox: float = 20.0) -> EllipsoidShape:
    """Draw the rotation and the displacement field of an ellipsoid with ``radii_mm``
    (``max_radius_vox``: the longest radius in voxels of the finest axis, sets the lattice).
    The field is a cubic B-spline of random control vectors, scaled so that its largest
    displacement is exactly ``deform_fraction`` of the radius."""
    rotation = random_rotation(rng)
    ctrl = rng.standard_normal((3,) + (CONTROL_POINTS,) * 3)
    n = _lattice_points(max_radius_vox)
    b = _spline_basis(n)
    d = np.einsum("ai,bj,ck,vijk->vabc", b, b, b, ctrl, optimize=True)
    peak = float(np.sqrt((d**2).sum(axis=0)).max())
    d *= float(deform_fraction) / max(peak, 1e-12)
    axis = np.linspace(-CONTROL_EXTENT, CONTROL_EXTENT, n)
    moved = [d[0] + axis[:, None, None], d[1] + axis[None, :, None], d[2] + axis[None, None, :]]
    field = (moved[0] ** 2 + moved[1] ** 2 + moved[2] ** 2).astype(np.float32)
    return EllipsoidShape(np.asarray(radii_mm, dtype=float), rotation, float(deform_fraction), field)


def _level(shape: EllipsoidShape, p: Sequence[np.ndarray], scale: float) -> np.ndarray:
    """``|u + D(u)|^2`` (< 1 inside the shape) at points given by broadcastable mm offsets
    ``p`` from the centre: ``r2`` itself where the displacement cannot reach the surface, the
    lattice look-up in the shell where it can."""
    rot = shape.rotation.astype(np.float32)
    radii = (shape.radii_mm * scale).astype(np.float32)
    u = [(rot[0, a] * p[0] + rot[1, a] * p[1] + rot[2, a] * p[2]) / radii[a] for a in range(3)]
    level = u[0] ** 2 + u[1] ** 2 + u[2] ** 2
    f = shape.deform_fraction
    band = (level > (1.0 - f) ** 2) & (level <= (1.0 + f) ** 2)
    if band.any():
        n = shape.field.shape[0]
        to_lattice = np.float32((n - 1) / (2.0 * CONTROL_EXTENT))
        coords = np.stack([(np.broadcast_to(c, band.shape)[band] + np.float32(CONTROL_EXTENT)) * to_lattice
                           for c in u])
        level[band] = ndimage.map_coordinates(shape.field, coords, order=1, mode="nearest")
    return level


def _offsets_mm(positions: Sequence[np.ndarray], center: np.ndarray, spacing: np.ndarray,
                grid: bool) -> list[np.ndarray]:
    """mm offsets from the centre of voxel positions: per-axis 1D arrays made broadcastable
    (``grid``) or three equal-length coordinate arrays (points)."""
    out = []
    for axis, (q, c, s) in enumerate(zip(positions, center, spacing)):
        v = (np.asarray(q, dtype=np.float32) - np.float32(c)) * np.float32(s)
        out.append(v.reshape([-1 if a == axis else 1 for a in range(3)]) if grid else v)
    return out


def rasterise(
    shape: EllipsoidShape, grid_shape: Sequence[int], center_vox: Sequence[float],
    spacing: Sequence[float], scale: float = 1.0,
) -> np.ndarray:
    """Boolean mask of ``grid_shape`` holding the shape centred at ``center_vox`` (voxels),
    its radii multiplied by ``scale``; parts beyond the grid are cut off (``rasterise_box``)."""
    out = np.zeros(tuple(int(s) for s in grid_shape), dtype=bool)
    box, sub = rasterise_box(shape, out.shape, center_vox, spacing, scale)
    out[box.slices] = sub
    return out


def rasterise_box(
    shape: EllipsoidShape, grid_shape: Sequence[int], center_vox: Sequence[float],
    spacing: Sequence[float], scale: float = 1.0,
) -> tuple[Box, np.ndarray]:
    """The shape rasterised on its own box of the grid: ``(box, mask of box.shape)``, so that
    callers can work on the box instead of the whole grid. A large shape's level is evaluated
    on a coarse grid (cells of about 1/``LEVEL_CELLS_PER_RADIUS`` of its smallest radius); only
    the voxels of coarse cells at the surface are evaluated one by one."""
    spacing = np.asarray(spacing, dtype=float)
    center = np.asarray(center_vox, dtype=float)
    cells = coarse_cells(shape, grid_shape, center, spacing, scale)
    if cells is None or cells.box.is_empty:
        box = box_around(center, shape.extent_mm(scale), spacing, tuple(int(s) for s in grid_shape))
        if box.is_empty:
            return box, np.zeros(box.shape, dtype=bool)
        axes = [np.arange(a, b) for a, b in zip(box.lo, box.hi)]
        return box, _level(shape, _offsets_mm(axes, center, spacing, True), scale) <= 1.0
    box, factor, inside = cells.box, cells.factor, cells.inside
    near = dilate(inside) & dilate(~inside)
    sub = expand_blocks(inside & ~near, factor, box.shape)
    near_fine = _cell_voxels(near, factor, box.shape)
    points = [idx + lo for idx, lo in zip(near_fine, box.lo)]
    sub[near_fine] = _level(shape, _offsets_mm(points, center, spacing, False), scale) <= 1.0
    return box, sub


def _cell_voxels(cells: np.ndarray, factor: np.ndarray, shape: Sequence[int]) -> tuple[np.ndarray, ...]:
    """Indices (per axis) of the voxels of ``shape`` that the true ``cells`` (of ``factor``
    voxels, tiling from the origin) cover: ``np.nonzero`` of the expanded cells, built from the
    few cells instead of the whole expanded grid."""
    corners = np.argwhere(cells) * np.asarray(factor)
    inner = np.stack(np.meshgrid(*[np.arange(f) for f in factor], indexing="ij"), axis=-1).reshape(-1, 3)
    voxels = (corners[:, None, :] + inner[None, :, :]).reshape(-1, 3)
    voxels = voxels[np.all(voxels < np.asarray(shape), axis=1)]
    return tuple(voxels[:, axis] for axis in range(3))


@dataclass
class CoarseCells:
    """A large shape on the coarse grid ``rasterise_box`` starts from: ``inside[c]`` holds for
    the cells whose centre (voxel ``positions[axis][c]``) is inside; cells of ``factor`` voxels
    tile ``box`` from its low corner."""

    box: Box
    factor: np.ndarray
    positions: list[np.ndarray]
    inside: np.ndarray


def coarse_cells(
    shape: EllipsoidShape, grid_shape: Sequence[int], center_vox: Sequence[float],
    spacing: Sequence[float], scale: float = 1.0, cells_per_radius: float = LEVEL_CELLS_PER_RADIUS,
) -> CoarseCells | None:
    """The shape at ``scale`` on cells of about 1/``cells_per_radius`` of its smallest radius,
    or None when those cells are single voxels (a small shape): a cheap first look at a large
    shape (``rasterise_box`` refines its surface; size fitting counts on coarser ones)."""
    spacing = np.asarray(spacing, dtype=float)
    center = np.asarray(center_vox, dtype=float)
    factor = coarse_grid(spacing, float(shape.radii_mm.min()) * scale / cells_per_radius)
    if np.all(factor == 1):
        return None
    box = box_around(center, shape.extent_mm(scale), spacing, tuple(int(s) for s in grid_shape))
    positions = [a + (np.arange(-(-(b - a) // f)) + 0.5) * f - 0.5 for a, b, f in zip(box.lo, box.hi, factor)]
    inside = _level(shape, _offsets_mm(positions, center, spacing, True), scale) <= 1.0
    return CoarseCells(box, factor, positions, inside)


def deformed_ellipsoid(
    shape: Sequence[int], center_vox: Sequence[float], radii_mm: Sequence[float],
    spacing: Sequence[float], rng: np.random.Generator, *, deform_fraction: float,
) -> np.ndarray:
    """Boolean mask of ``shape``: an ellipsoid with ``radii_mm`` (mm), random orientation,
    surface displaced by up to ``deform_fraction`` of the radius, centred at ``center_vox``."""
    finest = float(np.min(np.asarray(spacing, dtype=float)))
    drawn = draw_shape(radii_mm, rng, deform_fraction, float(np.max(radii_mm)) / finest)
    return rasterise(drawn, shape, center_vox, spacing)


__all__ = [
    "CoarseCells",
    "EllipsoidShape",
    "coarse_cells",
    "deformed_ellipsoid",
    "draw_radii",
    "draw_shape",
    "random_rotation",
    "rasterise",
    "rasterise_box",
]
