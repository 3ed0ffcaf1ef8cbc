"""The ``smooth`` geometry: the round, well-defined shape of benign lesions (cyst, hemangioma).

A nearly spherical ellipsoid (radii d/2 x U(0.85, 1.15), geometric mean d/2), randomly rotated,
with a faint surface deformation (2-5 % of the radius), clipped to the organ and grown to the
requested size exactly like the ``ellipsoid`` geometry (``ellipsoid._fit_size``). Its wall is
sharp: the soft weight is the mask blurred by a fraction of a millimetre (cyst 0.5-0.8 mm,
hemangioma 0.8-1.1 mm) instead of the tumors' 1-2 mm.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ...anatomy.site import Site
from ..contour import allowed_region
from ..contracts import EDGE_SIGMA_RANGE_MM, EffectPlan, Geometry, Scene
from ..registry import register_geometry
from ..shapes import draw_shape
from ..texture import gaussian_mm
from .ellipsoid import MASS_EFFECT_REACH, _fit_size

AXIS_SPREAD = 0.15
DEFORM_RANGE = (0.02, 0.05)
#: Wall blur (Gaussian sigma, mm) per lesion type; others get the hemangioma's.
EDGE_SIGMA_MM = {"cyst": (0.5, 0.8), "hemangioma": (0.8, 1.1)}


@register_geometry("smooth", description="round, sharply walled shape of benign lesions")
class SmoothGeometry:
    """Near-spherical ellipsoid with a sharp wall (numpy / scipy only)."""

    name = "smooth"
    description = "nearly spherical, faintly deformed ellipsoid with a sharp wall (benign lesions)"
    options = ()

    def available(self) -> tuple[bool, str]:
        return True, ""

    def roi_radius_mm(self, diameter_mm: float, stage: str) -> float:
        r = 0.5 * float(diameter_mm)
        longest = (1.0 + AXIS_SPREAD) ** 1.5 * (1.0 + DEFORM_RANGE[1]) * r * 1.15
        return max(MASS_EFFECT_REACH * r, longest) + 3 * EDGE_SIGMA_RANGE_MM[1] + 2.0

    def build(self, site: Site, scene: Scene, plan: EffectPlan, rng: np.random.Generator) -> Geometry:
        draws: dict[str, Any] = {}
        r = 0.5 * site.diameter_mm
        radii = r * rng.uniform(1.0 - AXIS_SPREAD, 1.0 + AXIS_SPREAD, size=3)
        radii *= r / float(np.prod(radii) ** (1.0 / 3.0))
        deform = float(rng.uniform(*DEFORM_RANGE))
        shape = draw_shape(radii, rng, deform, float(radii.max() / site.spacing.min()))
        draws.update(shape.to_draws())
        lesion = str(site.options.get("lesion", "hemangioma"))
        sigma = float(rng.uniform(*EDGE_SIGMA_MM.get(lesion, EDGE_SIGMA_MM["hemangioma"])))
        draws["edge_sigma_mm"] = sigma
        allowed, exophytic = allowed_region(site, scene)
        room = self.roi_radius_mm(site.diameter_mm, site.stage) - 3 * EDGE_SIGMA_RANGE_MM[1]
        fit = _fit_size(site, shape, allowed, room)
        mask = fit["mask"]
        weight = np.clip(gaussian_mm(mask, sigma, site.spacing), 0.0, 1.0).astype(np.float32)
        info = {"size_scale": fit["scale"], "clip_kept_fraction": fit["kept_fraction"], "edge_sigma_mm": sigma,
                "exophytic_voxels": int(np.count_nonzero(mask & ~scene.organ)) if exophytic else 0}
        return Geometry(mask=mask, weight=weight, size_limited=fit["limited"], draws=draws, info=info)


__all__ = ["SmoothGeometry"]
