"""MONAI idioms: the RandTumorSynth / RandTumorSynthd pair in Compose, lazy Compose, CacheDataset
with workers, set_random_state and the per-sample record; and the MONAI parts that replaced
hand-written ones (Dice, warm-up + cosine, small-component removal, task labels) give the same
numbers as the formulas they replaced, which are written out here as the reference."""
from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from monai.data import CacheDataset, DataLoader, MetaTensor
from monai.transforms import Compose, Lambdad, Orientationd, ScaleIntensityRanged, Spacingd
from scipy import ndimage

from TumorSynthLib.anatomy.task_labels import task_label_array
from TumorSynthLib.core.volume import Volume
from TumorSynthLib.core.volume_io import save_volume
from TumorSynthLib.transforms import META_KEY, RandTumorSynth, RandTumorSynthd, SynthesisTally, read_record

KEYS = ("image", "label")
RAS = (("L", "R"), ("P", "A"), ("I", "S"))


@pytest.fixture(scope="module")
def sample(phantom_small):
    """A healthy phantom as MONAI dict: HU image and a binary liver label, channel first."""
    ct, organs, _ = phantom_small
    affine = torch.as_tensor(ct.affine)
    liver = (np.asarray(organs.array) == 5).astype(np.float32)
    return {"image": MetaTensor(torch.as_tensor(np.asarray(ct.array, np.float32))[None], affine=affine),
            "label": MetaTensor(torch.as_tensor(liver)[None], affine=affine)}


def _fresh(sample):
    return {k: v.clone() for k, v in sample.items()}


def _timeless(record: str | dict) -> dict:
    """A record without its timing (the only part that differs between equal runs)."""
    out = dict(json.loads(record) if isinstance(record, str) else record)
    out.pop("seconds")
    return out


def _synthd(seed: int | None = None, **kwargs) -> RandTumorSynthd:
    t = RandTumorSynthd(KEYS, organ="liver", **{"prob": 1.0, "stage_mix": {"early": 1.0}, **kwargs})
    if seed is not None:
        t.set_random_state(seed)
    return t


# -- the transform pair -------------------------------------------------------------------------
def test_array_and_dictionary_versions_agree_and_record_the_tumors(sample):
    array = RandTumorSynth(organ="liver", prob=1.0, stage_mix={"early": 1.0}).set_random_state(11)
    image, label = array(sample["image"], sample["label"])
    out = _synthd(11)(_fresh(sample))
    assert torch.equal(label, out["label"]) and torch.equal(image, out["image"])
    record = json.loads(out[META_KEY])
    assert record == read_record(out["image"])
    assert _timeless(record) == _timeless(read_record(image))
    assert record["applied"] and record["skipped"] is None and record["seconds"] > 0
    (tumor,) = record["tumors"]
    assert tumor["organ"] == "liver" and tumor["method"] == "handcrafted" and tumor["stage"] == "early"
    assert 4.0 < tumor["diameter_mm"] < 40.0 and len(tumor["center_ras"]) == 3
    assert isinstance(tumor["seed"], int)
    centre = np.linalg.solve(np.asarray(sample["image"].affine), [*tumor["center_ras"], 1.0])[:3]
    assert label[(0, *np.rint(centre).astype(int))] == 2                 # the centre is in the tumor


def test_randomize_makes_every_draw_and_set_random_state_repeats(sample):
    t = _synthd(3)
    first = [t.synth._do_transform, t.synth._stage, t.synth._count, t.synth._seed]
    t.randomize()
    drawn = [t.synth._do_transform, t.synth._stage, t.synth._count, t.synth._seed]
    t.set_random_state(3)
    t.randomize()
    assert [t.synth._do_transform, t.synth._stage, t.synth._count, t.synth._seed] == drawn != first
    a = _synthd(3)(_fresh(sample))
    b = _synthd(3)(_fresh(sample))
    c = _synthd(4)(_fresh(sample))
    assert torch.equal(a["label"], b["label"]) and _timeless(a[META_KEY]) == _timeless(b[META_KEY])
    assert not torch.equal(a["label"], c["label"])
    # Compose.set_random_state reaches the inner array transform
    pipeline = Compose([_synthd()])
    assert pipeline.set_random_state(9)(_fresh(sample))["label"].equal(pipeline.set_random_state(9)(_fresh(sample))["label"])


