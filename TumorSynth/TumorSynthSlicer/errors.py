"""Errors raised by the Slicer-side logic (stdlib only, so ``slicer-core`` tests can import it).

Messages say what went wrong and what to do; the module panels show ``str(error)`` as is.
"""
from __future__ import annotations


class SlicerLogicError(Exception):
    """Base class of every error the TumorSynthSlicer logic raises on purpose."""


class NodeGeometryError(SlicerLogicError, ValueError):
    """A volume's geometry cannot be used (non-linear parent transform, empty image)."""


class NothingToUndoError(SlicerLogicError):
    """Undo was asked for but the undo stack is empty."""


class ProcessError(SlicerLogicError, RuntimeError):
    """A background process could not start or ended with an error."""


class MissingDependencyError(SlicerLogicError, ImportError):
    """A Python package the extension needs is missing and the user declined to install it."""
