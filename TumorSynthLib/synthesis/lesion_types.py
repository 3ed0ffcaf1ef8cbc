"""Lesion types: malignant tumors and the benign look-alikes used as distractors in teaching.

``lesion=tumor`` (the default) is what the engine always made: the method's geometry and
appearance with the stage's effects. The benign types run through the same pipeline (site,
plan, mass effect, geometry, appearance, shading, composite, report) with their own pair and a
fixed effect plan:

* ``cyst`` (simple cyst; liver, kidney, pancreas): round, sharp wall, water density
  (0-20 HU in every phase: it never enhances), no necrosis, capsule or satellites, at most a
  small push on its surroundings;
* ``hemangioma`` (liver): well-defined, blood-pool behaviour that depends on the phase
  (``phase=auto|noncontrast|arterial|venous|delayed``): hypodense without contrast,
  peripheral nodular discontinuous enhancement in the arterial phase, centripetal filling in
  the venous and delayed phases, the enhancing parts isodense to the vessels.

This table is the one list of lesion types: the option table (``synthesis.options``), the
catalogue, the CLI, the Slicer module and the quiz generator read it.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Mapping

from ..anatomy.organs import canonical_organ
from ..anatomy.site import TumorSpec
from ..core.errors import InputError
from . import registry

#: Effects a benign lesion never has (an explicit 1 is an error).
BENIGN_FORBIDDEN = ("necrosis", "capsule", "satellites")
#: The push of a benign lesion on its surroundings (fraction of its radius): small.
BENIGN_PUSH = 0.1


#: SNOMED CT codes (value, scheme, meaning) of the segments a lesion becomes (DICOM CID 7159
#: "Lesion Segmentation Type"; category: Morphologically Altered Structure). A hemangioma is a
#: benign neoplasm; a simple cyst is not a neoplasm.
SNOMED_CATEGORY = ("49755003", "SCT", "Morphologically Altered Structure")
SNOMED_NEOPLASM = ("108369006", "SCT", "Neoplasm")
SNOMED_CYST = ("367643001", "SCT", "Cyst")


@dataclass(frozen=True)
class LesionType:
    """One lesion type: whether it is benign, the (geometry, appearance) pair that makes it
    (None: the method's), the organs it occurs in, the options it fixes, and how its segments
    are named (``label`` N) and coded (``property_type``, SNOMED CT)."""

    name: str
    benign: bool
    description: str
    geometry: str | None = None
    appearance: str | None = None
    organs: tuple[str, ...] = ("liver", "pancreas", "kidney")
    fixed: tuple[tuple[str, Any], ...] = ()
    label: str = "Tumor"
    property_type: tuple[str, str, str] = SNOMED_NEOPLASM

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "benign": self.benign, "description": self.description,
                "geometry": self.geometry, "appearance": self.appearance, "organs": list(self.organs)}


_BENIGN_FIXED = (("necrosis", False), ("capsule", False), ("satellites", False), ("mass_effect", True),
                 ("mass_effect_strength", BENIGN_PUSH))

LESION_TYPES: dict[str, LesionType] = {
    "tumor": LesionType("tumor", False, "malignant tumor made by the chosen method (default)"),
    "cyst": LesionType("cyst", True, "simple cyst: round, sharp wall, water density (0-20 HU), no "
                       "enhancement in any phase", geometry="smooth", appearance="cyst", fixed=_BENIGN_FIXED,
                       label="Cyst", property_type=SNOMED_CYST),
    "hemangioma": LesionType("hemangioma", True, "hemangioma: hypodense without contrast, peripheral "
                             "nodular enhancement (arterial), centripetal filling (venous, delayed), "
                             "isodense to the vessels", geometry="smooth", appearance="hemangioma",
                             organs=("liver",), fixed=_BENIGN_FIXED, label="Hemangioma"),
}
LESION_NAMES: tuple[str, ...] = tuple(LESION_TYPES)
DEFAULT_LESION = "tumor"


def lesion_type(name: Any) -> LesionType:
    """The lesion type called ``name`` (InputError naming the choices otherwise)."""
    key = str(name).strip().lower()
    if key not in LESION_TYPES:
        raise InputError(f"unknown lesion type '{name}'; choose one of: {', '.join(LESION_NAMES)}")
    return LESION_TYPES[key]


def report_lesion(report: Any) -> LesionType:
    """The lesion type a tumor report names (``report["lesion"]``; tumor when absent)."""
    name = report.get("lesion", DEFAULT_LESION) if isinstance(report, dict) else DEFAULT_LESION
    return LESION_TYPES.get(str(name), LESION_TYPES[DEFAULT_LESION])


def spec_lesion(spec: TumorSpec) -> LesionType:
    """The lesion type a spec asks for (``options["lesion"]``, default tumor)."""
    return lesion_type((spec.options or {}).get("lesion", DEFAULT_LESION))


def resolve_spec(spec: TumorSpec) -> tuple[TumorSpec, str, str]:
    """(spec with the lesion type's fixed options filled in, geometry name, appearance name).

    A tumor resolves as its method says (a benign type's appearance is refused: it would be a
    cyst labelled as a tumor). A benign type uses its own pair (``geometry=`` may
    still replace its geometry); an ``appearance=`` other than its own, an organ it does not
    occur in, or an effect it never has (``necrosis=1``) is an InputError."""
    kind = spec_lesion(spec)
    if not kind.benign:
        benign = {t.appearance: t.name for t in LESION_TYPES.values() if t.benign and t.appearance}
        if spec.appearance in benign:
            raise InputError(f"the '{spec.appearance}' appearance paints a benign {benign[spec.appearance]}, not a "
                             f"tumor; ask for lesion={benign[spec.appearance]} instead")
        return spec, *registry.resolve(spec.method, spec.geometry, spec.appearance)
    if spec.appearance is not None and spec.appearance != kind.appearance:
        raise InputError(f"a {kind.name} is painted by the '{kind.appearance}' appearance; leave out "
                         f"appearance={spec.appearance} or use lesion=tumor")
    organ = canonical_organ(spec.organ)
    if organ not in kind.organs:
        raise InputError(f"lesion={kind.name} is offered in the {', '.join(kind.organs)} only, not the "
                         f"{organ}; choose another organ or lesion type")
    options = dict(spec.options or {})
    for name in BENIGN_FORBIDDEN:
        if options.get(name) in (True, 1, "1", "true", "on", "yes"):
            raise InputError(f"a {kind.name} has no {name}; leave out {name}=1 (or use lesion=tumor)")
    fixed = {k: v for k, v in kind.fixed if options.get(k) is None}
    spec = replace(spec, options={**options, **fixed, "lesion": kind.name})
    geometry, appearance = registry.resolve(spec.method, spec.geometry or kind.geometry, kind.appearance)
    return spec, geometry, appearance


def lesion_entries() -> list[dict[str, Any]]:
    """The lesion types as the catalogue lists them."""
    return [kind.describe() for kind in LESION_TYPES.values()]


def report_fields(options: Mapping[str, Any] | None) -> dict[str, Any]:
    """``lesion`` and ``benign`` of a tumor report."""
    kind = lesion_type((options or {}).get("lesion", DEFAULT_LESION))
    return {"lesion": kind.name, "benign": kind.benign}


__all__ = ["BENIGN_PUSH", "DEFAULT_LESION", "LESION_NAMES", "LESION_TYPES", "SNOMED_CATEGORY", "SNOMED_CYST",
           "SNOMED_NEOPLASM", "LesionType", "lesion_entries", "report_lesion",
           "lesion_type", "report_fields", "resolve_spec", "spec_lesion"]
