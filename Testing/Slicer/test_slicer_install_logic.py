"""Dependency installation, read against Slicer's ``Base/Python/slicer/packaging.py``: only
with consent, only what is missing, PyTorch first (through the PyTorch extension) with its
version checked, MONAI never able to pull a PyPI torch (``--no-deps`` on Slicer < 5.12,
torch and numpy held by a constraints file everywhere), ``pip_ensure`` with a requester and
no ``skip_packages`` on Slicer >= 5.12."""
from __future__ import annotations

from pathlib import Path

import pytest

from slicer_test_phantom import require_slicer_core

require_slicer_core()

INSTALLED = {"nibabel": "5.3.2", "monai": "1.5.0", "numpy": "2.4.6", "einops": "0.8.1",
             "torch": "2.13.0+cpu"}


def lookup(name):
    return INSTALLED.get(name)


def no_torch_step():
    return None


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
        ensure_python_packages(decline, ["pynrrd>=1.0"], install=installed.append,
                               installed_version=lookup, torch=no_torch_step, packaging=False)
    assert installed == [] and "pynrrd>=1.0" in asked[0]


def test_consent_installs_only_what_is_missing_monai_without_dependencies():
    from TumorSynthSlicer.install_logic import (
        ENGINE_REQUIREMENTS, ensure_python_packages, legacy_pip_install,
    )

    calls, plans = [], []

    def install(plan):
        plans.append(plan)
        legacy_pip_install(plan, pip_install=lambda args: calls.append(
            (list(args), Path(args[1]).read_text() if args[0] == "-c" else None)))

    done = ensure_python_packages(lambda message: True, ENGINE_REQUIREMENTS, install=install,
                                  installed_version=lookup, torch=no_torch_step, packaging=False)
    assert "nibabel>=5.0" not in done and "monai>=1.6,<1.7" in done
    assert not any(r.lower().startswith(("numpy", "simpleitk", "torch")) for r in done)
    (no_deps, _), (regular, constraints) = calls
    assert no_deps == ["--no-deps", "monai>=1.6,<1.7"]          # MONAI cannot pull torch
    assert regular[0] == "-c" and "monai>=1.6,<1.7" not in regular
    assert constraints.split() == ["torch==2.13.0+cpu", "numpy==2.4.6"]
    assert ensure_python_packages(lambda m: pytest.fail("asked again"), ["nibabel>=5.0"],
                                  installed_version=lookup, torch=no_torch_step,
                                  packaging=False) == []


def test_torch_comes_first_and_an_old_torch_stops_the_install():
    from TumorSynthSlicer.errors import MissingDependencyError
    from TumorSynthSlicer.install_logic import ensure_python_packages

    order = []
    versions = dict(INSTALLED, torch="2.1.0")
    with pytest.raises(MissingDependencyError, match=r"PyTorch 2.1.0 is older than the >=2.8"):
        ensure_python_packages(lambda m: order.append("asked") or True, ["monai>=1.6,<1.7"],
                               install=lambda plan: order.append("installed"),
                               installed_version=versions.get,
                               torch=lambda: order.append("torch"), packaging=False)
    assert order == ["torch"]                    # nothing asked or installed after the check
    with pytest.raises(MissingDependencyError, match="PyTorch Utils"):
        ensure_python_packages(lambda m: True, ["monai>=1.6,<1.7"], install=pytest.fail,
                               installed_version={"numpy": "2.0"}.get, torch=no_torch_step,
                               packaging=False)


def test_slicer_512_uses_pip_ensure_with_requester_and_constraints_not_skip_packages():
    from TumorSynthSlicer.errors import MissingDependencyError
    from TumorSynthSlicer.install_logic import ensure_python_packages

    class Packaging:                      # the signature of slicer.packaging.pip_ensure (5.12)
        def __init__(self, accept=True):
            self.calls, self.accept = [], accept

        def pip_ensure(self, requirements, constraints=None, skip_packages=None,
                       prompt_install=True, prompt_restart=True, requester=None,
                       skip_in_testing=True, show_progress=True):
            self.calls.append(dict(requirements=requirements, skip_packages=skip_packages,
                                   requester=requester,
                                   constraints=Path(constraints).read_text().split()))
            if not self.accept:
                raise RuntimeError("User declined package installation")

    packaging = Packaging()
    done = ensure_python_packages(lambda m: pytest.fail("pip_ensure asks itself"),
                                  ["monai>=1.6,<1.7", "pynrrd>=1.0"], installed_version=lookup,
                                  torch=no_torch_step, packaging=packaging)
    (call,) = packaging.calls
    assert done == call["requirements"] == ["monai>=1.6,<1.7", "pynrrd>=1.0"]
    assert call["requester"] == "TumorSynth" and call["skip_packages"] is None
    assert call["constraints"] == ["torch==2.13.0+cpu", "numpy==2.4.6"]
    with pytest.raises(MissingDependencyError, match="cannot run without"):
        ensure_python_packages(lambda m: True, ["pynrrd>=1.0"], installed_version=lookup,
                               torch=no_torch_step, packaging=Packaging(accept=False))


def test_module_paths_find_resources_and_load_the_logic_for_both_modules(tmp_path):
    import sys

    from TumorSynthSlicer import module_paths

    module_dir = module_paths.MODULE_DIR
    assert (module_dir / "TumorSynth.py").is_file()
    icon = Path(module_paths.resource_path("Icons/TumorSynth.png"))
    assert icon.is_file() and icon.parent.parent.name == "Resources"
    built = tmp_path / "built"
    (built / "Resources" / "UI").mkdir(parents=True)
    (built / "Resources" / "UI" / "X.ui").write_text("<ui/>")
    assert module_paths.resource_path("UI/X.ui", built) == str(built / "Resources" / "UI" / "X.ui")
    assert module_paths.resource_path("UI/missing.ui", built) == str(built / "Resources" / "UI" / "missing.ui")
    logic = module_paths.load_logic(("trainer", "catalogue", "trainer"))
    assert sorted(vars(logic)) == ["catalogue", "install", "trainer"]
    assert logic.trainer.__name__ == "TumorSynthSlicer.trainer_logic"
    assert str(module_dir.parent) in sys.path          # the engine's folder (source tree)
