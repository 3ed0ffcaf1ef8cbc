"""The isotropic grid the ``cellular`` automaton runs on, and its link to the scan's ROI.

Why a grid of its own: growth is counted in cells, so the automaton must not see the scan's
voxels (thick slices would stretch tumors along them). The grid has spacing
``h = clamp(d / 32, 0.5, 3)`` mm, so every tumor is ~32 cells across, and ``2 * half + 1``
cells per axis (at most 63) centred on the placed centre.

* ``CAGrid``: cell <-> ROI voxel coordinates; separable resampling (nearest for masks and
  labels, linear for HU fields) both ways, and area-weighted averaging of cells over each
  voxel's footprint (used for the tumor and its weight: thick slices get partial volume, and
  ``volume_preserving_mask`` keeps the grown volume, so the measured diameter is the grown
  one even when a tumor is only a few voxels across); cells outside the ROI are walls.
* ``cell_fields``: the automaton's inputs from a ``Site``: states (tissue, walls, vessels),
  invasion acceptance from the tissue density level, wall pressure thresholds.
* Tissue density levels (3): the organ's HU, smoothed by ``max(1 mm, h / 2)`` (at least 0.7
  voxel) so that they describe tissue rather than voxel noise, relative to the measured parenchyma median ``m`` and MAD
  ``s`` (floored at 5 HU): level 1 below ``m + s``, level 2 below ``m + 2 s``, level 3 above
  (darker or average tissue invades easily, dense / enhancing tissue resists).
* The calibration table (``resources/cellular_calibration.json``) -> expected steps.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any, Sequence

import numpy as np
import torch
from scipy import ndimage

from ...anatomy.site import Site
from ...core.resample import blur_and_sample, resample
from ..contour import takeable_organ
from ..contracts import Scene
from ..effects.mass_effect import AIR_HU, BONE_HU, MARGIN_MM
from ..texture import TRUNCATE
from .engine import ACCEPTANCE, HEALTHY, RIGID, VESSEL, WALL, cpu_threads

#: Target tumor size in cells, and the limits of the cell size (mm).
CELLS_ACROSS = 32.0
H_RANGE_MM = (0.5, 3.0)
#: Largest number of cells on each side of the centre cell (grid <= 63^3 cells).
MAX_HALF_CELLS = 31
#: Level thresholds in units of the parenchyma MAD above the median; MAD floor (HU).
LEVEL_STEPS_MAD = (1.0, 2.0)
LEVEL_MAD_FLOOR_HU = 5.0
LEVEL_SMOOTH_MM = 1.0
LEVEL_SMOOTH_MIN_VOXELS = 0.7
#: Pushes a wall cell takes before it gives way (organ contour in the bulge zone, vessels).
BOUNDARY_PUSHES = 3
VESSEL_PUSHES = 4


def ca_spacing_mm(diameter_mm: float) -> float:
    """Cell size h (mm) for a tumor of ``diameter_mm``: ``clamp(d / 32, 0.5, 3)``."""
    return float(np.clip(float(diameter_mm) / CELLS_ACROSS, *H_RANGE_MM))


def ca_half_cells(diameter_mm: float) -> int:
    """Cells on each side of the centre: room for the tumor out to ``d`` from the centre
    (elongated organs, irregular growth), at most ``MAX_HALF_CELLS``."""
    return int(min(MAX_HALF_CELLS, np.ceil(float(diameter_mm) / ca_spacing_mm(diameter_mm))))


@dataclass(frozen=True)
class CAGrid:
    """An isotropic grid of ``2 * half + 1`` cells of ``h_mm`` per axis, centred on
    ``center_vox`` (ROI voxel coordinates) of a ROI of ``roi_shape`` with ``spacing`` mm."""

    h_mm: float
    half: int
    center_vox: tuple[float, float, float]
    spacing: tuple[float, float, float]
    roi_shape: tuple[int, int, int]

    @classmethod
    def for_site(cls, site: Site) -> "CAGrid":
        return cls(ca_spacing_mm(site.diameter_mm), ca_half_cells(site.diameter_mm),
                   tuple(float(v) for v in site.center_vox), tuple(float(v) for v in site.spacing),
                   tuple(int(v) for v in site.organ_mask.shape))

    @property
    def n(self) -> int:
        return 2 * self.half + 1

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.n,) * 3

    def voxel_coords(self) -> list[np.ndarray]:
        """Per axis: the ROI voxel coordinate of each cell index."""
        cells = np.arange(self.n, dtype=float) - self.half
        return [c + cells * self.h_mm / s for c, s in zip(self.center_vox, self.spacing)]

    def cell_coords(self, box: Sequence[slice] | None = None) -> list[np.ndarray]:
        """Per axis: the cell coordinate of each ROI voxel index (of ``box`` when given)."""
        box = box or self.covered_box()
        return [(np.arange(b.start, b.stop, dtype=float) - c) * s / self.h_mm + self.half
                for b, c, s in zip(box, self.center_vox, self.spacing)]

    def covered_box(self) -> tuple[slice, slice, slice]:
        """The ROI voxels whose nearest cell lies on the grid."""
        out = []
        for c, s, n in zip(self.center_vox, self.spacing, self.roi_shape):
            reach = (self.half + 0.5) * self.h_mm / s
            out.append(slice(int(max(np.ceil(c - reach), 0)), int(min(np.floor(c + reach) + 1, n))))
        return tuple(out)  # type: ignore[return-value]

    def inside_roi(self) -> np.ndarray:
        """Bool cells whose centre lies within the ROI (half a voxel tolerance)."""
        axes = [(v >= -0.5) & (v <= n - 0.5) for v, n in zip(self.voxel_coords(), self.roi_shape)]
        return axes[0][:, None, None] & axes[1][None, :, None] & axes[2][None, None, :]

    def to_cells(self, roi_array: np.ndarray, order: int, fill: Any = 0) -> np.ndarray:
        """A ROI array sampled on the cells (nearest: order 0, linear: order 1)."""
        return resample(roi_array, self.voxel_coords(), order, fill)

    def overlap_matrices(self, box: Sequence[slice]) -> list[np.ndarray]:
        """Per axis, (voxels x cells) fractions of each voxel's footprint covered by each cell."""
        mats = []
        for coords, s in zip(self.cell_coords(box), self.spacing):
            half = 0.5 * s / self.h_mm
            lo = np.maximum(coords[:, None] - half, np.arange(self.n)[None, :] - 0.5)
            hi = np.minimum(coords[:, None] + half, np.arange(self.n)[None, :] + 0.5)
            mats.append((np.clip(hi - lo, 0.0, None) / (2 * half)).astype(np.float32))
        return mats

    def to_roi_average(self, cell_array: np.ndarray) -> np.ndarray:
        """A cell field averaged over each ROI voxel's footprint (area-weighted: partial volume
        of thick slices, the field's integral kept); 0 beyond the grid. Float32. The three
        separable products run in torch on one thread (``engine.cpu_threads``): BLAS with two
        threads on a busy 2-core machine was measured 4x slower."""
        box = self.covered_box()
        out = np.zeros(self.roi_shape, dtype=np.float32)
        if any(b.stop <= b.start for b in box):
            return out
        m0, m1, m2 = (torch.from_numpy(m) for m in self.overlap_matrices(box))
        a = torch.from_numpy(np.ascontiguousarray(cell_array, dtype=np.float32))
        with cpu_threads(torch.device("cpu")):
            a = (m0 @ a.reshape(self.n, -1)).reshape(len(m0), self.n, self.n)
            a = torch.matmul(m1, a)                      # (v0, v1, n)
            out[box] = torch.matmul(a, m2.T).numpy()
        return out

    def to_roi(self, cell_array: np.ndarray, order: int, fill: Any = 0) -> np.ndarray:
        """A cell array sampled back on the ROI voxels (``fill`` beyond the grid)."""
        box = self.covered_box()
        dtype = np.float32 if order == 1 else np.asarray(cell_array).dtype
        out = np.full(self.roi_shape, fill, dtype=dtype)
        if all(b.stop > b.start for b in box):
            out[box] = resample(cell_array, self.cell_coords(box), order, fill)
        return out


