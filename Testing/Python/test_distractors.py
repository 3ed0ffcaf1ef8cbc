"""Benign distractors (``lesion=cyst|hemangioma``): realism figures of ``datasets.realism`` (grain,
containment), the cyst's water density in every phase, the hemangioma's phase-dependent
enhancement, determinism, reports and the one list of lesion types every front end reads."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from TumorSynthLib import TumorSpec, synthesize
from TumorSynthLib.cli.synth import parse_tumor, tumor_keys_help
from TumorSynthLib.core.errors import InputError
from TumorSynthLib.core.volume import bounding_box
from TumorSynthLib.datasets.realism import summarise, tumor_metrics
from TumorSynthLib.synthesis.catalogue import catalogue
from TumorSynthLib.synthesis.lesion_types import LESION_NAMES
from TumorSynthLib.synthesis.options import option_spec


#: Largest share of a lesion more than 2 mm outside its organ.
OUTSIDE_LIMIT = {"liver": 0.10, "kidney": 0.60}


@pytest.fixture(scope="module")
def phases(phantom_default):
    """{phase: (ct, organs)} of the default phantom, venous and non-contrast."""
    from TumorSynthLib.phantom import make_abdomen

    ct, organs, _ = make_abdomen(seed=0, phase="noncontrast")
    return {"venous": phantom_default[:2], "noncontrast": (ct, organs)}


def lesion(ct, organs, kind, seed=0, organ="liver", diameter=None, **options):
    spec = TumorSpec(organ=organ, stage="intermediate", diameter_mm=diameter, seed=seed,
                     options={"lesion": kind, **options})
    return synthesize(ct, organs, spec)


def lesion_arrays(result, index=0):
    """(mask, depth in mm, HU) of lesion ``index`` in its bounding box (plus a voxel)."""
    full = result.tumor_instances.array == index + 1
    box = bounding_box(full, 1)
    mask = full[box.slices]
    depth = ndimage.distance_transform_edt(mask, sampling=result.image.spacing)
    return mask, depth, np.asarray(result.image.array[box.slices], dtype=np.float32)


def core_values(result, index=0, min_depth_mm=2.0):
    """HU of the voxels at least ``min_depth_mm`` inside lesion ``index``."""
    _mask, depth, image = lesion_arrays(result, index)
    return image[depth >= min_depth_mm]


@pytest.mark.parametrize("kind,organ,options", [("cyst", "liver", {}), ("cyst", "kidney", {}),
                                                ("hemangioma", "liver", {}),
                                                ("hemangioma", "liver", {"phase": "arterial"})])
def test_distractors_keep_the_grain_and_stay_inside(phases, kind, organ, options):
    """Grain ratio 0.85-1.15 (median of 5: a cyst's ratio spreads 0.96-1.29 over places, around
    a median of ~1.08 over 10 seeds, so a median of 3 fell either side of 1.15 with the place
    draws), nothing changed in bone, air or far from the organ, at most 10 % outside the liver
    (a kidney lesion may be exophytic, as renal cysts often are, within the contour rule's
    reach), one piece, the requested size."""
    ct, organs = phases["venous"]
    rows = [tumor_metrics(ct, organs, lesion(ct, organs, kind, seed, organ, **options)) for seed in range(5)]
    grain = summarise(rows, "grain_ratio")
    assert grain is not None and 0.85 <= grain <= 1.15, [r["grain_ratio"] for r in rows]
    for r in rows:
        assert (r["changed_bone"], r["changed_air"], r["changed_far"]) == (0, 0, 0), r
        assert r["outside_share"] <= OUTSIDE_LIMIT[organ] and r["components"] == 1, r
        assert 0.85 <= r["size_ratio"] <= 1.15, r


def test_cyst_is_water_in_every_phase_and_never_enhances(phases):
    means = {}
    for phase, (ct, organs) in phases.items():
        res = lesion(ct, organs, "cyst", seed=4, diameter=25.0)
        report = res.reports[0]
        assert report["lesion"] == "cyst" and report["benign"] is True
        assert report["effects"]["necrosis"] is False and report["effects"]["capsule"] is False
        means[phase] = float(core_values(res).mean())
        assert 0.0 <= means[phase] <= 20.0, (phase, means[phase])
        assert report["organ_median_hu"] - means[phase] > 20.0          # darker than the liver
    assert abs(means["venous"] - means["noncontrast"]) < 5.0, means       # no enhancement


def test_cyst_wall_is_sharper_than_a_tumor_edge(phases):
    ct, organs = phases["venous"]
    cyst = [tumor_metrics(ct, organs, lesion(ct, organs, "cyst", s))["edge_width_mm"] for s in range(2)]
    tumor = [tumor_metrics(ct, organs, lesion(ct, organs, "tumor", s))["edge_width_mm"] for s in range(2)]
    assert max(cyst) < min(tumor), (cyst, tumor)


def rings(result):
    """(mean HU of the outer third of the lesion's depth, of its inner third, filled share)."""
    mask, depth, image = lesion_arrays(result)
    deepest = depth.max()
    outer = mask & (depth <= deepest / 3)
    inner = depth >= 2 * deepest / 3
    return float(image[outer].mean()), float(image[inner].mean()), result.reports[0]["appearance_info"]["filled_share"]


def test_hemangioma_enhances_from_the_periphery_and_fills_in(phases):
    ct, organs = phases["venous"]
    for seed in (0, 1):
        art = lesion(ct, organs, "hemangioma", seed, diameter=35.0, phase="arterial")
        ven = lesion(ct, organs, "hemangioma", seed, diameter=35.0, phase="venous")
        late = lesion(ct, organs, "hemangioma", seed, diameter=35.0, phase="delayed")
        a_out, a_in, a_fill = rings(art)
        v_fill = rings(ven)[2]
        assert a_out > a_in + 5.0, (a_out, a_in)                    # peripheral nodules
        assert 0.02 < a_fill < 0.35                                 # discontinuous, not a full ring
        assert v_fill > a_fill + 0.2 and rings(late)[2] > v_fill    # centripetal filling
        assert float(core_values(ven).mean()) > float(core_values(art).mean()) + 20.0
        assert art.reports[0]["appearance_info"]["phase"] == "arterial"
        assert np.array_equal(art.tumor_instances.array, ven.tumor_instances.array)   # same lesion


def test_hemangioma_is_hypodense_without_contrast_and_the_phase_is_estimated(phases):
    ct, organs = phases["noncontrast"]
    res = lesion(ct, organs, "hemangioma", 2, diameter=30.0)
    info = res.reports[0]["appearance_info"]
    assert info["phase"] == "noncontrast" and info["phase_source"].startswith("estimated")
    assert res.reports[0]["organ_median_hu"] - float(core_values(res).mean()) > 8.0
    venous = lesion(*phases["venous"], "hemangioma", 2, diameter=30.0).reports[0]["appearance_info"]
    assert venous["phase"] == "venous" and venous["blood_source"].startswith("measured")


def test_same_seed_same_bytes(phases):
    ct, organs = phases["venous"]
    for kind in ("cyst", "hemangioma"):
        a, b = lesion(ct, organs, kind, 7), lesion(ct, organs, kind, 7)
        assert a.image.array.tobytes() == b.image.array.tobytes()
        assert a.labels.array.tobytes() == b.labels.array.tobytes()
        c = lesion(ct, organs, kind, 8)
        assert a.image.array.tobytes() != c.image.array.tobytes()


def test_one_list_of_lesion_types_for_every_front_end():
    assert LESION_NAMES[0] == "tumor" and {"cyst", "hemangioma"} <= set(LESION_NAMES)
    assert option_spec("lesion").choices == LESION_NAMES
    assert [e["name"] for e in catalogue()["lesions"]] == list(LESION_NAMES)
    assert all(name in tumor_keys_help() for name in LESION_NAMES)
    spec = parse_tumor("organ=liver,lesion=cyst,diameter=20")
    assert spec.options["lesion"] == "cyst" and spec.diameter_mm == 20.0


@pytest.mark.parametrize("options,organ,words", [
    ({"lesion": "polyp"}, "liver", ("lesion", "cyst", "hemangioma")),
    ({"lesion": "hemangioma"}, "kidney", ("liver",)),
    ({"lesion": "cyst", "necrosis": True}, "liver", ("no necrosis",)),
    ({"lesion": "cyst", "phase": "arterial"}, "liver", ("hemangioma",)),
])
def test_impossible_lesions_are_clear_errors(phantom_small, options, organ, words):
    ct, organs, _ = phantom_small
    with pytest.raises(InputError) as info:
        synthesize(ct, organs, TumorSpec(organ=organ, diameter_mm=15.0, options=options))
    assert all(w in str(info.value) for w in words), str(info.value)


def test_a_tumor_cannot_borrow_a_benign_appearance(phantom_small):
    ct, organs, _ = phantom_small
    with pytest.raises(InputError, match="lesion=hemangioma"):
        synthesize(ct, organs, TumorSpec(organ="liver", diameter_mm=15.0, appearance="hemangioma"))


def test_tumor_reports_say_malignant(phantom_small):
    ct, organs, _ = phantom_small
    report = synthesize(ct, organs, TumorSpec(organ="liver", diameter_mm=20.0, seed=1)).reports[0]
    assert report["lesion"] == "tumor" and report["benign"] is False
