"""One optimiser step's loss of each training phase of the diffusion inpainter, and the EMA.

* ``denoiser_loss`` (pixel): the config's target (v or eps; ``config`` says why v by default),
  squared error weighted 1 inside the conditioning mask and ``outside_weight`` (0.1) outside it
  (methods.md section 3);
* ``denoiser_loss`` (latent): L1 on the target over the whole latent (DiffTumor's recipe: eps),
  the conditioning being the latent of the masked patch and the mask on the latent grid;
* ``autoencoder_loss``: L1 reconstruction + ``kl_weight`` x KL of the latent (no perceptual or
  adversarial term: nothing is downloaded);
* ``ema_update``: exponential moving average of the denoiser's weights (the shipped weights).

Every random number comes from the ``torch.Generator`` passed in. ``amp`` is the autocast
dtype of the forward passes (None: float32): fp16 on CUDA, bf16 on CPUs with native bf16
(``amp_dtype``); losses are computed in float32.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from ..synthesis.learned.config import DiffusionConfig


def train_memory_format(device: torch.device) -> torch.memory_format:
    """Memory layout of the denoiser and its input in training: channels-last on the CPU, where
    it makes oneDNN's 3D convolutions (most of a step) 1.1-1.2x faster here (fp32, batch 8,
    32^3; same numbers); the default layout on CUDA, where it was not measured."""
    return torch.channels_last_3d if device.type == "cpu" else torch.contiguous_format


def amp_dtype(device: torch.device, precision: str = "auto") -> torch.dtype | None:
    """The autocast dtype of training on ``device``: "auto" -> fp16 on CUDA, bf16 on a CPU
    with native bf16 (AMX / AVX512-BF16: ~2.5x faster here), else None; "fp32" -> None."""
    if precision == "fp32":
        return None
    if device.type == "cuda":
        return torch.float16
    if device.type == "cpu" and torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return torch.bfloat16
    return None


def _autocast(device: torch.device, amp: torch.dtype | None) -> torch.autocast:
    return torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None)


def latent_condition(autoencoder: Any, cfg: DiffusionConfig, x0: torch.Tensor, m: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(scaled latent of ``x0``, conditioning channels) of a latent configuration."""
    with torch.no_grad():
        z = autoencoder.encode(x0)[0] * cfg.latent_scale
        z_masked = autoencoder.encode(x0 * (1.0 - m))[0] * cfg.latent_scale
        small = F.interpolate(m, size=z.shape[2:], mode="nearest")
    return z, torch.cat([z_masked, 2.0 * small - 1.0], dim=1)


def denoiser_loss(denoiser: Any, scheduler: Any, cfg: DiffusionConfig, x0: torch.Tensor, m: torch.Tensor,
                  generator: torch.Generator, autoencoder: Any = None,
                  amp: torch.dtype | None = None) -> torch.Tensor:
    """The denoiser's loss on a batch (x0, m: (B, 1, n, n, n); window units, mask 0/1)."""
    if cfg.kind == "latent":
        data, condition = latent_condition(autoencoder, cfg, x0, m)
    else:
        data, condition = x0, torch.cat([x0 * (1.0 - m), 2.0 * m - 1.0], dim=1)
    batch = data.shape[0]
    t = torch.randint(0, cfg.timesteps, (batch,), generator=generator, device=data.device)
    noise = torch.randn(data.shape, generator=generator, device=data.device, dtype=data.dtype)
    noisy = scheduler.add_noise(original_samples=data, noise=noise, timesteps=t)
    with _autocast(data.device, amp):
        pred = denoiser(torch.cat([noisy, condition], dim=1).contiguous(memory_format=train_memory_format(data.device)), t)
    pred = pred.float()
    target = noise if cfg.prediction == "epsilon" else scheduler.get_velocity(data, noise, t)
    if cfg.kind == "latent":
        return F.l1_loss(pred, target)
    weight = m + cfg.outside_weight * (1.0 - m)
    return (weight * (pred - target) ** 2).sum() / weight.sum()


def autoencoder_loss(autoencoder: Any, x: torch.Tensor, generator: torch.Generator,
                     kl_weight: float, amp: torch.dtype | None = None) -> tuple[torch.Tensor, float]:
    """(loss, L1 reconstruction error) of the autoencoder on a batch of patches."""
    with _autocast(x.device, amp):
        z_mu, z_sigma = autoencoder.encode(x)
        eps = torch.randn(z_mu.shape, generator=generator, device=x.device, dtype=z_mu.dtype)
        recon = autoencoder.decode(z_mu + z_sigma * eps)
    z_mu, z_sigma, recon = z_mu.float(), z_sigma.float(), recon.float()
    l1 = F.l1_loss(recon, x)
    kl = 0.5 * torch.mean(z_mu**2 + z_sigma**2 - torch.log(z_sigma**2 + 1e-12) - 1.0)
    return l1 + kl_weight * kl, float(l1.detach())


@torch.no_grad()
def ema_update(ema: Any, model: Any, decay: float, step: int) -> None:
    """``ema = d * ema + (1 - d) * model`` with ``d = min(decay, (1 + step) / (10 + step))``
    (a short warm-up so early weights do not linger); buffers are copied."""
    d = min(float(decay), (1.0 + step) / (10.0 + step))
    for e, p in zip(ema.parameters(), model.parameters()):
        e.mul_(d).add_(p.detach(), alpha=1.0 - d)
    for e, b in zip(ema.buffers(), model.buffers()):
        e.copy_(b)


@torch.no_grad()
def latent_scale(autoencoder: Any, images: torch.Tensor) -> float:
    """One over the standard deviation of the latents of ``images`` (LDM's scale factor)."""
    z = autoencoder.encode(images)[0]
    return float(1.0 / max(float(z.float().std()), 1e-6))


__all__ = ["amp_dtype", "autoencoder_loss", "denoiser_loss", "ema_update", "latent_condition", "latent_scale"]
