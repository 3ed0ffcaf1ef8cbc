"""Scan analysis: what one pass over a scan tells, computed once and reused by every tumor.

The checks and facts that need the whole scan (finite HU, integer labels on the same grid,
voxel count and bounding box of every label id, the organ-wide vessel threshold; the list of an
organ's voxels only when sampling falls back to its exhaustive draw) are computed once per scan
and cached (``analyse_scan`` keeps the analyses of the last few ``Volume`` objects, by
identity: volumes are immutable). After that, a tumor reads only boxes around itself
(``ScanView``), so its cost does not depend on the size of the scan.

``ScanView`` reads boxes of the scan as it is *now*: the base class reads the input; the
synthesis case overlays the tumors already placed (``synthesis.case``).
"""
from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from typing import Sequence

import numpy as np

from ..core.errors import ConventionError, InputError
from ..core.volume import Box, Volume, bounding_box, check_integer_labels, check_same_grid, is_any
from .organs import (
    CONVENTIONS,
    KNOWN_ORGANS,
    check_convention,
    label_names,
    organ_label_ids,
    tumor_label_id,
)
from .parenchyma import parenchyma_values, robust_median_mad
from .task_labels import guess_convention

#: Analyses kept (by identity of the image and labels volumes).
CACHE_SIZE = 8
#: The organ-wide vessel threshold is estimated on the organ voxels of a sub-grid of about this
#: many voxels of the organ's box (a pancreas fills a few % of its box: ~1000 values, the
#: median's error under 1 HU), or on all of them when that gives fewer than the minimum.
THRESHOLD_SAMPLE = 32_768
MIN_THRESHOLD_VALUES = 200
#: No CT voxel lies beyond +-HU_LIMIT; the bulk of a CT (1st-99th percentile) lies within HU_BULK
#: (air -1000, padding down to -3024 on some scanners, dense bone and metal up to a few thousand).
HU_LIMIT = 100_000.0
HU_BULK = (-3100.0, 5000.0)
#: Values (taken at a regular stride) the bulk percentiles are measured on.
BULK_SAMPLE = 50_000


