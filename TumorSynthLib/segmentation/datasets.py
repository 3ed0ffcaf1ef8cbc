"""Segmentation datasets: find image/label pairs, check them, and map labels to the task.

Accepted data (``find_cases``):

* a MONAI decathlon-style JSON datalist ``{"training": [{"image": .., "label": ..}],
  "validation": [...]}`` (paths relative to the JSON file's folder);
* a folder in one of these layouts: ``imagesTr/`` + ``labelsTr/`` (MSD, nnU-Net ``_0000``
  suffixes allowed), ``images/`` + ``labels/``, one sub-folder per case holding an image
  (``image.*``, ``ct.*``) and a label (``label.*``, ``labels.*``, ``seg.*``, ``organs.*``), or
  flat ``NAME.nii.gz`` + ``NAME_label.nii.gz`` (``_seg``, ``_labels``, ``_organs``).

Labels of any convention (``organs.CONVENTIONS``) are mapped to the task labels
{0 background, 1 organ, 2 tumor} (``tasks.task_label_array``). A task is one organ ("liver") or
several ("liver,pancreas,kidney", ``task_organs``): label 1 is then the union of the organs and
label 2 a tumor in any of them, so every model keeps the same 3 classes; a multi-organ task
needs a convention that tells the organs apart (totalseg). "Has a real tumor" means one of the
task's tumor ids is present.

Faults (``check_cases``): a pair whose image and label grids differ, a label without the organ
and an unreadable file are **skipped with a warning** naming the file and the fix; if no case
remains the run is refused with InputError. A datalist whose listed files mostly do not exist is
refused at once (``find_cases``): a wrong datalist, not a few bad cases.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..anatomy.analysis import labelmap_array
from ..anatomy.organs import CONVENTIONS
from ..core.errors import ConventionError, InputError, TumorSynthError
from ..core.volume import GRID_TOLERANCE_MM
from ..core.volume_io import load_volume
from .tasks import check_task_convention, guessing_organ, task_name, task_organ_ids, tumor_ids

VOLUME_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")
_IMAGE_NAMES = ("image", "ct", "img", "volume")
_LABEL_NAMES = ("label", "labels", "seg", "segmentation", "organs", "mask")
TASK_CLASSES = ("background", "organ", "tumor")


@dataclass
class Case:
    """One image/label pair; ``has_tumor`` and ``convention`` are filled by ``check_cases``."""

    image: str
    label: str
    case_id: str
    has_tumor: bool | None = None
    convention: str | None = None

    def item(self) -> dict[str, str]:
        return {"image": self.image, "label": self.label, "case_id": self.case_id}


@dataclass
class CaseSplit:
    training: list[Case]
    validation: list[Case]
    skipped: list[dict[str, str]] = field(default_factory=list)
    convention: str = "msd"


# -- names ------------------------------------------------------------------------------------
def strip_volume_suffix(name: str) -> str:
    for suffix in VOLUME_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def is_volume_file(path: Path) -> bool:
    return path.is_file() and any(path.name.lower().endswith(s) for s in VOLUME_SUFFIXES)


def case_id_of(path: str | Path) -> str:
    """Case id of a file: its name without extension, nnU-Net channel suffix and a trailing
    ``_image`` / ``_label`` / ``_pred`` ... word."""
    stem = strip_volume_suffix(Path(path).name)
    stem = re.sub(r"_\d{4}$", "", stem)
    return re.sub(r"_(image|ct|img|label|labels|seg|segmentation|organs|mask|gt|pred)$", "", stem,
                  flags=re.IGNORECASE)


#: File stems that name a role, not a case ("case7/label.nii.gz" is case "case7").
GENERIC_STEMS = frozenset({"image", "ct", "img", "volume", "label", "labels", "seg", "segmentation", "organs",
                           "mask", "pred", "prediction", "gt", "reference"})


def case_name_of(path: str | Path) -> str:
    """The case a single file belongs to: ``case_id_of``, or the folder's name when the file
    name only says its role (``image.nii.gz``, ``label.nii.gz``, ``pred.nii.gz`` ...)."""
    p = Path(path).expanduser()
    cid = case_id_of(p)
    if cid.lower() in GENERIC_STEMS or strip_volume_suffix(p.name).lower() in GENERIC_STEMS:
        parent = p.resolve().parent.name
        return parent or cid
    return cid


def _volumes_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if is_volume_file(p))


# -- discovery --------------------------------------------------------------------------------
def find_cases(data: str | Path) -> tuple[list[Case], list[Case]]:
    """(training, validation) cases of a datalist JSON or a folder (see the module doc).
    Validation is empty unless the datalist names one. InputError when nothing is found, or
    when most files a datalist lists do not exist (every reader of cases: training, diffusion
    and adversarial training, batch generation, quizzes and reader studies)."""
    path = Path(data).expanduser()
    if not path.exists():
        raise InputError(f"--data '{path}' does not exist; give a folder of image/label pairs "
                         "or a datalist JSON")
    if path.is_file():
        return _from_datalist(path)
    cases = _from_folder(path)
    if not cases:
        raise InputError(
            f"no image/label pairs found in '{path}'; expected imagesTr/+labelsTr/, images/+labels/, "
            "one folder per case with image.nii.gz + label.nii.gz, NAME.nii.gz + NAME_label.nii.gz, "
            "or a datalist JSON"
        )
    return cases, []


def _from_datalist(path: Path) -> tuple[list[Case], list[Case]]:
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"cannot read the datalist '{path}': {exc}") from exc
    if not isinstance(content, dict) or not isinstance(content.get("training"), list):
        raise InputError(f"datalist '{path}' needs a 'training' list of {{'image', 'label'}} entries")

    def cases(key: str) -> list[Case]:
        out = []
        for i, entry in enumerate(content.get(key) or []):
            if not isinstance(entry, dict) or "image" not in entry or "label" not in entry:
                raise InputError(f"datalist '{path}': entry {i} of '{key}' needs 'image' and 'label'")
            image, label = (str((path.parent / entry[k]).resolve()) for k in ("image", "label"))
            out.append(Case(image, label, str(entry.get("case_id") or case_id_of(image))))
        return out

    training = cases("training")
    if not training:
        raise InputError(f"datalist '{path}' has an empty 'training' list; add image/label pairs")
    validation = cases("validation")
    _refuse_missing_files(path, training + validation)
    return training, validation


def _from_folder(folder: Path) -> list[Case]:
    for img_dir, lab_dir in (("imagesTr", "labelsTr"), ("images", "labels")):
        if (folder / img_dir).is_dir() and (folder / lab_dir).is_dir():
            return _paired_folders(folder / img_dir, folder / lab_dir)
    per_case = [c for sub in sorted(p for p in folder.iterdir() if p.is_dir())
                if (c := _case_folder(sub)) is not None]
    return per_case or _flat_pairs(folder)


def _paired_folders(images: Path, labels: Path) -> list[Case]:
    by_id = {case_id_of(p): p for p in _volumes_in(labels)}
    return [Case(str(p), str(by_id[case_id_of(p)]), case_id_of(p))
            for p in _volumes_in(images) if case_id_of(p) in by_id]


def _named(files: list[Path], names: Sequence[str]) -> Path | None:
    for p in files:
        if strip_volume_suffix(p.name).lower() in names:
            return p
    return None


def _case_folder(sub: Path) -> Case | None:
    files = _volumes_in(sub)
    image, label = _named(files, _IMAGE_NAMES), _named(files, _LABEL_NAMES)
    return Case(str(image), str(label), sub.name) if image and label else None


def _flat_pairs(folder: Path) -> list[Case]:
    files = _volumes_in(folder)
    labels = {case_id_of(p): p for p in files
              if re.search(r"_(label|labels|seg|segmentation|organs|mask)$",
                           strip_volume_suffix(p.name), re.IGNORECASE)}
    return [Case(str(p), str(labels[case_id_of(p)]), case_id_of(p))
            for p in files if p not in labels.values() and case_id_of(p) in labels]


# -- checks -----------------------------------------------------------------------------------
def _grid(path: str) -> tuple[tuple[int, ...], np.ndarray]:
    """(shape, voxel->RAS affine) of a file, from the header alone for NIfTI."""
    if path.lower().endswith((".nii", ".nii.gz")):
        import nibabel as nib

        try:
            img = nib.load(path)
        except Exception as exc:
            raise InputError(f"cannot read '{path}': {exc}") from exc
        return tuple(int(s) for s in img.shape[:3]), np.asarray(img.affine, dtype=float)
    vol = load_volume(path)
    return vol.shape, vol.affine


def _check_one(case: Case, organ: str, convention: str) -> tuple[str, str | None]:
    """(convention used, reason to skip or None). Fills ``case.has_tumor``."""
    image_shape, image_affine = _grid(case.image)
    label = load_volume(case.label)
    if label.shape != image_shape or not np.allclose(label.affine, image_affine, atol=GRID_TOLERANCE_MM):
        return convention, (f"image grid {image_shape} and label grid {label.shape} (or their affines) "
                            "differ; resample the label onto the image")
    array, conv = labelmap_array(label, convention, organ=guessing_organ(organ), what="the labels")
    try:
        check_task_convention(organ, conv)
    except InputError as exc:
        return conv, str(exc)
    ids = task_organ_ids(organ, conv)
    if not np.isin(array, ids + tumor_ids(organ, conv)).any():
        return conv, (f"the label has no {organ.replace(',', ' or ')} (ids {list(ids)} in the "
                      f"'{conv}' convention); check --organ and --labels")
    case.has_tumor = bool(np.isin(array, tumor_ids(organ, conv)).any())
    case.convention = conv
    return conv, None


def check_cases(cases: list[Case], organ: str, convention: str = "auto",
                warn: Any = None) -> tuple[list[Case], list[dict[str, str]]]:
    """(usable cases, skipped [{case_id, file, reason}]). Each skip is also passed to ``warn``
    (a callable taking one message). Reads every label once; labels that cannot tell the organs
    of a multi-organ task apart are skipped with that reason."""
    organ = task_name(organ)
    if convention != "auto" and convention not in CONVENTIONS:
        raise InputError(f"unknown --labels '{convention}'; choose auto or one of {', '.join(CONVENTIONS)}")
    kept, skipped = [], []
    for case in cases:
        try:
            _, reason = _check_one(case, organ, convention)
        except ConventionError:
            if convention != "auto":
                raise                   # the declared convention is wrong for the data: a user error
            reason = "its ids fit no label convention; relabel it"
        except TumorSynthError as exc:
            reason = f"not usable ({exc})"
        if reason is None:
            kept.append(case)
            continue
        skipped.append({"case_id": case.case_id, "file": case.label, "reason": reason})
        if warn is not None:
            warn(f"warning: skipped case '{case.case_id}' ({case.label}): {reason}")
    return kept, skipped


def split_cases(data: str | Path, organ: str, convention: str = "auto", *, seed: int = 0,
                val_fraction: float = 0.2, warn: Any = None) -> CaseSplit:
    """Find, check and split the cases. Without a validation list, ``val_fraction`` of the
    cases (at least one when there are two or more) is held out, chosen by ``seed``."""
    training, validation = find_cases(data)
    training, skipped = check_cases(training, organ, convention, warn)
    validation, skipped_val = check_cases(validation, organ, convention, warn)
    skipped += skipped_val
    if not training:
        reasons = "; ".join(f"{s['case_id']}: {s['reason']}" for s in skipped[:3])
        raise InputError(f"no usable training case in '{data}' ({len(skipped)} skipped: {reasons})")
    if not validation and len(training) >= 2 and val_fraction > 0:
        order = np.random.default_rng(seed).permutation(len(training))
        n_val = max(1, int(round(val_fraction * len(training))))
        validation = [training[i] for i in sorted(order[:n_val])]
        training = [training[i] for i in sorted(order[n_val:])]
    conventions = {c.convention for c in training + validation}
    if len(conventions) > 1:
        raise InputError(f"the labels mix conventions {sorted(conventions)}; pass --labels explicitly")
    return CaseSplit(training, validation, skipped, conventions.pop())


def _refuse_missing_files(data: str | Path, cases: list[Case]) -> None:
    """InputError when most listed files do not exist: a wrong datalist, not a few bad cases
    (a datalist's relative paths are read against its own folder; one run that wrote paths
    relative to the working folder skipped every phantom and trained on one case)."""
    missing = [f for c in cases for f in (c.image, c.label) if not Path(f).exists()]
    if cases and len(missing) > len(cases):          # more than half of the 2 files per case
        raise InputError(f"{len(missing)} of the {2 * len(cases)} files listed by '{data}' do not exist "
                         f"(e.g. {missing[0]}); relative paths in a datalist are read against the "
                         "datalist's own folder: fix the paths or give absolute ones")


__all__ = [
    "Case", "CaseSplit", "TASK_CLASSES", "find_cases", "check_cases", "split_cases",
    "case_id_of", "case_name_of", "GENERIC_STEMS",
    "is_volume_file", "strip_volume_suffix",
]
