"""The ``cellular`` geometry: a stochastic 3D cellular automaton grows the tumor (after Lai et
al., MICCAI 2024; methods.md 2). The automaton is in ``synthesis.automaton`` (torch, CPU or
CUDA); this file turns its cells into the tumor's occupancy on the scan's ROI:

1. masks: the voxels most covered by tumor cells (area-weighted over each voxel's footprint),
   as many as hold the grown volume (population >= 1 or dead: necrosis is TUMOR), likewise the
   necrotic region;
2. weight: the population / 10 (dead cells count as 10) blurred in 3D on the cells by sigma
   ~ U(1, 2) mm, then averaged onto the ROI: full effect in the saturated core, a soft rim where
   the population is still rising;
3. vessels the tumor pushed: moved vessel voxels carry the label and HU of the nearest original
   vessel voxel, the voxels they left become parenchyma (a new scene for the appearance).

It works in steps (``start`` -> ``CellularJob``), so live front ends show the tumor growing.
"""
from __future__ import annotations

import importlib.util
from typing import Any

import numpy as np
from scipy import ndimage

from ...anatomy.site import Site
from ...core.resample import dilate_mm
from ...core.volume import bounding_box, voxel_coords
from ..contour import contour_limit, soft_tissue, takeable_organ
from ..contracts import EDGE_SIGMA_RANGE_MM, EffectPlan, Geometry, Scene
from ..registry import register_geometry
from ..texture import TRUNCATE

#: Room (mm) beyond the automaton grid for the soft edge (3 sigma of at most 2 mm) and a voxel.
ROI_MARGIN_MM = 3 * EDGE_SIGMA_RANGE_MM[1] + 2.0
#: Blur (CA cells) of the tumor occupancy before it becomes the voxel mask (see ``roi_masks``).
SURFACE_SMOOTH_CELLS = 1.0


@register_geometry("cellular", method="cellular", pair="procedural",
                   description="cellular-automaton growth with the procedural texture")
class CellularGeometry:
    """Cellular-automaton growth (torch)."""

    name = "cellular"
    description = "stochastic cellular-automaton growth that bends around vessels and pushes walls"
    options = ("steps", "lobulation")

    def available(self) -> tuple[bool, str]:
        if importlib.util.find_spec("torch") is None:
            return False, "the cellular geometry needs torch: pip install torch==2.13.0"
        return True, ""

    def roi_radius_mm(self, diameter_mm: float, stage: str) -> float:
        """The automaton grid's half width (about d: room to grow irregularly or along a thin
        organ, and the mass effect's reach of 2 radii) plus the soft-edge margin."""
        from ..automaton.grid import ca_half_cells, ca_spacing_mm

        return ca_half_cells(diameter_mm) * ca_spacing_mm(diameter_mm) + ROI_MARGIN_MM

    def start(self, site: Site, scene: Scene, plan: EffectPlan, rng: np.random.Generator) -> "CellularJob":
        return CellularJob(site, scene, plan, rng)

    def build(self, site: Site, scene: Scene, plan: EffectPlan, rng: np.random.Generator) -> Geometry:
        return self.start(site, scene, plan, rng).finish()


class CellularJob:
    """A growing tumor (``StepJob``): ``advance(n)``, ``preview()``, ``stop()``, ``finish()``."""

    def __init__(self, site: Site, scene: Scene, plan: EffectPlan, rng: np.random.Generator) -> None:
        from ..automaton.growth import CellularRun

        self.run = CellularRun(site, scene, plan, rng)
        self.rng = rng

    @property
    def step(self) -> int:
        return self.run.step

    @property
    def total_steps(self) -> int:
        return self.run.total_steps

    @property
    def done(self) -> bool:
        return self.run.done

    def advance(self, n: int = 1) -> None:
        self.run.advance(n)

    def stop(self) -> None:
        self.run.stop()

    def preview(self) -> np.ndarray:
        """The tumor mask of the ROI as it is now."""
        vessels = self.run.scene.vessels
        tumor, _ = roi_masks(self.run, self.run.ca.state_numpy(), allowed_region(self.run, vessels))
        return tumor

    def finish(self) -> Geometry:
        """Grow to the end (unless stopped) and read the tumor out."""
        while not self.run.done:
            self.run.advance(64)
        return read_out(self.run, self.rng)


