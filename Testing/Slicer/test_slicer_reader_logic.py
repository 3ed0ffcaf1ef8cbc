"""Reader panel logic against slicer-core: cases load by id in the sheet's order, answers,
confidence and reading time go into the reader's CSV, a new session resumes where the reader
stopped, and a study folder holding the key is refused."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from slicer_test_phantom import require_slicer_core

require_slicer_core()


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def study_dir(tmp_path):
    """A study folder in the format `readerstudy make` writes (4 cases, readers alice/bob)."""
    from TumorSynthLib.core.files import write_json_atomic
    from TumorSynthLib.datasets.readerstudy import (
        StudyConfig, answer_sheet_text, reader_order, study_info, write_case,
    )

    out = tmp_path / "study"
    ids = [f"case-00{n}" for n in range(1, 5)]
    rng = np.random.default_rng(0)
    for n, case_id in enumerate(ids):
        write_case(rng.integers(-100, 200, (64, 64, 64)).astype(np.int16) + n, case_id, out / "cases", "nifti", 0)
    sheets = {}
    for reader in ("alice", "bob"):
        sheets[reader] = f"answers-{reader}.csv"
        (out / sheets[reader]).write_text(answer_sheet_text(reader_order(ids, reader, 0)))
    config = StudyConfig(out=str(out), real=["x"], synthetic=["y"], readers=["alice", "bob"])
    write_json_atomic(out / "study.json", study_info(config, ids, sheets))
    return out


def _sheet(path):
    return list(csv.DictReader(path.open()))


def test_records_answers_in_order_and_resumes(scene, study_dir):
    from TumorSynthLib.core.volume_io import load_volume
    from TumorSynthSlicer.reader_logic import ReaderSession, study_readers
    from TumorSynthSlicer.volume_logic import array_ijk, world_affine

    assert study_readers(study_dir) == ["alice", "bob"]
    clock = Clock()
    session = ReaderSession(study_dir, "alice", clock=clock)
    order = [r["case_id"] for r in _sheet(study_dir / "answers-alice.csv")]
    assert session.order == order and session.nextCaseId() == order[0]

    node = session.showNext(scene)
    assert node.GetName() == f"Reader case {order[0]}"
    case = load_volume(study_dir / "cases" / f"{order[0]}.nii")
    assert np.array_equal(array_ijk(node), case.array) and np.allclose(world_affine(node), np.eye(4))
    assert (node.GetDisplayNode().GetWindow(), node.GetDisplayNode().GetLevel()) == (400.0, 40.0)
    clock.now += 12.34
    session.record("synthetic", 4)
    node = session.showNext(scene)
    assert node.GetName().endswith(order[1])
    assert len([n for n in scene.GetNodesByClass("vtkMRMLScalarVolumeNode")]) == 1   # one case at a time
    clock.now += 3.0
    session.record("Real", 2)

    rows = _sheet(study_dir / "answers-alice.csv")
    assert [r["case_id"] for r in rows] == order                                       # order kept
    assert rows[0] | {} == {"case_id": order[0], "answer": "synthetic", "confidence": "4", "reading_time_s": "12.3"}
    assert (rows[1]["answer"], rows[1]["confidence"], rows[1]["reading_time_s"]) == ("real", "2", "3.0")
    assert all(r["answer"] == "" for r in rows[2:])
    assert _sheet(study_dir / "answers-bob.csv")[0]["answer"] == ""                 # other sheets untouched

    # Slicer restarted: a new session resumes at the first unanswered case
    resumed = ReaderSession(study_dir, "alice", clock=clock)
    assert resumed.answeredCount == 2 and resumed.nextCaseId() == order[2]
    resumed.showNext(scene)
    resumed.record("unsure", 1)
    resumed.showNext(scene)
    resumed.record("real", 5)
    assert resumed.finished and resumed.showNext(scene) is None
    assert scene.GetNodesByClass("vtkMRMLScalarVolumeNode").GetNumberOfItems() == 0
    assert [r["answer"] for r in _sheet(study_dir / "answers-alice.csv")] == ["synthetic", "real", "unsure", "real"]


def test_bad_answers_change_nothing(scene, study_dir):
    from TumorSynthSlicer.reader_logic import ReaderSession, ReaderStudyError

    session = ReaderSession(study_dir, "bob", clock=Clock())
    before = (study_dir / "answers-bob.csv").read_text()
    with pytest.raises(ReaderStudyError, match="no case is shown"):
        session.record("real", 3)
    session.showNext(scene)
    for answer, confidence in (("maybe", 3), ("real", 0), ("real", 6), ("real", 2.5)):
        with pytest.raises(ReaderStudyError):
            session.record(answer, confidence)
    assert (study_dir / "answers-bob.csv").read_text() == before
    with pytest.raises(ReaderStudyError, match="no answer sheet for reader 'carol'"):
        ReaderSession(study_dir, "carol")


def test_never_reads_or_tolerates_the_key(scene, study_dir, tmp_path):
    from TumorSynthSlicer.reader_logic import ReaderSession, ReaderStudyError, study_info

    with pytest.raises(ReaderStudyError, match="not a reader study folder"):
        ReaderSession(tmp_path, "alice")
    key = {"cases": {"case-001": {"truth": "synthetic", "kind": "synthetic"}}}
    (study_dir / "study-key.json").write_text(json.dumps(key))
    with pytest.raises(ReaderStudyError, match="holds the answer key 'study-key.json'"):
        ReaderSession(study_dir, "alice")
    (study_dir / "study-key.json").unlink()
    session = ReaderSession(study_dir, "alice", clock=Clock())
    node = session.showNext(scene)
    text = json.dumps(study_info(study_dir)) + node.GetName()
    assert "truth" not in text and "real-tumor" not in text
