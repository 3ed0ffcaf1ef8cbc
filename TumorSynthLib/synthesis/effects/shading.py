"""From an appearance to the ROI's final HU change: soft edge, vessels, capsule, necrosis.

Everything here is a *change* added to the scene, never a replacement of voxel values, so the
scan's own grain (noise) stays in and around the tumor. Targets (the tumor's level for vessels
crossing it, water for necrosis) are reached by changes computed against the scene's low
frequencies (a 1-voxel Gaussian), so the grain rides on top of them too.

* soft edge: the tumor weight is the mask blurred with sigma ~ U(1, 2) mm (unless the geometry
  brings its own weight);
* vessels inside the tumor are moved half-way to the tumor's level (compressed, not bright);
* capsule: a 1-2 mm rim slightly brighter than the tumor;
* necrosis: the necrotic region pulled towards 0-20 HU (never brightened);
* grain: where the tumor's voxels are smoother than the organ around it, fine noise brings them
  up to the organ's grain (a homogeneous spot of the kidney, fat replaced by tumor); where they
  are grainier (a learned change with voxel-scale detail), the change is blurred;
* the appearance's solid part (``Appearance.solid_hu``: the replaced fat, sinus, contour) applies
  in full inside the tumor's mask, the soft edge fades only the rest (no ghost of the old anatomy
  in the tumor's outer layers);
* the change applies where the organ or the tumor is (vessels outside the tumor never change).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ...anatomy.site import Site
from ...core.morphology import dilate, erode
from ...core.volume import Box, bounding_box
from ..contracts import (
    EDGE_SIGMA_RANGE_MM,
    Appearance,
    EffectPlan,
    Geometry,
    Scene,
    low_pass,
    soft_blend,
    tumor_box,
)
from ..intensity import GRAIN_MIN_VOXELS, Cube, grain_at, grain_cube, grain_values, organ_grain_hu
from ..texture import gaussian_mm
from .lesions import necrosis_region

VESSEL_DAMPING = 0.5
CAPSULE_THICKNESS_MM = (1.0, 2.0)
CAPSULE_LIFT = (0.3, 0.6)               # fraction of the tumor's drop
NECROSIS_LEVEL_HU = (0.0, 20.0)
NECROSIS_EDGE_MM = 1.0
#: Grain top-up: when the tumor's grain is below this fraction of the organ's, CT-like noise
#: makes up the difference.
GRAIN_TOP_UP_BELOW = 0.92
#: Grain cap: a change that makes the tumor grainier than this multiple of the organ is blurred.
GRAIN_CAP_ABOVE = 1.1
#: ... when the appearance's own pattern has at least this grain (fraction of the organ's).
GRAIN_PATTERN_SHARE = 0.25
#: Bounds of the correction of the top-up noise's amplitude to the grain it reaches in the tumor.
GRAIN_NOISE_SCALE = (0.6, 1.6)
GRAIN_NOISE_ITERATIONS = 2
#: Weight at and above which a voxel counts as tumor core in the measured drop.
CORE_WEIGHT = 0.9


@dataclass
class Shading:
    """The ROI's HU change and what the report says about it."""

    box: Box                         # where ``delta`` lives, ROI voxels
    delta: np.ndarray                # float32 HU change in ``box``
    weight: np.ndarray               # float32 soft tumor weight in ``box``
    necrosis: np.ndarray | None      # bool necrotic region of the ROI (None: no necrosis)
    mean_tumor_hu: float
    measured_drop_hu: float | None   # parenchyma median - mean HU of the core (weight >= 0.9, no necrosis)


def soft_weight(mask: np.ndarray, spacing: np.ndarray, sigma_mm: float) -> np.ndarray:
    """``mask`` blurred by a Gaussian of ``sigma_mm`` (float32 in [0, 1])."""
    return np.clip(gaussian_mm(mask, sigma_mm, spacing), 0.0, 1.0)


