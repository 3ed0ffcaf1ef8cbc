"""``tumorsynth readerstudy score``: how well readers told real from synthetic.

For each reader (and all readers pooled), for all cases and per organ and per lesion size
(``segmentation.metrics.SIZE_BUCKETS``; healthy crops form the size group "no lesion"), with
both positive conventions:

* positives = real (Pixel2Cancer, DiffTumor): sensitivity = real cases called real,
  specificity = synthetic cases called synthetic;
* positives = synthetic (FreeTumor): sensitivity = synthetic cases called synthetic,
  specificity = real cases called real.

Accuracy is the same in both. Each proportion x / n has a 95 % Wilson score interval
(``wilson_interval``; None when n = 0). The headline of a visual Turing test, the share of
synthetic cases judged real, is 1 - specificity with positives = real.

Unsure and blank answers: by default (``unsure="exclude"``) they leave the 2 x 2 table (they
are counted in ``n_unsure`` / ``n_blank``); with ``unsure="wrong"`` an unsure answer counts as
an error in either convention (a real case called synthetic, a synthetic case called real);
blank rows are always left out (not read).

Agreement: Fleiss' kappa (``fleiss_kappa``) over the cases every reader answered (any
answer, unsure included as a third category), with at least two readers.
"""
from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..core.errors import InputError
from ..segmentation.metrics import SIZE_BUCKETS, size_bucket
from .readerstudy import ANSWER_COLUMNS, ANSWERS

Z_95 = 1.959963984540054
UNSURE_MODES = ("exclude", "wrong")
CONVENTIONS = ("real", "synthetic")
NO_LESION = "no lesion"
SCORE_COLUMNS = ("reader", "positive", "group", "n_cases", "n_answered", "n_unsure", "n_blank",
                 "tp", "fn", "tn", "fp", "sensitivity", "sensitivity_lo", "sensitivity_hi",
                 "specificity", "specificity_lo", "specificity_hi", "accuracy", "accuracy_lo",
                 "accuracy_hi")


# -- statistics ----------------------------------------------------------------------------------
def wilson_interval(x: int, n: int, z: float = Z_95) -> tuple[float | None, float | None, float | None]:
    """(p, low, high) of the proportion x / n with the Wilson score interval; Nones for n = 0.

    centre = (p + z^2 / 2n) / (1 + z^2 / n),
    half   = z / (1 + z^2 / n) * sqrt(p (1 - p) / n + z^2 / 4n^2).
    """
    if n <= 0:
        return None, None, None
    p = x / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return p, max(0.0, centre - half), min(1.0, centre + half)


def fleiss_kappa(counts: np.ndarray) -> float | None:
    """Fleiss' kappa of a [subjects, categories] table of rating counts (every subject rated by
    the same number of raters, at least 2). None when undefined (no subject, or every rating in
    one category)."""
    table = np.asarray(counts, dtype=float)
    if table.ndim != 2 or table.shape[0] == 0:
        return None
    raters = table.sum(axis=1)
    if np.any(raters != raters[0]) or raters[0] < 2:
        raise InputError("Fleiss' kappa needs the same number (>= 2) of ratings for every case")
    n = raters[0]
    p_i = ((table ** 2).sum(axis=1) - n) / (n * (n - 1))
    p_j = table.sum(axis=0) / table.sum()
    p_e = float((p_j ** 2).sum())
    if p_e >= 1.0:
        return None
    return float((p_i.mean() - p_e) / (1.0 - p_e))


