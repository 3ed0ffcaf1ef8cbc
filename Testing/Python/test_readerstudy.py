"""Reader study: make (blinding, files, key) and score (hand-computed figures and intervals).

Phantoms with known answers: "real" tumor cases are phantom scans with a tumor written as a
plain image/label pair (no report, not marked synthetic: a stand-in for real tumors, the only
kind a test can ship), a healthy real case is the phantom itself, synthetic cases are
``generate``-style folders with ``report.json``.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from TumorSynthLib import InputError, TumorSpec, synthesize
from TumorSynthLib.cli import main
from TumorSynthLib.core.volume import Volume
from TumorSynthLib.core.volume_io import load_volume, save_volume
from TumorSynthLib.datasets.outputs import output_paths, write_case
from TumorSynthLib.datasets.readerstudy import (
    CUBE_VOXELS, NEUTRAL_NOTE, StudyConfig, blind_crop, case_sidecar, make_study,
)
from TumorSynthLib.datasets.readerstudy_cases import organ_point
from TumorSynthLib.datasets.readerstudy_score import (
    fleiss_kappa, read_answers, score_study, wilson_interval,
)


# -- sources on the phantom -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def sources(phantom_small, tmp_path_factory):
    ct, organs, _names = phantom_small
    ct = ct.with_array(np.rint(ct.array).astype(np.int16))
    root = tmp_path_factory.mktemp("sources")
    real = root / "real"
    for n, (organ, diameter) in enumerate((("liver", 30.0), ("kidney", 22.0)), start=1):
        res = synthesize(ct, organs, [TumorSpec(organ=organ, diameter_mm=diameter, method="cellular",
                                                seed=10 + n)], "totalseg", case_id=f"r{n}")
        save_volume(res.image, real / f"patient{n}.nii.gz")                 # plain pair, no report
        save_volume(res.labels, real / f"patient{n}_label.nii.gz")
    save_volume(ct, real / "healthy1.nii.gz")
    save_volume(organs, real / "healthy1_label.nii.gz")
    synth = root / "synth"
    for n, (organ, diameter) in enumerate((("liver", 25.0), ("kidney", 18.0)), start=1):
        res = synthesize(ct, organs, [TumorSpec(organ=organ, diameter_mm=diameter, seed=n)], "totalseg",
                         case_id=f"s{n}")
        write_case(output_paths(synth, f"s{n}_v0", "folders"), res, {"name": f"s{n}_v0", "case_id": f"s{n}"})
    return root


@pytest.fixture(scope="module")
def study(sources, tmp_path_factory):
    out = tmp_path_factory.mktemp("study") / "study"
    config = StudyConfig(out=str(out), real=[str(sources / "real")], synthetic=[str(sources / "synth")],
                         readers=["alice", "bob"], seed=3)
    summary = make_study(config)
    return out, Path(summary["key"]), summary


def test_make_writes_cases_sheets_and_a_key_outside_the_folder(study):
    out, key_path, summary = study
    assert (summary["real-tumor"], summary["real-healthy"], summary["synthetic"]) == (2, 1, 2)
    assert key_path == out.parent / "study-key.json" and out not in key_path.parents
    key = json.loads(key_path.read_text())["cases"]
    ids = sorted(key)
    assert ids == [f"case-{n:03d}" for n in range(1, 6)]
    assert sorted(p.name for p in (out / "cases").iterdir()) == sorted(
        [f"{i}.nii" for i in ids] + [f"{i}.json" for i in ids])
    kinds = sorted(key[i]["kind"] for i in ids)
    assert kinds == ["real-healthy", "real-tumor", "real-tumor", "synthetic", "synthetic"]
    tumors = {key[i]["organ"]: key[i]["diameter_mm"] for i in ids if key[i]["kind"] == "real-tumor"}
    assert set(tumors) == {"liver", "kidney"} and all(10.0 < d < 40.0 for d in tumors.values())
    for reader in ("alice", "bob"):
        rows = list(csv.reader((out / f"answers-{reader}.csv").open()))
        assert rows[0] == ["case_id", "answer", "confidence", "reading_time_s"]
        assert sorted(r[0] for r in rows[1:]) == ids and all(r[1:] == ["", "", ""] for r in rows[1:])
    study_json = json.loads((out / "study.json").read_text())
    assert study_json["cases"] == ids and study_json["answer_sheets"]["bob"] == "answers-bob.csv"


def test_blinded_files_carry_no_trace_of_the_truth(study, sources):
    out, key_path, _ = study
    key = json.loads(key_path.read_text())["cases"]
    files = sorted((out / "cases").glob("*.nii"))
    raw = [p.read_bytes() for p in files]
    assert len({len(b) for b in raw}) == 1                        # same size
    assert len({b[:352] for b in raw}) == 1                       # same NIfTI header, byte for byte
    for path in files:
        vol = load_volume(path)
        assert vol.shape == (CUBE_VOXELS,) * 3 and vol.array.dtype == np.int16
        assert np.array_equal(vol.affine, np.eye(4))              # 1 mm, identity direction, origin 0
        assert vol.metadata["description"] == NEUTRAL_NOTE and vol.metadata["synthetic"] is False
        sidecar = json.loads(path.with_suffix(".json").read_text())
        assert sidecar == case_sidecar(path.stem)
    # no source name, method, seed or truth anywhere in the folder's names or text files
    sources_ids = sorted({entry["source_id"] for entry in key.values()})
    assert sources_ids == ["healthy1", "patient1", "patient2", "s1_v0", "s2_v0"]
    forbidden = [*sources_ids, "handcrafted", "cellular", "truth", "real-tumor", str(sources), '"seed"', "report"]
    for path in out.rglob("*"):
        assert not any(word in path.name for word in ("real", "synth", "patient", "healthy"))
        if path.suffix in (".json", ".csv", ".txt"):
            text = path.read_text()
            assert not [w for w in forbidden if w in text], path
    # the sheets' orders differ per reader, but neither follows the truth
    assert [r for r in csv.reader((out / "answers-alice.csv").open())] != \
           [r for r in csv.reader((out / "answers-bob.csv").open())]


def test_lesion_is_at_the_centre_of_the_cube(study):
    out, key_path, _ = study
    key = json.loads(key_path.read_text())["cases"]
    for case_id, entry in key.items():
        if entry["kind"] == "real-healthy":
            continue
        cube = load_volume(out / "cases" / f"{case_id}.nii").array
        label = load_volume(entry["label"])
        centre = np.rint(label.ras_to_voxel(entry["center_ras"])).astype(int)
        assert label.array[tuple(centre)] >= 200, case_id         # the crop centre is tumor
        assert cube.shape == (64, 64, 64)


def test_same_seed_same_bytes_and_refusals(sources, study, tmp_path):
    out, _key, _ = study
    config = dict(real=[str(sources / "real")], synthetic=[str(sources / "synth")], readers=["alice", "bob"], seed=3)
    again = tmp_path / "again"
    make_study(StudyConfig(out=str(again), **config))
    for path in out.rglob("*"):
        if path.is_file():
            assert path.read_bytes() == (again / path.relative_to(out)).read_bytes(), path
    with pytest.raises(InputError, match="already holds a study"):
        make_study(StudyConfig(out=str(again), **config))
    with pytest.raises(InputError, match="inside the study folder"):
        make_study(StudyConfig(out=str(tmp_path / "x"), key=str(tmp_path / "x" / "key.json"), **config))
    with pytest.raises(InputError, match="no synthetic case"):
        make_study(StudyConfig(out=str(tmp_path / "y"), real=[str(sources / "real")], readers=["a"]))


def test_dicom_study_cases_have_the_same_tags(sources, tmp_path):
    import pydicom

    make_study(StudyConfig(out=str(tmp_path / "s"), real=[str(sources / "real")],
                           synthetic=[str(sources / "synth")], fmt="dicom", seed=1))
    varying = {"SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID",
               "PatientName", "PatientID", "PixelData", "MediaStorageSOPInstanceUID"}
    seen = {}
    for folder in sorted((tmp_path / "s" / "cases").iterdir()):
        if not folder.is_dir():
            continue
        ds = pydicom.dcmread(str(folder / "IM0032.dcm"))
        assert ds.PatientName == f"READER^{folder.name}" and ds.BurnedInAnnotation == "NO"
        assert "SYNTHETIC TUMOR" not in str(ds.SeriesDescription)
        tags = {e.keyword: str(e.value) for e in ds if e.keyword not in varying}
        seen[folder.name] = tags
        assert load_volume(folder).shape == (64, 64, 64)
    first = next(iter(seen.values()))
    assert len(seen) == 5 and all(tags == first for tags in seen.values())


def test_blind_crop_samples_world_positions_on_an_oblique_grid():
    a = np.deg2rad(25)
    affine = np.eye(4)
    affine[:3, :3] = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]]) @ np.diag([0.8, 1.1, 2.5])
    affine[:3, 3] = [-50.0, 20.0, -30.0]
    idx = np.indices((120, 120, 50)).reshape(3, -1).T
    ras = idx @ affine[:3, :3].T + affine[:3, 3]
    ramp = Volume((ras[:, 0] * 10 + ras[:, 2]).reshape(120, 120, 50).astype(np.float32), affine)
    centre = ramp.voxel_to_ras([60, 60, 25])
    cube = blind_crop(ramp, centre)
    offsets = np.arange(64) - 31.5
    expected = np.rint((centre[0] + offsets)[:, None, None] * 10 + (centre[2] + offsets)[None, None, :])
    assert np.abs(cube.astype(float) - np.broadcast_to(expected, cube.shape)).max() <= 1.0
    assert ramp.array.dtype == np.float32                                   # input untouched


def test_healthy_point_is_deep_inside_the_organ():
    mask = np.zeros((80, 80, 40), dtype=bool)
    idx = np.indices(mask.shape)
    mask[((idx[0] - 40) ** 2 + (idx[1] - 40) ** 2) * 1.0 + ((idx[2] - 20) * 2.0) ** 2 < 30 ** 2] = True
    labels = Volume(mask.astype(np.int16), np.diag([1.0, 1.0, 2.0, 1.0]))
    for seed in range(5):
        p = organ_point(labels, mask, np.random.default_rng(seed))
        depth_mm = 30.0 - np.sqrt((p[0] - 40) ** 2 + (p[1] - 40) ** 2 + ((p[2] - 20) * 2.0) ** 2)
        assert depth_mm >= 15.0


# -- statistics ---------------------------------------------------------------------------------------
def test_wilson_interval_matches_published_and_hand_values():
    assert wilson_interval(0, 10)[1:] == pytest.approx((0.0, 0.2775), abs=1e-4)      # textbook values
    assert wilson_interval(10, 10)[1:] == pytest.approx((0.7225, 1.0), abs=1e-4)
    assert wilson_interval(3, 4) == pytest.approx((0.75, 0.3006, 0.9544), abs=1e-4)
    assert wilson_interval(4, 7) == pytest.approx((4 / 7, 0.2505, 0.8418), abs=1e-4)
    assert wilson_interval(0, 0) == (None, None, None)


def test_fleiss_kappa_of_the_classic_example_and_a_hand_table():
    # Fleiss (1971) / the usual worked example: 10 subjects, 14 raters, 5 categories -> 0.210
    table = [[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
             [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]]
    assert fleiss_kappa(np.array(table)) == pytest.approx(0.210, abs=1e-3)
    # by hand: P = (1 + 1 + 1/3 + 0) / 4 = 7/12; Pe = (1/2)^2 + (5/12)^2 + (1/12)^2 = 31/72;
    # kappa = (7/12 - 31/72) / (1 - 31/72) = 11/41
    assert fleiss_kappa(np.array([[3, 0, 0], [0, 3, 0], [2, 1, 0], [1, 1, 1]])) == pytest.approx(11 / 41)
    assert fleiss_kappa(np.array([[3, 0], [3, 0]])) is None


KEY = {  # case: truth, organ, diameter (None: healthy)
    "c01": ("real", "liver", 15.0), "c02": ("real", "liver", 30.0), "c03": ("real", "kidney", 12.0),
    "c04": ("real", "liver", None), "c05": ("synthetic", "liver", 15.0), "c06": ("synthetic", "liver", 35.0),
    "c07": ("synthetic", "kidney", 8.0), "c08": ("synthetic", "kidney", 25.0),
}
ALICE = {"c01": "real", "c02": "synthetic", "c03": "real", "c04": "real", "c05": "real",
         "c06": "synthetic", "c07": "unsure", "c08": "real"}
BOB = {"c01": "real", "c02": "real", "c03": "synthetic", "c04": "real", "c05": "synthetic",
       "c06": "synthetic", "c07": "real", "c08": ""}
CAROL = {"c01": "real", "c02": "synthetic", "c03": "synthetic", "c04": "unsure", "c05": "real",
         "c06": "synthetic", "c07": "synthetic", "c08": "real"}


def _write_study(tmp_path: Path) -> tuple[Path, list[Path]]:
    key = {"cases": {c: {"truth": t, "kind": "synthetic" if t == "synthetic" else "real-tumor",
                         "organ": o, "diameter_mm": d} for c, (t, o, d) in KEY.items()}}
    key_path = tmp_path / "key.json"
    key_path.write_text(json.dumps(key))
    sheets = []
    for name, answers in (("alice", ALICE), ("bob", BOB), ("carol", CAROL)):
        path = tmp_path / f"answers-{name}.csv"
        rows = ["case_id,answer,confidence,reading_time_s"]
        rows += [f"{c},{a},{3 if a else ''},{12.5 if a else ''}" for c, a in answers.items()]
        path.write_text("\n".join(rows) + "\n")
        sheets.append(path)
    return key_path, sheets


def _row(scores, reader, positive, group):
    return next(r for r in scores["rows"] if (r["reader"], r["positive"], r["group"]) == (reader, positive, group))


def test_score_reproduces_hand_computed_figures(tmp_path):
    from TumorSynthLib.datasets.readerstudy_score import read_key

    key_path, sheets = _write_study(tmp_path)
    key = read_key(key_path)
    answers = {p.stem.split("-")[1]: read_answers(p, key) for p in sheets}
    scores = score_study(key, answers)
    # alice, positives = real: real c01 TP, c02 FN, c03 TP, c04 TP; synthetic c05 FP, c06 TN, c07 unsure, c08 FP
    row = _row(scores, "alice", "real", "all")
    assert (row["tp"], row["fn"], row["tn"], row["fp"], row["n_unsure"]) == (3, 1, 1, 2, 1)
    assert (row["sensitivity"], row["sensitivity_lo"], row["sensitivity_hi"]) == pytest.approx((0.75, 0.3006, 0.9544), abs=1e-4)
    assert (row["specificity"], row["specificity_lo"], row["specificity_hi"]) == pytest.approx((1 / 3, 0.0615, 0.7923), abs=1e-4)
    assert (row["accuracy"], row["accuracy_lo"], row["accuracy_hi"]) == pytest.approx((4 / 7, 0.2505, 0.8418), abs=1e-4)
    row = _row(scores, "alice", "synthetic", "all")                       # the FreeTumor convention
    assert (row["tp"], row["fn"], row["tn"], row["fp"]) == (1, 2, 3, 1)
    assert (row["sensitivity"], row["specificity"]) == pytest.approx((1 / 3, 0.75))
    row = _row(scores, "alice", "real", "organ=liver")                    # c01 TP c02 FN c04 TP c05 FP c06 TN
    assert (row["sensitivity"], row["specificity"], row["accuracy"]) == pytest.approx((2 / 3, 1 / 2, 3 / 5))
    assert (row["accuracy_lo"], row["accuracy_hi"]) == pytest.approx((0.2307, 0.8824), abs=1e-4)
    row = _row(scores, "alice", "real", "size=20-50")                     # c02 FN, c06 TN, c08 FP
    assert (row["sensitivity"], row["specificity"], row["accuracy"]) == pytest.approx((0.0, 0.5, 1 / 3))
    row = _row(scores, "alice", "real", "size=no lesion")                 # c04 only: no synthetic case
    assert row["sensitivity"] == 1.0 and row["specificity"] is None
    assert scores["readers"]["alice"]["synthetic_called_real"] == pytest.approx((2 / 3, 0.2077, 0.9385), abs=1e-4)
    row = _row(scores, "bob", "real", "all")                              # c08 blank: not scored
    assert (row["n_blank"], row["n_answered"]) == (1, 7)
    # unsure counted as an error: alice's c07 becomes a synthetic case called real
    wrong = score_study(key, answers, unsure="wrong")
    row = _row(wrong, "alice", "real", "all")
    assert (row["tn"], row["fp"], row["accuracy"]) == (1, 3, 0.5)
    assert (row["accuracy_lo"], row["accuracy_hi"]) == pytest.approx((0.2152, 0.7848), abs=1e-4)
    # agreement over the 7 cases all three answered (c08 blank for bob), by hand:
    # c01 RRR, c02 SRS, c03 RSS, c04 RRU, c05 RSR, c06 SSS, c07 URS
    table = np.array([[3, 0, 0], [1, 2, 0], [1, 2, 0], [2, 0, 1], [2, 1, 0], [0, 3, 0], [1, 1, 1]])
    p_i = ((table ** 2).sum(1) - 3) / 6
    p_j = table.sum(0) / 21
    expected = (p_i.mean() - (p_j ** 2).sum()) / (1 - (p_j ** 2).sum())
    assert scores["agreement"]["n_cases"] == 7
    assert scores["agreement"]["fleiss_kappa"] == pytest.approx(expected)


def test_score_cli_writes_tables_and_figure(tmp_path):
    key_path, sheets = _write_study(tmp_path)
    out = tmp_path / "scores"
    code = main(["readerstudy", "score", *map(str, sheets), "--key", str(key_path), "--out", str(out)])
    assert code == 0
    rows = list(csv.DictReader((out / "scores.csv").open()))
    readers = {r["reader"] for r in rows}
    assert readers == {"alice", "bob", "carol", "all"}
    groups = {r["group"] for r in rows}
    assert {"all", "organ=liver", "organ=kidney", "size=<10", "size=10-20", "size=20-50", "size=no lesion"} <= groups
    assert (out / "scores.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert list(csv.DictReader((out / "agreement.csv").open()))[0]["n_readers"] == "3"
    assert json.loads((out / "scores.json").read_text())["n_synthetic"] == 4


@pytest.mark.parametrize("line,message", [
    ("c99,real,3,1", "not in the key"), ("c01,maybe,3,1", "must be one of"),
    ("c01,real,7,1", "confidence 7 must be between 1 and 5"), ("c01,real,3,-2", "reading_time_s"),
])
def test_bad_answer_rows_are_refused_with_the_line(tmp_path, line, message):
    from TumorSynthLib.datasets.readerstudy_score import read_key

    key_path, _ = _write_study(tmp_path)
    sheet = tmp_path / "answers-x.csv"
    sheet.write_text(f"case_id,answer,confidence,reading_time_s\n{line}\n")
    with pytest.raises(InputError, match=message):
        read_answers(sheet, read_key(key_path))
    sheet.write_text("case_id,answer,confidence,reading_time_s\nc01,real,,\nc01,real,,\n")
    with pytest.raises(InputError, match="answered twice"):
        read_answers(sheet, read_key(key_path))


def test_make_cli_help_and_user_errors(tmp_path, capsys):
    assert main(["readerstudy", "make", "--help"]) == 0
    assert "64 mm cube" in capsys.readouterr().out
    code = main(["readerstudy", "make", "--synthetic", str(tmp_path / "missing"), "--real", str(tmp_path),
                 "--out", str(tmp_path / "s")])
    assert code == 2


def test_generate_makes_synthetic_cases_on_the_healthy_scans(sources, tmp_path):
    out = tmp_path / "study"
    summary = make_study(StudyConfig(out=str(out), real=[str(sources / "real")], organs=["liver"],
                                     generate=1, readers=["a"], seed=2))
    # for the liver, the phantom and the kidney-tumor case are healthy: each gives a healthy crop
    # and one synthetic variant; the liver-tumor case gives its real tumor and is skipped by generate
    assert (summary["real-tumor"], summary["real-healthy"], summary["synthetic"]) == (1, 2, 2)
    assert (tmp_path / "study-generated" / "liver-0" / "dataset.json").is_file()
    key = json.loads(Path(summary["key"]).read_text())["cases"]
    synthetic = [c for c in key.values() if c["truth"] == "synthetic"]
    assert synthetic[0]["method"] == "handcrafted" and "study-generated" in synthetic[0]["image"]
