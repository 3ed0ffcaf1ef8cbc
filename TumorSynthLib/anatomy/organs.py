"""Organ facts: label conventions, stage / TNM size tables, intensity profiles, parenchyma HU.

The tables live in ``resources/organ_profiles.json`` (package data); this module only reads
them and answers questions about them.

Label conventions (``CONVENTIONS``):

* ``totalseg``: TotalSegmentator v2 ids (1 spleen, 2/3 kidney right/left, 5 liver, 7 pancreas,
  vessels 52-68); a synthetic tumor gets ``200 + organ id`` (205 liver_tumor, ...).
* ``msd`` / ``lits`` / ``kits`` / ``binary``: organ 1, tumor 2 (KiTS: cyst 3).

Two id sets per organ, on purpose:

* ``organ_label_ids``: the organ *tissue* ids (what a segmentation dataset calls "organ").
* ``organ_region_label_ids``: tissue plus lesions already inside it (an existing tumor 2, a KiTS
  cyst 3, an earlier synthetic 205). The region is what a new tumor may occupy and what the
  volume check counts; its lesion part (``lesion_label_ids``) is *occupied*: new tumors must not
  overlap it.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np

from ..core.errors import InputError


@lru_cache(maxsize=1)
def _profiles() -> dict[str, Any]:
    text = resources.files("TumorSynthLib").joinpath("resources/organ_profiles.json").read_text()
    return json.loads(text)


#: Label conventions the engine reads (totalseg, msd, lits, kits, binary).
CONVENTIONS: tuple[str, ...] = tuple(_profiles()["conventions"])
#: Stages in order, and every organ the engine knows (the tables of organ_profiles.json).
STAGES: tuple[str, ...] = tuple(_profiles()["stages"]["default"])
KNOWN_ORGANS: tuple[str, ...] = tuple(_profiles()["organs"])
#: The organs front ends offer for tumors (liver, pancreas, kidney).
ORGANS: tuple[str, ...] = tuple(n for n, e in _profiles()["organs"].items() if e.get("offered", True))


def check_convention(convention: str) -> str:
    """The convention name (lower-case) or InputError listing ``CONVENTIONS``: the one check
    every reader of a labelmap uses."""
    conv = str(convention).strip().lower()
    if conv not in CONVENTIONS:
        raise InputError(
            f"unknown label convention '{convention}'; choose one of: {', '.join(CONVENTIONS)}"
        )
    return conv


# -- organ names --------------------------------------------------------------------------------
def _normalise(name: str) -> str:
    return " ".join(str(name).strip().lower().replace("-", " ").replace("_", " ").split())


def guess_organ_from_name(name: str) -> str | None:
    """The canonical organ a free-text name (e.g. a Slicer segment "Liver", "kidney_left",
    "Right kidney", "pancreas tumor") refers to, or None when it names none of them."""
    norm = _normalise(name)
    if not norm:
        return None
    for organ, entry in _profiles()["organs"].items():
        if norm in {_normalise(a) for a in entry["aliases"]}:
            return organ
    words = set(norm.split())
    for organ, entry in _profiles()["organs"].items():
        if words & {_normalise(a) for a in entry["aliases"] if " " not in _normalise(a)}:
            return organ
    return None


def canonical_organ(name: str) -> str:
    """"liver" | "pancreas" | "kidney" | "spleen" for a name or alias (case-insensitive,
    "kidney_left" -> "kidney"); InputError listing the choices otherwise."""
    norm = _normalise(name)
    for organ, entry in _profiles()["organs"].items():
        if norm in {_normalise(a) for a in entry["aliases"]}:
            return organ
    raise InputError(f"unknown organ '{name}'; choose one of: {', '.join(KNOWN_ORGANS)}")


# -- label ids ----------------------------------------------------------------------------------
def organ_label_ids(organ: str, convention: str) -> tuple[int, ...]:
    """Label ids of the organ tissue in ``convention`` (totalseg: liver (5,), pancreas (7,),
    kidney (2, 3), spleen (1,); every other convention: (1,)). Lesions are not included: see
    ``organ_region_label_ids``."""
    organ = canonical_organ(organ)
    entry = _profiles()["conventions"][check_convention(convention)]
    ids = entry["organ_ids"]
    if isinstance(ids, dict):
        return tuple(int(v) for v in ids[organ])
    return (int(ids),)


def tumor_label_id(organ_label_id: int, convention: str) -> int:
    """The id tumor voxels receive: ``200 + organ id`` for totalseg, else 2."""
    entry = _profiles()["conventions"][check_convention(convention)]
    if "tumor_offset" in entry:
        return int(entry["tumor_offset"]) + int(organ_label_id)
    return int(entry["tumor_id"])


def lesion_label_ids(organ: str, convention: str) -> tuple[int, ...]:
    """Ids of lesions already inside the organ (existing or earlier synthetic tumors, KiTS
    cysts): part of the organ region, but occupied."""
    conv = check_convention(convention)
    entry = _profiles()["conventions"][conv]
    if conv == "totalseg":
        return tuple(tumor_label_id(i, conv) for i in organ_label_ids(organ, conv))
    return (int(entry["tumor_id"]), *(int(v) for v in entry["other_lesion_ids"]))


def organ_region_label_ids(organ: str, convention: str) -> tuple[int, ...]:
    """Organ tissue ids plus the lesion ids inside it (see the module docstring)."""
    return organ_label_ids(organ, convention) + lesion_label_ids(organ, convention)


def vessel_label_ids(convention: str) -> tuple[int, ...]:
    """Ids of labelled vessels (walls for the tumor): totalseg 52 aorta, 53-60 thoracic
    vessels, 62 SVC, 63 IVC, 64 portal/splenic vein, 65-68 iliac arteries/veins; others ()."""
    return tuple(int(v) for v in _profiles()["conventions"][check_convention(convention)]["vessel_ids"])


def label_names(convention: str, organ: str | None = None) -> dict[int, str]:
    """Id -> name of every label the convention uses, tumor ids included (e.g. 205
    "liver_tumor"). For msd / lits / binary, ``organ`` names label 1 (default "organ"; lits
    means liver)."""
    conv = check_convention(convention)
    entry = _profiles()["conventions"][conv]
    if "names" in entry:
        names = {int(k): v for k, v in entry["names"].items()}
    else:
        base = canonical_organ(organ) if organ else ("liver" if conv == "lits" else "organ")
        names = {1: base, 2: f"{base}_tumor" if base != "organ" else "tumor"}
    if conv == "totalseg":
        for organ_name in KNOWN_ORGANS:
            for oid in organ_label_ids(organ_name, conv):
                names[tumor_label_id(oid, conv)] = f"{names[oid]}_tumor"
    return dict(sorted(names.items()))


# -- sizes --------------------------------------------------------------------------------------
def check_stage(stage: str) -> str:
    """The stage name (lower-case) or InputError listing ``STAGES``."""
    norm = str(stage).strip().lower()
    if norm not in STAGES:
        raise InputError(f"unknown stage '{stage}'; choose one of: {', '.join(STAGES)}")
    return norm


#: Default stage weights of synthetic tumors for training and batch generation.
DEFAULT_STAGE_MIX = {"early": 0.8, "intermediate": 0.1, "advanced": 0.1}


def parse_stage_mix(mix: str | dict[str, float] | None, *, require_sum_one: bool = False) -> dict[str, float]:
    """``"early=0.8,intermediate=0.1"`` (or a dict) -> {stage: weight}. Weights must be >= 0,
    each stage named once. With ``require_sum_one`` they must sum to 1 (within 1e-6; batch
    generation, where a typo should not pass silently); otherwise they are normalised."""
    if mix is None:
        return dict(DEFAULT_STAGE_MIX)
    items = _stage_mix_items(mix) if isinstance(mix, str) else list(mix.items())
    out: dict[str, float] = {}
    for name, weight in items:
        stage = check_stage(name)
        if stage in out:
            raise InputError(f"the stage mix names '{stage}' twice; give each stage once")
        if not np.isfinite(weight) or weight < 0:
            raise InputError(f"stage mix weight of '{stage}' must be a number >= 0, got {weight}")
        out[stage] = float(weight)
    total = sum(out.values())
    if require_sum_one and (not out or abs(total - 1.0) > 1e-6):
        raise InputError(f"stage mix weights must sum to 1, got {total:g} ({mix}); "
                         "e.g. early=0.8,intermediate=0.1,advanced=0.1")
    if total <= 0:
        raise InputError("the stage mix has no positive weight; e.g. early=0.8,intermediate=0.2")
    return out if require_sum_one else {k: v / total for k, v in out.items()}


def _stage_mix_items(text: str) -> list[tuple[str, float]]:
    items = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        if not sep or not value.strip():
            raise InputError(f"stage mix entry '{part}' must look like early=0.8")
        try:
            items.append((name.strip(), float(value)))
        except ValueError:
            raise InputError(f"stage mix weight '{value.strip()}' of '{name.strip()}' is not a number") from None
    return items


def stage_diameter_range(stage: str, organ: str) -> tuple[float, float]:
    """Default equivalent-sphere diameter range (mm) of a stage for an organ: tiny 4-8,
    early 8-20, intermediate 20-50, advanced 50-100 (pancreas, kidney 40-80)."""
    stage = check_stage(stage)
    organ = canonical_organ(organ)
    table = _profiles()["stages"]
    lo, hi = table.get(organ, {}).get(stage, table["default"][stage])
    return float(lo), float(hi)


def tnm_categories(organ: str) -> tuple[str, ...]:
    """The size categories of an organ (kidney T1a/T1b/T2, pancreas T1/T2/T3, liver
    LR-small/LR-medium/LR-large)."""
    organ = canonical_organ(organ)
    return tuple(_profiles()["tnm"].get(organ, {}))


def tnm_diameter_range(organ: str, category: str) -> tuple[float, float]:
    """Diameter range (mm) of a TNM size category: kidney T1a 10-40, T1b 40-70, T2 70-100;
    pancreas T1 8-20, T2 20-40, T3 40-80; liver LI-RADS-like bands LR-small (< 10 mm: 5-10),
    LR-medium (10-19 mm: 10-20), LR-large (>= 20 mm: 20-50). "<10", "10-19", ">=20" are accepted
    for the liver bands. Open-ended categories are closed at plausible sizes."""
    organ = canonical_organ(organ)
    tnm = _profiles()["tnm"]
    table = tnm.get(organ)
    if not table:
        raise InputError(f"no TNM size categories for the {organ}; give a stage or a diameter")
    key = str(category).strip()
    key = tnm.get("aliases", {}).get(organ, {}).get(key.lower(), key)
    for name, (lo, hi) in table.items():
        if name.lower() == key.lower():
            return float(lo), float(hi)
    raise InputError(
        f"unknown size category '{category}' for the {organ}; choose one of: {', '.join(table)}"
    )


# -- intensity ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class IntensityProfile:
    """How dark a tumor is relative to the parenchyma: ``delta = f * max(median - 10, 25)`` HU
    with ``f`` drawn from ``f_range`` (common.md)."""

    organ: str
    f_range: tuple[float, float]
    parenchyma_floor_hu: float      # darker voxels are fat, not parenchyma


def intensity_profile(organ: str) -> IntensityProfile:
    """The organ's intensity profile (f ranges: liver 0.35-0.75, pancreas 0.30-0.60, kidney
    0.35-0.70; parenchyma floor -30 HU, 0 HU for the often fatty pancreas)."""
    organ = canonical_organ(organ)
    entry = _profiles()["intensity"][organ]
    lo, hi = entry["f_range"]
    return IntensityProfile(organ=organ, f_range=(float(lo), float(hi)),
                            parenchyma_floor_hu=float(entry["parenchyma_floor_hu"]))


__all__ = [
    "CONVENTIONS",
    "KNOWN_ORGANS",
    "ORGANS",
    "check_convention",
    "STAGES",
    "IntensityProfile",
    "canonical_organ",
    "check_stage",
    "guess_organ_from_name",
    "intensity_profile",
    "label_names",
    "lesion_label_ids",
    "organ_label_ids",
    "organ_region_label_ids",
    "stage_diameter_range",
    "tnm_categories",
    "tnm_diameter_range",
    "tumor_label_id",
    "vessel_label_ids",
]
