"""The engine catalogue: every fact a front end needs, from the one place each fact lives.

The CLI's help and validation, the Slicer menus and the web app read this instead of keeping
their own lists: organs (with stage diameter ranges and TNM categories), stages, label
conventions and their tumor ids, methods and providers (with availability here and the reason
when unavailable), effects, and the option keys with their types. ``catalogue()`` returns it as
one JSON-able dict (``tumorsynth info --json`` prints it).
"""
from __future__ import annotations

from typing import Any

from ..anatomy import organs as anatomy
from . import registry
from .options import OPTIONS

EFFECTS = ("necrosis", "capsule", "satellites", "mass_effect")


def organ_entries() -> list[dict[str, Any]]:
    """The organs front ends offer, with their stage ranges (mm) and TNM size categories."""
    return [{
        "name": organ,
        "stages": {s: list(anatomy.stage_diameter_range(s, organ)) for s in anatomy.STAGES},
        "tnm": {c: list(anatomy.tnm_diameter_range(organ, c)) for c in anatomy.tnm_categories(organ)},
    } for organ in anatomy.ORGANS]


def convention_entries() -> dict[str, dict[str, Any]]:
    """Per convention: organ label ids and the tumor id each organ's tumors receive."""
    out = {}
    for conv in anatomy.CONVENTIONS:
        per_organ = {}
        for organ in anatomy.ORGANS:
            ids = anatomy.organ_label_ids(organ, conv)
            per_organ[organ] = {"organ_ids": list(ids),
                                "tumor_ids": sorted({anatomy.tumor_label_id(i, conv) for i in ids})}
        out[conv] = {"organs": per_organ, "vessel_ids": list(anatomy.vessel_label_ids(conv))}
    return out


def method_entries() -> dict[str, dict[str, Any]]:
    """Per method: its (geometry, appearance) pair, whether both halves run here and why not."""
    out = {}
    for name, method in registry.methods().items():
        g_ok, g_why = registry.availability("geometry", method.geometry)
        a_ok, a_why = registry.availability("appearance", method.appearance)
        out[name] = {"geometry": method.geometry, "appearance": method.appearance,
                     "description": method.description, "available": g_ok and a_ok,
                     "reason": "; ".join(w for w in (g_why, a_why) if w),
                     "live": live_provider(method.geometry, method.appearance)}
    return out


def provider_entries(kind: str) -> dict[str, dict[str, Any]]:
    names = registry.geometry_names() if kind == "geometry" else registry.appearance_names()
    out = {}
    for name in names:
        ok, why = registry.availability(kind, name)
        cls = registry.provider_class(kind, name)
        out[name] = {"available": ok, "reason": why, "description": cls.description,
                     "options": list(cls.options), "steps": hasattr(cls, "start")}
    return out


def live_provider(geometry: str, appearance: str) -> bool:
    """True when one of the pair runs in steps (front ends then show it live)."""
    return bool(hasattr(registry.provider_class("geometry", geometry), "start")
                or hasattr(registry.provider_class("appearance", appearance), "start"))


def catalogue() -> dict[str, Any]:
    """Everything above as one JSON-able dict."""
    return {
        "organs": organ_entries(), "stages": list(anatomy.STAGES),
        "conventions": convention_entries(), "methods": method_entries(),
        "geometries": provider_entries("geometry"), "appearances": provider_entries("appearance"),
        "effects": list(EFFECTS), "options": [o.describe() for o in OPTIONS],
    }


__all__ = ["EFFECTS", "catalogue", "convention_entries", "live_provider", "method_entries", "organ_entries",
           "provider_entries"]
