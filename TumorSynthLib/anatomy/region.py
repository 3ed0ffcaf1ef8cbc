"""The organ a tumor goes into, as a region that answers questions box by box.

Placement never builds a whole-image organ mask: it asks the region for the tissue / lesion
masks of the boxes it works on. Two sources:

* ``LabelledRegion``: voxels of one organ in a labelmap (tissue) plus the lesions already in it
  (existing or earlier synthetic tumors, KiTS cysts), which count as organ but are occupied.
  Boxes are read through a ``ScanView``, so tumors placed earlier in the same call are seen;
  whole-organ facts (volume, box, present ids) come from the cached ``ScanAnalysis``.
* ``GrownRegion``: a region grown from a click when there are no labels (common.md: flood fill
  of voxels within +-2.5 MAD of the local median HU, <= 60 mm from the click, 2 mm opening, the
  connected component holding the click).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import ndimage

from ..core.errors import PlacementError
from ..core.morphology import opening
from ..core.volume import Box, box_around, is_any, voxel_coords
from .analysis import ScanView
from .organs import lesion_label_ids, organ_label_ids
from .parenchyma import robust_median_mad

#: Region growing defaults (mm / multiples of the scaled MAD).
GROW_RADIUS_MM = 60.0
GROW_TOLERANCE_MAD = 2.5
GROW_LOCAL_RADIUS_MM = 5.0
GROW_OPENING_MM = 2.0


def ball_d2(shape: Sequence[int], center: Sequence[float], spacing: Sequence[float]) -> np.ndarray:
    """Squared distance (mm^2) of every voxel of an array of ``shape`` to ``center`` (voxels)."""
    grids = np.ogrid[tuple(slice(0, n) for n in shape)]
    return sum(((g - c) * s) ** 2 for g, c, s in zip(grids, center, spacing))  # type: ignore[return-value]


def nearest_voxel(mask: np.ndarray, point_vox: Sequence[float],
                  spacing: Sequence[float]) -> tuple[np.ndarray, float] | None:
    """(integer index, distance mm) of the true voxel of ``mask`` nearest to ``point_vox``
    (continuous index in ``mask``'s coordinates); None for an empty mask."""
    idx = voxel_coords(mask)
    if idx.size == 0:
        return None
    d2 = (((idx - np.asarray(point_vox, float)) * np.asarray(spacing, float)) ** 2).sum(axis=1)
    best = int(np.argmin(d2))
    return idx[best], float(np.sqrt(d2[best]))


def snap_to_organ(mask: np.ndarray, point_vox: Sequence[float], spacing: Sequence[float],
                  max_mm: float = 3.0) -> tuple[np.ndarray, float] | None:
    """The placed centre for a click: the click itself (distance 0) when its voxel is in the
    organ, the nearest organ voxel centre when that is within ``max_mm``, else None."""
    p = np.asarray(point_vox, dtype=float)
    v = np.rint(p).astype(int)
    if np.all(v >= 0) and np.all(v < mask.shape) and mask[tuple(v)]:
        return p.copy(), 0.0
    near = nearest_voxel(mask, p, spacing)
    if near is None or near[1] > max_mm:
        return None
    return near[0].astype(float), near[1]


class LabelledRegion:
    """One organ of a labelmap: tissue ids and lesion ids (see the module docstring)."""

    source = "labels"

    def __init__(self, view: ScanView, organ: str, tissue_ids: tuple[int, ...],
                 lesion_ids: tuple[int, ...]) -> None:
        self.view = view
        self.organ = organ
        self.tissue_ids = tissue_ids
        self.lesion_ids = lesion_ids
        self.organ_label_id = int(tissue_ids[0])

    def masks(self, box: Box, labels: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(tissue, lesion) bool masks of the voxels inside ``box``, as the scan is now
        (``labels``: ``view.labels_box(box)`` when the caller already holds it)."""
        sub = self.view.labels_box(box) if labels is None else labels
        tissue = is_any(sub, self.tissue_ids)
        lesion = is_any(sub, self.lesion_ids)
        lesion |= self.view.occupied_box(box) & tissue
        tissue &= ~lesion
        return tissue, lesion

    def volume_ml(self) -> float:
        n = self.view.analysis.count(self.tissue_ids + self.lesion_ids)
        return n * float(np.prod(self.view.analysis.spacing)) / 1000.0

    def bbox(self, margin_vox: int = 0) -> Box:
        box = self.view.analysis.box(self.tissue_ids + self.lesion_ids, margin_vox)
        if box is None:
            raise PlacementError(self.absent_message())
        return box

    def nearest(self, point_vox: Sequence[float]) -> tuple[np.ndarray, float] | None:
        box = self.view.analysis.box(self.tissue_ids + self.lesion_ids)
        if box is None:
            return None
        tissue, lesion = self.masks(box)
        near = nearest_voxel(tissue | lesion, np.asarray(point_vox) - np.asarray(box.lo),
                             self.view.analysis.spacing)
        return None if near is None else (near[0] + np.asarray(box.lo), near[1])

    def absent_message(self) -> str:
        analysis = self.view.analysis
        return (f"the {self.organ} is absent from the labels (convention {analysis.convention}: "
                f"ids {list(self.tissue_ids)}; ids found: {analysis.present_ids[:30]}); "
                "check the label convention (--labels) and the organ")


class GrownRegion:
    """A region grown from a click, stored as a mask inside its own box."""

    source = "region-grown"
    lesion_ids: tuple[int, ...] = ()

    def __init__(self, view: ScanView, organ: str, box: Box, mask: np.ndarray, organ_label_id: int):
        self.view = view
        self.organ = organ
        self.box = box
        self.mask = mask
        self.organ_label_id = int(organ_label_id)

    def masks(self, box: Box, labels: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        tissue = np.zeros(box.shape, dtype=bool)
        lo = np.maximum(box.lo, self.box.lo)
        hi = np.minimum(box.hi, self.box.hi)
        if np.all(hi > lo):
            dst = tuple(slice(a - o, b - o) for a, b, o in zip(lo, hi, box.lo))
            src = tuple(slice(a - o, b - o) for a, b, o in zip(lo, hi, self.box.lo))
            tissue[dst] = self.mask[src]
        occupied = self.view.occupied_box(box)
        return tissue & ~occupied, tissue & occupied

    def volume_ml(self) -> float:
        return int(np.count_nonzero(self.mask)) * float(np.prod(self.view.analysis.spacing)) / 1000.0

    def bbox(self, margin_vox: int = 0) -> Box:
        return self.box

    def nearest(self, point_vox: Sequence[float]) -> tuple[np.ndarray, float] | None:
        near = nearest_voxel(self.mask, np.asarray(point_vox) - np.asarray(self.box.lo),
                             self.view.analysis.spacing)
        return None if near is None else (near[0] + np.asarray(self.box.lo), near[1])

    def absent_message(self) -> str:
        return (f"no organ-like tissue could be grown from the click; click well inside the "
                f"{self.organ} or give organ labels")


def labelled_region(view: ScanView, organ: str, click_vox: np.ndarray | None = None,
                    snap_mm: float = 3.0, organ_label_id: int | None = None) -> LabelledRegion:
    """The organ region of the labelmap. With several organ ids (kidneys) and a click, the id
    is the one at (or nearest within ``snap_mm`` of) the click; without a match every id is
    kept (the caller then reports the distance to the nearest of them)."""
    convention = view.analysis.convention
    ids = organ_label_ids(organ, convention)
    if organ_label_id is None and len(ids) > 1 and click_vox is not None:
        organ_label_id = _id_near_click(view, organ, click_vox, snap_mm)
    tissue = (int(organ_label_id),) if organ_label_id is not None else ids
    if convention == "totalseg":
        lesions = tuple(200 + i for i in tissue)
    else:
        lesions = lesion_label_ids(organ, convention)
    return LabelledRegion(view, organ, tissue, lesions)


def _id_near_click(view: ScanView, organ: str, click: np.ndarray, snap_mm: float) -> int | None:
    spacing = view.analysis.spacing
    convention = view.analysis.convention
    box = box_around(click, snap_mm + float(max(spacing)), spacing, view.analysis.shape)
    sub = view.labels_box(box)
    ids = organ_label_ids(organ, convention)
    region = is_any(sub, ids + tuple(lesion_label_ids(organ, convention)))
    snapped = snap_to_organ(region, click - np.asarray(box.lo), spacing, snap_mm)
    if snapped is None:
        return None
    value = int(sub[tuple(np.rint(snapped[0]).astype(int))])
    return value if value in ids else value - 200


def _structure_mm(radius_mm: float, spacing: Sequence[float]) -> np.ndarray:
    """Ellipsoidal structuring element of ``radius_mm`` (at least one voxel per axis)."""
    r = np.maximum(np.rint(radius_mm / np.asarray(spacing, float)).astype(int), 1)
    grids = np.ogrid[tuple(slice(-n, n + 1) for n in r)]
    return sum((g / n) ** 2 for g, n in zip(grids, r)) <= 1.0


def grow_organ_region(view: ScanView, click_vox: Sequence[float], organ: str = "organ", *,
                      organ_label_id: int = 1, radius_mm: float = GROW_RADIUS_MM,
                      tolerance_mad: float = GROW_TOLERANCE_MAD,
                      local_radius_mm: float = GROW_LOCAL_RADIUS_MM,
                      opening_mm: float = GROW_OPENING_MM) -> GrownRegion:
    """Grow an organ region from a click (continuous voxel index): voxels within
    ``tolerance_mad`` scaled MADs of the median HU of a ``local_radius_mm`` ball around the
    click, within ``radius_mm`` of it, opened by an ellipsoid of ``opening_mm`` (>= 1 voxel per
    axis), the connected component holding the click (or nearest to it), holes filled."""
    spacing = view.analysis.spacing
    click = np.asarray(click_vox, dtype=float)
    box = box_around(click, radius_mm, spacing, view.analysis.shape)
    sub = view.image_box(box)
    c = click - np.asarray(box.lo)
    d2 = ball_d2(sub.shape, c, spacing)
    local_r = max(local_radius_mm, 1.01 * float(np.max(spacing)))
    med, mad = robust_median_mad(sub[d2 <= local_r**2].astype(np.float64))
    cand = (d2 <= radius_mm**2) & (np.abs(sub - med) <= tolerance_mad * mad)
    opened = opening(cand, _structure_mm(opening_mm, spacing))
    comps, n = ndimage.label(opened)
    if n == 0:
        raise PlacementError(
            f"no organ-like tissue could be grown from the click (local median {med:.0f} HU); "
            f"click well inside the {organ} or give organ labels"
        )
    v = np.rint(c).astype(int)
    if comps[tuple(v)] == 0:
        v = nearest_voxel(opened, c, spacing)[0]  # type: ignore[index]
    mask = ndimage.binary_fill_holes(comps == comps[tuple(v)])
    return GrownRegion(view, organ, box, mask, organ_label_id)


#: Either kind of region (they share masks / volume_ml / bbox / nearest / absent_message).
OrganRegion = LabelledRegion | GrownRegion

__all__ = ["GrownRegion", "LabelledRegion", "OrganRegion", "ball_d2", "grow_organ_region",
           "labelled_region", "nearest_voxel", "snap_to_organ"]
