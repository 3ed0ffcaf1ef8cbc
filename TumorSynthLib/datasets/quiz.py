"""``tumorsynth readerstudy quiz``: "find the malignant one" teaching quizzes.

Each quiz case is one scan (a healthy input case or the built-in phantom) with ``lesions``
synthetic lesions, ``malignant`` of them malignant tumors (the chosen method) and the rest
benign distractors (``synthesis.lesion_types``: cysts and hemangiomas). Every lesion's size is
drawn from the same range whatever its type, its place is sampled in the organ, and the lesions
are numbered 1..k in a random order, so neither number nor size gives the answer away.

Quiz folder (hand it to the learners)::

    OUT/cases/case-001/image.nii.gz    the CT with the lesions (marked synthetic)
    OUT/cases/case-001/lesions.nii.gz  lesion numbers 1..k (same grid): where each lesion is
    OUT/cases/case-001/lesions.csv     lesion, centre R/A/S (mm, as Slicer shows it), centre voxel
    OUT/cases/case-001/overview.png    an axial slice through each lesion, outlined and numbered
    OUT/answers-<reader>.csv           case_id, lesion, answer (malignant|benign|unsure),
                                       confidence (1-5), reading_time_s; one row per lesion
    OUT/quiz.json, OUT/README.txt      cases, answer options, instructions

Nothing in the folder names a lesion's type, method or seed: the same neutral texts go into every
header and file. The key (each lesion's type, malignancy, organ, size, centre, seed, and the
scan it was made in) goes to ``key`` (default ``OUT-key.json`` beside the folder), never inside
it; ``readerstudy score`` reads it.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from .. import __version__
from ..anatomy.analysis import labelmap_array
from ..anatomy.organs import canonical_organ
from ..anatomy.site import TumorSpec
from ..anatomy.task_labels import tumor_ids
from ..core.display import plane_slice
from ..core.errors import InputError, PlacementError
from ..core.events import EventStream
from ..core.files import (
    atomic_path,
    staged_folder,
    write_json_atomic,
    write_text_atomic,
)
from ..core.volume import Volume
from ..core.volume_io import load_volume, save_volume
from ..phantom import make_abdomen
from ..segmentation.datasets import find_cases
from ..synthesis.api import synthesize
from ..synthesis.lesion_types import LESION_TYPES, lesion_type
from ..synthesis.registry import method_names
from .readerstudy import key_beside, reader_order, valid_reader_names

QUIZ_NOTE = "teaching quiz case: synthetic lesions; not for diagnosis"
QUIZ_ANSWERS = ("malignant", "benign", "unsure")
QUIZ_COLUMNS = ("case_id", "lesion", "answer", "confidence", "reading_time_s")
KEY_KIND = "tumorsynth-quiz"
DIAMETER_RANGE_MM = (12.0, 30.0)
PLACEMENT_TRIES = 3
README_TEXT = (
    "Each case is a CT with several numbered lesions (lesions.nii.gz holds the numbers, "
    "lesions.csv their centres in R/A/S mm). Some lesions are malignant, the others benign. For "
    "every lesion, write in your answer sheet: answer = malignant | benign | unsure; confidence "
    "= 1 (guess) to 5 (certain); reading_time_s = seconds spent. Suggested window W 400 / L 40. "
    "All images are synthetic and not for diagnosis. Do not open any key file.")


@dataclass
class QuizConfig:
    """One ``readerstudy quiz`` run. ``inputs``: healthy image/label data (folders or
    datalists, as ``train`` reads them); none: the built-in phantom (seed + case number)."""

    out: str
    inputs: list[str] = field(default_factory=list)
    cases: int = 4
    lesions: int = 3
    malignant: int = 1
    organs: list[str] = field(default_factory=lambda: ["liver"])
    distractors: list[str] = field(default_factory=lambda: ["cyst", "hemangioma"])
    method: str = "handcrafted"
    diameter_mm: tuple[float, float] = DIAMETER_RANGE_MM
    labels: str = "totalseg"
    readers: list[str] = field(default_factory=lambda: ["reader-1"])
    key: str | None = None
    seed: int = 0
    small_phantom: bool = False

    def check(self) -> "QuizConfig":
        if not (1 <= int(self.cases) <= 500 and 1 <= int(self.lesions) <= 8):
            raise InputError(f"--cases must be 1-500 and --lesions 1-8, got {self.cases} and {self.lesions}")
        if not 0 <= int(self.malignant) <= int(self.lesions):
            raise InputError(f"--malignant must be 0 to --lesions ({self.lesions}), got {self.malignant}")
        self.organs = [canonical_organ(o) for o in self.organs]
        for name in self.distractors:
            if not lesion_type(name).benign:
                raise InputError(f"distractor '{name}' is not a benign lesion type; choose among "
                                 f"{', '.join(n for n, t in LESION_TYPES.items() if t.benign)}")
        if int(self.malignant) < int(self.lesions) and not self.distractors:
            raise InputError("give at least one distractor type (--distractors cyst,hemangioma)")
        if self.method not in method_names():
            raise InputError(f"unknown method '{self.method}'; choose one of: {', '.join(method_names())}")
        lo, hi = self.diameter_mm
        if not 4.0 <= lo <= hi <= 80.0:
            raise InputError(f"--diameter must be LO:HI mm with 4 <= LO <= HI <= 80, got {lo:g}:{hi:g}")
        valid_reader_names(self.readers)
        return self


# -- drawing the cases ---------------------------------------------------------------------------------
def draw_lesions(config: QuizConfig, rng: np.random.Generator) -> list[dict[str, Any]]:
    """The lesions of one case, in their blinded order (number = position + 1)."""
    kinds = ["tumor"] * int(config.malignant)
    for _ in range(int(config.lesions) - int(config.malignant)):
        kinds.append(str(config.distractors[int(rng.integers(len(config.distractors)))]))
    out = []
    for kind in (kinds[i] for i in rng.permutation(len(kinds))):
        organs = [o for o in config.organs if o in lesion_type(kind).organs] or list(lesion_type(kind).organs)
        organ = organs[int(rng.integers(len(organs)))]
        diameter = float(rng.uniform(*config.diameter_mm))
        out.append({"lesion": kind, "organ": organ, "diameter_mm": round(diameter, 1),
                    "seed": int(rng.integers(2**31 - 1))})
    return out


def lesion_spec(entry: dict[str, Any], method: str, attempt: int) -> TumorSpec:
    stage = "early" if entry["diameter_mm"] < 20.0 else "intermediate"
    return TumorSpec(organ=entry["organ"], diameter_mm=entry["diameter_mm"], stage=stage, method=method,
                     seed=entry["seed"] + attempt, options={"lesion": entry["lesion"]})


def case_scans(config: QuizConfig, scans: Sequence[tuple[Volume, Volume, str]] | None) -> Iterator[tuple]:
    """(image, labels, source name, convention) per quiz case, made or read one at a time.
    Input cases with a tumor label of a quiz organ are skipped (the quiz needs healthy scans)."""
    if scans:
        for i in range(config.cases):
            yield (*scans[i % len(scans)], "totalseg")
        return
    if not config.inputs:
        shape = {"shape": (128, 128, 48), "spacing": (2.8, 2.8, 5.0)} if config.small_phantom else {}
        for i in range(config.cases):
            ct, organs, _ = make_abdomen(seed=int(config.seed) + i, **shape)
            yield ct, organs, f"phantom seed {int(config.seed) + i}", "totalseg"
        return
    items = []
    for source in config.inputs:
        training, validation = find_cases(source)
        items += sorted(training + validation, key=lambda c: c.case_id)
    healthy, i = 0, 0
    while healthy < config.cases:
        if i >= len(items) and healthy == 0:
            raise InputError(f"no healthy case in {', '.join(config.inputs)}: every case holds a "
                             f"{'/'.join(config.organs)} tumor label; the quiz needs scans without tumors")
        case = items[i % len(items)]
        i += 1
        image, labels = load_volume(case.image), load_volume(case.label)
        arr, conv = labelmap_array(labels, config.labels, image=image, organ=config.organs[0])
        if any(np.isin(arr, tumor_ids(organ, conv)).any() for organ in config.organs):
            continue
        healthy += 1
        yield image, labels, str(case.image), conv


def synthesize_case(image: Volume, labels: Volume, conv: str, entries: list[dict[str, Any]], method: str,
                    case_id: str):
    """The case's synthesis; a sampled place that does not fit is drawn again (new seeds)."""
    error: PlacementError | None = None
    for attempt in range(PLACEMENT_TRIES):
        try:
            specs = [lesion_spec(e, method, attempt * 1000) for e in entries]
            result = synthesize(image, labels, specs, conv, case_id=case_id)
            for e in entries:
                e["seed"] += attempt * 1000
            return result
        except PlacementError as exc:
            error = exc
    raise PlacementError(f"{case_id}: the organ has no room for {len(entries)} lesions of "
                         f"{min(e['diameter_mm'] for e in entries):.0f}-{max(e['diameter_mm'] for e in entries):.0f} mm "
                         f"({error}); ask for fewer or smaller lesions (--lesions, --diameter)")


