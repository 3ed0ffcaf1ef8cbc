"""The ``adversarial`` appearance (methods.md section 4): update directions of both players,
organ channels, the formula, determinism, ROI-only change, checkpoint refusals, the CLI's
budgets / resume / SIGTERM. Models are tiny and come from the session fixture ``tiny_gan``."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from TumorSynthLib import TumorSpec, synthesize
from TumorSynthLib.core.errors import ModelError
from TumorSynthLib.core.model_registry import sha256_file
from TumorSynthLib.generative.adversarial_data import load_cases, make_batch
from TumorSynthLib.generative.adversarial_train import AdversarialTrainer, Segmenter, batch_rng
from TumorSynthLib.synthesis.appearance.adversarial import difference_in_box
from TumorSynthLib.synthesis.learned.gan import ORGANS, GanConfig, difference_map, organ_index
from TumorSynthLib.synthesis.learned.gan_checkpoint import (GeneratorModel, load_generator,
                                                            read_gan_checkpoint, save_gan_checkpoint)
from Testing.fixtures.adversarial import tiny_gan_config

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def trainer_and_batch(tiny_gan, tmp_path_factory):
    cfg = tiny_gan_config(tiny_gan.tumors, tiny_gan.healthy, tiny_gan.segmenter,
                          tmp_path_factory.mktemp("fixed"), lr=1e-3)
    gan = GanConfig.from_dict(cfg.gan)
    device = torch.device("cpu")
    healthy = load_cases(cfg.healthy, gan, "totalseg", need_tumor=False)
    tumors = load_cases(cfg.data, gan, "totalseg", need_tumor=True)
    batch = make_batch(healthy, tumors, gan, 2, batch_rng(7, 0))
    return cfg, Segmenter(str(tiny_gan.segmenter), device, gan), batch


def _params(module):
    return [p.detach().clone() for p in module.parameters()]


def _changed(before, module):
    return any(not torch.equal(a, b) for a, b in zip(before, module.parameters()))


def test_generator_step_lowers_generator_loss_and_leaves_discriminator(trainer_and_batch):
    cfg, seg, batch = trainer_and_batch
    trainer = AdversarialTrainer(cfg, seg, torch.device("cpu"))
    b = trainer.tensors(batch)
    with torch.no_grad():
        before = float(trainer.generator_losses(b)["g"])
    d_before, g_before = _params(trainer.discriminator), _params(trainer.generator)
    for _ in range(4):
        trainer.generator_step(b)
    with torch.no_grad():
        after = float(trainer.generator_losses(b)["g"])
    assert after < before
    assert _changed(g_before, trainer.generator)
    assert not _changed(d_before, trainer.discriminator)
    assert all(not p.requires_grad for p in seg.model.parameters())


def test_discriminator_step_lowers_discriminator_loss_and_leaves_generator(trainer_and_batch):
    cfg, seg, batch = trainer_and_batch
    trainer = AdversarialTrainer(cfg, seg, torch.device("cpu"))
    b = trainer.tensors(batch)
    with torch.no_grad():
        before = float(trainer.discriminator_loss(b))
    g_before = _params(trainer.generator)
    seg_before = _params(seg.model)
    for _ in range(4):
        trainer.discriminator_step(b)
    with torch.no_grad():
        after = float(trainer.discriminator_loss(b))
    assert after < before
    assert not _changed(g_before, trainer.generator)
    assert not _changed(seg_before, seg.model)


def test_batch_masks_sit_in_the_organ_and_real_tumors(trainer_and_batch):
    _cfg, _seg, batch = trainer_and_batch
    assert batch["mask"].any() and batch["real"].any()
    assert not (batch["mask"] & ~batch["organ"]).any()
    assert set(batch["channel"].tolist()) <= set(range(len(ORGANS)))
    assert np.all(batch["base_hu"] >= 25.0)
    tex = batch["texture"][batch["mask"]]
    assert abs(float(tex.mean()) - 1.0) < 0.2


class ChannelValues(torch.nn.Module):
    """A 'generator' whose channel c is the constant atanh(values[c])."""

    def __init__(self, values):
        super().__init__()
        self.values = torch.atanh(torch.tensor(values, dtype=torch.float32))

    def forward(self, x):
        return self.values.view(1, -1, 1, 1, 1).expand(x.shape[0], -1, *x.shape[2:]).clone()


def test_difference_map_takes_each_crops_organ_channel():
    values = [0.1, 0.4, 0.7]
    x = torch.zeros(3, 1, 8, 8, 8)
    d = difference_map(ChannelValues(values), x, torch.tensor([2, 0, 1]))
    assert d.shape == (3, 1, 8, 8, 8)
    np.testing.assert_allclose(d[:, 0].mean(dim=(1, 2, 3)).numpy(), [0.7, 0.1, 0.4], atol=1e-5)


@pytest.mark.parametrize("organ", ORGANS)
def test_provider_reads_the_organs_channel(organ):
    cfg = GanConfig(channels=(4, 8, 16), strides=(2, 2), disc_channels=(4, 8, 16), patch=24)
    values = [0.1, 0.4, 0.7]
    model = GeneratorModel(config=cfg, generator=ChannelValues(values), device=torch.device("cpu"), path=Path("x.pt"),
                           sha256="0" * 64, model_id="test")
    image = np.random.default_rng(0).normal(60, 10, (30, 30, 20)).astype(np.float32)

    class Box:
        lo, hi = (10, 10, 5), (20, 20, 15)

    d = difference_in_box(model, image, np.array([1.0, 1.0, 2.5]), Box(), organ_index(cfg, organ))
    assert d.shape == (10, 10, 10)
    np.testing.assert_allclose(d, values[ORGANS.index(organ)], atol=1e-4)
    with pytest.raises(ModelError, match="spleen"):
        organ_index(cfg, "spleen")


@pytest.fixture(scope="module")
def phantom_case():
    from TumorSynthLib.phantom.abdomen import make_abdomen

    return make_abdomen(seed=21, shape=(96, 96, 64), spacing=(3.0, 3.0, 3.0))


def _adversarial(phantom_case, generator, organ="liver", seed=3):
    ct, labels, _ = phantom_case
    spec = TumorSpec(organ=organ, method="adversarial", diameter_mm=24.0, seed=seed,
                     options={"adversarial_model": str(generator), "device": "cpu"})
    return synthesize(ct, labels, spec, "totalseg", case_id="adv")


@pytest.mark.parametrize("organ", ["liver", "kidney"])
def test_synthesis_reports_model_and_channel_and_changes_only_the_roi(tiny_gan, phantom_case, organ):
    ct = phantom_case[0]
    result = _adversarial(phantom_case, tiny_gan.generator, organ)
    report = result.reports[0]
    info = report["appearance_info"]
    assert info["model_sha256"] == sha256_file(tiny_gan.generator)
    assert info["organ_channel"] == ORGANS.index(organ)
    assert info["segmenter"]["sha256"] == sha256_file(tiny_gan.segmenter)
    changed = np.argwhere(np.asarray(result.image.array) != np.asarray(ct.array))
    assert len(changed)
    lo, hi = (np.asarray(v) for v in report["roi"])
    assert np.all(changed >= lo) and np.all(changed < hi)
    assert np.isfinite(report["delta_hu"])


def test_same_seed_same_bytes(tiny_gan, phantom_case):
    a = _adversarial(phantom_case, tiny_gan.generator, seed=5)
    b = _adversarial(phantom_case, tiny_gan.generator, seed=5)
    c = _adversarial(phantom_case, tiny_gan.generator, seed=6)
    assert np.asarray(a.image.array).tobytes() == np.asarray(b.image.array).tobytes()
    assert np.asarray(a.image.array).tobytes() != np.asarray(c.image.array).tobytes()


def test_checkpoint_refusals(tiny_gan, tmp_path):
    payload = read_gan_checkpoint(tiny_gan.generator)
    wrong = dict(payload, gan_config=GanConfig(channels=(8, 16, 32), strides=(2, 2),
                                                disc_channels=(4, 8, 16), patch=24).to_dict())
    for key in ("format", "format_version", "versions"):
        wrong.pop(key)
    save_gan_checkpoint(tmp_path / "wrong.pt", wrong)
    with pytest.raises(ModelError, match="do not match the configuration"):
        load_generator(tmp_path / "wrong.pt", "cpu")
    with pytest.raises(ModelError, match="not a TumorSynth adversarial"):
        load_generator(tiny_gan.segmenter, "cpu")
    with pytest.raises(ModelError, match="not the expected"):
        load_generator(tiny_gan.generator, "cpu", expected_sha256="0" * 64)
    truncated = tmp_path / "cut.pt"
    truncated.write_bytes(Path(tiny_gan.generator).read_bytes()[:500])
    with pytest.raises(ModelError, match="corrupt, truncated"):
        load_generator(truncated, "cpu")


def _cli(args, **kw):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-m", "TumorSynthLib.cli", "train-adversarial", *args],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def _base_args(tiny_gan, out):
    return ["--data", str(tiny_gan.tumors), "--healthy", str(tiny_gan.healthy), "--segmenter",
            str(tiny_gan.segmenter), "--labels", "totalseg", "--batch", "1", "--patch", "24",
            "--channels", "4,8,16", "--device", "cpu", "--events", "jsonl", "--out", str(out)]


def test_budget_then_cli_resume_continues(tiny_gan, tmp_path):
    from TumorSynthLib.core.events import EventStream
    from TumorSynthLib.generative.adversarial_train import train_adversarial

    out = tmp_path / "run"
    first = train_adversarial(tiny_gan_config(tiny_gan.tumors, tiny_gan.healthy, tiny_gan.segmenter, out,
                                              max_steps=1), EventStream("none", show_bar=False))
    assert first.step == 1 and first.stopped == "max_steps"
    assert (out / "generator.pt").is_file() and (out / "last.pt").is_file()
    resumed = _cli(_base_args(tiny_gan, out) + ["--max-steps", "2", "--resume"])
    stdout, stderr = resumed.communicate(timeout=50)
    assert resumed.returncode == 0, stderr
    events = [json.loads(line) for line in stdout.splitlines()]
    assert events[0]["event"] == "start" and events[0]["step"] == 1
    assert events[-1]["event"] == "done" and events[-1]["step"] == 2
    assert read_gan_checkpoint(out / "generator.pt")["config"]["step"] == 2


def test_resume_refusals(tiny_gan, tmp_path):
    from TumorSynthLib.core.errors import InputError
    from TumorSynthLib.core.events import EventStream
    from TumorSynthLib.generative.adversarial_train import train_adversarial

    out = tiny_gan.run_dir
    quiet = EventStream("none", show_bar=False)
    with pytest.raises(InputError, match="--resume"):
        train_adversarial(tiny_gan_config(tiny_gan.tumors, tiny_gan.healthy, tiny_gan.segmenter, out), quiet)
    other = GanConfig(channels=(4, 8, 16), strides=(2, 2), disc_channels=(4, 8, 16), patch=32).to_dict()
    with pytest.raises(ModelError, match="cannot resume"):
        train_adversarial(tiny_gan_config(tiny_gan.tumors, tiny_gan.healthy, tiny_gan.segmenter, out,
                                          gan=other, resume=True, max_steps=10), quiet)
    with pytest.raises(InputError, match="--resume: no last.pt"):
        train_adversarial(tiny_gan_config(tiny_gan.tumors, tiny_gan.healthy, tiny_gan.segmenter,
                                          tmp_path / "empty", resume=True), quiet)


def test_cli_sigterm_saves_and_exits_130(tiny_gan, tmp_path):
    out = tmp_path / "run"
    proc = _cli(_base_args(tiny_gan, out) + ["--max-steps", "1000", "--save-every", "1000"])
    deadline = time.monotonic() + 45
    while time.monotonic() < deadline:
        log = out / "events.jsonl"
        if log.is_file() and '"progress"' in log.read_text():
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, stderr
    payload = read_gan_checkpoint(out / "last.pt")
    assert payload["step"] >= 1 and "discriminator" in payload and "opt_g" in payload