def test_not_drawn_samples_are_recorded_too(sample):
    out = _synthd(0, prob=0.0)(_fresh(sample))
    record = json.loads(out[META_KEY])
    assert record["applied"] is False and record["skipped"] == "not drawn" and record["tumors"] == []
    assert torch.equal(out["label"], sample["label"])


def test_lazy_compose_applies_the_pending_resampling_first(sample):
    """Under Compose(lazy=True) the transform sees the resampled voxels: the result equals running
    it on the output of the lazy resampling."""
    resample = [Orientationd(KEYS, axcodes="LPS", labels=RAS),
                Spacingd(KEYS, pixdim=(3.0, 3.0, 5.0), mode=("bilinear", "nearest"))]
    synth = _synthd()
    lazy = Compose([*resample, synth], lazy=True)
    synth.set_random_state(5)
    out = lazy(_fresh(sample))
    assert out["image"].pending_operations == [] and out["image"].shape[1:] == out["label"].shape[1:]
    resampled = Compose(resample, lazy=True)(_fresh(sample))
    expected = _synthd(5)(resampled)
    assert torch.equal(out["label"], expected["label"]) and torch.equal(out["image"], expected["image"])
    assert (out["label"] == 2).any() and torch.allclose(out["image"].affine, expected["image"].affine)
    assert synth.lazy is False and synth.requires_current_data is True
    assert [op["class"] for op in out["image"].applied_operations] == ["Orientation", "SpatialResample"]


def test_cachedataset_with_workers_is_repeatable_and_reports_through_the_data(tmp_path, phantom_small):
    ct, organs, _ = phantom_small
    files = []
    for i in range(2):
        save_volume(ct, tmp_path / f"ct{i}.nii.gz")
        save_volume(Volume((np.asarray(organs.array) == 5).astype(np.uint8), organs.affine), tmp_path / f"liver{i}.nii.gz")
        files.append({"image": str(tmp_path / f"ct{i}.nii.gz"), "label": str(tmp_path / f"liver{i}.nii.gz")})
    from monai.transforms import LoadImaged

    synth = _synthd(prob=0.7, num_tumors=(1, 2))
    pipeline = Compose([LoadImaged(KEYS, ensure_channel_first=True), synth,
                        ScaleIntensityRanged("image", -175, 250, 0.0, 1.0, clip=True)])
    dataset = CacheDataset(files * 2, pipeline, cache_rate=1.0, progress=False)

    def run() -> tuple[list[str], dict]:
        """MONAI's DataLoader seeds each worker's transforms from the loader's generator."""
        tally, records = SynthesisTally(), []
        seeded = torch.Generator().manual_seed(21)
        for batch in DataLoader(dataset, batch_size=2, num_workers=2, generator=seeded):
            tally.add(batch)
            records += [json.dumps(_timeless(r)) for r in batch[META_KEY]]
            for label, text in zip(batch["label"], batch[META_KEY]):
                assert bool((label == 2).any()) == json.loads(text)["applied"]
        return records, tally.stats

    (first, stats), (second, _) = run(), run()
    assert synth.stats["calls"] == 0                                      # all done in the workers
    assert first == second and len(first) == 4
    assert stats["samples"] == 4 and stats["applied"] + stats["failed"] + stats["rejected_quality"] <= 4
    assert stats["tumors"] == sum(len(json.loads(r)["tumors"]) for r in first) and stats["seconds"] > 0
    assert len({json.loads(r)["seed"] for r in first}) == 4               # each sample its own draw


