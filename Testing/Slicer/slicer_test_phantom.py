"""Helpers of the Slicer logic tests: the test CT (an ellipsoid "liver" on an oblique,
anisotropic grid under a linear parent transform; plain numpy) and the slicer-core check."""
from __future__ import annotations

import numpy as np

SLICER_SKIP_REASON = (
    "slicer-core is not installed (pip install -e '.[slicer-test]'; the wheel needs Python "
    "3.10-3.13; 5.11.0.6 pins vtk==9.6.0): Slicer logic tests skipped"
)


def require_slicer_core():
    """The ``slicer`` package of the slicer-core wheel, or skip the calling test module (also
    when an unrelated PyPI package named ``slicer`` is installed instead)."""
    import pytest

    slicer = pytest.importorskip("slicer", reason=SLICER_SKIP_REASON)
    if not hasattr(slicer, "vtkMRMLScene"):
        pytest.skip(f"'slicer' is not Slicer's MRML ({slicer.__file__}); {SLICER_SKIP_REASON}",
                    allow_module_level=True)
    return slicer


def _rotation(axis: str, degrees: float) -> np.ndarray:
    a = np.deg2rad(degrees)
    c, s = np.cos(a), np.sin(a)
    i, j = {"x": (1, 2), "y": (2, 0), "z": (0, 1)}[axis]
    r = np.eye(3)
    r[i, i], r[i, j], r[j, i], r[j, j] = c, -s, s, c
    return r


#: Local IJK->RAS of the test CT: oblique (rotated 20 deg about S, 10 deg about R), anisotropic
#: spacing (0.9, 1.2, 2.5) mm, off-centre origin.
SPACING = np.array([0.9, 1.2, 2.5])
LOCAL_AFFINE = np.eye(4)
LOCAL_AFFINE[:3, :3] = _rotation("z", 20) @ _rotation("x", 10) @ np.diag(SPACING)
LOCAL_AFFINE[:3, 3] = [-40.0, 25.0, -60.0]
#: Parent (linear) transform of the test CT: 30 deg about A plus a shift, local -> world.
PARENT = np.eye(4)
PARENT[:3, :3] = _rotation("y", 30)
PARENT[:3, 3] = [12.0, -7.0, 33.0]
SHAPE = (52, 44, 22)          # [i, j, k]
ORGAN_CENTRE_IJK = np.array([26.0, 22.0, 11.0])
ORGAN_RADII_MM = np.array([21.0, 19.0, 20.0])


def phantom_arrays(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(CT int16 ``[i, j, k]``: a 100 HU ellipsoid "liver" in -80 HU fat with noise,
    organ mask bool) on ``SHAPE`` with spacing ``SPACING``."""
    idx = np.indices(SHAPE).astype(float)
    d = (idx - ORGAN_CENTRE_IJK[:, None, None, None]) * SPACING[:, None, None, None]
    r = np.sqrt(((d / ORGAN_RADII_MM[:, None, None, None]) ** 2).sum(axis=0))
    organ = r < 1.0
    rng = np.random.default_rng(seed)
    ct = np.where(organ, 100.0, -80.0) + rng.normal(0.0, 6.0, SHAPE)
    return np.rint(ct).astype(np.int16), organ


def voxel_to_world(ijk) -> np.ndarray:
    """Expected world RAS of a voxel index of ``ct_node`` (computed independently of the code
    under test)."""
    affine = PARENT @ LOCAL_AFFINE
    return affine[:3, :3] @ np.asarray(ijk, dtype=float) + affine[:3, 3]
