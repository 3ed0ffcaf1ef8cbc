"""Segmentation-based quality filter (FreeTumor's key idea, ``specs/methods.md``).

A synthetic tumor is kept when a trained segmentation model finds enough of it::

    P = |synthetic tumor AND predicted tumor| / |synthetic tumor|,   keep when P >= threshold

The model runs only on a crop around the tumor (its bounding box plus ``margin_mm``), resampled
to the model's spacing and windowed as the model was trained, so scoring one tumor costs about
one model patch whatever the size of the scan. When the crop is smaller than the model's patch
it is padded by mirroring the crop (not with a constant, which the model never saw), and the
padding is dropped again before the prediction is mapped back to the scan's grid. The tumor
class is the raw arg-max of the model (no size filter or organ constraint), as in FreeTumor.

``QualityFilter`` follows the engine's one quality contract (``synthesis.api.QualityCheck``):
``qf(image_roi_hu, tumor_mask_roi, affine_roi, organ) -> P``. ``synthesize(..., quality=qf,
quality_threshold=qf.threshold)`` and ``RandTumorSynthd(..., quality=qf)`` call it that way;
Slicer and scripts score a tumor in a whole image with ``qf.score_volume(image, tumor_mask)``.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from ..anatomy.organs import canonical_organ
from ..core.errors import InputError, ModelError
from ..core.model_registry import resolve_model
from ..core.volume import Box, Volume, bounding_box

#: Context (mm) kept around the tumor's bounding box on each side.
DEFAULT_MARGIN_MM = 24.0


def _shifted_affine(affine: np.ndarray, lo: tuple[int, int, int]) -> np.ndarray:
    """Affine of a crop starting at voxel ``lo`` of a grid with ``affine``."""
    out = np.array(affine, dtype=float, copy=True)
    out[:3, 3] = affine[:3, :3] @ np.asarray(lo, dtype=float) + affine[:3, 3]
    return out


def _mirror_pad(array: np.ndarray, patch: tuple[int, int, int]) -> tuple[np.ndarray, tuple[slice, ...]]:
    """``array`` padded symmetrically (mirror) up to at least ``patch`` on each axis, and the
    slices that recover the original from the padded array."""
    pads, keep = [], []
    for n, p in zip(array.shape, patch):
        extra = max(0, int(p) - int(n))
        before = extra // 2
        pads.append((before, extra - before))
        keep.append(slice(before, before + n))
    if not any(a or b for a, b in pads):
        return array, tuple(keep)
    return np.pad(array, pads, mode="symmetric"), tuple(keep)


class QualityFilter:
    """The proportion P of a synthetic tumor that a segmentation model finds.

    Args:
        model: a checkpoint path, a model id of ``tumorsynth models list``, or a
            ``segmentation.infer.LoadedModel`` already in memory.
        threshold: a tumor passes when ``P >= threshold`` (FreeTumor uses 0.7).
        device: "auto" | "cpu" | "cuda" (ignored for a LoadedModel).
        organ: refuse a model trained for another organ (ModelError); default: any organ, but
            each scored tumor must be in the model's organ.
        margin_mm: context kept around the tumor's bounding box, in mm per side. Whole-volume
            scoring (``score_volume``) widens the crop to at least the model's patch.
    """

    def __init__(self, model: Any, *, threshold: float = 0.7, device: str = "auto",
                 organ: str | None = None, margin_mm: float = DEFAULT_MARGIN_MM) -> None:
        if not 0.0 <= float(threshold) <= 1.0:
            raise InputError(f"the quality threshold must be in [0, 1], got {threshold}")
        if not float(margin_mm) >= 0.0:
            raise InputError(f"margin_mm must be >= 0 mm, got {margin_mm}")
        self.threshold = float(threshold)
        self.margin_mm = float(margin_mm)
        self.loaded = _load(model, device, organ)
        self.calls = 0
        self.seconds = 0.0

    # -- facts ----------------------------------------------------------------------------------
    @property
    def organ(self) -> str:

        return canonical_organ(self.loaded.organ)

    @property
    def model_path(self) -> str:
        return str(self.loaded.path)

    def describe(self) -> dict[str, Any]:
        """JSON-able facts for reports: model file, organ, threshold, spacing, window."""
        return {"model": self.model_path, "organ": self.organ, "threshold": self.threshold,
                "margin_mm": self.margin_mm, "model_spacing_mm": list(self.loaded.spacing_mm),
                "window_hu": list(self.loaded.window_hu), "patch": list(self.loaded.patch)}

    # -- the QualityCheck contract ----------------------------------------------------------------
    def __call__(self, image_roi_hu: np.ndarray, tumor_mask_roi: np.ndarray, affine_roi: np.ndarray,
                 organ: str) -> float:
        """P for a tumor rendered in a synthesis ROI (``affine_roi`` places the ROI)."""
        if not self.accepts_organ(organ):
            raise ModelError(f"the quality model '{self.model_path}' was trained for the {self.organ}, "
                             f"but this tumor is in the {organ}; use a {organ} model")
        image = Volume(np.asarray(image_roi_hu, dtype=np.float32), np.asarray(affine_roi, dtype=float))
        return self._score(image, tumor_mask_roi, widen_to_patch=False)

    def accepts_organ(self, organ: str) -> bool:
        """True when the model segments tumors of ``organ``."""

        return canonical_organ(organ) == self.organ

    def score_volume(self, image: Volume, tumor_mask: np.ndarray) -> float:
        """P for a tumor mask (bool, same grid) in a whole image in HU, e.g. a finished
        synthesis or a tumor placed in Slicer."""
        return self._score(image, tumor_mask, widen_to_patch=True)

    # -- work -----------------------------------------------------------------------------------
    def context_box(self, image: Volume, tumor_mask: np.ndarray, widen_to_patch: bool = True) -> Box:
        """Voxel box the model sees: the tumor's bounding box plus ``margin_mm`` per side,
        widened (when asked) to the model patch's extent in mm, clipped to the image."""
        mask = self._check_mask(image, tumor_mask)
        box = bounding_box(mask)
        spacing = np.asarray(image.spacing, dtype=float)
        lo, hi = np.asarray(box.lo, dtype=float), np.asarray(box.hi, dtype=float)
        half = np.ceil(self.margin_mm / spacing)
        if widen_to_patch:  # one model voxel short of the patch, so one window covers it
            extent_mm = min((p - 1) * s for p, s in zip(self.loaded.patch, self.loaded.spacing_mm))
            need = np.floor(np.maximum(0.0, extent_mm / spacing - (hi - lo)) / 2.0)
            half = np.maximum(half, need)
        return Box(tuple(int(v) for v in lo - half), tuple(int(v) for v in hi + half)).clip(image.shape)

    def predicted_tumor(self, image: Volume) -> np.ndarray:
        """bool mask (on ``image``'s grid) of the voxels the model labels tumor (raw arg-max)."""
        import torch
        from monai.data import MetaTensor

        from .infer import argmax_on_grid, predict_logits, to_model_grid

        m = self.loaded
        x = to_model_grid(image, m.spacing_mm, m.window_hu)
        arr = np.asarray(x.detach().cpu().numpy()[0], dtype=np.float32)
        padded, keep = _mirror_pad(arr, m.patch)
        batch = torch.from_numpy(np.ascontiguousarray(padded))[None, None]
        logits = predict_logits(m.model, batch, m.patch, m.device)[0]
        logits = logits[(slice(None), *keep)]
        probs = MetaTensor(torch.softmax(logits, dim=0), affine=x.affine)
        return argmax_on_grid(probs, image) == 2

    def _score(self, image: Volume, tumor_mask: np.ndarray, widen_to_patch: bool) -> float:

        t0 = time.perf_counter()
        mask = self._check_mask(image, tumor_mask)
        box = self.context_box(image, mask, widen_to_patch)
        crop = Volume(np.asarray(image.array[box.slices], dtype=np.float32),
                      _shifted_affine(image.affine, box.lo))
        found = self.predicted_tumor(crop)
        inside = mask[box.slices]
        score = float(np.count_nonzero(inside & found)) / float(np.count_nonzero(mask))
        self.calls += 1
        self.seconds += time.perf_counter() - t0
        return score

    @staticmethod
    def _check_mask(image: Volume, tumor_mask: np.ndarray) -> np.ndarray:
        mask = np.asarray(tumor_mask).astype(bool, copy=False)
        if mask.shape != tuple(image.shape):
            raise InputError(f"the tumor mask has shape {mask.shape}, the image {tuple(image.shape)}; "
                             "give a mask on the image's grid")
        if not mask.any():
            raise InputError("the tumor mask is empty: there is no tumor to score")
        return mask


def _load(model: Any, device: str, organ: str | None) -> Any:
    """A ``LoadedModel`` from a path / model id, or the given one after the same checks."""
    from .infer import LoadedModel, load_segmentation_model

    wanted = None if organ is None else canonical_organ(organ)
    if isinstance(model, LoadedModel):
        names = {int(k): str(v) for k, v in model.label_names.items()}
        if sorted(names) != [0, 1, 2]:
            raise ModelError(f"the quality model '{model.path}' is for another label set ({names}); "
                             "use a 3-class model trained by `tumorsynth train`")
        if wanted is not None and canonical_organ(model.organ) != wanted:
            raise ModelError(f"the quality model '{model.path}' was trained for the {model.organ}, "
                             f"not the {wanted}; use a {wanted} model")
        return model
    if not isinstance(model, (str, Path)):
        raise InputError(f"the quality model must be a checkpoint path, a model id or a LoadedModel, "
                         f"got {type(model).__name__}")
    from .device import resolve_device

    return load_segmentation_model(resolve_model(model), resolve_device(device), wanted)


__all__ = ["QualityFilter", "DEFAULT_MARGIN_MM"]
