"""MONAI transforms: online tumor synthesis during segmentation training.

``RandTumorSynth`` (array: image, label -> image, label) and ``RandTumorSynthd`` (dictionary)
follow MONAI's pattern: ``RandomizableTransform(prob)``, every random number drawn in
``randomize()`` from ``self.R`` (apply?, stage, tumor count, one integer seed for the synthesis,
so ``set_determinism``, ``Compose.set_random_state`` and MONAI's worker seeding make runs
repeatable), then an application without randomness of its own.

Place it after loading, orientation and resampling but *before* intensity windowing: synthesis
works in Hounsfield units relative to the organ. It acts on samples that hold the organ and no
real tumor. Synthesis runs on the organ's box plus ``CROP_MARGIN_MM`` and only the tumors' ROI
patches are written back (``inplace=True`` writes them into the input tensors, which is safe
after ``CacheDataset``, which hands random transforms a copy; the default copies first).

What it did is recorded in the sample: the image's ``meta["tumorsynth"]`` and (dictionary
version) the sample's ``"tumorsynth"`` entry hold a JSON text (so that batches collate) of
``{"seed", "applied": bool, "skipped": reason or null, "seconds": s, "tumors": [{organ, method,
stage, diameter_mm, center_ras, seed}, ...]}`` (``read_record`` parses it). The dictionary entry
survives later transforms that drop metadata, so a training loop sees the work of its loader
workers too (``SynthesisTally``). Lazy resampling: the transform declares
``requires_current_data`` (it must see the voxels), so a ``Compose(lazy=True)`` applies pending
operations before it.
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
from typing import Any, Hashable, Mapping, Sequence

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform, RandomizableTransform
from monai.transforms.traits import LazyTrait
from monai.utils.enums import TransformBackends
from monai.utils.type_conversion import convert_to_dst_type, convert_to_numpy

from .anatomy.organs import (
    canonical_organ,
    check_convention,
    organ_label_ids,
    parse_stage_mix,
    tumor_label_id,
)
from .anatomy.site import TumorSpec
from .core.errors import DependencyError, InputError, TumorSynthError
from .core.files import json_text
from .core.volume import Volume, bounding_box, has_any, is_any
from .synthesis import registry
from .synthesis.api import synthesize

log = logging.getLogger(__name__)

#: Context (mm) kept around the organ when synthesising on its box instead of the whole scan.
CROP_MARGIN_MM = 40.0
META_KEY = "tumorsynth"
_MAX_SEED = 2**31 - 1


class RandTumorSynth(RandomizableTransform, LazyTrait):
    """Synthesise tumors in one (image, label) pair of channel-first MetaTensors / arrays.

    Args:
        organ: organ receiving the tumors ("liver", "pancreas", "kidney", "spleen").
        method: a synthesis method of the engine catalogue.
        prob: probability that a healthy sample receives tumors.
        stage_mix: stage weights, e.g. ``{"early": 0.8, "intermediate": 0.1, "advanced": 0.1}``.
        labels: label convention of the label at this point of the pipeline.
        num_tumors: tumors per sample, an int or an inclusive (low, high) range.
        quality: optional quality check ``(image_roi, mask, affine_roi, organ) -> P`` (a
            ``segmentation.quality.QualityFilter``); a tumor is kept when P >= ``threshold``.
        max_tries: draws per tumor (quality or a sampled place that does not fit).
        options: extra ``TumorSpec.options`` (validated by the engine).
        inplace: write the tumors into the given tensors instead of copies.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, organ: str = "liver", method: str = "handcrafted", prob: float = 0.5,
                 stage_mix: Mapping[str, float] | str | None = None, labels: str = "binary",
                 num_tumors: int | Sequence[int] = 1, quality: Any = None, threshold: float = 0.7,
                 max_tries: int = 3, options: Mapping[str, Any] | None = None, inplace: bool = False) -> None:
        if not 0.0 <= float(prob) <= 1.0:
            raise InputError(f"prob must be in [0, 1], got {prob}")
        RandomizableTransform.__init__(self, prob)
        self.labels = check_convention(labels)
        self.organ = canonical_organ(organ)
        registry.get_method(method)
        self.method = method
        self.stage_mix = parse_stage_mix(stage_mix)
        lo, hi = (num_tumors, num_tumors) if isinstance(num_tumors, int) else tuple(num_tumors)
        if not 1 <= int(lo) <= int(hi):
            raise InputError(f"num_tumors must be >= 1 (or a range low <= high), got {num_tumors}")
        self.num_tumors = (int(lo), int(hi))
        self.quality, self.threshold, self.max_tries = quality, float(threshold), max(1, int(max_tries))
        self.options = dict(options or {})
        self.inplace = bool(inplace)
        self.organ_ids = organ_label_ids(self.organ, self.labels)
        self.tumor_ids = tuple(sorted({tumor_label_id(i, self.labels) for i in self.organ_ids}))
        self._stage, self._count, self._seed = "early", 1, 0

    # -- LazyTrait: the transform needs the voxels, so pending operations are applied first -----
    @property
    def lazy(self) -> bool:
        return False

    @lazy.setter
    def lazy(self, enabled: bool) -> None:
        if enabled:
            raise InputError("RandTumorSynth cannot run lazily: it needs the voxels (HU)")

    @property
    def requires_current_data(self) -> bool:
        return True

    # -- randomness -------------------------------------------------------------------------------
    def randomize(self, data: Any = None) -> None:
        """Always four draws (apply?, stage, count, seed) so the stream stays aligned."""
        super().randomize(None)
        stages = list(self.stage_mix)
        self._stage = stages[int(self.R.choice(len(stages), p=[self.stage_mix[s] for s in stages]))]
        self._count = int(self.R.randint(self.num_tumors[0], self.num_tumors[1] + 1))
        self._seed = int(self.R.randint(0, _MAX_SEED))

    # -- application ------------------------------------------------------------------------------
    def __call__(self, image: Any, label: Any, randomize: bool = True, lazy: bool | None = None) -> tuple[Any, Any]:
        if randomize:
            self.randomize()
        record: dict[str, Any] = {"seed": self._seed, "applied": False, "skipped": None, "seconds": 0.0, "tumors": []}
        if not self._do_transform:
            record["skipped"] = "not drawn"
            return self._with_record(image, record, self.inplace), label
        t0 = time.perf_counter()
        try:
            image, label = self._apply(image, label, record)
        finally:
            record["seconds"] = time.perf_counter() - t0
        return self._with_record(image, record, self.inplace), label

    def _apply(self, image: Any, label: Any, record: dict[str, Any]) -> tuple[Any, Any]:
        affine = _affine(image)
        img = _spatial(convert_to_numpy(image, wrap_sequence=False), "image")
        lab = _spatial(convert_to_numpy(label, wrap_sequence=False), "label")   # ids, maybe floats: rounded
        if has_any(lab, self.tumor_ids):
            record["skipped"] = "real tumor"
            return image, label
        spacing = np.linalg.norm(affine[:3, :3], axis=0)
        box = bounding_box(is_any(lab, self.organ_ids), np.ceil(CROP_MARGIN_MM / spacing).astype(int))
        if box is None:
            record["skipped"] = "no organ"
            return image, label
        crop_image = Volume(img, affine).crop(box)
        result = self._synthesize(crop_image, Volume(_integer_labels(lab[box.slices]), crop_image.affine))
        if result is None:
            record["skipped"] = "no valid place"
            return image, label
        if any(not r.get("quality", {}).get("passed", True) for r in result.reports):
            record["skipped"] = "rejected by quality"  # FreeTumor: a rejected sample stays as it was
            return image, label
        out_image = image if self.inplace else _copy(image)
        out_label = label if self.inplace else _copy(label)
        _write_patches(out_image, out_label, result, box)
        record["applied"] = True
        record["tumors"] = [_tumor_record(r) for r in result.reports]
        return out_image, out_label

    def _synthesize(self, image: Volume, labels: Volume) -> Any:
        options = {**self.options, "count": self._count} if self._count > 1 else dict(self.options)
        spec = TumorSpec(organ=self.organ, stage=self._stage, method=self.method, seed=self._seed, options=options)
        try:
            return synthesize(image, labels, spec, labels=self.labels, quality=self.quality,
                              quality_threshold=self.threshold, tries=self.max_tries)
        except DependencyError:
            raise
        except TumorSynthError as exc:  # no room in this organ, too few parenchyma voxels, ...
            log.debug("tumor synthesis failed: %s", exc)
            return None

    @staticmethod
    def _with_record(image: Any, record: dict[str, Any], inplace: bool) -> Any:
        """``image`` with the record in its metadata. Unless ``inplace``, the record goes into a
        view with its own metadata, so the caller's tensor (returned as is when nothing was
        drawn or skipped) keeps its metadata."""
        if isinstance(image, MetaTensor):
            if not inplace:
                image = image.view(image.shape)
            image.meta[META_KEY] = json_text(record).strip()
        return image


