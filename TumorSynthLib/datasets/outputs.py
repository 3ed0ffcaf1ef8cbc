"""Files of a batch generation run (``generate.py``): where each output goes, the per-output
``report.json`` (written last, atomically: its presence marks an output finished), and the
dataset-level files rebuilt from every finished output: ``dataset.json`` (decathlon datalist,
paths relative to ``OUT``) and ``manifest.csv``.

Because the dataset files are rebuilt from what is on disk, shards writing into one folder
need no coordination: the last run to finish lists everything (rerunning any shard, or the
unsharded command, only rewrites these two files).
"""
from __future__ import annotations

import csv
import io
import json
import os
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, Iterator

from ..core.errors import InputError
from ..core.files import (
    atomic_path,
    path_inside,
    prepare_output_folder,
    safe_name,
    sha256_file,
    shown,
    split_timing,
    staged_folder,
    to_jsonable,
    write_json_atomic,
    write_text_atomic,
)
from ..core.locks import FolderLock, LockInfo, folder_lock
from ..core.volume_io import ensure_not_overwriting, write_volume_file
from .preview import write_preview

DATALIST_NAME, MANIFEST_NAME = "dataset.json", "manifest.csv"
MANIFEST_COLUMNS = ("name", "case_id", "variant", "image", "label", "report", "n_tumors", "stages",
                    "diameters_mm", "quality_scores", "quality_passed")


def output_paths(out: str | Path, name: str, layout: str) -> dict[str, Path]:
    """image / label / report paths of output ``name`` in ``layout`` ("folders" | "flat")."""
    out = Path(out)
    if safe_name(name) != name:
        raise InputError(f"output name {shown(name)} is not a safe file name; rename the input case")
    if layout == "flat":
        return {"image": path_inside(out, "imagesTr", f"{name}.nii.gz"),
                "label": path_inside(out, "labelsTr", f"{name}.nii.gz"),
                "report": path_inside(out, "reports", f"{name}.json")}
    folder = path_inside(out, name)
    return {"image": folder / "image.nii.gz", "label": folder / "label.nii.gz", "report": folder / "report.json"}


def write_case(paths: dict[str, Path], result: Any, header: dict[str, Any], inputs: tuple[Any, ...] = (),
               preview: Path | None = None) -> dict[str, Path]:
    """The one writer of a synthetic case: image and labels (marked synthetic), the preview
    montage (optional), then ``report.json`` (written last, atomically: its presence marks the
    case finished). Image, labels and preview are written to temporary files first; an old
    report is removed before they replace the old files, so a crash never leaves a report
    beside files it does not describe (the report holds their SHA-256). ``header`` leads the
    report; every ``timing`` entry is gathered in one ``timing`` object (the only part that
    differs between two runs with the same seed). ``paths`` has "image", "label" and "report";
    inputs are never overwritten. For a case folder use ``write_case_folder`` (atomic as a whole)."""
    t0 = time.perf_counter()
    for key in ("image", "label", "report"):
        ensure_not_overwriting(paths[key], *inputs)
    targets = {"image": paths["image"], "label": paths["label"]}
    if preview is not None:
        targets["preview"] = preview
    with ExitStack() as stack:
        tmp = {key: stack.enter_context(atomic_path(path)) for key, path in targets.items()}
        write_volume_file(result.image, tmp["image"], True, "image")
        write_volume_file(result.labels, tmp["label"], True, "labels")
        if preview is not None:
            write_preview(result.image, result.labels, result.reports, tmp["preview"],
                          instances=result.tumor_instances)
        checksums = {key: sha256_file(t) for key, t in tmp.items()}
        paths["report"].unlink(missing_ok=True)   # unfinished until the new report is written
    written = dict(targets)
    case, case_timing = split_timing(result.case_report, "case")
    tumors, tumor_timing = split_timing(result.reports, "tumors")
    folder = paths["report"].parent
    report = {
        "synthetic": True, "note": "contains synthetic tumors made by TumorSynth; not for diagnosis",
        **header,
        "outputs": {k: os.path.relpath(v, folder) for k, v in written.items()},
        "sha256": checksums,
        "label_names": {str(k): v for k, v in sorted(result.label_names.items())},
        "case": case, "tumors": tumors,
        "timing": {**case_timing, **tumor_timing, "write_s": time.perf_counter() - t0},
    }
    written["report"] = write_json_atomic(paths["report"], report)
    return written


