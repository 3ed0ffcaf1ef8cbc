"""The ``ellipsoid`` geometry: a randomly rotated ellipsoid deformed by a smooth random
displacement field, clipped to the organ and grown to the requested size (methods.md 1).

1. radii +-25 % around d/2 (geometric mean d/2), random rotation, surface displaced by up to
   ~15 % of the radius early, ~30 % advanced (``shapes``);
2. the shape is clipped to where the tumor may be (``synthesis.contour``: the organ, or for an
   exophytic tumor also the soft tissue around it), kept off vessels, lesions and earlier
   tumors, reduced to the part connected to the centre, then
   rescaled (a few iterations) until the measured equivalent diameter matches the request;
   when the organ cannot hold it the tumor grows as far as it can and is "size limited".
"""
from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage

from ...anatomy.site import Site
from ...core.volume import bounding_box
from ..contour import allowed_region
from ..contracts import EDGE_SIGMA_RANGE_MM, EffectPlan, Geometry, Scene
from ..registry import register_geometry
from ..shapes import EllipsoidShape, coarse_cells, draw_radii, draw_shape, rasterise_box

#: Surface displacement (fraction of the radius) drawn per stage.
DEFORM_RANGE = {"tiny": (0.05, 0.10), "early": (0.08, 0.15), "intermediate": (0.15, 0.25),
                "advanced": (0.22, 0.30)}
#: Largest per-axis radius over d/2 after the geometric-mean rescale (1.25 / (1.25 .75 .75)^(1/3)).
MAX_AXIS_FACTOR = 1.41
#: Accept a clipped volume within this ratio of the target volume (diameter within ~2.5 %).
VOLUME_TOLERANCE = 0.08
SIZE_ITERATIONS = 4
#: A large shape's size is first fitted on cells of about 1/this of its smallest radius.
FIT_CELLS_PER_RADIUS = 6.0
#: Size limited: the diameter stays below this fraction of the request, ...
LIMITED_DIAMETER_FRACTION = 0.8
#: ... or clipping to the organ removed more than this fraction of the drawn shape.
CLIPPED_LIMIT = 0.2
#: The mass effect reaches 2 radii: the ROI covers it.
MASS_EFFECT_REACH = 2.0


@register_geometry("ellipsoid", description="deformed ellipsoid clipped to the organ")
class EllipsoidGeometry:
    """Deformed ellipsoid (numpy / scipy only)."""

    name = "ellipsoid"
    description = "randomly rotated ellipsoid with a smooth surface deformation, clipped to the organ"
    options = ()

    def available(self) -> tuple[bool, str]:
        return True, ""

    def roi_radius_mm(self, diameter_mm: float, stage: str) -> float:
        """The longest axis with its deformation (and room to grow against clipping), the mass
        effect's reach, and the soft edge's blur."""
        r = 0.5 * float(diameter_mm)
        deform = DEFORM_RANGE.get(stage, DEFORM_RANGE["advanced"])[1]
        return max(MASS_EFFECT_REACH * r, MAX_AXIS_FACTOR * (1.0 + deform) * r * 1.15) + 3 * EDGE_SIGMA_RANGE_MM[1] + 2.0

    def build(self, site: Site, scene: Scene, plan: EffectPlan, rng: np.random.Generator) -> Geometry:
        draws: dict[str, Any] = {}
        radii = draw_radii(site.diameter_mm, rng)
        deform = float(rng.uniform(*DEFORM_RANGE[site.stage]))
        shape = draw_shape(radii, rng, deform, float(radii.max() / site.spacing.min()))
        draws.update(shape.to_draws())
        allowed, exophytic = allowed_region(site, scene)
        room = self.roi_radius_mm(site.diameter_mm, site.stage) - 3 * EDGE_SIGMA_RANGE_MM[1]
        fit = _fit_size(site, shape, allowed, room)
        mask = fit["mask"]
        info = {"size_scale": fit["scale"], "clip_kept_fraction": fit["kept_fraction"],
                "exophytic_voxels": int(np.count_nonzero(mask & ~scene.organ)) if exophytic else 0}
        return Geometry(mask=mask, size_limited=fit["limited"], draws=draws, info=info)


