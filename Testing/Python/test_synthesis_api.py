"""synthesize(): acceptance on the real example CT, determinism, bad inputs, untouched voxels."""
from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import ndimage

import synthesis_cases
from TumorSynthLib import GeometryError, InputError, PlacementError, TumorSpec, synthesize
from TumorSynthLib.synthesis.api import expand_specs
from TumorSynthLib.synthesis.live import SynthesisJob
from TumorSynthLib.core.volume import Volume
from TumorSynthLib.core.volume_io import load_volume

LIVER = synthesis_cases.ras_of_mm(synthesis_cases.LIVER_MM)


@pytest.fixture(scope="module")
def real_ct(example_ct_paths):
    ct, seg = example_ct_paths
    return load_volume(ct), load_volume(seg)


def _deep_voxel(labels: np.ndarray, ids, spacing) -> np.ndarray:
    """The organ voxel farthest from the organ surface and from the image border."""
    mask = np.pad(np.isin(labels, ids), 1)
    edt = ndimage.distance_transform_edt(mask, sampling=spacing)[1:-1, 1:-1, 1:-1]
    return np.array(np.unravel_index(int(np.argmax(edt)), labels.shape))


@pytest.mark.parametrize("organ, ids, diameter, stage", [
    ("liver", (5,), 30.0, "intermediate"),
    ("kidney", (2, 3), 25.0, "intermediate"),
    ("pancreas", (7,), 15.0, "early"),
])
def test_real_ct_tumor_at_a_click(real_ct, organ, ids, diameter, stage):
    image, organs = real_ct
    spacing = image.spacing
    vox = _deep_voxel(organs.array, ids, spacing) + np.array([0.3, -0.2, 0.1])  # off-grid click
    click = tuple(float(v) for v in image.voxel_to_ras(vox))
    res = synthesize(image, organs, TumorSpec(organ=organ, center_ras=click, diameter_mm=diameter,
                                              stage=stage, seed=1))
    rep = res.reports[0]
    assert np.abs(np.asarray(rep["center_voxel"]) - vox).max() <= 0.5
    off_mm = np.linalg.norm(np.asarray(rep["centroid_ras"]) - np.asarray(rep["center_placed_ras"]))
    assert off_mm <= max(float(spacing.max()), 0.15 * diameter)
    within = abs(rep["diameter_measured_mm"] / diameter - 1.0) <= 0.2
    assert within or (rep["size_limited_by_organ"] and rep["organ_fill_fraction"] >= 0.9)
    assert (res.labels.array == rep["tumor_id"]).sum() == rep["n_voxels"]
    if organ == "liver":
        assert rep["organ_median_hu"] == pytest.approx(46, abs=4)
        assert 12.6 - 3 <= rep["measured_drop_hu"] <= 27 + 3
    json.dumps(rep)
    json.dumps(res.case_report)


def _strip_timing(report: dict) -> dict:
    return {k: v for k, v in report.items() if k != "timing"}


def test_same_seed_same_bytes_other_seed_differs():
    image, organs = synthesis_cases.toy_case()
    specs = [TumorSpec(organ="liver", center_ras=LIVER, stage="advanced", diameter_mm=50, seed=9,
                       options={"necrosis": True, "satellites": True, "capsule": True}),
             TumorSpec(organ="kidney", stage="early", seed=9, options={"count": 2})]
    a = synthesize(image, organs, specs, case_id="c1")
    b = synthesize(image, organs, specs, case_id="c1")
    assert a.image.array.tobytes() == b.image.array.tobytes()
    assert a.labels.array.tobytes() == b.labels.array.tobytes()
    assert a.tumor_instances.array.tobytes() == b.tumor_instances.array.tobytes()
    assert [_strip_timing(r) for r in a.reports] == [_strip_timing(r) for r in b.reports]
    assert _strip_timing(a.case_report) == _strip_timing(b.case_report)
    c = synthesize(image, organs, [TumorSpec(**{**s.to_dict(), "seed": 10}) for s in specs], case_id="c1")
    assert c.image.array.tobytes() != a.image.array.tobytes()
    d = synthesize(image, organs, specs, case_id="c2")  # the case id is part of the seed
    assert d.image.array.tobytes() != a.image.array.tobytes()