class RandTumorSynthd(RandomizableTransform, MapTransform, LazyTrait):
    """Dictionary version of ``RandTumorSynth``: ``keys`` = (image key, label key); the other
    arguments are ``RandTumorSynth``'s. ``stats`` counts what this process did (the per-sample
    record in the image's metadata also works across loader workers)."""

    def __init__(self, keys: KeysCollection = ("image", "label"), organ: str = "liver",
                 method: str = "handcrafted", prob: float = 0.5,
                 stage_mix: Mapping[str, float] | str | None = None, labels: str = "binary",
                 num_tumors: int | Sequence[int] = 1, quality: Any = None, threshold: float = 0.7,
                 max_tries: int = 3, options: Mapping[str, Any] | None = None, inplace: bool = False,
                 allow_missing_keys: bool = False) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        if len(self.keys) != 2:
            raise InputError("RandTumorSynthd keys must be (image key, label key)")
        RandomizableTransform.__init__(self, 1.0)
        self.synth = RandTumorSynth(organ, method, prob, stage_mix, labels, num_tumors, quality, threshold,
                                    max_tries, options, inplace)
        self.image_key, self.label_key = self.keys
        self.stats = {"calls": 0, "applied": 0, "skipped_real_tumor": 0, "skipped_no_organ": 0,
                      "failed": 0, "rejected_quality": 0, "seconds": 0.0}

    backend = RandTumorSynth.backend
    lazy = RandTumorSynth.lazy
    requires_current_data = RandTumorSynth.requires_current_data

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None) -> "RandTumorSynthd":
        super().set_random_state(seed, state)
        self.synth.set_random_state(seed, state)
        return self

    def randomize(self, data: Any = None) -> None:
        self.synth.randomize(None)

    def __call__(self, data: Mapping[Hashable, Any], lazy: bool | None = None) -> dict[Hashable, Any]:
        d = dict(data)
        self.randomize()
        self.stats["calls"] += 1
        if self.image_key not in d or self.label_key not in d:
            if not self.allow_missing_keys:
                raise InputError(f"RandTumorSynthd needs the keys {self.keys}; the sample has {list(d)}")
            return d
        d[self.image_key], d[self.label_key] = self.synth(d[self.image_key], d[self.label_key], randomize=False)
        record = read_record(d[self.image_key])
        d[META_KEY] = chained_records(d.get(META_KEY), record)
        self._count(record)
        return d

    def _count(self, record: Mapping[str, Any]) -> None:
        self.stats["seconds"] += float(record.get("seconds", 0.0))
        skipped = record.get("skipped")
        if record.get("applied"):
            self.stats["applied"] += 1
        elif skipped == "real tumor":
            self.stats["skipped_real_tumor"] += 1
        elif skipped == "no organ":
            self.stats["skipped_no_organ"] += 1
        elif skipped == "no valid place":
            self.stats["failed"] += 1
        elif skipped == "rejected by quality":
            self.stats["rejected_quality"] += 1


