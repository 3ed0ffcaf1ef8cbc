"""prepare_site: diameters, organ masks, clicks (inside / snapped / far / vessel), sampling,
size and overlap checks, region growing, the ROI arrays of the Site."""
from __future__ import annotations

import re

import numpy as np
import pytest
from scipy import ndimage

from TumorSynthLib.anatomy.analysis import ScanView, analyse_scan
from TumorSynthLib.anatomy.placement import prepare_site
from TumorSynthLib.anatomy.region import grow_organ_region, nearest_voxel, snap_to_organ
from TumorSynthLib.anatomy.site import TumorSpec
from TumorSynthLib.core.errors import InputError, PlacementError
from TumorSynthLib.core.volume import Volume

SPACING = (1.5, 1.5, 2.5)
LIVER_C = (52, 40, 22)


def roi_radius(d: float, stage: str) -> float:
    return 0.75 * d + 6.0


def _ellipsoid(shape, center, radii_mm):
    grids = np.ogrid[tuple(slice(0, n) for n in shape)]
    return sum(((g - c) * s / r) ** 2 for g, c, s, r in zip(grids, center, SPACING, radii_mm)) <= 1.0


@pytest.fixture(scope="module")
def scene():
    """(image, labels): liver 5 (60 HU, an unlabelled 200 HU vessel inside), kidneys 2 / 3
    (30 HU), aorta 52 (200 HU) between kidneys and liver, fat -100 HU; TotalSegmentator ids."""
    shape = (80, 80, 40)
    rng = np.random.default_rng(0)
    lab = np.zeros(shape, dtype=np.int16)
    lab[_ellipsoid(shape, LIVER_C, (30, 30, 35))] = 5
    lab[_ellipsoid(shape, (18, 22, 14), (12, 18, 20))] = 2
    lab[_ellipsoid(shape, (18, 58, 14), (12, 18, 20))] = 3
    i, j = np.ogrid[:80, :80]
    lab[((i - 28) ** 2 + (j - 40) ** 2 <= 9)[..., None] & np.ones(shape, bool)] = 52
    img = np.full(shape, -100.0, dtype=np.float32)
    img[lab == 5] = 60
    img[(lab == 2) | (lab == 3)] = 30
    img[lab == 52] = 200
    img += rng.normal(0, 8, shape).astype(np.float32)
    img[60:63, 30:50, 27:29] = 200  # bright unlabelled vessel inside the liver
    aff = np.diag([*SPACING, 1.0])
    aff[:3, 3] = (-60.0, -60.0, -50.0)
    return Volume(img, aff), Volume(lab, aff)


class _View(ScanView):
    """The input scan, with ``occupied`` (earlier synthetic tumors) laid over it."""

    def __init__(self, image, labels, conv, occupied=None):
        super().__init__(analyse_scan(image, labels, conv))
        self.occ = None if occupied is None else np.asarray(occupied) != 0

    def occupied_box(self, box):
        return super().occupied_box(box) if self.occ is None else self.occ[box.slices].copy()


def place(image, labels, spec, conv="totalseg", rng=0, occupied=None):
    return prepare_site(_View(image, labels, conv, occupied), spec, np.random.default_rng(rng),
                        roi_radius_mm=roi_radius)


def _site(scene, labels=True, rng=0, occupied=None, conv="totalseg", **kw):
    image, lab = scene
    return place(image, lab if labels else None, TumorSpec(**kw), conv, rng, occupied)


# -- diameter and stage ----------------------------------------------------------------------------
@pytest.mark.parametrize("value, match", [
    (float("nan"), "finite number > 0"), (-3.0, "finite number > 0"), (0.0, "finite number > 0"),
    (250.0, "absurd"), ("big", "must be a number"),
])
def test_bad_diameters(scene, value, match):
    with pytest.raises(InputError, match=match):
        _site(scene, center_voxel=LIVER_C, diameter_mm=value)