def read_out(run: Any, rng: np.random.Generator) -> Geometry:
    """The ``Geometry`` of a finished (or stopped) run; draws the edge sigma from ``rng``."""
    from ..automaton.engine import VESSEL

    state = run.ca.state_numpy()
    scene = _moved_vessels(run, state == VESSEL)
    tumor, necrosis = roi_masks(run, state, allowed_region(run, scene.vessels))
    if not run.plan.satellites:   # the footprint mapping can leave specks of a voxel or two
        tumor = largest_component(tumor)
        necrosis &= tumor
    sigma = float(rng.uniform(*EDGE_SIGMA_RANGE_MM))
    draws = {**run.draws, "edge_sigma_mm": sigma}
    weight = run.grid.to_roi_average(edge_weight(state, sigma / run.grid.h_mm))
    info = run.info()
    info.update(vessel_voxels_moved=scene.moved_voxels - run.scene.moved_voxels,
                exophytic_voxels=int(np.count_nonzero(tumor & ~run.scene.organ)),
                touches_grid_edge=_touches_grid_edge(state))
    if info["touches_grid_edge"]:
        run.site.warnings.append(
            f"the tumor reached the edge of the automaton grid ({run.grid.half * run.grid.h_mm:.0f} mm "
            "from the centre) and is cut there; ask for fewer steps or a larger diameter")
    return Geometry(mask=tumor, weight=np.where(tumor | (weight > 0), weight, 0).astype(np.float32),
                    necrosis=necrosis, satellites=True, size_limited=info["size_limited_by_organ"],
                    scene=scene, draws=draws, info=info)


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 26-connected part of ``mask`` (the mask itself when it has one part)."""
    box = bounding_box(mask)
    if box is None:
        return mask
    labels, n = ndimage.label(mask[box.slices], structure=np.ones((3, 3, 3), dtype=bool))
    if n <= 1:
        return mask
    out = np.zeros_like(mask)
    out[box.slices] = labels == int(np.argmax(np.bincount(labels.ravel())[1:]) + 1)
    return out


def edge_weight(state: np.ndarray, sigma_cells: float) -> np.ndarray:
    """Population / 10 (dead = 10) blurred by an isotropic 3D Gaussian of ``sigma_cells``."""
    from ..automaton.engine import DEAD, MAX_POPULATION

    pop = np.where(state == DEAD, 1.0, np.clip(state, 0, MAX_POPULATION) / MAX_POPULATION)
    return ndimage.gaussian_filter(pop.astype(np.float32), sigma_cells, mode="constant", truncate=TRUNCATE)


def allowed_region(run: Any, vessels: np.ndarray) -> np.ndarray:
    """ROI voxels a tumor voxel may occupy: the organ (``contour.takeable_organ``: less what
    the organ cap keeps, within the contour margin) and, where the contour may give way,
    unlabelled soft tissue within the run's bulge of it (and the margin); never vessels,
    lesions or earlier tumors."""

    scene, site = run.scene, run.site
    inner = takeable_organ(site, scene).copy()
    if run.bulge_mm > 0:
        near = soft_tissue(scene)
        if np.isfinite(run.bulge_mm):
            near &= dilate_mm(scene.organ, run.bulge_mm, site.spacing)
        limit = contour_limit(site)
        inner |= near if limit is None else near & limit
    return inner & ~vessels & ~site.occupied


def roi_masks(run: Any, state: np.ndarray, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(tumor, necrosis) on the ROI grid: the voxels most covered by tumor (dead) cells, as
    many as hold the grown volume (``volume_preserving_mask``). The tumor's occupancy is first
    blurred by ``SURFACE_SMOOTH_CELLS``: the growth front is rough at the scale of one cell (an
    artefact of the automaton, not a tumor margin), lobulation lives at a quarter diameter.
    Only the largest connected body is blurred: satellites (a few cells) would fade below the
    main tumor's occupancy and be lost."""
    from ..automaton.engine import DEAD
    from ..automaton.grid import volume_preserving_mask

    grid = run.grid
    ratio = grid.h_mm**3 / float(np.prod(run.site.spacing))
    alive, dead = state > 0, state == DEAD
    n_tumor = int(round((np.count_nonzero(alive) + np.count_nonzero(dead)) * ratio))
    occupancy = smoothed_occupancy(alive | dead)
    tumor = volume_preserving_mask(grid.to_roi_average(occupancy), allowed, max(n_tumor, 1))
    necrosis = np.zeros_like(tumor)
    if dead.any():
        necrosis = volume_preserving_mask(grid.to_roi_average(dead), tumor,
                                          int(round(np.count_nonzero(dead) * ratio)))
    return tumor, necrosis


