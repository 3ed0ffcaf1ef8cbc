"""Diffusion checkpoints: the ``tumorsynth-diffusion`` format, safe writes, safe reads.

A checkpoint is a plain dict read with ``torch.load(..., weights_only=True)`` (no code runs):
``format`` ("tumorsynth-diffusion"), ``format_version``, ``versions``, ``config``
(``DiffusionConfig.to_dict()``), ``denoiser`` (state dict: the EMA weights in a finished
model), ``autoencoder`` (latent configuration only), ``organ`` ("any" or one organ),
``step``, ``trained_on`` (what the data were), and, in a training run's ``last.pt``, the
training state (``train_denoiser``, ``optimizer``, ``scaler``, ``train``: the run's settings).

Writes and reads go through ``core.checkpoints`` (the rules of every TumorSynth checkpoint:
temp file + fsync + ``os.replace``, so a killed process leaves the previous file; weights-only
reads with clear errors). ``load_diffusion_model`` resolves a model id (the registry
checks the file's SHA256) or a path, checks the configuration, builds MONAI's networks and
loads the weights strictly; any mismatch is a ModelError that says what to do.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...core.checkpoints import load_checkpoint, save_checkpoint
from ...core.errors import InputError, ModelError
from .config import DiffusionConfig
from .loading import LearnedModel, default_ref, load_cached, load_strict
from .networks import build_autoencoder, build_denoiser, require_monai

FORMAT = "tumorsynth-diffusion"
FORMAT_VERSION = 1


def save_diffusion_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """Atomically write ``payload`` plus the format fields to ``path``."""
    if "config" not in payload or "denoiser" not in payload:
        raise InputError("a diffusion checkpoint needs 'config' and 'denoiser'; this is a bug")
    return save_checkpoint(path, payload, task="diffusion", format_version=FORMAT_VERSION)


def read_diffusion_checkpoint(path: str | Path, map_location: Any = "cpu") -> dict[str, Any]:
    """The payload of a diffusion checkpoint, with ``config`` parsed into a DiffusionConfig.
    ModelError when the file is unreadable, not weights-only, of another kind or newer format,
    or incomplete."""
    payload = load_checkpoint(path, task="diffusion", max_version=FORMAT_VERSION, required=("config", "denoiser"),
                              map_location=map_location,
                              hint="train a diffusion model with `tumorsynth train-diffusion`")
    payload["config"] = DiffusionConfig.from_dict(payload["config"])
    if payload["config"].kind == "latent" and "autoencoder" not in payload:
        raise ModelError(f"latent diffusion checkpoint '{path}' lacks its autoencoder; retrain")
    return payload


@dataclass(kw_only=True)
class DiffusionModel(LearnedModel):
    """A loaded diffusion model, ready to sample (eval mode, no gradients, on ``device``)."""

    config: DiffusionConfig
    denoiser: Any
    autoencoder: Any | None

    def describe(self) -> dict[str, Any]:
        """What a tumor's report says about the model (its configuration before the facts)."""
        return {"model_id": self.model_id, "model_sha256": self.sha256, "config": self.config.kind,
                "timesteps": self.config.timesteps, "patch": self.config.patch, **self.facts}


def build_model(payload: dict[str, Any], path: str | Path, device: Any) -> tuple[Any, Any | None]:
    """(denoiser, autoencoder or None) of a checkpoint payload, weights loaded strictly."""
    cfg: DiffusionConfig = payload["config"]
    denoiser = build_denoiser(cfg)
    load_strict(denoiser, payload["denoiser"], "denoiser", path)
    autoencoder = build_autoencoder(cfg)
    if autoencoder is not None:
        load_strict(autoencoder, payload["autoencoder"], "autoencoder", path)
    for module in (denoiser, autoencoder):
        if module is not None:
            module.to(device).eval().requires_grad_(False)
    return denoiser, autoencoder


def default_model_ref() -> str | None:
    """The diffusion model used when a tumor names none (``loading.default_ref``)."""
    return default_ref("diffusion")


def load_diffusion_model(ref: str | Path | None = None, device: Any = "auto", *,
                         expected_sha256: str | None = None) -> DiffusionModel:
    """The model ``ref`` (id or path; None: ``default_model_ref()``) on ``device`` (auto: CUDA
    when present). ``expected_sha256`` refuses any other file. Cached (``loading.load_cached``)."""
    require_monai()
    return load_cached("diffusion", ref, device, expected_sha256, _build_diffusion_model,
                       "no diffusion model is installed; train one with `tumorsynth train-diffusion` "
                       "and register it with `tumorsynth models add RUN/best.pt`, or reinstall TumorSynth "
                       "(it ships one)")


def _build_diffusion_model(path: Path, digest: str, device: Any, model_id: str) -> DiffusionModel:
    payload = read_diffusion_checkpoint(path)
    denoiser, autoencoder = build_model(payload, path, device)
    facts = {"organ": str(payload.get("organ", "any")), "trained_steps": payload.get("step"),
             "trained_on": str(payload.get("trained_on", ""))}
    return DiffusionModel(config=payload["config"], denoiser=denoiser, autoencoder=autoencoder, device=device,
                          path=path, sha256=digest, model_id=model_id, facts=facts)


__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "DiffusionModel",
    "build_model",
    "default_model_ref",
    "load_diffusion_model",
    "load_strict",
    "read_diffusion_checkpoint",
    "save_diffusion_checkpoint",
]
