"""Adversarial-appearance checkpoints: the ``tumorsynth-adversarial`` format, safe writes,
safe reads, a cache of loaded generators.

A finished model (``generator.pt``, what ships and what ``models add`` registers) is a plain
dict read with ``torch.load(..., weights_only=True)``: ``format``, ``format_version``,
``versions`` (``core.checkpoints``), ``gan_config`` (``GanConfig.to_dict()``), ``generator``
(state dict), ``config`` ({organ, method, step}: what the registry shows), ``segmenter``
({id, sha256}: the frozen segmentation discriminator it was trained against) and
``trained_on``. A training run's ``last.pt`` adds the discriminator, both optimisers and the
run's settings. Loading builds the networks from the stored configuration and loads the weights
strictly, so any mismatch is a ModelError that says what to do.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...core import checkpoints
from .gan import GanConfig, build_generator
from .loading import LearnedModel, default_ref, load_cached, load_strict

TASK = "adversarial"
FORMAT_VERSION = 1
REQUIRED = ("gan_config", "generator")
HINT = "train one with `tumorsynth train-adversarial` or use a model id from `tumorsynth models list`"


def save_gan_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """Atomically write an adversarial checkpoint (temp file + ``os.replace``)."""
    return checkpoints.save_checkpoint(path, payload, task=TASK, format_version=FORMAT_VERSION)


def read_gan_checkpoint(path: str | Path, map_location: Any = "cpu") -> dict[str, Any]:
    """The payload (weights only) with ``gan_config`` parsed; ModelError when unreadable, of
    another kind, newer, incomplete or with an unusable configuration."""
    payload = checkpoints.load_checkpoint(path, task=TASK, max_version=FORMAT_VERSION, required=REQUIRED,
                                          map_location=map_location, hint=HINT)
    payload["gan_config"] = GanConfig.from_dict(payload["gan_config"])
    return payload


@dataclass(kw_only=True)
class GeneratorModel(LearnedModel):
    """A loaded generator (eval mode, no gradients) and what reports say about it."""

    config: GanConfig
    generator: Any


def default_generator_ref() -> str | None:
    """The generator used when none is named (``loading.default_ref``)."""
    return default_ref(TASK)


def load_generator(ref: str | Path | None = None, device: Any = "auto", *,
                   expected_sha256: str | None = None) -> GeneratorModel:
    """The generator ``ref`` (id or path; None: ``default_generator_ref()``) on ``device``;
    ``expected_sha256`` refuses any other file. Cached (``loading.load_cached``)."""
    return load_cached(TASK, ref, device, expected_sha256, _build_generator_model,
                       "no adversarial model is installed; train one with `tumorsynth train-adversarial` "
                       "and register it with `tumorsynth models add RUN/generator.pt`")


def _build_generator_model(path: Path, digest: str, device: Any, model_id: str) -> GeneratorModel:
    payload = read_gan_checkpoint(path)
    cfg: GanConfig = payload["gan_config"]
    generator = build_generator(cfg)
    load_strict(generator, payload["generator"], "generator", path)
    generator.to(device).eval().requires_grad_(False)
    facts = {"organs": list(cfg.organs), "trained_steps": (payload.get("config") or {}).get("step"),
             "segmenter": payload.get("segmenter"), "trained_on": str(payload.get("trained_on", ""))}
    return GeneratorModel(config=cfg, generator=generator, device=device, path=path, sha256=digest,
                          model_id=model_id, facts=facts)


__all__ = [
    "TASK",
    "GeneratorModel",
    "default_generator_ref",
    "load_generator",
    "read_gan_checkpoint",
    "save_gan_checkpoint",
]
