"""``evaluate_predictions``: pair prediction and reference labelmaps, score them, write reports.

Pairs: two files, or two folders matched by case id (file name without extension and
``_pred`` / ``_label`` / ``_seg`` ... suffixes, see ``datasets.case_id_of``). Both labelmaps are
mapped to task labels {0, 1, 2} of ``organ`` from their conventions (auto-detected unless
given) and must share a voxel grid (GeometryError otherwise; ``tumorsynth segment`` writes its
output on the input grid).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..anatomy.analysis import labelmap_array
from ..anatomy.task_labels import task_label_array
from ..core.errors import InputError
from ..core.events import EventStream
from ..core.files import prepare_output_folder
from ..core.volume import Volume
from ..core.volume_io import load_volume
from .datasets import case_id_of, case_name_of, is_volume_file
from .metrics import NSD_TOLERANCE_MM, evaluate_case, summarize
from .postprocess import MIN_RADIUS_MM
from .report import worst_case_slice, write_montage, write_plots, write_tables


def _volume_files(folder: Path) -> dict[str, Path]:
    return {case_id_of(p): p for p in sorted(folder.iterdir()) if is_volume_file(p)}


def pair_files(pred: Path, gt: Path) -> list[tuple[str, Path, Path]]:
    """[(case id, prediction, reference)]; InputError when nothing pairs up."""
    for path, flag in ((pred, "--pred"), (gt, "--gt")):
        if not path.exists():
            raise InputError(f"{flag} '{path}' does not exist")
    if pred.is_file() and gt.is_file():
        return [(case_name_of(gt), pred, gt)]
    if pred.is_dir() and gt.is_dir():
        preds, refs = _volume_files(pred), _volume_files(gt)
        common = sorted(set(preds) & set(refs))
        if not common:
            raise InputError(f"no prediction in '{pred}' matches a reference in '{gt}' by case id "
                             f"(predictions: {sorted(preds)[:5]}, references: {sorted(refs)[:5]})")
        return [(c, preds[c], refs[c]) for c in common]
    raise InputError("--pred and --gt must both be files or both be folders")


def to_task(volume: Volume, organ: str, convention: str, what: str = "the labels") -> Volume:
    """Task labels {0, 1, 2} of a labelmap, after the checks every command shares
    (``anatomy.analysis.labelmap_array``: integer ids >= 0 that fit the convention)."""
    arr, conv = labelmap_array(volume, convention, organ=organ, what=what)
    return volume.with_array(task_label_array(arr, organ, conv))


def _image_for(images: Path | None, case_id: str, grid: Volume) -> np.ndarray | None:
    """The CT drawn under the montage (None when absent or on another grid)."""
    if images is None:
        return None
    path = images if images.is_file() else _volume_files(images).get(case_id)
    if path is None:
        return None
    image = load_volume(path)
    return image.array if image.same_grid(grid) else None


def evaluate_predictions(pred: str | Path, gt: str | Path, out: str | Path, *, organ: str = "liver",
                         gt_labels: str = "auto", pred_labels: str = "auto",
                         images: str | Path | None = None, min_radius_mm: float = MIN_RADIUS_MM,
                         tolerance_mm: float = NSD_TOLERANCE_MM,
                         events: EventStream | None = None) -> dict[str, Any]:
    """Score every pair, write CSV / JSON / PNG into ``out`` and return the summary."""
    events = events or EventStream("none", enabled=False)
    for name, value in (("pred", pred), ("gt", gt), ("out", out)):
        if not isinstance(value, (str, os.PathLike)):
            raise InputError(f"{name} must be a path (str or Path), got {type(value).__name__}")
    pairs = pair_files(Path(pred).expanduser(), Path(gt).expanduser())
    image_src = Path(images).expanduser() if images else None
    if image_src is not None and not image_src.exists():
        raise InputError(f"--images '{image_src}' does not exist")
    out_dir = prepare_output_folder(Path(out).expanduser())
    events.start(0, total=len(pairs), n_cases=len(pairs))
    cases = []
    for i, (case_id, p_path, g_path) in enumerate(pairs, start=1):
        p = to_task(load_volume(p_path), organ, pred_labels, f"the predicted labels ('{p_path.name}')")
        g = to_task(load_volume(g_path), organ, gt_labels, f"the reference labels ('{g_path.name}')")
        case = evaluate_case(p, g, case_id, min_radius_mm=min_radius_mm, tolerance_mm=tolerance_mm)
        case["_slice"] = worst_case_slice(p.array, g.array, _image_for(image_src, case_id, g), g.affine)
        cases.append(case)
        events.progress(i, case_id=case_id, tumor_dsc=case["tumor_dsc"], organ_dsc=case["organ_dsc"])
    summary = summarize(cases)
    summary.update(organ=organ, min_radius_mm=min_radius_mm, nsd_tolerance_mm=tolerance_mm)
    files = write_tables(out_dir, cases, summary) + write_plots(out_dir, cases, summary)
    montage = write_montage(out_dir, cases)
    files += [montage] if montage else []
    summary["files"] = [str(f) for f in files]
    events.done(len(pairs), tumor_dsc=summary["tumor_dsc"]["mean"], sensitivity=summary["sensitivity"],
                files=summary["files"])
    return summary


__all__ = ["evaluate_predictions", "pair_files", "to_task"]
