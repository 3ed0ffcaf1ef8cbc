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

from pathlib import Path
from typing import Any

import torch

from ..core import checkpoints
from ..core.errors import InputError, ModelError
from ..core.files import shown

TASK = "segmentation"
FORMAT = checkpoints.FORMAT_PREFIX + TASK
FORMAT_VERSION = 1
LAST, BEST = "last.pt", "best.pt"


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """Atomically write a segmentation checkpoint (``core.checkpoints``)."""
    return checkpoints.save_checkpoint(path, payload, task=TASK, format_version=FORMAT_VERSION)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a segmentation checkpoint (``weights_only=True``); ModelError when the file is
    missing, truncated / corrupt, not a segmentation checkpoint, of a newer format or incomplete."""
    return checkpoints.load_checkpoint(
        path, task=TASK, max_version=FORMAT_VERSION, map_location=map_location,
        required=("model", "model_config", "label_names", "preprocessing"),
        hint="give a .pt file written by `tumorsynth train` (RUN_DIR/best.pt) or a model id from "
             "`tumorsynth models list`")


def label_names_of(payload: dict[str, Any]) -> dict[int, str]:
    return {int(k): str(v) for k, v in payload["label_names"].items()}


def check_label_set(payload: dict[str, Any], path: str | Path, organ: str | None = None) -> None:
    """ModelError unless the checkpoint is a 3-class {background, organ, tumor} model (for
    ``organ`` when given)."""
    try:
        names = label_names_of(payload)
        out_channels = int(payload["model_config"].get("out_channels", -1))
        config = payload.get("config") or {}
        trained_for = str(config.get("organ", names.get(1, "?")))
    except (AttributeError, TypeError, ValueError) as exc:
        raise ModelError(f"checkpoint '{path}' has a malformed label map or model description ({exc}); "
                         "use a checkpoint written by `tumorsynth train`") from exc
    if sorted(names) != [0, 1, 2] or out_channels != 3:
        raise ModelError(
            f"checkpoint '{path}' is for another label set ({out_channels} outputs, labels {names}); "
            "TumorSynth segments {0 background, 1 organ, 2 tumor}: use a model trained by `tumorsynth train`"
        )
    if organ is not None and trained_for != organ:
        raise ModelError(f"checkpoint '{path}' was trained for the {trained_for}, not the {organ}; "
                         f"use a {organ} model or pass --organ {trained_for}")


def check_resumable(payload: dict[str, Any], path: str | Path, config: dict[str, Any],
                    frozen: tuple[str, ...]) -> None:
    """ModelError when ``config`` differs from the checkpoint's in a field that defines the
    model or its labels (organ, architecture, widths, spacing, patch, window)."""
    saved = payload.get("config") or {}
    for key in frozen:
        if key in saved and _norm(saved[key]) != _norm(config.get(key)):
            raise ModelError(
                f"cannot resume from '{path}': it was trained with {key}={shown(saved[key])}, this run asks "
                f"for {shown(config.get(key))} (another label set or model); use another --out folder, "
                "or resume with the original settings"
            )


def _norm(value: Any) -> Any:
    return list(value) if isinstance(value, (list, tuple)) else value


def load_model_state(model: torch.nn.Module, payload: dict[str, Any], path: str | Path) -> None:
    """Load the weights, turning shape / key mismatches into a ModelError."""
    try:
        model.load_state_dict(payload["model"])
    except Exception as exc:  # shape / key mismatch, or not a state dict at all
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()] or [type(exc).__name__]
        telling = next((ln for ln in lines if ln.startswith(("size mismatch", "Missing key", "Unexpected key"))),
                       lines[0])
        raise ModelError(f"the weights in '{path}' do not fit the architecture the checkpoint describes "
                         f"({telling[:300]}); the file is damaged or was edited: use another checkpoint or "
                         "retrain") from exc


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
]
