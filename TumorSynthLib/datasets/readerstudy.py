"""``tumorsynth readerstudy make``: a blinded visual Turing test (real vs synthetic tumors).

Sources (``readerstudy_cases.py``): real image/label pairs (their tumors, or a point inside the
organ for healthy scans) and synthetic cases written by ``synth`` / ``generate`` / ``demo``.

Blinding (``blind_crop``), the same for every case, so that only the tissue can tell real from
synthetic: trilinear resampling to 1 mm isotropic voxels on a 64 mm cube (``CUBE_VOXELS``)
centred on the lesion, axes along R, A, S (identity direction, origin 0), HU clipped to
[-1024, 3071] (air outside the scan too) and rounded to int16; written uncompressed (``.nii``),
so every case file has the same size and header except its neutral id; the NIfTI description
and the JSON sidecar carry the same neutral flag for every case (``NEUTRAL_NOTE``). With
``fmt="dicom"`` each case is a DICOM series with the same neutral texts (no burned-in mark).
Cases are shuffled by ``seed`` and named ``case-001`` ... in that order, and written in id
order. The lesion is at the centre of every cube; no label is given to readers.

Study folder (the one handed to readers)::

    OUT/cases/case-001.nii + case-001.json   (or cases/case-001/IM0001.dcm ... + case-001.json)
    OUT/answers-<reader>.csv                 one answer sheet per reader (cases in a per-reader
                                             random order; columns ANSWER_COLUMNS)
    OUT/study.json, OUT/README.txt           case list, answer options, window, instructions

The key (truth, kind, organ, size, source, centre, method and seed of each case) is written to
``key_path``, by default ``OUT-key.json`` beside the study folder, and never inside it.
"""
from __future__ import annotations

import csv
import io
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from scipy import ndimage

from .. import __version__
from ..core.errors import InputError
from ..core.events import EventStream
from ..core.volume import Volume
from ..core.volume_io import load_volume, save_volume
from ..anatomy.task_labels import guess_convention
from ..segmentation.datasets import find_cases
from .dicom_export import (
    SeriesText,
    content_digest,
    ct_datasets,
    stored_volume,
    write_ct_series,
)
from .generate import GenerateConfig, generate
from ..core.files import write_json_atomic, write_text_atomic
from .readerstudy_cases import (
    LESION_MODES,
    MIN_DIAMETER_MM,
    StudyLesion,
    find_synthetic_reports,
    parse_organs,
    real_lesions,
    synthetic_lesions,
)

CUBE_MM, VOXEL_MM = 64.0, 1.0
CUBE_VOXELS = int(round(CUBE_MM / VOXEL_MM))
HU_RANGE = (-1024, 3071)
NEUTRAL_NOTE = "reader study case: may contain synthetic content; not for diagnosis"
ANSWER_COLUMNS = ("case_id", "answer", "confidence", "reading_time_s")
ANSWERS = ("real", "synthetic", "unsure")
WINDOW = {"center": 40, "width": 400}
FORMATS = ("nifti", "dicom")
_READER_NAME = re.compile(r"^[A-Za-z0-9_-]{1,40}$")


