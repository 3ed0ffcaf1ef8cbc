"""MONAI transforms: online tumor synthesis during segmentation training.

``RandTumorSynthd`` adds synthetic tumors to healthy training samples as they are drawn, so a
model sees a new tumor (position, size, shape, texture) at every epoch. Place it in a MONAI
pipeline after loading, orientation and resampling but *before* intensity windowing: the
synthesis methods work in Hounsfield units relative to the organ parenchyma.

Randomness: the transform draws from its own ``self.R`` (MONAI ``Randomizable``) a fixed number
of values per call (apply?, stage, tumor count, one integer seed); the integer seeds the
synthesis (``TumorSpec.seed``), so ``set_determinism``, ``Compose.set_random_state`` and MONAI's
DataLoader worker seeding make runs repeatable.

Cost: synthesis runs on the organ's bounding box plus ``CROP_MARGIN_MM`` and is pasted back, so
the scan-wide checks and copies of ``synthesize`` scale with the organ, not the scan.
"""
from __future__ import annotations

import logging
import time
from typing import Any, Hashable, Mapping, Sequence

import numpy as np
from monai.config import KeysCollection
from monai.transforms import MapTransform, Randomizable

from .core.errors import DependencyError, InputError, TumorSynthError
from .anatomy.organs import (
    CONVENTIONS,
    DEFAULT_STAGE_MIX,
    canonical_organ,
    organ_label_ids,
    parse_stage_mix,
    tumor_label_id,
)
from .anatomy.site import TumorSpec
from .core.volume import Box, Volume

log = logging.getLogger(__name__)

#: Context (mm) kept around the organ when synthesising on its box instead of the whole scan.
CROP_MARGIN_MM = 40.0
_MAX_SEED = 2**31 - 1


def _as_volume(data: Any, key: Hashable) -> tuple[np.ndarray, np.ndarray, bool]:
    """(3D numpy array, 4x4 affine, had_channel_dim) of a MetaTensor / array in a MONAI dict."""
    affine = getattr(data, "affine", None)
    if affine is None:
        raise InputError(
            f"RandTumorSynthd needs '{key}' as a MONAI MetaTensor with an affine (sizes are in mm); "
            "load it with LoadImaged / LoadVolumed, not as a bare array"
        )
    arr = data.detach().cpu().numpy() if hasattr(data, "detach") else np.asarray(data)
    had_channel = arr.ndim == 4
    if had_channel:
        if arr.shape[0] != 1:
            raise InputError(f"'{key}' must have one channel, got shape {arr.shape}")
        arr = arr[0]
    aff = affine.detach().cpu().numpy() if hasattr(affine, "detach") else np.asarray(affine)
    return arr, np.asarray(aff, dtype=float), had_channel


def _replace_array(data: Any, array: np.ndarray, had_channel: bool) -> Any:
    """A tensor like ``data`` (type, dtype, metadata) holding ``array`` (no extra copy)."""
    import torch
    from monai.data import MetaTensor

    arr = np.ascontiguousarray(array[None] if had_channel else array)
    tensor = torch.from_numpy(arr).to(data.dtype)
    if isinstance(data, MetaTensor):
        return MetaTensor(tensor, meta=dict(data.meta), applied_operations=list(data.applied_operations))
    return tensor


def _ids_mask(labels: np.ndarray, ids: Sequence[int]) -> np.ndarray:
    """``labels`` in ``ids`` (one comparison per id: faster than ``np.isin`` for a few ids)."""
    mask = labels == ids[0]
    for i in ids[1:]:
        mask |= labels == i
    return mask


def organ_box(organ: np.ndarray, spacing: Sequence[float], margin_mm: float) -> Box | None:
    """Box around the true voxels of ``organ`` widened by ``margin_mm`` (clipped), or None."""
    lo, hi = [], []
    for axis in range(3):
        present = np.flatnonzero(organ.any(axis=tuple(a for a in range(3) if a != axis)))
        if present.size == 0:
            return None
        margin = int(np.ceil(margin_mm / float(spacing[axis])))
        lo.append(max(0, int(present[0]) - margin))
        hi.append(min(organ.shape[axis], int(present[-1]) + 1 + margin))
    return Box(tuple(lo), tuple(hi))  # type: ignore[arg-type]


