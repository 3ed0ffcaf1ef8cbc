"""The ``hemangioma`` appearance: a blood-filled lesion whose look depends on the contrast phase.

Hepatic (cavernous) hemangioma on CT: hypodense to the liver without contrast (the level of
blood, 35-45 HU); in the arterial phase peripheral, nodular, discontinuous enhancement as bright
as the blood pool; in the portal-venous and delayed phases the nodules fill in towards the
centre (centripetal filling), the filled part staying isodense to the vessels.

Model (all draws are made whatever the phase, so one seed gives the same lesion in every
phase): 4-12 nodules (one per 4 mm of diameter) (more for larger lesions) centred in the outer quarter of the lesion's
depth, of radius 25-35 % of the lesion's largest depth (at least 1.5 mm). A voxel is filled
when its distance to the nearest nodule centre is at most the nodule radius plus the phase's
share of the farthest such distance: arterial 0 (only the nodules), venous U(0.35, 0.6),
delayed U(0.85, 1.0); peripheral seeds make that front move inwards. Filled voxels take the
blood-pool level of the phase, the rest the unenhanced level; the pattern is blurred by 3 mm
so the change stays smooth, and the scan's grain stays (``cyst.change_to_level``).

The phase is the option ``phase`` or, with ``auto``, estimated from the organ: a liver
parenchyma median below ``NONCONTRAST_BELOW_HU`` is a non-contrast scan, anything else venous
(an arterial phase cannot be told from the liver alone: give ``phase=arterial``). The blood
level is the median of the vessels around the lesion when the phase was estimated as venous
and enough vessel voxels are there, else the phase's typical level.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage

from ...anatomy.site import Site
from ..contracts import Appearance, Geometry, Scene, tumor_box
from ..registry import register_appearance
from ..texture import gaussian_mm
from .cyst import change_to_level

PHASES = ("noncontrast", "arterial", "venous", "delayed")
#: Typical blood-pool level (HU) per phase, +-10 % drawn per lesion.
BLOOD_HU = {"noncontrast": 40.0, "arterial": 260.0, "venous": 170.0, "delayed": 120.0}
UNENHANCED_HU = (35.0, 45.0)
#: Filled share of the farthest nodule distance per phase (after the nodules themselves).
FILL_RANGE = {"noncontrast": (0.0, 0.0), "arterial": (0.0, 0.0), "venous": (0.35, 0.6), "delayed": (0.85, 1.0)}
NODULE_DEPTH = (0.05, 0.25)           # nodule centres: this share of the largest depth
NODULE_RADIUS = (0.25, 0.35)          # nodule radius: share of the largest depth
NODULE_MIN_MM = 1.5
#: Blur (mm) of the filled pattern: at 2 mm its edges read as grain (grain ratio median 1.22 over
#: six venous-phantom lesions, up to 1.34); at 3 mm 1.05 (0.96-1.08).
PATTERN_BLUR_MM = 3.0
NONCONTRAST_BELOW_HU = 75.0
MIN_VESSEL_VOXELS = 30


def estimate_phase(site: Site) -> tuple[str, str]:
    """(phase, how it was found) of the scan around ``site`` (see the module docstring)."""
    median = float(site.organ_median_hu)
    if median < NONCONTRAST_BELOW_HU:
        return "noncontrast", f"estimated: {site.organ} median {median:.0f} HU < {NONCONTRAST_BELOW_HU:g}"
    return "venous", f"estimated: {site.organ} median {median:.0f} HU >= {NONCONTRAST_BELOW_HU:g}"


def blood_level(site: Site, phase: str, estimated: bool, jitter: float) -> tuple[float, str]:
    """(blood-pool HU, source) for ``phase``: measured in the ROI's vessels for an estimated
    venous phase with enough of them, else the phase's typical level times ``jitter``."""
    if estimated and phase == "venous":
        vessels = site.image_roi[site.vessel_mask & ~site.occupied]
        if vessels.size >= MIN_VESSEL_VOXELS:
            return float(np.median(vessels)), "measured in the vessels around the lesion"
    return BLOOD_HU[phase] * jitter, "typical level of the phase"


