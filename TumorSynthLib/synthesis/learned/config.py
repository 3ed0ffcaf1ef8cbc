"""The configuration of a diffusion inpainting model, stored in every checkpoint.

Two configurations share one method (methods.md section 3):

* ``pixel`` (the CPU default): the denoiser works on a ``patch``^3 patch of HU mapped through
  the fixed window [-175, 250] HU -> [-1, 1]; its input channels are ``[x_t, x * (1 - m),
  2m - 1]`` (the noisy patch, the patch with the mask's voxels set to 0, the mask as -1 / +1);
* ``latent`` (for GPU users with real data): an ``AutoencoderKL`` with ``downsample``-fold
  smaller latents; the denoiser sees ``[z_t, s * E(x * (1 - m)), nearest(2m - 1)]`` (``s``:
  ``latent_scale``, one over the latents' standard deviation, measured when the denoiser's
  training starts).

Parameterisation (``prediction``): ``v_prediction`` in the pixel preset, ``epsilon`` (DiffTumor's)
in the latent one. With T = 4 and the cosine schedule the last alpha_bar is 1.4e-4, so an
eps-predicting model's first x0 estimate ``(x_t - sqrt(1 - a) eps) / sqrt(a)`` multiplies the
network's error by ~85: measured on a model trained here, 90 % of the masked cells of that
estimate sat at the clip (+-1) and the later steps kept the damage (samples 2-3x noisier than
the truth). v-prediction (Salimans & Ho 2022) keeps every step well conditioned.

A patch covers a tumor at an isotropic spacing of ``h`` mm chosen from the tumor's extent (the
conditioning mask's bounding box takes ``fill`` of the patch side, at least ``spacing_mm[0]``):
small tumors are seen at 1 mm, larger ones coarser, so one model serves every size it was
trained on (``spacing_mm`` is the range seen in training; beyond it the report warns).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import numpy as np

from ...core.errors import ModelError

#: The fixed HU window of every model: HU in [lo, hi] <-> [-1, 1] (DiffTumor's window).
WINDOW_HU = (-175.0, 250.0)
KINDS = ("pixel", "latent")
SAMPLERS = ("ddpm", "ddim")
SCHEDULES = ("cosine", "linear_beta", "scaled_linear_beta")
PREDICTIONS = ("epsilon", "v_prediction")
#: Chains averaged per patch by the ``diffusion`` appearance unless ``diffusion_chains`` says
#: otherwise (``learned.sampler``): two, which cost one chain's time on the CPU.
DEFAULT_CHAINS = 2


@dataclass(frozen=True)
class DiffusionConfig:
    """Everything needed to rebuild the networks and use them (see the module docstring)."""

    kind: str = "pixel"
    patch: int = 32                                   # patch side in cells (image space)
    channels: tuple[int, ...] = (16, 32, 64)          # denoiser widths per level
    num_res_blocks: int = 1
    norm_num_groups: int = 8
    timesteps: int = 4                                # T of the training noise schedule
    schedule: str = "cosine"
    prediction: str = "v_prediction"                  # what the denoiser predicts (see above)
    sampler: str = "ddpm"                             # default sampler: ddpm (all T) | ddim
    sample_steps: int = 4                             # default denoiser calls per sample
    window_hu: tuple[float, float] = WINDOW_HU
    spacing_mm: tuple[float, float] = (1.0, 4.0)      # patch spacings seen in training (mm)
    fill: tuple[float, float] = (0.5, 0.8)            # training range of extent / patch side
    infer_fill: float = 0.65                          # extent / patch side at inference
    mask_margin_mm: float = 3.0                       # the mask covers the tumor and its soft edge
    outside_weight: float = 0.1                       # loss weight of voxels outside the mask
    ae_channels: tuple[int, ...] = (32, 64, 64)       # latent only: autoencoder widths
    latent_channels: int = 4                          # latent only
    latent_scale: float = 1.0                         # latent only: 1 / std of the latents

    # -- derived ----------------------------------------------------------------------------------
    @property
    def downsample(self) -> int:
        """Image cells per latent cell along an axis (1 in pixel space)."""
        return 2 ** (len(self.ae_channels) - 1) if self.kind == "latent" else 1

    @property
    def latent_patch(self) -> int:
        return self.patch // self.downsample

    @property
    def data_channels(self) -> int:
        """Channels of the diffused tensor: 1 (pixel) or ``latent_channels``."""
        return self.latent_channels if self.kind == "latent" else 1

    @property
    def denoiser_in_channels(self) -> int:
        return 2 * self.data_channels + 1

    # -- checks and (de)serialisation -----------------------------------------------------------
    def problems(self) -> list[str]:
        """What is inconsistent in this configuration (empty when usable)."""
        out = []
        if self.kind not in KINDS:
            out.append(f"kind '{self.kind}' is not one of {KINDS}")
        if self.sampler not in SAMPLERS:
            out.append(f"sampler '{self.sampler}' is not one of {SAMPLERS}")
        if self.schedule not in SCHEDULES:
            out.append(f"schedule '{self.schedule}' is not one of {SCHEDULES}")
        if self.prediction not in PREDICTIONS:
            out.append(f"prediction '{self.prediction}' is not one of {PREDICTIONS}")
        if self.timesteps < 1 or not 1 <= self.sample_steps <= self.timesteps:
            out.append(f"sample_steps {self.sample_steps} must be in [1, timesteps={self.timesteps}]")
        if self.sampler == "ddpm" and self.sample_steps != self.timesteps:
            out.append("the ddpm sampler visits every timestep: sample_steps must equal timesteps")
        if any(c % self.norm_num_groups for c in self.channels):
            out.append(f"channels {self.channels} must be multiples of norm_num_groups {self.norm_num_groups}")
        multiple = self.downsample * 2 ** (len(self.channels) - 1)
        if self.patch < multiple or self.patch % multiple:
            out.append(f"patch {self.patch} must be a multiple of {multiple} for these widths")
        if not (self.window_hu[0] < self.window_hu[1]):
            out.append(f"window_hu {self.window_hu} must be (low, high)")
        if not (0 < self.spacing_mm[0] <= self.spacing_mm[1]):
            out.append(f"spacing_mm {self.spacing_mm} must be (low, high) > 0")
        if not (0 < self.fill[0] <= self.fill[1] <= 1 and 0 < self.infer_fill <= 1):
            out.append(f"fill {self.fill} / infer_fill {self.infer_fill} must lie in (0, 1]")
        if self.kind == "latent" and any(c % self.norm_num_groups for c in self.ae_channels):
            out.append(f"ae_channels {self.ae_channels} must be multiples of norm_num_groups")
        return out

    def check(self) -> DiffusionConfig:
        problems = self.problems()
        if problems:
            raise ModelError("diffusion model configuration does not match what this TumorSynth "
                             f"builds ({'; '.join(problems)}); use a checkpoint written by "
                             "`tumorsynth train-diffusion`")
        return self

    def to_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DiffusionConfig:
        """The config stored in a checkpoint; ModelError for unknown keys or bad values."""
        if not isinstance(data, Mapping):
            raise ModelError("the checkpoint's diffusion configuration is not a mapping; retrain")
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ModelError(f"the checkpoint's diffusion configuration has unknown keys {unknown} "
                             "(written by a newer TumorSynth?); update TumorSynth or retrain")
        try:
            values = {k: (tuple(v) if isinstance(v, (list, tuple)) else v) for k, v in data.items()}
            return cls(**values).check()
        except (TypeError, ValueError) as exc:
            raise ModelError(f"the checkpoint's diffusion configuration is malformed ({exc}); retrain") from exc

    def with_changes(self, **changes: Any) -> DiffusionConfig:
        return replace(self, **changes).check()


def preset(kind: str) -> DiffusionConfig:
    """The default configuration of ``kind``: pixel (32^3, T = 4, all steps sampled) or latent
    (96^3 crops, 4x smaller latents, T = 200 sampled with DDIM 50, DiffTumor's larger-tumor
    recipe)."""
    if kind == "pixel":
        return DiffusionConfig()
    if kind == "latent":
        return DiffusionConfig(kind="latent", patch=96, channels=(32, 64, 64), timesteps=200,
                               prediction="epsilon", sampler="ddim", sample_steps=50, spacing_mm=(1.0, 2.0))
    raise ModelError(f"unknown diffusion configuration '{kind}'; choose one of {KINDS}")


def to_unit(hu: np.ndarray, window: tuple[float, float] = WINDOW_HU) -> np.ndarray:
    """HU -> [-1, 1] through the fixed window (clipped), float32."""
    lo, hi = window
    return np.clip(2.0 * (np.asarray(hu, dtype=np.float32) - lo) / (hi - lo) - 1.0, -1.0, 1.0).astype(np.float32)


def to_hu(unit: np.ndarray, window: tuple[float, float] = WINDOW_HU) -> np.ndarray:
    """[-1, 1] -> HU through the fixed window, float32."""
    lo, hi = window
    return (lo + 0.5 * (np.asarray(unit, dtype=np.float32) + 1.0) * (hi - lo)).astype(np.float32)


__all__ = ["KINDS", "PREDICTIONS", "SAMPLERS", "WINDOW_HU", "DiffusionConfig", "preset", "to_hu", "to_unit"]