#: File names of a case folder (``synth`` and ``generate --layout folders``).
CASE_FILES = {"image": "image.nii.gz", "label": "label.nii.gz", "report": "report.json", "preview": "preview.png"}


def case_paths(folder: Path) -> dict[str, Path]:
    """image / label / report / preview paths of a case folder."""
    return {k: Path(folder) / name for k, name in CASE_FILES.items()}


@contextmanager
def case_folder(folder: Path, inputs: tuple[Any, ...] = ()) -> Iterator[Path]:
    """A staging folder for the case folder ``folder`` (``files.staged_folder``): write the case
    into it (``write_case(case_paths(stage), ...)``); it replaces ``folder`` as a whole when the
    block succeeds, so a crash leaves the previous case or the new one, never a mix. Refused
    (InputError) before anything is written: an input inside ``folder``, a ``folder`` holding
    files TumorSynth did not write, a place that cannot be written."""
    folder = Path(folder)
    _refuse_inputs_inside(folder, inputs)
    with staged_folder(folder, allowed=set(CASE_FILES.values())) as stage:
        yield stage


def write_case_folder(folder: Path, result: Any, header: dict[str, Any], inputs: tuple[Any, ...] = (),
                      preview: bool = True) -> dict[str, Path]:
    """``write_case`` into a case folder that appears only when complete (``case_folder``)."""
    with case_folder(folder, inputs) as stage:
        paths = case_paths(stage)
        written = write_case(paths, result, header, inputs, preview=paths["preview"] if preview else None)
    return {k: Path(folder) / v.name for k, v in written.items()}


def _refuse_inputs_inside(folder: Path, inputs: tuple[Any, ...]) -> None:
    """InputError when an input file lies inside ``folder`` (the folder is replaced as a whole)."""
    root = folder.expanduser().resolve()
    for given in inputs:
        if given is None:
            continue
        path = Path(given).expanduser().resolve()
        if path == root or root in path.parents:
            raise InputError(f"the input '{given}' lies inside the output folder '{folder}', which is replaced "
                             "as a whole; choose another output folder (inputs are never overwritten)")


def check_out(out: str | Path, input_path: str | Path) -> Path:
    """``--out`` of a batch, created and proven writable; not the input folder."""
    out = Path(out).expanduser()
    source = Path(input_path).expanduser()
    source_dir = source if source.is_dir() else source.parent
    if out.exists() and source_dir.exists() and out.resolve() == source_dir.resolve():
        raise InputError(f"--out '{out}' is the input folder; write the generated cases to another folder")
    return prepare_output_folder(out)


def lock_out(out: Path, shard: tuple[int, int], settings: dict[str, Any], what: str) -> FolderLock:
    """The lock of a batch's ``--out`` (``core.locks``): one run at a time, except shards of one
    split (same N, another I, same settings), which write disjoint outputs."""
    i, n = shard
    settings = to_jsonable(settings)

    def same_split(mine: LockInfo, other: LockInfo) -> bool:
        theirs = other.extra.get("shard")
        return (n > 1 and isinstance(theirs, list) and len(theirs) == 2 and theirs[1] == n and theirs[0] != i
                and other.extra.get("settings") == settings)

    return folder_lock(out, f"tumorsynth generate {what} --shard {i}/{n}",
                       key="" if n == 1 else f"generate-shard-{i}-of-{n}",
                       extra={"shard": [i, n], "settings": settings}, compatible=same_split)


