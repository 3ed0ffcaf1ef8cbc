"""Where a tumor may reach relative to its organ's contour (one rule for every geometry).

* Inside the organ, off vessels, lesions and earlier tumors: always.
* Exophytic tumors (kidney: advanced ones always, others with probability 0.5; any tumor with
  ``clip_to_organ=0``) also grow into the unlabelled soft tissue around the organ, up to
  ``EXOPHYTIC_REACH`` radii past its contour (everywhere with ``clip_to_organ=0``).
* An organ with a ``MAX_ORGAN_SHARE`` (kidney: 0.5) gives a tumor at most that share of its
  voxels, the ones nearest the tumor's centre (``organ_cap``): an advanced renal tumor bulges
  out of the cortex and leaves at least half of the kidney, as real ones do.
* Other tumors may follow a contour that the mass effect bulged, but not farther than the organ's
  ``CONTOUR_MARGIN_MM`` past the original contour: a thin pancreas holds its tumor (the report
  then says the size was limited by the organ) instead of letting it spill into the fat.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..anatomy.site import Site
from ..core.resample import dilate_mm
from ..core.volume import voxel_indices
from .contracts import Scene
from .effects.mass_effect import AIR_HU, BONE_HU

#: Exophytic growth reaches this many tumor radii past the organ's contour (per organ; the
#: kidney's tumors may be mostly exophytic, RENAL score "> 50 % exophytic").
EXOPHYTIC_REACH = {"default": 0.6, "kidney": 1.2}
#: Largest share of the organ's voxels one tumor may take (unlimited when absent).
MAX_ORGAN_SHARE = {"kidney": 0.5}
#: Non-exophytic tumors stay within this many mm of the original contour (default: the mass
#: effect's own margin, i.e. no extra limit).
CONTOUR_MARGIN_MM = {"pancreas": 2.0}


def exophytic_reach_mm(site: Site) -> float:
    """How far (mm) past the contour the tumor may grow (0 when not exophytic, inf with
    ``clip_to_organ=0``)."""
    if site.options.get("clip_to_organ") is False:
        return float("inf")
    factor = EXOPHYTIC_REACH.get(site.organ, EXOPHYTIC_REACH["default"])
    return factor * 0.5 * site.diameter_mm if site.allow_exophytic else 0.0


def organ_cap(site: Site, scene: Scene) -> np.ndarray | None:
    """bool ROI voxels of the organ the tumor may take: the ``MAX_ORGAN_SHARE`` of the whole
    organ's voxels nearest the centre (None: no cap for this organ, or ``clip_to_organ=0``)."""
    share = MAX_ORGAN_SHARE.get(site.organ)
    if share is None or site.options.get("clip_to_organ") is False:
        return None
    budget = int(share * site.organ_volume_ml * 1000.0 / float(np.prod(site.spacing)))
    idx = voxel_indices(scene.organ)
    if idx[0].size <= budget:
        return None
    d2 = sum(((i - c) * s) ** 2 for i, c, s in zip(idx, site.center_vox, site.spacing))
    cap = np.zeros(scene.organ.shape, dtype=bool)
    cap[idx] = d2 < np.partition(d2, budget)[budget]
    return cap


def capped_organ(site: Site, scene: Scene) -> np.ndarray:
    """The scene's organ less what ``organ_cap`` keeps from the tumor."""
    cap = organ_cap(site, scene)
    return scene.organ if cap is None else scene.organ & cap


def takeable_organ(site: Site, scene: Scene) -> np.ndarray:
    """The organ voxels a non-exophytic tumor may take: ``capped_organ`` within the
    ``contour_limit`` (every geometry uses this one rule)."""
    organ = capped_organ(site, scene)
    limit = contour_limit(site)
    return organ if limit is None else organ & limit


def contour_limit(site: Site) -> np.ndarray | None:
    """bool ROI voxels within the organ's contour margin (None: no limit beyond the scene's organ)."""
    margin = CONTOUR_MARGIN_MM.get(site.organ)
    if margin is None or site.allow_exophytic:
        return None
    return dilate_mm(site.organ_mask, margin, site.spacing)


def soft_tissue(scene: Scene) -> np.ndarray:
    """Unlabelled soft tissue (neither bone nor air) a tumor may push into."""
    return (np.asarray(scene.labels) == 0) & (scene.image > AIR_HU) & (scene.image < BONE_HU)


def allowed_region(site: Site, scene: Scene) -> tuple[np.ndarray, bool]:
    """(where tumor voxels may be, whether that reaches past the organ); see the module docstring."""
    free = ~scene.vessels & ~site.occupied
    reach = exophytic_reach_mm(site)
    if np.isinf(reach):
        return free, True
    if reach > 0:
        dist = ndimage.distance_transform_edt(~scene.organ, sampling=site.spacing)
        return (capped_organ(site, scene) | ((dist <= reach) & soft_tissue(scene))) & free, True
    return takeable_organ(site, scene) & free, False


__all__ = ["CONTOUR_MARGIN_MM", "EXOPHYTIC_REACH", "MAX_ORGAN_SHARE", "allowed_region", "capped_organ",
           "contour_limit", "exophytic_reach_mm", "organ_cap", "soft_tissue", "takeable_organ"]
