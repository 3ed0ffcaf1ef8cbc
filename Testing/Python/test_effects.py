"""The shared stages: effect plan, mass effect (anatomical limits), lesions, shading (soft edge,
vessels, capsule, necrosis), intensity relative to the organ."""
from __future__ import annotations

import numpy as np
import pytest

from TumorSynthLib.anatomy.parenchyma import ParenchymaStats
from TumorSynthLib.anatomy.site import Site, TumorSpec
from TumorSynthLib.core.volume import Box
from TumorSynthLib.synthesis.contracts import Appearance, EffectPlan, Geometry, Scene
from TumorSynthLib.synthesis.effects.lesions import necrosis_region, satellite_centres
from TumorSynthLib.synthesis.effects.mass_effect import MARGIN_MM, push_scene
from TumorSynthLib.synthesis.effects.plan import draw_effect_plan
from TumorSynthLib.synthesis.effects.shading import shade, soft_weight
from TumorSynthLib.synthesis.intensity import TUMOR_FLOOR_HU, darkening_delta

SPACING = np.array([1.0, 1.0, 2.0])


def _ball(shape, center, radius_mm, spacing=SPACING):
    g = np.ogrid[tuple(slice(0, n) for n in shape)]
    return sum(((gi - c) * s) ** 2 for gi, c, s in zip(g, center, spacing)) <= radius_mm**2


def _site(median=46.0, organ="liver", options=None, shape=(10, 10, 10), image=None, organ_mask=None,
          diameter=10.0, stage="early", center=None) -> Site:
    image = np.zeros(shape, np.float32) if image is None else image
    organ_mask = np.ones(shape, bool) if organ_mask is None else organ_mask
    center = np.array(center if center is not None else [(n - 1) / 2 for n in shape], dtype=float)
    return Site(
        spec=TumorSpec(organ=organ, options=options or {}), organ=organ, organ_label_id=5,
        tumor_id=205, convention="totalseg", stage=stage, diameter_mm=diameter,
        diameter_source="requested", roi=Box((0, 0, 0), shape), scan_shape=shape,
        affine_roi=np.diag([*SPACING, 1.0]), spacing=SPACING, image_roi=image,
        labels_roi=np.where(organ_mask, 5, 0).astype(np.uint8), organ_mask=organ_mask,
        vessel_mask=np.zeros(shape, bool), occupied=np.zeros(shape, bool), center_vox=center,
        center_requested_ras=None, center_placed_ras=[0.0, 0.0, 0.0],
        parenchyma=ParenchymaStats(median, 8.0, median + 24.0, 100), organ_source="labels",
        organ_volume_ml=1000.0, placement="click", snap_distance_mm=0.0, allow_exophytic=False)


def _plan(**on) -> EffectPlan:
    return EffectPlan(necrosis=on.get("necrosis", False), capsule=on.get("capsule", False),
                      satellites=on.get("satellites", False), mass_effect=on.get("mass_effect", False))


def test_soft_weight_blurs_in_mm_and_keeps_mass():
    mask = _ball((40, 40, 20), (20, 20, 10), 8.0)
    w = soft_weight(mask, SPACING, 1.5)
    assert w.dtype == np.float32 and 0 <= w.min() and w.max() <= 1
    assert w.sum() == pytest.approx(mask.sum(), rel=0.01)
    assert w[20, 20, 10] > 0.99 and w[0, 0, 0] == 0


@pytest.mark.parametrize("median", [46.0, 110.0])
def test_darkening_delta_follows_the_organ(median):
    delta, f = darkening_delta(_site(median), np.random.default_rng(0))
    assert 0.35 <= f <= 0.75 and delta == pytest.approx(f * max(median - 10, 25))
    hyper, _ = darkening_delta(_site(median), np.random.default_rng(0), "hyper")
    assert hyper == pytest.approx(-delta)


def test_darkening_delta_respects_the_10_hu_floor():
    site = _site(median=20.0)
    delta, _ = darkening_delta(site, np.random.default_rng(0))
    assert 20.0 - delta == pytest.approx(TUMOR_FLOOR_HU)
    assert site.warnings and "floor" in site.warnings[0]