# -- replaced hand-written parts: same numbers on fixed inputs ------------------------------------
def _old_dice(pred, ref) -> float:
    p, r = np.asarray(pred, dtype=bool), np.asarray(ref, dtype=bool)
    total = int(p.sum()) + int(r.sum())
    if total == 0:
        return float("nan")
    return 2.0 * int(np.count_nonzero(p & r)) / total


def _masks(seed: int, n: int = 40):
    rng = np.random.default_rng(seed)
    for i in range(n):
        shape = tuple(int(s) for s in rng.integers(3, 24, 3))
        pred = ndimage.binary_dilation(rng.random(shape) < 0.05 * (1 + i % 4))
        ref = ndimage.binary_dilation(rng.random(shape) < 0.04 * (1 + i % 3))
        if i % 5 == 0:
            ref[:] = False
        if i % 7 == 0:
            pred[:] = False
        yield pred, ref


def test_dice_is_monai_compute_dice_with_the_old_numbers():
    from TumorSynthLib.segmentation.metrics import dice

    for pred, ref in _masks(0):
        new, old = dice(pred, ref), _old_dice(pred, ref)
        assert (math.isnan(new) and math.isnan(old)) or new == old       # bit for bit (float64)
    empty = np.zeros((4, 4, 4), bool)
    full = np.ones((4, 4, 4), bool)
    assert math.isnan(dice(empty, empty))       # MONAI: NaN (ignore_empty) or 1.0; TumorSynth: NaN
    assert dice(full, empty) == 0.0 and dice(empty, full) == 0.0 and dice(full, full) == 1.0


def _old_warmup_cosine(warmup_steps: int, total_steps: int, floor: float = 0.01):
    warmup = max(0, int(warmup_steps))
    total = max(int(total_steps), warmup + 1)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


@pytest.mark.parametrize("warmup, total", [(0, 1), (0, 10), (5, 50), (100, 2000), (10, 5), (3, 4)])
def test_schedule_is_monai_warmup_cosine_with_the_old_rates(warmup, total):
    from monai.optimizers import WarmupCosineSchedule

    from TumorSynthLib.segmentation.optim import make_scheduler

    def rates(make) -> list[float]:
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=3e-4)
        sched, out = make(opt), []
        for _ in range(total + 20):                                       # past the end: held at 1 %
            out.append(sched.get_last_lr()[0])
            opt.step()
            sched.step()
        return out

    new = rates(lambda opt: make_scheduler(opt, warmup, total))
    old = rates(lambda opt: torch.optim.lr_scheduler.LambdaLR(opt, _old_warmup_cosine(warmup, total)))
    assert new == old
    assert isinstance(make_scheduler(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0), 2, 9),
                      WarmupCosineSchedule)


def test_schedule_resume_keeps_this_runs_shape():
    from TumorSynthLib.segmentation.optim import make_scheduler

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    short = make_scheduler(opt, 2, 10)
    for _ in range(6):
        opt.step()
        short.step()
    longer = make_scheduler(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0), 2, 100)
    longer.load_state_dict(short.state_dict())
    assert longer.last_epoch == 6 and longer.total_steps == 100
    assert longer.lr_lambda(6) == pytest.approx(_old_warmup_cosine(2, 100)(6))


def _old_remove_small(mask, spacing, min_radius_mm):
    mask = np.asarray(mask, dtype=bool)
    if min_radius_mm <= 0 or not mask.any():
        return mask.copy(), 0
    labels, n = ndimage.label(mask, structure=np.ones((3, 3, 3), bool))
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    min_voxels = (4.0 / 3.0) * np.pi * min_radius_mm**3 / float(np.prod(spacing))
    keep = sizes >= min_voxels
    keep[0] = False
    return keep[labels], int(np.count_nonzero(~keep[1:]))


