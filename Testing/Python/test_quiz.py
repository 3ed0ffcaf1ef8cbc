"""``readerstudy quiz`` ("find the malignant one") and its scoring: the key matches the files,
the quiz folder holds no trace of the lesion types, the same seed gives the same quiz, and the
scores reproduce hand-computed figures."""
from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from TumorSynthLib.cli import main
from TumorSynthLib.core.errors import InputError
from TumorSynthLib.core.volume_io import load_volume
from TumorSynthLib.datasets.quiz import QUIZ_COLUMNS, QuizConfig, make_quiz
from TumorSynthLib.datasets.quiz_score import (
    read_quiz_answers,
    read_quiz_key,
    score_quiz,
)
from TumorSynthLib.synthesis.registry import (
    appearance_names,
    geometry_names,
    method_names,
)


def build(phantom_small, out: Path, seed: int = 3, cases: int = 2, readers=("alice", "bob")) -> dict:
    ct, organs, _ = phantom_small
    config = QuizConfig(out=str(out), cases=cases, lesions=3, malignant=1, readers=list(readers), seed=seed,
                        diameter_mm=(14.0, 24.0))
    return make_quiz(config, scans=[(ct, organs, "phantom small")])


@pytest.fixture(scope="module")
def quiz(phantom_small, tmp_path_factory):
    root = tmp_path_factory.mktemp("quiz")
    summary = build(phantom_small, root / "quiz")
    return root / "quiz", Path(summary["key"]), summary


def test_key_beside_the_folder_and_matching_the_files(quiz):
    folder, key_path, summary = quiz
    assert key_path.parent == folder.parent and not any(p.name.endswith("key.json") for p in folder.rglob("*"))
    key = json.loads(key_path.read_text())
    assert summary["cases"] == 2 and summary["lesions"] == 6 and summary["malignant"] == 2
    for case_id, case in key["cases"].items():
        lesions = case["lesions"]
        assert sorted(lesions) == ["1", "2", "3"]
        assert sum(x["malignant"] for x in lesions.values()) == 1
        assert all(x["malignant"] == (x["lesion"] == "tumor") for x in lesions.values())
        numbers = load_volume(folder / "cases" / case_id / "lesions.nii.gz")
        assert sorted(np.unique(numbers.array).tolist()) == [0, 1, 2, 3]
        for n, entry in lesions.items():                       # number n is where the key says
            centre = np.argwhere(numbers.array == int(n)).mean(axis=0)
            ras = numbers.voxel_to_ras(centre[None])[0]
            assert np.linalg.norm(ras - np.asarray(entry["centroid_ras"])) < 1.0
        rows = list(csv.DictReader((folder / "cases" / case_id / "lesions.csv").open()))
        assert [r["lesion"] for r in rows] == ["1", "2", "3"]
    for reader in ("alice", "bob"):
        rows = list(csv.DictReader((folder / f"answers-{reader}.csv").open()))
        assert tuple(rows[0]) == QUIZ_COLUMNS
        assert sorted((r["case_id"], r["lesion"]) for r in rows) == sorted(
            (c, n) for c, case in key["cases"].items() for n in case["lesions"])


def test_quiz_files_hold_no_trace_of_the_lesion_types(quiz):
    """No file name or content (gzip opened) names a benign lesion type, provider or method;
    text files also hold no seed of the key."""
    folder, key_path, _ = quiz
    key = json.loads(key_path.read_text())
    entries = [x for case in key["cases"].values() for x in case["lesions"].values()]
    words = {x["lesion"] for x in entries} | {x["geometry"] for x in entries} | {x["appearance"] for x in entries}
    words |= set(method_names()) | set(geometry_names()) | set(appearance_names())
    words = (words | {"cyst", "hemangioma"}) - {"tumor"}   # "TumorSynth synthetic" marks every file alike
    seeds = {str(x["seed"]) for x in entries}
    files = [p for p in folder.rglob("*") if p.is_file()]
    assert {p.suffix for p in files} >= {".gz", ".csv", ".json", ".txt", ".png"}
    for path in files:
        data = path.read_bytes()
        data = gzip.decompress(data) if path.suffix == ".gz" else data
        text = data.decode("latin-1").lower()
        for word in words:
            assert word.lower() not in text and word.lower() not in str(path.relative_to(folder)).lower(), (path, word)
        if path.suffix in (".csv", ".json", ".txt"):
            assert not any(s in text for s in seeds), path


def test_same_seed_same_quiz(phantom_small, quiz, tmp_path):
    folder, key_path, _ = quiz
    build(phantom_small, tmp_path / "again")
    for rel in ("cases/case-001/image.nii.gz", "cases/case-002/lesions.nii.gz", "answers-alice.csv", "quiz.json"):
        assert (tmp_path / "again" / rel).read_bytes() == (folder / rel).read_bytes(), rel
    a, b = json.loads(key_path.read_text()), json.loads((tmp_path / "again-key.json").read_text())
    assert a["cases"] == b["cases"]


