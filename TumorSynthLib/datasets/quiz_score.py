"""Scoring a "find the malignant one" quiz (``readerstudy score`` with a quiz key).

Per reader (and all readers pooled), per lesion, positives = malignant:

* group ``all``: sensitivity (malignant lesions called malignant), specificity (benign lesions
  called benign), accuracy, each with its 95 % Wilson interval (``readerstudy_score.wilson_interval``);
* group ``lesion=<type>`` (tumor, cyst, hemangioma): the same restricted to one lesion type, so
  the specificity per distractor says which look-alike misled the readers;
* ``cases_solved``: the cases whose every lesion was answered correctly, out of the cases whose
  every lesion was answered (Wilson interval too).

Unsure and blank answers as in the reader study: unsure leaves the tables by default
(``unsure="wrong"`` counts it as an error), blank rows are never scored.
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..core.errors import InputError
from ..core.files import write_json_atomic, write_text_atomic
from .quiz import KEY_KIND, QUIZ_ANSWERS, QUIZ_COLUMNS
from .readerstudy_score import (
    check_scoring_inputs,
    checked_answer,
    confusion,
    read_sheet,
    verdict,
    wilson_interval,
    with_rates,
)

#: The two truths of a quiz lesion, indexed by "malignant" (``readerstudy_score.verdict``).
QUIZ_LABELS = ("benign", "malignant")

QUIZ_SCORE_COLUMNS = ("reader", "group", "n_lesions", "n_answered", "n_unsure", "n_blank", "tp", "fn", "tn", "fp",
                      "sensitivity", "sensitivity_lo", "sensitivity_hi", "specificity", "specificity_lo",
                      "specificity_hi", "accuracy", "accuracy_lo", "accuracy_hi")


def is_quiz_key(path: str | Path) -> bool:
    """True when ``path`` is a key written by ``readerstudy quiz`` (False for anything else)."""
    try:
        return json.loads(Path(path).expanduser().read_text(encoding="utf-8")).get("kind") == KEY_KIND
    except (OSError, ValueError, AttributeError):
        return False


def read_quiz_key(path: str | Path) -> dict[tuple[str, int], dict[str, Any]]:
    """{(case id, lesion number): key entry (``lesion``, ``malignant``, ...)}."""
    try:
        key = json.loads(Path(path).expanduser().read_text(encoding="utf-8"))
        if key.get("kind") != KEY_KIND:
            raise KeyError("kind")
        return {(str(c), int(n)): dict(entry) for c, case in key["cases"].items()
                for n, entry in case["lesions"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InputError(f"cannot read the quiz key '{path}' ({exc}); give the key.json that "
                         "`readerstudy quiz` wrote beside the quiz folder") from exc


def read_quiz_answers(path: str | Path, key: Mapping[tuple[str, int], Any]) -> dict[tuple[str, int], dict[str, Any]]:
    """{(case id, lesion): {answer, confidence}} of one sheet; InputError with the line for an
    unknown case or lesion, a duplicate, or a value out of range. Blank answers are left out."""
    out: dict[tuple[str, int], dict[str, Any]] = {}
    for where, row in read_sheet(path, ("case_id", "lesion", "answer"), QUIZ_COLUMNS, "a quiz answer sheet"):
        try:
            item = ((row.get("case_id") or "").strip(), int((row.get("lesion") or "").strip()))
        except ValueError:
            raise InputError(f"{where}: lesion '{row.get('lesion')}' is not a lesion number") from None
        if item not in key:
            raise InputError(f"{where}: lesion {item[1]} of case '{item[0]}' is not in the key; is this "
                             "sheet from another quiz?")
        if item in out:
            raise InputError(f"{where}: lesion {item[1]} of case '{item[0]}' is answered twice")
        answer = checked_answer(row, where, QUIZ_ANSWERS)
        confidence = (row.get("confidence") or "").strip()
        if confidence and confidence not in {"1", "2", "3", "4", "5"}:
            raise InputError(f"{where}: confidence '{confidence}' must be 1 to 5 (or empty)")
        out[item] = {"answer": answer, "confidence": int(confidence) if confidence else None}
    return out


def quiz_verdict(malignant: bool, answer: str, unsure: str) -> str | None:
    """tp / fn / tn / fp of one answered lesion (positive: malignant); None when it leaves the table."""
    return verdict(QUIZ_LABELS[bool(malignant)], answer, "malignant", unsure, QUIZ_LABELS)


def quiz_row(reader: str, group: str, pairs: Sequence[tuple[bool, str]], unsure: str) -> dict[str, Any]:
    truths = [(QUIZ_LABELS[bool(malignant)], answer) for malignant, answer in pairs]
    return {"reader": reader, "group": group, "n_lesions": len(pairs),
            **with_rates(confusion(truths, "malignant", unsure, QUIZ_LABELS))}


def solved_cases(key: Mapping[tuple[str, int], Any], answers: Mapping[tuple[str, int], Any],
                 unsure: str) -> tuple[int, int]:
    """(cases with every lesion right, cases with every lesion answered)."""
    solved = judged = 0
    for case_id in sorted({c for c, _n in key}):
        items = [k for k in key if k[0] == case_id]
        given = [answers.get(k, {}).get("answer", "") for k in items]
        if not all(given) or (unsure == "exclude" and "unsure" in given):
            continue
        judged += 1
        solved += all(quiz_verdict(key[k]["malignant"], a, "wrong") in ("tp", "tn") for k, a in zip(items, given))
    return solved, judged


def score_quiz(key: Mapping[tuple[str, int], Any], answers: Mapping[str, Mapping[tuple[str, int], Any]],
               unsure: str = "exclude") -> dict[str, Any]:
    """Every row and per-reader case figures (see the module docstring)."""
    check_scoring_inputs(answers, unsure)
    readers = sorted(answers)
    kinds = sorted({e["lesion"] for e in key.values()})
    groups = [("all", list(key))] + [(f"lesion={k}", [i for i in key if key[i]["lesion"] == k]) for k in kinds]
    rows, cases = [], {}
    for reader in readers + (["all"] if len(readers) > 1 else []):
        names = readers if reader == "all" else [reader]
        for group, items in groups:
            pairs = [(bool(key[i]["malignant"]), answers[r].get(i, {}).get("answer", "")) for r in names for i in items]
            rows.append(quiz_row(reader, group, pairs, unsure))
        if reader != "all":
            cases[reader] = wilson_interval(*solved_cases(key, answers[reader], unsure))
    return {"unsure": unsure, "rows": rows, "cases_solved": cases, "n_lesions": len(key),
            "n_cases": len({c for c, _n in key}), "n_malignant": sum(bool(e["malignant"]) for e in key.values())}


def write_quiz_scores(out: str | Path, scores: Mapping[str, Any], sources: Mapping[str, Any]) -> dict[str, Path]:
    """``quiz-scores.csv`` (one row per reader x group) and ``quiz-scores.json`` in ``out``."""
    folder = Path(out).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=QUIZ_SCORE_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in scores["rows"]:
        writer.writerow({k: ("" if row[k] is None else f"{row[k]:.4f}" if isinstance(row[k], float) else row[k])
                         for k in QUIZ_SCORE_COLUMNS})
    paths = {"csv": folder / "quiz-scores.csv", "json": folder / "quiz-scores.json"}
    write_text_atomic(paths["csv"], buf.getvalue())
    write_json_atomic(paths["json"], {**scores, "sources": dict(sources)})
    return paths


def quiz_text(scores: Mapping[str, Any]) -> str:
    """One line per reader (stderr)."""
    lines = []
    for row in scores["rows"]:
        if row["group"] == "all" and row["accuracy"] is not None:
            sens = "n/a" if row["sensitivity"] is None else f"{row['sensitivity']:.2f}"
            spec = "n/a" if row["specificity"] is None else f"{row['specificity']:.2f}"
            lines.append(f"{row['reader']}: accuracy {row['accuracy']:.2f} [{row['accuracy_lo']:.2f}, "
                         f"{row['accuracy_hi']:.2f}], sensitivity {sens}, specificity {spec} on "
                         f"{row['n_answered']} of {row['n_lesions']} lesions")
    for reader, (p, _lo, _hi) in sorted(scores["cases_solved"].items()):
        if p is not None:
            lines.append(f"{reader}: solved {100 * p:.0f} % of the fully answered cases")
    return "\n".join(lines)


__all__ = ["QUIZ_SCORE_COLUMNS", "is_quiz_key", "quiz_text", "read_quiz_answers", "read_quiz_key", "score_quiz",
           "write_quiz_scores"]
