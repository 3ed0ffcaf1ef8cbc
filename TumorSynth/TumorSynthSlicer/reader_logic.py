"""Reader panel logic: read a blinded study case by case and record the answers.

A study folder (``tumorsynth readerstudy make``) holds ``study.json``, ``cases/`` and one
answer sheet per reader (``answers-<reader>.csv``: case_id, answer, confidence,
reading_time_s, in the reader's own order). ``ReaderSession`` walks one reader's sheet in its
order: ``showNext`` loads the first unanswered case as a volume node named only by its neutral
id, ``record`` writes the answer (real / synthetic / unsure), the confidence (1-5) and the
seconds since the case was shown into the sheet (atomically: a crash never leaves half a
file). A new session on the same sheet resumes at the first unanswered case; recording a case
again replaces its row (and its time is the time of the last viewing).

The key is never read: the session only opens ``study.json``, the reader's sheet and the case
files, and it refuses a study folder that holds a key (a JSON file with a ``cases`` table that
has ``truth`` entries), telling the user to move it out before reading.

Example::

    session = ReaderSession("/data/study", "alice")
    node = session.showNext(slicer.mrmlScene)        # None when every case is answered
    session.record("synthetic", 4)
"""
from __future__ import annotations

import csv
import io
import json
import os
import time
from pathlib import Path
from typing import Callable

import slicer

from .errors import SlicerLogicError
from .volume_logic import array_to_matrix, set_array_ijk

ANSWERS = ("real", "synthetic", "unsure")
COLUMNS = ("case_id", "answer", "confidence", "reading_time_s")
NODE_PREFIX = "Reader case "


class ReaderStudyError(SlicerLogicError, ValueError):
    """The study folder, the sheet or an answer cannot be used (the message says why)."""


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ReaderStudyError(f"cannot read '{path}': {exc}") from exc
    if not isinstance(data, dict):
        raise ReaderStudyError(f"'{path}' is not a study description")
    return data


def study_info(studyDir: str | Path) -> dict:
    """``study.json`` of a study folder (ReaderStudyError when it is not one)."""
    path = Path(studyDir) / "study.json"
    if not path.is_file():
        raise ReaderStudyError(f"'{studyDir}' is not a reader study folder (no study.json); choose the "
                               "folder written by `tumorsynth readerstudy make`")
    return _read_json(path)


def study_readers(studyDir: str | Path) -> list[str]:
    """The reader names that have an answer sheet in the study."""
    return sorted((study_info(studyDir).get("answer_sheets") or {}).keys())


def check_no_key(studyDir: str | Path) -> None:
    """Refuse a study folder that holds the key: readers must not be able to open it."""
    root = Path(studyDir)
    for path in list(root.glob("*.json")) + list((root / "cases").glob("*.json")):
        if path.name == "study.json":
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        cases = data.get("cases") if isinstance(data, dict) else None
        if isinstance(cases, dict) and any(isinstance(v, dict) and "truth" in v for v in cases.values()):
            raise ReaderStudyError(f"the study folder holds the answer key '{path.name}'; move it out of "
                                   f"'{root}' before reading (readers must never see it)")


def read_sheet(path: Path) -> list[dict[str, str]]:
    """Rows of an answer sheet, in its order (every column as text)."""
    try:
        reader = csv.DictReader(io.StringIO(path.read_text(encoding="utf-8-sig")))
    except OSError as exc:
        raise ReaderStudyError(f"cannot read the answer sheet '{path}': {exc}") from exc
    if not set(COLUMNS) <= set(reader.fieldnames or []):
        raise ReaderStudyError(f"'{path.name}' is not an answer sheet (columns {', '.join(COLUMNS)})")
    return [{c: (row.get(c) or "").strip() for c in COLUMNS} for row in reader]