def smoothed_occupancy(cells: np.ndarray) -> np.ndarray:
    """Float32 occupancy of the tumor ``cells``: the largest 26-connected body blurred by
    ``SURFACE_SMOOTH_CELLS`` cells, every other body (satellites) kept as it is."""
    body = largest_component(cells)
    smooth = ndimage.gaussian_filter(body.astype(np.float32), SURFACE_SMOOTH_CELLS, truncate=TRUNCATE)
    return np.maximum(smooth, (cells & ~body).astype(np.float32))


def _touches_grid_edge(state: np.ndarray) -> bool:
    """True when a tumor cell lies on an outer face of the grid (growth was cut there)."""
    from ..automaton.engine import DEAD

    faces = [state[0], state[-1], state[:, 0], state[:, -1], state[:, :, 0], state[:, :, -1]]
    return any(bool(np.any((f > 0) | (f == DEAD))) for f in faces)


def _moved_vessels(run: Any, vessel_cells: np.ndarray) -> Scene:
    """The scene after the automaton pushed vessels (the run's own scene when none moved)."""
    from scipy.spatial import cKDTree

    scene, site, grid = run.scene, run.site, run.grid
    start = run.fields.vessels
    if np.array_equal(vessel_cells, start):
        return scene
    left = grid.to_roi(start & ~vessel_cells, 0, False) & scene.vessels
    came = grid.to_roi(vessel_cells & ~start, 0, False) & ~scene.vessels & scene.organ
    vessels = scene.vessels & ~left
    labels = np.array(scene.labels, copy=True)
    image = np.array(scene.image, dtype=np.float32)
    source = voxel_coords(vessels)
    if came.any() and len(source):
        target = voxel_coords(came)
        _, nearest = cKDTree(source * site.spacing).query(target * site.spacing)
        src = tuple(source[nearest].T)
        labels[tuple(target.T)] = scene.labels[src]
        image[tuple(target.T)] = scene.image[src]
        vessels = vessels | came
    labels[left & (labels != site.organ_label_id)] = site.organ_label_id
    noise = run_noise(run, int(left.sum()))
    image[left] = np.float32(site.organ_median_hu) + np.float32(site.organ_mad_hu) * noise
    moved = int(left.sum() + came.sum())
    return Scene(image, labels, scene.organ | left, vessels, moved_voxels=scene.moved_voxels + moved,
                 displacement_mm=scene.displacement_mm)


def run_noise(run: Any, n: int) -> np.ndarray:
    """``n`` standard normal values from the run's own generator (reproducible however the
    steps were chunked)."""
    return np.random.default_rng(run.draws["torch_seed"]).standard_normal(n).astype(np.float32)


__all__ = ["CellularGeometry", "CellularJob", "allowed_region", "edge_weight", "read_out", "roi_masks"]
