"""The training loop of ``tumorsynth train-diffusion`` (pixel or latent configuration).

One *step* is one optimiser step on ``batch_size`` patches. A latent run first trains the
autoencoder (``ae_steps``), then measures the latent scale and trains the denoiser
(``max_steps``); a pixel run trains the denoiser only. The batch of step ``s`` is drawn from
``default_rng([seed, s])`` and its noise from a torch generator seeded by ``(seed, s)``, so a
resumed run continues exactly where the killed one was (``--resume``).

The denoiser's learning rate follows ``lr_schedule``: warm-up + cosine down to 1 % at the last
step (``segmentation.optim.WarmupCosine``), or constant. With ``max_minutes`` the last step is
fitted to the budget as the speed is measured (``BudgetFit``, never beyond ``max_steps``), so a
run limited by time still ends annealed: a constant rate let a 30-minute CPU run blow up at
step 1870 (validation ratio 0.61 -> 0.96).

The loop stops at the last step, when ``max_minutes`` have passed, or on SIGINT / SIGTERM; it
writes ``last.pt`` first (every ``ckpt_every`` steps too). Every ``val_every`` steps the EMA
weights sample the fixed held-out patches (``metrics``); the best ``mae_ratio`` is kept as
``best.pt`` (a finished model: ``tumorsynth models add RUN/best.pt``).
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..core.errors import InputError
from ..core.events import EventStream, utc_now
from ..core.files import write_json_atomic
from ..segmentation.checkpoint import BEST, LAST, require_new_run
from ..segmentation.datasets import find_cases
from ..segmentation.device import is_out_of_memory, out_of_memory_error, resolve_device
from ..segmentation.optim import FIT_EVERY, BudgetFit, make_scheduler
from ..segmentation.train import budget_stop, stop_on_signals
from ..synthesis.learned.checkpoint import (
    DiffusionModel,
    read_diffusion_checkpoint,
    save_diffusion_checkpoint,
)
from ..synthesis.learned.loading import load_strict
from ..synthesis.learned.networks import (
    build_autoencoder,
    build_denoiser,
    build_scheduler,
    parameter_count,
)
from .config import DiffusionTrainConfig, check_resumable
from .data import crops_summary, draw_batch, load_tumor_crops, split_crops
from .losses import amp_dtype, autoencoder_loss, denoiser_loss, ema_update, latent_scale, train_memory_format
from .metrics import evaluate_patches


@dataclass
class DiffusionTrainResult:
    """How a run ended. ``stopped``: "max_steps" | "max_minutes" | "signal"."""

    step: int
    start_step: int
    stopped: str
    last: Path
    best: Path | None
    best_metric: float | None
    losses: list[float] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


def held_out_sources(cases: list[Any], validation: list[Any], fraction: float, seed: int) -> set[str]:
    """Image files of the cases held out: the datalist's validation cases, else ``fraction``
    of the cases (at least one when there are two or more), chosen by ``seed``."""
    if validation:
        return {c.image for c in validation}
    if len(cases) < 2 or fraction <= 0:
        return set()
    order = np.random.default_rng(seed).permutation(len(cases))
    return {cases[i].image for i in order[:max(1, int(round(fraction * len(cases))))]}


class DiffusionTrainer:
    """Data, networks and optimisers of one run (see the module docstring)."""

    def __init__(self, tcfg: DiffusionTrainConfig, events: EventStream) -> None:
        self.tcfg, self.events = tcfg, events
        self.out = Path(tcfg.out).expanduser()
        resume_from = require_new_run(self.out, tcfg.resume)
        self.device = resolve_device(tcfg.device)
        self.cfg = tcfg.model_config()
        self._load_data()
        with torch.random.fork_rng(devices=[]):      # the initial weights follow the seed
            torch.manual_seed(tcfg.seed)
            self.denoiser = build_denoiser(self.cfg).to(self.device, memory_format=train_memory_format(self.device))
            self.autoencoder = build_autoencoder(self.cfg)
        self.ema = copy.deepcopy(self.denoiser).requires_grad_(False)
        fused = {"fused": True}
        self.optimizer = torch.optim.AdamW(self.denoiser.parameters(), lr=tcfg.lr,
                                           weight_decay=tcfg.weight_decay, **fused)
        self.ae_optimizer = None
        if self.autoencoder is not None:
            self.autoencoder.to(self.device)
            self.ae_optimizer = torch.optim.AdamW(self.autoencoder.parameters(), lr=tcfg.ae_lr, **fused)
        self.requested_steps = tcfg.max_steps           # budget fitting never goes beyond it
        self.scheduler = (make_scheduler(self.optimizer, tcfg.warmup_steps, tcfg.max_steps)
                          if tcfg.lr_schedule == "cosine" else None)
        self._budget: BudgetFit | None = None
        self.amp = amp_dtype(self.device, tcfg.precision)
        self.scaler = torch.amp.GradScaler("cuda") if self.amp == torch.float16 else None
        self.step = self.start_step = 0
        self.best_metric, self.best_step = math.inf, None
        self.saved_step: int | None = None
        if resume_from is not None:
            self._restore(resume_from)

    # -- setup -----------------------------------------------------------------------------------
    def _load_data(self) -> None:
        tcfg = self.tcfg
        training, validation = find_cases(tcfg.data)
        held_ids = held_out_sources(training, validation, tcfg.val_fraction, tcfg.seed)
        crops = load_tumor_crops(training + validation, self.cfg, tcfg.organs, tcfg.labels, self.events.log)
        self.train_crops, self.held_crops = split_crops(crops, held_ids)
        if not self.train_crops:
            raise InputError(f"no tumor to train on in '{tcfg.data}': the labels hold no tumor id of "
                             f"{', '.join(tcfg.organs)} (check --labels and --organs)")
        self.held_out = bool(self.held_crops)
        source = self.held_crops or self.train_crops
        if not self.held_out:
            self.events.log("warning: no held-out case (one case only?): validation uses training tumors")
        rng = np.random.default_rng([tcfg.seed, 2**31 - 1])
        self.val_images, self.val_masks = draw_batch(source, self.cfg, rng, tcfg.val_patches, augment=False)

    def _restore(self, path: Path) -> None:
        payload = read_diffusion_checkpoint(path, map_location=self.device)
        check_resumable(payload["config"].to_dict(), self.cfg, path)
        self.cfg = self.cfg.with_changes(latent_scale=payload["config"].latent_scale)
        load_strict(self.denoiser, payload["train_denoiser"], "denoiser", path)
        load_strict(self.ema, payload["denoiser"], "EMA denoiser", path)
        if self.autoencoder is not None:
            load_strict(self.autoencoder, payload["autoencoder"], "autoencoder", path)
        for obj, key in ((self.optimizer, "optimizer"), (self.ae_optimizer, "ae_optimizer"),
                         (self.scaler, "scaler")):
            if obj is not None and payload.get(key) is not None:
                obj.load_state_dict(payload[key])
        for optimizer in (self.optimizer, self.ae_optimizer):
            if optimizer is not None:
                match_state_layout(optimizer)
        self.step = self.start_step = int(payload["step"])
        self._restore_schedule(payload)
        if self.autoencoder is not None and self.step >= self.tcfg.denoiser_start:
            self.autoencoder.eval().requires_grad_(False)
        best = payload.get("best_metric")
        self.best_metric = math.inf if best is None else float(best)
        self.best_step = payload.get("best_step")

    def _restore_schedule(self, payload: dict[str, Any]) -> None:
        """This run's rates from the next step on. Constant: ``--lr``. Cosine: where the
        checkpoint left it, with this run's ``--lr`` and shape; a budget-fitted run that had
        not reached its fitted last step aims at it again until the budget is re-fitted (40
        steps in), one that had aims at ``--max-steps`` (re-fitted likewise: a warm restart);
        a checkpoint without schedule state (a constant-rate run) joins the cosine at its step."""
        if self.scheduler is None:
            for group in self.optimizer.param_groups:
                group["lr"] = self.tcfg.lr
            return
        done = max(0, self.step - self.tcfg.denoiser_start)
        saved_steps = (payload.get("train") or {}).get("max_steps")
        if self.tcfg.max_minutes is not None and saved_steps and done < int(saved_steps):
            self.tcfg.max_steps = min(self.requested_steps, int(saved_steps))
            self.scheduler.stretch(self.tcfg.max_steps)
        if payload.get("scheduler") is not None:
            self.scheduler.load_state_dict(payload["scheduler"])
        else:
            self.scheduler.go_to(done)

    def current_lr(self) -> float:
        """Learning rate of the phase's optimiser (for the progress events)."""
        optimizer = self.ae_optimizer if self.phase() == "autoencoder" else self.optimizer
        return float(optimizer.param_groups[0]["lr"])

    def fit_budget(self, t0: float) -> None:
        """With a cosine and ``max_minutes``: re-aim the last denoiser step at the end of the
        budget (``BudgetFit``), never beyond the requested ``max_steps``."""
        tcfg = self.tcfg
        if self.scheduler is None or tcfg.max_minutes is None or self.phase() != "denoiser":
            return
        if self._budget is None:
            self._budget = BudgetFit(tcfg.max_minutes, t0, max(self.start_step, tcfg.denoiser_start))
        fitted = self._budget.update(self.step)
        if fitted is None:
            return
        last, per_step = fitted
        tcfg.max_steps = max(self.step - tcfg.denoiser_start + 1, min(self.requested_steps, last - tcfg.denoiser_start))
        self.scheduler.stretch(tcfg.max_steps)
        self.events.total = tcfg.total_steps
        write_json_atomic(self.out / "config.json", {"train": tcfg.to_dict(), "model": self.cfg.to_dict()})
        if self._budget.fits == 1:
            self.events.log(f"learning-rate schedule fitted to {tcfg.max_minutes:g} min: {per_step:.2f} s/step -> "
                            f"{tcfg.total_steps} steps (re-fitted every {FIT_EVERY} steps)")

    # -- checkpoints -----------------------------------------------------------------------------
    def payload(self, with_state: bool) -> dict[str, Any]:
        out = {"config": self.cfg.to_dict(), "denoiser": self.ema.state_dict(), "organ": _organ(self.tcfg.organs),
               "step": self.step, "trained_on": self.tcfg.trained_on or f"tumor labels of {self.tcfg.data}",
               "best_metric": None if math.isinf(self.best_metric) else self.best_metric,
               "best_step": self.best_step, "train": self.tcfg.to_dict(),
               "data": {"training": crops_summary(self.train_crops), "held_out": crops_summary(self.held_crops)},
               "saved": utc_now()}
        if self.autoencoder is not None:
            out["autoencoder"] = self.autoencoder.state_dict()
        if with_state:
            out.update(train_denoiser=self.denoiser.state_dict(), optimizer=self.optimizer.state_dict(),
                       ae_optimizer=None if self.ae_optimizer is None else self.ae_optimizer.state_dict(),
                       scheduler=None if self.scheduler is None else self.scheduler.state_dict(),
                       scaler=None if self.scaler is None else self.scaler.state_dict())
        return out

    def save(self, name: str) -> Path:
        path = save_diffusion_checkpoint(self.out / name, self.payload(with_state=name == LAST))
        if name == LAST:
            self.saved_step = self.step
        self.events.checkpoint(self.step, path, kind=name.split(".")[0])
        return path

    # -- steps -----------------------------------------------------------------------------------
    def phase(self) -> str:
        return "autoencoder" if self.step < self.tcfg.denoiser_start else "denoiser"

    def batch(self) -> tuple[torch.Tensor, torch.Tensor, torch.Generator]:
        tcfg = self.tcfg
        images, masks = draw_batch(self.train_crops, self.cfg, np.random.default_rng([tcfg.seed, self.step]),
                                   tcfg.batch_size)
        gen = torch.Generator(device=self.device).manual_seed(int(tcfg.seed) * 1_000_003 + self.step)
        def as_tensor(a: np.ndarray) -> Any:
            return torch.from_numpy(a.astype(np.float32))[:, None].to(self.device)

        return as_tensor(images), as_tensor(masks), gen

    def train_step(self) -> float:
        x0, m, gen = self.batch()
        if self.phase() == "autoencoder":
            module, optimizer = self.autoencoder, self.ae_optimizer
            loss, _ = autoencoder_loss(module, x0, gen, self.tcfg.kl_weight, self.amp)
        else:
            if self.step == self.tcfg.denoiser_start and self.autoencoder is not None:
                self._freeze_autoencoder(x0)
            module, optimizer = self.denoiser, self.optimizer
            scheduler = build_scheduler(self.cfg, "ddpm")
            loss = denoiser_loss(module, scheduler, self.cfg, x0, m, gen, self.autoencoder, self.amp)
        optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.step(optimizer)
            self.scaler.update()
        else:
            loss.backward()
            optimizer.step()
        if module is self.denoiser and self.scheduler is not None:
            self.scheduler.step()
        if module is self.denoiser:
            ema_update(self.ema, self.denoiser, self.tcfg.ema_decay, self.step - self.tcfg.denoiser_start)
        return float(loss.detach())

    def _freeze_autoencoder(self, x0: torch.Tensor) -> None:
        self.autoencoder.eval().requires_grad_(False)
        self.cfg = self.cfg.with_changes(latent_scale=latent_scale(self.autoencoder, x0))
        self.events.log(f"autoencoder trained; latent scale {self.cfg.latent_scale:.4g}")

    # -- validation ------------------------------------------------------------------------------
    def validate(self) -> dict[str, Any]:
        if self.phase() == "autoencoder":
            return {}
        self.ema.eval()
        model = DiffusionModel(config=self.cfg, denoiser=self.ema, autoencoder=self.autoencoder, device=self.device,
                               path=Path(""), sha256="", model_id="training")
        # single samples (one chain), the quality bar's own definition; the training script also
        # reports the appearance's mean of chains
        metrics = evaluate_patches(model, self.val_images, self.val_masks, seed=self.tcfg.seed, chains=1)
        metrics["held_out"] = self.held_out
        improved = metrics.get("n_patches", 0) > 0 and metrics["mae_ratio"] < self.best_metric
        self.events.validation(self.step, {k: v for k, v in metrics.items() if isinstance(v, float)},
                               best=improved, passes=metrics.get("passes"))
        if improved:
            self.best_metric, self.best_step = float(metrics["mae_ratio"]), self.step
            self.save(BEST)
        return metrics

    # -- loop ------------------------------------------------------------------------------------
    def run(self) -> DiffusionTrainResult:
        tcfg, t0 = self.tcfg, time.monotonic()
        self.events.total = tcfg.total_steps
        if tcfg.max_minutes is not None:
            self.events.deadline_s = 60.0 * tcfg.max_minutes
        self.events.start(self.step, total=tcfg.total_steps, config=self.cfg.kind, device=str(self.device),
                          precision=str(self.amp or torch.float32).replace("torch.", ""),
                          denoiser_parameters=parameter_count(self.denoiser), resumed=self.start_step > 0,
                          training=crops_summary(self.train_crops), held_out=crops_summary(self.held_crops),
                          out=str(self.out))
        self.out.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.out / "config.json", {"train": tcfg.to_dict(), "model": self.cfg.to_dict()})
        losses: list[float] = []
        metrics: dict[str, Any] = {}
        stopped, flags = "max_steps", {}
        with stop_on_signals(flags):
            while self.step < tcfg.total_steps:
                reason = budget_stop(flags, t0, tcfg.max_minutes)
                if reason is not None:
                    stopped = reason
                    break
                phase, lr = self.phase(), self.current_lr()       # the rate this step uses
                loss = self._guarded_step()
                self.step += 1
                losses.append(loss)
                self.fit_budget(t0)
                self.events.progress(self.step, loss=loss, phase=phase, lr=lr)
                if tcfg.val_every > 0 and self.step % tcfg.val_every == 0:
                    metrics = self.validate() or metrics
                if tcfg.ckpt_every > 0 and self.step % tcfg.ckpt_every == 0:
                    self.save(LAST)
        if stopped != "signal" and (tcfg.val_every <= 0 or self.step % tcfg.val_every):
            metrics = self.validate() or metrics
        last = self.save(LAST) if self.saved_step != self.step else self.out / LAST
        best = self.out / BEST if (self.out / BEST).exists() else None
        seconds = time.monotonic() - t0
        best_metric = None if math.isinf(self.best_metric) else self.best_metric
        self.events.done(self.step, reason=stopped, last=str(last), best=None if best is None else str(best),
                         best_mae_ratio=best_metric, metrics={k: v for k, v in metrics.items() if k != "held_out"})
        return DiffusionTrainResult(self.step, self.start_step, stopped, last, best, best_metric, losses,
                                    metrics, seconds)

    def _guarded_step(self) -> float:
        try:
            return self.train_step()
        except (RuntimeError, torch.OutOfMemoryError) as exc:
            if is_out_of_memory(exc):
                raise out_of_memory_error(self.device, self.cfg.patch, "diffusion training") from exc
            raise


def match_state_layout(optimizer: torch.optim.Optimizer) -> None:
    """Give each optimiser moment its parameter's memory layout. The fused AdamW pairs a
    parameter and its moments as flat memory, so a moment saved in another layout (a checkpoint
    written before training went channels-last) would update the wrong weights."""
    for group in optimizer.param_groups:
        for param in group["params"]:
            state = optimizer.state.get(param, {})
            for key, value in state.items():
                if torch.is_tensor(value) and value.shape == param.shape and value.stride() != param.stride():
                    state[key] = torch.empty_like(param, dtype=value.dtype).copy_(value)


def _organ(organs: tuple[str, ...]) -> str:
    return organs[0] if len(organs) == 1 else "any"


def train_diffusion(tcfg: DiffusionTrainConfig, events: EventStream | None = None) -> DiffusionTrainResult:
    """Run (or resume) one training run; see the module docstring."""
    return DiffusionTrainer(tcfg, events if events is not None else EventStream("none", show_bar=False)).run()


__all__ = ["DiffusionTrainResult", "DiffusionTrainer", "held_out_sources", "train_diffusion"]
