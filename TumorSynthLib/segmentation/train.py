"""The training loop of ``tumorsynth train`` (single process or under ``torchrun``).

One *step* is one optimiser step on ``batch_size`` cases x ``samples_per_case`` patches. The
loop stops at ``max_steps``, when ``max_minutes`` have passed, or on SIGINT / SIGTERM; in every
case it writes ``last.pt`` first, so ``--resume`` continues from the same step with the same
sample order (``pipeline.EpochSampler``). ``best.pt`` holds the weights with the best
validation tumor DSC (no optimiser state). Rank 0 alone writes files and events.

``fit_schedule`` (with ``max_minutes``): the run measures this machine's speed and
``max_steps`` becomes the step count that fills the time left, re-fitted as the speed changes;
the warm-up + cosine schedule is stretched or shrunk to end there, so a time budget still ends
with a fully annealed learning rate (``optim.BudgetFit``). The current ``max_steps`` is stored
in ``config.json`` and the checkpoints.
"""
from __future__ import annotations

import gc
import math
import signal
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from ..core.errors import InputError
from ..core.events import EventStream, utc_now
from ..core.files import prepare_output_folder, write_json_atomic
from ..core.locks import folder_lock
from ..transforms import SynthesisTally
from .checkpoint import (
    BEST,
    LAST,
    check_resumable,
    load_checkpoint,
    load_model_state,
    require_new_run,
    save_checkpoint,
)
from .config import FROZEN_ON_RESUME, TrainConfig
from .datasets import CaseSplit, split_cases
from .device import is_out_of_memory, out_of_memory_error
from .distributed import (
    DistContext,
    any_rank,
    barrier,
    init_distributed,
    mean_over_ranks,
    shutdown,
    unwrap,
    wrap_model,
)
from .models import build_model, min_patch_multiple, min_patch_side, model_config_for
from .optim import FIT_EVERY, BudgetFit, make_loss, make_optimizer, make_scheduler
from .pipeline import EpochSampler, SeededDataset, training_transform
from .quality import QualityFilter
from .tasks import task_label_names
from .validation import ValidationSet, validate

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@dataclass
class TrainResult:
    """How a run ended. ``stopped``: "max_steps" | "max_minutes" | "stop_at" | "signal"."""

    step: int
    start_step: int
    stopped: str
    last: Path | None
    best: Path | None
    best_metric: float | None
    losses: list[float] = field(default_factory=list)
    model: torch.nn.Module | None = None
    seconds: float = 0.0
    synthesis: dict[str, Any] = field(default_factory=dict)   # SynthesisTally.stats (workers included)
    timing: dict[str, float] = field(default_factory=dict)    # data_s / compute_s totals


