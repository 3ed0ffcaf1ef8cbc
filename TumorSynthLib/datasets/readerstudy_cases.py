"""Where the lesions of a reader study are: real tumors, healthy real scans, synthetic tumors.

Each source case becomes one or more ``StudyLesion`` (the point a blinded crop is centred on,
plus what the key records about it):

* **real tumor** (``real_lesions`` on an image/label pair whose label holds tumor ids): each
  26-connected component of the tumor ids of the chosen organs is a lesion, centred on its
  centroid; components below ``min_diameter_mm`` (equivalent-sphere diameter) are ignored as
  specks; ``lesions="largest"`` keeps the largest one per case, ``"each"`` keeps them all.
* **real, no tumor** (a healthy pair): one crop per case centred on a point inside an organ,
  so that it looks like the others (the organ tissue fills the centre of the cube). The organ is
  drawn among the chosen organs present in the label, and the point among the voxels at least
  ``HEALTHY_DEPTH_MM`` (a quarter of the cube) inside that organ, or the deepest voxel when the
  organ is thinner; both draws come from ``(seed, case id)``.
* **synthetic** (``synthetic_lesions`` on case folders written by ``synth``, ``generate`` or
  ``demo``): each tumor of ``report.json`` (centre = its measured ``centroid_ras``; organ and
  measured diameter from the report), the largest only with ``lesions="largest"``.

Organs of real tumors: TotalSegmentator labels say the organ (205 liver tumor, 207 pancreas,
202/203 kidney); two-class conventions (msd, lits, kits, binary: tumor id 2) name one organ, so
they need exactly one ``--organ``.
"""
from __future__ import annotations

import json
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from scipy import ndimage

from ..anatomy.organs import canonical_organ, organ_label_ids, tumor_label_id
from ..core.errors import InputError
from ..core.volume import Volume, bounding_box

LESION_MODES = ("largest", "each")
HEALTHY_DEPTH_MM = 16.0
MIN_DIAMETER_MM = 5.0


@dataclass
class StudyLesion:
    """One study case before blinding: the crop centre and what the key says about it."""

    truth: str                      # "real" | "synthetic"
    kind: str                       # "real-tumor" | "real-healthy" | "synthetic"
    organ: str
    center_ras: list[float]
    diameter_mm: float | None       # None for healthy crops
    source_id: str
    image: str
    label: str | None = None
    report: str | None = None
    lesion_index: int = 0           # which lesion of the source case
    method: str | None = None
    tumor_seed: int | None = None

    def key_entry(self) -> dict[str, Any]:
        """What the key records (file paths made absolute)."""
        entry = asdict(self)
        for name in ("image", "label", "report"):
            if entry[name]:
                entry[name] = str(Path(entry[name]).expanduser().resolve())
        return entry


def _rng(seed: int, *words: str) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed), *(zlib.crc32(w.encode()) for w in words)]))


def parse_organs(text: str | Sequence[str]) -> list[str]:
    """``"liver,kidney"`` -> canonical organ names (InputError on an unknown one)."""
    items = text.split(",") if isinstance(text, str) else list(text)
    organs = [canonical_organ(o) for o in items if str(o).strip()]
    if not organs:
        raise InputError("--organ needs at least one organ (liver, pancreas, kidney)")
    return list(dict.fromkeys(organs))


def _tumor_ids_by_organ(organs: Sequence[str], convention: str) -> dict[int, str]:
    if convention != "totalseg" and len(organs) != 1:
        raise InputError(f"labels in the '{convention}' convention have one tumor id (2) for one organ; "
                         f"pass exactly one --organ (got {', '.join(organs)})")
    return {tumor_label_id(oid, convention): organ for organ in organs
            for oid in organ_label_ids(organ, convention)}


# -- real cases ----------------------------------------------------------------------------------------
def real_lesions(case_id: str, image_path: str, label_path: str, labels: Volume, convention: str,
                 organs: Sequence[str], lesions: str, seed: int,
                 min_diameter_mm: float = MIN_DIAMETER_MM) -> list[StudyLesion]:
    """Lesions of one real case: its tumors, or one healthy crop when it has none (see the
    module docstring). Empty when the case holds none of the organs."""
    arr = np.rint(np.asarray(labels.array)).astype(np.int32)
    found: list[tuple[float, StudyLesion]] = []
    voxel_ml = abs(float(np.linalg.det(labels.affine[:3, :3]))) / 1000.0
    for tumor_id, organ in _tumor_ids_by_organ(organs, convention).items():
        mask = arr == tumor_id
        if not mask.any():
            continue
        comps, _count = ndimage.label(mask, structure=np.ones((3, 3, 3), dtype=bool))
        for index, box in enumerate(ndimage.find_objects(comps), start=1):
            voxels = np.argwhere(comps[box] == index) + [s.start for s in box]
            diameter = float((6.0 * len(voxels) * voxel_ml * 1000.0 / np.pi) ** (1.0 / 3.0))
            if diameter < min_diameter_mm:
                continue
            centre = labels.voxel_to_ras(voxels.mean(axis=0))
            found.append((diameter, StudyLesion("real", "real-tumor", organ, [float(v) for v in centre],
                                                round(diameter, 2), case_id, image_path, label_path)))
    if found:
        found.sort(key=lambda item: -item[0])
        chosen = [lesion for _d, lesion in (found[:1] if lesions == "largest" else found)]
        for n, lesion in enumerate(chosen):
            lesion.lesion_index = n
        return chosen
    healthy = healthy_lesion(case_id, image_path, label_path, labels, arr, convention, organs, seed)
    return [healthy] if healthy is not None else []


