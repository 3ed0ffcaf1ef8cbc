"""Python dependencies of the engine inside Slicer, installed only with the user's consent.

Rules (Slicer's Python FAQ and the Extensions Index review): never install at import or in a
module constructor; ask first; use minimum versions (``>=``), not pins; never touch numpy or
SimpleITK (Slicer ships them; replacing them breaks Slicer); PyTorch comes through the
PyTorch extension (``PyTorchUtils``), which picks the right CUDA/CPU build.

Order (``ensure_python_packages``), read against Slicer's ``Base/Python/slicer/packaging.py``:

1. PyTorch first, through the PyTorch extension, and its version checked against
   ``TORCH_REQUIREMENT``: MONAI requires torch, so installing MONAI before torch is there (or
   with an older torch) lets pip pull a PyPI torch build into Slicer.
2. The missing packages, with a constraints file that holds torch and numpy at their installed
   versions, so no requirement can replace them:
   - Slicer >= 5.12 (``slicer.packaging`` exists, "versionadded 5.11"): ``pip_ensure(missing,
     constraints=..., requester="TumorSynth")``, which asks the user, installs and offers a
     restart; no ``skip_packages`` (the packaging docs discourage it).
   - Slicer 5.8 / 5.10 (only ``slicer.util.pip_install``): our own ``confirm``; packages whose
     only dependencies are torch and numpy (``NO_DEPS``: MONAI) are installed with
     ``--no-deps``, the others with ``-c constraints``.

Example::

    ensure_python_packages(confirm=lambda text: slicer.util.confirmOkCancelDisplay(text))
"""
from __future__ import annotations

import importlib.metadata
import re
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

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
)
TORCH_REQUIREMENT = ">=2.8"
REQUESTER = "TumorSynth"
#: Never installed or upgraded from here, whatever a requirement list says.
PROTECTED = frozenset({"numpy", "simpleitk", "torch", "torchvision", "requests", "vtk"})
#: Installed, as they are, during any install: a constraints file pins them to these versions.
HELD = ("torch", "numpy")
#: Packages whose only dependencies are held ones (MONAI: torch, numpy): on Slicer < 5.12 they
#: are installed with ``--no-deps``.
NO_DEPS = frozenset({"monai"})

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


@dataclass
class InstallPlan:
    """What to install and how: ``no_deps`` without dependencies, ``regular`` with them, both
    under ``constraints`` (``name==version`` lines holding torch and numpy as installed)."""

    missing: list[str]
    no_deps: list[str] = field(default_factory=list)
    regular: list[str] = field(default_factory=list)
    constraints: list[str] = field(default_factory=list)


def install_plan(requirements: Iterable[str] = ENGINE_REQUIREMENTS,
                 installed_version: Callable[[str], str | None] | None = None) -> InstallPlan:
    """The plan for the requirements that are missing or too old (protected ones left out)."""
    lookup = installed_version or _installed_version
    missing = missing_requirements(requirements, lookup)
    plan = InstallPlan(missing=missing)
    for requirement in missing:
        target = plan.no_deps if requirement_name(requirement) in NO_DEPS else plan.regular
        target.append(requirement)
    plan.constraints = [f"{name}=={version}" for name in HELD
                        for version in [lookup(name)] if version]
    return plan


def check_torch(installed_version: Callable[[str], str | None] | None = None) -> str:
    """The installed torch version; MissingDependencyError if it is absent or older than
    ``TORCH_REQUIREMENT`` (MONAI must not be installed against it)."""
    version = (installed_version or _installed_version)("torch")
    if version is None:
        raise MissingDependencyError(
            "PyTorch is not installed: install it with the PyTorch extension (module PyTorch "
            "Utils), restart Slicer, then press 'Install dependencies' again")
    if not is_satisfied("torch" + TORCH_REQUIREMENT, lambda _name: version):
        raise MissingDependencyError(
            f"PyTorch {version} is older than the {TORCH_REQUIREMENT} TumorSynth needs: in the "
            "module PyTorch Utils, uninstall PyTorch, restart Slicer and install it with version "
            f"requirement '{TORCH_REQUIREMENT}', then press 'Install dependencies' again")
    return version


