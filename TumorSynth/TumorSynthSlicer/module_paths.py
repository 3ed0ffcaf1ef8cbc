"""Where the two scripted modules find their resources and their logic (one copy for both).

``TumorSynth.py`` and ``TumorSynthTrainer.py`` put their own folder (``MODULE_DIR``, this
package's parent) on ``sys.path`` and then ask this module for the rest: ``resource_path``
(icons, ``.ui`` files) and ``load_logic`` (the engine's folder on ``sys.path``, then the
``TumorSynthSlicer.<name>_logic`` modules). Loading the logic imports the engine, so the module
constructors call only ``resource_path``.
"""
from __future__ import annotations

import importlib
import os
import types
from collections.abc import Iterable
from pathlib import Path

from .install_logic import ensure_engine_on_path


#: The folder of the module files (a built extension's module folder, or ``TumorSynth/``).
MODULE_DIR = Path(__file__).resolve().parents[1]


def resource_path(name: str, module_dir: str | Path = MODULE_DIR) -> str:
    """``Resources/<name>`` next to the module files (a built extension) or one level up (the
    source tree); the first place when neither holds it (Slicer then reports the missing file)."""
    here = os.path.abspath(str(module_dir))
    for base in (here, os.path.dirname(here)):
        path = os.path.join(base, "Resources", name)
        if os.path.exists(path):
            return path
    return os.path.join(here, "Resources", name)


def load_logic(names: Iterable[str], module_dir: str | Path = MODULE_DIR) -> types.SimpleNamespace:
    """The ``TumorSynthSlicer.<name>_logic`` modules by short name (``install`` is always
    there), after putting the engine's folder on ``sys.path``."""
    ensure_engine_on_path(module_dir)
    wanted = dict.fromkeys(("install", *names))
    return types.SimpleNamespace(**{name: importlib.import_module(f"TumorSynthSlicer.{name}_logic") for name in wanted})


__all__ = ["MODULE_DIR", "load_logic", "resource_path"]
