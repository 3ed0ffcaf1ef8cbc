"""Multi-organ tasks (the default model's label set): one 3-class model for the liver, pancreas and
kidneys; labels, patch sampling, online synthesis in every organ, checkpoints, organ coverage,
and the time-fitted schedule."""
from __future__ import annotations

import json

import numpy as np
import pytest

from Testing.fixtures.models import tiny_train_kwargs, write_untrained_checkpoint
from TumorSynthLib.core.errors import InputError, ModelError
from TumorSynthLib.segmentation import train as train_module
from TumorSynthLib.segmentation.checkpoint import check_label_set, load_checkpoint
from TumorSynthLib.segmentation.config import TrainConfig, task_methods
from TumorSynthLib.segmentation.datasets import check_cases, find_cases
from TumorSynthLib.segmentation.tasks import (
    covers, task_label_array, task_label_names, task_name, task_organs,
)
from TumorSynthLib.segmentation.pipeline import SeededDataset, sampling_classes, training_transform

ABDOMEN = "liver,pancreas,kidney"


def test_task_names_labels_and_conventions():
    assert task_organs("Liver, kidney_left,liver") == ("liver", "kidney")
    assert task_name(["pancreas", "Kidney"]) == "pancreas,kidney"
    assert task_methods("handcrafted, cellular,handcrafted") == ("handcrafted", "cellular")
    with pytest.raises(InputError, match="unknown organ"):
        task_organs("liver,brain")
    labels = np.array([0, 5, 205, 7, 207, 2, 203, 1, 64])           # totalseg ids
    assert task_label_array(labels, ABDOMEN, "totalseg").tolist() == [0, 1, 2, 1, 2, 1, 2, 0, 0]
    assert task_label_array(labels, "pancreas", "totalseg").tolist() == [0, 0, 0, 1, 2, 0, 0, 0, 0]
    assert sampling_classes(labels, ABDOMEN, "totalseg").tolist() == [0, 1, 4, 2, 5, 3, 6, 0, 0]
    assert task_label_names(ABDOMEN) == {0: "background", 1: "liver|pancreas|kidney", 2: "tumor"}
    assert task_label_names("kidney") == {0: "background", 1: "kidney", 2: "kidney_tumor"}
    assert covers(ABDOMEN, "kidney") and covers(ABDOMEN, "liver,pancreas")
    assert not covers("liver", "liver,pancreas")


def test_single_organ_labels_cannot_make_a_multi_organ_task(seg_phantom_dataset, tmp_path):
    from TumorSynthLib.core.volume_io import load_volume, save_volume

    cases, _ = find_cases(seg_phantom_dataset.datalist)
    label = load_volume(cases[0].label)
    msd = save_volume(label.with_array((label.array == 5).astype(np.int16)), tmp_path / "msd.nii.gz")
    cases[0].label = str(msd)
    kept, skipped = check_cases(cases[:1], ABDOMEN, "msd")
    assert kept == [] and "tell them apart" in skipped[0]["reason"]


def test_online_tumors_in_every_organ_and_patches_on_each(seg_phantom_dataset, tmp_path):
    cfg = TrainConfig(**tiny_train_kwargs(seg_phantom_dataset, tmp_path / "run", organ=ABDOMEN,
                                          method="handcrafted,cellular", prob=1.0, samples_per_case=6,
                                          stage_mix={"intermediate": 1.0}))
    cases, _ = find_cases(seg_phantom_dataset.datalist)
    ds = SeededDataset(cases[:1], training_transform(cfg, "totalseg"), seed=0)
    synths = [t for t in ds.transform.transforms if type(t).__name__ == "RandTumorSynthd"]
    assert [(s.synth.organ, s.synth.method) for s in synths] == [(o, m) for o in ("liver", "pancreas", "kidney")
                                                     for m in ("handcrafted", "cellular")]
    assert [s.synth.prob for s in synths] == [0.5, 1.0] * 3               # each organ: one method, 50/50
    patches = ds[(0, 0)]
    assert len(patches) == 6 and not {"crop_classes", "crop_indices"} & set(patches[0])
    assert all(tuple(p["image"].shape) == (1, 32, 32, 32) for p in patches)
    values = set(np.unique(np.concatenate([np.unique(p["label"].numpy()) for p in patches])).tolist())
    assert values <= {0.0, 1.0, 2.0} and 2.0 in values
    applied = sum(s.stats["applied"] for s in synths)
    assert applied == 3 and sum(s.stats["failed"] for s in synths) == 0     # one tumor per organ