def init_loader_worker(_worker_id: int) -> None:
    """Start of a DataLoader worker. It leaves Ctrl-C to the main process, which saves and exits.
    It freezes the garbage collector's view of the objects inherited by the fork: a full
    collection would otherwise walk (and so copy-on-write) every page of the parent's Python
    objects. Measured: after a diffusion run in the same process, the next run's first
    handcrafted tumor took 1.1 s instead of 0.25 s, 0.8 s of it one such collection."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    gc.freeze()


@contextmanager
def stop_on_signals(flags: dict[str, Any]) -> Iterator[None]:
    """SIGINT / SIGTERM set ``flags["signal"]`` instead of killing the process (main thread
    only; elsewhere the handlers are left alone)."""
    previous = {}
    try:
        for sig in STOP_SIGNALS:
            previous[sig] = signal.signal(sig, lambda num, _frame: flags.__setitem__("signal", num))
    except ValueError:  # not the main thread
        pass
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def budget_stop(flags: dict[str, Any], t0: float, max_minutes: float | None) -> str | None:
    """Why a training loop must stop before its next step: "signal" (SIGINT / SIGTERM caught by
    ``stop_on_signals``), "max_minutes" (``time.monotonic()`` since ``t0``), or None (go on)."""
    if flags.get("signal") is not None:
        return "signal"
    if max_minutes is not None and time.monotonic() - t0 >= 60.0 * max_minutes:
        return "max_minutes"
    return None


class Trainer:
    """Builds data, model and optimiser from a TrainConfig and runs the loop."""

    def __init__(self, cfg: TrainConfig, ctx: DistContext, events: EventStream, quality: Any = None) -> None:
        self.cfg, self.ctx, self.events = cfg, ctx, events
        self.out = Path(cfg.out).expanduser()
        resume_from = require_new_run(self.out, cfg.resume)
        quality = quality if quality is not None else self._quality_filter()  # a bad model fails first
        from monai.utils import set_determinism

        set_determinism(seed=cfg.seed)
        self.split: CaseSplit = split_cases(cfg.data, cfg.organ, cfg.labels, seed=cfg.seed,
                                            val_fraction=cfg.val_fraction, warn=events.log)
        self.model_cfg = model_config_for(cfg.model, ctx.device.type, cfg.channels)
        multiple, smallest = min_patch_multiple(self.model_cfg), min_patch_side(self.model_cfg)
        if cfg.patch % multiple or cfg.patch < smallest:
            raise InputError(f"--patch {cfg.patch} must be a multiple of {multiple} and at least {smallest} "
                             f"for {cfg.model} with these --channels")
        self.model = build_model(self.model_cfg).to(ctx.device)
        self.optimizer = make_optimizer(self.model, cfg.lr, cfg.weight_decay)
        self.scheduler = make_scheduler(self.optimizer, cfg.warmup, cfg.max_steps)
        self.amp = bool(cfg.amp and ctx.device.type == "cuda")
        self.scaler = torch.amp.GradScaler("cuda") if self.amp else None
        self.loss_fn = make_loss()
        self.step = self.start_step = 0
        self.saved_step: int | None = None
        self.validated_step: int | None = None
        self.best_metric, self.best_organ, self.best_step = -math.inf, -math.inf, None
        self._budget: BudgetFit | None = None               # fit_schedule's speed measure
        if resume_from is not None:
            self._restore(resume_from)
        self.model = wrap_model(self.model, ctx)
        self.vset = ValidationSet(self.split.validation, cfg, self.split.convention)
        self.loader = self._make_loader(quality)

    # -- setup -----------------------------------------------------------------------------------
    def _restore(self, path: Path) -> None:
        payload = load_checkpoint(path, map_location=self.ctx.device)
        check_resumable(payload, path, self.cfg.to_dict(), FROZEN_ON_RESUME)
        load_model_state(self.model, payload, path)
        for obj, key in ((self.optimizer, "optimizer"), (self.scheduler, "scheduler"), (self.scaler, "scaler")):
            if obj is not None and payload.get(key) is not None:
                obj.load_state_dict(payload[key])
        self.step = self.start_step = int(payload["step"])
        best = payload.get("best_metric")
        self.best_metric = -math.inf if best is None else float(best)
        self.best_step = payload.get("best_step")
        organ = payload.get("best_organ_dsc")
        self.best_organ = -math.inf if organ is None else float(organ)

    def _quality_filter(self) -> Any:
        """The FreeTumor quality filter of ``cfg.quality_model`` (on the CPU when data workers
        run it: forked workers cannot share a CUDA context)."""
        if not self.cfg.quality_model:
            return None

        device = "cpu" if self.cfg.workers > 0 else self.cfg.device
        return QualityFilter(self.cfg.quality_model, threshold=self.cfg.quality_threshold,
                             device=device, organ=self.cfg.organ)

    def _make_loader(self, quality: Any) -> torch.utils.data.DataLoader:
        from monai.data import DataLoader

        cfg = self.cfg
        quality = quality if quality is not None else self._quality_filter()
        dataset = SeededDataset(self.split.training, training_transform(cfg, self.split.convention, quality),
                                cfg.seed, cache_rate=cfg.cache_rate, reuse=cfg.synth_reuse)
        self.tally = SynthesisTally()
        sampler = EpochSampler(len(dataset), cfg.seed, self.ctx.rank, self.ctx.world_size,
                               start=self.start_step * cfg.batch_size)
        return DataLoader(dataset, batch_size=cfg.batch_size, sampler=sampler, num_workers=cfg.workers,
                          worker_init_fn=init_loader_worker, pin_memory=self.ctx.device.type == "cuda",
                          persistent_workers=cfg.workers > 0)

    # -- checkpoints -------------------------------------------------------------------------------
    def payload(self, with_state: bool) -> dict[str, Any]:
        cfg = self.cfg
        out = {
            "model": unwrap(self.model).state_dict(),
            "step": self.step, "best_metric": None if math.isinf(self.best_metric) else self.best_metric,
            "best_step": self.best_step,
            "best_organ_dsc": None if math.isinf(self.best_organ) else self.best_organ, "model_config": self.model_cfg.to_dict(), "config": cfg.to_dict(),
            "label_names": task_label_names(cfg.organ),
            "preprocessing": {"orientation": "RAS", "spacing_mm": [cfg.spacing_mm] * 3,
                              "window_hu": list(cfg.window_hu), "patch": [cfg.patch] * 3,
                              "convention": self.split.convention, "foreground_hu": -500.0},
            "data": {"n_training": len(self.split.training), "n_validation": len(self.vset),
                     "skipped": self.split.skipped},
            "saved": utc_now(),
        }
        if with_state:
            out.update(optimizer=self.optimizer.state_dict(), scheduler=self.scheduler.state_dict(),
                       scaler=None if self.scaler is None else self.scaler.state_dict())
        return out

    def save(self, name: str) -> Path:
        path = self.out / name
        if name == LAST:
            self.saved_step = self.step
        if self.ctx.is_main:
            save_checkpoint(path, self.payload(with_state=name == LAST))
            self.events.checkpoint(self.step, path, kind=name.split(".")[0])
        return path

    # -- loop ------------------------------------------------------------------------------------
    def train_step(self, batch: dict[str, torch.Tensor]) -> float:
        x = batch["image"].to(self.ctx.device, non_blocking=True).float()
        y = batch["label"].to(self.ctx.device, non_blocking=True).round().long()
        self.optimizer.zero_grad(set_to_none=True)
        try:
            with torch.autocast(self.ctx.device.type, dtype=torch.float16, enabled=self.amp):
                loss = self.loss_fn(self.model(x), y)
            if self.scaler is not None:
                self.scaler.scale(loss).backward()
                self.scaler.step(self.optimizer)
                self.scaler.update()
            else:
                loss.backward()
                self.optimizer.step()
        except (RuntimeError, torch.OutOfMemoryError) as exc:
            if is_out_of_memory(exc):
                raise out_of_memory_error(self.ctx.device, self.cfg.patch) from exc
            raise
        self.scheduler.step()
        return float(loss.detach().item())

    def maybe_validate(self) -> None:
        if self.cfg.val_every <= 0 or len(self.vset) == 0:
            return
        if self.ctx.is_main:
            metrics = validate(unwrap(self.model), self.vset, self.ctx.device, self.cfg.patch, self.amp)
            score, organ = metrics["tumor_dsc"], metrics["organ_dsc"]
            improved = bool(np.isfinite(score)) and (
                score > self.best_metric or (score == self.best_metric and organ > self.best_organ))
            self.events.validation(self.step, metrics, best=improved)
            if improved:   # best tumor DSC; ties (e.g. 0 early on) go to the better organ DSC
                self.best_metric, self.best_organ, self.best_step = float(score), float(organ), self.step
                self.save(BEST)
        barrier(self.ctx)

    def stop_reason(self, flags: dict[str, Any], t0: float) -> str | None:
        """Why the loop must stop before the next step (None: go on)."""
        if flags.get("signal") is None and self.cfg.stop_at is not None and self.step >= self.cfg.stop_at:
            return "stop_at"
        return budget_stop(flags, t0, self.cfg.max_minutes)

    def maybe_fit_schedule(self, t0: float) -> None:
        """With ``fit_schedule``: re-aim ``max_steps`` and the schedule at the end of the time
        budget (``optim.BudgetFit``); the current ``max_steps`` goes to ``config.json``."""
        cfg = self.cfg
        if not cfg.fit_schedule or cfg.max_minutes is None:
            return
        if self._budget is None:
            self._budget = BudgetFit(cfg.max_minutes, t0, self.start_step)
        fitted = self._budget.update(self.step, lambda s: mean_over_ranks(s, self.ctx))
        if fitted is None:
            return
        cfg.warmup_steps = cfg.warmup            # keep the warm-up the run started with
        cfg.max_steps, per_step = fitted
        self.scheduler.stretch(cfg.max_steps)
        self.events.total = cfg.max_steps
        if self.ctx.is_main:
            write_json_atomic(self.out / "config.json", cfg.to_dict())
        if self._budget.fits == 1:
            self.events.log(f"schedule fitted to {cfg.max_minutes:g} min: {per_step:.2f} s/step -> "
                            f"{cfg.max_steps} steps (re-fitted every {FIT_EVERY} steps)")

    def announce(self) -> None:
        """The ``start`` event and ``config.json`` (rank 0)."""
        cfg = self.cfg
        self.events.total = cfg.max_steps
        if cfg.max_minutes is not None:
            self.events.deadline_s = 60.0 * cfg.max_minutes
        self.events.start(self.step, total=cfg.max_steps, organ=cfg.organ, method=cfg.method,
                          model=cfg.model, device=str(self.ctx.device), world_size=self.ctx.world_size,
                          n_training=len(self.split.training), n_validation=len(self.vset),
                          n_with_real_tumor=sum(bool(c.has_tumor) for c in self.split.training),
                          skipped=self.split.skipped, resumed=self.start_step > 0, out=str(self.out))
        if self.ctx.is_main:
            write_json_atomic(self.out / "config.json", cfg.to_dict())

    def loop(self, t0: float, losses: list[float], timing: dict[str, float]) -> str:
        """Optimiser steps until a budget, ``stop_at`` or a signal ends the run; returns why."""
        cfg, flags = self.cfg, {}
        it = iter(self.loader)
        with stop_on_signals(flags):
            while self.step < cfg.max_steps:
                reason = self.stop_reason(flags, t0)
                if any_rank(reason is not None, self.ctx):
                    return reason or "signal"
                t_data = time.perf_counter()
                batch = next(it)
                self.tally.add(batch)
                t_step = time.perf_counter()
                lr = float(self.scheduler.get_last_lr()[0])          # the rate this step uses
                loss = mean_over_ranks(self.train_step(batch), self.ctx)
                timing["data_s"] += t_step - t_data
                timing["compute_s"] += time.perf_counter() - t_step
                self.step += 1
                losses.append(loss)
                self.maybe_fit_schedule(t0)
                self.events.progress(self.step, loss=loss, lr=lr)
                if cfg.val_every > 0 and self.step % cfg.val_every == 0:
                    self.maybe_validate()
                    self.validated_step = self.step
                if cfg.ckpt_every > 0 and self.step % cfg.ckpt_every == 0:
                    self.save(LAST)
        return "max_steps"

    def run(self) -> TrainResult:
        t0 = time.monotonic()
        self.announce()
        losses: list[float] = []
        timing = {"data_s": 0.0, "compute_s": 0.0}   # waiting for batches / optimiser steps
        stopped = self.loop(t0, losses, timing)
        if stopped in ("max_steps", "max_minutes") and self.validated_step != self.step:
            self.maybe_validate()                    # a finished run ends with a validation
        last = self.save(LAST) if self.saved_step != self.step else self.out / LAST
        best = self.out / BEST if (self.out / BEST).exists() else None
        seconds = time.monotonic() - t0
        best_metric = None if math.isinf(self.best_metric) else self.best_metric
        self.events.done(self.step, reason=stopped, last=str(last), best=None if best is None else str(best),
                         best_tumor_dsc=best_metric,
                         steps_per_s=(self.step - self.start_step) / seconds if seconds > 0 else None,
                         synthesis=dict(self.tally.stats))
        return TrainResult(step=self.step, start_step=self.start_step, stopped=stopped, last=last,
                           best=best, best_metric=best_metric, losses=losses, model=unwrap(self.model),
                           seconds=seconds, synthesis=dict(self.tally.stats), timing=timing)


def train(cfg: TrainConfig, events: EventStream | None = None, quality: Any = None) -> TrainResult:
    """Run (or resume) training; joins the torchrun process group when launched by torchrun."""
    ctx = init_distributed(cfg.device)
    events = events if events is not None else EventStream("none")
    if not ctx.is_main:
        events.enabled = False
    try:
        with run_folder_lock(cfg, ctx):
            return Trainer(cfg, ctx, events, quality).run()
    finally:
        shutdown(ctx)


def run_folder_lock(cfg: TrainConfig, ctx: DistContext) -> Any:
    """The lock of the run folder (rank 0 takes it; ``core.locks``): a second run on the same
    folder is refused, a lock left by a killed run is taken over. The folder must be writable."""
    if not ctx.is_main:
        return nullcontext()
    out = prepare_output_folder(Path(cfg.out).expanduser())
    return folder_lock(out, f"tumorsynth train --data {cfg.data} --out {cfg.out}"
                            f"{' --resume' if cfg.resume else ''}")


__all__ = ["TrainResult", "Trainer", "train", "stop_on_signals"]
