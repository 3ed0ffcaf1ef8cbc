"""Validation during training: whole preprocessed volumes, sliding-window inference, Dice.

Healthy validation cases get synthetic tumors seeded per case (the same tumors at every
validation), so "tumor DSC" is defined even on a dataset of healthy scans. Samples are built
once and kept in memory (at most ``max_val_cases``).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from .config import TrainConfig
from .datasets import Case
from .infer import predict_logits
from .metrics import dice
from .pipeline import VALIDATION_EPOCH, SeededDataset, validation_transform


class ValidationSet:
    """Preprocessed validation volumes: [(image (1, 1, ...) tensor, label (...) uint8 array)]."""

    def __init__(self, cases: Sequence[Case], cfg: TrainConfig, convention: str) -> None:
        self.cases = list(cases)[: max(0, cfg.max_val_cases)]
        self.cfg, self.convention = cfg, convention
        self._samples: list[tuple[torch.Tensor, np.ndarray]] | None = None

    def __len__(self) -> int:
        return len(self.cases)

    def samples(self) -> list[tuple[torch.Tensor, np.ndarray]]:
        if self._samples is None:
            ds = SeededDataset(self.cases, validation_transform(self.cfg, self.convention),
                               self.cfg.seed, cache_rate=0.0)
            self._samples = []
            for i in range(len(ds)):
                d = ds[(VALIDATION_EPOCH, i)]
                image = torch.as_tensor(d["image"]).float().unsqueeze(0)
                label = np.rint(np.asarray(d["label"])[0]).astype(np.uint8)
                self._samples.append((image, label))
        return self._samples


def validate(model: torch.nn.Module, vset: ValidationSet, device: torch.device,
             patch: int, amp: bool = True) -> dict[str, Any]:
    """Mean tumor and organ-region Dice over the validation cases (tumor DSC over the cases
    whose reference has a tumor; NaN when none has)."""
    was_training = model.training
    model.eval()
    tumor, organ = [], []
    try:
        for image, label in vset.samples():
            logits = predict_logits(model, image, (patch,) * 3, device, overlap=0.25,
                                    mode="constant", amp=amp)
            pred = logits[0].argmax(0).numpy()
            if (label == 2).any():
                tumor.append(dice(pred == 2, label == 2))
            organ.append(dice(pred >= 1, label >= 1))
    finally:
        model.train(was_training)
    return {"tumor_dsc": float(np.mean(tumor)) if tumor else float("nan"),
            "organ_dsc": float(np.mean(organ)) if organ else float("nan"),
            "n_cases": len(organ), "n_with_tumor": len(tumor)}


__all__ = ["ValidationSet", "validate"]
