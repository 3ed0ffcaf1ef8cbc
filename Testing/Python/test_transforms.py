"""RandTumorSynthd: online synthesis in MONAI pipelines (phantoms stand in for real CT)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from monai.data import CacheDataset, DataLoader, MetaTensor
from monai.transforms import Compose, ScaleIntensityRanged
from monai.utils import set_determinism

from TumorSynthLib.core.errors import InputError
from TumorSynthLib.anatomy.task_labels import task_label_array
from TumorSynthLib.segmentation.pipeline import LoadVolumed, task_labels_transform
from TumorSynthLib.transforms import RandTumorSynthd, parse_stage_mix
from TumorSynthLib.core.volume_io import load_volume


@pytest.fixture(scope="module")
def healthy_sample(seg_phantom_dataset):
    """A healthy 3 mm phantom as a MONAI dict: HU image, task labels {0, 1} (liver)."""
    folder = seg_phantom_dataset.root / "cases" / "phantom0"
    ct, organs = load_volume(folder / "image.nii.gz"), load_volume(folder / "label.nii.gz")
    affine = torch.as_tensor(ct.affine)
    labels = task_label_array(organs.array, "liver", "totalseg").astype(np.float32)
    return {"image": MetaTensor(torch.from_numpy(ct.array.astype(np.float32)[None]), affine=affine),
            "label": MetaTensor(torch.from_numpy(labels[None]), affine=affine),
            "raw_label": MetaTensor(torch.from_numpy(organs.array.astype(np.float32)[None]), affine=affine)}


def _synth(seed: int = 0, **kwargs) -> RandTumorSynthd:
    t = RandTumorSynthd(("image", "label"), organ="liver", method="handcrafted",
                        **{"prob": 1.0, "stage_mix": {"early": 1.0}, **kwargs})
    t.set_random_state(seed=seed)
    return t


def test_adds_a_tumor_in_hu_and_leaves_the_input_alone(healthy_sample):
    before_image = healthy_sample["image"].clone()
    t = _synth()
    out = t({"image": healthy_sample["image"], "label": healthy_sample["label"]})
    label = out["label"].numpy()[0]
    tumor = label == 2
    assert tumor.any() and t.stats["applied"] == 1
    assert np.all(healthy_sample["label"].numpy()[0][tumor] == 1)        # inside the former organ
    changed = out["image"].numpy()[0] != before_image.numpy()[0]
    assert changed[tumor].mean() > 0.9
    assert float(out["image"].max()) > 100                              # still HU, not windowed
    assert torch.equal(healthy_sample["image"], before_image)           # input untouched
    assert isinstance(out["image"], MetaTensor)
    assert torch.allclose(out["image"].affine, healthy_sample["image"].affine)


def test_same_seed_same_tumor_other_seed_other_tumor(healthy_sample):
    sample = {"image": healthy_sample["image"], "label": healthy_sample["label"]}
    a, b, c = (_synth(s)(dict(sample))["label"].numpy() for s in (3, 3, 4))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_skips_real_tumor_missing_organ_and_prob_zero(healthy_sample):
    with_tumor = healthy_sample["label"].clone()
    arr = with_tumor.numpy()
    organ_voxel = np.argwhere(arr[0] == 1)[0]
    with_tumor[(0, *organ_voxel)] = 2.0
    t = _synth()
    out = t({"image": healthy_sample["image"], "label": with_tumor})
    assert torch.equal(out["label"], with_tumor) and t.stats["skipped_real_tumor"] == 1

    empty = torch.zeros_like(healthy_sample["label"])
    out = t({"image": healthy_sample["image"], "label": empty})
    assert torch.equal(out["label"], empty) and t.stats["skipped_no_organ"] == 1

    never = _synth(prob=0.0)
    out = never({"image": healthy_sample["image"], "label": healthy_sample["label"]})
    assert torch.equal(out["label"], healthy_sample["label"]) and never.stats["applied"] == 0


def test_float_labels_count_as_the_nearest_id(healthy_sample):
    """Labels saved with a scale factor come back a rounding error off their ids: a real tumor
    at 2 + 1 ulp is still a real tumor, an organ at 0.9999999 still the organ."""
    label = healthy_sample["label"].clone()
    organ = label == 1
    label[organ] = float(np.float32(1.0) - np.float32(1e-7))
    t = _synth()
    out = t({"image": healthy_sample["image"], "label": label})
    assert t.stats["applied"] == 1 and (out["label"] == 2).any()
    organ_voxel = np.argwhere(organ.numpy()[0])[0]
    label[(0, *organ_voxel)] = float(np.float32(2.0) + np.float32(2.4e-7))
    out = t({"image": healthy_sample["image"], "label": label})
    assert torch.equal(out["label"], label) and t.stats["skipped_real_tumor"] == 1


def test_other_label_conventions_get_their_tumor_id(healthy_sample):
    t = _synth(labels="totalseg")
    out = t({"image": healthy_sample["image"], "label": healthy_sample["raw_label"]})
    values = set(np.unique(out["label"].numpy()).astype(int).tolist())
    assert 205 in values and 5 in values and 7 in values                 # liver tumor; organs kept


def test_compose_cachedataset_and_workers_are_deterministic(seg_phantom_dataset):
    items = [{"image": str(p / "image.nii.gz"), "label": str(p / "label.nii.gz")}
             for p in sorted((seg_phantom_dataset.root / "cases").iterdir())[:2]]
    keys = ("image", "label")
    pipeline = Compose([
        LoadVolumed(keys), task_labels_transform("label", "liver", "totalseg"),
        RandTumorSynthd(keys, organ="liver", method="handcrafted", prob=1.0, stage_mix="early=1"),
        ScaleIntensityRanged("image", -175, 250, 0.0, 1.0, clip=True),
    ])
    dataset = CacheDataset(items * 2, pipeline, cache_rate=1.0, progress=False)

    def tumor_voxels() -> list[int]:
        set_determinism(seed=7)
        loader = DataLoader(dataset, batch_size=1, num_workers=2)
        return [int((batch["label"] == 2).sum()) for batch in loader]

    first, second = tumor_voxels(), tumor_voxels()
    set_determinism(seed=None)
    assert first == second
    assert all(n > 0 for n in first)
    assert len(set(first)) > 1                                            # not the same tumor each time


def test_parse_stage_mix_and_bad_arguments():
    assert parse_stage_mix("early=0.8,intermediate=0.2") == pytest.approx({"early": 0.8, "intermediate": 0.2})
    assert parse_stage_mix({"early": 2, "advanced": 2}) == {"early": 0.5, "advanced": 0.5}
    for bad in ("early", "huge=1", "early=-1", "early=0"):
        with pytest.raises(InputError):
            parse_stage_mix(bad)
    with pytest.raises(InputError):
        RandTumorSynthd(("image",))
    with pytest.raises(InputError):
        RandTumorSynthd(("image", "label"), prob=1.5)
    t = _synth()
    with pytest.raises(InputError, match="MetaTensor"):
        t({"image": np.zeros((1, 8, 8, 8), np.float32), "label": np.ones((1, 8, 8, 8), np.float32)})


def test_quality_filter_hook_rejects_and_accepts(healthy_sample):
    """The one quality contract: (image ROI HU, tumor mask, ROI affine, organ) -> P."""
    seen = []

    def strict(image_roi, mask, affine, organ):
        seen.append((int(mask.sum()), organ, image_roi.shape == mask.shape, affine.shape))
        return 0.1

    sample = {"image": healthy_sample["image"], "label": healthy_sample["label"]}
    t = _synth(quality=strict, max_tries=2)
    out = t(dict(sample))
    assert torch.equal(out["label"], sample["label"])                    # every draw rejected
    assert len(seen) == 2 and all(n > 0 and organ == "liver" and same and aff == (4, 4)
                                  for n, organ, same, aff in seen)
    assert t.stats["rejected_quality"] == 1 and t.stats["applied"] == 0
    assert json.loads(out["image"].meta["tumorsynth"])["skipped"] == "rejected by quality"
    lenient = _synth(quality=lambda *args: 0.9, threshold=0.7)
    assert (lenient(dict(sample))["label"] == 2).any()

def test_has_any_skips_the_look_up_only_when_the_ids_are_out_of_range():
    from TumorSynthLib.core.volume import has_any, is_any

    labels = np.array([[[0.0, 5.0], [4.6, 104.4]]], dtype=np.float32)
    assert not has_any(labels, [205]) and not has_any(labels, []) and has_any(labels, [104, 205])
    assert has_any(labels, [5]) and not has_any(labels, [3])              # in range, absent
    assert is_any(labels, [5]).sum() == 2 and is_any(labels, [1, 104]).sum() == 1
    assert has_any(labels.astype(np.int16), [5]) and not has_any(labels.astype(np.int16), [-3])
