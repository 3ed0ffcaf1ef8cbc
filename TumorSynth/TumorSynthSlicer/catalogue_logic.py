"""What the panels offer, read from the engine's catalogue (``TumorSynthLib.synthesis.catalogue``).

The modules keep no list of their own: organs, stages and their diameter ranges, methods with
their availability (and the reason when unavailable), whether a method runs live, and the
organ a segment name refers to all come from the engine, so the menus always match what the
engine can do. The engine is imported here lazily: a missing or broken install becomes a
``MissingDependencyError`` the panel shows.
"""
from __future__ import annotations

from typing import Any

from .errors import MissingDependencyError


def engine_catalogue() -> dict[str, Any]:
    """The engine catalogue (organs, stages, methods, options, conventions)."""
    try:
        from TumorSynthLib.synthesis.catalogue import catalogue
    except ImportError as exc:
        raise MissingDependencyError(
            f"the TumorSynth engine could not be loaded ({exc}); install the extension's Python "
            "dependencies (button 'Install dependencies') and restart Slicer") from exc
    return catalogue()


def panel_organs(catalogue: dict[str, Any] | None = None) -> list[str]:
    return [o["name"] for o in (catalogue or engine_catalogue())["organs"]]


def panel_stages(catalogue: dict[str, Any] | None = None) -> list[str]:
    return list((catalogue or engine_catalogue())["stages"])


def panel_methods(catalogue: dict[str, Any] | None = None) -> dict[str, tuple[bool, str]]:
    """{method: (usable here, reason shown when not)} in the engine's order."""
    methods = (catalogue or engine_catalogue())["methods"]
    return {name: (bool(m["available"]), slicer_reason(name, m["reason"])) for name, m in methods.items()}


def is_live(method: str, catalogue: dict[str, Any] | None = None) -> bool:
    """True when the method runs in steps the panel can show (growth, denoising)."""
    entry = (catalogue or engine_catalogue())["methods"].get(method)
    return bool(entry and entry["live"])


def diameter_range(stage: str, organ: str, catalogue: dict[str, Any] | None = None) -> tuple[float, float]:
    """Default diameter range (mm) of a stage for an organ: the diameter slider's range."""
    for entry in (catalogue or engine_catalogue())["organs"]:
        if entry["name"] == organ:
            lo, hi = entry["stages"][stage]
            return float(lo), float(hi)
    raise MissingDependencyError(f"the engine knows no organ '{organ}'")


def training_choices(catalogue: dict[str, Any] | None = None) -> dict[str, list[str]]:
    """What the Trainer offers: organs, model architectures and the methods that run here."""
    catalogue = catalogue or engine_catalogue()
    try:
        from TumorSynthLib.segmentation.models import MODEL_NAMES
    except ImportError as exc:
        raise MissingDependencyError(
            f"training needs PyTorch and MONAI ({exc}); install PyTorch with the PyTorch extension "
            "(module PyTorch Utils) and the extension's dependencies, then restart Slicer") from exc
    methods = [name for name, (ok, _why) in panel_methods(catalogue).items() if ok]
    return {"organ": panel_organs(catalogue), "model": list(MODEL_NAMES), "method": methods}


def slicer_reason(method: str, reason: str) -> str:
    """The engine's reason, with advice that fits Slicer (no bare ``pip install``)."""
    if "torch" in reason.lower():
        return (f"the '{method}' method needs PyTorch: install it with the PyTorch extension (module "
                "PyTorch Utils), then restart Slicer")
    return reason


def guess_organ(*names: str) -> str | None:
    """The offered organ that a segment name or terminology text refers to, or None."""
    try:
        from TumorSynthLib.anatomy.organs import ORGANS, guess_organ_from_name
    except ImportError as exc:
        raise MissingDependencyError(f"the TumorSynth engine could not be loaded ({exc})") from exc
    for name in names:
        for part in [name or ""] + (name or "").replace("^", "~").split("~"):
            organ = guess_organ_from_name(part) if part else None
            if organ in ORGANS:
                return organ
    return None


__all__ = ["diameter_range", "engine_catalogue", "guess_organ", "is_live", "panel_methods", "panel_organs",
           "panel_stages", "slicer_reason", "training_choices"]