@dataclass
class StudyConfig:
    """One ``readerstudy make`` run."""

    out: str
    real: list[str] = field(default_factory=list)
    synthetic: list[str] = field(default_factory=list)
    readers: list[str] = field(default_factory=lambda: ["reader-1"])
    organs: list[str] = field(default_factory=lambda: ["liver", "pancreas", "kidney"])
    lesions: str = "largest"
    labels: str = "auto"
    include_healthy: bool = True
    min_diameter_mm: float = MIN_DIAMETER_MM
    fmt: str = "nifti"
    key: str | None = None
    seed: int = 0
    generate: int = 0               # synthetic variants made per healthy real case and organ
    method: str = "handcrafted"

    def check(self) -> "StudyConfig":
        self.organs = parse_organs(self.organs)
        if not self.real and not self.synthetic:
            raise InputError("give real cases (--real) and synthetic cases (--synthetic or --generate N)")
        if isinstance(self.generate, bool) or int(self.generate) != self.generate or not 0 <= self.generate <= 100:
            raise InputError(f"--generate must be a whole number from 0 to 100, got {self.generate}")
        if self.lesions not in LESION_MODES:
            raise InputError(f"--lesions must be one of {', '.join(LESION_MODES)}, got '{self.lesions}'")
        if self.fmt not in FORMATS:
            raise InputError(f"--format must be one of {', '.join(FORMATS)}, got '{self.fmt}'")
        bad = [r for r in self.readers if not _READER_NAME.match(r)]
        if bad or not self.readers or len(set(self.readers)) != len(self.readers):
            raise InputError(f"reader names must be unique, 1-40 letters, digits, '-' or '_' (got {self.readers})")
        return self

    def key_path(self) -> Path:
        out = Path(self.out).expanduser().resolve()
        key = Path(self.key).expanduser().resolve() if self.key else out.parent / f"{out.name}-key.json"
        if key == out or out in key.parents:
            raise InputError(f"the key '{key}' would be inside the study folder '{out}' that readers "
                             "get; write it elsewhere (--key PATH outside --out)")
        return key


# -- collecting the lesions ------------------------------------------------------------------------
def collect_lesions(config: StudyConfig, warn: Any = None) -> list[StudyLesion]:
    """Every lesion of the sources, in a fixed order (real inputs, then synthetic inputs)."""

    found: list[StudyLesion] = []
    for source in config.real:
        training, validation = find_cases(source)
        for case in sorted(training + validation, key=lambda c: c.case_id):
            labels = load_volume(case.label)
            conv = config.labels if config.labels != "auto" else guess_convention(
                np.asarray(labels.array), config.organs[0])
            lesions = real_lesions(case.case_id, case.image, case.label, labels, conv, config.organs,
                                   config.lesions, config.seed, config.min_diameter_mm)
            if not config.include_healthy:
                lesions = [x for x in lesions if x.kind != "real-healthy"]
            if not lesions and warn is not None:
                warn(f"warning: real case '{case.case_id}' has no {'/'.join(config.organs)}: skipped")
            found += lesions
    for source in config.synthetic + generate_synthetic(config, warn):
        for report in find_synthetic_reports(source):
            found += synthetic_lesions(report, config.lesions, config.organs)
    kinds = {x.truth for x in found}
    if kinds != {"real", "synthetic"}:
        missing = "real" if "real" not in kinds else "synthetic"
        raise InputError(f"the study has no {missing} case (found {len(found)} case(s)); a visual "
                         f"Turing test needs both real and synthetic cases in {'/'.join(config.organs)}")
    return found


def generated_dir(config: StudyConfig) -> Path:
    """Where ``--generate`` writes its synthetic cases: beside the study folder, never inside
    it (their reports say what they are)."""
    out = Path(config.out).expanduser().resolve()
    return out.parent / f"{out.name}-generated"


def generate_synthetic(config: StudyConfig, warn: Any = None) -> list[str]:
    """With ``config.generate`` = N, N synthetic variants per healthy real case and organ
    (``datasets.generate``: cases with a real tumor are skipped there); returns their folders."""
    if not config.generate:
        return []

    folders = []
    for n, source in enumerate(config.real):
        for organ in config.organs:
            folder = generated_dir(config) / f"{organ}-{n}"
            run = GenerateConfig(input=str(source), out=str(folder), organ=organ, method=config.method,
                                 per_case=int(config.generate), labels=config.labels, seed=config.seed)
            summary = generate(run)
            if summary["generated"] + summary["resumed"] == 0 and warn is not None:
                warn(f"warning: --generate made no {organ} case from '{source}' (no healthy case with a {organ})")
            else:
                folders.append(str(folder))
    return folders


# -- blinding --------------------------------------------------------------------------------------
def cube_affine() -> np.ndarray:
    """The affine of every blinded case: 1 mm voxels along R, A, S, origin 0."""
    return np.diag([VOXEL_MM, VOXEL_MM, VOXEL_MM, 1.0])


