"""MONAI pipelines for training and validation, and the seeded dataset / sampler that make a
run repeatable and resumable.

Order (training): load (``load_volume``: NIfTI / NRRD / DICOM, RAS affine) -> orientation RAS
-> spacing (isotropic mm) -> crop to the body -> [cached up to here] -> ``RandTumorSynthd`` (in
HU, on the dataset's own labels; one instance per task organ and synthesis method) -> optional
tumor contrast jitter (``RandTumorContrastd``) -> task labels {0, 1, 2} -> HU window to [0, 1]
-> pad -> random patches weighted towards organ and tumor (for a multi-organ task, towards each
organ and each organ's tumors in turn) -> small intensity jitter.

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
    MapLabelValued,
    MapTransform,
    Orientationd,
    RandCropByLabelClassesd,
    RandScaleIntensityd,
    RandShiftIntensityd,
    ScaleIntensityRanged,
    Spacingd,
    SpatialPadd,
    Transform,
)
from torch.utils.data import Dataset, Sampler

from ..anatomy.analysis import convention_ids
from ..core.volume_io import load_volume
from ..transforms import RandTumorSynthd
from .config import TrainConfig, task_methods
from .contrast_jitter import TUMOR_CONTRAST_PROB, RandTumorContrastd
from .datasets import Case
from .tasks import task_label_array, task_organs, task_region_ids, tumor_ids

#: Voxels above this HU are "body" for the foreground crop.
BODY_HU = -500.0
#: Axis labels for MONAI Orientation (its default is changing; RAS is what the affine means).
RAS_LABELS = (("L", "R"), ("P", "A"), ("I", "S"))
#: Salt of the validation samples' seeds (training epochs never reach it).
VALIDATION_EPOCH = 2**31 - 1
#: Keys of the patch-sampling classes of a multi-organ task (dropped before batching).
CLASSES_KEY, INDICES_KEY = "crop_classes", "crop_indices"
#: Patch-centre weights of background and of each organ (tumors: ``TrainConfig.tumor_weight``,
#: shared equally by the organs' tumor classes).
BACKGROUND_WEIGHT, ORGAN_WEIGHT = 1.0, 1.0


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
    """Map a label of ``convention`` to the task labels {0 background, 1 organ, 2 tumor}.

    With ``classes_key``, also store the patch-sampling classes there (``sampling_classes``: 0
    background, 1..n the region of task organ 1..n, n + k the tumors of organ k; uint8, same
    grid), so patches can be centred on each organ and each organ's tumors in turn."""

    def __init__(self, keys: Any, organ: str, convention: str, classes_key: str | None = None) -> None:
        super().__init__(keys)
        self.organ, self.convention, self.classes_key = organ, convention, classes_key

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            lab = d[key]
            source = np.rint(lab.numpy()).astype(np.int32)
            d[key] = _like(lab, task_label_array(source, self.organ, self.convention))
            if self.classes_key is not None:
                d[self.classes_key] = _like(lab, sampling_classes(source, self.organ, self.convention))
        return d


def _like(template: Any, array: np.ndarray) -> Any:
    """A float32 tensor like ``template`` (type, metadata) holding ``array``."""
    out = template.clone()
    out.copy_(torch.from_numpy(array.astype(np.float32)))
    return out


def sampling_classes(labels: np.ndarray, organ: str, convention: str) -> np.ndarray:
    """uint8 classes for patch sampling: 0 background, k for the region of the k-th task organ
    and ``n + k`` for its tumors (n task organs). Tumors of each organ are a class of their own
    so that small kidney tumors get as many patches as large liver ones."""
    organs = task_organs(organ)
    out = np.zeros(labels.shape, dtype=np.uint8)
    for k, name in enumerate(organs, start=1):
        out[np.isin(labels, task_region_ids(name, convention))] = k
    for k, name in enumerate(organs, start=len(organs) + 1):
        out[np.isin(labels, tumor_ids(name, convention))] = k
    return out


class ClassIndicesd(Transform):
    """Replace the sampling classes (``CLASSES_KEY``, after padding) by the flat voxel indices
    of each class (``INDICES_KEY``), which ``RandCropByLabelClassesd`` pops, so the class map is
    never copied into the patches."""

    def __init__(self, num_classes: int) -> None:
        self.num_classes = int(num_classes)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        classes = np.asarray(d.pop(CLASSES_KEY).numpy()[0]).ravel()
        d[INDICES_KEY] = [np.flatnonzero(classes == c) for c in range(self.num_classes)]
        return d