def shade(site: Site, scene: Scene, geometry: Geometry, appearance: Appearance, plan: EffectPlan,
          rng: np.random.Generator, draws: dict[str, Any]) -> Shading:
    """The final change of one tumor (see the module docstring); draws go into ``draws``."""
    mask = geometry.mask
    box = tumor_box(mask, site.spacing)
    if box is None:
        box = Box((0, 0, 0), (0, 0, 0))
    sl = box.slices
    m = mask[sl]
    if geometry.weight is None:
        sigma = float(rng.uniform(*EDGE_SIGMA_RANGE_MM))
        draws["edge_sigma_mm"] = sigma
        weight = soft_weight(m, site.spacing, sigma)
    else:
        weight = np.asarray(geometry.weight[sl], dtype=np.float32)
    raw = scene.image[sl]
    change = np.array(appearance.change_hu[sl], dtype=np.float32)
    solid = appearance.solid_in(box)
    cube = grain_cube(m) if np.count_nonzero(m) >= GRAIN_MIN_VOXELS else None
    if cube is not None:
        change = _cap_grain(site, scene, box, m, cube, change, solid, draws)
    level = float(np.mean(raw[m] + change[m])) if m.any() else 0.0
    vessels = scene.vessels[sl]
    inside_vessels = _vessels_in_tumor(vessels, m, weight)
    if inside_vessels.any():  # thin vessels: measured on the voxels themselves, not the low-pass
        vessel_hu = scene.image[sl][inside_vessels]
        change[inside_vessels] = np.float32(VESSEL_DAMPING) * (np.float32(level) - vessel_hu)
    solid[vessels & m] = 0.0      # vessels are compressed (or faded at the edge), never made parenchyma
    drop = abs(appearance.target_drop_hu or (float(np.median(raw[m])) - level if m.any() else 0.0))
    if plan.capsule and m.any():
        change += _capsule(m, site.spacing, drop, rng, draws)
    necrosis = _necrosis(site, geometry, plan, rng, draws)
    nec = None if necrosis is None else necrosis[sl]
    if nec is not None and nec.any():
        target = min(float(rng.uniform(*NECROSIS_LEVEL_HU)), level - 5.0)
        draws["necrosis_level_hu"] = target
        change += _necrosis_change(scene, box, m, nec, change, target, site.spacing)
    if cube is not None:
        change = _top_up_grain(site, scene, box, m, cube, weight, change, rng, draws)
    allowed = (scene.organ[sl] | m) & ~(scene.vessels[sl] & ~m)
    delta = np.where(allowed, soft_blend(weight, change, solid), 0.0).astype(np.float32)
    core = (weight >= CORE_WEIGHT) & (~nec if nec is not None else True)
    return Shading(
        box=box, delta=delta, weight=weight, necrosis=necrosis,
        mean_tumor_hu=float(np.mean(scene.image[sl][m] + delta[m])) if m.any() else float("nan"),
        measured_drop_hu=(float(site.organ_median_hu - np.mean(scene.image[sl][core] + delta[core]))
                          if np.any(core) else None),
    )


def _cap_grain(site: Site, scene: Scene, box: Box, mask: np.ndarray, cube: Cube, change: np.ndarray,
               solid: np.ndarray, draws: dict[str, Any]) -> np.ndarray:
    """``change`` (the appearance's) without voxel-scale detail of its own when it makes the
    tumor grainier than ``GRAIN_CAP_ABOVE`` x the organ's grain and that detail is more than
    ``GRAIN_PATTERN_SHARE`` of the organ's grain (a learned map, or a texture on a large drop):
    inside the tumor (less its two outer voxel layers) the part beyond ``solid`` (which holds
    re-synthesised grain) becomes its 1-voxel blur, so the tumor's grain is the scan's.
    Measured on the grain cube off the labelled vessels (the shading damps those itself)."""
    sub = cube[0]
    vessels = scene.vessels[box.slices]
    core = erode(mask[sub] & ~vessels[sub])
    if np.count_nonzero(core) < GRAIN_MIN_VOXELS:
        return change
    image = scene.image[box.slices][sub]
    target = organ_grain_hu(site, scene, box, mask)
    current = grain_at(image + change[sub], core)
    draws["grain_organ_hu"], draws["grain_appearance_hu"] = target, current
    if not (np.isfinite(target) and np.isfinite(current)) or current <= GRAIN_CAP_ABOVE * target:
        return change
    pattern = change - solid
    interior = erode(mask & ~vessels, iterations=2)      # the pattern's edge at the contour is not grain
    if not (np.count_nonzero(interior[sub]) >= GRAIN_MIN_VOXELS
            and grain_at(pattern[sub], interior[sub]) > GRAIN_PATTERN_SHARE * target):
        return change                                    # a smooth pattern: the grain is the scan's own
    change = solid + np.where(interior, low_pass(pattern), pattern)
    draws["grain_smoothed_hu"] = grain_at(image + change[sub], core)
    return change


def _top_up_grain(site: Site, scene: Scene, box: Box, mask: np.ndarray, cube: Cube, weight: np.ndarray,
                  change: np.ndarray, rng: np.random.Generator, draws: dict[str, Any]) -> np.ndarray:
    """``change`` plus zero-mean noise (``intensity.grain_values``) when the tumor, with
    ``change`` applied, is smoother than ``GRAIN_TOP_UP_BELOW`` x the organ's grain around it
    (``intensity.organ_grain_hu``; a homogeneous spot of a structured organ such as the kidney,
    fat replaced by tumor): a real tumor is at least as grainy as its organ. Grain = robust SD
    of the image minus its 1-voxel blur. The noise is divided by the soft weight (at least 0.5)
    so that, once the weight multiplies the change, the tumor's outer layers get the same grain
    as its centre."""
    target = organ_grain_hu(site, scene, box, mask)
    sub, core = cube
    shaded = scene.image[box.slices][sub] + change[sub]
    current = grain_at(shaded, core)
    draws["grain_organ_hu"], draws["grain_tumor_hu"] = target, current
    if not (np.isfinite(target) and np.isfinite(current)) or current >= GRAIN_TOP_UP_BELOW * target:
        return change
    added = float(np.sqrt(target**2 - current**2))
    noise = np.zeros_like(change)
    noise[mask] = grain_values(mask, added, rng)
    scale = _noise_scale(shaded, noise[sub], core, current, target)
    draws["grain_added_hu"] = added * scale
    noise[mask] *= np.float32(scale) / np.maximum(weight[mask], np.float32(0.5))
    return change + noise