def blind_crop(image: Volume, center_ras: Sequence[float]) -> np.ndarray:
    """int16 ``[i, j, k]`` cube of ``CUBE_VOXELS``^3 1 mm voxels centred on ``center_ras``
    (trilinear; outside the scan and beyond ``HU_RANGE`` clipped). The input is not modified."""
    offsets = (np.arange(CUBE_VOXELS) - (CUBE_VOXELS - 1) / 2.0) * VOXEL_MM
    grid = np.stack(np.meshgrid(offsets, offsets, offsets, indexing="ij"), axis=-1).reshape(-1, 3)
    points = image.ras_to_voxel(grid + np.asarray(center_ras, dtype=float))
    lo = np.maximum(np.floor(points.min(axis=0)).astype(int) - 1, 0)
    hi = np.minimum(np.ceil(points.max(axis=0)).astype(int) + 2, image.shape)
    if np.any(hi <= lo):
        raise InputError(f"the lesion centre {list(np.round(center_ras, 1))} lies outside the image "
                         f"'{image.metadata.get('source_path', '')}'")
    sub = np.asarray(image.array[tuple(slice(a, b) for a, b in zip(lo, hi))], dtype=np.float32)
    values = ndimage.map_coordinates(sub, (points - lo).T, order=1, mode="constant",
                                     cval=float(HU_RANGE[0]), prefilter=False)
    values = np.clip(np.rint(values), *HU_RANGE).astype(np.int16)
    return values.reshape((CUBE_VOXELS,) * 3)


def shuffled_ids(n: int, seed: int) -> tuple[list[str], np.ndarray]:
    """(neutral ids case-001 ..., permutation): lesion ``order[m]`` becomes id ``m``."""
    width = max(3, len(str(n)))
    order = np.random.default_rng(np.random.SeedSequence([int(seed), 0x5EAD])).permutation(n)
    return [f"case-{m + 1:0{width}d}" for m in range(n)], order


