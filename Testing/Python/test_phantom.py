"""The procedural abdominal phantom: grid, determinism, anatomy (sizes, sides) and HU per phase."""
from __future__ import annotations

import json

import numpy as np
import pytest

from TumorSynthLib.core.errors import InputError
from TumorSynthLib.phantom import make_abdomen

SMALL = dict(shape=(96, 96, 40), spacing=(3.75, 3.75, 6.0))
LIVER, SPLEEN, KIDNEY_R, KIDNEY_L, PANCREAS = 5, 1, 2, 3, 7
AORTA, IVC, PORTAL = 52, 63, 64


def volume_ml(labels, label_id: int) -> float:
    return float(np.count_nonzero(labels.array == label_id) * np.prod(labels.spacing) / 1000.0)


def longest_extent_mm(labels, label_id: int) -> float:
    """Extent (mm) of an organ along its principal axis."""
    pts = np.argwhere(labels.array == label_id) * labels.spacing
    pts -= pts.mean(axis=0)
    axis = np.linalg.svd(pts, full_matrices=False)[2][0]
    return float(np.ptp(pts @ axis))


def centroid_ras(labels, label_id: int) -> np.ndarray:
    return labels.voxel_to_ras(np.argwhere(labels.array == label_id).mean(axis=0))


def median_hu(ct, labels, label_id: int) -> float:
    """Median HU of an organ away from its edge (no partial volume with the surroundings)."""
    from scipy import ndimage

    return float(np.median(ct.array[ndimage.binary_erosion(labels.array == label_id)]))


def test_grid_dtypes_metadata_and_centred_ras_affine(phantom_small):
    ct, organs, names = phantom_small
    assert ct.shape == organs.shape == (96, 96, 40)
    assert ct.array.dtype == np.float32 and organs.array.dtype == np.int16
    np.testing.assert_allclose(ct.affine, organs.affine)
    np.testing.assert_allclose(ct.affine[:3, :3], np.diag([3.75, 3.75, 6.0]))
    np.testing.assert_allclose(ct.voxel_to_ras([47.5, 47.5, 19.5]), [0, 0, 0], atol=1e-9)
    for vol in (ct, organs):
        assert vol.metadata == {"case_id": "phantom-0", "source": "TumorSynth phantom",
                                "phase": "venous"}
    present = set(np.unique(organs.array).tolist()) - {0}
    assert present == set(names)
    assert {LIVER, SPLEEN, KIDNEY_R, KIDNEY_L, PANCREAS, AORTA, IVC, PORTAL} <= present


def test_default_grid(phantom_default):
    ct, organs, _ = phantom_default
    assert ct.shape == organs.shape == (256, 256, 96)
    np.testing.assert_allclose(ct.spacing, [1.4, 1.4, 2.5])
    assert ct.array[0, 0, 0] < -900  # air outside the body
    assert ct.array.min() >= -1024 and ct.array.max() <= 3071


def test_label_names_follow_totalsegmentator_v2(phantom_small, example_ct_paths):
    names = phantom_small[2]
    table = json.loads((example_ct_paths[0].parent / "labels_total_v2.json").read_text())
    for label_id, name in names.items():
        assert table[str(label_id)] == name


def test_same_seed_same_bytes_other_seed_other_patient(phantom_small):
    ct, organs, names = make_abdomen(seed=0, **SMALL)
    assert ct.array.tobytes() == phantom_small[0].array.tobytes()
    assert organs.array.tobytes() == phantom_small[1].array.tobytes()
    assert names == phantom_small[2]
    ct1, organs1, _ = make_abdomen(seed=1, **SMALL)
    liver0, liver1 = organs.array == LIVER, organs1.array == LIVER
    dice = 2 * np.count_nonzero(liver0 & liver1) / (liver0.sum() + liver1.sum())
    assert dice < 0.97
    assert abs(volume_ml(organs, SPLEEN) - volume_ml(organs1, SPLEEN)) > 1.0
    assert not np.array_equal(ct.array, ct1.array)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_organ_sizes_are_adult(seed, phantom_small):
    organs = phantom_small[1] if seed == 0 else make_abdomen(seed=seed, **SMALL)[1]
    assert 1200 <= volume_ml(organs, LIVER) <= 1900
    assert 100 <= volume_ml(organs, SPLEEN) <= 350
    assert 40 <= volume_ml(organs, PANCREAS) <= 120
    for kidney in (KIDNEY_R, KIDNEY_L):
        assert 90 <= volume_ml(organs, kidney) <= 250
        assert 90 <= longest_extent_mm(organs, kidney) <= 135
    assert 95 <= longest_extent_mm(organs, SPLEEN) <= 145
    assert 100 <= longest_extent_mm(organs, PANCREAS) <= 200


def test_organs_sit_on_the_same_sides_as_in_the_real_ct(phantom_small, example_ct_paths):
    import nibabel as nib

    from TumorSynthLib.core.volume import Volume

    real = nib.load(str(example_ct_paths[1]))
    real_labels = Volume(np.asarray(real.dataobj).astype(np.int16), real.affine)
    organs = phantom_small[1]
    for organ in (LIVER, SPLEEN, KIDNEY_R, KIDNEY_L, AORTA, IVC):
        assert np.sign(centroid_ras(organs, organ)[0]) == np.sign(centroid_ras(real_labels, organ)[0])
    assert centroid_ras(organs, LIVER)[0] > 0  # RAS: +x is the patient's right
    assert centroid_ras(organs, AORTA)[0] < centroid_ras(organs, IVC)[0]
    assert centroid_ras(organs, LIVER)[2] > centroid_ras(organs, KIDNEY_R)[2]


