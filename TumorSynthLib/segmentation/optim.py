"""Optimiser, learning-rate schedule and loss of segmentation training."""
from __future__ import annotations

import math
from typing import Callable

import torch


def warmup_cosine(warmup_steps: int, total_steps: int, floor: float = 0.01) -> Callable[[int], float]:
    """LR factor at a step: linear from ~0 to 1 over ``warmup_steps``, then a cosine down to
    ``floor`` at ``total_steps`` (held there afterwards)."""
    warmup = max(0, int(warmup_steps))
    total = max(int(total_steps), warmup + 1)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def make_optimizer(model: torch.nn.Module, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)


def make_scheduler(optimizer: torch.optim.Optimizer, warmup_steps: int,
                   total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(warmup_steps, total_steps))


def make_loss() -> torch.nn.Module:
    """Dice + cross-entropy on softmax logits against integer labels (B, 1, ...).

    The Dice is a *batch* Dice (each class pooled over all patches of the step, as nnU-Net
    does): with per-patch Dice every tumor-free patch rewards an all-empty tumor channel so
    strongly that small, rare tumors are learnt late or not at all."""
    from monai.losses import DiceCELoss

    return DiceCELoss(to_onehot_y=True, softmax=True, batch=True)


__all__ = ["warmup_cosine", "make_optimizer", "make_scheduler", "make_loss"]