def test_small_component_removal_is_monai_with_the_old_result():
    from TumorSynthLib.segmentation.postprocess import remove_small_components

    rng = np.random.default_rng(1)
    spacings = [(1.0, 1.0, 1.0), (0.7, 0.7, 2.5), (3.75, 3.75, 6.0), (1.5, 5.0, 1.0)]
    for i, (pred, _ref) in enumerate(_masks(2, 24)):
        spacing = spacings[i % 4]
        radius = float(rng.choice([0.0, 1.0, 2.0, 3.0, 4.5]))
        kept, removed = remove_small_components(pred, spacing, radius)
        old_kept, old_removed = _old_remove_small(pred, spacing, radius)
        assert np.array_equal(kept, old_kept) and removed == old_removed
    # a component of exactly the threshold volume is kept (scikit-image 0.26 reads MONAI's
    # min_size inclusively; remove_small_components compensates)
    mask = np.zeros((9, 9, 9), bool)
    mask[1:4, 1:4, 1:4] = True                                            # 27 mm^3
    mask[6, 6, 6] = True                                                  # 1 mm^3
    radius = (3 * 27 / (4 * np.pi)) ** (1 / 3) - 1e-9                     # needs >= 26.99... voxels
    kept, removed = remove_small_components(mask, (1.0, 1.0, 1.0), radius)
    assert kept.sum() == 27 and removed == 1


def test_task_labels_are_monai_maplabelvalued_with_the_old_labels(tmp_path, phantom_small):
    """MapLabelValued after resampling and cropping gives the labels the old TaskLabelsd gave
    right after loading (a per-value mapping commutes with nearest resampling)."""
    from monai.transforms import CropForegroundd

    from TumorSynthLib.segmentation.pipeline import (
        RAS_LABELS,
        LoadVolumed,
        is_body,
        preprocess_transforms,
        task_labels_transform,
    )

    ct, organs, _ = phantom_small
    item = {"image": str(save_volume(ct, tmp_path / "ct.nii.gz")),
            "label": str(save_volume(organs, tmp_path / "labels.nii.gz"))}
    cfg = SimpleNamespace(organ="liver", spacing_mm=4.0)

    def old_task_labels(lab):
        arr = task_label_array(np.rint(lab.numpy()).astype(np.int32), "liver", "totalseg")
        out = lab.clone()
        out.copy_(torch.from_numpy(arr.astype(np.float32)))
        return out

    reference = Compose([
        LoadVolumed(KEYS), Lambdad("label", old_task_labels), Orientationd(KEYS, axcodes="RAS", labels=RAS_LABELS),
        Spacingd(KEYS, pixdim=(4.0,) * 3, mode=("bilinear", "nearest")),
        CropForegroundd(KEYS, source_key="image", select_fn=is_body, margin=2, allow_smaller=True),
    ])(dict(item))
    new = Compose(preprocess_transforms(cfg) + [task_labels_transform("label", "liver", "totalseg")])(dict(item))
    assert torch.equal(new["label"], reference["label"]) and torch.equal(new["image"], reference["image"])
    assert set(np.unique(new["label"].numpy()).tolist()) == {0.0, 1.0}
    # every id of every convention maps as task_label_array says
    for convention in ("binary", "msd", "kits", "totalseg"):
        mapping = task_labels_transform("label", "kidney", convention)
        ids = np.asarray(mapping.mapper.orig_labels, dtype=np.float32)
        mapped = mapping({"label": torch.as_tensor(ids)[None, :, None, None]})["label"].numpy().ravel()
        assert mapped.tolist() == task_label_array(ids.astype(np.int32), "kidney", convention).tolist()


def test_the_callers_metadata_is_left_alone(sample):
    image = sample["image"].clone()
    for prob in (0.0, 1.0):
        out = RandTumorSynth(organ="liver", prob=prob, stage_mix={"early": 1.0}).set_random_state(1)(image, sample["label"])[0]
        assert META_KEY in out.meta and META_KEY not in image.meta
