"""Dependency installation: only with consent, only what is missing, never numpy / SimpleITK."""
from __future__ import annotations

import pytest

from slicer_test_phantom import require_slicer_core

require_slicer_core()

INSTALLED = {"nibabel": "5.3.2", "monai": "1.5.0", "numpy": "1.0", "einops": "0.8.1"}


def lookup(name):
    return INSTALLED.get(name)


def test_missing_requirements_checks_minimum_versions():
    from TumorSynthSlicer.install_logic import missing_requirements

    reqs = ["nibabel>=5.0", "monai>=1.6,<1.7", "einops>=0.7", "pynrrd>=1.0", "numpy>=2.0",
            "SimpleITK>=2.5"]
    assert missing_requirements(reqs, lookup) == ["monai>=1.6,<1.7", "pynrrd>=1.0"]


def test_nothing_is_installed_without_consent():
    from TumorSynthSlicer.errors import MissingDependencyError
    from TumorSynthSlicer.install_logic import ensure_python_packages

    installed, asked = [], []

    def decline(message):
        asked.append(message)
        return False

    with pytest.raises(MissingDependencyError, match="pynrrd"):
        ensure_python_packages(decline, ["pynrrd>=1.0"], install=installed.extend,
                               installed_version=lookup)
    assert installed == [] and "pynrrd>=1.0" in asked[0]


def test_consent_installs_only_what_is_missing():
    from TumorSynthSlicer.install_logic import ENGINE_REQUIREMENTS, ensure_python_packages

    installed = []
    done = ensure_python_packages(lambda message: True, ENGINE_REQUIREMENTS,
                                  install=installed.extend, installed_version=lookup)
    assert done == installed
    assert "nibabel>=5.0" not in installed and "monai>=1.6,<1.7" in installed
    assert not any(r.lower().startswith(("numpy", "simpleitk", "torch")) for r in installed)
    assert ensure_python_packages(lambda m: pytest.fail("asked again"), ["nibabel>=5.0"],
                                  installed_version=lookup) == []
