"""The ``adversarial`` appearance's networks and synthesis formula (after FreeTumor; methods.md
section 4). torch and MONAI are imported inside the functions.

The generator G is a small MONAI UNet with one output channel per organ (``ORGANS``); it sees a
crop at ``spacing_mm`` (1.5 mm) windowed to [0, 1] over ``window_hu`` ([-175, 250] HU). The
difference map of a crop is ``D = blur_{sigma 1 voxel}(tanh(G(x)))[organ channel]`` in [-1, 1]
(the channel is chosen from the organ the tumor is in, which the reference gets wrong), and::

    x_hat = x - O * W * Tex * D * max(organ_median - 10, 25) / window_width

i.e. a drop of ``W * D * max(median - 10, 25) * Tex`` HU inside the organ ``O`` (``W`` the
soft tumor weight, ``Tex`` the texture normalised to mean 1 in the tumor), which follows
common.md's relative rule with ``D`` in the role of the fraction ``f``. The discriminator is
the same kind of UNet with 3 output channels per voxel: background, real tumor, synthetic tumor.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from ...core.errors import ModelError

#: Organ order of the generator's output channels.
ORGANS: tuple[str, ...] = ("liver", "pancreas", "kidney")
WINDOW_HU: tuple[float, float] = (-175.0, 250.0)
SPACING_MM = 1.5
#: Discriminator classes per voxel.
BACKGROUND, REAL_TUMOR, FAKE_TUMOR = 0, 1, 2
#: Blur of the difference map (voxels) and its kernel half-width.
BLUR_SIGMA_VOXELS, BLUR_RADIUS = 1.0, 3
DELTA_OFFSET_HU, DELTA_MIN_BASE_HU = 10.0, 25.0


@dataclass(frozen=True)
class GanConfig:
    """What defines a generator / discriminator pair (stored in every checkpoint)."""

    channels: tuple[int, ...] = (16, 32, 64)
    strides: tuple[int, ...] = (2, 2)
    num_res_units: int = 1
    disc_channels: tuple[int, ...] = (8, 16, 32)
    organs: tuple[str, ...] = field(default=ORGANS)
    spacing_mm: float = SPACING_MM
    window_hu: tuple[float, float] = WINDOW_HU
    patch: int = 48

    @property
    def multiple(self) -> int:
        """Input sides must be a multiple of this (the UNet's total downsampling)."""
        return int(math.prod(self.strides))

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: Any) -> "GanConfig":
        """ModelError for a configuration this version cannot build."""
        try:
            cfg = cls(channels=tuple(int(c) for c in data["channels"]),
                      strides=tuple(int(s) for s in data["strides"]),
                      num_res_units=int(data["num_res_units"]),
                      disc_channels=tuple(int(c) for c in data["disc_channels"]),
                      organs=tuple(str(o) for o in data["organs"]), spacing_mm=float(data["spacing_mm"]),
                      window_hu=(float(data["window_hu"][0]), float(data["window_hu"][1])),
                      patch=int(data["patch"]))
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise ModelError(f"adversarial model configuration is malformed ({exc!r}); retrain it with "
                             "`tumorsynth train-adversarial`") from exc
        if (len(cfg.channels) != len(cfg.strides) + 1 or len(cfg.disc_channels) != len(cfg.strides) + 1
                or not cfg.organs or cfg.spacing_mm <= 0 or cfg.window_hu[0] >= cfg.window_hu[1]
                or cfg.patch % cfg.multiple):
            raise ModelError(f"adversarial model configuration is inconsistent ({cfg}); retrain it")
        return cfg


def _unet(in_channels: int, out_channels: int, channels: tuple[int, ...], cfg: GanConfig) -> Any:
    from monai.networks.nets import UNet

    return UNet(spatial_dims=3, in_channels=in_channels, out_channels=out_channels, channels=channels,
                strides=cfg.strides, num_res_units=cfg.num_res_units, norm="instance")


def build_generator(cfg: GanConfig) -> Any:
    """G: one output channel per organ of ``cfg.organs``."""
    return _unet(1, len(cfg.organs), cfg.channels, cfg)


def build_discriminator(cfg: GanConfig) -> Any:
    """The voxel-wise 3-class discriminator (background / real tumor / synthetic tumor)."""
    return _unet(1, 3, cfg.disc_channels, cfg)


def organ_index(cfg: GanConfig, organ: str) -> int:
    """The generator channel of ``organ``; ModelError when the model has none for it."""
    if organ not in cfg.organs:
        raise ModelError(f"this adversarial model has channels for {', '.join(cfg.organs)}, not the {organ}; "
                         f"use method handcrafted for the {organ} or train a model that covers it")
    return cfg.organs.index(organ)


def gaussian_blur(volume: Any, sigma: float = BLUR_SIGMA_VOXELS, radius: int = BLUR_RADIUS) -> Any:
    """(B, 1, ...) tensor blurred by a normalised separable Gaussian (replicate padding)."""
    import torch
    import torch.nn.functional as F

    t = torch.arange(-radius, radius + 1, dtype=volume.dtype, device=volume.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    out = volume
    for axis in range(3):
        shape = [1, 1, 1, 1, 1]
        shape[2 + axis] = k.numel()
        pad = [0, 0, 0, 0, 0, 0]
        pad[2 * (2 - axis)] = pad[2 * (2 - axis) + 1] = radius
        out = F.conv3d(F.pad(out, pad, mode="replicate"), k.view(shape))
    return out


def difference_map(generator: Any, x: Any, organ_channel: Any) -> Any:
    """``D`` (B, 1, ...) in [-1, 1]: the blurred tanh of G's channel ``organ_channel[b]``."""
    import torch

    d = torch.tanh(generator(x))
    index = organ_channel.view(-1, 1, 1, 1, 1).expand(-1, 1, *d.shape[2:])
    return gaussian_blur(d.gather(1, index))


def drop_base_hu(organ_median_hu: float) -> float:
    """``max(organ_median - 10, 25)`` HU: the scale of the drop (common.md)."""
    return max(float(organ_median_hu) - DELTA_OFFSET_HU, DELTA_MIN_BASE_HU)


def apply_difference(x: Any, d: Any, organ: Any, weight: Any, texture: Any, base_hu: Any,
                     window_hu: tuple[float, float]) -> Any:
    """``x_hat`` of the formula (all (B, 1, ...) tensors; ``base_hu`` (B,))."""
    scale = (base_hu / (window_hu[1] - window_hu[0])).view(-1, 1, 1, 1, 1)
    return x - organ * weight * texture * d * scale


__all__ = ["BACKGROUND", "FAKE_TUMOR", "GanConfig", "ORGANS", "REAL_TUMOR", "SPACING_MM", "WINDOW_HU",
           "apply_difference", "build_discriminator", "build_generator", "difference_map", "drop_base_hu",
           "gaussian_blur", "organ_index"]