def test_unknown_stage_and_organ(scene):
    with pytest.raises(InputError, match="unknown stage 'huge'"):
        _site(scene, center_voxel=LIVER_C, stage="huge")
    with pytest.raises(InputError, match="unknown organ 'lung'"):
        _site(scene, organ="lung", center_voxel=LIVER_C)


def test_stage_default_diameter_is_drawn_and_recorded(scene):
    site = _site(scene, center_voxel=LIVER_C, stage="early", rng=5)
    assert 8.0 <= site.diameter_mm <= 20.0 and site.diameter_source == "stage-default"
    assert site.draws["diameter_mm"] == site.diameter_mm
    assert _site(scene, center_voxel=LIVER_C, stage="early", rng=5).diameter_mm == site.diameter_mm


def test_requested_diameter_outside_stage_warns(scene):
    site = _site(scene, center_voxel=LIVER_C, stage="tiny", diameter_mm=15.0)
    assert site.diameter_mm == 15.0 and site.diameter_source == "requested"
    assert any("outside the tiny range 4-8 mm" in w for w in site.warnings)
    assert _site(scene, center_voxel=LIVER_C, stage="early", diameter_mm=15.0).warnings == []


def test_tnm_category_sets_the_range(scene):
    site = _site(scene, center_voxel=LIVER_C, options={"tnm": "10-19"})
    assert site.diameter_source == "tnm" and 10.0 <= site.diameter_mm <= 20.0


# -- clicks ---------------------------------------------------------------------------------------
def test_click_inside_is_placed_exactly(scene):
    image, lab = scene
    click = image.voxel_to_ras((50.3, 41.6, 20.2))
    site = _site(scene, center_ras=tuple(click), diameter_mm=12.0)
    np.testing.assert_allclose(site.center_placed_ras, click, atol=1e-9)
    np.testing.assert_allclose(site.center_requested_ras, click, atol=1e-9)
    np.testing.assert_allclose(site.affine_roi[:3, :3] @ site.center_vox + site.affine_roi[:3, 3], click)
    assert site.warnings == [] and site.snap_distance_mm == 0.0
    assert site.organ == "liver" and site.organ_label_id == 5 and site.tumor_id == 205
    assert site.organ_source == "labels" and site.convention == "totalseg"
    for arr in (site.image_roi, site.labels_roi, site.organ_mask, site.vessel_mask, site.occupied):
        assert arr.shape == site.roi.shape
    assert site.image_roi.dtype == np.float32 and site.organ_mask.dtype == bool
    assert site.organ_mask[tuple(np.rint(site.center_vox).astype(int))]
    assert site.organ_median_hu == pytest.approx(60, abs=3)
    assert site.parenchyma.vessel_threshold_hu == pytest.approx(site.organ_median_hu + 3 * site.organ_mad_hu)
    assert site.allow_exophytic is False


def test_click_near_is_snapped(scene):
    image, _ = scene
    site = _site(scene, center_voxel=(73.2, 40.0, 22.0), diameter_mm=6.0, stage="tiny")
    np.testing.assert_allclose(site.center_placed_ras, image.voxel_to_ras((72, 40, 22)))
    assert site.snap_distance_mm == pytest.approx(1.8)
    assert any("snapped" in w for w in site.warnings)


def test_click_far_reports_distance_and_nearest_voxel(scene):
    image, _ = scene
    where = tuple(round(float(v), 1) for v in image.voxel_to_ras((72, 40, 22)))
    expected = f"9.0 mm from the nearest liver voxel (at RAS {where} mm)"
    with pytest.raises(PlacementError, match=re.escape(expected)):
        _site(scene, center_voxel=(78.0, 40.0, 22.0))


def test_click_outside_image(scene):
    with pytest.raises(PlacementError, match="outside the image"):
        _site(scene, center_ras=(500.0, 0.0, 0.0))


def test_click_on_labelled_vessel(scene):
    _, lab = scene
    liver = lab.array == 5
    dist = ndimage.distance_transform_edt(~liver, sampling=SPACING)
    aorta_near = np.argwhere((lab.array == 52) & (dist <= 2.9))
    assert len(aorta_near)
    with pytest.raises(PlacementError, match="on a vessel \\(a labelled vessel\\); click in the parenchyma"):
        _site(scene, center_voxel=tuple(float(v) for v in aorta_near[0]), diameter_mm=6.0)


