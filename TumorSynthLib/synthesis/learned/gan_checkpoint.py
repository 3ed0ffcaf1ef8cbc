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

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...core import checkpoints
from ...core.errors import ModelError
from ...core.model_registry import list_models, resolve_model, sha256_file, shipped_models, user_models
from .gan import GanConfig, build_generator

TASK = "adversarial"
FORMAT_VERSION = 1
REQUIRED = ("gan_config", "generator")
HINT = "train one with `tumorsynth train-adversarial` or use a model id from `tumorsynth models list`"
CACHE_SIZE = 4
_CACHE: "OrderedDict[tuple[str, str, str], GeneratorModel]" = OrderedDict()
_LOCK = threading.Lock()


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


def load_strict(module: Any, state: Any, what: str, path: str | Path) -> None:
    """``load_state_dict(strict=True)``; a key or shape mismatch becomes a ModelError."""
    try:
        module.load_state_dict(state, strict=True)
    except (RuntimeError, KeyError, TypeError, AttributeError) as exc:
        first = (str(exc).strip().splitlines() or [repr(exc)])[0][:200]
        raise ModelError(f"the {what} weights in '{path}' do not match the configuration stored with them "
                         f"({first}); the file is damaged or was edited: retrain") from exc


@dataclass
class GeneratorModel:
    """A loaded generator (eval mode, no gradients) and what reports say about it."""

    config: GanConfig
    generator: Any
    device: Any
    path: Path
    sha256: str
    model_id: str
    facts: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        return {"model_id": self.model_id, "model_sha256": self.sha256, **self.facts}


def _reference(ref: str | Path) -> tuple[Path, str]:
    """(file, id) of a model id (SHA256-checked by the registry) or a path (its registered id
    when it is a registered file, else its file name)."""
    path = resolve_model(ref).resolve()
    for entry in list_models():
        if Path(entry.path).resolve() == path:
            return path, entry.id
    return path, path.name


def default_generator_ref() -> str | None:
    """The model used when none is named: the first shipped adversarial model, else the first
    the user registered; None when there is none."""
    for entries in (shipped_models, user_models):
        try:
            found = [e for e in entries() if e.task == TASK and Path(e.path).is_file()]
        except ModelError:
            continue
        if found:
            return found[0].id
    return None


def load_generator(ref: str | Path | None = None, device: Any = "auto", *,
                   expected_sha256: str | None = None) -> GeneratorModel:
    """The generator ``ref`` (id or path; None: ``default_generator_ref()``) on ``device``;
    ``expected_sha256`` refuses any other file. Cached by file, hash and device."""
    from ..automaton.engine import resolve_device

    ref = ref if ref not in (None, "") else default_generator_ref()
    if ref is None:
        raise ModelError("no adversarial model is installed; train one with `tumorsynth train-adversarial` "
                         "and register it with `tumorsynth models add RUN/generator.pt`")
    path, model_id = _reference(ref)
    digest = sha256_file(path)
    if expected_sha256 is not None and digest != expected_sha256.lower():
        raise ModelError(f"adversarial model '{path}' has SHA256 {digest[:12]}..., not the expected "
                         f"{expected_sha256[:12]}...; the file was replaced or damaged")
    dev = resolve_device(device)
    key = (str(path), digest, str(dev))
    with _LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
    payload = read_gan_checkpoint(path)
    cfg: GanConfig = payload["gan_config"]
    generator = build_generator(cfg)
    load_strict(generator, payload["generator"], "generator", path)
    generator.to(dev).eval().requires_grad_(False)
    facts = {"organs": list(cfg.organs), "trained_steps": (payload.get("config") or {}).get("step"),
             "segmenter": payload.get("segmenter"), "trained_on": str(payload.get("trained_on", ""))}
    model = GeneratorModel(cfg, generator, dev, path, digest, model_id, facts)
    with _LOCK:
        _CACHE[key] = model
        while len(_CACHE) > CACHE_SIZE:
            _CACHE.popitem(last=False)
    return model


__all__ = ["GeneratorModel", "TASK", "default_generator_ref", "load_generator", "load_strict",
           "read_gan_checkpoint", "save_gan_checkpoint"]