class RandTumorSynthd(Randomizable, MapTransform):
    """Synthesise tumors online in samples that have none.

    Args:
        keys: (image key, label key). The image is in HU, the label in ``labels`` convention.
        organ: organ receiving the tumors ("liver", "pancreas", "kidney", ...).
        method: any registered synthesis method (``synthesis.base.method_names()``).
        prob: probability that a healthy sample receives tumors.
        stage_mix: stage weights, e.g. ``{"early": 0.8, "intermediate": 0.1, "advanced": 0.1}``.
        labels: label convention of the label at this point of the pipeline ("binary" after the
            training pipeline's task mapping: organ 1, tumor 2).
        num_tumors: tumors per sample, an int or an inclusive (low, high) range.
        quality: optional quality filter (FreeTumor): an object with ``accept(synthesis) ->
            bool`` or a callable ``(synthesis) -> score`` kept when ``score >= threshold``.
        max_tries: draws (variants of the seed) tried before leaving a sample unchanged.
        options: extra ``TumorSpec.options`` for the method.

    Samples whose label already holds a tumor id, or that lack the organ, pass unchanged.
    ``stats`` counts calls, applied syntheses, failures and seconds spent (this process only).
    """

    def __init__(self, keys: KeysCollection = ("image", "label"), organ: str = "liver",
                 method: str = "handcrafted", prob: float = 0.5,
                 stage_mix: Mapping[str, float] | str | None = None, labels: str = "binary",
                 num_tumors: int | Sequence[int] = 1, quality: Any = None,
                 threshold: float = 0.7, max_tries: int = 3,
                 options: Mapping[str, Any] | None = None, allow_missing_keys: bool = False) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        if len(self.keys) != 2:
            raise InputError("RandTumorSynthd keys must be (image key, label key)")
        if not 0.0 <= float(prob) <= 1.0:
            raise InputError(f"prob must be in [0, 1], got {prob}")
        if labels not in CONVENTIONS:
            raise InputError(f"unknown label convention '{labels}'; one of {', '.join(CONVENTIONS)}")
        self.image_key, self.label_key = self.keys
        self.organ = canonical_organ(organ)
        self.method = method
        self.prob = float(prob)
        self.stage_mix = parse_stage_mix(stage_mix)
        self.labels = labels
        lo, hi = (num_tumors, num_tumors) if isinstance(num_tumors, int) else tuple(num_tumors)
        if not 1 <= lo <= hi:
            raise InputError(f"num_tumors must be >= 1 (or a range low <= high), got {num_tumors}")
        self.num_tumors = (int(lo), int(hi))
        self.quality, self.threshold, self.max_tries = quality, float(threshold), max(1, int(max_tries))
        self.options = dict(options or {})
        self.organ_ids = organ_label_ids(self.organ, labels)
        self.tumor_ids = tuple(sorted({tumor_label_id(i, labels) for i in self.organ_ids}))
        self.stats = {"calls": 0, "applied": 0, "skipped_real_tumor": 0, "skipped_no_organ": 0,
                      "failed": 0, "rejected_quality": 0, "seconds": 0.0}
        self._do, self._stage, self._count, self._seed = False, "early", 1, 0

    def randomize(self, data: Any = None) -> None:
        """Always four draws, whatever the sample, so the stream stays aligned across samples."""
        stages = list(self.stage_mix)
        self._do = bool(self.R.rand() < self.prob)
        self._stage = stages[int(self.R.choice(len(stages), p=[self.stage_mix[s] for s in stages]))]
        self._count = int(self.R.randint(self.num_tumors[0], self.num_tumors[1] + 1))
        self._seed = int(self.R.randint(0, _MAX_SEED))

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        self.randomize()
        self.stats["calls"] += 1
        if not self._do or self.image_key not in d or self.label_key not in d:
            return d
        t0 = time.perf_counter()
        try:
            self._synthesize_into(d)
        finally:
            self.stats["seconds"] += time.perf_counter() - t0
        return d

    def _synthesize_into(self, d: dict[Hashable, Any]) -> None:
        """Synthesise on the organ's box (plus ``CROP_MARGIN_MM``) only and paste it back: the
        scan-wide work of ``synthesize`` (checks, copies) then scales with the organ."""
        image, affine, img_ch = _as_volume(d[self.image_key], self.image_key)
        label, _, lab_ch = _as_volume(d[self.label_key], self.label_key)
        label = np.rint(label).astype(np.int16)
        if _ids_mask(label, self.tumor_ids).any():
            self.stats["skipped_real_tumor"] += 1
            return
        spacing = np.linalg.norm(affine[:3, :3], axis=0)
        box = organ_box(_ids_mask(label, self.organ_ids), spacing, CROP_MARGIN_MM)
        if box is None:
            self.stats["skipped_no_organ"] += 1
            return
        result = self._first_accepted(Volume(image, affine).crop(box), Volume(label, affine).crop(box))
        if result is None:
            return
        new_image, new_label = image.copy(), label
        new_image[box.slices] = result.image.array
        new_label[box.slices] = result.labels.array
        d[self.image_key] = _replace_array(d[self.image_key], new_image, img_ch)
        d[self.label_key] = _replace_array(d[self.label_key], new_label, lab_ch)
        self.stats["applied"] += 1

    def _first_accepted(self, image: Volume, labels: Volume) -> Any:
        """The first synthesis (seed variants 0, 1, ...) that places and passes the filter."""
        from .synthesis.api import synthesize

        options = {**self.options, "count": self._count} if self._count > 1 else dict(self.options)
        spec = TumorSpec(organ=self.organ, stage=self._stage, method=self.method,
                         seed=self._seed, options=options)
        for variant in range(self.max_tries):
            try:
                result = synthesize(image, labels, [spec], labels=self.labels, variant=variant)
            except DependencyError:
                raise
            except TumorSynthError as exc:  # no room in this organ, too few parenchyma voxels, ...
                log.debug("tumor synthesis failed (variant %d): %s", variant, exc)
                continue
            if self._passes_quality(result):
                return result
            self.stats["rejected_quality"] += 1
        self.stats["failed"] += 1
        return None

    def _passes_quality(self, result: Any) -> bool:
        if self.quality is None:
            return True
        if hasattr(self.quality, "accept"):
            return bool(self.quality.accept(result))
        return float(self.quality(result)) >= self.threshold


__all__ = ["RandTumorSynthd", "parse_stage_mix", "DEFAULT_STAGE_MIX"]