def test_portal_vein_branches_are_labelled_inside_the_liver(phantom_default):
    ct, organs, _ = phantom_default
    from scipy import ndimage

    liver = organs.array == LIVER
    portal_in_liver = (organs.array == PORTAL) & ndimage.binary_erosion(
        ndimage.binary_fill_holes(liver | (organs.array == PORTAL)), iterations=3)
    assert portal_in_liver.sum() * np.prod(ct.spacing) > 5000  # > 5 ml of branches
    assert np.median(ct.array[portal_in_liver]) > median_hu(ct, organs, LIVER) + 40


@pytest.mark.parametrize("phase, expected", [
    ("venous", {LIVER: (95, 125), SPLEEN: (105, 135), KIDNEY_R: (140, 180),
                PANCREAS: (85, 115), AORTA: (150, 200)}),
    ("noncontrast", {LIVER: (45, 65), SPLEEN: (35, 55), KIDNEY_R: (20, 40),
                     PANCREAS: (30, 50), AORTA: (30, 55)}),
])
def test_median_hu_by_organ_and_phase(phase, expected, phantom_small):
    ct, organs, _ = phantom_small if phase == "venous" else make_abdomen(seed=0, phase=phase, **SMALL)
    if phase != "venous":
        np.testing.assert_array_equal(organs.array, phantom_small[1].array)  # same anatomy
        assert ct.metadata["phase"] == "noncontrast"
    for organ, (lo, hi) in expected.items():
        assert lo <= median_hu(ct, organs, organ) <= hi, organ
    fat = ct.array[(organs.array == 0) & (ct.array < -50) & (ct.array > -200)]
    assert -115 <= np.median(fat) <= -80
    bone = ct.array[organs.array == 30]  # vertebra L2
    assert np.percentile(bone, 90) > 300


def test_noise_is_about_twelve_hu(phantom_default):
    from scipy import ndimage

    ct, organs, _ = phantom_default
    core = ndimage.binary_erosion(organs.array == LIVER, iterations=3)
    values = ct.array[core]
    values = values[np.abs(values - np.median(values)) < 60]  # drop small vessels
    assert 8.0 <= values.std() <= 18.0


def test_bad_arguments_say_what_to_do():
    with pytest.raises(InputError, match="phase"):
        make_abdomen(phase="arterial", **SMALL)
    with pytest.raises(InputError, match="shape"):
        make_abdomen(shape=(0, 10, 10))
    with pytest.raises(InputError, match="spacing"):
        make_abdomen(spacing=(1.0, -1.0, 1.0))
    with pytest.raises(InputError, match="seed"):
        make_abdomen(seed=-1, **SMALL)


@pytest.mark.parametrize("shape, spacing", [((1, 1, 1), (1.0, 1.0, 1.0)),
                                            ((32, 24, 6), (12.0, 15.0, 40.0))])
def test_tiny_and_coarse_grids_work(shape, spacing):
    ct, organs, names = make_abdomen(seed=5, shape=shape, spacing=spacing, phase="noncontrast")
    assert ct.shape == organs.shape == shape
    assert np.all(np.isfinite(ct.array))
    assert set(names) == set(np.unique(organs.array).tolist()) - {0}


def test_calibration_lesion_sits_in_parenchyma_not_in_the_sinus():
    from TumorSynthLib.core.volume import Volume
    from TumorSynthLib.phantom.lesions import add_sphere_lesion, lesion_centre

    kidney = np.zeros((60, 60, 60), bool)
    kidney[5:55, 5:55, 5:55] = True
    image = np.full(kidney.shape, -100.0, np.float32)
    image[kidney] = 160.0
    image[20:40, 20:40, 20:40] = -90.0          # sinus fat inside the kidney label, where it is deepest
    spacing = (1.0, 1.0, 1.0)
    deepest = lesion_centre(kidney, spacing, 12.0)
    placed = lesion_centre(kidney, spacing, 12.0, np.random.default_rng(0), image=image)
    assert image[deepest] < 0 and image[placed] == 160.0
    ct = Volume(image, np.eye(4))
    lesion, mask = add_sphere_lesion(ct, kidney, placed, 12.0, 40.0)
    assert np.all(image[mask] == 160.0)         # the whole sphere in parenchyma
    assert np.asarray(lesion.array)[placed] == pytest.approx(120.0, abs=0.5)
    assert np.array_equal(np.asarray(ct.array), image)
    liver = np.zeros((64, 64, 64), bool)
    liver[2:62, 2:62, 2:62] = True
    noisy = np.where(liver, 110.0, -100.0) + np.random.default_rng(1).normal(0.0, 15.0, liver.shape)
    spots = {lesion_centre(liver, spacing, 30.0, np.random.default_rng(s), image=noisy) for s in range(5)}
    assert len(spots) == 5                        # noise voxels beyond the window cut no holes
    with pytest.raises(InputError, match="one grid"):
        lesion_centre(liver, spacing, 30.0, image=noisy[:-1])