# -- inputs -------------------------------------------------------------------------------------
def read_key(path: str | Path) -> dict[str, dict[str, Any]]:
    """{case id: key entry with ``truth``, ``organ``, ``size`` (size group)}."""
    try:
        key = json.loads(Path(path).expanduser().read_text(encoding="utf-8"))
        cases = key["cases"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise InputError(f"cannot read the study key '{path}' ({exc}); give the key.json that "
                         "`readerstudy make` wrote beside the study folder") from exc
    out = {}
    for case_id, entry in cases.items():
        if entry.get("truth") not in CONVENTIONS:
            raise InputError(f"key '{path}': case {case_id} has no truth 'real' or 'synthetic'")
        diameter = entry.get("diameter_mm")
        size = NO_LESION if diameter is None else size_bucket(float(diameter))
        out[str(case_id)] = {**entry, "size": size}
    return out


def reader_name(path: Path) -> str:
    """``answers-alice.csv`` -> ``alice`` (else the file stem)."""
    stem = path.stem
    return stem[len("answers-"):] if stem.startswith("answers-") else stem


def read_answers(path: str | Path, key: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """{case id: {answer, confidence, reading_time_s}} of one answer sheet; InputError (with
    the line) for an unknown case id, a duplicate, or an answer / confidence / time out of
    range. Blank answers are kept as ``answer=""``."""
    out: dict[str, dict[str, Any]] = {}
    for where, row in read_sheet(path, ("case_id", "answer"), ANSWER_COLUMNS, "an answer sheet"):
        case_id = (row.get("case_id") or "").strip()
        if case_id not in key:
            raise InputError(f"{where}: case '{case_id}' is not in the key; is this sheet from another study?")
        if case_id in out:
            raise InputError(f"{where}: case '{case_id}' is answered twice; keep one row per case")
        out[case_id] = {"answer": checked_answer(row, where, ANSWERS),
                        "confidence": _number(row.get("confidence"), where, "confidence", 1, 5),
                        "reading_time_s": _number(row.get("reading_time_s"), where, "reading_time_s", 0, math.inf)}
    return out


def read_sheet(path: str | Path, required: Sequence[str], columns: Sequence[str],
               what: str) -> list[tuple[str, dict[str, str]]]:
    """The rows of a CSV answer sheet (a reader study's or a quiz's), each with where it is
    (``'file' line N``, for error messages); InputError when the file cannot be read or lacks
    one of the ``required`` columns (``columns``: the full layout, named in the message)."""
    path = Path(path).expanduser()
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise InputError(f"cannot read the answer sheet '{path}': {exc}") from exc
    reader = csv.DictReader(io.StringIO(text))
    if not set(required) <= set(reader.fieldnames or []):
        raise InputError(f"'{path}' is not {what} (columns {', '.join(columns)} expected)")
    return [(f"'{path.name}' line {line}", row) for line, row in enumerate(reader, start=2)]


def checked_answer(row: Mapping[str, str], where: str, allowed: Sequence[str]) -> str:
    """The row's answer, lower case ("" when blank); InputError unless it is one of ``allowed``."""
    answer = (row.get("answer") or "").strip().lower()
    if answer and answer not in allowed:
        raise InputError(f"{where}: answer '{answer}' must be one of {', '.join(allowed)} (or empty)")
    return answer


def _number(text: str | None, where: str, name: str, lo: float, hi: float) -> float | None:
    if text is None or not str(text).strip():
        return None
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"{where}: {name} '{text}' is not a number") from None
    if not lo <= value <= hi:
        raise InputError(f"{where}: {name} {value:g} must be between {lo:g} and {hi:g}")
    return value


# -- scoring ------------------------------------------------------------------------------------------
def verdict(truth: str, answer: str, positive: str, unsure: str, labels: Sequence[str] = ANSWERS[:2]) -> str | None:
    """tp / fn / tn / fp of one non-blank answer (``labels``: the two truths; ``positive`` one
    of them); an unsure answer leaves the table (None) or, with ``unsure="wrong"``, counts as
    the other label than the truth."""
    if answer == "unsure":
        if unsure == "exclude":
            return None
        answer = labels[0] if truth == labels[1] else labels[1]
    is_pos, said_pos = truth == positive, answer == positive
    return ("tp" if said_pos else "fn") if is_pos else ("fp" if said_pos else "tn")


def confusion(pairs: Sequence[tuple[str, str]], positive: str, unsure: str,
              labels: Sequence[str] = ANSWERS[:2]) -> dict[str, int]:
    """tp/fn/tn/fp (+ n_unsure, n_blank) of (truth, answer) pairs with ``positive`` truth."""
    counts = {"tp": 0, "fn": 0, "tn": 0, "fp": 0, "n_unsure": 0, "n_blank": 0}
    for truth, answer in pairs:
        if not answer:
            counts["n_blank"] += 1
            continue
        counts["n_unsure"] += answer == "unsure"
        said = verdict(truth, answer, positive, unsure, labels)
        if said is not None:
            counts[said] += 1
    return counts


def with_rates(counts: Mapping[str, int]) -> dict[str, Any]:
    """``counts`` (tp/fn/tn/fp...) with n_answered, sensitivity, specificity and accuracy, each
    with its 95 % Wilson interval (``_lo`` / ``_hi``)."""
    c = dict(counts)
    row: dict[str, Any] = {"n_answered": c["tp"] + c["fn"] + c["tn"] + c["fp"], **c}
    for name, x, n in (("sensitivity", c["tp"], c["tp"] + c["fn"]), ("specificity", c["tn"], c["tn"] + c["fp"]),
                       ("accuracy", c["tp"] + c["tn"], row["n_answered"])):
        row[name], row[f"{name}_lo"], row[f"{name}_hi"] = wilson_interval(x, n)
    return row


def score_row(reader: str, positive: str, group: str, pairs: Sequence[tuple[str, str]], unsure: str) -> dict[str, Any]:
    return {"reader": reader, "positive": positive, "group": group, "n_cases": len(pairs),
            **with_rates(confusion(pairs, positive, unsure))}


def groups_of(key: Mapping[str, Any]) -> list[tuple[str, list[str]]]:
    """("all" | "organ=..." | "size=...", case ids) in a stable order."""
    ids = sorted(key)
    out = [("all", ids)]
    size_rank = {name: n for n, (name, _lo, _hi) in enumerate(SIZE_BUCKETS)}
    for field in ("organ", "size"):
        values = sorted({str(key[c][field]) for c in ids}, key=lambda v: (size_rank.get(v, len(size_rank)), v))
        for value in values:
            out.append((f"{field}={value}", [c for c in ids if str(key[c][field]) == value]))
    return out


def agreement(key: Mapping[str, Any], answers: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Fleiss' kappa over the cases every reader answered (real / synthetic / unsure)."""
    readers = sorted(answers)
    common = [c for c in sorted(key) if all(answers[r].get(c, {}).get("answer") for r in readers)]
    table = np.array([[sum(1 for r in readers if answers[r][c]["answer"] == a) for a in ANSWERS]
                      for c in common], dtype=int).reshape(len(common), len(ANSWERS))
    kappa = fleiss_kappa(table) if len(readers) >= 2 and common else None
    return {"fleiss_kappa": kappa, "n_readers": len(readers), "n_cases": len(common),
            "categories": list(ANSWERS)}


def check_scoring_inputs(answers: Mapping[str, Any], unsure: str) -> None:
    """InputError unless ``unsure`` is a known mode and at least one answer sheet was given."""
    if unsure not in UNSURE_MODES:
        raise InputError(f"--unsure must be one of {', '.join(UNSURE_MODES)}, got '{unsure}'")
    if not answers:
        raise InputError("no answer sheet given")


def score_study(key: Mapping[str, Any], answers: Mapping[str, Mapping[str, Any]],
                unsure: str = "exclude") -> dict[str, Any]:
    """Every score row, agreement and per-reader summary (see the module docstring)."""
    check_scoring_inputs(answers, unsure)
    readers = sorted(answers)
    pooled = [(r, c) for r in readers for c in sorted(key)]
    rows = []
    for reader in readers + (["all"] if len(readers) > 1 else []):
        for positive in CONVENTIONS:
            for group, ids in groups_of(key):
                members = set(ids)
                pairs = [(key[c]["truth"], answers[r].get(c, {}).get("answer", ""))
                         for r, c in pooled if (reader == "all" or r == reader) and c in members]
                rows.append(score_row(reader, positive, group, pairs, unsure))
    summary = {}
    for reader in readers:
        given = [a for a in answers[reader].values() if a["answer"]]
        conf = [a["confidence"] for a in given if a["confidence"] is not None]
        times = [a["reading_time_s"] for a in given if a["reading_time_s"] is not None]
        synth = [(key[c]["truth"], answers[reader].get(c, {}).get("answer", "")) for c in key
                 if key[c]["truth"] == "synthetic"]
        fooled = sum(1 for _t, a in synth if a == "real" or (a == "unsure" and unsure == "wrong"))
        judged = sum(1 for _t, a in synth if a in ("real", "synthetic") or (a == "unsure" and unsure == "wrong"))
        summary[reader] = {"answered": len(given), "mean_confidence": float(np.mean(conf)) if conf else None,
                           "median_reading_time_s": float(np.median(times)) if times else None,
                           "synthetic_called_real": wilson_interval(fooled, judged)}
    return {"unsure": unsure, "rows": rows, "agreement": agreement(key, answers), "readers": summary,
            "n_cases": len(key), "n_real": sum(1 for c in key.values() if c["truth"] == "real"),
            "n_synthetic": sum(1 for c in key.values() if c["truth"] == "synthetic")}


__all__ = [
    "SCORE_COLUMNS",
    "UNSURE_MODES",
    "Z_95",
    "agreement",
    "checked_answer",
    "confusion",
    "fleiss_kappa",
    "groups_of",
    "read_answers",
    "read_key",
    "read_sheet",
    "reader_name",
    "score_row",
    "score_study",
    "verdict",
    "wilson_interval",
    "with_rates",
]
