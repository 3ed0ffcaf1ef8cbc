"""The contract every synthesis method shares: request, site, render, result, registry, seeding.

Flow of one tumor (``synthesis/api.py`` drives it):

1. ``TumorSpec``   what the user asked for (organ, click, diameter mm, stage, method, seed).
2. ``Site``        where it goes, prepared by ``placement.prepare_site``: the ROI box around the
                   placed centre with copies of the image / labels / organ / vessel masks of that
                   box, parenchyma statistics and the target diameter. Methods never see the
                   whole scan, so the cost of one tumor does not grow with the scan.
3. ``TumorRender`` what a method returns for the ROI: new image and labels (mass effect applied),
                   the final tumor mask, necrosis, and every random draw it made.
4. ``Synthesis``   the new full volumes, instance map, ROI and the provenance reports.

Determinism: the generator of tumor ``index`` is
``default_rng(SeedSequence([seed, crc32(case_id), variant, index]))`` (``tumor_rng``).
"""
from __future__ import annotations

import importlib
import zlib
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

import numpy as np

from ..core.errors import DependencyError, InputError
from ..anatomy.site import STAGES, ORGANS, Site, TumorSpec  # noqa: F401
from ..core.volume import Box, Volume

@dataclass
class TumorRender:
    """What a method produces for its ROI (same shapes as the Site's arrays)."""

    image_roi: np.ndarray           # float32 HU after tumor, effects and blending
    labels_roi: np.ndarray          # organ labels after mass effect, tumor NOT yet written
    tumor_mask: np.ndarray          # bool: final tumor (necrosis and satellites included)
    necrosis_mask: np.ndarray | None = None
    draws: dict[str, Any] = field(default_factory=dict)     # every random draw (JSON-able)
    details: dict[str, Any] = field(default_factory=dict)   # extra report fields


@dataclass
class Synthesis:
    """The result of ``synthesize``: new volumes (inputs untouched) and provenance."""

    image: Volume
    labels: Volume
    tumor_instances: Volume          # int16, 1..N per tumor (satellites share their tumor's id)
    roi: Box | None                  # union of the changed boxes
    reports: list[dict[str, Any]]    # one per tumor
    case_report: dict[str, Any]      # inputs, versions, label_names, timing
    label_names: dict[int, str] = field(default_factory=dict)


class TumorMethod(Protocol):
    """A synthesis method. Registered by name; looked up by ``get_method``."""

    name: str

    def available(self) -> tuple[bool, str]:
        """(True, "") when usable here, else (False, reason the user can act on)."""

    def roi_radius_mm(self, diameter_mm: float, stage: str) -> float:
        """Radius (mm) of the ROI around the centre this method needs (tumor, effects, blur)."""

    def render(self, site: Site, rng: np.random.Generator) -> TumorRender:
        """Make one tumor in ``site``; all randomness from ``rng``."""


# -- registry ---------------------------------------------------------------------------------
_FACTORIES: dict[str, Callable[[], TumorMethod]] = {}
#: Built-in methods, imported lazily so that ``import TumorSynthLib`` never pulls in torch.
_BUILTIN_MODULES = {
    "handcrafted": "TumorSynthLib.synthesis.handcrafted",
    "cellular": "TumorSynthLib.synthesis.cellular",
}


def register_method(name: str) -> Callable[[Callable[[], TumorMethod]], Callable[[], TumorMethod]]:
    """Class decorator: ``@register_method("handcrafted") class Handcrafted: ...``."""

    def deco(factory: Callable[[], TumorMethod]) -> Callable[[], TumorMethod]:
        _FACTORIES[name] = factory
        return factory

    return deco


def method_names() -> list[str]:
    """Every method name known (built-in and registered), available here or not."""
    return sorted(set(_BUILTIN_MODULES) | set(_FACTORIES))


def get_method(name: str) -> TumorMethod:
    """The method registered as ``name``; DependencyError if it cannot run here."""
    if name not in _FACTORIES and name in _BUILTIN_MODULES:
        try:
            importlib.import_module(_BUILTIN_MODULES[name])
        except ImportError as exc:
            raise DependencyError(
                f"method '{name}' needs a package that is not installed ({exc}); "
                "install the full package: pip install tumorsynth"
            ) from exc
    if name not in _FACTORIES:
        raise InputError(f"unknown method '{name}'; choose one of: {', '.join(method_names())}")
    method = _FACTORIES[name]()
    ok, why = method.available()
    if not ok:
        raise DependencyError(f"method '{name}' is not available here: {why}")
    return method


def tumor_rng(seed: int, case_id: str = "", variant: int = 0, index: int = 0) -> np.random.Generator:
    """The generator for tumor ``index`` of a case: the project's one seeding rule."""
    return np.random.default_rng(tumor_seed_sequence(seed, case_id, variant, index))


def tumor_seed_sequence(seed: int, case_id: str = "", variant: int = 0, index: int = 0) -> np.random.SeedSequence:
    if int(seed) < 0:
        raise InputError(f"seed must be >= 0, got {seed}")
    return np.random.SeedSequence([int(seed), zlib.crc32(str(case_id).encode()), int(variant), int(index)])
