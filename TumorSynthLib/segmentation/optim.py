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

from typing import Any

import torch
from monai.optimizers import WarmupCosineSchedule

#: LR factor at the end of the cosine (fraction of the base rate).
LR_FLOOR = 0.01
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
        """Restore the progress (step, rates) of a checkpoint; the shape (warm-up, total steps)
        stays this run's, so a run resumed with more ``--max-steps`` stretches its cosine."""
        shape = {key: getattr(self, key) for key in _SHAPE}
        super().load_state_dict(state_dict)
        self.__dict__.update(shape)


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


__all__ = ["LR_FLOOR", "WarmupCosine", "make_optimizer", "make_scheduler", "make_loss"]