def read_report(path: Path) -> dict[str, Any] | None:
    """The report of a finished output, or None when absent or not one of ours."""
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return report if isinstance(report, dict) and report.get("synthetic") and "name" in report else None


def check_same_settings(report: dict[str, Any], settings: dict[str, Any], path: Path) -> None:
    """InputError when a finished output was made with other settings (resuming would mix
    two datasets in one folder)."""

    saved, now = report.get("settings"), to_jsonable(settings)
    if saved != now:
        diff = sorted(k for k in set(saved or {}) | set(now) if (saved or {}).get(k) != now.get(k))
        raise InputError(f"'{path}' was made with other settings ({', '.join(diff)} differ); "
                         "use another --out folder, or rerun with the settings it was made with")


def finished_outputs(out: str | Path, layout: str) -> list[tuple[dict[str, Any], dict[str, Path]]]:
    """(report, paths) of every finished output in ``out``, sorted by name."""
    out = Path(out)
    if layout == "flat":
        candidates = sorted((out / "reports").glob("*.json")) if (out / "reports").is_dir() else []
    else:
        candidates = sorted(p / "report.json" for p in out.iterdir() if p.is_dir()) if out.is_dir() else []
    found = []
    for report_path in candidates:
        report = read_report(report_path) if report_path.is_file() else None
        if report is None:
            continue
        paths = output_paths(out, str(report["name"]), layout)
        if paths["report"] == report_path and paths["image"].is_file() and paths["label"].is_file():
            found.append((report, paths))
    return sorted(found, key=lambda rp: str(rp[0]["name"]))


def write_dataset_files(out: str | Path, layout: str) -> tuple[Path, Path, int]:
    """Rebuild ``dataset.json`` and ``manifest.csv`` from every finished output; returns
    (datalist path, manifest path, number of outputs)."""
    out = Path(out)
    outputs = finished_outputs(out, layout)
    rel = lambda p: Path(os.path.relpath(p, out)).as_posix()  # noqa: E731
    training = [{"image": rel(paths["image"]), "label": rel(paths["label"]), "case_id": str(r["name"])}
                for r, paths in outputs]
    names = outputs[0][0].get("label_names", {}) if outputs else {}
    datalist = {
        "name": "TumorSynth synthetic tumors", "synthetic": True,
        "description": "CT scans with synthetic tumors made by TumorSynth (not real tumors; not for diagnosis)",
        "tensorImageSize": "3D", "modality": {"0": "CT"}, "labels": names,
        "numTraining": len(training), "training": training, "validation": [],
    }
    datalist_path = write_json_atomic(out / DATALIST_NAME, datalist)
    manifest_path = write_text_atomic(out / MANIFEST_NAME, _manifest_csv(outputs, rel))
    return datalist_path, manifest_path, len(training)


def _manifest_csv(outputs: list[tuple[dict[str, Any], dict[str, Path]]], rel: Any) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(MANIFEST_COLUMNS)
    for report, paths in outputs:
        tumors = report.get("tumors") or []
        quality = [t.get("quality") or {} for t in tumors]
        writer.writerow([
            report["name"], report.get("case_id", ""), report.get("variant", ""),
            rel(paths["image"]), rel(paths["label"]), rel(paths["report"]), len(tumors),
            ";".join(str(t.get("stage", "")) for t in tumors),
            ";".join(f"{float(t.get('diameter_measured_mm') or 0.0):.1f}" for t in tumors),
            ";".join("" if q.get("score") is None else f"{q['score']:.3f}" for q in quality),
            ";".join("" if "passed" not in q else str(bool(q["passed"])).lower() for q in quality),
        ])
    return buf.getvalue()


__all__ = ["check_out", "lock_out", "output_paths", "read_report", "check_same_settings", "finished_outputs",
           "case_folder", "case_paths", "write_case", "write_case_folder", "write_dataset_files", "CASE_FILES", "DATALIST_NAME",
           "MANIFEST_NAME", "MANIFEST_COLUMNS"]