def test_effect_plan_by_stage_and_forced_by_options():
    drawn = [draw_effect_plan(_site(stage="advanced", diameter=60.0), {}, np.random.default_rng(s)) for s in range(40)]
    assert all(p.mass_effect for p in drawn)
    assert 0.3 < np.mean([p.necrosis for p in drawn]) < 0.7 and 0.1 < np.mean([p.satellites for p in drawn]) < 0.5
    early = draw_effect_plan(_site(stage="early"), {}, np.random.default_rng(0))
    assert not (early.mass_effect or early.necrosis or early.satellites or early.capsule)
    forced = draw_effect_plan(_site(stage="early"), {"necrosis": True, "mass_effect": True}, np.random.default_rng(0))
    assert forced.necrosis and forced.mass_effect
    a = draw_effect_plan(_site(stage="advanced"), {}, np.random.default_rng(3))
    b = draw_effect_plan(_site(stage="advanced"), {"capsule": False}, np.random.default_rng(3))
    assert a.draws == b.draws  # the stream does not depend on the options


def _anatomy(shape=(80, 80, 40)):
    """Liver block (60 HU) with a rib (700 HU) 3 mm outside it and air beyond the body."""
    image = np.full(shape, -80.0, np.float32)          # fat
    organ = np.zeros(shape, bool)
    organ[10:56, 10:70, 5:35] = True
    image[organ] = 60.0
    image[59:61, 10:70, 5:35] = 700.0                   # rib
    image[70:, :, :] = -1000.0                          # air
    image += np.random.default_rng(0).normal(0, 10, shape).astype(np.float32)
    return image, organ


def test_mass_effect_never_moves_bone_air_or_far_tissue():
    image, organ = _anatomy()
    site = _site(shape=image.shape, image=image, organ_mask=organ, diameter=40.0, stage="advanced",
                 center=(44.0, 40.0, 20.0))
    scene = push_scene(site, _plan(mass_effect=True))
    changed = scene.image != image
    assert scene.moved_voxels > 1000 and changed.any()
    assert not changed[image > 350].any() and not changed[image < -500].any()
    from scipy import ndimage

    dist = ndimage.distance_transform_edt(~organ, sampling=SPACING)
    assert dist[changed].max() <= MARGIN_MM + 2 * SPACING.max()
    assert not (scene.image[changed] > 350).any()          # no bone value pulled into soft tissue
    grew = scene.organ & ~organ
    assert grew.any() and dist[grew].max() <= MARGIN_MM + 2 * SPACING.max()   # the contour bulges
    hp = lambda a: a - ndimage.gaussian_filter(a, 1.0)      # noqa: E731  grain is kept (nearest copies)
    inner = ndimage.binary_erosion(organ, iterations=4)
    ring = changed & inner
    assert ring.sum() > 500
    assert np.std(hp(scene.image)[ring]) == pytest.approx(np.std(hp(image)[inner]), rel=0.1)


def test_mass_effect_moves_the_organ_contour_whole_on_a_coarse_grid():
    """At 1.5 mm single voxels move and the fine noise of the organ's interior stays in place;
    at the organ's contour the whole voxel moves, so no ghost of the old contour stays: every
    changed voxel of the organ's last layer holds a value of the input."""
    import dataclasses

    from scipy import ndimage

    spacing = np.array([1.5, 1.5, 1.5])
    shape = (60, 60, 60)
    organ = np.indices(shape)[0] < 34
    rng = np.random.default_rng(0)
    image = (np.where(organ, 100.0, -100.0) + rng.normal(0.0, 10.0, shape)).astype(np.float32)
    site = dataclasses.replace(_site(shape=shape, image=image, organ_mask=organ, diameter=30.0, stage="advanced",
                                     center=(30.0, 30.0, 30.0)), spacing=spacing, affine_roi=np.diag([*spacing, 1.0]))
    scene = push_scene(site, _plan(mass_effect=True))
    changed = scene.image != image
    last = organ & ~ndimage.binary_erosion(organ)
    assert (changed & last).sum() > 100
    assert np.isin(scene.image[changed & last], image).all()
    inner = changed & ndimage.binary_erosion(organ, iterations=2)
    assert not np.isin(scene.image[inner], image).all()          # there the noise stayed in place


