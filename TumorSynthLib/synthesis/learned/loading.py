"""What every learned-appearance model file shares, whatever its format: finding it (a model id,
whose file the registry checks against its SHA256, or a path), the default model of a task,
strict weight loading with clear errors, and one cache of loaded models by (task, file, SHA256,
device), so a live front end does not rebuild a network per tumor.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from ...core.errors import ModelError
from ...core.model_registry import (
    list_models,
    resolve_model,
    sha256_file,
    shipped_models,
    user_models,
)

#: Loaded models kept in memory (a few MB each).
CACHE_SIZE = 4
_CACHE: OrderedDict[tuple[str, str, str, str], Any] = OrderedDict()
_LOCK = threading.Lock()
Model = TypeVar("Model")


@dataclass(kw_only=True)
class LearnedModel:
    """What every loaded learned-appearance model carries besides its networks: where it runs,
    which file (``path``, ``sha256``, registry ``model_id``) and the facts its reports state."""

    device: Any
    path: Path
    sha256: str
    model_id: str
    facts: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        """What a tumor's report says about the model."""
        return {"model_id": self.model_id, "model_sha256": self.sha256, **self.facts}


def resolve_reference(ref: str | Path) -> tuple[Path, str]:
    """(checkpoint file, model id) of a model id (file checked against the registry's SHA256)
    or a path (its registered id when it is a registered file, else its file name)."""
    path = resolve_model(ref).resolve()
    for entry in list_models():
        if Path(entry.path).resolve() == path:
            return path, entry.id
    return path, path.name


def default_ref(task: str) -> str | None:
    """The model of ``task`` used when a tumor names none: the first shipped one, else the
    first one the user registered; None when there is none."""
    for entries in (shipped_models, user_models):
        try:
            found = [e for e in entries() if e.task == task and Path(e.path).is_file()]
        except ModelError:
            continue
        if found:
            return found[0].id
    return None


def load_strict(module: Any, state: Any, what: str, path: str | Path) -> None:
    """``load_state_dict(strict=True)``; a missing / unexpected key or a shape mismatch (weights
    that do not fit the stored configuration) becomes a ModelError."""
    try:
        module.load_state_dict(state, strict=True)
    except (RuntimeError, KeyError, TypeError, AttributeError) as exc:
        first = (str(exc).strip().splitlines() or [repr(exc)])[0][:200]
        raise ModelError(f"the {what} weights in '{path}' do not match the configuration stored with them "
                         f"({first}); the file is damaged or was edited: retrain") from exc


def load_cached(task: str, ref: str | Path | None, device: Any, expected_sha256: str | None,
                build: Callable[[Path, str, Any, str], Model], missing: str) -> Model:
    """The model ``ref`` of ``task`` (None: ``default_ref(task)``; ModelError ``missing`` when
    there is none) on ``device`` (auto: CUDA when present), built by ``build(path, sha256,
    device, model_id)`` unless cached. ``expected_sha256`` refuses any other file."""
    from ..automaton.engine import resolve_device  # torch

    ref = ref if ref not in (None, "") else default_ref(task)
    if ref is None:
        raise ModelError(missing)
    path, model_id = resolve_reference(ref)
    digest = sha256_file(path)
    if expected_sha256 is not None and digest != expected_sha256.lower():
        raise ModelError(f"{task} model '{path}' has SHA256 {digest[:12]}..., not the expected "
                         f"{expected_sha256[:12]}...; the file was replaced or damaged")
    dev = resolve_device(device)
    key = (task, str(path), digest, str(dev))
    with _LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
    model = build(path, digest, dev, model_id)
    with _LOCK:
        _CACHE[key] = model
        while len(_CACHE) > CACHE_SIZE:
            _CACHE.popitem(last=False)
    return model


__all__ = ["CACHE_SIZE", "LearnedModel", "default_ref", "load_cached", "load_strict", "resolve_reference"]