def task_labels_transform(keys: Any, organ: str, convention: str) -> MapLabelValued:
    """MONAI ``MapLabelValued`` from every id ``convention`` uses to the task labels {0, 1, 2}
    of ``organ`` (one or several, comma separated): for pipelines that need only the labels.
    Training uses ``TaskLabelsd``, which also writes the per-organ patch-sampling classes."""
    ids = sorted(convention_ids(convention))
    targets = task_label_array(np.asarray(ids), organ, convention)
    return MapLabelValued(keys, ids, [int(t) for t in targets], dtype=np.float32)


def preprocess_transforms(cfg: TrainConfig) -> list:
    """The deterministic (cacheable) part shared by training and validation."""
    keys = ("image", "label")
    return [
        LoadVolumed(keys),
        Orientationd(keys, axcodes="RAS", labels=RAS_LABELS),
        Spacingd(keys, pixdim=(cfg.spacing_mm,) * 3, mode=("bilinear", "nearest")),
        CropForegroundd(keys, source_key="image", select_fn=is_body, margin=2, allow_smaller=True),
    ]


def synthesis_transforms(cfg: TrainConfig, convention: str, prob: float,
                         quality: Any = None) -> list[RandTumorSynthd]:
    """One ``RandTumorSynthd`` per (task organ, method), on the dataset's labels. Each organ gets
    tumors with probability ``prob``, made by each method equally often: the j-th method's
    instance runs (with ``prob / k / (1 - j prob / k)``) only when no earlier one placed a tumor
    in that organ (``RandTumorSynthd`` leaves organs that already hold a tumor alone). They write
    the tumors into the sample's tensors (``inplace``): ``CacheDataset`` hands the random
    transforms a copy of the cached case, so no whole-volume copy is needed."""
    methods = task_methods(cfg.method)
    share = float(prob) / len(methods)
    out = []
    for organ in task_organs(cfg.organ):
        for j, method in enumerate(methods):
            p = min(1.0, share / (1.0 - j * share)) if share > 0 else 0.0
            out.append(RandTumorSynthd(("image", "label"), organ=organ, method=method, prob=p,
                                       stage_mix=cfg.stage_mix, labels=convention,
                                       num_tumors=cfg.num_tumors, quality=quality, inplace=True))
    return out


def window_transform(cfg: TrainConfig) -> ScaleIntensityRanged:
    lo, hi = cfg.window_hu
    return ScaleIntensityRanged("image", a_min=lo, a_max=hi, b_min=0.0, b_max=1.0, clip=True)


def patch_transforms(cfg: TrainConfig) -> list:
    """Pad to the patch and draw ``samples_per_case`` patches, centred on background, each task
    organ and each organ's tumors with weights ``BACKGROUND_WEIGHT : ORGAN_WEIGHT (each) :
    cfg.tumor_weight / n (each)`` (n task organs; classes without voxels in a case drop out, so
    a case with tumors in one organ only gets fewer tumor-centred patches than one with several)."""
    keys = ("image", "label")
    size = (cfg.patch,) * 3
    n = len(task_organs(cfg.organ))
    if n == 1:
        ratios = [BACKGROUND_WEIGHT, ORGAN_WEIGHT, float(cfg.tumor_weight)]
        return [SpatialPadd(keys, spatial_size=size),
                RandCropByLabelClassesd(keys, label_key="label", spatial_size=size, ratios=ratios,
                                        num_classes=3, num_samples=cfg.samples_per_case, warn=False)]
    ratios = [BACKGROUND_WEIGHT] + [ORGAN_WEIGHT] * n + [float(cfg.tumor_weight) / n] * n
    return [SpatialPadd(keys + (CLASSES_KEY,), spatial_size=size),
            ClassIndicesd(2 * n + 1),
            RandCropByLabelClassesd(keys, label_key="label", spatial_size=size, ratios=ratios,
                                    num_classes=2 * n + 1, num_samples=cfg.samples_per_case,
                                    indices_key=INDICES_KEY, warn=False)]


