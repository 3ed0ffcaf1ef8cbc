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

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...core.checkpoints import load_checkpoint, save_checkpoint
from ...core.errors import InputError, ModelError
from ...core.model_registry import (
    list_models,
    resolve_model,
    sha256_file,
    shipped_models,
    user_models,
)
from .config import DiffusionConfig
from .networks import build_autoencoder, build_denoiser, require_monai

FORMAT = "tumorsynth-diffusion"
FORMAT_VERSION = 1
#: Loaded models kept in memory (a few MB each), by (file, SHA256, device).
CACHE_SIZE = 4
_CACHE: OrderedDict[tuple[str, str, str], DiffusionModel] = OrderedDict()
_LOCK = threading.Lock()


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


def load_state(module: Any, state: dict[str, Any], what: str, path: str | Path) -> None:
    """Strict ``load_state_dict``; a missing / unexpected key or a shape mismatch (weights
    that do not fit the stored configuration) becomes a ModelError."""
    try:
        module.load_state_dict(state, strict=True)
    except (RuntimeError, KeyError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0][:200]
        raise ModelError(f"the {what} weights in '{path}' do not match the configuration stored with "
                         f"them ({first}); the file is damaged or was edited: retrain") from exc


@dataclass
class DiffusionModel:
    """A loaded model, ready to sample (eval mode, no gradients, on ``device``)."""

    config: DiffusionConfig
    denoiser: Any
    autoencoder: Any | None
    device: Any
    path: Path
    sha256: str
    model_id: str
    facts: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        """What the report says about the model."""
        return {"model_id": self.model_id, "model_sha256": self.sha256, "config": self.config.kind,
                "timesteps": self.config.timesteps, "patch": self.config.patch, **self.facts}


def build_model(payload: dict[str, Any], path: str | Path, device: Any) -> tuple[Any, Any | None]:
    """(denoiser, autoencoder or None) of a checkpoint payload, weights loaded strictly."""
    cfg: DiffusionConfig = payload["config"]
    denoiser = build_denoiser(cfg)
    load_state(denoiser, payload["denoiser"], "denoiser", path)
    autoencoder = build_autoencoder(cfg)
    if autoencoder is not None:
        load_state(autoencoder, payload["autoencoder"], "autoencoder", path)
    for module in (denoiser, autoencoder):
        if module is not None:
            module.to(device).eval().requires_grad_(False)
    return denoiser, autoencoder


def resolve_reference(ref: str | Path) -> tuple[Path, str]:
    """(checkpoint file, model id) of a model id (file checked against the registry's SHA256)
    or a path (its registered id when it is a registered file, else its file name)."""
    path = resolve_model(ref).resolve()
    for entry in list_models():
        if Path(entry.path).resolve() == path:
            return path, entry.id
    return path, path.name


def default_model_ref() -> str | None:
    """The model used when a tumor names none: the first shipped diffusion model, else the
    first one the user registered; None when there is none."""
    for entries in (shipped_models, user_models):
        try:
            found = [e for e in entries() if e.task == "diffusion" and Path(e.path).is_file()]
        except ModelError:
            continue
        if found:
            return found[0].id
    return None


def load_diffusion_model(ref: str | Path | None = None, device: Any = "auto", *,
                         expected_sha256: str | None = None) -> DiffusionModel:
    """The model ``ref`` (id or path; None: ``default_model_ref()``) on ``device`` (auto: CUDA
    when present). ``expected_sha256`` refuses any other file. Cached by file, hash, device."""
    from ..automaton.engine import resolve_device  # torch

    require_monai()
    ref = ref if ref not in (None, "") else default_model_ref()
    if ref is None:
        raise ModelError("no diffusion model is installed; train one with `tumorsynth train-diffusion` "
                         "and register it with `tumorsynth models add RUN/best.pt`, or reinstall TumorSynth "
                         "(it ships one)")
    path, model_id = resolve_reference(ref)
    digest = sha256_file(path)
    if expected_sha256 is not None and digest != expected_sha256.lower():
        raise ModelError(f"diffusion model '{path}' has SHA256 {digest[:12]}..., not the expected "
                         f"{expected_sha256[:12]}...; the file was replaced or damaged")
    dev = resolve_device(device)
    key = (str(path), digest, str(dev))
    with _LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
    payload = read_diffusion_checkpoint(path)
    denoiser, autoencoder = build_model(payload, path, dev)
    facts = {"organ": str(payload.get("organ", "any")), "trained_steps": payload.get("step"),
             "trained_on": str(payload.get("trained_on", ""))}
    model = DiffusionModel(payload["config"], denoiser, autoencoder, dev, path, digest, model_id, facts)
    with _LOCK:
        _CACHE[key] = model
        while len(_CACHE) > CACHE_SIZE:
            _CACHE.popitem(last=False)
    return model


__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "DiffusionModel",
    "build_model",
    "default_model_ref",
    "load_diffusion_model",
    "load_state",
    "read_diffusion_checkpoint",
    "resolve_reference",
    "save_diffusion_checkpoint",
]
