"""The ``diffusion`` appearance with tiny models trained in the session (fixtures/diffusion.py):
save and strict load, sampling with T = 4 and with DDIM, composite through the shared pipeline,
determinism, ROI-only change, live chunking, and refusal of damaged or mismatched checkpoints."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from TumorSynthLib import TumorSpec, synthesize
from TumorSynthLib.core.errors import DependencyError, InputError, ModelError
from TumorSynthLib.core.model_registry import sha256_file
from TumorSynthLib.synthesis import registry
from TumorSynthLib.synthesis.appearance import diffusion as diffusion_appearance
from TumorSynthLib.synthesis.catalogue import method_entries
from TumorSynthLib.synthesis.learned import checkpoint as ckpt
from TumorSynthLib.synthesis.learned.config import DiffusionConfig, to_hu, to_unit
from TumorSynthLib.synthesis.learned.patch import PatchGrid
from TumorSynthLib.synthesis.learned.sampler import InpaintSampler
from TumorSynthLib.synthesis.live import SynthesisJob

LIVER_TUMOR = dict(organ="liver", stage="early", diameter_mm=18.0, seed=3)


@pytest.fixture(scope="module")
def phantom():
    from TumorSynthLib.phantom import make_abdomen

    return make_abdomen(seed=2, shape=(96, 96, 40), spacing=(3.75, 3.75, 6.0))[:2]


def _spec(model, **kw) -> TumorSpec:
    options = {"diffusion_model": str(model), **kw.pop("options", {})}
    return TumorSpec(**{**LIVER_TUMOR, "method": "diffusion", **kw}, options=options)


def _patch(model, rng=0):
    n = model.config.patch
    g = np.random.default_rng(rng)
    image = np.clip(g.normal(0.2, 0.05, (n, n, n)), -1, 1).astype(np.float32)
    mask = np.zeros((n, n, n), bool)
    mask[n // 4:3 * n // 4, n // 4:3 * n // 4, n // 4:3 * n // 4] = True
    return image, mask


def test_save_load_strict_and_sample_ddpm_and_ddim(tiny_diffusion_models):
    for path, sampler, steps in ((tiny_diffusion_models.ddpm, "ddpm", 4), (tiny_diffusion_models.ddim, "ddim", 5)):
        model = ckpt.load_diffusion_model(path, "cpu")
        payload = torch.load(path, weights_only=True)                      # weights-only readable
        assert payload["format"] == ckpt.FORMAT and model.config.sampler == sampler
        assert model.sha256 == sha256_file(path)
        image, mask = _patch(model)
        run = InpaintSampler(model, image, mask, seed=5)
        assert run.total_steps == steps and run.estimate() is None
        run.step()
        first = run.estimate()
        assert first.shape == image.shape and np.all(np.abs(first) <= 1.0)
        sample = run.result()
        assert run.done and np.isfinite(sample).all() and not np.array_equal(sample, first)
        again = InpaintSampler(model, image, mask, seed=5).result()
        assert np.array_equal(sample, again)                                 # seeded: same bytes
        other = InpaintSampler(model, image, mask, seed=6).result()
        assert not np.array_equal(sample, other)


def test_ddim_on_a_t4_model_and_batches(tiny_diffusion_models):
    model = ckpt.load_diffusion_model(tiny_diffusion_models.ddpm, "cpu")
    image, mask = _patch(model)
    run = InpaintSampler(model, image, mask, seed=1, sampler="ddim", steps=2)
    assert run.total_steps == 2 and run.result().shape == image.shape
    batch = InpaintSampler(model, np.stack([image, image]), np.stack([mask, mask]), seed=1).result()
    assert batch.shape == (2, *image.shape)


def test_chains_are_averaged_independent_samples(tiny_diffusion_models):
    model = ckpt.load_diffusion_model(tiny_diffusion_models.ddpm, "cpu")
    image, mask = _patch(model)
    pair = InpaintSampler(model, np.stack([image, image]), np.stack([mask, mask]), seed=4).result()
    assert not np.array_equal(pair[0], pair[1])                          # two chains differ
    mean = InpaintSampler(model, image, mask, seed=4, chains=2)
    assert mean.total_steps == 4 and mean.result().shape == image.shape
    assert np.allclose(mean.result(), pair.mean(axis=0), atol=1e-6)      # ... and are averaged
    other, _ = _patch(model, rng=1)
    batch = InpaintSampler(model, np.stack([image, other]), np.stack([mask, mask]), seed=4, chains=3).result()
    chains = InpaintSampler(model, np.stack([image] * 3 + [other] * 3), np.stack([mask] * 6), seed=4).result()
    assert batch.shape == (2, *image.shape)
    assert np.allclose(batch, chains.reshape(2, 3, *image.shape).mean(axis=1), atol=1e-6)   # grouped by patch
    with pytest.raises(ValueError, match="chains"):
        InpaintSampler(model, image, mask, seed=4, chains=0)


def test_composite_report_and_roi_only_change(tiny_diffusion_models, diffusion_home, phantom):
    ct, organs = phantom
    result = synthesize(ct, organs, [_spec(tiny_diffusion_models.ddpm)])
    report = result.reports[0]
    info = report["appearance_info"]
    assert report["method"] == "diffusion" and report["appearance"] == "diffusion" and report["geometry"] == "ellipsoid"
    assert info["model_sha256"] == ckpt.load_diffusion_model(tiny_diffusion_models.ddpm, "cpu").sha256
    assert info["model_id"] and info["steps_run"] == info["steps_total"] == 4 and not info["stopped_early"]
    assert info["chains"] == diffusion_appearance.DEFAULT_CHAINS
    assert np.isfinite(info["achieved_drop_hu"]) and len(info["expected_drop_range_hu"]) == 2
    assert isinstance(info["drop_in_range"], bool) and report["measured_drop_hu"] is not None
    assert report["draws"]["appearance"]["torch_seed"] >= 0
    changed = result.image.array != ct.array
    roi = result.roi
    outside = np.ones(ct.shape, bool)
    outside[roi.slices] = False
    assert changed.any() and not changed[outside].any()                 # only the ROI changes
    patch = result.patches[0]
    tumor = patch.tumor
    assert changed[roi.slices][tumor].mean() > 0.5                      # the tumor itself is painted
    assert (result.labels.array[roi.slices][tumor] == 205).all()         # liver tumor id (totalseg)


def test_zero_weight_voxels_are_unchanged_bit_for_bit(tiny_diffusion_models, diffusion_home, phantom):
    from scipy import ndimage

    ct, organs = phantom
    result = synthesize(ct, organs, [_spec(tiny_diffusion_models.ddpm, seed=4)])
    roi, patch = result.roi, result.patches[0]
    far = ~ndimage.binary_dilation(patch.tumor, iterations=4)
    assert np.array_equal(result.image.array[roi.slices][far], ct.array[roi.slices][far])


def test_determinism_cellular_pair_and_chunked_live_job(tiny_diffusion_models, diffusion_home, phantom):
    ct, organs = phantom
    spec = _spec(tiny_diffusion_models.ddpm)
    one = synthesize(ct, organs, [spec])
    assert np.array_equal(one.image.array, synthesize(ct, organs, [spec]).image.array)
    live = SynthesisJob(ct, organs, spec)
    states = []
    while not live.done:
        states.append(live.advance(1))
    denoising = [s for s in states if s.stage == "appearance"]
    assert [s.step for s in denoising] == [0, 1, 2, 3] and states[-1].done   # geometry took one step
    assert denoising[0].image is None and states[0].mask is not None
    for s in denoising[1:] + states[-1:]:                                   # the estimate as it forms
        assert s.image is not None and s.image.shape == tuple(s.roi.shape)
    assert not np.array_equal(denoising[1].image, denoising[3].image)
    assert np.array_equal(live.result().image.array, one.image.array)   # chunked == one-shot
    paired = synthesize(ct, organs, [TumorSpec(**{**LIVER_TUMOR, "method": "cellular"}, appearance="diffusion",
                                               options={"diffusion_model": str(tiny_diffusion_models.ddpm)})])
    assert paired.reports[0]["geometry"] == "cellular" and paired.reports[0]["appearance"] == "diffusion"


def test_stopping_denoising_keeps_the_current_estimate(tiny_diffusion_models, diffusion_home, phantom):
    ct, organs = phantom
    live = SynthesisJob(ct, organs, _spec(tiny_diffusion_models.ddpm))
    while live.stage != "appearance" or live.state.step < 2:
        live.advance(1)
    live.stop()
    report = live.result().reports[0]
    assert report["appearance_info"]["steps_run"] == 2 and report["appearance_info"]["stopped_early"]


def test_ddim_model_and_option_checks(tiny_diffusion_models, diffusion_home, phantom):
    ct, organs = phantom
    out = synthesize(ct, organs, [_spec(tiny_diffusion_models.ddim)])
    assert out.reports[0]["appearance_info"]["sampler"] == "ddim"
    assert out.reports[0]["appearance_info"]["steps_run"] == 5
    fewer = synthesize(ct, organs, [_spec(tiny_diffusion_models.ddim, options={"diffusion_steps": 2})])
    assert fewer.reports[0]["appearance_info"]["steps_run"] == 2
    one = synthesize(ct, organs, [_spec(tiny_diffusion_models.ddim, options={"diffusion_chains": 1})])
    assert one.reports[0]["appearance_info"]["chains"] == 1
    assert not np.array_equal(one.image.array, out.image.array)         # one raw sample, not the mean
    for bad in ({"diffusion_steps": 2}, {"diffusion_steps": 9}, {"enhancement": "hyper"},
                {"diffusion_chains": 0}, {"diffusion_chains": 17}):
        with pytest.raises(InputError):
            synthesize(ct, organs, [_spec(tiny_diffusion_models.ddpm, options=bad)])
    with pytest.raises(InputError, match="diffusion"):                 # a key of a provider not used
        synthesize(ct, organs, [TumorSpec(**LIVER_TUMOR, options={"diffusion_steps": 2})])


def test_refuses_changed_or_mismatched_checkpoints(tiny_diffusion_models, diffusion_home, tmp_path):
    registered = diffusion_home / "models" / "tiny-diffusion.pt"
    assert ckpt.load_diffusion_model("tiny-diffusion", "cpu").model_id == "tiny-diffusion"
    data = bytearray(registered.read_bytes())
    data[-10] ^= 0xFF
    registered.write_bytes(bytes(data))                                  # SHA256 no longer matches
    with pytest.raises(ModelError, match="SHA256"):
        ckpt.load_diffusion_model("tiny-diffusion", "cpu")
    copy = tmp_path / "copy.pt"
    shutil.copyfile(tiny_diffusion_models.ddpm, copy)
    with pytest.raises(ModelError, match="SHA256"):
        ckpt.load_diffusion_model(copy, "cpu", expected_sha256="0" * 64)
    payload = torch.load(tiny_diffusion_models.ddpm, weights_only=True)
    cases = {"widths": {**payload["config"], "channels": [16, 32]},       # weights do not fit
             "unknown": {**payload["config"], "attention": True},          # a key this version lacks
             "bad": {**payload["config"], "sampler": "euler"}}
    for name, config in cases.items():
        torch.save({**payload, "config": config}, tmp_path / f"{name}.pt")
        with pytest.raises(ModelError, match="configuration|weights"):
            ckpt.load_diffusion_model(tmp_path / f"{name}.pt", "cpu")
    torch.save({"format": "tumorsynth-segmentation"}, tmp_path / "seg.pt")
    with pytest.raises(ModelError, match="not a TumorSynth diffusion"):
        ckpt.load_diffusion_model(tmp_path / "seg.pt", "cpu")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="cannot read"):
        ckpt.load_diffusion_model(tmp_path / "junk.pt", "cpu")


def test_availability_and_catalogue(diffusion_home, monkeypatch):
    ok, why = registry.availability("appearance", "diffusion")
    assert ok, why
    entry = method_entries()["diffusion"]
    assert entry["geometry"] == "ellipsoid" and entry["appearance"] == "diffusion" and entry["live"]
    monkeypatch.setattr(diffusion_appearance, "default_model_ref", lambda: None)
    ok, why = registry.availability("appearance", "diffusion")
    assert not ok and "train-diffusion" in why
    with pytest.raises(DependencyError):
        registry.provider("appearance", "diffusion")


def test_patch_grid_round_trip_and_window():
    assert np.allclose(to_hu(to_unit(np.array([-175.0, 0.0, 250.0]))), [-175.0, 0.0, 250.0], atol=1e-3)
    assert to_unit(np.array([-1000.0, 1000.0])).tolist() == [-1.0, 1.0]
    region = np.add.outer(np.add.outer(np.arange(40.0), np.arange(40.0)), np.arange(20.0)).astype(np.float32)
    grid = PatchGrid(center=(20.0, 20.0, 10.0), spacing_mm=1.5, n=16, voxel_mm=(1.0, 1.0, 2.0))
    patch = grid.sample(region)
    from TumorSynthLib.core.volume import Box

    back = grid.to_region(patch, Box((14, 14, 7), (26, 26, 13)))
    assert np.allclose(back, region[14:26, 14:26, 7:13], atol=0.6)      # linear field survives
    assert DiffusionConfig(channels=(8, 12)).problems()                   # widths vs groups checked


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU: the fp16 autocast path is not run")
def test_cuda_sampling_with_fp16_autocast(tiny_diffusion_models):
    model = ckpt.load_diffusion_model(tiny_diffusion_models.ddpm, "cuda")
    image, mask = _patch(model)
    first = InpaintSampler(model, image, mask, seed=5).result()
    again = InpaintSampler(model, image, mask, seed=5).result()
    assert first.shape == image.shape and np.isfinite(first).all() and np.abs(first).max() <= 1.0 + 1e-3
    assert np.array_equal(first, again)                                   # seeded on the GPU too
