"""The ``cellular`` method end to end: sizes per organ and stage (phantom and real CT), walls,
intensity, determinism and chunking, live growth stopped early, options and bad inputs."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

from TumorSynthLib import TumorSpec
from TumorSynthLib.core.errors import InputError, PlacementError
from TumorSynthLib.synthesis.api import synthesize
from TumorSynthLib.synthesis.live import SynthesisJob
from TumorSynthLib.synthesis.registry import provider
from TumorSynthLib.core.volume import Volume

#: Diameters (mm) inside each stage's range that the small phantom's organs can hold.
SIZES = {"tiny": 6.0, "early": 14.0, "intermediate": 30.0, "advanced": 60.0}
ORGAN_SIZES = {("pancreas", "intermediate"): 25.0, ("pancreas", "advanced"): 40.0,
               ("kidney", "advanced"): 45.0}


@pytest.fixture(scope="module")
def phantom(phantom_small):
    """(CT, organs) of the shared small phantom (Testing/fixtures/data.py)."""
    return phantom_small[0], phantom_small[1]


def _size_ok(rep: dict) -> bool:
    ratio = rep["diameter_measured_mm"] / rep["diameter_target_mm"]
    limited = rep["size_limited_by_organ"] and rep["organ_fill_fraction"] >= 0.9
    return abs(ratio - 1) <= 0.2 or limited


@pytest.mark.parametrize("organ", ["liver", "pancreas", "kidney"])
@pytest.mark.parametrize("stage", ["tiny", "early", "intermediate", "advanced"])
def test_phantom_sizes_every_organ_and_stage(phantom, organ, stage):
    ct, organs = phantom
    d = ORGAN_SIZES.get((organ, stage), SIZES[stage])
    res = synthesize(ct, organs, TumorSpec(organ=organ, stage=stage, diameter_mm=d,
                                           method="cellular", seed=4))
    rep = res.reports[0]
    assert _size_ok(rep), rep
    det = rep["geometry_info"]
    assert det["steps"] > 0 and det["h_mm"] == pytest.approx(min(max(d / 32, 0.5), 3.0))
    assert det["grid_cells"] <= 63 and det["device"] == "cpu"
    if rep["n_voxels"] >= 8:            # (1-2 voxel tumors are mostly partial volume)
        assert rep["mean_tumor_hu"] < rep["organ_median_hu"]
    assert rep["measured_drop_hu"] is None or rep["measured_drop_hu"] > 0
    assert np.count_nonzero(res.labels.array == rep["tumor_id"]) == rep["n_voxels"]


@pytest.fixture(scope="module")
def example_ct(example_ct_paths):
    from TumorSynthLib.core.volume_io import load_volume

    ct_path, seg_path = example_ct_paths
    return load_volume(ct_path), load_volume(seg_path)


@pytest.mark.parametrize("organ, stage, d", [
    ("liver", "early", 15.0), ("pancreas", "intermediate", 25.0), ("kidney", "advanced", 45.0),
])
def test_real_ct_sizes(example_ct, organ, stage, d):
    ct, organs = example_ct
    res = synthesize(ct, organs, TumorSpec(organ=organ, stage=stage, diameter_mm=d,
                                           method="cellular", seed=1))
    assert _size_ok(res.reports[0]), res.reports[0]


def test_real_ct_liver_drop_is_relative_to_the_scan(example_ct):
    """Non-contrast example liver (~46 HU): the drop on voxels of weight >= 0.9 must lie in
    f * max(median - 10, 25) with f in [0.35, 0.75] (+- 3 HU)."""
    ct, organs = example_ct
    rep = synthesize(ct, organs, TumorSpec(organ="liver", stage="intermediate", diameter_mm=30.0,
                                           method="cellular", seed=2)).reports[0]
    base = max(rep["organ_median_hu"] - 10.0, 25.0)
    assert 0.35 * base - 3 <= rep["measured_drop_hu"] <= 0.75 * base + 3


def _vessel_case(n: int = 64):
    """1 mm liver block (label 5) crossed by a portal vein (label 64, radius 2.5 mm) along k."""
    rng = np.random.default_rng(0)
    g = np.ogrid[0:n, 0:n, 0:n]
    labels = np.zeros((n, n, n), np.int16)
    labels[4:-4, 4:-4, 4:-4] = 5
    vessel = ((g[0] - 32) ** 2 + (g[1] - 32) ** 2 <= 2.5**2) & (labels == 5)
    labels[vessel] = 64
    image = np.where(labels == 5, 100.0, -100.0) + rng.normal(0, 5, labels.shape)
    image[vessel] = 180.0
    aff = np.eye(4)
    return Volume(image.astype(np.float32), aff), Volume(labels, aff.copy()), vessel


@pytest.mark.parametrize("stage", ["early", "intermediate"])
def test_tumor_grows_around_a_vessel_not_over_it(stage):
    ct, organs, vessel = _vessel_case()
    spec = TumorSpec(organ="liver", center_voxel=(27, 32, 32), diameter_mm=24.0, stage=stage,
                     method="cellular", seed=3)
    res = synthesize(ct, organs, spec)
    tumor = res.tumor_instances.array > 0
    vessel_after = res.labels.array == 64
    assert not np.any(tumor & vessel_after)
    beside = tumor[32, :29, 32].any() and tumor[32, 36:, 32].any()
    assert beside and tumor[35:, :, 32].any(), "the tumor wraps around to the far side"
    assert vessel_after.sum() >= 0.9 * vessel.sum()
    if stage == "early":                     # rigid: the vessel stays where it was
        assert np.array_equal(vessel_after, vessel)


def test_determinism_chunking_inputs_and_roi(phantom):
    ct, organs = phantom
    ct_before, organs_before = ct.array.copy(), organs.array.copy()
    spec = TumorSpec(organ="liver", stage="advanced", diameter_mm=50.0, method="cellular", seed=8,
                     options={"necrosis": True, "satellites": True})
    a = synthesize(ct, organs, spec)
    b = synthesize(ct, organs, spec)
    assert np.array_equal(a.image.array, b.image.array) and np.array_equal(a.labels.array, b.labels.array)
    strip = [{k: v for k, v in r.items() if k != "timing"} for r in (a.reports[0], b.reports[0])]
    assert strip[0] == strip[1]
    live = SynthesisJob(ct, organs, spec)
    for _ in range(20):
        live.advance(1)
    while not live.advance(13).done:
        pass
    assert np.array_equal(live.result().image.array, a.image.array)
    assert np.array_equal(ct.array, ct_before) and np.array_equal(organs.array, organs_before)
    outside = np.ones(ct.shape, bool)
    outside[a.roi.slices] = False
    assert np.array_equal(a.image.array[outside], ct.array[outside])
    assert np.array_equal(a.labels.array[outside], organs.array[outside])
    assert a.reports[0]["geometry_info"]["necrosis_steps"] > 0


def test_live_growth_stopped_early_is_a_valid_smaller_tumor(phantom):
    ct, organs = phantom
    spec = TumorSpec(organ="liver", stage="intermediate", diameter_mm=40.0, method="cellular", seed=2)
    growth = SynthesisJob(ct, organs, spec)
    first = growth.advance(10)
    first_voxels = int(first.mask.sum())
    state = growth.advance(15)
    assert state.step == 25 and not state.done and state.stage == "geometry"
    assert 0 < first_voxels < int(state.mask.sum())
    assert state.mask.shape == state.roi.shape and 0 < state.fraction < 1
    growth.stop()
    res = growth.result()
    rep = res.reports[0]
    assert rep["geometry_info"]["stop_reason"] == "stopped-early" and rep["geometry_info"]["steps"] == 25
    assert not rep["size_limited_by_organ"]
    assert 0 < rep["diameter_measured_mm"] < 0.8 * 40.0
    assert np.count_nonzero(res.labels.array == rep["tumor_id"]) == rep["n_voxels"] > 0
    assert growth.result() is res
    with pytest.raises(InputError):
        growth.advance(1)


def test_steps_option_runs_exactly_n_steps(phantom):
    ct, organs = phantom
    rep = synthesize(ct, organs, TumorSpec(organ="kidney", stage="early", method="cellular", seed=1,
                                           options={"steps": 37})).reports[0]
    assert rep["geometry_info"]["steps"] == 37 and rep["geometry_info"]["stop_reason"] == "steps"


@pytest.mark.parametrize("steps", [-1, 2.5, "many", True, float("inf"), 10**6])
def test_bad_steps(phantom, steps):
    ct, organs = phantom
    with pytest.raises(InputError, match="steps"):
        synthesize(ct, organs, TumorSpec(organ="liver", method="cellular", options={"steps": steps}))


def test_bad_sizes_and_clicks():
    ct, organs, vessel = _vessel_case()
    with pytest.raises(InputError):
        synthesize(ct, organs, TumorSpec(organ="liver", method="cellular", diameter_mm=1000.0))
    with pytest.raises(PlacementError, match="vessel"):
        synthesize(ct, organs, TumorSpec(organ="liver", method="cellular", center_voxel=(32, 32, 30)))
    with pytest.raises(PlacementError):
        synthesize(ct, organs, TumorSpec(organ="liver", method="cellular", diameter_mm=70.0))


def test_method_contract():
    method = provider("geometry", "cellular")
    assert method.available() == (True, "")
    assert method.roi_radius_mm(15.0, "early") >= 15.0
    assert method.roi_radius_mm(100.0, "advanced") >= 93.0


def test_edge_is_soft_along_all_three_axes():
    """The HU change reaches beyond the mask along every array axis (a 3D blur, not 2D slices)."""
    ct, organs, _ = _vessel_case()
    spec = TumorSpec(organ="liver", center_voxel=(20, 20, 20), diameter_mm=12.0, stage="early",
                     method="cellular", seed=6)
    res = synthesize(ct, organs, spec)
    tumor = res.tumor_instances.array > 0
    change = ct.array - res.image.array
    c = np.rint(np.argwhere(tumor).mean(axis=0)).astype(int)
    for axis in range(3):
        line = [slice(v, v + 1) for v in c]
        line[axis] = slice(None)
        inside = tumor[tuple(line)].ravel()
        delta = change[tuple(line)].ravel()
        idx = np.flatnonzero(inside)
        lo, hi = idx.min() - 1, idx.max() + 1
        assert delta[lo] > 1.0 and delta[hi] > 1.0, f"no soft edge along axis {axis}"


def test_thin_organ_limits_the_size_and_says_so():
    """A 10 mm thick tube of liver cannot hold a 25 mm tumor around the click: the growth
    stalls, the report says so, and the tumor fills more than the largest inscribed sphere."""
    shape = (170, 40, 40)
    g = np.ogrid[0:shape[0], 0:shape[1], 0:shape[2]]
    labels = np.zeros(shape, np.int16)
    labels[((g[1] - 20) ** 2 + (g[2] - 20) ** 2 <= 25) & (g[0] >= 5) & (g[0] < 165)] = 5
    image = np.where(labels == 5, 100.0, -100.0).astype(np.float32)
    image += np.random.default_rng(1).normal(0, 5, shape).astype(np.float32)
    res = synthesize(Volume(image, np.eye(4)), Volume(labels, np.eye(4)),
                     TumorSpec(organ="liver", center_voxel=(85, 20, 20), diameter_mm=25.0,
                               stage="intermediate", method="cellular", seed=2,
                               options={"mass_effect": False}))
    rep = res.reports[0]
    assert rep["size_limited_by_organ"] and rep["geometry_info"]["stop_reason"] in ("stalled", "budget")
    assert rep["organ_fill_fraction"] >= 0.9
    assert not np.any((res.tumor_instances.array > 0) & (labels != 5))


def test_thick_slices_do_not_stretch_the_tumor():
    """On 1 x 1 x 5 mm voxels the tumor's extent in mm is alike along every axis (the automaton
    runs on isotropic cells, not on the scan's voxels)."""
    shape = (70, 70, 16)
    labels = np.zeros(shape, np.int16)
    labels[3:-3, 3:-3, 1:-1] = 5
    image = np.where(labels == 5, 100.0, -100.0).astype(np.float32)
    image += np.random.default_rng(2).normal(0, 5, shape).astype(np.float32)
    aff = np.diag([1.0, 1.0, 5.0, 1.0])
    res = synthesize(Volume(image, aff), Volume(labels, aff.copy()),
                     TumorSpec(organ="liver", center_voxel=(35, 35, 8), diameter_mm=24.0,
                               stage="early", method="cellular", seed=3))
    idx = np.argwhere(res.tumor_instances.array > 0)
    extent_mm = (idx.max(axis=0) - idx.min(axis=0) + 1) * np.array([1.0, 1.0, 5.0])
    assert extent_mm.max() / extent_mm.min() < 1.45, extent_mm
    assert res.reports[0]["diameter_measured_mm"] == pytest.approx(24.0, rel=0.1)
