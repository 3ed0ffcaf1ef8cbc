"""Segmentation tasks of one organ ("liver") or several ("liver,pancreas,kidney").

Every model keeps the same 3 classes {0 background, 1 organ, 2 tumor}: for a multi-organ task
label 1 is the union of the organs and label 2 a tumor in any of them. The per-organ mapping of
label conventions lives in ``anatomy.task_labels``; this module applies it to each organ of a
task. A multi-organ task needs a convention that tells its organs apart (totalseg).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..anatomy import task_labels as single
from ..anatomy.organs import canonical_organ, organ_label_ids, organ_region_label_ids
from ..core.errors import InputError


def task_organs(organ: str | Sequence[str]) -> tuple[str, ...]:
    """The canonical organs of a task: "liver" -> ("liver",); "liver,pancreas,kidney" (or a
    sequence of names) -> each canonical, in the given order, without repeats."""
    names = organ.split(",") if isinstance(organ, str) else list(organ)
    out: list[str] = []
    for name in (str(n).strip() for n in names):
        if name and canonical_organ(name) not in out:
            out.append(canonical_organ(name))
    if not out:
        raise InputError(f"no organ given ('{organ}'); use e.g. liver or liver,pancreas,kidney")
    return tuple(out)


def task_name(organ: str | Sequence[str]) -> str:
    """The canonical text of a task's organs ("liver", "liver,pancreas,kidney")."""
    return ",".join(task_organs(organ))


def covers(model_organ: str, wanted: str | Sequence[str]) -> bool:
    """True when a model trained for ``model_organ`` segments every organ of ``wanted``."""
    return set(task_organs(wanted)) <= set(task_organs(model_organ))


def guessing_organ(organ: str | Sequence[str]) -> str:
    """The organ to guess a convention with (``anatomy`` guesses for one organ): the task's
    organ, or the liver for several organs (only a kidney-only task reads id 3 as KiTS)."""
    organs = task_organs(organ)
    return organs[0] if len(organs) == 1 else "liver"


def guess_convention(labels: np.ndarray, organ: str | Sequence[str]) -> str:
    """The convention a labelmap of this task most likely uses (see ``anatomy.task_labels``)."""
    return single.guess_convention(labels, guessing_organ(organ))


def check_task_convention(organ: str | Sequence[str], convention: str) -> None:
    """InputError when ``convention`` gives two organs of the task the same id (msd, lits, kits
    and binary have one organ id): the organs could not be told apart."""
    organs = task_organs(organ)
    seen: dict[int, str] = {}
    for name in organs:
        for i in organ_label_ids(name, convention):
            if i in seen and seen[i] != name:
                raise InputError(
                    f"the '{convention}' labels use id {i} for both the {seen[i]} and the {name}: a "
                    f"task with several organs ({task_name(organs)}) needs labels that tell them "
                    "apart, such as TotalSegmentator's (--labels totalseg)")
            seen[i] = name


def tumor_ids(organ: str | Sequence[str], convention: str) -> tuple[int, ...]:
    """The tumor ids of the task's organs in ``convention``."""
    return tuple(sorted({i for name in task_organs(organ) for i in single.tumor_ids(name, convention)}))


def task_organ_ids(organ: str | Sequence[str], convention: str) -> tuple[int, ...]:
    """The tissue ids of the task's organs in ``convention``."""
    return tuple(sorted({i for name in task_organs(organ) for i in organ_label_ids(name, convention)}))


def task_region_ids(organ: str | Sequence[str], convention: str) -> tuple[int, ...]:
    """Tissue and lesion ids of the task's organs (what becomes task label 1 or 2)."""
    return tuple(sorted({i for name in task_organs(organ)
                         for i in organ_region_label_ids(name, convention)}))


def task_label_array(labels: np.ndarray, organ: str | Sequence[str], convention: str) -> np.ndarray:
    """uint8 task labels: 1 where the region of a task organ (tissue, cysts, tumors) is, 2 on
    their tumor ids, 0 elsewhere. The input is not modified."""
    lab = np.asarray(labels)
    out = np.zeros(lab.shape, dtype=np.uint8)
    out[np.isin(lab, task_region_ids(organ, convention))] = 1
    out[np.isin(lab, tumor_ids(organ, convention))] = 2
    return out


def task_label_names(organ: str | Sequence[str]) -> dict[int, str]:
    """The checkpoint's label map: {0: "background", 1: organ, 2: "<organ>_tumor"} for one
    organ; {0: "background", 1: "liver|pancreas|kidney", 2: "tumor"} for several."""
    organs = task_organs(organ)
    if len(organs) > 1:
        return {0: "background", 1: "|".join(organs), 2: "tumor"}
    return single.task_label_names(organs[0])


__all__ = [
    "task_organs", "task_name", "covers", "guessing_organ", "guess_convention", "check_task_convention",
    "tumor_ids", "task_organ_ids", "task_region_ids", "task_label_array", "task_label_names",
]
