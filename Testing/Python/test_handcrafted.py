"""The `handcrafted` method: shapes, stage appearance, size accuracy, organ limits, effects."""
from __future__ import annotations

import numpy as np
import pytest

from TumorSynthLib import TumorSpec
from TumorSynthLib.anatomy.measure import measure_mask
from TumorSynthLib.synthesis.api import synthesize
from TumorSynthLib.synthesis.registry import provider
from TumorSynthLib.synthesis.shapes import deformed_ellipsoid, draw_radii
from TumorSynthLib.core.volume import Volume

import synthesis_cases



@pytest.fixture(scope="module")
def toy_case():
    return synthesis_cases.toy_case()


def _click(organs: Volume, center_mm):
    return synthesis_cases.ras_of_mm(center_mm)


LIVER = synthesis_cases.LIVER_MM


def test_draw_radii_keep_geometric_mean_and_spread():
    rng = np.random.default_rng(1)
    for _ in range(50):
        r = draw_radii(30.0, rng)
        assert np.prod(r) ** (1 / 3) == pytest.approx(15.0)
        assert r.max() / r.min() <= 1.25 / 0.75 + 1e-9


def test_deformed_ellipsoid_volume_on_anisotropic_grid():
    spacing = (0.8, 0.8, 3.0)
    shape = (100, 100, 30)
    rng = np.random.default_rng(2)
    radii = draw_radii(40.0, rng)
    mask = deformed_ellipsoid(shape, (50, 50, 15), radii, spacing, rng, deform_fraction=0.15)
    d = measure_mask(mask, np.diag([*spacing, 1.0]))["equivalent_diameter_mm"]
    assert d == pytest.approx(40.0, rel=0.15)
    undeformed = deformed_ellipsoid(shape, (50, 50, 15), radii, spacing, rng, deform_fraction=0.0)
    assert measure_mask(undeformed, np.diag([*spacing, 1.0]))["equivalent_diameter_mm"] == pytest.approx(40.0, rel=0.05)


@pytest.mark.parametrize("stage", ["tiny", "early", "intermediate", "advanced"])
def test_every_stage_has_the_requested_size(toy_case, stage):
    image, organs = toy_case
    lo, hi = {"tiny": (4, 8), "early": (8, 20), "intermediate": (20, 50), "advanced": (50, 100)}[stage]
    res = synthesize(image, organs, TumorSpec(organ="liver", center_ras=_click(organs, LIVER),
                                              stage=stage, seed=11))
    rep = res.reports[0]
    assert lo <= rep["diameter_target_mm"] <= hi
    assert rep["diameter_measured_mm"] == pytest.approx(rep["diameter_target_mm"], rel=0.2)
    assert not rep["size_limited_by_organ"]
    tumor = res.labels.array == 205
    assert tumor.sum() == rep["n_voxels"] > 0
    # hypo-attenuating relative to the organ median by roughly delta
    if stage != "tiny":  # a tiny tumor has no voxel of weight >= 0.9 at 1.5 x 2.5 mm
        assert rep["measured_drop_hu"] == pytest.approx(rep["delta_hu"], rel=0.3)
    drop_in_mask = rep["organ_median_hu"] - res.image.array[tumor].mean()
    assert 0.3 * rep["delta_hu"] < drop_in_mask < 1.3 * rep["delta_hu"]


def test_advanced_shows_necrosis_and_mass_effect(toy_case):
    image, organs = toy_case
    spec = TumorSpec(organ="liver", center_ras=_click(organs, LIVER), stage="advanced",
                     diameter_mm=60.0, seed=5, options={"necrosis": True, "mass_effect": True})
    res = synthesize(image, organs, spec)
    rep = res.reports[0]
    assert rep["effects"]["necrosis"] and rep["effects"]["mass_effect"]
    frac = rep["draws"]["shading"]["necrosis_fraction"]
    assert 0.2 <= frac <= 0.5
    # necrotic core: near water, darker than the rest of the tumor, labelled tumor
    tumor = res.labels.array == 205
    core = tumor & (res.image.array < 25)
    assert core.sum() > 0.1 * tumor.sum()
    assert set(np.unique(res.labels.array[core])) == {205}
    # mass effect: organ labels moved around the tumor (liver boundary pushed outward)
    outside_tumor = ~tumor
    changed = (res.labels.array != organs.array) & outside_tumor
    assert changed.sum() > 50


def test_necrosis_label_option_and_no_necrosis_when_off(toy_case):
    image, organs = toy_case
    base = dict(organ="liver", center_ras=_click(organs, LIVER), stage="advanced", diameter_mm=55.0, seed=5)
    on = synthesize(image, organs, TumorSpec(**base, options={"necrosis": True, "necrosis_label": 99}))
    assert (on.labels.array == 99).sum() > 0 and on.label_names[99].endswith("necrosis")
    off = synthesize(image, organs, TumorSpec(**base, options={"necrosis": False}))
    assert not off.reports[0]["effects"]["necrosis"]


