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
from pathlib import Path
from typing import Any

from ..core.errors import InputError
from ..core.files import split_timing, to_jsonable, write_json_atomic, write_text_atomic
from ..core.volume_io import ensure_not_overwriting, save_volume
from .preview import write_preview

DATALIST_NAME, MANIFEST_NAME = "dataset.json", "manifest.csv"
MANIFEST_COLUMNS = ("name", "case_id", "variant", "image", "label", "report", "n_tumors", "stages",
                    "diameters_mm", "quality_scores", "quality_passed")


def output_paths(out: str | Path, name: str, layout: str) -> dict[str, Path]:
    """image / label / report paths of output ``name`` in ``layout`` ("folders" | "flat")."""
    out = Path(out)
    if layout == "flat":
        return {"image": out / "imagesTr" / f"{name}.nii.gz", "label": out / "labelsTr" / f"{name}.nii.gz",
                "report": out / "reports" / f"{name}.json"}
    return {"image": out / name / "image.nii.gz", "label": out / name / "label.nii.gz",
            "report": out / name / "report.json"}


def write_case(paths: dict[str, Path], result: Any, header: dict[str, Any], inputs: tuple[Any, ...] = (),
               preview: Path | None = None) -> dict[str, Path]:
    """The one writer of a synthetic case: image and labels (marked synthetic), the preview
    montage (optional), then ``report.json`` (written last, atomically: its presence marks the
    case finished). ``header`` leads the report; every ``timing`` entry is gathered in one
    ``timing`` object (the only part that differs between two runs with the same seed).
    ``paths`` has "image", "label" and "report"; inputs are never overwritten."""
    t0 = time.perf_counter()
    for key in ("image", "label", "report"):
        ensure_not_overwriting(paths[key], *inputs)
    save_volume(result.image, paths["image"], synthetic=True, description="image")
    save_volume(result.labels, paths["label"], synthetic=True, description="labels")
    written = {"image": paths["image"], "label": paths["label"]}
    if preview is not None:
        written["preview"] = write_preview(result.image, result.labels, result.reports, preview,
                                           instances=result.tumor_instances)
    case, case_timing = split_timing(result.case_report, "case")
    tumors, tumor_timing = split_timing(result.reports, "tumors")
    folder = paths["report"].parent
    report = {
        "synthetic": True, "note": "contains synthetic tumors made by TumorSynth; not for diagnosis",
        **header,
        "outputs": {k: os.path.relpath(v, folder) for k, v in written.items()},
        "label_names": {str(k): v for k, v in sorted(result.label_names.items())},
        "case": case, "tumors": tumors,
        "timing": {**case_timing, **tumor_timing, "write_s": time.perf_counter() - t0},
    }
    written["report"] = write_json_atomic(paths["report"], report)
    return written


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


__all__ = ["output_paths", "read_report", "check_same_settings", "finished_outputs",
           "write_case", "write_dataset_files", "DATALIST_NAME",
           "MANIFEST_NAME", "MANIFEST_COLUMNS"]
