"""QualityFilter: P = |synthetic tumor AND predicted tumor| / |synthetic tumor| on a crop.

Most checks use a *pointwise* stand-in model (tumor where the windowed HU lies in a band), so
the expected P is known by construction and any error in cropping, windowing, resampling or
padding shows up as a wrong P. The tiny trained fixture model and random-weight checkpoints
cover loading and the ModelError cases.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from TumorSynthLib import TumorSpec, synthesize
from TumorSynthLib.core.errors import InputError, ModelError
from TumorSynthLib.segmentation.quality import QualityFilter
from TumorSynthLib.segmentation.infer import LoadedModel, segment_volume
from TumorSynthLib.core.volume import Volume, bounding_box
from Testing.fixtures.models import write_untrained_checkpoint

WINDOW = (-175.0, 250.0)


class BandModel(torch.nn.Module):
    """Tumor where lo_hu <= HU < hi_hu, organ above, background below (on windowed input)."""

    def __init__(self, lo_hu: float, hi_hu: float) -> None:
        super().__init__()
        scale = lambda hu: (hu - WINDOW[0]) / (WINDOW[1] - WINDOW[0])  # noqa: E731
        self.lo, self.hi = scale(lo_hu), scale(hi_hu)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tumor = ((x >= self.lo) & (x < self.hi)).float()
        organ = (x >= self.hi).float()
        return 10.0 * torch.cat([1.0 - tumor - organ, organ, tumor], dim=1)


def band_model(lo_hu: float, hi_hu: float, organ: str = "liver") -> LoadedModel:
    names = {0: "background", 1: organ, 2: f"{organ}_tumor"}
    return LoadedModel(model=BandModel(lo_hu, hi_hu).eval(), path=Path("band-model"), organ=organ,
                       label_names=names, spacing_mm=(2.5, 2.5, 2.5), window_hu=WINDOW,
                       patch=(32, 32, 32), device=torch.device("cpu"), payload_info={})


def ball(shape, spacing, center_vox, radius_mm) -> np.ndarray:
    grid = np.indices(shape, dtype=float)
    d2 = sum(((g - c) * s) ** 2 for g, c, s in zip(grid, center_vox, spacing))
    return d2 <= radius_mm**2


@pytest.fixture(scope="module")
def liver_blob(phantom_small):
    """(image with a 0 HU ball in the liver, same image without it, ball mask, other ball)."""
    from scipy import ndimage

    ct, organs, _ = phantom_small
    liver = organs.array == 5
    depth = ndimage.distance_transform_edt(liver, sampling=ct.spacing)
    center = np.array(np.unravel_index(int(np.argmax(depth)), liver.shape), dtype=float)
    blob = ball(ct.shape, ct.spacing, center, 16.0) & liver
    other = ball(ct.shape, ct.spacing, center + np.array([8.0, 0.0, 0.0]), 16.0) & liver & ~blob
    arr = np.array(ct.array, copy=True)
    arr[blob] = 0.0
    return Volume(arr, ct.affine), ct, blob, other


def test_found_tumor_scores_high_and_missed_tumor_low(liver_blob):
    with_blob, without, blob, _ = liver_blob
    qf = QualityFilter(band_model(-60.0, 40.0))
    assert qf.score_volume(with_blob, blob) > 0.85
    assert qf.score_volume(without, blob) < 0.1


def test_score_is_the_overlap_fraction_of_segment_volume_on_the_crop(liver_blob):
    with_blob, _, blob, other = liver_blob
    qf = QualityFilter(band_model(-60.0, 40.0))
    mask = blob | other                       # half found, half not
    box = qf.context_box(with_blob, mask)
    pred, _ = segment_volume(qf.loaded, with_blob.crop(box), min_radius_mm=0.0)
    expected = np.count_nonzero(mask[box.slices] & (pred.array == 2)) / np.count_nonzero(mask)
    assert 0.2 < expected < 0.8
    assert qf.score_volume(with_blob, mask) == pytest.approx(expected, abs=1e-9)
    # the model never sees the whole scan: the crop is the tumor's box plus the margin
    tumor_mm = np.asarray(bounding_box(mask).shape) * with_blob.spacing
    extent_mm = np.asarray(box.shape) * with_blob.spacing
    assert np.all(extent_mm <= np.maximum(tumor_mm + 2 * qf.margin_mm, 32 * 2.5) + 2 * with_blob.spacing)
    assert np.prod(box.shape) < 0.1 * np.prod(with_blob.shape)


def test_roi_hook_agrees_with_whole_volume_score_and_sees_only_the_roi(phantom_small):
    ct, organs, _ = phantom_small
    qf = QualityFilter(band_model(-200.0, 95.0))
    seen = []

    def hook(image_roi, mask_roi, affine_roi, organ):
        seen.append((image_roi.shape, mask_roi.shape))
        return qf(image_roi, mask_roi, affine_roi, organ)

    res = synthesize(ct, organs, TumorSpec(organ="liver", stage="early", diameter_mm=18.0, seed=2),
                     quality=hook, quality_threshold=0.0)
    p_roi = res.reports[0]["quality"]["score"]
    p_volume = qf.score_volume(res.image, res.tumor_instances.array == 1)
    assert 0.05 < p_roi
    assert p_roi == pytest.approx(p_volume, abs=0.03)
    assert all(shape == roi for shape, roi in seen) and np.prod(seen[0][0]) < 0.2 * np.prod(ct.shape)


def test_threshold_and_retries_are_recorded(phantom_small):
    ct, organs, _ = phantom_small
    spec = TumorSpec(organ="liver", stage="early", diameter_mm=15.0, seed=4)
    never = QualityFilter(band_model(-1000.0, -999.0), threshold=0.7)
    res = synthesize(ct, organs, spec, quality=never, quality_threshold=never.threshold, tries=3)
    q = res.reports[0]["quality"]
    assert q == {"score": 0.0, "threshold": 0.7, "attempts": 3, "kept_attempt": 1, "passed": False}
    assert any("quality filter" in w for w in res.reports[0]["warnings"])
    assert never.calls == 3
    always = QualityFilter(band_model(-1000.0, 3000.0), threshold=0.7)
    q = synthesize(ct, organs, spec, quality=always, quality_threshold=0.7, tries=3).reports[0]["quality"]
    assert q["attempts"] == 1 and q["passed"] and q["score"] == 1.0


def test_trained_checkpoint_loads_and_scores(tiny_segmentation_run, liver_blob):
    with_blob, _, blob, _ = liver_blob
    qf = QualityFilter(tiny_segmentation_run.checkpoint, device="cpu", organ="liver", threshold=0.5)
    p = qf.score_volume(with_blob, blob)
    assert 0.0 <= p <= 1.0 and qf.calls == 1
    assert qf.describe()["organ"] == "liver" and qf.describe()["threshold"] == 0.5


def test_wrong_model_or_inputs_are_clear_errors(tmp_path, phantom_small):
    ct, organs, _ = phantom_small
    pancreas = write_untrained_checkpoint(tmp_path / "pancreas.pt", organ="pancreas")
    with pytest.raises(ModelError, match="pancreas"):
        QualityFilter(pancreas, organ="liver", device="cpu")
    with pytest.raises(ModelError, match="label set"):
        QualityFilter(write_untrained_checkpoint(tmp_path / "four.pt", out_channels=4), device="cpu")
    with pytest.raises(ModelError, match="label set"):
        QualityFilter(replace(band_model(0, 1), label_names={0: "a", 1: "b", 2: "c", 3: "d"}))
    panc = QualityFilter(pancreas, device="cpu")
    with pytest.raises(ModelError, match="trained for the pancreas"):
        synthesize(ct, organs, TumorSpec(organ="liver", seed=1), quality=panc)
    qf = QualityFilter(band_model(0, 1))
    with pytest.raises(InputError, match="empty"):
        qf.score_volume(ct, np.zeros(ct.shape, bool))
    with pytest.raises(InputError, match="shape"):
        qf.score_volume(ct, np.ones((3, 3, 3), bool))
    with pytest.raises(InputError, match="threshold"):
        QualityFilter(band_model(0, 1), threshold=1.5)


def test_filter_plugs_into_rand_tumor_synthd(phantom_small):
    from monai.data import MetaTensor

    from TumorSynthLib.transforms import RandTumorSynthd

    ct, organs, _ = phantom_small
    sample = {"image": MetaTensor(torch.from_numpy(ct.array.astype(np.float32)[None]), affine=ct.affine),
              "label": MetaTensor(torch.from_numpy(organs.array.astype(np.float32)[None]), affine=ct.affine)}
    results = {}
    for name, (lo, hi) in {"never": (-1000.0, -999.0), "always": (-1000.0, 3000.0)}.items():
        t = RandTumorSynthd(organ="liver", prob=1.0, labels="totalseg", stage_mix="early=1",
                            quality=QualityFilter(band_model(lo, hi)), max_tries=2)
        t.set_random_state(0)
        out = t(sample)
        results[name] = (t.stats, int((out["label"].numpy() == 205).sum()))
    assert results["never"][0]["rejected_quality"] == 1 and results["never"][1] == 0
    assert results["always"][0]["applied"] == 1 and results["always"][1] > 0


def test_synth_cli_quality_flag(tiny_segmentation_run, phantom_small, tmp_path, capsys):
    import json

    from TumorSynthLib.cli import main
    from TumorSynthLib.core.volume_io import save_volume

    ct, organs, _ = phantom_small
    image, labels = save_volume(ct, tmp_path / "ct.nii.gz"), save_volume(organs, tmp_path / "organs.nii.gz")
    args = ["synth", "--image", str(image), "--organs", str(labels), "--out", str(tmp_path / "case"),
            "--tumor", "organ=liver,stage=intermediate,seed=5", "--device", "cpu"]
    assert main(args + ["--quality", str(tiny_segmentation_run.checkpoint), "--threshold", "0.2",
                        "--quality-tries", "2"]) == 0
    report = json.loads((tmp_path / "case" / "report.json").read_text())
    verdict = report["tumors"][0]["quality"]
    assert 0.0 <= verdict["score"] <= 1.0 and verdict["threshold"] == 0.2 and 1 <= verdict["attempts"] <= 2
    assert report["quality_filter"]["model"] == str(tiny_segmentation_run.checkpoint)
    assert report["quality_filter"]["tries"] == 2
    assert "quality P" in capsys.readouterr().err
    assert main(args + ["--threshold", "0.5"]) == 2                  # --threshold without --quality
    assert "needs --quality" in capsys.readouterr().err