class SynthesisTally:
    """Counts of what ``RandTumorSynth`` did, read from the records in batches' metadata, so a
    training loop sees the work of its loader workers too. Each synthesis is counted once,
    however many patches of its case a batch holds and however many later batches reuse the
    case (``--synth-reuse``): a record's text (seed and seconds included) identifies it."""

    def __init__(self) -> None:
        self.stats = {"samples": 0, "applied": 0, "tumors": 0, "skipped_real_tumor": 0, "skipped_no_organ": 0,
                      "failed": 0, "rejected_quality": 0, "seconds": 0.0}
        self._seen: set[bytes] = set()

    def add(self, batch: Mapping[Hashable, Any]) -> None:
        """Count the records of a collated batch (its ``"tumorsynth"`` entry: per sample one
        record, or the list of them when several ``RandTumorSynthd`` ran, one per organ and method)."""
        texts = batch.get(META_KEY)
        if texts is None:
            return
        for text in dict.fromkeys([texts] if isinstance(texts, str) else list(texts)):
            digest = hashlib.blake2b(text.encode(), digest_size=16).digest()
            if digest in self._seen:
                continue
            self._seen.add(digest)
            self.stats["samples"] += 1
            parsed = json.loads(text)
            for record in parsed if isinstance(parsed, list) else [parsed]:
                self._count(record)

    def _count(self, record: Mapping[str, Any]) -> None:
        self.stats["seconds"] += float(record.get("seconds", 0.0))
        self.stats["tumors"] += len(record.get("tumors", []))
        key = {"real tumor": "skipped_real_tumor", "no organ": "skipped_no_organ",
               "no valid place": "failed", "rejected by quality": "rejected_quality"}.get(record.get("skipped"))
        if record.get("applied"):
            self.stats["applied"] += 1
        elif key:
            self.stats[key] += 1


