"""The settings of one ``tumorsynth train-diffusion`` run (``DiffusionTrainConfig``).

``model_config()`` turns them into the ``DiffusionConfig`` stored with the weights: the
preset of ``config`` (pixel or latent) with the given overrides. With ``timesteps`` above 10
and no sampler given, the default sampler is DDIM with ``DDIM_STEPS`` of the configuration.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ..anatomy.organs import ORGANS
from ..core.errors import InputError, ModelError
from ..synthesis.learned.config import DiffusionConfig, preset

DDIM_STEPS = {"pixel": 10, "latent": 50}
#: Learning-rate schedules of the denoiser: warm-up + cosine to 1 % at the last step (the last
#: step fitted to ``max_minutes`` when a time budget is given), or constant.
LR_SCHEDULES = ("cosine", "constant")
#: Fields of the model configuration a resumed run may not change.
FROZEN_ON_RESUME = ("kind", "patch", "channels", "num_res_blocks", "norm_num_groups", "timesteps",
                    "schedule", "prediction", "window_hu", "mask_margin_mm", "ae_channels", "latent_channels")


@dataclass
class DiffusionTrainConfig:
    """One training run (sizes in cells, times in minutes). See the CLI's ``--help``."""

    data: str
    out: str
    config: str = "pixel"
    organs: tuple[str, ...] = ORGANS
    labels: str = "auto"
    patch: int | None = None
    channels: tuple[int, ...] | None = None
    ae_channels: tuple[int, ...] | None = None
    latent_channels: int | None = None
    timesteps: int | None = None
    prediction: str | None = None
    sampler: str | None = None
    sample_steps: int | None = None
    batch_size: int = 8
    lr: float = 2e-4
    lr_schedule: str = "cosine"
    warmup_steps: int = 50
    weight_decay: float = 1e-4
    ema_decay: float = 0.995
    max_steps: int = 2000
    ae_steps: int = 2000
    ae_lr: float = 1e-4
    kl_weight: float = 1e-6
    max_minutes: float | None = None
    val_every: int = 250
    val_patches: int = 16
    ckpt_every: int = 50
    val_fraction: float = 0.2
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"
    resume: bool = False
    trained_on: str = ""

    def __post_init__(self) -> None:
        checks = [(self.batch_size >= 1, "--batch-size must be >= 1"),
                  (self.max_steps >= 1, "--max-steps must be >= 1"),
                  (self.ae_steps >= 0, "--ae-steps must be >= 0"),
                  (self.lr > 0 and self.ae_lr > 0, "learning rates must be > 0"),
                  (self.lr_schedule in LR_SCHEDULES, f"--lr-schedule must be one of {', '.join(LR_SCHEDULES)}"),
                  (self.warmup_steps >= 0, "--warmup-steps must be >= 0"),
                  (0.0 <= self.ema_decay < 1.0, "--ema-decay must be in [0, 1)"),
                  (self.max_minutes is None or self.max_minutes > 0, "--max-minutes must be > 0"),
                  (0.0 <= self.val_fraction < 1.0, "--val-fraction must be in [0, 1)"),
                  (self.val_patches >= 1, "--val-patches must be >= 1"),
                  (self.config in ("pixel", "latent"), "--config must be pixel or latent"),
                  (self.precision in ("auto", "fp32"), "--precision must be auto or fp32")]
        for ok, message in checks:
            if not ok:
                raise InputError(message)
        self.organs = tuple(self.organs)

    @property
    def total_steps(self) -> int:
        """Optimiser steps of the run: the autoencoder's first (latent only), then the denoiser's."""
        return self.max_steps + (self.ae_steps if self.config == "latent" else 0)

    @property
    def denoiser_start(self) -> int:
        return self.ae_steps if self.config == "latent" else 0

    def model_config(self) -> DiffusionConfig:
        """The ``DiffusionConfig`` of this run (InputError for an impossible combination)."""
        base = preset(self.config)
        changes: dict[str, Any] = {}
        if self.patch is not None:
            changes["patch"] = int(self.patch)
        if self.channels is not None:
            changes["channels"] = tuple(int(c) for c in self.channels)
        if self.ae_channels is not None:
            changes["ae_channels"] = tuple(int(c) for c in self.ae_channels)
        if self.latent_channels is not None:
            changes["latent_channels"] = int(self.latent_channels)
        if self.prediction is not None:
            changes["prediction"] = str(self.prediction)
        timesteps = int(self.timesteps or base.timesteps)
        sampler = self.sampler or (base.sampler if self.timesteps is None else ("ddpm" if timesteps <= 10 else "ddim"))
        default_steps = timesteps if sampler == "ddpm" else min(DDIM_STEPS[self.config], timesteps)
        changes.update(timesteps=timesteps, sampler=sampler, sample_steps=int(self.sample_steps or default_steps))
        try:
            return base.with_changes(**changes)
        except ModelError as exc:
            raise InputError(str(exc).replace("diffusion model configuration does not match what this "
                                              "TumorSynth builds", "impossible model settings")) from None

    def to_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}


def check_resumable(saved: dict[str, Any], wanted: DiffusionConfig, path: Any) -> None:
    """ModelError when a resumed run asks for another model than the checkpoint holds."""
    now = wanted.to_dict()
    for key in FROZEN_ON_RESUME:
        if key in saved and saved[key] != now.get(key):
            raise ModelError(f"cannot resume from '{path}': it was trained with {key}={saved[key]!r}, this "
                             f"run asks for {now.get(key)!r}; use another --out folder or the original settings")


__all__ = ["DDIM_STEPS", "FROZEN_ON_RESUME", "LR_SCHEDULES", "DiffusionTrainConfig", "check_resumable"]