def answer(folder: Path, key_path: Path, reader: str, choose) -> Path:
    """Fill ``reader``'s sheet with ``choose(key entry, case id, lesion)`` answers."""
    key = json.loads(key_path.read_text())["cases"]
    path = folder / f"answers-{reader}.csv"
    rows = list(csv.DictReader(path.open()))
    for r in rows:
        r["answer"] = choose(key[r["case_id"]]["lesions"][r["lesion"]], r["case_id"], r["lesion"])
        r["confidence"] = "4" if r["answer"] else ""
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=QUIZ_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_scores_reproduce_hand_computed_figures(phantom_small, tmp_path):
    summary = build(phantom_small, tmp_path / "q", seed=5)
    folder, key_path = tmp_path / "q", Path(summary["key"])
    benign = sorted((c, n) for c, case in json.loads(key_path.read_text())["cases"].items()
                    for n, x in case["lesions"].items() if not x["malignant"])
    wrong, unsure = benign[0], benign[1]          # both in case-001: it is not solved

    def alice(entry, case_id, n):
        if (case_id, n) == wrong:
            return "malignant"
        if (case_id, n) == unsure:
            return "unsure"
        return "malignant" if entry["malignant"] else "benign"

    sheet = answer(folder, key_path, "alice", alice)
    key = read_quiz_key(key_path)
    scores = score_quiz(key, {"alice": read_quiz_answers(sheet, key)})
    row = next(r for r in scores["rows"] if r["group"] == "all")
    # 2 malignant called malignant; 4 benign: 1 wrong, 1 unsure (left out), 2 right
    assert (row["tp"], row["fn"], row["tn"], row["fp"], row["n_unsure"]) == (2, 0, 2, 1, 1)
    assert row["specificity"] == pytest.approx(2 / 3)
    assert (row["specificity_lo"], row["specificity_hi"]) == pytest.approx((0.20766, 0.93851), abs=1e-4)
    assert (row["accuracy"], row["accuracy_lo"], row["accuracy_hi"]) == pytest.approx((0.8, 0.37553, 0.96378), abs=1e-4)
    assert scores["cases_solved"]["alice"][0] == 1.0      # case-002 right; case-001 has an unsure
    wrong_scores = score_quiz(key, {"alice": read_quiz_answers(sheet, key)}, unsure="wrong")
    assert wrong_scores["cases_solved"]["alice"][0] == 0.5
    out = tmp_path / "scores"
    assert main(["readerstudy", "score", str(sheet), "--key", str(key_path), "--out", str(out)]) == 0
    table = list(csv.DictReader((out / "quiz-scores.csv").open()))
    assert {r["group"] for r in table} >= {"all", "lesion=tumor"}
    assert json.loads((out / "quiz-scores.json").read_text())["n_lesions"] == 6


def test_cli_quiz_and_clear_errors(tmp_path, capsys):
    code = main(["readerstudy", "quiz", "--small-phantom", "--cases", "1", "--lesions", "2", "--distractors", "cyst",
                 "--out", str(tmp_path / "cli"), "--seed", "2"])
    assert code == 0 and (tmp_path / "cli" / "cases" / "case-001" / "overview.png").exists()
    assert json.loads((tmp_path / "cli-key.json").read_text())["kind"] == "tumorsynth-quiz"
    assert main(["readerstudy", "quiz", "--lesions", "2", "--malignant", "3", "--out", str(tmp_path / "x")]) == 2
    assert "--malignant" in capsys.readouterr().err
    assert main(["readerstudy", "quiz", "--distractors", "tumor", "--out", str(tmp_path / "y")]) == 2
    assert main(["readerstudy", "quiz", "--key", str(tmp_path / "z" / "k.json"), "--out", str(tmp_path / "z")]) == 2
    with pytest.raises(InputError, match="not in the key"):
        sheet = tmp_path / "answers-eve.csv"
        sheet.write_text("case_id,lesion,answer,confidence,reading_time_s\ncase-009,1,benign,3,\n")
        read_quiz_answers(sheet, read_quiz_key(tmp_path / "cli-key.json"))


def test_input_scans_with_a_tumor_are_skipped(phantom_small, tmp_path):
    from TumorSynthLib.core.volume_io import save_volume

    ct, organs, _ = phantom_small
    data = tmp_path / "data"
    sick = np.array(organs.array, copy=True)
    sick[tuple(np.argwhere(sick == 5)[:50].T)] = 205            # a small liver tumor label
    for name, labels in (("a-sick", organs.with_array(sick)), ("b-healthy", organs)):
        save_volume(ct, data / "imagesTr" / f"{name}.nii.gz")
        save_volume(labels, data / "labelsTr" / f"{name}.nii.gz")
    summary = make_quiz(QuizConfig(out=str(tmp_path / "q"), inputs=[str(data)], cases=1, lesions=2,
                                   distractors=["cyst"], diameter_mm=(14.0, 20.0)))
    key = json.loads(Path(summary["key"]).read_text())
    assert key["cases"]["case-001"]["source"].endswith("b-healthy.nii.gz")
    (data / "imagesTr" / "b-healthy.nii.gz").unlink()
    (data / "labelsTr" / "b-healthy.nii.gz").unlink()
    with pytest.raises(InputError, match="no healthy case"):
        make_quiz(QuizConfig(out=str(tmp_path / "q2"), inputs=[str(data)], cases=1, lesions=2))
