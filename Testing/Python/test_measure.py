"""Mask measurements in mm: volume, equivalent diameter, RECIST axes, centroid, inscribed ball."""
from __future__ import annotations

import numpy as np
import pytest

from TumorSynthLib.anatomy.measure import axial_axis, largest_inscribed_radius_mm, measure_mask


def _affine(spacing, origin=(0.0, 0.0, 0.0)):
    aff = np.diag([*spacing, 1.0])
    aff[:3, 3] = origin
    return aff


def _ellipsoid(shape, center, radii_mm, spacing):
    grids = np.ogrid[tuple(slice(0, n) for n in shape)]
    return sum(((g - c) * s / r) ** 2 for g, c, s, r in zip(grids, center, spacing, radii_mm)) <= 1.0


def test_sphere_at_anisotropic_spacing():
    spacing = (0.7, 0.7, 3.0)
    mask = _ellipsoid((80, 80, 24), (40, 40, 12), (15, 15, 15), spacing)
    m = measure_mask(mask, _affine(spacing, (-10, 20, 5)))
    assert m["volume_ml"] == pytest.approx(4 / 3 * np.pi * 15**3 / 1000, rel=0.05)
    assert m["equivalent_diameter_mm"] == pytest.approx(30, rel=0.05)
    assert m["recist_long_mm"] == pytest.approx(30, rel=0.05)
    assert m["recist_short_mm"] == pytest.approx(30, rel=0.05)
    assert m["axial_axis"] == 2 and m["recist_slice"] == 12
    np.testing.assert_allclose(m["centroid_voxel"], (40, 40, 12), atol=1e-6)
    np.testing.assert_allclose(m["centroid_ras"], (40 * 0.7 - 10, 40 * 0.7 + 20, 12 * 3 + 5), atol=1e-6)


@pytest.mark.parametrize("angle_deg", [0.0, 30.0, 90.0])
def test_recist_on_ellipse(angle_deg):
    spacing = np.array([0.5, 0.8, 5.0])
    shape = (160, 100, 3)
    a = np.deg2rad(angle_deg)
    i, j = np.meshgrid(np.arange(shape[0]) * spacing[0], np.arange(shape[1]) * spacing[1], indexing="ij")
    x, y = i - 40, j - 40
    u = x * np.cos(a) + y * np.sin(a)
    v = -x * np.sin(a) + y * np.cos(a)
    ellipse = (u / 25.0) ** 2 + (v / 10.0) ** 2 <= 1.0  # axes 50 x 20 mm
    mask = np.zeros(shape, dtype=bool)
    mask[:, :, 1] = ellipse
    m = measure_mask(mask, _affine(spacing))
    assert m["recist_long_mm"] == pytest.approx(50, abs=1.5)
    assert m["recist_short_mm"] == pytest.approx(20, abs=1.5)
    assert m["recist_slice"] == 1


def test_axial_axis_follows_ras_superior():
    aff = np.zeros((4, 4))
    aff[0, 1] = 1.0   # axis 1 -> R
    aff[1, 2] = 1.0   # axis 2 -> A
    aff[2, 0] = 2.0   # axis 0 -> S
    aff[3, 3] = 1.0
    assert axial_axis(aff) == 0
    mask = np.zeros((10, 40, 40), dtype=bool)
    mask[5, 10:30, 15:25] = True  # a 20 x 10 mm rectangle on one axial slice
    m = measure_mask(mask, aff)
    assert m["axial_axis"] == 0 and m["recist_slice"] == 5
    assert m["recist_long_mm"] == pytest.approx(np.hypot(20, 10), abs=1.0)


def test_empty_mask():
    m = measure_mask(np.zeros((5, 5, 5), dtype=bool), np.eye(4))
    assert m["n_voxels"] == 0 and m["volume_ml"] == 0.0 and m["equivalent_diameter_mm"] == 0.0
    assert m["recist_long_mm"] == 0.0 and m["recist_short_mm"] == 0.0
    assert m["centroid_voxel"] is None and m["centroid_ras"] is None


def test_single_voxel_and_input_untouched():
    mask = np.zeros((5, 5, 5), dtype=np.uint8)
    mask[2, 3, 1] = 1
    before = mask.copy()
    m = measure_mask(mask, _affine((2.0, 2.0, 2.0)))
    assert m["n_voxels"] == 1 and m["volume_ml"] == pytest.approx(0.008)
    assert m["recist_long_mm"] == pytest.approx(2.0)
    np.testing.assert_array_equal(mask, before)


def test_largest_inscribed_radius():
    spacing = (1.0, 1.0, 2.5)
    ball = _ellipsoid((50, 50, 20), (25, 25, 10), (10, 10, 10), spacing)
    assert largest_inscribed_radius_mm(ball, spacing) == pytest.approx(10, abs=1.5)
    assert largest_inscribed_radius_mm(np.zeros((3, 3, 3), bool), spacing) == 0.0
    assert largest_inscribed_radius_mm(np.ones((4, 4, 4), bool), (1, 1, 1)) == pytest.approx(2.0)


def test_flipped_axes_measure_the_same():
    spacing = (0.8, 0.8, 2.0)
    mask = _ellipsoid((60, 60, 20), (30, 30, 10), (12, 8, 10), spacing)
    plain = measure_mask(mask, _affine(spacing))
    flipped_aff = np.diag([-0.8, -0.8, 2.0, 1.0])  # LPS-like in-plane flip
    flipped = measure_mask(mask, flipped_aff)
    for key in ("volume_ml", "equivalent_diameter_mm", "recist_long_mm", "recist_short_mm"):
        assert flipped[key] == pytest.approx(plain[key])
    assert plain["recist_long_mm"] == pytest.approx(24, abs=1.0)
    assert plain["recist_short_mm"] == pytest.approx(16, abs=1.0)
    np.testing.assert_allclose(flipped["centroid_ras"], (-24.0, -24.0, 20.0), atol=1e-6)


def test_shape_metrics_are_the_radiomics_mesh_features():
    """A voxelised ball: sphericity about 0.9 (the marching-cubes mesh keeps the staircase, as
    pyradiomics' does), elongation and flatness 1; an ellipsoid of semi-axes 20, 15, 10 voxels
    (anisotropic spacing): elongation 0.75 and flatness 0.5 within 0.03, and less spherical."""
    from TumorSynthLib.anatomy.measure import shape_metrics

    g = np.ogrid[-22:23, -22:23, -22:23]
    ball = shape_metrics(sum(x * x for x in g) <= 20 * 20, (1.0, 1.0, 1.0))
    assert 0.88 <= ball["sphericity"] <= 0.94
    assert ball["elongation"] == pytest.approx(1.0, abs=0.01) and ball["flatness"] == pytest.approx(1.0, abs=0.01)
    g = np.ogrid[-22:23, -17:18, -6:7]
    ellipsoid = (g[0] / 20.0) ** 2 + (g[1] / 15.0) ** 2 + (g[2] * 2.0 / 10.0) ** 2 <= 1.0
    m = shape_metrics(ellipsoid, (1.0, 1.0, 2.0))
    assert m["elongation"] == pytest.approx(0.75, abs=0.03) and m["flatness"] == pytest.approx(0.5, abs=0.03)
    assert m["sphericity"] < ball["sphericity"]
    assert shape_metrics(np.zeros((4, 4, 4), bool), (1, 1, 1)) == {"sphericity": None, "elongation": None,
                                                                   "flatness": None}