def healthy_lesion(case_id: str, image_path: str, label_path: str, labels: Volume, arr: np.ndarray,
                   convention: str, organs: Sequence[str], seed: int) -> StudyLesion | None:
    """A crop centre inside one of ``organs`` of a scan without tumors, or None."""
    present = [o for o in organs if np.isin(arr, organ_label_ids(o, convention)).any()]
    if not present:
        return None
    rng = _rng(seed, "healthy", case_id)
    organ = present[int(rng.integers(len(present)))]
    point = organ_point(labels, np.isin(arr, organ_label_ids(organ, convention)), rng)
    return StudyLesion("real", "real-healthy", organ, [float(v) for v in labels.voxel_to_ras(point)],
                       None, case_id, image_path, label_path)


def organ_point(labels: Volume, mask: np.ndarray, rng: np.random.Generator,
                depth_mm: float = HEALTHY_DEPTH_MM) -> np.ndarray:
    """A voxel index drawn among the voxels at least ``depth_mm`` inside ``mask`` (mm, spacing
    aware), or the deepest voxel when none is that deep."""
    box = bounding_box(mask, margin_vox=1)
    sub = mask[box.slices]
    depth = ndimage.distance_transform_edt(sub, sampling=labels.spacing)
    deep = np.argwhere(depth >= depth_mm)
    if len(deep):
        pick = deep[int(rng.integers(len(deep)))]
    else:
        pick = np.asarray(np.unravel_index(int(np.argmax(depth)), depth.shape))
    return pick + np.asarray(box.lo)


# -- synthetic cases --------------------------------------------------------------------------------------
def find_synthetic_reports(path: str | Path) -> list[Path]:
    """Every ``report.json`` of a synthetic case under ``path`` (a case folder, a folder of case
    folders such as a demo or ``generate`` output, or a flat ``generate`` layout's reports/)."""
    root = Path(path).expanduser()
    if not root.exists():
        raise InputError(f"--synthetic '{root}' does not exist; give a folder written by "
                         "`tumorsynth synth`, `generate` or `demo`")
    if root.is_file():
        return [root]
    candidates = sorted(set(root.rglob("report.json")) | set(root.glob("reports/*.json")))
    found = [p for p in candidates if _is_synthetic_report(p)]
    if not found:
        raise InputError(f"no synthetic case (report.json with tumors) under '{root}'")
    return found


def _is_synthetic_report(path: Path) -> bool:
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False
    return isinstance(report, dict) and bool(report.get("synthetic")) and bool(report.get("tumors"))


def synthetic_lesions(report_path: Path, lesions: str, organs: Sequence[str]) -> list[StudyLesion]:
    """The tumors of one synthetic case (in ``organs``), largest first."""
    report = json.loads(report_path.read_text(encoding="utf-8"))
    outputs = report.get("outputs") or {}
    folder = report_path.parent
    image = folder / outputs.get("image", "image.nii.gz")
    label_rel = outputs.get("label") or outputs.get("labels")
    label = folder / label_rel if label_rel else None
    if not image.is_file():
        raise InputError(f"the image of '{report_path}' ({image}) is missing")
    case_id = str(report.get("name") or report_path.parent.name)
    found = []
    for tumor in report["tumors"]:
        organ = canonical_organ(str(tumor.get("organ", "liver")))
        centre = tumor.get("centroid_ras") or tumor.get("center_placed_ras")
        if organ not in organs or centre is None:
            continue
        found.append(StudyLesion(
            "synthetic", "synthetic", organ, [float(v) for v in centre],
            round(float(tumor.get("diameter_measured_mm") or 0.0), 2), case_id, str(image),
            str(label) if label else None, str(report_path), method=tumor.get("method"),
            tumor_seed=tumor.get("seed")))
    found.sort(key=lambda lesion: -(lesion.diameter_mm or 0.0))
    found = found[:1] if lesions == "largest" else found
    for n, lesion in enumerate(found):
        lesion.lesion_index = n
    return found


__all__ = ["StudyLesion", "LESION_MODES", "HEALTHY_DEPTH_MM", "MIN_DIAMETER_MM", "parse_organs",
           "real_lesions", "healthy_lesion", "organ_point", "find_synthetic_reports",
           "synthetic_lesions"]
