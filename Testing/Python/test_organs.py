"""Organ conventions, size tables, intensity profiles and parenchyma statistics."""
from __future__ import annotations

import numpy as np
import pytest

from TumorSynthLib.core.errors import InputError
from TumorSynthLib.anatomy.organs import (
    CONVENTIONS,
    STAGES,
    canonical_organ,
    guess_organ_from_name,
    intensity_profile,
    label_names,
    lesion_label_ids,
    organ_label_ids,
    organ_region_label_ids,
    stage_diameter_range,
    tnm_categories,
    tnm_diameter_range,
    tumor_label_id,
    vessel_label_ids,
)
from TumorSynthLib.anatomy.parenchyma import parenchyma_stats


@pytest.mark.parametrize("name, organ", [
    ("liver", "liver"), ("LIVER", "liver"), ("kidney_left", "kidney"), ("Kidney Right", "kidney"),
    ("pancreas", "pancreas"), ("spleen", "spleen"),
])
def test_canonical_organ_accepts_aliases(name, organ):
    assert canonical_organ(name) == organ


def test_canonical_organ_unknown_lists_choices():
    with pytest.raises(InputError, match="unknown organ 'lung'.*liver.*pancreas.*kidney"):
        canonical_organ("lung")


@pytest.mark.parametrize("name, organ", [
    ("Liver", "liver"), ("kidney_left", "kidney"), ("Right kidney", "kidney"), ("pancreas", "pancreas"),
    ("Segment_1", None), ("", None), ("liver tumor", "liver"),
])
def test_guess_organ_from_segment_names(name, organ):
    assert guess_organ_from_name(name) == organ


def test_totalseg_ids_and_tumor_ids():
    assert organ_label_ids("liver", "totalseg") == (5,)
    assert organ_label_ids("pancreas", "totalseg") == (7,)
    assert organ_label_ids("kidney", "totalseg") == (2, 3)
    assert organ_label_ids("spleen", "totalseg") == (1,)
    assert [tumor_label_id(i, "totalseg") for i in (1, 2, 3, 5, 7)] == [201, 202, 203, 205, 207]
    assert lesion_label_ids("kidney", "totalseg") == (202, 203)
    assert organ_region_label_ids("liver", "totalseg") == (5, 205)


@pytest.mark.parametrize("conv", ["msd", "lits", "kits", "binary"])
def test_other_conventions_use_organ_1_tumor_2(conv):
    assert organ_label_ids("liver", conv) == (1,)
    assert tumor_label_id(1, conv) == 2
    assert vessel_label_ids(conv) == ()
    assert 2 in organ_region_label_ids("kidney", conv)


def test_kits_cyst_is_a_lesion_not_tissue():
    assert lesion_label_ids("kidney", "kits") == (2, 3)
    assert organ_label_ids("kidney", "kits") == (1,)


def test_unknown_convention_lists_choices():
    with pytest.raises(InputError, match="unknown label convention 'nnunet'.*totalseg"):
        organ_label_ids("liver", "nnunet")
    assert CONVENTIONS == ("totalseg", "msd", "lits", "kits", "binary")


def test_vessel_ids_totalseg():
    ids = vessel_label_ids("totalseg")
    assert {52, 63, 64, 65, 66, 67, 68} <= set(ids)
    assert not {1, 2, 3, 5, 7, 51} & set(ids)  # organs and the heart are not vessels


def test_label_names():
    names = label_names("totalseg")
    assert names[5] == "liver" and names[205] == "liver_tumor"
    assert names[202] == "kidney_right_tumor" and names[203] == "kidney_left_tumor"
    assert names[64] == "portal_vein_and_splenic_vein"
    assert len(names) == 117 + 5
    assert label_names("lits") == {1: "liver", 2: "liver_tumor"}
    assert label_names("kits")[3] == "kidney_cyst"
    assert label_names("binary", "pancreas") == {1: "pancreas", 2: "pancreas_tumor"}


def test_stage_ranges():
    assert STAGES == ("tiny", "early", "intermediate", "advanced")
    assert stage_diameter_range("tiny", "liver") == (4.0, 8.0)
    assert stage_diameter_range("early", "kidney") == (8.0, 20.0)
    assert stage_diameter_range("intermediate", "liver") == (20.0, 50.0)
    assert stage_diameter_range("advanced", "liver") == (50.0, 100.0)
    assert stage_diameter_range("advanced", "pancreas") == (40.0, 80.0)
    assert stage_diameter_range("Advanced", "kidney_left") == (40.0, 80.0)
    with pytest.raises(InputError, match="unknown stage 'late'.*tiny, early"):
        stage_diameter_range("late", "liver")


