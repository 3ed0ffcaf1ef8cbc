"""The training loop of ``tumorsynth train-adversarial`` (methods.md section 4; the reference's
losses, ``../shared/research/difftumor-freetumor.md`` section 2.4, with its label bugs fixed).

Per step, on a batch of synthetic crops (healthy organs + procedural shapes) and real-tumor crops:

* G step: ``x_hat`` from the formula (``synthesis.learned.gan``), ``L_adv = 1 - mean_{M}
  p_D(real tumor | x_hat)``, ``L_seg = 1 - mean_{M} p_Seg(tumor | x_hat)`` (the frozen
  segmentation model on its own grid and window; gradients flow through it to G),
  ``L_G = 0.1 L_adv + L_seg``;
* D step (``x_hat`` regenerated without gradients): ``L_D = 0.5 [(1 - mean_{M} p_D(synthetic))
  + (1 - mean_{R} p_D(real tumor))]`` with ``R`` the real tumor voxels.

The channel of G is the organ of each crop, the masks come from the organ ids (not a merged
label), so the reference's two label bugs do not arise. Adam lr 1e-4, betas (0, 0.999). Each
step's batch comes from ``SeedSequence([seed, step])``, so a resumed run sees the same data.
The run stops at ``max_steps``, after ``max_minutes`` or on SIGINT / SIGTERM, writing
``last.pt`` (atomic; all training state) and ``generator.pt`` (weights only, what ships).
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..core.errors import InputError
from ..core.events import EventStream
from ..core.files import prepare_output_folder, write_json_atomic
from ..core.locks import folder_lock
from ..core.model_registry import resolve_model, sha256_file
from ..segmentation.checkpoint import LAST, check_resumable, load_checkpoint, require_new_run
from ..segmentation.infer import load_segmentation_model
from ..segmentation.models import ModelConfig, min_patch_multiple
from ..segmentation.train import budget_stop, stop_on_signals
from ..synthesis.automaton.engine import resolve_device
from ..synthesis.learned.gan import (FAKE_TUMOR, REAL_TUMOR, GanConfig, apply_difference, build_discriminator,
                                     build_generator, difference_map)
from ..synthesis.learned.gan_checkpoint import read_gan_checkpoint, save_gan_checkpoint
from ..synthesis.learned.loading import load_strict
from .adversarial_data import CaseArrays, load_cases, make_batch

GENERATOR = "generator.pt"
ADV_WEIGHT = 0.1
#: Settings a resumed run may not change.
FROZEN_ON_RESUME = ("gan", "seed", "batch", "segmenter_sha256")


@dataclass
class AdversarialConfig:
    """Settings of one run (stored in its checkpoints)."""

    data: str
    out: str
    healthy: str | None = None
    segmenter: str = "default"
    labels: str = "auto"
    gan: dict[str, Any] = field(default_factory=lambda: GanConfig().to_dict())
    batch: int = 2
    lr: float = 1e-4
    max_steps: int = 1000
    max_minutes: float | None = None
    save_every: int = 50
    seed: int = 0
    device: str = "auto"
    resume: bool = False
    trained_on: str = ""
    segmenter_sha256: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class AdversarialResult:
    step: int
    start_step: int
    stopped: str
    generator: Path
    last: Path
    seconds: float
    history: list[dict[str, float]]


class Segmenter:
    """The frozen segmentation discriminator: a model of ``tumorsynth train`` run on the
    synthetic crops (HU -> its window, 1.5 mm -> its grid), gradients to its input only."""

    def __init__(self, ref: str, device: torch.device, gan: GanConfig) -> None:
        self.path = resolve_model(ref)
        self.sha256 = sha256_file(self.path)
        self.ref = str(ref)
        loaded = load_segmentation_model(self.path, device)
        self.model = loaded.model.eval().requires_grad_(False)
        self.window = loaded.window_hu
        multiple = min_patch_multiple(ModelConfig.from_dict(load_checkpoint(self.path)["model_config"]))
        side_mm = gan.patch * gan.spacing_mm
        self.size = tuple(max(multiple, int(round(side_mm / s / multiple)) * multiple) for s in loaded.spacing_mm)
        self.gan = gan

    def tumor_probability(self, x: torch.Tensor) -> torch.Tensor:
        """p(tumor) (B, 1, n, n, n) on the crop's grid for crops ``x`` windowed as G sees them."""
        w0, w1 = self.gan.window_hu
        s0, s1 = self.window
        hu = x * (w1 - w0) + w0
        xs = torch.clamp((hu - s0) / (s1 - s0), 0.0, 1.0)
        xs = F.interpolate(xs, size=self.size, mode="trilinear", align_corners=False)
        prob = torch.softmax(self.model(xs), dim=1)[:, 2:3]
        return F.interpolate(prob, size=tuple(x.shape[2:]), mode="trilinear", align_corners=False)

    def describe(self) -> dict[str, str]:
        return {"id": self.ref if not Path(self.ref).exists() else self.path.name, "sha256": self.sha256}


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` over ``mask`` (bool), 0 when the mask is empty."""
    m = mask.to(values.dtype)
    return (values * m).sum() / m.sum().clamp_min(1.0)


class AdversarialTrainer:
    """Networks, optimisers and the two update steps (usable on a fixed batch in tests)."""

    def __init__(self, cfg: AdversarialConfig, segmenter: Any, device: torch.device) -> None:
        self.cfg, self.gan, self.device = cfg, GanConfig.from_dict(cfg.gan), device
        torch.manual_seed(cfg.seed)
        self.generator = build_generator(self.gan).to(device)
        self.discriminator = build_discriminator(self.gan).to(device)
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=cfg.lr, betas=(0.0, 0.999))
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=cfg.lr, betas=(0.0, 0.999))
        self.segmenter = segmenter
        self.step = 0

    def tensors(self, batch: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        return {k: torch.as_tensor(v).to(self.device) for k, v in batch.items()}

    def synthesize(self, b: dict[str, torch.Tensor]) -> torch.Tensor:
        d = difference_map(self.generator, b["x"], b["channel"])
        return apply_difference(b["x"], d, b["organ"].float(), b["weight"], b["texture"], b["base_hu"],
                                self.gan.window_hu)

    def generator_losses(self, b: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x_hat = self.synthesize(b)
        p_real = torch.softmax(self.discriminator(x_hat), dim=1)[:, REAL_TUMOR:REAL_TUMOR + 1]
        l_adv = 1.0 - masked_mean(p_real, b["mask"])
        p_seg = self.segmenter.tumor_probability(x_hat)
        l_seg = 1.0 - masked_mean(p_seg, b["mask"])
        return {"g": ADV_WEIGHT * l_adv + l_seg, "adv": l_adv, "seg": l_seg,
                "p_hard": masked_mean((p_seg > 0.5).float(), b["mask"]).detach()}

    def discriminator_loss(self, b: dict[str, torch.Tensor]) -> torch.Tensor:
        with torch.no_grad():
            x_hat = self.synthesize(b)
        p_fake = torch.softmax(self.discriminator(x_hat), dim=1)[:, FAKE_TUMOR:FAKE_TUMOR + 1]
        p_real = torch.softmax(self.discriminator(b["x_real"]), dim=1)[:, REAL_TUMOR:REAL_TUMOR + 1]
        return 0.5 * ((1.0 - masked_mean(p_fake, b["mask"])) + (1.0 - masked_mean(p_real, b["real"])))

    def generator_step(self, b: dict[str, torch.Tensor]) -> dict[str, float]:
        self.discriminator.requires_grad_(False)
        self.opt_g.zero_grad(set_to_none=True)
        losses = self.generator_losses(b)
        losses["g"].backward()
        self.opt_g.step()
        self.discriminator.requires_grad_(True)
        return {k: float(v.detach()) for k, v in losses.items()}

    def discriminator_step(self, b: dict[str, torch.Tensor]) -> float:
        self.opt_d.zero_grad(set_to_none=True)
        loss = self.discriminator_loss(b)
        loss.backward()
        self.opt_d.step()
        return float(loss.detach())

    def train_step(self, batch: dict[str, np.ndarray]) -> dict[str, float]:
        """One G step then one D step (the reference's order)."""
        b = self.tensors(batch)
        out = self.generator_step(b)
        out["d"] = self.discriminator_step(b)
        self.step += 1
        return out

    # -- checkpoints -------------------------------------------------------------------------
    def export_payload(self) -> dict[str, Any]:
        """What ``generator.pt`` holds (no discriminator, no optimiser state)."""
        return {"gan_config": self.gan.to_dict(), "generator": self.generator.state_dict(),
                "config": {"organ": ",".join(self.gan.organs), "method": "adversarial", "step": self.step},
                "segmenter": self.segmenter.describe(), "trained_on": self.cfg.trained_on}

    def save(self, out: Path) -> tuple[Path, Path]:
        last = save_gan_checkpoint(out / LAST, {
            **self.export_payload(), "discriminator": self.discriminator.state_dict(),
            "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(), "step": self.step,
            "train": self.cfg.to_dict()})
        return save_gan_checkpoint(out / GENERATOR, self.export_payload()), last

    def restore(self, path: Path) -> None:
        payload = read_gan_checkpoint(path, map_location=self.device)
        check_resumable({"config": payload.get("train") or {}}, path, self.cfg.to_dict(), FROZEN_ON_RESUME)
        load_strict(self.generator, payload["generator"], "generator", path)
        load_strict(self.discriminator, payload["discriminator"], "discriminator", path)
        self.opt_g.load_state_dict(payload["opt_g"])
        self.opt_d.load_state_dict(payload["opt_d"])
        self.step = int(payload["step"])


def batch_rng(seed: int, step: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(step)]))


def train_adversarial(cfg: AdversarialConfig, events: EventStream | None = None) -> AdversarialResult:
    """Run (or resume) a training; see the module doc."""
    events = events or EventStream("none")
    if cfg.batch < 1 or cfg.max_steps < 1 or cfg.lr <= 0 or cfg.save_every < 1:
        raise InputError("--batch, --max-steps and --save-every must be >= 1 and --lr > 0")
    gan = GanConfig.from_dict(cfg.gan)
    out = prepare_output_folder(cfg.out)
    with folder_lock(out, "train-adversarial"):
        resume_from = require_new_run(out, cfg.resume)
        device = resolve_device(cfg.device)
        segmenter = Segmenter(cfg.segmenter, device, gan)
        cfg.segmenter_sha256 = segmenter.sha256
        tumors = load_cases(cfg.data, gan, cfg.labels, need_tumor=True)
        healthy = load_cases(cfg.healthy, gan, cfg.labels, need_tumor=False) if cfg.healthy else tumors
        trainer = AdversarialTrainer(cfg, segmenter, device)
        if resume_from is not None:
            trainer.restore(resume_from)
        return _loop(trainer, cfg, out, healthy, tumors, events)


def _loop(trainer: AdversarialTrainer, cfg: AdversarialConfig, out: Path, healthy: list[CaseArrays],
          tumors: list[CaseArrays], events: EventStream) -> AdversarialResult:
    start, t0, flags, history = trainer.step, time.monotonic(), {}, []
    events.total = cfg.max_steps
    if cfg.max_minutes is not None:
        events.deadline_s = 60.0 * cfg.max_minutes
    events.start(trainer.step, total=cfg.max_steps, segmenter=trainer.segmenter.describe(),
                 healthy_cases=len(healthy), tumor_cases=len(tumors))
    stopped = "max_steps"
    with stop_on_signals(flags):
        while trainer.step < cfg.max_steps:
            reason = budget_stop(flags, t0, cfg.max_minutes)
            if reason is not None:
                stopped = reason
                break
            batch = make_batch(healthy, tumors, trainer.gan, cfg.batch, batch_rng(cfg.seed, trainer.step))
            losses = trainer.train_step(batch)
            history.append({"step": trainer.step, **{k: round(v, 5) for k, v in losses.items()}})
            events.progress(trainer.step, **{k if k == "p_hard" else f"loss_{k}": v for k, v in losses.items()})
            if trainer.step % cfg.save_every == 0:
                generator, last = trainer.save(out)
                events.checkpoint(trainer.step, last)
        generator, last = trainer.save(out)
    events.checkpoint(trainer.step, generator, kind="generator")
    seconds = time.monotonic() - t0
    write_json_atomic(out / "history.json", {"config": cfg.to_dict(), "history": history,
                                             "stopped": stopped, "seconds": seconds})
    events.done(trainer.step, reason=stopped, generator=str(generator), last=str(last))
    return AdversarialResult(trainer.step, start, stopped, generator, last, seconds, history)


__all__ = ["AdversarialConfig", "AdversarialResult", "AdversarialTrainer", "Segmenter", "batch_rng",
           "masked_mean", "train_adversarial"]