def test_mass_effect_off_or_blocked_leaves_the_scene():
    image, organ = _anatomy()
    site = _site(shape=image.shape, image=image, organ_mask=organ, diameter=20.0, center=(30.0, 40.0, 20.0))
    assert push_scene(site, _plan()).image is site.image_roi
    site.occupied[32, 40, 20] = True
    assert push_scene(site, _plan(mass_effect=True)).image is site.image_roi
    assert any("mass effect skipped" in w for w in site.warnings)


def test_necrosis_is_central_and_of_the_drawn_fraction():
    tumor = _ball((50, 50, 25), (25, 25, 12), 15.0)
    draws: dict = {}
    nec = necrosis_region(tumor, (25, 25, 12), SPACING, np.random.default_rng(0), draws)
    assert not (nec & ~tumor).any()
    assert nec.sum() / tumor.sum() == pytest.approx(draws["necrosis_fraction"], abs=0.02)
    centroid = np.argwhere(nec).mean(axis=0)
    assert np.linalg.norm((centroid - [25, 25, 12]) * SPACING) < 4.0


def test_satellites_lie_within_one_and_a_half_radii_in_the_organ():
    allowed = np.zeros((60, 60, 30), bool)
    allowed[:, :40] = True
    found = satellite_centres((30, 30, 15), 10.0, SPACING, allowed, np.random.default_rng(1), 4)
    assert found
    for centre, d in found:
        dist = np.linalg.norm((centre - [30, 30, 15]) * SPACING)
        assert 11.0 - 1e-6 <= dist <= 15.0 + 1e-6 and 3 <= d <= 8
        assert allowed[tuple(np.rint(centre).astype(int))]


def _shade(plan, vessels=None, appearance_drop=30.0):
    shape = (40, 40, 20)
    image = np.full(shape, 100.0, np.float32) + np.random.default_rng(1).normal(0, 8, shape).astype(np.float32)
    organ = np.ones(shape, bool)
    organ[:, :4] = False
    vessels = np.zeros(shape, bool) if vessels is None else vessels
    image[vessels] = 200.0
    site = _site(median=100.0, shape=shape, image=image, organ_mask=organ, diameter=20.0, stage="advanced")
    mask = _ball(shape, site.center_vox, 10.0)
    scene = Scene(image, site.labels_roi, organ, vessels)
    change = np.where(mask, -appearance_drop, 0.0).astype(np.float32)
    look = Appearance(change, target_drop_hu=appearance_drop)
    draws: dict = {}
    return shade(site, scene, Geometry(mask=mask), look, plan, np.random.default_rng(2), draws), mask, image, draws


def test_shading_keeps_grain_and_the_drop():
    out, mask, image, draws = _shade(_plan())
    delta = np.zeros(image.shape, np.float32)
    delta[out.box.slices] = out.delta
    assert 1.0 <= draws["edge_sigma_mm"] <= 2.0
    assert out.measured_drop_hu == pytest.approx(30.0, abs=3.0)
    core = np.zeros(image.shape, bool)
    core[out.box.slices] = out.weight >= 0.99
    assert np.allclose(delta[core], -30.0, atol=0.5)  # a pure change: the scan's grain stays in the core


def test_shading_damps_vessels_inside_and_spares_those_outside():
    vessels = np.zeros((40, 40, 20), bool)
    vessels[19, :, 10] = True
    out, mask, image, _ = _shade(_plan(), vessels)
    after = image.copy()
    after[out.box.slices] += out.delta
    inside, outside = vessels & mask, vessels & ~mask
    assert after[inside].mean() < 160 and np.array_equal(after[outside & (out.weight.sum() > 0)], image[outside])


def test_capsule_and_necrosis():
    out, mask, image, draws = _shade(_plan(capsule=True, necrosis=True))
    after = image.copy()
    after[out.box.slices] += out.delta
    assert out.necrosis is not None and (out.necrosis & ~mask).sum() == 0
    assert 1.0 <= draws["capsule_thickness_mm"] <= 2.0 and draws["capsule_lift_hu"] > 0
    assert after[out.necrosis].mean() < after[mask & ~out.necrosis].mean() - 10
    assert after[out.necrosis].mean() <= draws["necrosis_level_hu"] + 20.0