def test_outside_roi_bit_identical_and_inputs_untouched():
    image, organs = synthesis_cases.toy_case()
    img16 = Volume(np.rint(image.array).astype(np.int16), image.affine)
    for img in (image, img16):
        before_img, before_lab = img.array.copy(), organs.array.copy()
        img.array.flags.writeable = False
        organs.array.flags.writeable = False
        res = synthesize(img, organs, TumorSpec(organ="liver", center_ras=LIVER, stage="advanced",
                                                diameter_mm=45, seed=2, options={"mass_effect": True}))
        assert np.array_equal(img.array, before_img) and np.array_equal(organs.array, before_lab)
        assert res.image.array.dtype == img.array.dtype
        outside = np.ones(img.shape, dtype=bool)
        outside[res.roi.slices] = False
        assert np.array_equal(res.image.array[outside], img.array[outside])
        assert np.array_equal(res.labels.array[outside], organs.array[outside])
        assert res.image.metadata["synthetic"] is True
        assert res.case_report["synthetic"] is True and res.reports[0]["synthetic"] is True
        organs.array.flags.writeable = True


def test_float64_input_keeps_dtype_and_unchanged_voxels():
    image, organs = synthesis_cases.toy_case()
    img = Volume(image.array.astype(np.float64) + 0.123456789, image.affine)
    res = synthesize(img, organs, TumorSpec(organ="liver", center_ras=LIVER, diameter_mm=12, seed=0))
    assert res.image.array.dtype == np.float64
    changed = res.image.array != img.array
    assert changed.any() and changed.sum() < 0.01 * changed.size


@pytest.mark.parametrize("spec_kwargs, error, pattern", [
    ({"diameter_mm": 0.0}, InputError, "diameter"),
    ({"diameter_mm": -3.0}, InputError, "diameter"),
    ({"diameter_mm": float("nan")}, InputError, "diameter"),
    ({"diameter_mm": 140.0}, PlacementError, "larger than"),
    ({"center_ras": (5.0, 5.0, 5.0)}, PlacementError, r"\d+\.\d mm from the nearest liver"),
    ({"organ": "pancreas", "center_ras": None}, PlacementError, "absent"),
    ({"organ": "brain"}, InputError, "unknown organ"),
    ({"stage": "huge"}, InputError, "stage"),
    ({"method": "nonexistent"}, InputError, "unknown method"),
])
def test_bad_requests_raise_specific_errors(spec_kwargs, error, pattern):
    image, organs = synthesis_cases.toy_case()
    lab = organs.array.copy()
    lab[lab == 7] = 0  # no pancreas in this labelmap
    kwargs = {"organ": "liver", "center_ras": LIVER, "diameter_mm": 15.0, "seed": 0, **spec_kwargs}
    with pytest.raises(error, match=pattern):
        synthesize(image, organs.with_array(lab), TumorSpec(**kwargs))


def test_bad_inputs_raise_specific_errors():
    image, organs = synthesis_cases.toy_case()
    spec = TumorSpec(organ="liver", center_ras=LIVER, diameter_mm=15.0)
    shifted = Volume(organs.array, organs.affine + _shift(2.0))
    with pytest.raises(GeometryError, match="affine"):
        synthesize(image, shifted, spec)
    with pytest.raises(GeometryError, match="shape"):
        synthesize(image, Volume(organs.array[:-1], organs.affine), spec)
    with pytest.raises(InputError, match="not integers"):
        synthesize(image, Volume(organs.array * 0.5, organs.affine), spec)
    bad = image.array.copy()
    bad[0, 0, 0], bad[1, 0, 0] = np.nan, np.inf
    with pytest.raises(InputError, match="NaN/inf"):
        synthesize(image.with_array(bad), organs, spec)
    with pytest.raises(InputError, match="3D"):
        synthesize(Volume(np.zeros((8, 8)), np.eye(4)), None, spec)
    with pytest.raises(InputError, match="3D"):
        synthesize(Volume(np.zeros((4, 4, 4, 2)), np.eye(4)), None, spec)
    with pytest.raises(InputError, match="convention"):
        synthesize(image, organs, spec, labels="nonsense")
    with pytest.raises(InputError, match="count"):
        expand_specs(TumorSpec(options={"count": 0}))