def _fit_size(site: Site, shape: EllipsoidShape, allowed: np.ndarray, room_mm: float) -> dict[str, Any]:
    """Rasterise, clip, keep the part connected to the centre, and rescale until the volume
    matches the request (or the organ / ROI stops the growth). Works on each raster's box."""
    voxel_mm3 = float(np.prod(site.spacing))
    target = np.pi / 6.0 * site.diameter_mm**3 / voxel_mm3
    scale_max = max(room_mm / shape.extent_mm(1.0), 1.0)
    scale, kept = _coarse_fit(site, shape, allowed, target, scale_max)
    best = None
    for it in range(SIZE_ITERATIONS):
        box, raw = rasterise_box(shape, allowed.shape, site.center_vox, site.spacing, scale)
        clipped = raw & allowed[box.slices]
        mask = (clipped if np.array_equal(clipped, raw)
                else connected_to_centre(clipped, np.asarray(site.center_vox) - np.asarray(box.lo)))
        n = int(np.count_nonzero(mask))
        if kept is None:
            kept = n / max(int(np.count_nonzero(raw)), 1)
        if best is None or abs(np.log(max(n, 1) / target)) < abs(np.log(max(best[2], 1) / target)):
            best = (box, mask, n, scale)
        if n == 0 or abs(n / target - 1.0) <= VOLUME_TOLERANCE:
            break
        new = _rescaled(scale, n, target, scale_max)
        if abs(new - scale) < 1e-3:
            break
        scale = new
    box, sub, n, scale = best
    mask = np.zeros(allowed.shape, dtype=bool)
    mask[box.slices] = sub
    short = (n / target) ** (1 / 3) < LIMITED_DIAMETER_FRACTION
    return {"mask": mask, "scale": float(scale), "kept_fraction": float(kept),
            "limited": bool(short or kept < 1.0 - CLIPPED_LIMIT)}


def _rescaled(scale: float, n: float, target: float, scale_max: float) -> float:
    """The next scale: volume ~ scale^3, steps limited to x0.7-1.6, scale within 0.3-``scale_max``."""
    return float(np.clip(scale * np.clip((target / max(n, 1e-9)) ** (1 / 3), 0.7, 1.6), 0.3, scale_max))


def _coarse_fit(site: Site, shape: EllipsoidShape, allowed: np.ndarray, target: float,
                scale_max: float) -> tuple[float, float | None]:
    """(first scale, kept fraction) for a large shape: the size iterations run on the coarse
    cells that rasterisation starts from (cells whose centre is inside, allowed and connected to
    the centre's cell, times the cell volume), so that usually one full rasterisation follows
    instead of two or three; the kept fraction is then that of the cells (an estimate: within
    ~0.05 of the voxels'). A small shape starts at scale 1, and its kept fraction (None here) is
    measured on the first full rasterisation, as is a large one's when no cell is kept."""
    scale, kept = 1.0, None
    for it in range(SIZE_ITERATIONS + 2):
        cells = coarse_cells(shape, allowed.shape, site.center_vox, site.spacing, scale, FIT_CELLS_PER_RADIUS)
        if cells is None or cells.box.is_empty:
            return scale, kept
        at = np.ix_(*[np.clip(np.rint(p).astype(int), a, b - 1)
                      for p, a, b in zip(cells.positions, cells.box.lo, cells.box.hi)])
        clipped = cells.inside & allowed[at]
        if not np.array_equal(clipped, cells.inside):
            centre = (np.asarray(site.center_vox) - np.asarray(cells.box.lo)) / cells.factor
            clipped = connected_to_centre(clipped, np.floor(centre))
        n = float(np.count_nonzero(clipped)) * float(np.prod(cells.factor))
        if it == 0 and n > 0:                      # else the full rasterisation measures it
            kept = float(np.count_nonzero(clipped)) / max(int(np.count_nonzero(cells.inside)), 1)
        if n == 0 or abs(n / target - 1.0) <= VOLUME_TOLERANCE / 2:
            return scale, kept
        new = _rescaled(scale, n, target, scale_max)
        if abs(new - scale) < 1e-3:
            return scale, kept
        scale = new
    return scale, kept


def connected_to_centre(mask: np.ndarray, center_vox: np.ndarray) -> np.ndarray:
    """The connected part of ``mask`` holding the centre voxel (else its largest part)."""
    box = bounding_box(mask)
    if box is None:
        return mask
    sub = mask[box.slices]
    lab, n = ndimage.label(sub)
    if n <= 1:
        return mask
    v = np.rint(np.asarray(center_vox) - np.asarray(box.lo)).astype(int)
    inside = np.all(v >= 0) and np.all(v < sub.shape) and lab[tuple(v)] > 0
    keep = lab[tuple(v)] if inside else int(np.argmax(np.bincount(lab.ravel())[1:]) + 1)
    out = np.zeros_like(mask)
    out[box.slices] = lab == keep
    return out


__all__ = ["EllipsoidGeometry", "connected_to_centre"]
