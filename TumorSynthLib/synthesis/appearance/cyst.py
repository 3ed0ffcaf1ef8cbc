"""The ``cyst`` appearance: a simple cyst at water density, the same in every phase.

The lesion's low frequencies are brought to a level drawn from U(2, 15) HU (water with a little
protein: simple cysts measure 0-20 HU) wherever it lies: ``intensity.solid_change`` first makes
the region uniform parenchyma (fat septa, the renal sinus and partial volume replaced, the
scan's grain kept), then the offset to the cyst's level is added. Nothing depends on the scan's
contrast phase: a cyst does not enhance. The wall's sharpness comes from the geometry (``smooth``).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ...anatomy.site import Site
from ...core.volume import Box
from ..contracts import Appearance, Geometry, Scene, tumor_box
from ..intensity import solid_change
from ..registry import register_appearance

#: Level of a simple cyst (HU), drawn per lesion.
CYST_LEVEL_HU = (2.0, 15.0)


def change_to_level(site: Site, scene: Scene, box: Box, mask: np.ndarray, level_hu: np.ndarray | float,
                    rng: np.random.Generator, draws: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """(change, its solid part; float32, ``box`` shape): the change brings the low frequencies
    of the lesion voxels ``mask`` to ``level_hu`` (a number or a smooth array of ``box`` shape),
    keeping the scan's grain; zero outside ``mask``. The solid part is
    ``intensity.solid_change`` (``Appearance.solid_hu``), without its grain restoration: a
    sharp-walled lesion far from the organ's level (a cyst, a hemangioma) already measures
    grainier than its organ, the 1-voxel blur of the grain measure reaching across its wall
    (with the restoration, cysts in the phantom liver measured 1.12-1.29x the organ's grain)."""
    base = solid_change(site, scene, box, mask, rng, draws, restore_grain=False)
    offset = np.asarray(level_hu, dtype=np.float32) - np.float32(site.organ_median_hu)
    return np.where(mask, base + offset, 0.0).astype(np.float32), base


@register_appearance("cyst", description="simple cyst: water density, no enhancement")
class CystAppearance:
    """Water-density fill, phase independent (numpy / scipy only)."""

    name = "cyst"
    description = "simple cyst: homogeneous water density (0-20 HU), no enhancement in any phase"
    options = ()

    def available(self) -> tuple[bool, str]:
        return True, ""

    def render(self, site: Site, scene: Scene, geometry: Geometry, rng: np.random.Generator) -> Appearance:
        draws: dict[str, Any] = {}
        level = float(rng.uniform(*CYST_LEVEL_HU))
        draws["cyst_level_hu"] = level
        change = np.zeros(site.image_roi.shape, dtype=np.float32)
        drop = float(site.organ_median_hu) - level
        box = tumor_box(geometry.mask, site.spacing)
        solid = None
        if box is not None:
            change[box.slices], solid = change_to_level(site, scene, box, geometry.mask[box.slices], level, rng, draws)
        return Appearance(change, target_drop_hu=drop, draws=draws,
                          info={"level_hu": level, "enhancement": "none"}, solid_hu=solid, solid_box=box)


__all__ = ["CYST_LEVEL_HU", "CystAppearance", "change_to_level"]
