"""Optimiser, learning-rate schedule and loss of segmentation training.

The schedule is MONAI's ``WarmupCosineSchedule`` (linear warm-up, then a half cosine) with two
settings of ours, kept from the schedule TumorSynth had before it used MONAI's:

* steps are counted from 1: step ``s`` gets MONAI's factor of step ``s + 1`` with ``warmup + 1``
  warm-up steps, so the first update uses ``1 / (warmup + 1)`` of the rate instead of 0 (no
  wasted step), and the cosine reaches its end at ``total_steps``;
* the cosine ends at ``floor`` (1 %) of the rate by blending, ``floor + (1 - floor) * cos``,
  where MONAI's ``end_lr`` clips (``max(end_lr, cos)``); after ``total_steps`` it stays there.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch
from monai.optimizers import WarmupCosineSchedule

#: LR factor at the end of the cosine (fraction of the base rate).
LR_FLOOR = 0.01
#: Budget fitting: steps skipped (warm-up of workers and caches), steps of the first measure,
#: steps between later re-fits, steps whose speed a re-fit uses, share of the budget kept for
#: the last validation and saving.
FIT_SKIP, FIT_MEASURE, FIT_EVERY, FIT_WINDOW, FIT_MARGIN = 10, 30, 50, 300, 0.03
_SHAPE = ("warmup_steps", "t_total", "cycles", "end_lr", "warmup_multiplier", "floor", "total_steps")


class WarmupCosine(WarmupCosineSchedule):
    """MONAI's warm-up + cosine schedule, counted from 1 and ending at ``floor`` (module doc)."""

    def __init__(self, optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int,
                 floor: float = LR_FLOOR) -> None:
        warmup = max(0, int(warmup_steps))
        self.floor = float(floor)
        self.total_steps = max(int(total_steps), warmup + 1)
        super().__init__(optimizer, warmup_steps=warmup + 1, t_total=self.total_steps + 1)

    def lr_lambda(self, step: int) -> float:
        """Factor of the base rate at optimiser step ``step`` (0-based)."""
        factor = super().lr_lambda(min(int(step), self.total_steps) + 1)
        if step + 1 < self.warmup_steps:
            return factor
        return self.floor + (1.0 - self.floor) * factor

    def stretch(self, total_steps: int) -> None:
        """End the cosine at ``total_steps`` instead (the warm-up stays): the training loop
        re-fits its step budget to ``--max-minutes`` as it measures its speed."""
        self.total_steps = max(int(total_steps), self.warmup_steps)
        self.t_total = self.total_steps + 1

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the progress (step) of a checkpoint; the shape (warm-up, total steps) and the
        base rate stay this run's, so a run resumed with more ``--max-steps`` stretches its
        cosine (and a new ``--lr`` counts), from the very next step: the optimiser's rates are
        set from them (load the optimiser's state first)."""
        shape = {key: getattr(self, key) for key in (*_SHAPE, "base_lrs")}
        super().load_state_dict(state_dict)
        self.__dict__.update(shape)
        self.go_to(self.last_epoch)

    def go_to(self, step: int) -> None:
        """Put the schedule (and the optimiser's rates) at ``step`` optimiser steps done."""
        self.last_epoch = max(0, int(step))
        rates = [base * self.lr_lambda(self.last_epoch) for base in self.base_lrs]
        for group, lr in zip(self.optimizer.param_groups, rates):
            group["lr"] = lr
        self._last_lr = rates


class BudgetFit:
    """Fits a run's last step to its time budget as it measures its own speed, so that a run
    limited by minutes still ends with a fully annealed learning rate (``WarmupCosine.stretch``).

    Steps ``FIT_SKIP`` to ``FIT_SKIP + FIT_MEASURE`` after ``first_step`` measure the speed;
    then every ``FIT_EVERY`` steps the speed of the last ``FIT_WINDOW`` steps (a shared
    machine's speed changes) gives the step count that fills the time left, less
    ``FIT_MARGIN`` of the budget for the last validation and saving."""

    def __init__(self, max_minutes: float, t0: float, first_step: int) -> None:
        self.budget_s = 60.0 * float(max_minutes)
        self.t0, self.first_step = float(t0), int(first_step)
        self._marks: list[tuple[int, float]] = []     # (step, monotonic time)
        self.fits = 0                                  # re-fits so far

    def update(self, step: int, reduce: Callable[[float], float] = float) -> tuple[int, float] | None:
        """(last step, seconds per step) when ``step`` is a re-fit point, else None.
        ``reduce`` combines the measured seconds per step over processes (distributed runs)."""
        done = step - self.first_step
        if done < FIT_SKIP or (done - FIT_SKIP) % (FIT_MEASURE if done <= FIT_SKIP + FIT_MEASURE else FIT_EVERY):
            return None
        now = time.monotonic()
        self._marks.append((step, now))
        if len(self._marks) < 2:
            return None
        old_step, old_time = next((m for m in self._marks if step - m[0] <= FIT_WINDOW), self._marks[-2])
        self._marks = [m for m in self._marks if step - m[0] <= FIT_WINDOW]
        per_step = reduce((now - old_time) / max(1, step - old_step))
        left_s = self.budget_s * (1.0 - FIT_MARGIN) - (now - self.t0)
        self.fits += 1
        return max(step + 1, step + int(left_s / max(per_step, 1e-6))), per_step


def make_optimizer(model: torch.nn.Module, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)


def make_scheduler(optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int) -> WarmupCosine:
    """Warm-up over ``warmup_steps``, cosine down to 1 % at ``total_steps`` (see the module doc)."""
    return WarmupCosine(optimizer, warmup_steps, total_steps)


def make_loss() -> torch.nn.Module:
    """Dice + cross-entropy on softmax logits against integer labels (B, 1, ...).

    The Dice is a *batch* Dice (each class pooled over all patches of the step, as nnU-Net
    does): with per-patch Dice every tumor-free patch rewards an all-empty tumor channel so
    strongly that small, rare tumors are learnt late or not at all."""
    from monai.losses import DiceCELoss

    return DiceCELoss(to_onehot_y=True, softmax=True, batch=True)


__all__ = ["LR_FLOOR", "BudgetFit", "WarmupCosine", "make_loss", "make_optimizer", "make_scheduler"]