def test_click_on_bright_vessel_inside_organ(scene):
    with pytest.raises(PlacementError, match="on a vessel \\(brighter than the vessel threshold"):
        _site(scene, center_voxel=(61.0, 40.0, 27.6), diameter_mm=6.0)


def test_kidney_click_picks_that_kidney(scene):
    left = _site(scene, organ="kidney", center_voxel=(18, 58, 14), options={"clip_to_organ": True})
    right = _site(scene, organ="kidney_right", center_voxel=(18, 22, 14))
    assert (left.organ_label_id, left.tumor_id) == (3, 203) and left.allow_exophytic is False
    assert (right.organ_label_id, right.tumor_id) == (2, 202)
    assert "exophytic_u" in right.draws
    assert right.allow_exophytic == (right.draws["exophytic_u"] < 0.5)
    assert not right.organ_mask[right.labels_roi == 3].any()  # only the clicked kidney


def test_clip_to_organ_false_allows_exophytic_anywhere(scene):
    assert _site(scene, center_voxel=LIVER_C, options={"clip_to_organ": False}).allow_exophytic


# -- organ presence and size ------------------------------------------------------------------------
def test_absent_organ_names_organ_convention_and_ids(scene):
    with pytest.raises(PlacementError, match=r"pancreas is absent.*totalseg.*\[7\].*ids found: \[2, 3, 5, 52\]"):
        _site(scene, organ="pancreas")
    with pytest.raises(PlacementError, match=r"pancreas is absent.*ids found: \[2, 3, 5, 52\]"):
        _site(scene, organ="pancreas", center_voxel=LIVER_C)


def test_tumor_larger_than_organ(scene):
    with pytest.raises(PlacementError, match=r"than 0.8 x the liver volume \(13\d\.\d ml\); the largest allowed diameter here is 5\d\.\d mm"):
        _site(scene, center_voxel=LIVER_C, diameter_mm=70.0, stage="advanced")
    assert _site(scene, center_voxel=LIVER_C, diameter_mm=55.0, stage="advanced").diameter_mm == 55.0


def test_drawn_diameter_too_big_for_organ_is_capped(scene):
    """A stage-default size larger than the organ allows is capped, not refused."""
    site = _site(scene, rng=3, center_voxel=(18, 22, 14), organ="kidney", stage="advanced")
    largest = (6 * 0.8 * site.organ_volume_ml * 1000 / np.pi) ** (1 / 3)
    assert site.diameter_mm == pytest.approx(largest)
    assert site.draws["diameter_mm"] > largest
    assert any("capped" in w for w in site.warnings)


def test_overlap_with_earlier_tumor(scene):
    image, _ = scene
    occ = np.zeros(image.shape, dtype=np.int16)
    occ[52, 40, 25] = 1  # 7.5 mm above the centre
    with pytest.raises(PlacementError, match="overlap an earlier tumor or lesion 7.5 mm from its centre"):
        _site(scene, center_voxel=LIVER_C, diameter_mm=16.0, occupied=occ)
    site = _site(scene, center_voxel=LIVER_C, diameter_mm=12.0, occupied=occ)
    assert site.occupied.sum() == 1


def test_existing_lesion_is_organ_but_occupied(scene):
    image, lab = scene
    lits = np.where(lab.array == 5, 1, 0).astype(np.int16)
    lits[50:55, 38:43, 20:24] = 2
    site = place(image, lab.with_array(lits), TumorSpec(center_voxel=(46, 40, 22), diameter_mm=8.0), "lits")
    assert (site.organ_label_id, site.tumor_id) == (1, 2)
    assert site.occupied.sum() == 5 * 5 * 4 and not (site.occupied & ~site.organ_mask).any()
    with pytest.raises(PlacementError, match="overlap an earlier tumor"):
        place(image, lab.with_array(lits), TumorSpec(center_voxel=(52, 40, 22), diameter_mm=8.0), "lits")


