"""Training augmentation of the tumors' contrast (``RandTumorContrastd``, ``--tumor-contrast``).

The synthesis methods make tumors as common.md's relative rule says (e.g. venous kidney tumors
50-105 HU below the organ, plain-kidney ones 9-18 HU). A model trained on those only misses a
tumor outside that range that any reader would call (a 40 HU drop in an enhancing kidney); this
jitter rescales the synthetic tumors' level relative to their organ while keeping the scan's
grain, so the model sees fainter and darker tumors too. Real tumors are never touched.
"""
from __future__ import annotations

from typing import Any, Hashable, Mapping

import numpy as np
import torch
from monai.transforms import MapTransform, Randomizable
from scipy import ndimage

from ..core.volume import bounding_box
from ..transforms import META_KEY, synthesised_organs
from .tasks import task_organ_ids, task_organs, tumor_ids

#: Chance that one organ's synthetic tumors get their contrast rescaled (``tumor_contrast``).
TUMOR_CONTRAST_PROB = 0.5
#: The contrast jitter leaves a tumor's mean drop at least this far from the organ median (HU).
TUMOR_CONTRAST_MIN_HU = 15.0
#: ... and never darkens a tumor's mean below this (HU: water with noise, e.g. a renal cyst).
TUMOR_CONTRAST_FLOOR_HU = -10.0
#: Gaussian sigma (voxels of the training grid) splitting a tumor's level (scaled) from the
#: scan's grain (kept), so a fainter or brighter tumor keeps the noise of its scan.
TUMOR_CONTRAST_GRAIN_SIGMA = 1.0


class RandTumorContrastd(Randomizable, MapTransform):
    """Training augmentation: scale the contrast to the organ of each organ's synthetic tumors
    (the organs the sample's ``RandTumorSynthd`` records name; real tumors stay as they are) by a
    factor drawn log-uniformly in ``factors`` (as many fainter as brighter tumors for a range like
    0.35-3). The tumor's level (its HU low-passed by ``TUMOR_CONTRAST_GRAIN_SIGMA``) moves to
    organ median + f (level - organ median), its grain stays the scan's; the organ median over
    its tissue voxels. A tumor's mean difference to the organ never shrinks below
    ``TUMOR_CONTRAST_MIN_HU`` and its mean never falls below ``TUMOR_CONTRAST_FLOOR_HU``. Teaches
    the model tumors fainter or darker than the synthesis methods make them (e.g. a 40 HU drop
    in an enhancing kidney, a cyst-dark one in a plain kidney), without changing the synthesis
    itself. Writes into the sample's own image tensor."""

    def __init__(self, organ: str, convention: str, factors: tuple[float, float], prob: float = 0.5) -> None:
        MapTransform.__init__(self, ("image", "label"))
        self.organs, self.convention = task_organs(organ), convention
        self.factors, self.prob = (float(factors[0]), float(factors[1])), float(prob)

    def randomize(self, data: Any = None) -> list[float | None]:
        lo, hi = np.log(self.factors[0]), np.log(self.factors[1])
        return [float(np.exp(self.R.uniform(lo, hi))) if self.R.random_sample() < self.prob else None
                for _ in self.organs]

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
            tissue = values[np.isin(labels, task_organ_ids(name, self.convention))]
            if tumor.any() and tissue.size:
                rescale_tumor_contrast(values, tumor, float(np.median(tissue)), factor)
        return d


def rescale_tumor_contrast(values: np.ndarray, tumor: np.ndarray, reference_hu: float, factor: float) -> None:
    """In place on ``values`` (HU): the tumor's level moves to ``reference_hu`` + f (level -
    ``reference_hu``), its grain kept, f limited by ``TUMOR_CONTRAST_MIN_HU`` and
    ``TUMOR_CONTRAST_FLOOR_HU`` (see ``RandTumorContrastd``); a brighter-than-organ tumor
    (``enhancement=hyper``, which training does not draw) has no ceiling."""
    box = bounding_box(tumor, 3).slices
    region, inside = values[box], tumor[box]
    level = _level_inside(region, inside)
    mean_difference = float(region[inside].mean()) - reference_hu
    level_difference = float(level[inside].mean()) - reference_hu
    if level_difference == 0.0:
        return

    def factor_for(difference: float) -> float:   # the factor that leaves this mean difference
        return 1.0 + (difference - mean_difference) / level_difference

    sign = 1.0 if level_difference > 0 else -1.0   # never fainter than the minimum, unless it was
    factor = max(factor, min(1.0, factor_for(sign * TUMOR_CONTRAST_MIN_HU)))
    if sign < 0:                                   # never darker than the floor, unless it was
        factor = min(factor, max(1.0, factor_for(TUMOR_CONTRAST_FLOOR_HU - reference_hu)))
    shift = (factor - 1.0) * (level[inside] - reference_hu)
    region[inside] = region[inside] + shift


def _level_inside(region: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """The HU of ``region`` low-passed by ``TUMOR_CONTRAST_GRAIN_SIGMA`` over the ``inside``
    voxels only (normalised convolution: a tumor's edge is not mixed with the organ's HU)."""
    weight = inside.astype(np.float32)
    total = ndimage.gaussian_filter(region.astype(np.float32) * weight, TUMOR_CONTRAST_GRAIN_SIGMA, mode="constant")
    share = ndimage.gaussian_filter(weight, TUMOR_CONTRAST_GRAIN_SIGMA, mode="constant")
    return total / np.maximum(share, 1e-6)


__all__ = ["TUMOR_CONTRAST_FLOOR_HU", "TUMOR_CONTRAST_GRAIN_SIGMA", "TUMOR_CONTRAST_MIN_HU", "TUMOR_CONTRAST_PROB",
           "RandTumorContrastd", "rescale_tumor_contrast"]
