"""Model checkpoints of any kind (segmentation, diffusion, adversarial): writing them safely,
reading them safely, and what every one of them carries.

A checkpoint is a plain dict of tensors and JSON-able values read back with
``torch.load(..., weights_only=True)`` (no code runs while loading). Every TumorSynth checkpoint
has ``format`` ("tumorsynth-<task>"), ``format_version`` and ``versions``; the trainer of each
task adds its own fields (``model``, ``model_config``, ``config``, ``label_names``, ...). Writes
go to a temporary file in the destination folder (fsynced) and are renamed into place, so a
process killed while saving leaves the previous checkpoint intact. torch is imported inside the
functions: this module is imported by the registry, which must stay light.
"""
from __future__ import annotations

import pickle
import platform
import zipfile
from pathlib import Path
from typing import Any

import numpy

from .. import __version__
from .errors import ModelError
from .files import atomic_path

FORMAT_PREFIX = "tumorsynth-"


def versions() -> dict[str, str]:
    """Versions of the packages a checkpoint was written with."""
    import monai
    import torch

    return {"tumorsynth": str(__version__), "torch": str(torch.__version__), "monai": str(monai.__version__),
            "numpy": str(numpy.__version__), "python": platform.python_version()}


def save_checkpoint(path: str | Path, payload: dict[str, Any], *, task: str, format_version: int = 1) -> Path:
    """Atomically write ``payload`` with its ``format`` ("tumorsynth-<task>"), version and
    package versions to ``path``."""
    import torch

    full = {"format": FORMAT_PREFIX + task, "format_version": int(format_version), "versions": versions(),
            **payload}
    with atomic_path(path) as tmp:
        torch.save(full, tmp)
    return Path(path)


def load_checkpoint(path: str | Path, *, task: str, max_version: int = 1, required: tuple[str, ...] = (),
                    map_location: Any = "cpu", hint: str = "") -> dict[str, Any]:
    """Read a checkpoint of ``task`` (``weights_only=True``). ModelError when the file is
    missing, truncated / corrupt, of another task, of a newer format or lacks a ``required``
    field; ``hint`` says how to get a good one."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ModelError(f"checkpoint '{path}' does not exist; {hint or 'give the path of a .pt file written by TumorSynth'}")
    payload = read_payload(path, map_location)
    expected = FORMAT_PREFIX + task
    if payload.get("format") != expected:
        raise ModelError(f"'{path}' is not a TumorSynth {task} checkpoint (format {payload.get('format')!r}, "
                         f"expected '{expected}'); {hint or 'use a checkpoint of the right kind'}")
    if int(payload.get("format_version", 0)) > max_version:
        raise ModelError(f"'{path}' has checkpoint format {payload.get('format_version')}, newer than this "
                         f"TumorSynth reads ({max_version}); update TumorSynth")
    for key in required:
        if key not in payload:
            raise ModelError(f"checkpoint '{path}' lacks '{key}'; it is incomplete, retrain")
    return payload


def read_payload(path: str | Path, map_location: Any = "cpu") -> dict[str, Any]:
    """The raw dict of a weights-only torch file (ModelError with the loader's reason)."""
    import torch

    try:
        payload = torch.load(Path(path), map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError,
            AttributeError) as exc:
        raise ModelError(f"cannot read checkpoint '{path}': it is corrupt, truncated or not a weights-only "
                         f"torch file ({type(exc).__name__}: {load_error_reason(exc)}); use another "
                         "checkpoint or retrain") from exc
    if not isinstance(payload, dict):
        raise ModelError(f"'{path}' is not a TumorSynth checkpoint (not a dict of weights)")
    return payload


def load_error_reason(exc: BaseException) -> str:
    """The informative line of a torch.load failure, in full: for a refused pickle the global
    it asked for (weights-only errors bury it below advice that does not apply here)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    for line in lines:
        if "GLOBAL" in line or "WeightsUnpickler error" in line or "Unsupported global" in line:
            return f"it asks to run code, which TumorSynth never allows: {line}"
    informative = [ln for ln in lines if not ln.startswith(("Weights only load failed", "Check the documentation"))]
    return (informative or lines or [repr(exc)])[0]


def describe(payload: dict[str, Any]) -> dict[str, Any]:
    """The registry's facts of a checkpoint payload (task, organ, architecture, ...), read from
    the fields every trainer writes; ModelError for a file that is not a TumorSynth model."""
    fmt = payload.get("format")
    if not (isinstance(fmt, str) and fmt.startswith(FORMAT_PREFIX)):
        raise ModelError("not a TumorSynth model (no 'format' field); train one with `tumorsynth train`")
    cfg = payload.get("config") or {}
    out: dict[str, Any] = {"task": fmt.removeprefix(FORMAT_PREFIX),
                           "organ": str(cfg.get("organ", payload.get("organ", "any")))}
    if isinstance(payload.get("model_config"), dict):
        out["architecture"] = str(payload["model_config"].get("name", ""))
    for key in ("method", "step", "best_metric"):
        value = cfg.get(key, payload.get(key))
        if value is not None:
            out[key] = value if key != "method" else str(value)
    if "label_names" in payload:
        out["label_names"] = {str(k): str(v) for k, v in payload["label_names"].items()}
    return out


__all__ = ["FORMAT_PREFIX", "describe", "load_checkpoint", "load_error_reason", "read_payload",
           "save_checkpoint", "versions"]
