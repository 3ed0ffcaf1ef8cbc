"""MONAI pipelines for training and validation, and the seeded dataset / sampler that make a
run repeatable and resumable.

Order (training): load (``load_volume``: NIfTI / NRRD / DICOM, RAS affine) -> task labels
{0, 1, 2} -> orientation RAS -> spacing (isotropic mm) -> crop to the body -> [cached up to here]
-> ``RandTumorSynthd`` (in HU) -> HU window to [0, 1] -> pad -> random patches weighted towards
organ and tumor -> small intensity jitter.

Sample seeds: the random transforms of sample ``index`` in epoch ``epoch`` are seeded from
``SeedSequence([seed, epoch, index])`` whatever the worker or rank that draws it, and
``EpochSampler`` yields ``(epoch, index)`` keys from a permutation seeded by ``(seed, epoch)``;
so a resumed run sees exactly the samples the uninterrupted run would have seen.
"""
from __future__ import annotations

from typing import Any, Hashable, Iterator, Mapping, Sequence

import numpy as np
import torch
from monai.data import CacheDataset, MetaTensor
from monai.transforms import (
    Compose,
    CropForegroundd,
    EnsureTyped,
    MapTransform,
    Orientationd,
    RandCropByLabelClassesd,
    RandScaleIntensityd,
    RandShiftIntensityd,
    ScaleIntensityRanged,
    Spacingd,
    SpatialPadd,
)
from torch.utils.data import Dataset, Sampler

from ..anatomy.task_labels import task_label_array
from ..core.volume_io import load_volume
from ..transforms import RandTumorSynthd
from .config import TrainConfig
from .datasets import Case

#: Voxels above this HU are "body" for the foreground crop.
BODY_HU = -500.0
#: Axis labels for MONAI Orientation (its default is changing; RAS is what the affine means).
RAS_LABELS = (("L", "R"), ("P", "A"), ("I", "S"))
#: Salt of the validation samples' seeds (training epochs never reach it).
VALIDATION_EPOCH = 2**31 - 1


def is_body(x: Any) -> Any:
    """Foreground of a CT for ``CropForegroundd`` (module-level so workers can pickle it)."""
    return x > BODY_HU


class LoadVolumed(MapTransform):
    """Read files with ``volume.load_volume`` into (1, I, J, K) float32 MetaTensors whose
    affine is voxel -> RAS (so NRRD and DICOM work like NIfTI)."""

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            vol = load_volume(d[key])
            arr = np.asarray(vol.array, dtype=np.float32)[None]
            d[key] = MetaTensor(torch.from_numpy(arr.copy()), affine=torch.as_tensor(vol.affine),
                                meta={"filename_or_obj": str(d[key])})
        return d


class TaskLabelsd(MapTransform):
    """Map a label of ``convention`` to the task labels {0 background, 1 organ, 2 tumor}."""

    def __init__(self, keys: Any, organ: str, convention: str) -> None:
        super().__init__(keys)
        self.organ, self.convention = organ, convention

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            lab = d[key]
            arr = task_label_array(np.rint(lab.numpy()).astype(np.int32), self.organ, self.convention)
            out = lab.clone()
            out.copy_(torch.from_numpy(arr.astype(np.float32)))
            d[key] = out
        return d


def preprocess_transforms(cfg: TrainConfig, convention: str) -> list:
    """The deterministic (cacheable) part shared by training and validation."""
    keys = ("image", "label")
    return [
        LoadVolumed(keys),
        TaskLabelsd("label", cfg.organ, convention),
        Orientationd(keys, axcodes="RAS", labels=RAS_LABELS),
        Spacingd(keys, pixdim=(cfg.spacing_mm,) * 3, mode=("bilinear", "nearest")),
        CropForegroundd(keys, source_key="image", select_fn=is_body, margin=2, allow_smaller=True),
    ]


def synthesis_transform(cfg: TrainConfig, prob: float, quality: Any = None) -> RandTumorSynthd:
    return RandTumorSynthd(("image", "label"), organ=cfg.organ, method=cfg.method, prob=prob,
                           stage_mix=cfg.stage_mix, labels="binary", num_tumors=cfg.num_tumors,
                           quality=quality)