def _shift(mm: float) -> np.ndarray:
    out = np.zeros((4, 4))
    out[0, 3] = mm
    return out


def test_expand_specs_and_labels_options():
    spec = TumorSpec(organ="liver", seed=3, options={"count": 3, "necrosis": False})
    out = expand_specs([spec, TumorSpec()])
    assert len(out) == 4 and all("count" not in s.options for s in out)
    assert out[0].options == {"necrosis": False}
    image, organs = synthesis_cases.toy_case()
    res = synthesize(image, organs, TumorSpec(organ="liver", center_ras=LIVER, diameter_mm=15,
                                              options={"tumor_label": 42}))
    assert (res.labels.array == 42).sum() == res.reports[0]["n_voxels"]
    assert 42 in res.label_names and res.label_names[205] == "liver_tumor"
    assert res.case_report["label_names"]["42"]


def test_live_job_steps_match_synthesize():
    image, organs = synthesis_cases.toy_case()
    spec = TumorSpec(organ="liver", center_ras=LIVER, diameter_mm=20, seed=4, stage="intermediate")
    job = SynthesisJob(image, organs, spec, "totalseg", case_id="toy")
    states = [job.advance(1) for _ in range(3)]
    assert [s.stage for s in states] == ["appearance", "done", "done"] and states[-1].done
    res = job.result()
    ref = synthesize(image, organs, spec, case_id="toy")
    assert np.array_equal(res.image.array, ref.image.array)
    assert np.array_equal(res.labels.array, ref.labels.array)
    assert res.reports[0]["case_id"] == "toy" == ref.reports[0]["case_id"]
    assert res.case_report["versions"]["tumorsynth"]


def test_no_organ_labels_grows_the_organ_from_the_click():
    image, _ = synthesis_cases.toy_case()
    res = synthesize(image, None, TumorSpec(organ="liver", center_ras=LIVER, diameter_mm=15, seed=1))
    rep = res.reports[0]
    assert rep["organ_source"] == "region-grown"
    assert (res.labels.array == rep["tumor_id"]).sum() == rep["n_voxels"] > 0
    assert abs(rep["diameter_measured_mm"] / 15 - 1) <= 0.2


def test_quality_filter_retries_and_reports():
    image, organs = synthesis_cases.toy_case()
    spec = TumorSpec(organ="liver", diameter_mm=12, stage="early", seed=6)
    scores = iter([0.2, 0.9, 0.5])
    res = synthesize(image, organs, spec, quality=lambda img, mask, affine, organ: next(scores))
    q = res.reports[0]["quality"]
    assert q["passed"] and q["attempts"] == 2 and q["kept_attempt"] == 2 and q["score"] == 0.9
    plain = synthesize(image, organs, spec)
    assert "quality" not in plain.reports[0]
    assert plain.reports[0]["center_voxel"] != res.reports[0]["center_voxel"]  # a new draw
    never = synthesize(image, organs, spec, quality=lambda *a: 0.1, tries=2)
    assert not never.reports[0]["quality"]["passed"] and never.reports[0]["warnings"]


@pytest.mark.parametrize("bad", [0, -1, 40000, "x", 2.5, True])
def test_bad_label_options_raise_before_anything_changes(bad):
    image, organs = synthesis_cases.toy_case()
    for name in ("tumor_label", "necrosis_label"):
        with pytest.raises(InputError, match=name):
            synthesize(image, organs, TumorSpec(organ="liver", center_ras=LIVER, diameter_mm=10,
                                                options={name: bad}))