@dataclass
class CellFields:
    """The automaton's inputs and what the renderer needs to know about them."""

    state: np.ndarray          # int8 codes (cellular_engine)
    acceptance: np.ndarray     # float32
    yield_at: np.ndarray       # int16 pushes (0 = never gives way)
    levels: np.ndarray         # uint8 1..3 on tissue cells, 0 elsewhere
    vessels: np.ndarray        # bool: vessel cells at the start


def tissue_levels(site: Site, scene: Scene, grid: CAGrid) -> np.ndarray:
    """Density level 1..3 of every cell (from the smoothed ROI HU; see the module docstring)."""
    box = grid.covered_box()
    sigma_vox = np.maximum(max(LEVEL_SMOOTH_MM, 0.5 * grid.h_mm) / site.spacing, LEVEL_SMOOTH_MIN_VOXELS)
    coords = [c - b.start for c, b in zip(grid.voxel_coords(), box)]
    hu = blur_and_sample(scene.image[box], sigma_vox, coords, TRUNCATE, fill=0.0)
    mad = max(float(site.organ_mad_hu), LEVEL_MAD_FLOOR_HU)
    edges = [float(site.organ_median_hu) + k * mad for k in LEVEL_STEPS_MAD]
    return (1 + np.digitize(hu, edges)).astype(np.uint8)


def volume_preserving_mask(occupancy: np.ndarray, allowed: np.ndarray, n_voxels: int) -> np.ndarray:
    """The ``n_voxels`` allowed voxels of highest occupancy (ties: lower flat index first), so
    that a mask moved to another grid keeps its volume and hence its equivalent diameter."""
    cand = np.flatnonzero(allowed & (occupancy > 0))
    out = np.zeros(occupancy.shape, dtype=bool)
    n = int(max(min(n_voxels, cand.size), 0))
    if n == cand.size:
        out.ravel()[cand] = True
    elif n:
        values = occupancy.ravel()[cand]
        kth = np.partition(values, cand.size - n)[cand.size - n]      # the n-th largest value
        above = values > kth
        ties = np.flatnonzero(values == kth)[: n - int(np.count_nonzero(above))]
        out.ravel()[cand[above]] = True
        out.ravel()[cand[ties]] = True
    return out


