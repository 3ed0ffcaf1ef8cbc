"""TumorSynth: realistic synthetic tumors in CT scans.

Public surface::

    from TumorSynthLib import TumorSpec, synthesize
    from TumorSynthLib.volume import Volume, load_volume, save_volume
    from TumorSynthLib.phantom import make_abdomen

This package imports numpy and scipy only; torch, monai, nibabel and matplotlib are imported by
the modules that use them.
"""
from __future__ import annotations

__version__ = "0.2.0"

from .anatomy.site import TumorSpec  # noqa: E402
from .core.errors import (  # noqa: E402
    DependencyError,
    GeometryError,
    InputError,
    ModelError,
    PlacementError,
    ResourceError,
    TumorSynthError,
)
from .synthesis.api import synthesize  # noqa: E402
from .synthesis.result import Synthesis  # noqa: E402

__all__ = [
    "__version__",
    "TumorSpec",
    "Synthesis",
    "synthesize",
    "TumorSynthError",
    "InputError",
    "GeometryError",
    "PlacementError",
    "DependencyError",
    "ModelError",
    "ResourceError",
]