# -- sampling -------------------------------------------------------------------------------------
def test_sampled_placement_is_deterministic_and_keeps_off_the_surface(scene):
    image, lab = scene
    liver = lab.array == 5
    surface = ndimage.distance_transform_edt(np.pad(liver, 1), sampling=SPACING)[1:-1, 1:-1, 1:-1]
    centers = []
    for seed in range(6):
        a = _site(scene, rng=seed, stage="intermediate")
        b = _site(scene, rng=seed, stage="intermediate")
        assert a.center_placed_ras == b.center_placed_ras and a.diameter_mm == b.diameter_mm
        v = tuple(int(x) for x in a.draws["center_voxel"])
        assert liver[v] and surface[v] >= min(a.diameter_mm / 2, 5.0)
        assert image.array[v] <= a.parenchyma.vessel_threshold_hu + 30
        assert a.center_requested_ras is None and a.placement == "sampled"
        centers.append(v)
    assert len(set(centers)) > 3


def test_sampled_liver_stays_in_the_central_band(scene):
    image, lab = scene
    k = np.nonzero(lab.array == 5)[2]
    lo, hi = k.min(), k.max()
    for seed in range(5):
        v = _site(scene, rng=seed, diameter_mm=6.0, stage="tiny").draws["center_voxel"]
        assert lo + 0.3 * (hi - lo) <= v[2] <= lo + 0.7 * (hi - lo)
    v = _site(scene, rng=0, diameter_mm=6.0, stage="tiny", options={"liver_cc_range": (0.0, 0.2)})
    assert v.draws["center_voxel"][2] <= lo + 0.2 * (hi - lo)
    with pytest.raises(InputError, match="liver_cc_range"):
        _site(scene, rng=0, options={"liver_cc_range": (0.7, 0.3)})


def test_sampled_placement_avoids_earlier_tumors(scene):
    image, lab = scene
    occ = np.zeros(image.shape, dtype=bool)
    occ[40:64, 28:52, 12:32] = lab.array[40:64, 28:52, 12:32] == 5
    for seed in range(4):
        site = _site(scene, rng=seed, diameter_mm=10.0, occupied=occ, options={"liver_cc_range": (0, 1)})
        v = np.array(site.draws["center_voxel"])
        d = np.sqrt((((np.argwhere(occ) - v) * SPACING) ** 2).sum(axis=1)).min()
        assert d > 5.0


def test_sampled_kidney_chooses_a_present_kidney(scene):
    ids = {_site(scene, organ="kidney", rng=s).organ_label_id for s in range(8)}
    assert ids == {2, 3}
    image, lab = scene
    only_left = np.where(lab.array == 2, 0, lab.array).astype(np.int16)
    for s in range(3):
        site = place(image, lab.with_array(only_left), TumorSpec(organ="kidney"), rng=s)
        assert site.organ_label_id == 3


def test_no_labels_and_no_click(scene):
    with pytest.raises(PlacementError, match="no organ labels and no click"):
        _site(scene, labels=False)


def test_no_room_for_sampling(scene):
    image, lab = scene
    with pytest.raises(PlacementError, match="no place in the kidney"):
        _site(scene, organ="kidney", diameter_mm=30.0, occupied=(lab.array == 2) | (lab.array == 3))


# -- region growing ---------------------------------------------------------------------------------
def test_region_grown_from_click(scene):
    image, lab = scene
    site = _site(scene, labels=False, center_voxel=LIVER_C, diameter_mm=15.0)
    assert site.organ_source == "region-grown" and site.tumor_id == 205
    assert site.labels_roi.dtype == np.int16 and not site.labels_roi.any()
    liver_roi = lab.array[site.roi.slices] == 5
    assert (site.organ_mask & liver_roi).sum() >= 0.95 * site.organ_mask.sum()
    assert (site.organ_mask & liver_roi).sum() >= 0.8 * liver_roi.sum()
    kidney = _site(scene, labels=False, organ="kidney", center_voxel=(18, 58, 14), diameter_mm=10.0)
    assert kidney.tumor_id == 203  # left of the image centre in RAS