def nodule_seeds(mask: np.ndarray, depth: np.ndarray, diameter_mm: float, rng: np.random.Generator,
                 draws: dict[str, Any]) -> tuple[np.ndarray, float]:
    """(bool array of nodule centres, nodule radius in mm) inside ``mask``."""
    deepest = float(depth.max())
    n = int(np.clip(round(diameter_mm / 4.0), 4, 12))
    lo, hi = NODULE_DEPTH
    shell = mask & (depth >= lo * deepest) & (depth <= max(hi * deepest, lo * deepest + 1e-3))
    candidates = np.flatnonzero(shell if shell.any() else mask)
    u = rng.random(n)                                   # drawn in every phase: same lesion
    radius = max(float(rng.uniform(*NODULE_RADIUS)) * deepest, NODULE_MIN_MM)
    picks = candidates[np.minimum((u * candidates.size).astype(int), candidates.size - 1)]
    seeds = np.zeros(mask.shape, dtype=bool)
    seeds.flat[picks] = True
    draws.update(nodules=n, nodule_radius_mm=radius)
    return seeds, radius


@register_appearance("hemangioma", description="hemangioma: phase-dependent blood-pool enhancement")
class HemangiomaAppearance:
    """Peripheral nodular enhancement with centripetal filling (numpy / scipy only)."""

    name = "hemangioma"
    description = ("hemangioma: hypodense without contrast, peripheral nodular enhancement in the arterial "
                   "phase, centripetal filling in venous / delayed, isodense to the vessels")
    options = ("phase",)

    def available(self) -> tuple[bool, str]:
        return True, ""

    def render(self, site: Site, scene: Scene, geometry: Geometry, rng: np.random.Generator) -> Appearance:
        draws: dict[str, Any] = {}
        unenhanced = float(rng.uniform(*UNENHANCED_HU))
        jitter = float(rng.uniform(0.9, 1.1))
        fills = {p: float(rng.uniform(*FILL_RANGE[p])) for p in PHASES}
        asked = str(site.options.get("phase", "auto"))
        phase, phase_source = estimate_phase(site) if asked == "auto" else (asked, "option")
        if asked != "auto" and estimate_phase(site)[0] == "noncontrast" and phase != "noncontrast":
            site.warnings.append(f"phase={phase} asked for a scan that looks non-contrast ({phase_source}): "
                                 "the lesion enhances in a scan whose vessels do not")
        blood, blood_source = blood_level(site, phase, asked == "auto", jitter)
        draws.update(unenhanced_hu=unenhanced, blood_jitter=jitter, fill=fills[phase])
        change = np.zeros(site.image_roi.shape, dtype=np.float32)
        box = tumor_box(geometry.mask, site.spacing)
        info = {"phase": phase, "phase_source": phase_source, "blood_hu": blood, "blood_source": blood_source,
                "unenhanced_hu": unenhanced, "fill": fills[phase]}
        if box is None:
            return Appearance(change, target_drop_hu=None, draws=draws, info=info)
        mask = geometry.mask[box.slices]
        level = self.level_map(mask, site, phase, fills[phase], unenhanced, blood, rng, draws)
        change[box.slices], solid = change_to_level(site, scene, box, mask, level, rng, draws)
        drop = float(site.organ_median_hu) - float(level[mask].mean())
        info["filled_share"] = draws.get("filled_share")
        return Appearance(change, target_drop_hu=drop, draws=draws, info=info, solid_hu=solid, solid_box=box)

    @staticmethod
    def level_map(mask: np.ndarray, site: Site, phase: str, fill: float, unenhanced: float, blood: float,
                  rng: np.random.Generator, draws: dict[str, Any]) -> np.ndarray:
        """Smooth HU level of the lesion (box shape): blood where filled, unenhanced elsewhere."""
        depth = ndimage.distance_transform_edt(np.pad(mask, 1), sampling=site.spacing)[1:-1, 1:-1, 1:-1]
        seeds, radius = nodule_seeds(mask, depth, site.diameter_mm, rng, draws)
        if phase == "noncontrast":
            draws["filled_share"] = 0.0
            return np.full(mask.shape, np.float32(blood), dtype=np.float32)
        to_seed = ndimage.distance_transform_edt(~seeds, sampling=site.spacing)
        farthest = float(to_seed[mask].max()) if mask.any() else 0.0
        filled = mask & (to_seed <= radius + fill * max(farthest - radius, 0.0))
        draws["filled_share"] = float(filled.sum() / max(int(mask.sum()), 1))
        share = np.clip(gaussian_mm(filled, PATTERN_BLUR_MM, site.spacing), 0.0, 1.0)
        return (np.float32(unenhanced) + np.float32(blood - unenhanced) * share).astype(np.float32)


__all__ = ["BLOOD_HU", "PHASES", "HemangiomaAppearance", "estimate_phase"]
