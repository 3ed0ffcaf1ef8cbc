"""DICOM export: CT series + SEG round trip (same voxels, same segments), synthetic marking,
geometry, burned-in mark, determinism, and the export-dicom command."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

pydicom = pytest.importorskip("pydicom")
pytest.importorskip("highdicom", reason="highdicom is needed for the DICOM SEG export")

from TumorSynthLib import InputError, TumorSpec, synthesize  # noqa: E402
from TumorSynthLib.cli import main  # noqa: E402
from TumorSynthLib.core.volume import Volume  # noqa: E402
from TumorSynthLib.core.volume_io import load_volume  # noqa: E402
from TumorSynthLib.datasets.burn_in import MARK_HU, mark_mask  # noqa: E402
from TumorSynthLib.datasets.dicom_export import (  # noqa: E402
    NEOPLASM_CATEGORY, NEOPLASM_TYPE, ORGAN_CODES, SYNTHETIC_SERIES_DESCRIPTION, SeriesText,
    TumorSegment, export_case, stored_volume,
)
from TumorSynthLib.datasets.dicom_segments import (  # noqa: E402
    read_seg_masks, segments_from_instances, segments_from_labels,
)


@pytest.fixture(scope="module")
def case(phantom_small):
    ct, organs, _ = phantom_small
    ct = ct.with_array(np.rint(ct.array).astype(np.int16))
    specs = [TumorSpec(organ="liver", diameter_mm=25.0, seed=1), TumorSpec(organ="kidney", diameter_mm=18.0, seed=2)]
    return synthesize(ct, organs, specs, "totalseg", case_id="dicom")


def on_grid(back: Volume, image: Volume, array: np.ndarray | None = None) -> np.ndarray:
    """``back``'s values (or ``array`` on ``back``'s grid) at ``image``'s voxels: the stored grid
    differs from the exported one by axis flips only, so every index maps to a whole index."""
    idx = np.indices(image.shape).reshape(3, -1).T
    ijk = back.ras_to_voxel(image.voxel_to_ras(idx))
    assert np.allclose(ijk, np.rint(ijk), atol=1e-3)
    values = back.array if array is None else array
    return values[tuple(np.rint(ijk).astype(int).T)].reshape(image.shape)


def _headers(folder: Path) -> list:
    return [pydicom.dcmread(str(p)) for p in sorted(folder.glob("*.dcm"))]


def test_ct_and_seg_round_trip_same_voxels_and_segments(case, tmp_path):
    segments = segments_from_instances(case.tumor_instances, case.reports)
    before = case.image.array.copy()
    result = export_case(case.image, segments, tmp_path / "dcm", text=SeriesText(burn_in=False))
    back = load_volume(tmp_path / "dcm" / "ct")
    assert np.array_equal(case.image.array, before)                          # input untouched
    assert back.shape == case.image.shape
    assert np.allclose(back.affine, stored_volume(case.image).affine, atol=1e-4)
    assert np.array_equal(on_grid(back, case.image), case.image.array)          # same voxels in space
    assert back.metadata["synthetic"] is True                                  # the reader sees the mark
    read = read_seg_masks(result.seg_file, tmp_path / "dcm" / "ct")
    assert [r["label"] for r in read] == [s.label for s in segments] == ["Tumor 1 (liver, 25 mm)", "Tumor 2 (kidney, 18 mm)"]
    for r, s in zip(read, segments):
        assert np.array_equal(on_grid(back, case.image, r["mask"]), s.mask) and s.mask.sum() > 10
        assert r["property_category"] == NEOPLASM_CATEGORY[0] and r["property_type"] == NEOPLASM_TYPE[0]
        assert r["anatomic_region"] == ORGAN_CODES[s.organ][0]
    ds = _headers(tmp_path / "dcm" / "ct")
    first = ds[0]
    assert first.SeriesDescription == SYNTHETIC_SERIES_DESCRIPTION == "SYNTHETIC TUMOR - not for diagnosis"
    assert list(first.ImageType)[:2] == ["DERIVED", "SECONDARY"] and "SYNTHETIC" in first.ImageComments
    assert first.BurnedInAnnotation == "NO" and str(first.PatientName).startswith("SYNTHETIC")
    # stored for display: columns toward the patient's left, rows toward posterior (anterior up)
    assert [float(v) for v in first.ImageOrientationPatient] == [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    assert len({d.SOPInstanceUID for d in ds}) == len(ds) == case.image.shape[2]
    seg = pydicom.dcmread(str(result.seg_file))
    assert seg.Modality == "SEG" and seg.FrameOfReferenceUID == first.FrameOfReferenceUID
    assert seg.StudyInstanceUID == first.StudyInstanceUID
    referenced = {i.ReferencedSOPInstanceUID for s in seg.ReferencedSeriesSequence for i in s.ReferencedInstanceSequence}
    assert referenced <= {d.SOPInstanceUID for d in ds}


def test_segments_from_written_labels_match_the_instances(case):
    from_labels = segments_from_labels(case.labels, case.reports)
    from_instances = segments_from_instances(case.tumor_instances, case.reports)
    assert [s.label for s in from_labels] == [s.label for s in from_instances]
    for a, b in zip(from_labels, from_instances):
        assert np.array_equal(a.mask, b.mask) and a.organ == b.organ
    names = {int(k): v for k, v in case.label_names.items()}
    assert [s.organ for s in segments_from_labels(case.labels, [], names)] == ["kidney", "liver"]
    with pytest.raises(InputError, match="no tumor voxels"):
        segments_from_labels(case.labels.with_array(np.zeros(case.labels.shape, np.int16)), [], names)


def test_oblique_grid_with_reversed_slices_keeps_positions(tmp_path):
    rng = np.random.default_rng(0)
    a = np.deg2rad(15)
    affine = np.eye(4)
    affine[:3, :3] = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]]) @ np.diag([0.7, 0.9, -2.0])
    affine[:3, 3] = [10.0, -20.0, 40.0]
    image = Volume(rng.integers(-1000, 1500, size=(40, 30, 12)).astype(np.int16), affine)
    mask = np.zeros(image.shape, dtype=bool)
    mask[10:20, 5:15, 2:5] = True
    export_case(image, [TumorSegment("Tumor 1", mask, "pancreas")], tmp_path, text=SeriesText(burn_in=False))
    back = load_volume(tmp_path / "ct")
    stored = stored_volume(image)
    assert stored is not image                                         # k was flipped for storage
    assert np.allclose(back.affine, stored.affine, atol=1e-4) and np.array_equal(back.array, stored.array)
    # the same world position holds the same value in both
    for ijk in ([0, 0, 0], [39, 29, 11], [12, 7, 3]):
        ras = image.voxel_to_ras(ijk)
        assert back.array[tuple(np.rint(back.ras_to_voxel(ras)).astype(int))] == image.array[tuple(ijk)]
    seg = read_seg_masks(tmp_path / "seg" / "tumors.dcm", tmp_path / "ct")[0]
    assert np.array_equal(on_grid(back, image, seg["mask"]), mask) and seg["anatomic_region"] == "15776009"


def test_burned_in_mark_is_in_every_slice_and_nowhere_else(case, tmp_path):
    segments = segments_from_instances(case.tumor_instances, case.reports)
    export_case(case.image, segments, tmp_path, text=SeriesText(burn_in=True))
    back = load_volume(tmp_path / "ct")
    stored = stored_volume(case.image)
    where = mark_mask(stored.shape[1], stored.shape[0]).T               # [row, col] -> [i, j]
    assert where.any() and where[:40, :20].any() and not where[-40:, -20:].any()   # top-left corner
    for k in range(back.shape[2]):
        assert np.count_nonzero(back.array[:, :, k][where] == MARK_HU) > 20
        assert np.array_equal(back.array[:, :, k][~where], stored.array[:, :, k][~where])
    assert _headers(tmp_path / "ct")[0].BurnedInAnnotation == "YES"


def test_same_case_same_bytes_new_seed_new_uids(case, tmp_path):
    segments = segments_from_instances(case.tumor_instances, case.reports)
    a = export_case(case.image, segments, tmp_path / "a")
    b = export_case(case.image, segments, tmp_path / "b")
    for path in (tmp_path / "a").rglob("*.dcm"):
        assert path.read_bytes() == (tmp_path / "b" / path.relative_to(tmp_path / "a")).read_bytes()
    c = export_case(case.image, segments, tmp_path / "c", seed=1)
    assert a.series_uid == b.series_uid != c.series_uid and a.study_uid != c.study_uid


def test_float_images_are_rounded_and_values_must_fit(tmp_path):
    image = Volume(np.full((8, 8, 3), 40.4, dtype=np.float32), np.eye(4))
    export_case(image, [], tmp_path / "f", with_seg=False, text=SeriesText(burn_in=False))
    assert np.all(load_volume(tmp_path / "f" / "ct").array == 40)
    with pytest.raises(InputError, match="do not fit"):
        export_case(image.with_array(np.full((8, 8, 3), 1e6)), [], tmp_path / "g", with_seg=False)


def test_snomed_codes_are_those_of_the_slicer_module(repo_root):
    text = (repo_root / "TumorSynth" / "TumorSynthSlicer" / "segment_logic.py").read_text()
    for organ, (code, _scheme, meaning) in ORGAN_CODES.items():
        assert f'"{organ}": "SCT^{code}^{meaning}"' in text
    assert "from TumorSynthLib.synthesis.lesion_types import SNOMED_CATEGORY, SNOMED_NEOPLASM" in text  # one source


def test_cysts_are_named_and_coded_as_cysts(case):
    """A benign lesion's segment says what it is: "Cyst 2 (...)", SNOMED Cyst (not Neoplasm)."""
    reports = [dict(r) for r in case.reports]
    reports[-1]["lesion"] = "cyst"
    segments = segments_from_instances(case.tumor_instances, reports)
    assert segments[0].label.startswith("Tumor 1") and segments[0].property_type == NEOPLASM_TYPE
    assert segments[-1].label.startswith(f"Cyst {len(segments)}") and segments[-1].property_type[0] == "367643001"


def test_export_dicom_command_on_a_case_folder(case, tmp_path, capsys):
    from TumorSynthLib.cli.synth import write_case

    write_case(tmp_path / "case", case, command=["test"], inputs={})
    out = tmp_path / "out"
    assert main(["export-dicom", "--case", str(tmp_path / "case"), "--out", str(out)]) == 0
    info = json.loads((out / "export.json").read_text())
    assert info["synthetic"] is True and info["ct_series"]["burned_in_mark"] is True
    assert [s["organ"] for s in info["seg"]["segments"]] == ["liver", "kidney"]
    assert len(list((out / "ct").glob("IM*.dcm"))) == case.image.shape[2]
    assert re.match(r"^2\.25\.\d+$", info["study_uid"])
    assert main(["export-dicom", "--image", str(tmp_path / "case" / "image.nii.gz"), "--out", str(out)]) == 2
    assert "--labels" in capsys.readouterr().err
