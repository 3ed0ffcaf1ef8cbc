"""TumorSynth: realistic synthetic tumors in CT scans.

Public surface::

    from TumorSynthLib import TumorSpec, synthesize
    from TumorSynthLib.volume import Volume, load_volume, save_volume
    from TumorSynthLib.phantom import make_abdomen

This package imports numpy and scipy only; torch, monai, nibabel and matplotlib are imported by
the modules that use them.
"""
from __future__ import annotations

__version__ = "0.1.0"

from .core.errors import (
    DependencyError,
    GeometryError,
    InputError,
    ModelError,
    PlacementError,
    ResourceError,
    TumorSynthError,
)
from .synthesis.base import Synthesis
from .anatomy.site import TumorSpec


def synthesize(*args, **kwargs):  # type: ignore[no-untyped-def]
    """See ``TumorSynthLib.synthesis.api.synthesize``."""
    from .synthesis.api import synthesize as _synthesize

    return _synthesize(*args, **kwargs)


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