def window_transform(cfg: TrainConfig) -> ScaleIntensityRanged:
    lo, hi = cfg.window_hu
    return ScaleIntensityRanged("image", a_min=lo, a_max=hi, b_min=0.0, b_max=1.0, clip=True)


def training_transform(cfg: TrainConfig, convention: str, quality: Any = None) -> Compose:
    keys = ("image", "label")
    size = (cfg.patch,) * 3
    return Compose(preprocess_transforms(cfg, convention) + [
        synthesis_transform(cfg, cfg.prob, quality),
        window_transform(cfg),
        SpatialPadd(keys, spatial_size=size),
        RandCropByLabelClassesd(keys, label_key="label", spatial_size=size, ratios=[1, 1, 2],
                                num_classes=3, num_samples=cfg.samples_per_case, warn=False),
        RandScaleIntensityd("image", factors=0.1, prob=0.5),
        RandShiftIntensityd("image", offsets=0.05, prob=0.5),
        EnsureTyped(keys, track_meta=False),
    ])


def validation_transform(cfg: TrainConfig, convention: str) -> Compose:
    """Whole volumes; healthy cases always get synthetic tumors (seeded per case)."""
    return Compose(preprocess_transforms(cfg, convention) + [
        synthesis_transform(cfg, prob=1.0),
        window_transform(cfg),
    ])


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """The 32-bit seed of one sample's random transforms."""
    return int(np.random.SeedSequence([int(seed), int(epoch), int(index)]).generate_state(1)[0])


class SeededDataset(Dataset):
    """A CacheDataset whose random transforms are re-seeded for every ``(epoch, index)`` key.

    Items may be fetched by ``(epoch, index)`` (from ``EpochSampler``) or by ``index``
    (epoch 0). The deterministic prefix of ``transform`` is cached once (``cache_rate``).
    """

    def __init__(self, cases: Sequence[Case], transform: Compose, seed: int,
                 cache_rate: float = 1.0, cache_workers: int = 0) -> None:
        self.transform, self.seed = transform, int(seed)
        items = [c.item() for c in cases]
        self.base = CacheDataset(items, transform, cache_rate=cache_rate,
                                 num_workers=cache_workers or None, progress=False)

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, key: int | tuple[int, int]) -> Any:
        epoch, index = key if isinstance(key, (tuple, list)) else (0, key)
        self.transform.set_random_state(seed=sample_seed(self.seed, epoch, index))
        return self.base[int(index)]


class EpochSampler(Sampler):
    """Endless ``(epoch, index)`` keys for one rank of ``world_size``.

    Each epoch is a permutation of ``range(n)`` drawn from ``(seed, epoch)``, padded (by
    repeating its start) to a multiple of ``world_size`` and dealt round-robin to the ranks, so
    each rank sees ``per_rank = ceil(n / world_size)`` samples per epoch. ``start`` skips the
    first ``start`` samples of this rank's stream (resume: ``step * batch_size``).
    """

    def __init__(self, n: int, seed: int, rank: int = 0, world_size: int = 1, start: int = 0) -> None:
        if n < 1:
            raise ValueError("EpochSampler needs at least one sample")
        self.n, self.seed, self.rank, self.world = n, int(seed), int(rank), int(world_size)
        self.per_rank = -(-n // self.world)
        self.start = int(start)

    def epoch_indices(self, epoch: int) -> list[int]:
        perm = np.random.default_rng(np.random.SeedSequence([self.seed, int(epoch)])).permutation(self.n)
        padded = np.resize(perm, self.per_rank * self.world)
        return [int(i) for i in padded[self.rank::self.world]]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch, skip = divmod(self.start, self.per_rank)
        while True:
            for index in self.epoch_indices(epoch)[skip:]:
                yield (epoch, index)
            epoch, skip = epoch + 1, 0


__all__ = [
    "LoadVolumed", "TaskLabelsd", "preprocess_transforms", "training_transform",
    "validation_transform", "SeededDataset", "EpochSampler", "sample_seed", "VALIDATION_EPOCH",
]