def check_image(image: Volume) -> None:
    """InputError unless ``image`` holds finite real numbers that can be CT Hounsfield units:
    no value beyond +-``HU_LIMIT`` and the bulk (1st to 99th percentile) within ``HU_BULK``."""
    if not isinstance(image, Volume):
        raise InputError(f"the image must be a Volume, got {type(image).__name__}")
    arr = image.array
    dtype = arr.dtype
    if dtype == np.bool_ or not np.issubdtype(dtype, np.number) or np.issubdtype(dtype, np.complexfloating):
        raise InputError(f"the image must hold real numbers (HU), got dtype {dtype}")
    if arr.size == 0:
        raise InputError(f"the image is empty (shape {image.shape}); pass a CT scan")
    lo, hi = float(arr.min()), float(arr.max())
    if not (np.isfinite(lo) and np.isfinite(hi)):        # NaN and inf reach the extremes
        bad = int(np.count_nonzero(~np.isfinite(arr)))
        raise InputError(f"the image has {bad} NaN/inf voxels; replace them (e.g. with -1024 HU) first")
    if lo < -HU_LIMIT or hi > HU_LIMIT:
        raise InputError(f"the image values reach {lo:.3g} .. {hi:.3g}, which are not CT Hounsfield units (a CT "
                         f"lies roughly within {HU_BULK[0]:g} .. {HU_BULK[1]:g} HU); convert the scan to HU first")
    flat = arr.reshape(-1)
    sample = flat[:: max(1, flat.size // BULK_SAMPLE)]
    p1, p99 = (float(v) for v in np.percentile(sample, (1, 99)))
    if p1 < HU_BULK[0] or p99 > HU_BULK[1]:
        raise InputError(f"most image values lie in {p1:.4g} .. {p99:.4g}, outside the range of CT Hounsfield units "
                         f"({HU_BULK[0]:g} .. {HU_BULK[1]:g} HU); pass a CT in HU (apply its rescale slope and "
                         "intercept)")


# -- labelmaps: the checks every command that reads one shares --------------------------------------
def convention_ids(convention: str) -> frozenset[int]:
    """Every id a labelmap of ``convention`` may hold (0 included): msd / lits / binary {0, 1, 2},
    kits {0, 1, 2, 3}, totalseg 0-117 plus the tumor ids 200 + organ id."""
    return frozenset({0, *label_names(check_convention(convention))})


def tumor_ids_of(convention: str) -> frozenset[int]:
    """The tumor ids of every organ in ``convention`` (lesions a new tumor id may reuse)."""
    conv = check_convention(convention)
    return frozenset(tumor_label_id(i, conv) for organ in KNOWN_ORGANS for i in organ_label_ids(organ, conv))


def fitting_conventions(present: Sequence[int]) -> list[str]:
    """The conventions whose ids include every id in ``present``."""
    return [c for c in CONVENTIONS if set(present) <= convention_ids(c)]


def check_convention_fit(present: Sequence[int], convention: str, what: str = "the labels") -> str:
    """``convention`` when the label ids ``present`` (0 excluded) fit it; ConventionError naming
    the convention they look like otherwise (a TotalSegmentator map declared as msd, an organ /
    tumor map declared as totalseg)."""
    conv = check_convention(convention)
    present = sorted(int(i) for i in present if int(i) != 0)
    allowed = convention_ids(conv)
    foreign = [i for i in present if i not in allowed]
    if foreign:
        looks = fitting_conventions(present)
        hint = (f"they look like '{looks[0]}': pass --labels {looks[0]}" if looks else
                "relabel the map to one of the supported conventions")
        raise ConventionError(f"{what} hold ids {_ids_text(foreign)}, which the '{conv}' convention does not use "
                              f"(it has {_ids_text(sorted(allowed - {0}))}); {hint}")
    if conv == "totalseg" and present and max(present) <= 3:
        raise ConventionError(f"{what} hold only ids {_ids_text(present)}: an organ / tumor map, not a "
                              "TotalSegmentator map (there 1 is the spleen, 2 and 3 the kidneys, 5 the liver); "
                              "pass --labels msd (or lits, kits, binary)")
    return conv


def _ids_text(ids: Sequence[int]) -> str:
    ids = list(ids)
    if len(ids) > 8:
        return f"{', '.join(map(str, ids[:6]))}, ... {ids[-1]}"
    return ", ".join(map(str, ids))


def labelmap_array(labels: Volume, convention: str = "auto", *, image: Volume | None = None,
                   organ: str | None = None, what: str = "the labels") -> tuple[np.ndarray, str]:
    """(integer ids >= 0, convention) of a labelmap, checked once the same way by every command:
    integer values, no negative id, the image's grid (when ``image`` is given), and ids that fit
    the convention (``"auto"``: guessed from the largest id, which needs ``organ``). Foreign ids
    are found from the largest id and, when the convention has gaps below it, one look-up pass;
    the ids present are listed only for the error message."""
    if not isinstance(labels, Volume):
        raise InputError(f"{what} must be a Volume, got {type(labels).__name__}")
    if image is not None:
        check_same_grid(image, labels, what.removeprefix("the "))
    try:
        lab = check_integer_labels(labels)
    except InputError:
        raise InputError(f"{what} are not integers (fractional or NaN values found); pass a labelmap "
                         "(one integer id per voxel), not a probability map or an image") from None
    if lab.dtype == bool:
        lab = lab.astype(np.uint8)
    if lab.size and int(lab.min()) < 0:
        raise InputError(f"{what} hold negative ids; pass a labelmap of ids >= 0")
    top = int(lab.max()) if lab.size else 0
    conv = str(convention).strip().lower()
    if conv == "auto":
        conv = guess_convention(np.asarray([top]), organ or "liver")
    if _has_foreign_ids(lab, top, check_convention(conv)):
        check_convention_fit(present_label_ids(lab), conv, what)      # raises, naming the ids
    return lab, check_convention_fit([top], conv, what)               # the rules on the largest id


def _has_foreign_ids(lab: np.ndarray, top: int, convention: str) -> bool:
    """Whether ``lab`` (largest id ``top``) holds an id ``convention`` does not use."""
    allowed = convention_ids(convention)
    if top > max(allowed):
        return True
    if allowed.issuperset(range(top + 1)):            # every id up to the largest is allowed
        return False
    foreign = np.ones(top + 1, dtype=bool)
    foreign[[i for i in allowed if i <= top]] = False
    return bool(np.take(foreign, lab).any())


def present_label_ids(lab: np.ndarray) -> list[int]:
    """The ids (0 included) of an integer map, ascending (error messages and custom-label checks
    only: the checks on every scan read the largest id and ``_has_foreign_ids``)."""
    return [int(i) for i in np.unique(lab)]


class ScanAnalysis:
    """Whole-scan facts of (image, labels, convention); see the module docstring."""

    def __init__(self, image: Volume, labels: Volume | None, convention: str) -> None:
        check_image(image)
        self.image = image
        self.convention = check_convention(convention)
        self.labels = labels
        self.label_array: np.ndarray | None = None
        if labels is not None:
            if not isinstance(labels, Volume):
                raise InputError(f"organ labels must be a Volume or None, got {type(labels).__name__}")
            self.label_array, _ = labelmap_array(labels, self.convention, image=image, what="the organ labels")
            self._top = int(self.label_array.max()) if self.label_array.size else 0
        self._cache: dict[tuple, object] = {}

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.image.shape

    @property
    def spacing(self) -> np.ndarray:
        return self.image.spacing

    @property
    def present_ids(self) -> list[int]:
        """Label ids present (0 excluded), ascending (counted when first asked for)."""
        if self.label_array is None:
            return []
        if ("present",) not in self._cache:
            self._cache[("present",)] = [i for i in present_label_ids(self.label_array) if i != 0]
        return list(self._cache[("present",)])  # type: ignore[arg-type]

    def check_label_options(self, tumor_label: int | None, necrosis_label: int | None) -> None:
        """InputError when ``tumor_label`` / ``necrosis_label`` is an id present in the labels
        other than a tumor id (a custom tumor id must not turn an organ into tumor)."""
        if tumor_label is None and necrosis_label is None:
            return
        taken = set(self.present_ids) - set(tumor_ids_of(self.convention))
        names = label_names(self.convention)
        for flag, value in (("--tumor-label", tumor_label), ("--necrosis-label", necrosis_label)):
            if value is not None and int(value) in taken:
                meaning = names.get(int(value), "a structure")
                free = max(max(self.present_ids, default=0), max(convention_ids(self.convention))) + 1
                raise InputError(f"{flag} {int(value)} is already used by the labels ('{meaning}' in the "
                                 f"'{self.convention}' convention); choose an id the labels do not hold, "
                                 f"such as {free}")

    def count(self, ids: Sequence[int]) -> int:
        """Voxels holding any of ``ids``."""
        return int(sum(self._id_stats(int(i))[0] for i in ids))

    def box(self, ids: Sequence[int], margin_vox: int | Sequence[int] = 0) -> Box | None:
        """Bounding box of the voxels holding any of ``ids`` (plus a margin), None if absent."""
        boxes = [b for b in (self._id_box(int(i)) for i in ids) if b is not None]
        if not boxes:
            return None
        margin = np.broadcast_to(np.asarray(margin_vox, dtype=int), (3,))
        lo = tuple(min(b.lo[a] for b in boxes) - int(margin[a]) for a in range(3))
        hi = tuple(max(b.hi[a] for b in boxes) + int(margin[a]) for a in range(3))
        return Box(lo, hi).clip(self.shape)  # type: ignore[arg-type]

    def _id_box(self, label_id: int) -> Box | None:
        return self._id_stats(label_id)[1]

    def _id_stats(self, label_id: int) -> tuple[int, Box | None]:
        """(voxel count, bounding box) of one id, cached; computed when first asked for (a
        tumor needs a few of a scan's ids, and one comparison pass gives both)."""
        if label_id <= 0 or self.label_array is None or label_id > self._top:
            return 0, None
        key = ("id", label_id)
        if key not in self._cache:
            mask = self.label_array == label_id
            n = int(np.count_nonzero(mask))
            self._cache[key] = (n, bounding_box(mask) if n else None)
        return self._cache[key]  # type: ignore[return-value]

    def indices(self, ids: Sequence[int]) -> np.ndarray:
        """Flat (full-image) indices of the voxels holding any of ``ids``, ascending (cached)."""
        key = ("indices", tuple(sorted(ids)))
        if key not in self._cache:
            box = self.box(ids)
            if box is None or self.label_array is None:
                self._cache[key] = np.zeros(0, dtype=np.intp)
            else:
                self._cache[key] = _box_to_flat(np.flatnonzero(is_any(self.label_array[box.slices], ids)),
                                                box, self.shape)
        return self._cache[key]  # type: ignore[return-value]

    def vessel_threshold(self, ids: Sequence[int]) -> float:
        """Organ-wide vessel threshold (median + 3 MAD of the parenchyma HU of ``ids``),
        estimated on the organ's voxels of a regular sub-grid of its box (about
        ``THRESHOLD_SAMPLE`` box voxels: no list of the organ's voxels is built)."""
        key = ("vessel_threshold", tuple(sorted(ids)))
        if key not in self._cache:
            values = self._organ_values(ids)
            kept = parenchyma_values(values) if values.size else values
            med, mad = robust_median_mad(kept if kept.size else (values if values.size else np.zeros(1)))
            self._cache[key] = med + 3.0 * mad
        return self._cache[key]  # type: ignore[return-value]

    def _organ_values(self, ids: Sequence[int]) -> np.ndarray:
        """HU of the organ's voxels on a regular sub-grid of its box (every voxel when the
        sub-grid holds fewer than ``MIN_THRESHOLD_VALUES`` of them: a thin organ)."""
        box = self.box(ids)
        if box is None or self.label_array is None:
            return np.zeros(0)
        step = max(1, int(np.ceil((int(np.prod(box.shape)) / THRESHOLD_SAMPLE) ** (1.0 / 3.0))))
        values = self._values_every(box, ids, step)
        return values if values.size >= MIN_THRESHOLD_VALUES or step == 1 else self._values_every(box, ids, 1)

    def _values_every(self, box: Box, ids: Sequence[int], step: int) -> np.ndarray:
        grid = tuple(slice(a, b, step) for a, b in zip(box.lo, box.hi))
        return np.asarray(self.image.array[grid][is_any(self.label_array[grid], ids)], dtype=np.float64)


def _box_to_flat(local: np.ndarray, box: Box, shape: Sequence[int]) -> np.ndarray:
    """Flat indices in ``box`` (C order) -> flat indices in the whole array of ``shape``: each
    row of the box (fixed i, j) starts at a known whole-array index, so one division and one
    look-up do it (cheaper than ``np.nonzero`` plus ``np.ravel_multi_index``)."""
    b0, b1, b2 = box.shape
    i, j = np.divmod(np.arange(b0 * b1), b1)
    row_start = ((i + box.lo[0]) * shape[1] + j + box.lo[1]) * shape[2] + box.lo[2] - np.arange(b0 * b1) * b2
    return local + row_start[local // b2]


_CACHE: "OrderedDict[tuple, tuple[weakref.ref, weakref.ref | None, ScanAnalysis]]" = OrderedDict()
_LOCK = threading.Lock()


def analyse_scan(image: Volume, labels: Volume | None, convention: str) -> ScanAnalysis:
    """The ``ScanAnalysis`` of these volumes, from the cache when the same ``Volume`` objects
    were analysed before (volumes are immutable: never write into their arrays)."""
    key = (id(image), id(labels), str(convention).strip().lower())
    with _LOCK:
        hit = _CACHE.get(key)
        if hit is not None:
            img_ref, lab_ref, analysis = hit
            if img_ref() is image and (lab_ref is None and labels is None or lab_ref is not None and lab_ref() is labels):
                _CACHE.move_to_end(key)
                return analysis
    analysis = ScanAnalysis(image, labels, convention)
    with _LOCK:
        _CACHE[key] = (weakref.ref(image), None if labels is None else weakref.ref(labels), analysis)
        while len(_CACHE) > CACHE_SIZE:
            _CACHE.popitem(last=False)
    return analysis


class ScanView:
    """Boxes of the scan as it is now. This base class reads the input volumes; the synthesis
    case overrides the three readers to overlay the tumors placed so far."""

    def __init__(self, analysis: ScanAnalysis) -> None:
        self.analysis = analysis

    @property
    def image(self) -> Volume:
        return self.analysis.image

    @property
    def has_labels(self) -> bool:
        return self.analysis.label_array is not None

    def image_box(self, box: Box) -> np.ndarray:
        """float32 copy of the image in ``box`` (HU)."""
        return np.asarray(self.analysis.image.array[box.slices], dtype=np.float32).copy()

    def labels_box(self, box: Box) -> np.ndarray:
        """Copy of the labels in ``box`` (zeros when the scan has no labels)."""
        lab = self.analysis.label_array
        if lab is None:
            return np.zeros(box.shape, dtype=np.int16)
        return np.array(lab[box.slices], dtype=np.result_type(lab.dtype, np.int16))

    def occupied_box(self, box: Box) -> np.ndarray:
        """bool: voxels of synthetic tumors placed earlier in this case (none in the input)."""
        return np.zeros(box.shape, dtype=bool)


__all__ = ["HU_BULK", "HU_LIMIT", "ScanAnalysis", "ScanView", "analyse_scan", "check_convention_fit", "check_image",
           "convention_ids", "fitting_conventions", "labelmap_array", "tumor_ids_of"]
