"""The PNG preview: radiological display orientation, outlines in the right panels, exact bytes."""
from __future__ import annotations

import struct

import numpy as np
import pytest

from TumorSynthLib.datasets.preview import GAP_PX, PANEL_PX, PLANES, plane_slice, write_preview
from TumorSynthLib.core.volume import Volume

PERMUTED_FLIPPED = np.array([[0.0, -1.5, 0.0, 40.0],   # i -> S, j -> -R (i.e. L), k -> A
                             [0.0, 0.0, 2.0, -10.0],
                             [3.0, 0.0, 0.0, 5.0],
                             [0.0, 0.0, 0.0, 1.0]])
AFFINES = {
    "RAS": np.diag([1.0, 1.0, 2.0, 1.0]),
    "LPS-stored": np.diag([-0.8, -0.8, 2.5, 1.0]),
    "permuted-flipped": PERMUTED_FLIPPED,
}
#: plane -> (RAS axis that must decrease downwards, RAS axis, sign when moving right)
EXPECTED = {"axial": (1, 0, -1), "coronal": (2, 0, -1), "sagittal": (2, 1, -1)}


def ras_coordinate_volumes(affine: np.ndarray, shape=(12, 10, 8)) -> list[np.ndarray]:
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1)
    ras = ijk @ affine[:3, :3].T + affine[:3, 3]
    return [ras[..., a] for a in range(3)]


@pytest.mark.parametrize("name", sorted(AFFINES))
@pytest.mark.parametrize("plane", [p[0] for p in PLANES])
def test_display_orientation_is_radiological(name, plane):
    affine = AFFINES[name]
    coords = ras_coordinate_volumes(affine)
    center = np.array(coords[0].shape) // 2 - 1
    up_axis, right_axis, right_sign = EXPECTED[plane]
    vertical, c2d, _ = plane_slice(coords[up_axis], affine, center, plane)
    horizontal, _, _ = plane_slice(coords[right_axis], affine, center, plane)
    assert np.all(np.diff(vertical, axis=0) < 0), "moving down must lower the up-axis coordinate"
    assert np.all(np.sign(np.diff(horizontal, axis=1)) == right_sign)
    # the returned centre is where the requested voxel landed
    ras_center = affine[:3, :3] @ center + affine[:3, 3]
    r, c = np.rint(c2d).astype(int)
    assert vertical[r, c] == pytest.approx(ras_center[up_axis])


@pytest.fixture(scope="module")
def tumor_case():
    affine = np.diag([-1.5, -1.5, 3.0, 1.0])
    shape = (80, 80, 30)
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1)
    ct = np.where(np.linalg.norm((ijk - [40, 40, 15]) * [1.5, 1.5, 3.0], axis=-1) < 50, 60.0, -1000.0)
    tumor = np.linalg.norm((ijk - [30, 45, 15]) * [1.5, 1.5, 3.0], axis=-1) < 9
    ct[tumor] = 20.0
    labels = np.where(ct > 0, 5, 0).astype(np.int16)
    labels[tumor] = 205
    image = Volume(ct.astype(np.float32), affine)
    centroid = image.voxel_to_ras(np.mean(np.nonzero(tumor), axis=1))
    report = {"organ": "liver", "stage": "early", "diameter_measured_mm": 18.0,
              "tumor_id": 205, "centroid_ras": centroid.tolist()}
    return image, Volume(labels, affine), report


def png_size(data: bytes) -> tuple[int, int]:
    return struct.unpack(">II", data[16:24])


def test_preview_bytes_are_deterministic_without_software_metadata(tmp_path, tumor_case):
    image, labels, report = tumor_case
    a = write_preview(image, labels, [report], tmp_path / "a.png").read_bytes()
    b = write_preview(image, labels, [report], tmp_path / "b.png").read_bytes()
    assert a == b
    assert b"matplotlib" not in a.lower() and b"Software" not in a
    two = write_preview(image, labels, [report, report], tmp_path / "two.png").read_bytes()
    assert png_size(two)[1] - png_size(a)[1] >= PANEL_PX  # one row per tumor
    assert png_size(two)[0] == png_size(a)[0] == 6 * (PANEL_PX + GAP_PX) + GAP_PX


def test_outline_is_drawn_only_in_the_outline_panels(tmp_path, tumor_case):
    from matplotlib.image import imread

    image, labels, report = tumor_case
    rgb = imread(write_preview(image, labels, [report], tmp_path / "p.png"))[..., :3]
    red = (rgb[..., 0] > 0.8) & (rgb[..., 1] < 0.45) & (rgb[..., 2] < 0.45)
    per_panel = [int(red[:, GAP_PX + n * (PANEL_PX + GAP_PX):(n + 1) * (PANEL_PX + GAP_PX)].sum())
                 for n in range(6)]
    assert all(per_panel[n] == 0 for n in (0, 2, 4)), per_panel
    assert all(per_panel[n] > 20 for n in (1, 3, 5)), per_panel


def test_preview_without_tumors_still_writes_one_row(tmp_path, tumor_case):
    image, labels, _ = tumor_case
    data = write_preview(image, labels, [], tmp_path / "none.png").read_bytes()
    assert data.startswith(b"\x89PNG") and png_size(data)[1] > PANEL_PX