def chained_records(previous: Any, record: Mapping[str, Any]) -> str:
    """The sample's ``META_KEY`` text after one more ``RandTumorSynthd``: its record alone, or
    appended to the earlier ones (a JSON list), so a chain (one per organ and method) loses none."""
    if not isinstance(previous, str):
        return json_text(record).strip()
    earlier = json.loads(previous)
    return json_text([*(earlier if isinstance(earlier, list) else [earlier]), record]).strip()


def synthesised_organs(text: Any) -> set[str]:
    """The organs that received synthetic tumors according to a sample's ``META_KEY`` text
    (one record or a chain of them); empty when there is none."""
    if not isinstance(text, str):
        return set()
    records = json.loads(text)
    records = records if isinstance(records, list) else [records]
    return {t["organ"] for r in records if r.get("applied") for t in r.get("tumors", [])}


def read_record(image: Any) -> dict[str, Any]:
    """The synthesis record a ``RandTumorSynth`` left in a MetaTensor's metadata ({} if none)."""
    text = image.meta.get(META_KEY) if isinstance(image, MetaTensor) else None
    return json.loads(text) if isinstance(text, str) else {}


def _integer_labels(array: np.ndarray) -> np.ndarray:
    """A new int32 array of label ids (float labels, as MONAI's resampling leaves them, rounded)."""
    if np.issubdtype(array.dtype, np.integer) or array.dtype == bool:
        return array.astype(np.int32)
    return np.rint(array).astype(np.int32)


def _affine(data: Any) -> np.ndarray:
    affine = getattr(data, "affine", None)
    if affine is None:
        raise InputError("RandTumorSynth needs the image as a MONAI MetaTensor with an affine (sizes are "
                         "in mm); load it with LoadImaged, not as a bare array")
    return np.asarray(convert_to_numpy(affine), dtype=float)


def _spatial(array: np.ndarray, what: str) -> np.ndarray:
    """The 3D spatial array of a channel-first (1, i, j, k) or plain (i, j, k) array."""
    if array.ndim == 4:
        if array.shape[0] != 1:
            raise InputError(f"the {what} must have one channel, got shape {array.shape}")
        return array[0]
    if array.ndim != 3:
        raise InputError(f"the {what} must be 3D (optionally with one channel), got shape {array.shape}")
    return array


def _copy(data: Any) -> Any:
    return data.clone() if isinstance(data, torch.Tensor) else np.array(data, copy=True)


def _write_patches(image: Any, label: Any, result: Any, box: Any) -> None:
    """Write the synthesis' patches (on the crop ``box``) into ``image`` and ``label``."""
    for p in result.patches:
        region = tuple(slice(b.start + s.start, b.start + s.stop) for b, s in zip(box.slices, p.box.slices))
        for target, values in ((image, p.image), (label, p.labels)):
            index = (slice(None),) * (target.ndim - 3) + region
            target[index] = convert_to_dst_type(values.astype(np.float32), target[index])[0]


def _tumor_record(report: Mapping[str, Any]) -> dict[str, Any]:
    return {"organ": report["organ"], "method": report["method"], "stage": report["stage"],
            "diameter_mm": report["diameter_measured_mm"], "center_ras": report["center_placed_ras"],
            "seed": report["seed"]}


__all__ = ["CROP_MARGIN_MM", "META_KEY", "RandTumorSynth", "RandTumorSynthd", "SynthesisTally", "read_record",
           "synthesised_organs"]
