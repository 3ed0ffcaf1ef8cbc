"""Which stage effects a tumor gets: drawn once per tumor, in one order, for every method.

Defaults (common.md): mass effect for intermediate and advanced tumors; capsule for liver
tumors of those stages with probability 0.5; necrosis for advanced tumors (or tumors of at
least ``NECROSIS_MIN_DIAMETER_MM``) with probability 0.5; satellites for advanced tumors with
probability 0.3. ``options`` may force each on or off. The three uniforms are always drawn, so
the random stream does not depend on the options.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from ...anatomy.site import Site
from ..contracts import EffectPlan

GROWN_STAGES = ("intermediate", "advanced")
CAPSULE_P, NECROSIS_P, SATELLITES_P = 0.5, 0.5, 0.3
#: Tumors at least this large (mm) may get necrosis whatever their stage.
NECROSIS_MIN_DIAMETER_MM = {"liver": 30.0, "pancreas": 25.0, "kidney": 30.0, "spleen": 30.0}


def draw_effect_plan(site: Site, options: Mapping[str, Any], rng: np.random.Generator) -> EffectPlan:
    """The effect plan of ``site`` (see the module docstring)."""
    u = rng.random(3)
    grown = site.stage in GROWN_STAGES
    big = site.diameter_mm >= NECROSIS_MIN_DIAMETER_MM.get(site.organ, 30.0)
    defaults = {
        "capsule": grown and site.organ == "liver" and u[0] < CAPSULE_P,
        "necrosis": (site.stage == "advanced" or big) and u[1] < NECROSIS_P,
        "satellites": site.stage == "advanced" and u[2] < SATELLITES_P,
        "mass_effect": grown,
    }
    chosen = {k: bool(options[k]) if options.get(k) is not None else v for k, v in defaults.items()}
    draws = {"capsule_u": float(u[0]), "necrosis_u": float(u[1]), "satellites_u": float(u[2])}
    return EffectPlan(draws=draws, **chosen)


__all__ = ["draw_effect_plan"]