def training_transform(cfg: TrainConfig, convention: str, quality: Any = None) -> Compose:
    keys = ("image", "label")
    multi = len(task_organs(cfg.organ)) > 1
    contrast = [] if cfg.tumor_contrast is None else [
        RandTumorContrastd(cfg.organ, convention, cfg.tumor_contrast, prob=TUMOR_CONTRAST_PROB,
                           draw=cfg.tumor_contrast_draw)]
    return Compose(preprocess_transforms(cfg) + synthesis_transforms(cfg, convention, cfg.prob, quality) + contrast + [
        TaskLabelsd("label", cfg.organ, convention, CLASSES_KEY if multi else None),
        window_transform(cfg),
        *patch_transforms(cfg),
        RandScaleIntensityd("image", factors=0.1, prob=0.5),
        RandShiftIntensityd("image", offsets=0.05, prob=0.5),
        EnsureTyped(keys, track_meta=False),
    ])


def validation_transform(cfg: TrainConfig, convention: str) -> Compose:
    """Whole volumes; healthy cases always get synthetic tumors (seeded per case), in every
    organ of the task."""
    return Compose(preprocess_transforms(cfg) + synthesis_transforms(cfg, convention, 1.0) + [
        TaskLabelsd("label", cfg.organ, convention),
        window_transform(cfg),
    ])


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """The 32-bit seed of one sample's random transforms."""
    return int(np.random.SeedSequence([int(seed), int(epoch), int(index)]).generate_state(1)[0])


class SeededDataset(Dataset):
    """A CacheDataset whose random transforms are re-seeded for every ``(epoch, index)`` key.

    Items may be fetched by ``(epoch, index)`` (from ``EpochSampler``) or by ``index``
    (epoch 0). The deterministic prefix of ``transform`` is cached once (``cache_rate``).

    ``reuse`` > 1 (training only): a case with its synthetic tumors (everything before the
    patch sampling, ``sampling_start``) is made once per ``reuse`` epochs, seeded by the first
    epoch of that group, and kept in memory (of each loader worker) while its group lasts; the
    patches and intensity jitter are still drawn for every ``(epoch, index)``. Synthesis then
    costs ``1 / reuse`` per step, and the samples stay the same whether the run was resumed or not.
    """

    def __init__(self, cases: Sequence[Case], transform: Compose, seed: int,
                 cache_rate: float = 1.0, cache_workers: int = 0, reuse: int = 1) -> None:
        self.transform, self.seed, self.reuse = transform, int(seed), max(1, int(reuse))
        items = [c.item() for c in cases]
        split = sampling_start(transform) if self.reuse > 1 else len(transform.transforms)
        self.head = Compose(transform.transforms[:split]) if split < len(transform.transforms) else transform
        self.tail = Compose(transform.transforms[split:]) if split < len(transform.transforms) else None
        self.base = CacheDataset(items, self.head, cache_rate=cache_rate,
                                 num_workers=cache_workers or None, progress=False)
        self._made: dict[tuple[int, int], Any] = {}

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, key: int | tuple[int, int]) -> Any:
        epoch, index = key if isinstance(key, (tuple, list)) else (0, key)
        epoch, index = int(epoch), int(index)
        if self.tail is None:
            self.transform.set_random_state(seed=sample_seed(self.seed, epoch, index))
            return self.base[index]
        case = self._case(epoch // self.reuse, index)
        self.tail.set_random_state(seed=sample_seed(self.seed, epoch, index))
        return self.tail({k: (v.clone() if isinstance(v, torch.Tensor) else v) for k, v in case.items()})

    def _case(self, group: int, index: int) -> Any:
        """The case with its tumors for epoch group ``group`` (made on first use; older groups
        are dropped, the sampler never returns to them)."""
        made = self._made.get((group, index))
        if made is None:
            self.head.set_random_state(seed=sample_seed(self.seed, group * self.reuse, index))
            made = self.base[index]
            self._made = {k: v for k, v in self._made.items() if k[0] >= group}
            self._made[(group, index)] = made
        return made


def sampling_start(transform: Compose) -> int:
    """Index of the first patch-sampling transform (the padding) of a training transform: what
    comes before makes a case with its tumors, what follows draws patches from it."""
    for i, t in enumerate(transform.transforms):
        if isinstance(t, SpatialPadd):
            return i
    return len(transform.transforms)


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
    "LoadVolumed", "TaskLabelsd", "task_labels_transform", "ClassIndicesd", "sampling_classes", "preprocess_transforms",
    "synthesis_transforms", "patch_transforms", "training_transform",
    "validation_transform", "SeededDataset", "EpochSampler", "sample_seed", "sampling_start", "VALIDATION_EPOCH",
]
