"""Task labels: any label convention mapped to {0 background, 1 organ, 2 tumor} for one organ.

Training, evaluation, the quality filter and the Slicer Trainer all read reference labels
through ``task_label_array``, so a TotalSegmentator map, an MSD / LiTS / KiTS map and a binary
map mean the same thing everywhere ("has a real tumor" = the convention's tumor id is present).
"""
from __future__ import annotations

import numpy as np

from .organs import (
    canonical_organ,
    label_names,
    organ_label_ids,
    organ_region_label_ids,
    tumor_label_id,
)


def guess_convention(labels: np.ndarray, organ: str) -> str:
    """The convention a labelmap most likely uses: totalseg when ids above 3 occur, kits for
    a kidney task with id 3, msd (organ 1, tumor 2) otherwise."""
    top = int(np.max(labels)) if labels.size else 0
    if top > 3:
        return "totalseg"
    if top == 3 and canonical_organ(organ) == "kidney":
        return "kits"
    return "msd"


def tumor_ids(organ: str, convention: str) -> tuple[int, ...]:
    return tuple(sorted({tumor_label_id(i, convention) for i in organ_label_ids(organ, convention)}))


def task_label_array(labels: np.ndarray, organ: str, convention: str) -> np.ndarray:
    """uint8 task labels: 1 where the organ region (tissue, cysts, tumors) is, 2 on tumor ids,
    0 elsewhere. The input is not modified."""
    lab = np.asarray(labels)
    out = np.zeros(lab.shape, dtype=np.uint8)
    out[np.isin(lab, organ_region_label_ids(organ, convention))] = 1
    out[np.isin(lab, tumor_ids(organ, convention))] = 2
    return out


def task_label_names(organ: str) -> dict[int, str]:
    """{0: "background", 1: organ, 2: "<organ>_tumor"} (the checkpoint's label map)."""
    names = label_names("msd", canonical_organ(organ))
    return {0: "background", 1: names[1], 2: names[2]}


__all__ = ["guess_convention", "task_label_array", "task_label_names", "tumor_ids"]
