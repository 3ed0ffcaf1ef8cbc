"""From the automaton's cells to HU on the scan's ROI (the ``cellular`` method's last stage).

1. Masks back on the ROI grid: the voxels most covered by tumor cells (area-weighted), as many
   as hold the grown volume (population >= 1 or dead: necrosis is TUMOR), likewise necrosis; vessels that the tumor pushed (moved vessel voxels carry the label and HU of the
   nearest original vessel voxel; the voxels they left become parenchyma).
2. Weight: the population / 10 (dead cells count as 10) blurred in 3D on the isotropic cells
   by sigma ~ U(1, 2) mm, then linear back to the ROI: full effect in the saturated core, a
   soft rim where the population is still rising (averaged over each voxel's footprint).
3. Intensity (``common.md``): ``delta`` relative to the measured parenchyma
   (``effects.darkening_delta``), ``delta_map = delta * tex / mean(tex in tumor)``,
   ``out = x - w * delta_map`` in organ and tumor (tumor voxels past the organ contour or far
   below the parenchyma (fat, gas) start from parenchyma-like HU, as the reference's fat
   filling); vessels inside the tumor damped; capsule; necrosis towards water.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import ndimage

from ..core.volume import bounding_box
from . import effects
from .base import TumorRender
from .cellular_grid import volume_preserving_mask
from .texture import STAGE_HETEROGENEITY, TRUNCATE, make_texture

if TYPE_CHECKING:
    from .cellular import CellularRun

EDGE_SIGMA_RANGE_MM = (1.0, 2.0)
NECROSIS_LEVEL_RANGE_HU = (0.0, 20.0)
#: Tumor voxels darker than median - 3 MAD (at least 25 HU below; fat, partial volume with fat,
#: gas) are replaced by parenchyma-like tissue before darkening.
FILL_BELOW_MAD = 3.0


def edge_weight(state: np.ndarray, sigma_cells: float) -> np.ndarray:
    """Population / 10 (dead = 10) blurred by an isotropic 3D Gaussian of ``sigma_cells``."""
    from .cellular_engine import DEAD, MAX_POPULATION

    pop = np.where(state == DEAD, 1.0, np.clip(state, 0, MAX_POPULATION) / MAX_POPULATION)
    return ndimage.gaussian_filter(pop.astype(np.float32), sigma_cells, mode="constant",
                                   truncate=TRUNCATE)


def render_cells(run: "CellularRun", rng: np.random.Generator) -> TumorRender:
    """The ``TumorRender`` of ``run`` as it is now; draws from ``rng`` go into the report."""
    from .cellular_engine import VESSEL

    site, grid = run.site, run.grid
    draws: dict[str, Any] = dict(run.draws)
    state = run.ca.state_numpy()
    vessels, labels, base, moved = _moved_vessels(run, state == VESSEL, rng)
    organ = site.organ_mask
    tumor, necrosis = roi_masks(run, state, allowed_region(run, vessels, labels))

    sigma = float(rng.uniform(*EDGE_SIGMA_RANGE_MM))
    draws["edge_sigma_mm"] = sigma
    weight = grid.to_roi_average(edge_weight(state, sigma / grid.h_mm))
    low = min(site.organ_median_hu - FILL_BELOW_MAD * site.organ_mad_hu, site.organ_median_hu - 25.0)
    base = effects.fill_with_parenchyma(base, tumor & (~organ | (base < low)), site, rng)
    out, delta = _darken(site, base, weight, tumor, organ, vessels, rng, draws)
    if tumor.any():
        tumor_hu = float(out[tumor].mean())
        inside_vessels = vessels & ndimage.binary_dilation(tumor) & (weight > 0.5)
        if inside_vessels.any():
            out = effects.damp_vessels(out, inside_vessels, tumor_hu)
        if run.switches["capsule"]:
            thickness, lift = float(rng.uniform(1.0, 2.0)), float(rng.uniform(0.3, 0.6)) * abs(delta)
            draws.update(capsule_thickness_mm=thickness, capsule_lift_hu=lift)
            out = effects.add_capsule(out, tumor, site.spacing, thickness, lift)
        if necrosis.any():
            level = min(float(rng.uniform(*NECROSIS_LEVEL_RANGE_HU)), tumor_hu - 5.0)
            draws["necrosis_level_hu"] = level
            noise = np.float32(3.0) * rng.standard_normal(tumor.shape, dtype=np.float32)
            out = effects.apply_necrosis(out, necrosis, tumor, site.spacing, level, noise)
    if _touches_grid_edge(state):
        site.warnings.append(
            f"the tumor reached the edge of the automaton grid ({grid.half * grid.h_mm:.0f} mm from "
            "the centre) and is cut there; ask for fewer steps, or a larger diameter")
    exclude = necrosis if necrosis.any() else None
    details = {
        **run.details(),
        "delta_hu": delta,
        "mean_tumor_hu": float(out[tumor].mean()) if tumor.any() else None,
        "measured_drop_hu": effects.measured_drop_hu(base, out, weight, exclude=exclude),
        "exophytic_voxels": int(np.count_nonzero(tumor & ~organ)),
        "vessel_voxels_moved": int(moved),
    }
    return TumorRender(image_roi=out.astype(np.float32), labels_roi=labels, tumor_mask=tumor,
                       necrosis_mask=necrosis if necrosis.any() else None, draws=draws,
                       details=details)


def allowed_region(run: "CellularRun", vessels: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """ROI voxels a tumor voxel may occupy: organ (and, where the contour may give way,
    unlabelled tissue), never vessels or earlier tumors."""
    site = run.site
    inner = site.organ_mask | (labels == site.organ_label_id)
    if run.bulge_mm > 0:
        inner = inner | (np.asarray(site.labels_roi) == 0)
    return inner & ~vessels & (site.occupied == 0)


def roi_masks(run: "CellularRun", state: np.ndarray, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(tumor, necrosis) on the ROI grid: the voxels most covered by tumor (dead) cells, as
    many as hold the grown volume (``volume_preserving_mask``)."""
    from .cellular_engine import DEAD

    grid = run.grid
    ratio = grid.h_mm**3 / float(np.prod(run.site.spacing))
    alive, dead = state > 0, state == DEAD
    n_tumor = int(round((np.count_nonzero(alive) + np.count_nonzero(dead)) * ratio))
    tumor = volume_preserving_mask(grid.to_roi_average(alive | dead), allowed, max(n_tumor, 1))
    necrosis = np.zeros_like(tumor)
    if dead.any():
        necrosis = volume_preserving_mask(grid.to_roi_average(dead), tumor,
                                          int(round(np.count_nonzero(dead) * ratio)))
    return tumor, necrosis