def write_sheet(path: Path, rows: list[dict[str, str]]) -> None:
    """Write the sheet through a temporary file renamed into place."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow([row[c] for c in COLUMNS])
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(buf.getvalue(), encoding="utf-8")
    os.replace(tmp, path)


class ReaderSession:
    """One reader working through a study (see the module docstring). ``clock`` returns
    seconds (``time.monotonic``; tests inject their own)."""

    def __init__(self, studyDir: str | Path, reader: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.studyDir = Path(studyDir)
        info = study_info(self.studyDir)
        check_no_key(self.studyDir)
        sheets = info.get("answer_sheets") or {}
        if reader not in sheets:
            raise ReaderStudyError(f"no answer sheet for reader '{reader}' in this study; readers: "
                                   f"{', '.join(sorted(sheets)) or '(none)'}")
        self.reader = reader
        self.sheetPath = self.studyDir / sheets[reader]
        self.window = info.get("window") or {"center": 40, "width": 400}
        self.rows = read_sheet(self.sheetPath)
        known = set(info.get("cases") or [])
        unknown = [r["case_id"] for r in self.rows if r["case_id"] not in known]
        if unknown:
            raise ReaderStudyError(f"'{self.sheetPath.name}' lists cases that are not in the study: {unknown[:3]}")
        self._clock = clock
        self.currentCaseId: str | None = None
        self.currentNode = None
        self._shownAt: float | None = None

    # -- progress --------------------------------------------------------------------------------
    @property
    def order(self) -> list[str]:
        return [r["case_id"] for r in self.rows]

    @property
    def answeredCount(self) -> int:
        return sum(1 for r in self.rows if r["answer"])

    @property
    def finished(self) -> bool:
        return self.nextCaseId() is None

    def nextCaseId(self) -> str | None:
        """The first case of the sheet without an answer (where the reader resumes)."""
        return next((r["case_id"] for r in self.rows if not r["answer"]), None)

    def position(self, caseId: str) -> int:
        """1-based place of ``caseId`` in the reader's order."""
        return self.order.index(caseId) + 1

    # -- showing ---------------------------------------------------------------------------------
    def casePath(self, caseId: str) -> Path:
        for path in (self.studyDir / "cases" / f"{caseId}.nii", self.studyDir / "cases" / caseId):
            if path.exists():
                return path
        raise ReaderStudyError(f"the files of case '{caseId}' are missing from '{self.studyDir / 'cases'}'")

    def show(self, scene: slicer.vtkMRMLScene, caseId: str) -> slicer.vtkMRMLScalarVolumeNode:
        """Load ``caseId`` as the only reader-case node of the scene and start its clock."""
        if caseId not in self.order:
            raise ReaderStudyError(f"case '{caseId}' is not on {self.reader}'s sheet")
        from TumorSynthLib.core.volume_io import load_volume

        volume = load_volume(self.casePath(caseId))
        self.close(scene)
        node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", NODE_PREFIX + caseId)
        node.SetIJKToRASMatrix(array_to_matrix(volume.affine))
        set_array_ijk(node, volume.array)
        node.CreateDefaultDisplayNodes()
        display = node.GetDisplayNode()
        display.SetAutoWindowLevel(False)
        display.SetWindowLevel(float(self.window["width"]), float(self.window["center"]))
        self.currentCaseId, self.currentNode, self._shownAt = caseId, node, self._clock()
        return node

    def showNext(self, scene: slicer.vtkMRMLScene) -> slicer.vtkMRMLScalarVolumeNode | None:
        """Show the next unanswered case, or remove the last one and return None when done."""
        caseId = self.nextCaseId()
        if caseId is None:
            self.close(scene)
            return None
        return self.show(scene, caseId)

    def close(self, scene: slicer.vtkMRMLScene) -> None:
        """Remove the reader-case nodes (this session's, and those an earlier session of the
        panel left, recognised by their "Reader case " name); other nodes are left alone."""
        nodes = scene.GetNodesByClass("vtkMRMLScalarVolumeNode")
        for index in range(nodes.GetNumberOfItems()):
            node = nodes.GetItemAsObject(index)
            if node is self.currentNode or node.GetName().startswith(NODE_PREFIX):
                scene.RemoveNode(node)
        self.currentCaseId, self.currentNode, self._shownAt = None, None, None

    # -- answering -------------------------------------------------------------------------------
    def record(self, answer: str, confidence: int) -> dict[str, str]:
        """Write the answer for the case on screen; returns its row. The reading time is the
        seconds since ``show``."""
        if self.currentCaseId is None or self._shownAt is None:
            raise ReaderStudyError("no case is shown; press Start / Next first")
        answer = str(answer).strip().lower()
        if answer not in ANSWERS:
            raise ReaderStudyError(f"the answer must be one of {', '.join(ANSWERS)}, got '{answer}'")
        if isinstance(confidence, bool) or int(confidence) != confidence or not 1 <= int(confidence) <= 5:
            raise ReaderStudyError(f"the confidence must be a whole number from 1 to 5, got {confidence}")
        seconds = max(0.0, self._clock() - self._shownAt)
        rows = [dict(r) for r in self.rows]
        row = next(r for r in rows if r["case_id"] == self.currentCaseId)
        row.update(answer=answer, confidence=str(int(confidence)), reading_time_s=f"{seconds:.1f}")
        write_sheet(self.sheetPath, rows)          # memory changes only once the file is written
        self.rows = rows
        return dict(row)