def _noise_scale(shaded: np.ndarray, noise: np.ndarray, core: np.ndarray, current: float, target: float) -> float:
    """The factor on ``noise`` that brings the grain of ``shaded + noise`` over ``core`` (a
    ``grain_cube``) to ``target``: over a few hundred voxels, correlated noise and the robust
    SD are off by up to ~20 % from their nominal sum (sqrt(current^2 + added^2)), so the reached
    grain is measured and the factor corrected (``GRAIN_NOISE_ITERATIONS`` times, within
    ``GRAIN_NOISE_SCALE``)."""
    scale = 1.0
    for _ in range(GRAIN_NOISE_ITERATIONS):
        own = grain_at(shaded + np.float32(scale) * noise, core) ** 2 - current**2
        if not np.isfinite(own) or own <= 0:
            break
        scale = float(np.clip(scale * np.sqrt((target**2 - current**2) / own), *GRAIN_NOISE_SCALE))
    return scale


def _vessels_in_tumor(vessels: np.ndarray, mask: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Vessel voxels in the tumor or touching it where the soft weight is above 0.5 (the
    dilation runs on the candidates' box only)."""
    candidates = vessels & (weight > 0.5)
    box = bounding_box(candidates, 1)
    if box is None:
        return candidates
    out = np.zeros_like(candidates)
    out[box.slices] = candidates[box.slices] & dilate(mask[box.slices])
    return out


def _necrosis_change(scene: Scene, box: Box, mask: np.ndarray, necrosis: np.ndarray, change: np.ndarray,
                     target: float, spacing: np.ndarray) -> np.ndarray:
    """Change that pulls the necrotic region (1 mm soft edge) towards ``target`` HU, measured
    against the scene's low frequencies (so the grain stays), never brightening."""
    out = np.zeros(mask.shape, dtype=np.float32)
    sub = bounding_box(necrosis, np.ceil(3 * NECROSIS_EDGE_MM / spacing).astype(int) + 1)
    inner = Box(tuple(a + b for a, b in zip(box.lo, sub.lo)), tuple(a + b for a, b in zip(box.lo, sub.hi)))
    w_n = soft_weight(necrosis[sub.slices], spacing, NECROSIS_EDGE_MM)
    pull = np.minimum(np.float32(target) - (scene.low_frequencies(inner, inside_known=True) + change[sub.slices]), 0.0)
    out[sub.slices] = np.where(mask[sub.slices], w_n * pull, 0.0)
    return out


def _capsule(mask: np.ndarray, spacing: np.ndarray, drop: float, rng: np.random.Generator,
             draws: dict[str, Any]) -> np.ndarray:
    """The capsule's change: a rim of U(1, 2) mm inside the tumor raised by U(0.3, 0.6) x the
    tumor's drop, softened by a 0.5 mm blur and kept inside the tumor."""
    thickness = float(rng.uniform(*CAPSULE_THICKNESS_MM))
    lift = float(rng.uniform(*CAPSULE_LIFT)) * drop
    draws.update(capsule_thickness_mm=thickness, capsule_lift_hu=lift)
    out = np.zeros(mask.shape, dtype=np.float32)
    box = bounding_box(mask, 2)
    if box is None:
        return out
    m = mask[box.slices]
    rim = soft_weight(m & ~erode(m, _ball(thickness, spacing)), spacing, 0.5)
    out[box.slices] = np.where(m, np.float32(lift) * rim, 0.0)
    return out


def _necrosis(site: Site, geometry: Geometry, plan: EffectPlan, rng: np.random.Generator,
              draws: dict[str, Any]) -> np.ndarray | None:
    """The geometry's own necrosis, or the shared one when the plan asks for it."""
    if geometry.necrosis is not None:
        return geometry.necrosis if geometry.necrosis.any() else None
    if not plan.necrosis or not geometry.mask.any():
        return None
    return necrosis_region(geometry.mask, site.center_vox, site.spacing, rng, draws)


def _ball(radius_mm: float, spacing: np.ndarray) -> np.ndarray:
    """Structuring element: the voxels within ``radius_mm`` (at least the 6-neighbours)."""
    half = np.maximum(np.floor(radius_mm / np.asarray(spacing, dtype=float)), 0).astype(int)
    half = np.maximum(half, (half.max() == 0).astype(int))
    g = np.ogrid[tuple(slice(-h, h + 1) for h in half)]
    d2 = sum((gi * s) ** 2 for gi, s in zip(g, spacing))
    return d2 <= max(radius_mm, float(np.min(spacing))) ** 2 + 1e-6


__all__ = ["CORE_WEIGHT", "Shading", "shade", "soft_weight"]