def test_tnm_ranges():
    assert tnm_diameter_range("kidney", "T1a")[1] == 40.0
    assert tnm_diameter_range("kidney", "t1b") == (40.0, 70.0)
    assert tnm_diameter_range("kidney", "T2")[0] == 70.0
    assert tnm_diameter_range("pancreas", "T1")[1] == 20.0
    assert tnm_diameter_range("pancreas", "T3")[0] == 40.0
    assert tnm_diameter_range("liver", "<10") == tnm_diameter_range("liver", "LR-small") == (5.0, 10.0)
    assert tnm_diameter_range("liver", "10-19") == (10.0, 20.0)
    assert tnm_diameter_range("liver", ">=20")[0] == 20.0
    assert tnm_categories("pancreas") == ("T1", "T2", "T3")
    with pytest.raises(InputError, match="unknown size category 'T4'.*T1a, T1b, T2"):
        tnm_diameter_range("kidney", "T4")
    with pytest.raises(InputError, match="no TNM size categories for the spleen"):
        tnm_diameter_range("spleen", "T1")


def test_intensity_profiles():
    assert intensity_profile("liver").f_range == (0.35, 0.75)
    assert intensity_profile("pancreas").f_range == (0.30, 0.60)
    assert intensity_profile("kidney_right").f_range == (0.35, 0.70)


def _organ_scene(rng, spacing=(1.0, 1.0, 2.0)):
    """An organ block at 60 HU (noise sd 8) with fat at -100 and one bright vessel at 200."""
    shape = (60, 60, 30)
    img = np.full(shape, -100.0, dtype=np.float32)
    organ = np.zeros(shape, dtype=bool)
    organ[5:55, 5:55, 3:27] = True
    img[organ] = 60 + rng.normal(0, 8, organ.sum())
    img[28:31, 5:55, 14:16] = 200  # a vessel through the organ, labelled as organ
    fat = np.zeros(shape, bool)
    fat[5:10, 5:55, 3:27] = True  # fatty border inside the organ mask
    img[fat] = -80
    return img, organ


def test_parenchyma_stats_drops_fat_and_vessels():
    img, organ = _organ_scene(np.random.default_rng(0))
    before = img.copy()
    st = parenchyma_stats(img, organ, (30, 30, 15), (1.0, 1.0, 2.0), radius_mm=20)
    assert st.median_hu == pytest.approx(60, abs=1.5)
    assert st.mad_hu == pytest.approx(8, rel=0.15)  # scaled MAD estimates the noise sd
    assert st.vessel_threshold_hu == pytest.approx(st.median_hu + 3 * st.mad_hu)
    assert st.vessel_threshold_hu < 200
    assert st.n_voxels > 1000
    np.testing.assert_array_equal(img, before)


def test_parenchyma_stats_uses_only_the_ball():
    img, organ = _organ_scene(np.random.default_rng(1))
    img[:, :, :15][organ[:, :, :15]] += 100  # the far half is much brighter
    near = parenchyma_stats(img, organ, (30, 30, 25), (1.0, 1.0, 2.0), radius_mm=8)
    assert near.median_hu == pytest.approx(60, abs=2)


def test_parenchyma_stats_too_few_voxels():
    img, organ = _organ_scene(np.random.default_rng(2))
    with pytest.raises(InputError, match="organ parenchyma voxels.*within 5 mm"):
        parenchyma_stats(img, organ, (0, 0, 0), (1.0, 1.0, 2.0), radius_mm=5)


def test_parenchyma_stats_real_liver(example_ct_paths):
    nib = pytest.importorskip("nibabel")
    ct, seg = (nib.load(str(p)) for p in example_ct_paths)
    img = np.asarray(ct.dataobj)
    liver = np.asarray(seg.dataobj) == 5
    center = np.argwhere(liver).mean(axis=0)
    st = parenchyma_stats(img, liver, center, ct.header.get_zooms()[:3])
    assert 43 <= st.median_hu <= 49  # README: liver median ~46 HU (non-contrast)
    assert 5 <= st.mad_hu <= 20


@pytest.mark.parametrize("ids, convention, fits", [
    ((0, 5, 117), "totalseg", True),          # organs only
    ((0, 5, 205), "totalseg", True),          # a liver tumor id
    ((0, 5, 150), "totalseg", False),         # in the gap between organs and tumor ids
    ((0, 5, 206), "totalseg", False),         # 200 + an id that is no organ of a tumor
    ((0, 1, 2), "msd", True),
    ((0, 1, 3), "msd", False),
    ((0, 1, 2, 3), "kits", True),
])
def test_labelmap_check_finds_foreign_ids(ids, convention, fits):
    """The fast path (largest id, one look-up pass) agrees with the full list of ids."""
    from TumorSynthLib.anatomy.analysis import labelmap_array
    from TumorSynthLib.core.errors import ConventionError
    from TumorSynthLib.core.volume import Volume

    lab = np.zeros((6, 6, 6), dtype=np.int16)
    for n, i in enumerate(ids):
        lab[n, 0, 0] = i
    volume = Volume(lab, np.eye(4))
    if fits:
        _, conv = labelmap_array(volume, convention)
        assert conv == convention
    else:
        with pytest.raises(ConventionError, match=str(max(ids))):
            labelmap_array(volume, convention)