def test_region_growing_on_real_ct(example_ct_paths):
    nib = pytest.importorskip("nibabel")
    ct, seg = (nib.load(str(p)) for p in example_ct_paths)
    img = np.asarray(ct.dataobj)
    liver = np.asarray(seg.dataobj) == 5
    center = np.argwhere(liver).mean(axis=0)
    view = ScanView(analyse_scan(Volume(img, ct.affine), None, "totalseg"))
    grown = grow_organ_region(view, center, "liver")
    inside = liver[grown.box.slices] & grown.mask
    assert grown.mask.sum() > 5000
    assert inside.sum() >= 0.65 * grown.mask.sum()  # non-contrast CT: some leak into IVC / bowel


def test_real_ct_sites(example_ct_paths):
    nib = pytest.importorskip("nibabel")
    ct, seg = (nib.load(str(p)) for p in example_ct_paths)
    image = Volume(np.asarray(ct.dataobj), ct.affine)
    labels = Volume(np.asarray(seg.dataobj).astype(np.int16), ct.affine)
    for organ in ("liver", "pancreas", "kidney"):
        site = place(image, labels, TumorSpec(organ=organ, stage="early"), rng=1)
        assert site.organ_mask[tuple(np.rint(site.center_vox).astype(int))]
    liver = place(image, labels, TumorSpec(center_voxel=(81, 58, 99), diameter_mm=15.0), rng=1)
    assert 40 <= liver.organ_median_hu <= 52


# -- helpers and inputs -----------------------------------------------------------------------------
def test_geometry_helpers():
    mask = np.zeros((10, 10, 10), dtype=bool)
    mask[5:, :, :] = True
    assert nearest_voxel(np.zeros((3, 3, 3), bool), (1, 1, 1), (1, 1, 1)) is None
    vox, dist = nearest_voxel(mask, (2.0, 4.0, 4.0), (2.0, 1.0, 1.0))
    assert tuple(vox) == (5, 4, 4) and dist == pytest.approx(6.0)
    assert snap_to_organ(mask, (3.0, 4.0, 4.0), (1.0, 1.0, 1.0))[1] == pytest.approx(2.0)
    assert snap_to_organ(mask, (3.0, 4.0, 4.0), (2.0, 1.0, 1.0)) is None  # 4 mm > 3 mm
    p, d = snap_to_organ(mask, (6.2, 4.4, 4.0), (1, 1, 1))
    assert d == 0.0 and tuple(p) == (6.2, 4.4, 4.0)


def test_inputs_are_never_modified(scene):
    image, lab = scene
    img_before, lab_before = image.array.copy(), lab.array.copy()
    occ = np.zeros(image.shape, dtype=np.int16)
    occ[10, 10, 10] = 1
    occ_before = occ.copy()
    site = _site(scene, center_voxel=LIVER_C, occupied=occ)
    site.image_roi[:] = 0
    site.labels_roi[:] = 0
    _site(scene, rng=3, occupied=occ)
    _site(scene, labels=False, center_voxel=LIVER_C)
    np.testing.assert_array_equal(image.array, img_before)
    np.testing.assert_array_equal(lab.array, lab_before)
    np.testing.assert_array_equal(occ, occ_before)


def test_liver_band_follows_ras_superior_on_a_flipped_grid(scene):
    image, lab = scene
    aff = image.affine.copy()
    aff[2, 2], aff[2, 3] = -2.5, 50.0  # k now runs from superior to inferior
    img_f, lab_f = Volume(image.array, aff), Volume(lab.array, aff)
    k = np.nonzero(lab.array == 5)[2]
    lo, hi = k.min(), k.max()
    for seed in range(3):
        site = place(img_f, lab_f, TumorSpec(diameter_mm=6.0, stage="tiny", options={"liver_cc_range": (0.0, 0.2)}),
                     rng=seed)
        v = site.draws["center_voxel"]
        assert v[2] >= hi - 0.2 * (hi - lo)  # inferior = high k on this grid
