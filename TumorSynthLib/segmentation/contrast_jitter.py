"""Training augmentation of the tumors' contrast (``RandTumorContrastd``, ``--tumor-contrast``).

The synthesis methods make tumors as common.md's relative rule says (e.g. venous kidney tumors
50-105 HU below the organ); this jitter rescales the synthetic tumors' contrast to their organ,
so the model also sees tumors fainter or stronger than the methods make them. Only the tumor's
level (its locally smoothed HU) is rescaled; its grain stays as the synthesis left it, so a faint
tumor is not also an unnaturally smooth one (the previous jitter scaled the grain with the level,
and the model it trained missed faint but grainy kidney tumors). Real tumors are never touched.
"""
from __future__ import annotations

from typing import Any, Hashable, Mapping

import numpy as np
import torch
from monai.transforms import MapTransform, Randomizable

from ..core.gaussian import gaussian_blur
from ..core.volume import bounding_box
from ..transforms import META_KEY, synthesised_organs
from .tasks import task_organ_ids, task_organs, tumor_ids

#: Chance that one organ's synthetic tumors get their contrast rescaled (``tumor_contrast``).
TUMOR_CONTRAST_PROB = 0.5
#: The contrast jitter leaves a tumor's mean drop at least this far from the organ median (HU).
TUMOR_CONTRAST_MIN_HU = 15.0
#: Gaussian sigma (voxels of the model grid) separating a tumor's level from its grain.
LEVEL_SIGMA_VOX = 1.5


class RandTumorContrastd(Randomizable, MapTransform):
    """Training augmentation: scale the contrast to the organ of each organ's synthetic tumors
    (the organs the sample's ``RandTumorSynthd`` records name; real tumors stay as they are) by a
    factor drawn uniformly in ``factors`` (HU inside the tumor -> organ median + f (HU - organ
    median, applied to the tumor's level: its HU smoothed inside the tumor by a Gaussian of
    ``LEVEL_SIGMA_VOX`` voxels; the grain, HU minus level, is kept; the organ median over its
    tissue voxels; a tumor's mean difference to the organ never shrinks below
    ``TUMOR_CONTRAST_MIN_HU``). Teaches the model tumors fainter or
    brighter than the synthesis methods make them (e.g. a 40 HU drop in an enhancing kidney),
    without changing the synthesis itself. Writes into the sample's own image tensor."""

    def __init__(self, organ: str, convention: str, factors: tuple[float, float], prob: float = 0.5) -> None:
        MapTransform.__init__(self, ("image", "label"))
        self.organs, self.convention = task_organs(organ), convention
        self.factors, self.prob = (float(factors[0]), float(factors[1])), float(prob)

    def randomize(self, data: Any = None) -> list[float | None]:
        return [float(self.R.uniform(*self.factors)) if self.R.random_sample() < self.prob else None
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
            if not tumor.any():
                continue
            tissue = values[np.isin(labels, task_organ_ids(name, self.convention))]
            if tissue.size == 0:
                continue
            reference = float(np.median(tissue))
            drop = abs(reference - float(values[tumor].mean()))
            if drop > 0:   # never below TUMOR_CONTRAST_MIN_HU, unless the method made it fainter
                factor = max(factor, min(1.0, TUMOR_CONTRAST_MIN_HU / drop))
            rescale_tumor_level(values, tumor, reference, factor)
        return d


def rescale_tumor_level(values: np.ndarray, tumor: np.ndarray, reference: float, factor: float) -> None:
    """In place: inside ``tumor``, HU -> reference + factor (level - reference) + (HU - level),
    where the level is the normalised convolution of the tumor's HU (Gaussian of
    ``LEVEL_SIGMA_VOX`` voxels, tumor voxels only), worked on the tumor's box."""
    box = bounding_box(tumor, margin_vox=int(np.ceil(3 * LEVEL_SIGMA_VOX)))
    if box is None:
        return
    inside = tumor[box.slices]
    hu = values[box.slices]
    weight = gaussian_blur(inside.astype(np.float32), LEVEL_SIGMA_VOX, mode="constant")
    summed = gaussian_blur(np.where(inside, hu, 0).astype(np.float32), LEVEL_SIGMA_VOX, mode="constant")
    level = summed[inside] / np.maximum(weight[inside], 1e-6)
    hu[inside] += (factor - 1.0) * (level - reference)


__all__ = ["LEVEL_SIGMA_VOX", "TUMOR_CONTRAST_MIN_HU", "TUMOR_CONTRAST_PROB", "RandTumorContrastd",
           "rescale_tumor_level"]
