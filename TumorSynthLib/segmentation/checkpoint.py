"""Checkpoints of segmentation runs: what they hold, writing them safely, reading them safely.

A checkpoint is a plain dict of tensors and JSON-able values, read back with
``torch.load(..., weights_only=True)`` (no code runs while loading):

``format`` ("tumorsynth-segmentation"), ``format_version``, ``model`` (state dict),
``optimizer``, ``scheduler``, ``scaler`` (training state; None in exported models), ``step``,
``best_metric``, ``best_step``, ``model_config`` (``models.ModelConfig``), ``config``
(``TrainConfig``), ``label_names`` ({0: background, 1: organ, 2: organ_tumor}),
``preprocessing`` (orientation, spacing mm, HU window, patch), ``versions``, ``saved``.

Writes go to a temporary file in the same folder and are renamed into place, so a process
killed while saving leaves the previous checkpoint intact.
"""
from __future__ import annotations

import os
import pickle
import platform
import zipfile
from pathlib import Path
from typing import Any

import torch

from ..core.errors import InputError, ModelError

FORMAT = "tumorsynth-segmentation"
FORMAT_VERSION = 1
LAST, BEST = "last.pt", "best.pt"


def versions() -> dict[str, str]:
    import monai
    import numpy

    from .. import __version__

    return {"tumorsynth": str(__version__), "torch": str(torch.__version__),
            "monai": str(monai.__version__), "numpy": str(numpy.__version__),
            "python": platform.python_version()}


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """Atomically write ``payload`` (plus format and version fields) to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    full = {"format": FORMAT, "format_version": FORMAT_VERSION, "versions": versions(), **payload}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save(full, tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by ``save_checkpoint`` (``weights_only=True``).

    ModelError when the file is missing, truncated / corrupt, not a TumorSynth segmentation
    checkpoint, or of a newer format."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ModelError(f"checkpoint '{path}' does not exist; give the path of a .pt file written "
                         "by `tumorsynth train` (RUN_DIR/best.pt) or a model id from `tumorsynth models list`")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError, zipfile.BadZipFile,
            ValueError, AttributeError) as exc:
        raise ModelError(
            f"cannot read checkpoint '{path}': it is corrupt, truncated or not a weights-only torch "
            f"file ({type(exc).__name__}: {_reason(exc)}); use another checkpoint "
            "(e.g. best.pt or last.pt of the run) or retrain"
        ) from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ModelError(f"'{path}' is not a TumorSynth segmentation checkpoint (no format "
                         f"'{FORMAT}'); train one with `tumorsynth train`")
    if int(payload.get("format_version", 0)) > FORMAT_VERSION:
        raise ModelError(f"'{path}' has checkpoint format {payload.get('format_version')}, newer than "
                         f"this TumorSynth reads ({FORMAT_VERSION}); update TumorSynth")
    for key in ("model", "model_config", "label_names", "preprocessing"):
        if key not in payload:
            raise ModelError(f"checkpoint '{path}' lacks '{key}'; it is incomplete, retrain")
    return payload


def _reason(exc: BaseException) -> str:
    """The informative line of a torch.load failure (weights-only errors bury it)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    for line in lines:
        if "WeightsUnpickler error" in line:
            return line[:200]
    return (lines[0] if lines else repr(exc))[:200]


def label_names_of(payload: dict[str, Any]) -> dict[int, str]:
    return {int(k): str(v) for k, v in payload["label_names"].items()}


def check_label_set(payload: dict[str, Any], path: str | Path, organ: str | None = None) -> None:
    """ModelError unless the checkpoint is a 3-class {background, organ, tumor} model that
    covers ``organ`` when given (one organ or a comma list; a multi-organ model covers each of
    its organs)."""
    from .datasets import covers

    names = label_names_of(payload)
    out_channels = int(payload["model_config"].get("out_channels", -1))
    if sorted(names) != [0, 1, 2] or out_channels != 3:
        raise ModelError(
            f"checkpoint '{path}' is for another label set ({out_channels} outputs, labels {names}); "
            "TumorSynth segments {0 background, 1 organ, 2 tumor}: use a model trained by `tumorsynth train`"
        )
    trained_for = str(payload.get("config", {}).get("organ", names[1]))
    if organ is not None and not covers(trained_for, organ):
        raise ModelError(f"checkpoint '{path}' was trained for the {trained_for}, not the {organ}; "
                         f"use a model that covers the {organ} (e.g. `default`) or pass --organ {trained_for}")


def check_resumable(payload: dict[str, Any], path: str | Path, config: dict[str, Any],
                    frozen: tuple[str, ...]) -> None:
    """ModelError when ``config`` differs from the checkpoint's in a field that defines the
    model or its labels (organ, architecture, widths, spacing, patch, window)."""
    saved = payload.get("config") or {}
    for key in frozen:
        if key in saved and _norm(saved[key]) != _norm(config.get(key)):
            raise ModelError(
                f"cannot resume from '{path}': it was trained with {key}={saved[key]!r}, this run asks "
                f"for {config.get(key)!r} (another label set or model); use another --out folder, "
                "or resume with the original settings"
            )


def _norm(value: Any) -> Any:
    return list(value) if isinstance(value, (list, tuple)) else value


def load_model_state(model: torch.nn.Module, payload: dict[str, Any], path: str | Path) -> None:
    """Load the weights, turning shape / key mismatches into a ModelError."""
    try:
        model.load_state_dict(payload["model"])
    except (RuntimeError, KeyError) as exc:
        raise ModelError(f"the weights in '{path}' do not fit its model description "
                         f"({str(exc).splitlines()[0][:160]}); the file is damaged, retrain") from exc


def require_new_run(out_dir: Path, resume: bool) -> Path | None:
    """The checkpoint to resume from (``out/last.pt``), None for a fresh run; InputError when a
    fresh run would overwrite a previous one, or when --resume finds nothing."""
    last = out_dir / LAST
    if resume:
        if not last.is_file():
            raise InputError(f"--resume: no {LAST} in '{out_dir}'; run without --resume to start")
        return last
    if last.exists():
        raise InputError(f"'{out_dir}' already holds a run ({LAST}); pass --resume to continue it "
                         "or choose another --out")
    return None


__all__ = [
    "FORMAT", "FORMAT_VERSION", "LAST", "BEST", "save_checkpoint", "load_checkpoint",
    "label_names_of", "check_label_set", "check_resumable", "load_model_state", "require_new_run",
    "versions",
]