def reader_order(ids: Sequence[str], reader: str, seed: int) -> list[str]:
    """The order of ``ids`` on ``reader``'s answer sheet (random per reader, from the seed)."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), zlib.crc32(reader.encode()), 0x0DE5]))
    return [ids[i] for i in rng.permutation(len(ids))]


# -- writing -----------------------------------------------------------------------------------------
def answer_sheet_text(order: Sequence[str]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(ANSWER_COLUMNS)
    for case_id in order:
        writer.writerow([case_id, "", "", ""])
    return buf.getvalue()


def case_sidecar(case_id: str) -> dict[str, Any]:
    """The JSON beside every case: the same for all but the id."""
    return {"case_id": case_id, "note": NEUTRAL_NOTE, "may_contain_synthetic_content": True,
            "voxel_size_mm": VOXEL_MM, "cube_size_mm": CUBE_MM, "lesion": "at the centre of the volume",
            "window": dict(WINDOW)}


def write_case(cube: np.ndarray, case_id: str, cases_dir: Path, fmt: str, seed: int) -> Path:
    """Write one blinded case (NIfTI or DICOM) and its sidecar; returns the image path."""

    volume = Volume(cube, cube_affine(), {})
    write_json_atomic(cases_dir / f"{case_id}.json", case_sidecar(case_id))
    if fmt == "nifti":
        return save_volume(volume, cases_dir / f"{case_id}.nii", description=NEUTRAL_NOTE)

    text = SeriesText(series_description="Reader study case", image_comments=NEUTRAL_NOTE,
                      study_description="TumorSynth reader study", patient_name=f"READER^{case_id}",
                      patient_id=case_id, burn_in=False, window_center=WINDOW["center"],
                      window_width=WINDOW["width"])
    digest = content_digest(cube, [], text, seed)
    write_ct_series(ct_datasets(stored_volume(volume), text, digest), cases_dir / case_id)
    return cases_dir / case_id


def study_info(config: StudyConfig, ids: Sequence[str], sheets: dict[str, str]) -> dict[str, Any]:
    return {
        "study": "TumorSynth visual Turing test", "note": NEUTRAL_NOTE, "format": config.fmt,
        "cases": list(ids), "readers": list(config.readers), "answer_sheets": sheets,
        "answer_columns": list(ANSWER_COLUMNS), "answers": list(ANSWERS), "confidence": [1, 5],
        "window": dict(WINDOW), "voxel_size_mm": VOXEL_MM, "cube_size_mm": CUBE_MM,
        "instructions": README_TEXT,
    }


README_TEXT = (
    "Each case is a 64 mm cube of CT (1 mm voxels) centred on a lesion or on organ tissue. Some "
    "cases are real, some contain a computer-generated (synthetic) tumor. For each case, write in "
    "your answer sheet: answer = real | synthetic | unsure; confidence = 1 (guess) to 5 (certain); "
    "reading_time_s = seconds spent (the Slicer Reader panel fills it in). Suggested window: "
    "W 400 / L 40. Leave a row empty to skip a case. Do not open any key file.")


def crop_all(lesions: Sequence[StudyLesion], events: Any) -> dict[int, np.ndarray]:
    """Blinded cube of every lesion, reading each source scan once (lesions grouped by scan)."""

    cubes: dict[int, np.ndarray] = {}
    image, path = None, None
    for step, index in enumerate(sorted(range(len(lesions)), key=lambda i: (lesions[i].image, i)), 1):
        if lesions[index].image != path:
            path = lesions[index].image
            image = load_volume(path)
        cubes[index] = blind_crop(image, lesions[index].center_ras)
        events.progress(step)
    return cubes


def make_study(config: StudyConfig, events: Any = None) -> dict[str, Any]:
    """Build the study folder and the key; returns a summary (JSON-able)."""

    config.check()
    out = Path(config.out).expanduser()
    key_path = config.key_path()
    if (out / "study.json").exists():
        raise InputError(f"'{out}' already holds a study; choose a new --out folder")
    events = events if events is not None else EventStream("none", enabled=False)
    lesions = collect_lesions(config, warn=events.log)
    ids, order = shuffled_ids(len(lesions), config.seed)
    events.start(0, total=len(ids), command="readerstudy make")
    cases_dir = out / "cases"
    cases_dir.mkdir(parents=True, exist_ok=True)
    cubes = crop_all(lesions, events)
    key_cases = {}
    for case_id, index in zip(ids, order):               # written in id order: nothing to read
        write_case(cubes.pop(int(index)), case_id, cases_dir, config.fmt, config.seed)
        key_cases[case_id] = lesions[int(index)].key_entry()
    sheets = {}
    for reader in config.readers:
        sheets[reader] = f"answers-{reader}.csv"
        write_text_atomic(out / sheets[reader], answer_sheet_text(reader_order(ids, reader, config.seed)))
    write_json_atomic(out / "study.json", study_info(config, ids, sheets))
    write_text_atomic(out / "README.txt", README_TEXT + "\n")
    key = {"tumorsynth_version": __version__, "study_dir": str(out.resolve()), "seed": config.seed,
           "settings": {"organs": config.organs, "lesions": config.lesions, "labels": config.labels,
                        "format": config.fmt, "include_healthy": config.include_healthy,
                        "min_diameter_mm": config.min_diameter_mm, "cube_mm": CUBE_MM, "voxel_mm": VOXEL_MM,
                        "real": list(config.real), "synthetic": list(config.synthetic),
                        "generate": int(config.generate), "method": config.method},
           "cases": key_cases}
    write_json_atomic(key_path, key)
    counts = {kind: sum(1 for c in key_cases.values() if c["kind"] == kind)
              for kind in ("real-tumor", "real-healthy", "synthetic")}
    summary = {"out": str(out), "key": str(key_path), "cases": len(ids), **counts,
               "readers": list(config.readers)}
    events.done(len(ids), **summary)
    return summary


__all__ = ["StudyConfig", "make_study", "collect_lesions", "blind_crop", "cube_affine", "shuffled_ids",
           "reader_order", "case_sidecar", "answer_sheet_text", "ANSWER_COLUMNS", "ANSWERS",
           "NEUTRAL_NOTE", "CUBE_VOXELS", "CUBE_MM", "VOXEL_MM", "HU_RANGE", "WINDOW", "FORMATS"]
