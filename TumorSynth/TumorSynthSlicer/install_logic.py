"""Python dependencies of the engine inside Slicer, installed only with the user's consent.

Rules (Slicer's Python FAQ and the Extensions Index review): never install at import or in a
module constructor; ask first; use minimum versions (``>=``), not pins; never touch numpy or
SimpleITK (Slicer ships them; replacing them breaks Slicer); PyTorch comes through the
PyTorch extension (``PyTorchUtils``), which picks the right CUDA/CPU build.

``slicer.packaging.pip_ensure`` (Slicer >= 5.12) checks, asks and installs in one call; older
Slicer versions get our own check + ``confirm`` callback + ``slicer.util.pip_install``.

Example::

    ensure_python_packages(confirm=lambda text: slicer.util.confirmOkCancelDisplay(text))
    ensure_torch()
"""
from __future__ import annotations

import importlib.metadata
import re
import sys
from pathlib import Path
from typing import Callable, Iterable, Sequence

import slicer

from .errors import MissingDependencyError

#: What the engine needs beyond what Slicer ships (numpy, scipy, pydicom are Slicer's own).
ENGINE_REQUIREMENTS = (
    "nibabel>=5.0",
    "pynrrd>=1.0",
    "monai>=1.6,<1.7",
    "einops>=0.7",
    "tqdm>=4.60",
    "matplotlib>=3.7",
    "scikit-image>=0.22",
)
TORCH_REQUIREMENT = ">=2.8"
#: Never installed or upgraded from here, whatever a requirement list says.
PROTECTED = frozenset({"numpy", "simpleitk", "torch", "torchvision", "requests", "vtk"})

_NAME = re.compile(r"^\s*([A-Za-z0-9_.\-]+)")
_MIN = re.compile(r">=\s*([0-9][0-9A-Za-z.]*)")


def requirement_name(requirement: str) -> str:
    """Distribution name of a requirement string, lower-case ("monai>=1.6" -> "monai")."""
    match = _NAME.match(requirement)
    if not match:
        raise ValueError(f"not a requirement: '{requirement}'")
    return match.group(1).lower().replace("_", "-")


def version_tuple(text: str) -> tuple[int, ...]:
    """Numeric prefix of a version ("1.6.1rc2" -> (1, 6, 1))."""
    numbers = []
    for part in text.split("."):
        digits = re.match(r"\d+", part)
        if not digits:
            break
        numbers.append(int(digits.group()))
    return tuple(numbers)


def is_satisfied(requirement: str,
                 installed_version: Callable[[str], str | None] | None = None) -> bool:
    """True if the package is installed at or above the requirement's ``>=`` minimum."""
    lookup = installed_version or _installed_version
    version = lookup(requirement_name(requirement))
    if version is None:
        return False
    minimum = _MIN.search(requirement)
    return minimum is None or version_tuple(version) >= version_tuple(minimum.group(1))


def missing_requirements(requirements: Iterable[str] = ENGINE_REQUIREMENTS,
                         installed_version: Callable[[str], str | None] | None = None,
                         ) -> list[str]:
    """The requirements that are absent or too old, protected packages left out."""
    return [r for r in requirements
            if requirement_name(r) not in PROTECTED and not is_satisfied(r, installed_version)]


def ensure_python_packages(confirm: Callable[[str], bool],
                           requirements: Sequence[str] = ENGINE_REQUIREMENTS,
                           install: Callable[[list[str]], None] | None = None,
                           installed_version: Callable[[str], str | None] | None = None,
                           ) -> list[str]:
    """Install what is missing after ``confirm(message)`` returned True; returns what was
    installed. Raises MissingDependencyError if the user declines."""
    missing = missing_requirements(requirements, installed_version)
    if not missing:
        return []
    message = ("TumorSynth needs these Python packages, which are not installed yet:\n  "
               + "\n  ".join(missing)
               + "\n\nInstall them now? (This downloads them from PyPI; it may take a few "
               "minutes. numpy and SimpleITK are not touched.)")
    if not confirm(message):
        raise MissingDependencyError(
            "TumorSynth cannot run without: " + ", ".join(missing)
            + ". Install them from this panel ('Install dependencies') when you are ready")
    (install or slicer_pip_install)(missing)
    return missing


def slicer_pip_install(requirements: list[str]) -> None:
    """Install with Slicer's own pip helpers (``slicer.packaging`` when present)."""
    try:
        import slicer.packaging as packaging   # Slicer >= 5.12
    except ImportError:
        slicer.util.pip_install(list(requirements))   # a list is passed to pip as arguments
        return
    packaging.pip_install(list(requirements), skip_packages=sorted(PROTECTED))


def ensure_torch(askConfirmation: bool = True) -> object:
    """PyTorch through the PyTorch extension (right CUDA/CPU build); returns the module."""
    try:
        import PyTorchUtils  # the PyTorch extension's module (EXTENSION_DEPENDS PyTorch)
    except ImportError as exc:
        raise MissingDependencyError(
            "PyTorch is provided by the 'PyTorch' extension: install it from the Extensions "
            "Manager, restart Slicer, then try again") from exc
    logic = PyTorchUtils.PyTorchUtilsLogic()
    if not logic.torchInstalled():
        torch = logic.installTorch(askConfirmation=askConfirmation,
                                   torchVersionRequirement=TORCH_REQUIREMENT)
        if torch is None:
            raise MissingDependencyError("PyTorch was not installed; the cellular and learned "
                                         "methods and the trainer need it")
        return torch
    import torch
    return torch


def _installed_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def engine_dir(moduleDir: str | Path) -> Path | None:
    """The folder holding the ``TumorSynthLib`` package: the module folder itself in a built
    extension (packaged next to the modules), its parent in a source checkout."""
    here = Path(moduleDir).resolve()
    for folder in (here, here.parent):
        if (folder / "TumorSynthLib" / "__init__.py").is_file():
            return folder
    return None


def ensure_engine_on_path(moduleDir: str | Path) -> Path | None:
    """Put the engine's folder (and the module folder, for ``TumorSynthSlicer``) on
    ``sys.path`` if needed; returns the engine's folder (None if not found)."""
    folders = [Path(moduleDir).resolve(), engine_dir(moduleDir)]
    for folder in folders:
        if folder is not None and str(folder) not in sys.path:
            sys.path.append(str(folder))
    return folders[1]