def ensure_python_packages(confirm: Callable[[str], bool],
                           requirements: Sequence[str] = ENGINE_REQUIREMENTS,
                           install: Callable[[InstallPlan], None] | None = None,
                           installed_version: Callable[[str], str | None] | None = None,
                           torch: Callable[[], Any] | None = None,
                           packaging: Any = None) -> list[str]:
    """PyTorch first (``torch``, default ``ensure_torch``), its version checked, then what is
    missing; returns what was installed. ``packaging`` is ``slicer.packaging`` (found when
    None; absent before Slicer 5.12; False takes the Slicer < 5.12 path); ``install`` replaces the pip calls of Slicer < 5.12
    (tests). Raises MissingDependencyError if the user declines."""
    (torch or ensure_torch)()
    check_torch(installed_version)
    plan = install_plan(requirements, installed_version)
    if not plan.missing:
        return []
    packaging = packaging if packaging is not None else slicer_packaging()
    if packaging is not None and hasattr(packaging, "pip_ensure"):
        _pip_ensure(packaging, plan)
        return plan.missing
    if not confirm(_consent_message(plan.missing)):
        raise MissingDependencyError(
            "TumorSynth cannot run without: " + ", ".join(plan.missing)
            + ". Install them from this panel ('Install dependencies') when you are ready")
    (install or legacy_pip_install)(plan)
    return plan.missing


def _consent_message(missing: Sequence[str]) -> str:
    return ("TumorSynth needs these Python packages, which are not installed yet:\n  "
            + "\n  ".join(missing)
            + "\n\nInstall them now? (This downloads them from PyPI; it may take a few "
            "minutes. PyTorch, numpy and SimpleITK are not touched.)")


def _pip_ensure(packaging: Any, plan: InstallPlan) -> None:
    """Slicer >= 5.12: ``pip_ensure`` asks, installs and offers a restart."""
    with _constraints_file(plan.constraints) as constraints:
        try:
            packaging.pip_ensure(list(plan.missing), constraints=constraints, requester=REQUESTER)
        except RuntimeError as exc:   # pip_ensure's "User declined package installation"
            raise MissingDependencyError(
                "TumorSynth cannot run without: " + ", ".join(plan.missing)
                + ". Install them from this panel ('Install dependencies') when you are ready"
            ) from exc


def legacy_pip_install(plan: InstallPlan,
                       pip_install: Callable[[list[str]], None] | None = None) -> None:
    """Slicer 5.8 / 5.10: ``slicer.util.pip_install`` with pip arguments (a list is passed to
    pip as is): ``--no-deps`` for ``plan.no_deps``, ``-c constraints`` for the others."""
    run = pip_install or slicer.util.pip_install
    with _constraints_file(plan.constraints) as constraints:
        if plan.no_deps:
            run(["--no-deps", *plan.no_deps])
        if plan.regular:
            run((["-c", constraints] if constraints else []) + list(plan.regular))


class _constraints_file:
    """A temporary pip constraints file (path, or None when there is nothing to hold)."""

    def __init__(self, lines: Sequence[str]) -> None:
        self.lines = list(lines)
        self._dir: tempfile.TemporaryDirectory | None = None

    def __enter__(self) -> str | None:
        if not self.lines:
            return None
        self._dir = tempfile.TemporaryDirectory(prefix="tumorsynth-pip-")
        path = Path(self._dir.name) / "constraints.txt"
        path.write_text("\n".join(self.lines) + "\n")
        return str(path)

    def __exit__(self, *exc: object) -> None:
        if self._dir is not None:
            self._dir.cleanup()


def slicer_packaging() -> Any:
    """``slicer.packaging`` (Slicer >= 5.12) or None."""
    try:
        import slicer.packaging as packaging
    except ImportError:
        return None
    return packaging


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
