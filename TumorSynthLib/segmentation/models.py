"""Segmentation networks (MONAI): UNet (default, CPU-sized), SwinUNETR, DynUNet.

A model is fully described by a JSON-able ``ModelConfig`` dict stored in every checkpoint, so
``build_model(config)`` rebuilds the exact architecture before loading weights.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch

from ..core.errors import InputError, ModelError

MODEL_NAMES = ("unet", "swinunetr", "dynunet")
#: Default feature widths per model and device type ("cpu" small, "cuda" larger).
DEFAULT_CHANNELS = {
    ("unet", "cpu"): (16, 32, 64, 128),
    ("unet", "cuda"): (32, 64, 128, 256, 320),
    ("dynunet", "cpu"): (16, 32, 64, 128),
    ("dynunet", "cuda"): (32, 64, 128, 256, 320),
    ("swinunetr", "cpu"): (12,),
    ("swinunetr", "cuda"): (24,),
}


@dataclass
class ModelConfig:
    """Architecture: ``name``, feature ``channels`` (SwinUNETR: ``(feature_size,)``), classes."""

    name: str = "unet"
    channels: tuple[int, ...] = (16, 32, 64, 128)
    in_channels: int = 1
    out_channels: int = 3
    num_res_units: int = 1

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["channels"] = list(self.channels)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        try:
            return cls(name=str(data["name"]), channels=tuple(int(c) for c in data["channels"]),
                       in_channels=int(data.get("in_channels", 1)),
                       out_channels=int(data.get("out_channels", 3)),
                       num_res_units=int(data.get("num_res_units", 1)))
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"the checkpoint's model description is incomplete ({exc}); "
                             "it was not written by `tumorsynth train`") from exc


def model_config_for(name: str, device_type: str, channels: tuple[int, ...] | None = None,
                     out_channels: int = 3) -> ModelConfig:
    """The config of ``name`` with the default widths for ``device_type`` unless given."""
    name = name.lower()
    if name not in MODEL_NAMES:
        raise InputError(f"unknown --model '{name}'; choose one of: {', '.join(MODEL_NAMES)}")
    kind = "cuda" if device_type == "cuda" else "cpu"
    chans = tuple(channels) if channels else DEFAULT_CHANNELS[(name, kind)]
    if name == "swinunetr" and (len(chans) != 1 or chans[0] % 12):
        raise InputError("SwinUNETR takes one feature size that is a multiple of 12, e.g. --channels 24")
    levels = 3 if name == "dynunet" else 2
    if name != "swinunetr" and len(chans) < levels:
        raise InputError(f"--channels for {name} needs at least {levels} widths, e.g. 16,32,64,128")
    return ModelConfig(name=name, channels=chans, out_channels=out_channels)


def min_patch_multiple(config: ModelConfig) -> int:
    """Patch sides must be multiples of this (total downsampling of the network)."""
    if config.name == "swinunetr":
        return 32
    return 2 ** (len(config.channels) - 1)


def min_patch_side(config: ModelConfig) -> int:
    """Smallest patch side (voxels): SwinUNETR's deepest stage must keep > 1 voxel per axis."""
    return 64 if config.name == "swinunetr" else max(16, min_patch_multiple(config))


def build_model(config: ModelConfig | dict[str, Any]) -> torch.nn.Module:
    """A freshly initialised network for ``config`` (3D, ``out_channels`` logits)."""
    cfg = config if isinstance(config, ModelConfig) else ModelConfig.from_dict(config)
    from monai.networks import nets

    if cfg.name == "unet":
        return nets.UNet(spatial_dims=3, in_channels=cfg.in_channels, out_channels=cfg.out_channels,
                         channels=cfg.channels, strides=(2,) * (len(cfg.channels) - 1),
                         num_res_units=cfg.num_res_units, norm="instance")
    if cfg.name == "dynunet":
        levels = len(cfg.channels)
        strides = [1] + [2] * (levels - 1)
        return nets.DynUNet(spatial_dims=3, in_channels=cfg.in_channels, out_channels=cfg.out_channels,
                            kernel_size=[3] * levels, strides=strides, upsample_kernel_size=strides[1:],
                            filters=list(cfg.channels), res_block=True)
    if cfg.name == "swinunetr":
        return nets.SwinUNETR(in_channels=cfg.in_channels, out_channels=cfg.out_channels,
                              feature_size=cfg.channels[0], spatial_dims=3)
    raise ModelError(f"unknown architecture '{cfg.name}' in the checkpoint; one of {', '.join(MODEL_NAMES)}")


__all__ = ["ModelConfig", "MODEL_NAMES", "model_config_for", "build_model", "min_patch_multiple",
           "min_patch_side"]
