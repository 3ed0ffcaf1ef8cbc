"""MONAI's generative components built from a ``DiffusionConfig`` (nothing hand-written).

* denoiser: ``DiffusionModelUNet`` without attention levels (``attention_levels`` all False,
  ``with_conditioning=False``; MONAI's middle block keeps its one self-attention at the coarsest
  level), one res block per level, predicting the config's ``prediction`` (v or eps);
* autoencoder (latent configuration): ``AutoencoderKL`` without non-local attention;
* schedulers: ``DDPMScheduler`` (ancestral, every timestep) or ``DDIMScheduler`` (eta 0).

torch and monai are imported inside the functions.
"""
from __future__ import annotations

from typing import Any

from ...core.errors import DependencyError
from .config import DiffusionConfig


def require_monai() -> None:
    """DependencyError naming the fix when torch or monai's generative networks are missing."""
    try:
        import torch  # noqa: F401
        from monai.networks.nets import AutoencoderKL, DiffusionModelUNet  # noqa: F401
        from monai.networks.schedulers import DDIMScheduler, DDPMScheduler  # noqa: F401
    except ImportError as exc:
        raise DependencyError(f"the diffusion appearance needs torch and monai >= 1.4 ({exc}); "
                              "pip install torch==2.13.0 'monai>=1.6,<1.7'") from exc


def build_denoiser(cfg: DiffusionConfig) -> Any:
    """The denoising UNet of ``cfg`` (random weights)."""
    from monai.networks.nets import DiffusionModelUNet

    levels = len(cfg.channels)
    return DiffusionModelUNet(
        spatial_dims=3, in_channels=cfg.denoiser_in_channels, out_channels=cfg.data_channels,
        num_res_blocks=cfg.num_res_blocks, channels=tuple(cfg.channels),
        attention_levels=(False,) * levels, norm_num_groups=cfg.norm_num_groups,
        with_conditioning=False,
    )


def build_autoencoder(cfg: DiffusionConfig) -> Any | None:
    """The ``AutoencoderKL`` of a latent configuration (None in pixel space)."""
    if cfg.kind != "latent":
        return None
    from monai.networks.nets import AutoencoderKL

    levels = len(cfg.ae_channels)
    return AutoencoderKL(
        spatial_dims=3, in_channels=1, out_channels=1, channels=tuple(cfg.ae_channels),
        latent_channels=cfg.latent_channels, num_res_blocks=(1,) * levels,
        attention_levels=(False,) * levels, norm_num_groups=cfg.norm_num_groups,
        with_encoder_nonlocal_attn=False, with_decoder_nonlocal_attn=False,
    )


def build_scheduler(cfg: DiffusionConfig, sampler: str | None = None, steps: int | None = None) -> Any:
    """A scheduler for ``cfg``'s noise schedule, set to ``steps`` inference steps (defaults:
    the config's sampler and steps). Training uses it for ``add_noise`` only."""
    from monai.networks.schedulers import DDIMScheduler, DDPMScheduler

    sampler = sampler or cfg.sampler
    steps = int(steps or (cfg.timesteps if sampler == "ddpm" else cfg.sample_steps))
    if sampler == "ddpm":
        scheduler = DDPMScheduler(num_train_timesteps=cfg.timesteps, schedule=cfg.schedule,
                                  clip_sample=True, prediction_type=cfg.prediction)
    else:
        scheduler = DDIMScheduler(num_train_timesteps=cfg.timesteps, schedule=cfg.schedule,
                                  clip_sample=True, set_alpha_to_one=True, prediction_type=cfg.prediction)
    scheduler.set_timesteps(steps)
    return scheduler


def parameter_count(module: Any) -> int:
    return int(sum(p.numel() for p in module.parameters()))


__all__ = ["build_autoencoder", "build_denoiser", "build_scheduler", "parameter_count", "require_monai"]
