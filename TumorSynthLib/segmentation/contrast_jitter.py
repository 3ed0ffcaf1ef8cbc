"""Training augmentation of the tumors' contrast (``RandTumorContrastd``, ``--tumor-contrast``).

The synthesis methods make tumors as common.md's relative rule says (e.g. venous kidney tumors
50-105 HU below the organ); this jitter rescales the synthetic tumors' contrast to their organ,
so the model also sees tumors fainter or stronger than the methods make them. The change follows
the tumor's level (its locally smoothed HU inside, the voxel itself on its outer layer), so the
grain inside stays as the synthesis left it and a faint tumor is not also an unnaturally smooth
one (the previous jitter scaled the grain with the level). Real tumors are never touched.
"""
from __future__ import annotations

from typing import Any, Hashable, Mapping

import numpy as np
import torch
from scipy import ndimage
from monai.transforms import MapTransform, Randomizable

from ..core.errors import InputError
from ..core.gaussian import gaussian_blur
from ..core.volume import bounding_box
from ..transforms import META_KEY, synthesised_organs
from .config import CONTRAST_DRAWS
from .tasks import task_organ_ids, task_organs, tumor_ids

#: Chance that one organ's synthetic tumors get their contrast rescaled (``tumor_contrast``).
TUMOR_CONTRAST_PROB = 0.5
#: The contrast jitter leaves a tumor's mean drop at least this far from the organ median (HU).
TUMOR_CONTRAST_MIN_HU = 15.0
#: Gaussian sigma (voxels of the model grid) separating a tumor's level from its grain.
LEVEL_SIGMA_VOX = 1.5
#: Bounds of (the tumor's mean difference) / (its level's), the gain that turns the factor on the
#: mean difference into one on the level (near 1; the bounds guard a level that barely differs).
LEVEL_GAIN_RANGE = (0.5, 3.0)


class RandTumorContrastd(Randomizable, MapTransform):
    """Training augmentation: scale the contrast to the organ of each organ's synthetic tumors
    (the organs the sample's ``RandTumorSynthd`` records name; real tumors stay as they are) by a
    factor f drawn in ``factors`` (see ``draw``): the tumor's mean difference to the organ median
    (over the organ's tissue voxels) becomes f times what it was, never less than
    ``TUMOR_CONTRAST_MIN_HU`` unless the method made it fainter. The change follows the tumor's
    level (``rescale_tumor_level``): the grain inside keeps its strength, the edge scales too.
    ``draw`` (``CONTRAST_DRAWS``): f log-uniform (default; with 0.25-1.3 about half of the
    jittered venous kidney tumors end 40 HU or less below the organ) or uniform (the rule of runs
    before 2026-12-05, kept so that they resume as they began).
    Teaches the model tumors fainter or brighter than the synthesis methods make them (e.g. a
    40 HU drop in an enhancing kidney) without changing the synthesis itself. Writes into the
    sample's own image tensor (float). (Until 2026-12-05 the rule scaled every tumor voxel's
    difference, grain included: faint training tumors were also smooth ones.)"""

    def __init__(self, organ: str, convention: str, factors: tuple[float, float], prob: float = 0.5,
                 draw: str = "log-uniform") -> None:
        MapTransform.__init__(self, ("image", "label"))
        if not 0.0 < float(factors[0]) <= float(factors[1]):
            raise InputError(f"the contrast factors must be 0 < LO <= HI, got {tuple(factors)}")
        if draw not in CONTRAST_DRAWS:
            raise InputError(f"the contrast draw must be one of {', '.join(CONTRAST_DRAWS)}, got {draw!r}")
        self.organs, self.convention = task_organs(organ), convention
        self.factors, self.prob, self.draw = (float(factors[0]), float(factors[1])), float(prob), draw

    def randomize(self, data: Any = None) -> list[float | None]:
        return [self._factor() if self.R.random_sample() < self.prob else None for _ in self.organs]

    def _factor(self) -> float:
        lo, hi = self.factors
        if self.draw == "uniform":
            return float(self.R.uniform(lo, hi))
        return float(np.exp(self.R.uniform(np.log(lo), np.log(hi))))

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        draws = self.randomize()
        synthetic = synthesised_organs(d.get(META_KEY))
        if not synthetic & set(self.organs):
            return d
        image, labels = d["image"], np.rint(d["label"].numpy()[0]).astype(np.int32)
        values = image.numpy()[0] if isinstance(image, torch.Tensor) else np.asarray(image)[0]
        for name, factor in zip(self.organs, draws):
            if factor is None or name not in synthetic:
                continue
            tumor = np.isin(labels, tumor_ids(name, self.convention))
            organ = np.isin(labels, task_organ_ids(name, self.convention))
            if tumor.any() and organ.any():
                rescale_tumor_level(values, tumor, float(np.median(values[organ])), factor)
        return d


def rescale_tumor_level(values: np.ndarray, tumor: np.ndarray, reference: float, factor: float) -> None:
    """In place on the float array ``values``: the tumor's mean difference to ``reference`` (HU)
    scaled by ``factor`` (raised so that it stays >= ``TUMOR_CONTRAST_MIN_HU``, or >= 1 when the
    difference is already smaller). Each tumor voxel moves by g (level - reference), g chosen so
    that the mean difference scales by exactly ``factor``. Inside the tumor the level is the
    normalised convolution of the tumor's HU (Gaussian of ``LEVEL_SIGMA_VOX`` voxels, tumor
    voxels only, on the tumor's box), so the grain (HU minus level) stays as the synthesis left
    it; on the tumor's outer voxel layer the level is the voxel's own HU, so the soft edge's
    ramp (or a sharp edge) scales with the tumor instead of being kept as grain: no pale rim."""
    box = bounding_box(tumor, margin_vox=1)      # the level reads tumor voxels only
    if box is None:
        return
    inside, hu = tumor[box.slices], values[box.slices]
    weight = gaussian_blur(inside.astype(np.float32), LEVEL_SIGMA_VOX, mode="constant")
    summed = gaussian_blur(np.where(inside, hu, 0).astype(np.float32), LEVEL_SIGMA_VOX, mode="constant")
    smooth = summed / np.maximum(weight, 1e-6)
    core = ndimage.binary_erosion(inside)
    level = np.where(core, smooth, hu)[inside]
    difference = float(hu[inside].mean()) - reference
    level_difference = float(level.mean()) - reference
    size = abs(difference)
    if size == 0.0 or difference * level_difference <= 0.0:
        return
    factor = max(factor, 1.0) if size <= TUMOR_CONTRAST_MIN_HU else max(factor, TUMOR_CONTRAST_MIN_HU / size)
    gain = float(np.clip(difference / level_difference, *LEVEL_GAIN_RANGE))
    hu[inside] += ((factor - 1.0) * gain * (level - reference)).astype(hu.dtype)


__all__ = ["LEVEL_GAIN_RANGE", "LEVEL_SIGMA_VOX", "TUMOR_CONTRAST_MIN_HU", "TUMOR_CONTRAST_PROB",
           "RandTumorContrastd", "rescale_tumor_level"]
