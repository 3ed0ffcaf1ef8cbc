"""Shared effects: soft edge, intensity relative to the organ, blending, mass effect, capsule,
necrosis, satellites, vessel damping."""
from __future__ import annotations

import numpy as np
import pytest

from TumorSynthLib.synthesis import effects
from TumorSynthLib.anatomy.site import Site, TumorSpec
from TumorSynthLib.core.volume import Box

SPACING = np.array([1.0, 1.0, 2.0])


def _ball(shape, center, radius_mm, spacing=SPACING):
    g = np.ogrid[tuple(slice(0, n) for n in shape)]
    return sum(((gi - c) * s) ** 2 for gi, c, s in zip(g, center, spacing)) <= radius_mm**2


def _site(median=46.0, organ="liver", options=None) -> Site:
    shape = (10, 10, 10)
    return Site(
        spec=TumorSpec(organ=organ, options=options or {}), organ=organ, organ_label_id=5,
        tumor_id=205, convention="totalseg", stage="early", diameter_mm=10.0,
        diameter_source="requested", roi=Box((0, 0, 0), shape), image_roi=np.zeros(shape, np.float32),
        labels_roi=np.zeros(shape, np.uint8), organ_mask=np.ones(shape, bool),
        vessel_mask=np.zeros(shape, bool), occupied=np.zeros(shape, bool),
        center_vox=np.array([5.0, 5.0, 5.0]), center_requested_ras=None,
        center_placed_ras=[5.0, 5.0, 5.0], spacing=SPACING, affine_roi=np.eye(4),
        organ_median_hu=median, organ_mad_hu=8.0, vessel_threshold_hu=median + 24,
        organ_source="labels", max_inscribed_radius_mm=20.0, allow_exophytic=False)


def test_soft_weight_blurs_in_mm_and_keeps_mass():
    mask = _ball((40, 40, 20), (20, 20, 10), 8.0)
    w = effects.soft_weight(mask, SPACING, 1.5)
    assert w.dtype == np.float32 and 0 <= w.min() and w.max() <= 1
    assert w.sum() == pytest.approx(mask.sum(), rel=0.01)
    assert w[20, 20, 10] > 0.99 and w[0, 0, 0] == 0


@pytest.mark.parametrize("median, f_lo, f_hi", [(46.0, 0.35, 0.75), (110.0, 0.35, 0.75)])
def test_darkening_delta_follows_the_organ(median, f_lo, f_hi):
    site = _site(median)
    delta, f = effects.darkening_delta(site, np.random.default_rng(0))
    assert f_lo <= f <= f_hi
    assert delta == pytest.approx(f * max(median - 10, 25))
    hyper, _ = effects.darkening_delta(_site(median, options={"enhancement": "hyper"}), np.random.default_rng(0))
    assert hyper == pytest.approx(-delta)


def test_darkening_delta_respects_the_10_hu_floor():
    site = _site(median=20.0)
    delta, _ = effects.darkening_delta(site, np.random.default_rng(0))
    assert 20.0 - delta == pytest.approx(effects.TUMOR_FLOOR_HU)
    assert site.warnings and "floor" in site.warnings[0]


def test_blend_darkening_only_where_allowed():
    x = np.full((10, 10, 10), 50.0, np.float32)
    w = np.ones_like(x)
    allowed = np.zeros(x.shape, bool)
    allowed[:5] = True
    out = effects.blend_darkening(x, w, np.full_like(x, 20.0), allowed)
    assert np.all(out[:5] == 30.0) and np.all(out[5:] == 50.0)
    assert np.all(x == 50.0)


def test_mass_effect_pushes_outward_and_stops_at_two_radii():
    shape = (60, 60, 30)
    image = np.zeros(shape, np.float32)
    image[20:41, 30, 15] = np.arange(21, dtype=np.float32)  # a ramp along i through the centre
    labels = np.zeros(shape, np.uint8)
    labels[38:40, 28:33, 13:18] = 7  # a small structure at ~9 mm from the centre
    c, r = (30.0, 30.0, 15.0), 6.0
    new_img, new_lab = effects.apply_mass_effect(image, labels, c, r, SPACING, strength=0.3)
    far = ~_ball(shape, c, 2 * r)
    assert np.array_equal(new_img[far], image[far]) and np.array_equal(new_lab[far], labels[far])
    moved = np.argwhere(new_lab == 7)[:, 0]
    assert moved.mean() > np.argwhere(labels == 7)[:, 0].mean()  # pushed away from the centre
    assert set(np.unique(new_lab)) <= {0, 7}


def test_capsule_brightens_the_rim_only():
    tumor = _ball((40, 40, 20), (20, 20, 10), 10.0)
    x = np.zeros(tumor.shape, np.float32)
    out = effects.add_capsule(x, tumor, SPACING, 2.0, 10.0)
    assert out[20, 20, 10] == 0 and out[~tumor].max() == 0
    assert out[tumor].max() > 5


def test_necrosis_is_central_and_of_the_drawn_fraction():
    tumor = _ball((50, 50, 25), (25, 25, 12), 15.0)
    draws: dict = {}
    nec = effects.necrosis_mask(tumor, (25, 25, 12), SPACING, np.random.default_rng(0), draws=draws)
    assert not (nec & ~tumor).any()
    assert nec.sum() / tumor.sum() == pytest.approx(draws["necrosis_fraction"], abs=0.02)
    centroid = np.argwhere(nec).mean(axis=0)
    assert np.linalg.norm((centroid - [25, 25, 12]) * SPACING) < 4.0


def test_satellites_lie_within_one_and_a_half_radii_in_the_organ():
    allowed = np.zeros((60, 60, 30), bool)
    allowed[:, :40] = True
    found = effects.satellite_centres((30, 30, 15), 10.0, SPACING, allowed, np.random.default_rng(1), 4)
    assert found
    for centre, d in found:
        dist = np.linalg.norm((centre - [30, 30, 15]) * SPACING)
        assert 11.0 - 1e-6 <= dist <= 15.0 + 1e-6 and 3 <= d <= 8
        assert allowed[tuple(np.rint(centre).astype(int))]


def test_damp_vessels_moves_towards_the_tumor():
    x = np.full((5, 5, 5), 200.0, np.float32)
    vessels = np.zeros(x.shape, bool)
    vessels[2, 2, :] = True
    out = effects.damp_vessels(x, vessels, 40.0, 0.5)
    assert np.all(out[vessels] == 120.0) and np.all(out[~vessels] == 200.0)