def test_multi_organ_run_checkpoint_and_coverage(seg_phantom_dataset, tmp_path):
    from TumorSynthLib.core.events import EventStream

    kwargs = tiny_train_kwargs(seg_phantom_dataset, tmp_path / "run", organ="kidney, liver,pancreas",
                               method="handcrafted,cellular", max_steps=3, val_every=0, ckpt_every=0)
    result = train_module.train(TrainConfig(**kwargs), EventStream("none", show_bar=False))
    payload = load_checkpoint(result.last)
    assert payload["config"]["organ"] == "kidney,liver,pancreas"
    assert payload["label_names"] == {0: "background", 1: "kidney|liver|pancreas", 2: "tumor"}
    check_label_set(payload, result.last, "pancreas")               # covers each of its organs
    check_label_set(payload, result.last, "liver,kidney")
    single = load_checkpoint(write_untrained_checkpoint(tmp_path / "liver.pt", organ="liver"))
    with pytest.raises(ModelError, match="covers the pancreas"):
        check_label_set(single, "liver.pt", "pancreas")


def test_fit_schedule_ends_the_cosine_within_the_budget(seg_phantom_dataset, tmp_path, monkeypatch):
    from TumorSynthLib.core.events import EventStream
    from TumorSynthLib.segmentation import optim

    # keep 20 % of the 12 s budget in reserve: one slow step on a busy host must not reach the limit first
    for name, value in (("FIT_SKIP", 2), ("FIT_MEASURE", 3), ("FIT_EVERY", 4), ("FIT_WINDOW", 8), ("FIT_MARGIN", 0.2)):
        monkeypatch.setattr(optim, name, value)
    kwargs = tiny_train_kwargs(seg_phantom_dataset, tmp_path / "run", max_steps=100000, max_minutes=0.2,
                               fit_schedule=True, val_every=0, ckpt_every=0, warmup_steps=1)
    result = train_module.train(TrainConfig(**kwargs), EventStream("none", show_bar=False))
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert 5 < saved["max_steps"] < 100000 and result.stopped == "max_steps"
    assert result.step == saved["max_steps"] and result.seconds < 0.2 * 60 * 1.2
    payload = load_checkpoint(result.last)
    assert payload["config"]["max_steps"] == result.step
    lr = payload["scheduler"]["_last_lr"][0]
    assert lr == pytest.approx(kwargs["lr"] * 0.01, rel=1e-6)      # annealed to the floor
    with pytest.raises(InputError, match="needs --max-minutes"):
        TrainConfig(**{**kwargs, "max_minutes": None})


def test_synth_reuse_keeps_tumors_for_a_group_of_epochs_and_draws_new_patches(seg_phantom_dataset, tmp_path):
    cfg = TrainConfig(**tiny_train_kwargs(seg_phantom_dataset, tmp_path / "run", organ=ABDOMEN, prob=1.0,
                                          stage_mix={"intermediate": 1.0}, synth_reuse=2))
    cases, _ = find_cases(seg_phantom_dataset.datalist)
    ds = SeededDataset(cases[:1], training_transform(cfg, "totalseg"), seed=0, reuse=2)
    synths = [t for t in ds.head.transforms if type(t).__name__ == "RandTumorSynthd"]
    first = ds[(0, 0)]
    made = sum(s.stats["applied"] for s in synths)
    second = ds[(1, 0)]                                  # same group: the case is not made again
    assert sum(s.stats["applied"] for s in synths) == made > 0
    assert not all(np.array_equal(a["image"], b["image"]) for a, b in zip(first, second))
    again = SeededDataset(cases[:1], training_transform(cfg, "totalseg"), seed=0, reuse=2)[(1, 0)]
    assert all(np.array_equal(a["image"], b["image"]) for a, b in zip(second, again))  # resume-safe
    ds[(2, 0)]                                           # next group: new tumors, the old case dropped
    assert sum(s.stats["applied"] for s in synths) > made and list(ds._made) == [(1, 0)]
    with pytest.raises(InputError, match="synth-reuse"):
        TrainConfig(**{**tiny_train_kwargs(seg_phantom_dataset, tmp_path / "r2"), "synth_reuse": 0})