# -- writing ---------------------------------------------------------------------------------------------
def lesion_table(reports: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["lesion", "center_r_mm", "center_a_mm", "center_s_mm", "center_i", "center_j", "center_k"])
    for n, report in enumerate(reports, 1):
        ras = report["centroid_ras"] or report["center_placed_ras"]
        vox = report["centroid_voxel"] or report["center_voxel"]
        writer.writerow([n, *(f"{v:.1f}" for v in ras), *(int(round(v)) for v in vox)])
    return buf.getvalue()


def quiz_sheet_text(order: Sequence[str], lesions: dict[str, int]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(QUIZ_COLUMNS)
    for case_id in order:
        for n in range(1, lesions[case_id] + 1):
            writer.writerow([case_id, n, "", "", ""])
    return buf.getvalue()


def write_quiz_case(result: Any, case_dir: Path) -> None:
    """image, lesion numbers and centres of one case, with neutral texts only."""
    case_dir.mkdir(parents=True, exist_ok=True)
    save_volume(result.image, case_dir / "image.nii.gz", synthetic=True, description=QUIZ_NOTE)
    numbers = Volume(result.tumor_instances.array.astype(np.int16), result.image.affine, {})
    save_volume(numbers, case_dir / "lesions.nii.gz", synthetic=True, description=QUIZ_NOTE)
    write_text_atomic(case_dir / "lesions.csv", lesion_table(result.reports))
    write_overview(result.image, numbers, [r["centroid_voxel"] or r["center_voxel"] for r in result.reports],
                   case_dir / "overview.png")


def write_overview(image: Volume, numbers: Volume, centres: Sequence[Sequence[float]], path: Path) -> None:
    """One radiological axial slice per lesion (W 400 / L 40), 100 mm across, the lesion
    outlined and numbered; the same neutral title for every case."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(centres), figsize=(3.2 * len(centres), 3.5), squeeze=False)
    for n, (ax, centre) in enumerate(zip(axes[0], centres), 1):
        tile, (row, col), (sr, sc) = plane_slice(image.array, image.affine, centre, "axial")
        mask, _, _ = plane_slice(numbers.array, numbers.affine, centre, "axial")
        half = np.array([50.0 / sr, 50.0 / sc])
        lo = np.maximum(np.rint([row, col] - half).astype(int), 0)
        hi = np.rint([row, col] + half).astype(int) + 1
        view = (slice(lo[0], hi[0]), slice(lo[1], hi[1]))
        ax.imshow(tile[view], cmap="gray", vmin=-160, vmax=240, aspect=sr / sc, interpolation="nearest")
        if (mask[view] == n).any():
            ax.contour(mask[view] == n, [0.5], colors="yellow", linewidths=0.8)
        ax.set_title(f"lesion {n}")
        ax.axis("off")
    fig.suptitle("synthetic lesions - not for diagnosis", fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=80, format="png")
    plt.close(fig)


def key_entry(entries: list[dict[str, Any]], reports: list[dict[str, Any]], source: str) -> dict[str, Any]:
    lesions = {}
    for n, (entry, report) in enumerate(zip(entries, reports), 1):
        lesions[str(n)] = {
            "lesion": report["lesion"], "malignant": not report["benign"], "organ": report["organ"],
            "diameter_mm": report["diameter_measured_mm"], "diameter_target_mm": report["diameter_target_mm"],
            "centroid_ras": report["centroid_ras"], "seed": entry["seed"], "method": report["method"],
            "geometry": report["geometry"], "appearance": report["appearance"], "stage": report["stage"],
            "appearance_info": report["appearance_info"], "warnings": report["warnings"]}
    return {"source": source, "lesions": lesions}


def make_quiz(config: QuizConfig, events: Any = None,
              scans: Sequence[tuple[Volume, Volume, str]] | None = None) -> dict[str, Any]:
    """Build the quiz folder and its key; returns a summary. ``scans``: (image, labels in
    TotalSegmentator ids, source name) to use instead of ``inputs`` (the demo's phantom)."""
    config.check()
    out = Path(config.out).expanduser()
    key_path = key_beside(out, config.key)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputError(f"'{out}' already exists and is not empty (a quiz with answers?); choose a new "
                         "--out folder")
    events = events if events is not None else EventStream("none", enabled=False)
    width = max(3, len(str(config.cases)))
    ids = [f"case-{i + 1:0{width}d}" for i in range(config.cases)]
    events.start(0, total=len(ids), command="readerstudy quiz")
    key_cases, counts = {}, {}
    with staged_folder(out) as stage:                    # complete or absent, even after kill -9
        for i, (case_id, (image, labels, source, conv)) in enumerate(zip(ids, case_scans(config, scans))):
            rng = np.random.default_rng(np.random.SeedSequence([int(config.seed), 0x0917, i]))
            entries = draw_lesions(config, rng)
            result = synthesize_case(image, labels, conv, entries, config.method, case_id)
            write_quiz_case(result, stage / "cases" / case_id)
            key_cases[case_id] = key_entry(entries, result.reports, source)
            counts[case_id] = len(entries)
            events.progress(i + 1)
        sheets = {}
        for reader in config.readers:
            sheets[reader] = f"answers-{reader}.csv"
            write_text_atomic(stage / sheets[reader], quiz_sheet_text(reader_order(ids, reader, config.seed), counts))
        info = {"quiz": "teaching quiz: find the malignant lesions", "note": QUIZ_NOTE, "cases": ids,
                "lesions_per_case": counts, "readers": list(config.readers), "answer_sheets": sheets,
                "answer_columns": list(QUIZ_COLUMNS), "answers": list(QUIZ_ANSWERS), "confidence": [1, 5],
                "window": {"center": 40, "width": 400}, "instructions": README_TEXT}
        write_json_atomic(stage / "quiz.json", info)
        write_text_atomic(stage / "README.txt", README_TEXT + "\n")
    settings = {"cases": config.cases, "lesions": config.lesions, "malignant": config.malignant,
                "organs": config.organs, "distractors": list(config.distractors), "method": config.method,
                "diameter_mm": list(config.diameter_mm), "inputs": list(config.inputs), "labels": config.labels}
    write_json_atomic(key_path, {"kind": KEY_KIND, "tumorsynth_version": __version__, "quiz_dir": str(out.resolve()),
                                 "seed": int(config.seed), "settings": settings, "cases": key_cases})
    n_lesions = sum(counts.values())
    n_malignant = sum(x["malignant"] for c in key_cases.values() for x in c["lesions"].values())
    summary = {"out": str(out), "key": str(key_path), "cases": len(ids), "lesions": n_lesions,
               "malignant": n_malignant, "benign": n_lesions - n_malignant, "readers": list(config.readers)}
    events.done(len(ids), **summary)
    return summary


__all__ = ["KEY_KIND", "QUIZ_ANSWERS", "QUIZ_COLUMNS", "QUIZ_NOTE", "QuizConfig", "draw_lesions", "make_quiz"]