def cell_fields(site: Site, scene: Scene, grid: CAGrid, *, bulge_mm: float, vessel_push: bool,
                acceptance_scale: np.ndarray | None = None) -> CellFields:
    """States, acceptance and wall thresholds of the cells for ``site``.

    Organ tissue the tumor may take (``contour.takeable_organ``) -> healthy; vessels -> VESSEL (move when pushed if ``vessel_push``); other
    voxels outside the organ -> WALL (gives way within ``bulge_mm`` of the organ, in unlabelled
    soft tissue only); other organs, lesions, earlier tumors, bone, air and cells beyond the
    ROI -> RIGID.
    ``acceptance_scale`` (optional, per cell, in (0, 1]) modulates growth (lobulation).
    """
    inside = grid.inside_roi()
    takeable = takeable_organ(site, scene)
    organ = grid.to_cells(takeable, 0, False) & inside
    vessels = grid.to_cells(scene.vessels, 0, False) & inside
    other = ((np.asarray(scene.labels) != 0) | scene.organ) & ~takeable & ~scene.vessels
    hard = (scene.image >= BONE_HU) | (scene.image <= AIR_HU)
    blocked = grid.to_cells(other | site.occupied | hard, 0, True) | ~inside
    state = np.full(grid.shape, WALL, dtype=np.int8)
    state[organ] = HEALTHY
    state[vessels] = VESSEL
    state[blocked & ~vessels] = RIGID
    levels = np.where(state == HEALTHY, tissue_levels(site, scene, grid), 0).astype(np.uint8)
    acceptance = np.asarray(ACCEPTANCE, dtype=np.float32)[np.clip(levels, 1, 3) - 1]
    if acceptance_scale is not None:
        acceptance = acceptance * acceptance_scale.astype(np.float32)
    yield_at = np.zeros(grid.shape, dtype=np.int16)
    reach = ndimage.distance_transform_edt(~organ) * grid.h_mm if organ.any() else None
    if vessel_push:
        pushable = state == VESSEL
        if reach is not None:      # a vessel farther outside the organ than the margin stays put
            pushable &= reach <= MARGIN_MM
        yield_at[pushable] = VESSEL_PUSHES
    if bulge_mm > 0 and reach is not None:
        yield_at[(state == WALL) & (reach <= bulge_mm)] = BOUNDARY_PUSHES
    return CellFields(state, acceptance.astype(np.float32), yield_at, levels, vessels)


def nearest_tissue_cell(state: np.ndarray, cell: Sequence[int]) -> np.ndarray | None:
    """The healthy cell nearest to ``cell`` (itself when healthy), or None if there is none."""
    c = tuple(int(v) for v in cell)
    tissue = state == 0
    if tissue[c]:
        return np.asarray(c)
    if not tissue.any():
        return None
    _, idx = ndimage.distance_transform_edt(~tissue, return_indices=True)
    return idx[(slice(None),) + c]


# -- calibration ----------------------------------------------------------------------------
@lru_cache(maxsize=1)
def load_calibration() -> dict[str, Any]:
    """The shipped table: per level, equivalent diameter (cells) after each step."""
    text = resources.files("TumorSynthLib").joinpath("resources/cellular_calibration.json").read_text()
    return json.loads(text)


def steps_for_diameter(diameter_cells: float, level: int) -> float:
    """Expected steps for one seed to reach ``diameter_cells`` in homogeneous tissue of
    ``level`` (linear extrapolation beyond the table)."""
    curve = np.asarray(load_calibration()["levels"][str(int(level))]["diameter_cells"], dtype=float)
    steps = np.arange(1, len(curve) + 1, dtype=float)
    if diameter_cells <= curve[-1]:
        return float(np.interp(diameter_cells, curve, steps))
    tail = max(len(curve) // 4, 2)
    rate = (curve[-1] - curve[-tail]) / (tail - 1)
    return float(steps[-1] + (diameter_cells - curve[-1]) / max(rate, 1e-3))


def expected_steps(diameter_cells: float, level_fractions: Sequence[float]) -> float:
    """Steps expected in tissue mixing the levels in ``level_fractions`` (weights of 1..3)."""
    w = np.asarray(level_fractions, dtype=float)
    w = w / w.sum() if w.sum() > 0 else np.array([1.0, 0.0, 0.0])
    return float(sum(wi * steps_for_diameter(diameter_cells, i + 1) for i, wi in enumerate(w) if wi > 0))


__all__ = [
    "CAGrid",
    "CellFields",
    "ca_half_cells",
    "ca_spacing_mm",
    "cell_fields",
    "expected_steps",
    "load_calibration",
    "nearest_tissue_cell",
    "steps_for_diameter",
    "tissue_levels",
    "volume_preserving_mask",
]
