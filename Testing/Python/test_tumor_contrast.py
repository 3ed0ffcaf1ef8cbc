"""The training-time tumor contrast jitter and the per-organ tumor patch classes."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy import ndimage

from TumorSynthLib.core.errors import InputError
from TumorSynthLib.segmentation.config import TrainConfig
from TumorSynthLib.segmentation.contrast_jitter import TUMOR_CONTRAST_MIN_HU, RandTumorContrastd
from TumorSynthLib.segmentation.pipeline import patch_transforms
from TumorSynthLib.transforms import META_KEY

ABDOMEN = "liver,pancreas,kidney"


def _record(*organs: str) -> str:
    return json.dumps([{"applied": True, "tumors": [{"organ": o} for o in organs]},
                       {"applied": False, "skipped": "real tumor"}])


def _case(record: str | None = None) -> dict:
    labels = np.zeros((1, 20, 20, 20), np.float32)
    labels[0, :10] = 5                     # liver (totalseg)
    labels[0, 2:6, 2:6, 2:6] = 205          # liver tumor
    labels[0, 12:, :10] = 2                 # right kidney
    labels[0, 14:17, 2:5, 2:5] = 202        # kidney tumor
    image = np.full((1, 20, 20, 20), 100.0, np.float32)
    image[labels == 205] = 40.0             # 60 HU drop
    image[labels == 2] = 160.0
    image[labels == 202] = 150.0            # 10 HU drop: already fainter than the 15 HU minimum
    out = {"image": torch.from_numpy(image), "label": torch.from_numpy(labels)}
    out[META_KEY] = _record("liver", "kidney") if record is None else record
    return out


def test_contrast_jitter_scales_around_the_organ_median_and_keeps_a_floor():
    jitter = RandTumorContrastd(ABDOMEN, "totalseg", (0.4, 0.4), prob=1.0)
    jitter.set_random_state(seed=0)
    case = _case()
    before = case["image"].clone()
    out = jitter(case)
    image = out["image"].numpy()[0]
    labels = out["label"].numpy()[0]
    assert np.allclose(image[labels == 205], 100.0 - 0.4 * 60.0)       # 60 HU drop -> 24
    assert np.allclose(image[labels == 202], 150.0)                   # fainter than the minimum: unchanged
    untouched = ~np.isin(labels, (205, 202))
    assert np.array_equal(image[untouched], before.numpy()[0][untouched])
    deep = _case()
    deep["image"][deep["label"] == 205] = -20.0                        # 120 HU drop
    scaled = RandTumorContrastd(ABDOMEN, "totalseg", (0.1, 0.1), prob=1.0)(deep)["image"].numpy()[0]
    assert np.allclose(100.0 - scaled[labels == 205], TUMOR_CONTRAST_MIN_HU)


def _soft_ball_case(drop: float, grain_sd: float = 12.0, radius: float = 6.0) -> dict:
    """A 40^3 liver at 100 HU with a ball ``drop`` HU darker behind a soft edge (the synthesis'
    blend: the label's outer layer sits at about 60 % of the drop), white grain everywhere."""
    g = np.indices((40, 40, 40)) - 19.5
    r = np.sqrt((g ** 2).sum(0))
    weight = ndimage.gaussian_filter((r < radius).astype(float), 1.0)    # a hard ball, blurred
    image = 100.0 - drop * weight + np.random.default_rng(0).normal(0.0, grain_sd, r.shape)
    labels = np.full(r.shape, 5.0, np.float32)                        # liver
    labels[r < radius] = 205                                          # liver tumor
    return {"image": torch.from_numpy(image[None].astype(np.float32)), "label": torch.from_numpy(labels[None]),
            META_KEY: _record("liver")}


def test_contrast_jitter_scales_the_mean_drop_keeps_the_grain_and_the_edge():
    case = _soft_ball_case(60.0)
    labels = case["label"].numpy()[0]
    tumor = labels == 205
    rim = tumor & ~ndimage.binary_erosion(tumor)
    core = ndimage.binary_erosion(tumor, iterations=2)
    before = case["image"].numpy()[0].copy()
    after = RandTumorContrastd(ABDOMEN, "totalseg", (0.4, 0.4), prob=1.0)(case)["image"].numpy()[0]
    reference = np.median(before[labels == 5])
    assert abs((reference - after[tumor].mean()) - 0.4 * (reference - before[tumor].mean())) < 0.5
    assert np.std(after[core]) > 0.9 * np.std(before[core])           # the grain stays
    old_rule = reference + 0.4 * (before - reference)                 # scaling HU would cut it to 0.4
    assert np.std(after[core]) > 2.0 * np.std(old_rule[core])
    rim_drop = reference - after[rim].mean()                          # the edge fades with the tumor:
    assert abs(rim_drop - 0.4 * (reference - before[rim].mean())) < 1.5   # no pale rim
    assert np.array_equal(after[~tumor], before[~tumor])


def test_the_minimum_drop_holds_with_a_soft_edge_and_grain():
    case = _soft_ball_case(52.0)
    labels = case["label"].numpy()[0]
    before = case["image"].numpy()[0].copy()
    after = RandTumorContrastd(ABDOMEN, "totalseg", (0.05, 0.05), prob=1.0)(case)["image"].numpy()[0]
    reference = np.median(before[labels == 5])
    assert abs((reference - after[labels == 205].mean()) - TUMOR_CONTRAST_MIN_HU) < 0.5


def test_real_tumors_keep_their_contrast():
    jitter = RandTumorContrastd(ABDOMEN, "totalseg", (0.4, 0.4), prob=1.0)
    for record in ("", _record("kidney")):           # no synthesis at all; synthesis in the kidney only
        case = _case(record or None) if record else {k: v for k, v in _case().items() if k != META_KEY}
        out = jitter(case)["image"].numpy()[0]
        assert np.allclose(out[case["label"].numpy()[0] == 205], 40.0)   # the liver tumor is real


def test_contrast_jitter_is_seeded_and_optional_per_organ():
    def run(seed: int) -> np.ndarray:
        jitter = RandTumorContrastd(ABDOMEN, "totalseg", (0.5, 1.3), prob=0.5)
        jitter.set_random_state(seed=seed)
        return jitter(_case())["image"].numpy().copy()

    assert np.array_equal(run(3), run(3))
    outcomes = {run(s)[0, 3, 3, 3] == 40.0 for s in range(12)}
    assert outcomes == {True, False}                                   # some organs kept, some scaled


def test_contrast_range_is_checked(tmp_path):
    with pytest.raises(InputError, match="tumor-contrast"):
        TrainConfig(data=str(tmp_path), out=str(tmp_path / "run"), tumor_contrast=(1.2, 0.5))
    cfg = TrainConfig(data=str(tmp_path), out=str(tmp_path / "run"), tumor_contrast=(0.5, 1.2))
    assert TrainConfig.from_dict(cfg.to_dict()).tumor_contrast == (0.5, 1.2)


def test_each_organs_tumors_share_the_tumor_weight(tmp_path):
    cfg = TrainConfig(data=str(tmp_path), out=str(tmp_path / "run"), organ=ABDOMEN, tumor_weight=6.0)
    crop = patch_transforms(cfg)[-1]
    assert list(crop.cropper.ratios) == [1.0, 1.0, 1.0, 1.0, 2.0, 2.0, 2.0]


def test_contrast_factor_is_drawn_log_uniformly_unless_a_run_asked_for_uniform():
    def factors(draw: str) -> np.ndarray:
        jitter = RandTumorContrastd(ABDOMEN, "totalseg", (0.25, 1.3), prob=1.0, draw=draw)
        jitter.set_random_state(seed=5)
        return np.array([jitter.randomize() for _ in range(2000)]).ravel()

    log_uniform, uniform = factors("log-uniform"), factors("uniform")
    assert log_uniform.min() >= 0.25 and log_uniform.max() <= 1.3
    assert abs(np.median(log_uniform) - np.sqrt(0.25 * 1.3)) < 0.03      # geometric mean: 0.57
    assert abs(np.median(uniform) - 0.775) < 0.03                         # arithmetic mean
    assert np.mean(log_uniform < 0.53) > 1.6 * np.mean(uniform < 0.53)     # faint tumors come more often
    with pytest.raises(InputError, match="draw"):
        RandTumorContrastd(ABDOMEN, "totalseg", (0.25, 1.3), draw="normal")


def test_contrast_draw_is_recorded_and_older_runs_resume_with_the_uniform_draw(tmp_path):
    cfg = TrainConfig(data=str(tmp_path), out=str(tmp_path / "run"), tumor_contrast=(0.25, 1.3))
    saved = cfg.to_dict()
    assert saved["tumor_contrast_draw"] == "log-uniform"
    assert TrainConfig.from_dict(saved).tumor_contrast_draw == "log-uniform"
    older = {k: v for k, v in saved.items() if k != "tumor_contrast_draw"}
    assert TrainConfig.from_dict(older).tumor_contrast_draw == "uniform"
    with pytest.raises(InputError, match="contrast draw"):
        TrainConfig(data=str(tmp_path), out=str(tmp_path / "run"), tumor_contrast_draw="gaussian")


def test_train_cli_resumes_a_run_with_its_own_draw(tmp_path):
    """`tumorsynth train --resume` (and the Slicer Trainer's Resume, which runs it) keeps the
    draw of the run it continues: uniform for a run made before the draw was recorded."""
    from TumorSynthLib.cli import build_parser
    from TumorSynthLib.cli.train import config_from_args

    run = tmp_path / "run"
    run.mkdir()
    older = TrainConfig(data="d.json", out=str(run), tumor_contrast=(0.4, 1.3)).to_dict()
    del older["tumor_contrast_draw"]
    (run / "config.json").write_text(json.dumps(older))
    flags = ["train", "--data", str(tmp_path / "d.json"), "--out", str(run), "--tumor-contrast", "0.4:1.3",
             "--device", "cpu"]
    assert config_from_args(build_parser().parse_args(flags)).tumor_contrast_draw == "log-uniform"
    assert config_from_args(build_parser().parse_args(flags + ["--resume"])).tumor_contrast_draw == "uniform"
    named = flags + ["--resume", "--tumor-contrast-draw", "log-uniform"]
    assert config_from_args(build_parser().parse_args(named)).tumor_contrast_draw == "log-uniform"
