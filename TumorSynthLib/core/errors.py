"""One exception hierarchy for everything TumorSynth raises on purpose.

Every message says what went wrong *and what to do about it*; the CLI prints the message as one
line (no traceback unless ``--debug``) and the Slicer modules show it in the panel.
"""
from __future__ import annotations


class TumorSynthError(Exception):
    """Base class of every error TumorSynth raises deliberately."""


class InputError(TumorSynthError, ValueError):
    """Bad input data: wrong dimensionality, NaN/inf voxels, non-integer labels, absurd
    parameters, unreadable or missing files, an output path that would overwrite an input."""


class GeometryError(InputError):
    """Two volumes that must share a voxel grid do not (shape, spacing, direction or origin)."""


class ConventionError(InputError):
    """A labelmap's ids do not fit the label convention it was given with (a TotalSegmentator
    map declared as msd, ...): the same for every case of a dataset, so batch commands stop."""


class PlacementError(TumorSynthError):
    """A tumor cannot be placed: click outside the organ, organ absent from the labels, tumor
    larger than the organ allows, overlap with an earlier tumor, a click on a vessel."""


class DependencyError(TumorSynthError, ImportError):
    """An optional dependency (torch, monai, pydicom, ...) is missing or too old."""


class ModelError(TumorSynthError):
    """A model checkpoint is missing, corrupt, or made for another label set or architecture."""


class ResourceError(TumorSynthError):
    """The machine ran out of memory (GPU or CPU) for the requested patch or model size."""


__all__ = [
    "TumorSynthError",
    "InputError",
    "GeometryError",
    "ConventionError",
    "PlacementError",
    "DependencyError",
    "ModelError",
    "ResourceError",
]
