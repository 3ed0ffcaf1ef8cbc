"""Metrics, post-processing, `segment` and `evaluate` (tiny phantom-trained model; the held-out
phantom's tumor is a synthetic `handcrafted` one standing in for a real tumor)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from Testing.fixtures.models import write_untrained_checkpoint
from TumorSynthLib.cli import main
from TumorSynthLib.core.errors import GeometryError, InputError, ModelError
from TumorSynthLib.segmentation.device import ResourceError, is_out_of_memory
from TumorSynthLib.segmentation.infer import load_segmentation_model, predict_logits, segment_volume
from TumorSynthLib.segmentation.metrics import (
    dice,
    evaluate_case,
    size_bucket,
    summarize,
    surface_dice,
)
from TumorSynthLib.segmentation.postprocess import keep_touching, model_min_radius_mm, remove_small_components
from TumorSynthLib.core.volume import Volume
from TumorSynthLib.core.volume_io import load_volume


def _ball(shape, center, radius_mm, spacing=(1.0, 1.0, 1.0)):
    grids = np.ogrid[tuple(slice(0, n) for n in shape)]
    return sum(((g - c) * s) ** 2 for g, c, s in zip(grids, center, spacing)) <= radius_mm**2


def _vol(array, spacing=(1.0, 1.0, 1.0)):
    return Volume(array.astype(np.uint8), np.diag([*spacing, 1.0]))


# -- metrics ------------------------------------------------------------------------------------
def test_size_buckets_and_dice():
    assert [size_bucket(d) for d in (0.0, 9.99, 10.0, 19.9, 20.0, 49.9, 50.0, 300.0)] == \
        ["<10", "<10", "10-20", "10-20", "20-50", "20-50", ">50", ">50"]
    a = np.zeros((4, 4, 4), bool)
    b = a.copy()
    assert np.isnan(dice(a, b))
    a[0, 0, :2] = True
    b[0, 0, 1:3] = True
    assert dice(a, b) == pytest.approx(0.5)


def test_surface_dice_is_spacing_aware():
    ref = _ball((40, 40, 40), (20, 20, 20), 10)
    assert surface_dice(ref, ref, (1, 1, 1)) == pytest.approx(1.0)
    shifted = np.roll(ref, 3, axis=0)
    close = surface_dice(shifted, ref, (1.0, 1.0, 1.0), tolerance_mm=2.0)
    coarse = surface_dice(shifted, ref, (3.0, 1.0, 1.0), tolerance_mm=2.0)   # 3 voxels = 9 mm
    assert 0.0 < coarse < close < 1.0
    assert surface_dice(np.zeros_like(ref), ref, (1, 1, 1)) == 0.0


def test_tumor_wise_detection_by_size_and_false_positives():
    shape = (120, 60, 60)
    ref = np.zeros(shape, np.uint8)
    ref[_ball(shape, (60, 30, 30), 50)] = 1                               # organ
    small, mid, large = _ball(shape, (20, 30, 30), 3.5), _ball(shape, (50, 30, 30), 7), _ball(shape, (85, 30, 30), 13)
    ref[small | mid | large] = 2
    pred = (ref >= 1).astype(np.uint8)
    pred[_ball(shape, (52, 30, 30), 5)] = 2                               # hits the 14 mm tumor
    pred[_ball(shape, (85, 30, 30), 12)] = 2                              # hits the 26 mm tumor
    pred[_ball(shape, (60, 12, 30), 6)] = 2                               # false positive (12 mm)
    pred[60, 50, 30] = 2                                                  # 1 voxel: below 3 mm, ignored
    case = evaluate_case(_vol(pred), _vol(ref), "c1")
    assert case["n_ref_tumors"] == 3 and case["n_detected"] == 2
    assert case["n_pred_tumors"] == 3 and case["false_positives"] == 1
    assert [t["bucket"] for t in case["tumors"]] == ["<10", "10-20", "20-50"]
    assert 0.0 < case["tumor_dsc"] < 1.0 and 0.9 < case["organ_dsc"] <= 1.0
    summary = summarize([case])
    assert summary["by_size"]["<10"]["sensitivity"] == 0.0
    assert summary["by_size"]["10-20"]["sensitivity"] == 1.0
    assert summary["by_size"]["20-50"]["sensitivity"] == 1.0
    assert summary["by_size"][">50"]["sensitivity"] is None
    assert summary["by_size"]["10-20"]["false_positives"] == 1
    assert summary["sensitivity"] == pytest.approx(2 / 3)


def test_case_without_reference_tumor_and_grid_mismatch():
    ref = np.zeros((20, 20, 20), np.uint8)
    ref[5:15, 5:15, 5:15] = 1
    case = evaluate_case(_vol(ref), _vol(ref))
    assert np.isnan(case["tumor_dsc"]) and case["false_positives"] == 0
    with pytest.raises(GeometryError):
        evaluate_case(_vol(ref, (2.0, 1.0, 1.0)), _vol(ref))


def test_postprocess_size_filter_and_organ_constraint():
    spacing = (1.0, 1.0, 3.0)
    shape = (60, 60, 20)
    mask = _ball(shape, (15, 15, 10), 2.0, spacing) | _ball(shape, (40, 40, 10), 6.0, spacing)
    kept, removed = remove_small_components(mask, spacing, 3.0)
    assert removed == 1 and kept[40, 40, 10] and not kept[15, 15, 10]
    organ = np.zeros(shape, bool)
    organ[30:, 30:, :] = True
    inside, dropped = keep_touching(mask, organ)
    assert dropped == 1 and inside[40, 40, 10] and not inside[15, 15, 10]


def test_a_models_default_size_filter_follows_its_voxels():
    """3 mm for fine models; a 3 mm model drops components under 3 of its voxels (4.5 mm)."""
    assert model_min_radius_mm((1.5, 1.5, 1.5)) == 3.0
    assert model_min_radius_mm((3.0, 3.0, 3.0)) == pytest.approx(4.5)
    assert model_min_radius_mm((2.0, 2.0, 5.0)) == pytest.approx(7.5)


# -- faults -------------------------------------------------------------------------------------
def test_bad_checkpoints_are_model_errors(tmp_path):
    good = write_untrained_checkpoint(tmp_path / "good.pt")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ModelError, match="corrupt"):
        load_segmentation_model(truncated, torch.device("cpu"))
    other = write_untrained_checkpoint(tmp_path / "four.pt", out_channels=4)
    with pytest.raises(ModelError, match="another label set"):
        load_segmentation_model(other, torch.device("cpu"))
    with pytest.raises(ModelError, match="pancreas"):
        load_segmentation_model(good, torch.device("cpu"), organ="pancreas")
    pickled = tmp_path / "pickled.pt"
    torch.save({"format": "tumorsynth-segmentation", "evil": tmp_path}, pickled)   # not weights-only
    with pytest.raises(ModelError):
        load_segmentation_model(pickled, torch.device("cpu"))


def test_out_of_memory_becomes_a_resource_error():
    def exploding(_x):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    with pytest.raises(ResourceError, match="--patch 32"):
        predict_logits(exploding, torch.zeros(1, 1, 16, 16, 16), (64, 64, 64), torch.device("cpu"))
    assert is_out_of_memory(RuntimeError("DefaultCPUAllocator: can't allocate memory"))
    assert not is_out_of_memory(RuntimeError("shape mismatch"))


def test_segment_refuses_organs_without_the_organ(tmp_path):
    model = load_segmentation_model(write_untrained_checkpoint(tmp_path / "m.pt"), torch.device("cpu"))
    image = Volume(np.zeros((16, 16, 16), np.float32), np.diag([3.0, 3.0, 3.0, 1.0]))
    with pytest.raises(InputError, match="no liver"):
        segment_volume(model, image, image.with_array(np.zeros((16, 16, 16), np.int16)))


# -- with the tiny trained model ----------------------------------------------------------------
def test_segment_and_evaluate_cli(tiny_segmentation_run, tmp_path, capsys):
    ds = tiny_segmentation_run.dataset
    pred = tmp_path / "pred" / "phantom4.nii.gz"
    args = ["segment", "--model", str(tiny_segmentation_run.checkpoint), "--image", str(ds.heldout_image),
            "--out", str(pred), "--device", "cpu", "--events", "jsonl"]
    assert main(args) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [e["event"] for e in events] == ["start", "progress", "done"]
    image, labels = load_volume(ds.heldout_image), load_volume(pred)
    assert labels.shape == image.shape and np.allclose(labels.affine, image.affine)
    assert set(np.unique(labels.array)) <= {0, 1, 2}
    summary = json.loads(pred.with_name("phantom4.json").read_text())
    assert summary["tumor_count"] == len(summary["tumors"])
    assert all(t["volume_ml"] > 0 and t["equivalent_diameter_mm"] >= 6.0 for t in summary["tumors"])

    out = tmp_path / "eval"
    assert main(["evaluate", "--pred", str(pred), "--gt", str(ds.heldout_label), "--organ", "liver",
                 "--images", str(ds.heldout_image), "--out", str(out)]) == 0
    for name in ("cases.csv", "tumors.csv", "summary.json", "sensitivity_by_size.png",
                 "dsc_per_case.png", "worst_cases.png"):
        assert (out / name).stat().st_size > 0, name
    result = json.loads((out / "summary.json").read_text())
    assert result["summary"]["n_ref_tumors"] == 1
    assert set(result["summary"]["by_size"]) == {"<10", "10-20", "20-50", ">50"}
    assert result["summary"]["organ_dsc"]["mean"] > 0.0


def test_segment_output_follows_the_input_grid(tiny_segmentation_run):
    """The same scan stored flipped along i gives the same labels, flipped back."""
    ds = tiny_segmentation_run.dataset
    model = load_segmentation_model(tiny_segmentation_run.checkpoint, torch.device("cpu"))
    image = load_volume(ds.heldout_image)
    flip = np.eye(4)
    flip[0, 0], flip[0, 3] = -1.0, image.shape[0] - 1
    flipped = Volume(image.array[::-1].copy(), image.affine @ flip)
    organs = load_volume(ds.heldout_label)
    a, summary = segment_volume(model, image, organs, overlap=0.25)
    b, _ = segment_volume(model, flipped, Volume(organs.array[::-1].copy(), flipped.affine), overlap=0.25)
    assert np.mean(a.array == b.array[::-1]) > 0.999
    assert summary["organ_source"] == "given"
    assert summary["min_radius_mm"] == pytest.approx(model.min_radius_mm)   # the model's own filter
    liver = np.isin(organs.array, (5, 205))
    assert np.all(a.array[~liver] != 1)                                   # the given organ is used