def test_thin_organ_limits_the_size_and_says_so(toy_case):
    image, organs = toy_case
    spec = TumorSpec(organ="pancreas", center_ras=_click(organs, (110, 40, 70)), diameter_mm=28.0,
                     stage="intermediate", seed=3, options={"mass_effect": False})
    rep = synthesize(image, organs, spec).reports[0]
    assert rep["size_limited_by_organ"] is True  # the thin organ clipped the drawn shape
    assert rep["geometry_info"]["clip_kept_fraction"] < 0.8
    assert rep["organ_fill_fraction"] >= 0.9
    # grown along the organ to make up the volume (or as far as the organ allows)
    assert rep["diameter_measured_mm"] >= 0.8 * 28.0 or rep["organ_fill_fraction"] >= 0.9


def test_clipped_to_organ_unless_exophytic(toy_case):
    image, organs = toy_case
    kidney = _click(organs, (130, 120, 60))
    inside = synthesize(image, organs, TumorSpec(organ="kidney", center_ras=kidney, diameter_mm=30,
                                                 stage="intermediate", seed=2,
                                                 options={"clip_to_organ": True, "mass_effect": False}))
    tumor = inside.labels.array == 202
    assert tumor.any() and not (tumor & (organs.array != 2)).any()
    free = synthesize(image, organs, TumorSpec(organ="kidney", center_ras=kidney, diameter_mm=40,
                                               stage="advanced", seed=2,
                                               options={"clip_to_organ": False, "mass_effect": False}))
    tumor = free.labels.array == 202
    outside = tumor & (organs.array != 2)
    assert outside.any()
    # the part outside the organ looks like tumor tissue, not the fat it replaced
    assert free.image.array[outside].mean() > 0


def test_hyper_enhancement_brightens(toy_case):
    image, organs = toy_case
    rep = synthesize(image, organs, TumorSpec(organ="liver", center_ras=_click(organs, LIVER),
                                              diameter_mm=25, stage="intermediate", seed=1,
                                              options={"enhancement": "hyper"})).reports[0]
    assert rep["delta_hu"] < 0 and rep["mean_tumor_hu"] > rep["organ_median_hu"]


def test_roi_radius_covers_mass_effect():
    method = provider("geometry", "ellipsoid")
    for stage, d in [("tiny", 5), ("early", 15), ("intermediate", 40), ("advanced", 90)]:
        assert method.roi_radius_mm(d, stage) >= d  # 2 radii for the mass effect
    assert method.roi_radius_mm(30, "early") > method.roi_radius_mm(10, "early")


def test_multifocal_count(toy_case):
    image, organs = toy_case
    res = synthesize(image, organs, TumorSpec(organ="liver", diameter_mm=10, stage="early", seed=4,
                                              options={"count": 3}))
    inst = res.tumor_instances.array
    assert set(np.unique(inst)) == {0, 1, 2, 3}
    assert len(res.reports) == 3
    centres = [tuple(r["center_voxel"]) for r in res.reports]
    assert len(set(centres)) == 3


@pytest.fixture(scope="module")
def phantom(phantom_small):
    """(CT, organs) of the shared small phantom (Testing/fixtures/data.py)."""
    return phantom_small[0], phantom_small[1]


def _deepest(organs: Volume, ids) -> tuple[float, float, float]:
    from scipy import ndimage

    mask = np.pad(np.isin(organs.array, ids), 1)
    edt = ndimage.distance_transform_edt(mask, sampling=organs.spacing)[1:-1, 1:-1, 1:-1]
    return tuple(float(v) for v in np.unravel_index(int(np.argmax(edt)), organs.shape))


@pytest.mark.parametrize("organ, ids, stage", [
    ("liver", (5,), "tiny"), ("liver", (5,), "early"), ("liver", (5,), "intermediate"),
    ("liver", (5,), "advanced"), ("kidney", (2, 3), "early"), ("pancreas", (7,), "early"),
])
def test_phantom_stages_have_the_right_size(phantom, organ, ids, stage):
    ct, organs = phantom
    spec = TumorSpec(organ=organ, center_voxel=_deepest(organs, ids), stage=stage, seed=2,
                     options={"necrosis": True} if stage == "advanced" else {})
    res = synthesize(ct, organs, spec)
    rep = res.reports[0]
    ratio = rep["diameter_measured_mm"] / rep["diameter_target_mm"]
    voxel_mm = float(np.cbrt(np.prod(ct.spacing)))
    if rep["diameter_target_mm"] > 2 * voxel_mm:  # tiny tumors of 1-2 voxels cannot be exact
        assert abs(ratio - 1) <= 0.2 or (rep["size_limited_by_organ"] and rep["organ_fill_fraction"] >= 0.9)
    assert rep["n_voxels"] > 0 and rep["mean_tumor_hu"] < rep["organ_median_hu"]
    if stage == "advanced":
        assert res.reports[0]["effects"]["mass_effect"]
        assert 0.2 <= rep["draws"]["shading"]["necrosis_fraction"] <= 0.5
