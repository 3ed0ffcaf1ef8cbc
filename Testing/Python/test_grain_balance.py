"""The shading's grain rules: the solid part of an appearance applies in full inside the tumor
(no ghost of replaced anatomy in its outer layers), a pattern with voxel-scale detail of its own
is blurred, a smooth tumor is topped up to the organ's grain."""
from __future__ import annotations

import numpy as np
from test_effects import SPACING, _ball, _plan, _site

from TumorSynthLib.core.volume import Box
from TumorSynthLib.synthesis.contracts import Appearance, Geometry, Scene, low_pass
from TumorSynthLib.synthesis.effects.shading import GRAIN_CAP_ABOVE, shade, soft_weight
from TumorSynthLib.synthesis.intensity import robust_sd

SHAPE = (40, 40, 20)


def _scene(image: np.ndarray):
    organ = np.ones(SHAPE, bool)
    site = _site(median=100.0, shape=SHAPE, image=image, organ_mask=organ, diameter=20.0, stage="intermediate")
    return site, Scene(image, site.labels_roi, organ, np.zeros(SHAPE, bool)), _ball(SHAPE, site.center_vox, 10.0)


def _noisy(sd: float = 8.0, seed: int = 1) -> np.ndarray:
    return (100.0 + np.random.default_rng(seed).normal(0, sd, SHAPE)).astype(np.float32)


def _apply(site, scene, mask, look, weight=None):
    draws: dict = {}
    out = shade(site, scene, Geometry(mask=mask, weight=weight), look, _plan(), np.random.default_rng(2), draws)
    after = scene.image.copy()
    after[out.box.slices] += out.delta
    weight = np.zeros(SHAPE, np.float32)
    weight[out.box.slices] = out.weight
    return weight, after, draws


def _grain(image: np.ndarray, where: np.ndarray) -> float:
    return robust_sd((image - low_pass(image))[where])


def test_the_solid_part_replaces_fat_in_full_inside_the_tumor():
    image = _noisy()
    fat = np.zeros(SHAPE, bool)
    fat[:, 17:23, :] = True
    image[fat] = -100.0
    site, scene, mask = _scene(image)
    solid = np.where(mask & fat, 100.0 - image, 0.0).astype(np.float32)
    change = solid - np.where(mask, 30.0, 0.0).astype(np.float32)
    box = Box((0, 0, 0), SHAPE)
    with_solid = _apply(site, scene, mask, Appearance(change, 30.0, solid_hu=solid, solid_box=box))
    faded = _apply(site, scene, mask, Appearance(change, 30.0))
    rim = mask & fat & (with_solid[0] < 0.8)
    assert rim.sum() > 20
    expected = 100.0 - 30.0 * with_solid[0][rim]          # fat made parenchyma, the drop faded
    assert abs(float(np.mean(with_solid[1][rim] - expected))) < 3.0
    assert faded[1][rim].mean() < with_solid[1][rim].mean() - 20.0        # the ghost it avoids


def test_a_grainy_pattern_is_blurred_and_a_smooth_one_is_not():
    site, scene, mask = _scene(_noisy())
    noise = np.random.default_rng(5).normal(0, 20, SHAPE).astype(np.float32)
    grainy = np.where(mask, -30.0 + noise, 0.0).astype(np.float32)
    weight, after, draws = _apply(site, scene, mask, Appearance(grainy, 30.0))
    core = weight >= 0.99
    organ_grain = _grain(scene.image, ~_ball(SHAPE, site.center_vox, 14.0))
    assert "grain_smoothed_hu" in draws
    assert _grain(after, core) < GRAIN_CAP_ABOVE * organ_grain * 1.05
    step = np.where(mask, -100.0, 0.0).astype(np.float32)                 # a cyst: sharp, smooth inside
    weight, after, draws = _apply(site, scene, mask, Appearance(step, 100.0))
    assert "grain_smoothed_hu" not in draws
    assert np.allclose(after[core], scene.image[core] - 100.0 * weight[core], atol=1e-3)


def test_a_smooth_tumor_is_topped_up_to_the_organs_grain():
    image = _noisy()
    site, scene, mask = _scene(image)
    flat = np.where(mask, low_pass(image) - image, 0.0).astype(np.float32)   # the tumor loses its grain
    box = Box((0, 0, 0), SHAPE)
    weight, after, draws = _apply(site, scene, mask, Appearance(flat - 30.0 * mask, 30.0, solid_hu=flat, solid_box=box))
    core = weight >= 0.9
    assert draws["grain_tumor_hu"] < 0.6 * draws["grain_organ_hu"] and draws["grain_added_hu"] > 0
    ratio = _grain(after, core) / draws["grain_organ_hu"]
    assert 0.9 <= ratio <= 1.1, ratio
    assert abs(float(after[core].mean()) - 70.0) < 2.0                     # the noise is zero-mean


def test_vessels_at_the_tumors_edge_fade_and_are_never_made_parenchyma():
    image = _noisy()
    site, scene, mask = _scene(image)
    vessels = np.zeros(SHAPE, bool)
    vessels[:, 20, 14] = True                    # a chord 9 mm off the centre: near the surface
    image[vessels] = 200.0
    scene = Scene(image, site.labels_roi, scene.organ, vessels)
    solid = np.where(mask & (np.abs(image - 100.0) > 30.0), 100.0 - image, 0.0).astype(np.float32)
    change = solid - np.where(mask, 30.0, 0.0).astype(np.float32)
    wide = soft_weight(mask, SPACING, 3.0)                # a wide soft edge: the chord's weights <= 0.5
    weight, after, _ = _apply(site, scene, mask, Appearance(change, 30.0, solid_hu=solid, solid_box=Box((0, 0, 0), SHAPE)), wide)
    edge = vessels & mask & (weight <= 0.5)
    assert edge.any()
    assert np.all(after[edge] >= 200.0 - 130.0 * weight[edge] - 1e-3)    # faded, as the rest of the change


def test_the_flattened_parenchyma_keeps_its_grain_without_a_top_up():
    """solid_change replaces the low frequencies and scales the kept high-pass by its measured
    loss (grain_gain): a tumor made of plain parenchyma has the organ's grain, so the shading
    adds no synthetic noise (it used to top up every large liver tumor by ~5 HU)."""
    from TumorSynthLib.synthesis.intensity import GRAIN_GAIN_MAX, ct_grain, solid_change

    image = np.float32(100.0) + ct_grain(SHAPE, 11.0, np.random.default_rng(4))     # CT-like correlated grain
    site, scene, mask = _scene(image)
    draws: dict = {}
    box = Box((0, 0, 0), SHAPE)
    solid = solid_change(site, scene, box, mask, np.random.default_rng(0), draws)
    assert 1.0 < draws["grain_gain"] <= GRAIN_GAIN_MAX
    core = mask & (np.linalg.norm(np.indices(SHAPE) - site.center_vox[:, None, None, None], axis=0) < 7)
    assert abs(_grain(image + solid, core) / _grain(image, core) - 1.0) < 0.08
    _, _, shading = _apply(site, scene, mask, Appearance(solid, 0.0, solid_hu=solid, solid_box=box))
    assert "grain_added_hu" not in shading
