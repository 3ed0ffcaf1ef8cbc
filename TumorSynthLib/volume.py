"""Public façade of the volume type and its files (the names DESIGN.md promises)::

    from TumorSynthLib.volume import Volume, load_volume, save_volume

The code lives in ``TumorSynthLib.core.volume`` (the type) and ``TumorSynthLib.core.volume_io``
(NIfTI, NRRD, DICOM series); the library itself imports it from there.
"""
from .core.volume import Box, Volume
from .core.volume_io import load_volume, save_volume

__all__ = ["Box", "Volume", "load_volume", "save_volume"]