def _touches_grid_edge(state: np.ndarray) -> bool:
    """True when a tumor cell lies on an outer face of the grid (growth was cut there)."""
    from .cellular_engine import DEAD

    faces = [state[0], state[-1], state[:, 0], state[:, -1], state[:, :, 0], state[:, :, -1]]
    return any(bool(np.any((f > 0) | (f == DEAD))) for f in faces)


def _darken(site, base, weight, tumor, organ, vessels, rng, draws) -> tuple[np.ndarray, float]:
    """``base - w * delta_map`` in organ and tumor (not on vessels); returns (image, delta)."""
    delta, f = effects.darkening_delta(site, rng)
    draws["delta_f"] = f
    box = bounding_box(weight > 0)
    if box is None or not tumor.any():
        return np.array(base, dtype=np.float32), delta
    tex = np.ones(tumor.shape, dtype=np.float32)
    tex[box.slices] = make_texture(box.shape, site.spacing, rng,
                                   sigma_a_mm=float(rng.uniform(3.0, 6.0)),
                                   sigma_b_mm=float(rng.uniform(3.0, 5.0)),
                                   heterogeneity=STAGE_HETEROGENEITY[site.stage], draws=draws)
    delta_map = np.float32(delta / max(float(tex[tumor].mean()), 1e-6)) * tex
    return effects.blend_darkening(base, weight, delta_map, (organ | tumor) & ~vessels), delta


def _moved_vessels(run: "CellularRun", vessel_cells: np.ndarray, rng: np.random.Generator):
    """(vessel mask, labels, image, voxels moved) of the ROI after the automaton pushed vessels.
    Voxels a vessel left become parenchyma (organ label, median + noise HU); voxels it moved
    into copy the label and HU of the nearest original vessel voxel."""
    from scipy.spatial import cKDTree

    site, grid = run.site, run.grid
    start = run.fields.vessels
    if np.array_equal(vessel_cells, start):
        return site.vessel_mask, site.labels_roi, site.image_roi, 0
    left = grid.to_roi(start & ~vessel_cells, 0, False) & site.vessel_mask
    came = grid.to_roi(vessel_cells & ~start, 0, False) & ~site.vessel_mask & site.organ_mask
    vessels = (site.vessel_mask & ~left) | came
    labels = np.array(site.labels_roi, copy=True)
    image = np.array(site.image_roi, dtype=np.float32)
    source = np.argwhere(site.vessel_mask & ~left)
    if came.any() and len(source):
        target = np.argwhere(came)
        _, nearest = cKDTree(source * site.spacing).query(target * site.spacing)
        src = tuple(source[nearest].T)
        labels[tuple(target.T)] = site.labels_roi[src]
        image[tuple(target.T)] = site.image_roi[src]
    else:
        vessels = site.vessel_mask & ~left
    was_vessel_label = left & (labels != site.organ_label_id)
    labels[was_vessel_label] = site.organ_label_id
    noise = rng.standard_normal(int(left.sum())).astype(np.float32)
    image[left] = np.float32(site.organ_median_hu) + np.float32(site.organ_mad_hu) * noise
    return vessels, labels, image, int(left.sum() + came.sum())


__all__ = ["allowed_region", "edge_weight", "render_cells", "roi_masks"]
