"""The ``procedural`` appearance: blurred salt-noise texture, darker than the parenchyma by a
drop relative to *this* scan (common.md "Intensity", "Texture"; after Hu et al., CVPR 2023).

``delta = f * max(median - 10, 25)`` HU (``intensity.darkening_delta``), per-voxel
``delta * tex / mean(tex in the tumor)`` so the mean drop is ``delta``; the texture's
heterogeneity grows with the stage; the tumor's low frequencies start from the parenchyma's
median wherever it lies (``intensity.solid_change``), the scan's grain stays. ``enhancement=hyper`` makes the tumor brighter instead.
"""
from __future__ import annotations

import numpy as np

from ...anatomy.site import Site
from ..contracts import Appearance, Geometry, Scene, tumor_box
from ..intensity import darkening_delta, solid_change
from ..registry import register_appearance
from ..texture import STAGE_HETEROGENEITY, make_texture

SIGMA_A_MM = (3.0, 6.0)
SIGMA_B_MM = (3.0, 5.0)


@register_appearance("procedural", method="handcrafted", pair="ellipsoid",
                     description="deformed ellipsoid with a blurred salt-noise texture and stage effects")
class ProceduralAppearance:
    """Texture and drop relative to the measured parenchyma (numpy / scipy only)."""

    name = "procedural"
    description = "blurred salt-noise texture, darker than the organ by a drop measured in this scan"
    options = ("enhancement",)

    def available(self) -> tuple[bool, str]:
        return True, ""

    def render(self, site: Site, scene: Scene, geometry: Geometry, rng: np.random.Generator) -> Appearance:
        draws: dict = {}
        enhancement = str(site.options.get("enhancement", "hypo"))
        delta, f = darkening_delta(site, rng, enhancement)
        draws["delta_f"] = f
        change = np.zeros(site.image_roi.shape, dtype=np.float32)
        box = tumor_box(geometry.mask, site.spacing)
        if box is None:
            return Appearance(change, target_drop_hu=delta, draws=draws)
        mask = geometry.mask[box.slices]
        tex = make_texture(box.shape, site.spacing, rng, sigma_a_mm=float(rng.uniform(*SIGMA_A_MM)),
                           sigma_b_mm=float(rng.uniform(*SIGMA_B_MM)),
                           heterogeneity=STAGE_HETEROGENEITY[site.stage], draws=draws)
        scale = np.float32(delta / max(float(tex[mask].mean()), 1e-6))
        solid = solid_change(site, scene, box, mask, rng, draws)
        change[box.slices] = solid - scale * tex
        return Appearance(change, target_drop_hu=delta, draws=draws,
                          info={"enhancement": enhancement, "delta_hu": delta}, solid_hu=solid, solid_box=box)


__all__ = ["ProceduralAppearance"]
