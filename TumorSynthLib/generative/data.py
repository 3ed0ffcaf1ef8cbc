"""Training data of the diffusion inpainter: tumor-centred crops and random patches from them.

``load_tumor_crops(cases, organs, convention)`` reads image/label pairs (any layout and label
convention ``tumorsynth train`` reads: MSD, LiTS, KiTS, TotalSegmentator, binary), finds every
connected tumor component (the convention's tumor ids of the chosen organs) and keeps a crop of
the image around it, large enough for any patch drawn for it. Cases without a tumor are skipped
(with a warning): there is nothing to learn from them.

``draw_patch(crop, cfg, rng)`` draws one training patch the way the ``diffusion`` appearance
reads one at inference (``synthesis.learned.patch``): the conditioning mask is the tumor grown
by ``mask_margin_mm``; its extent takes ``fill ~ U(cfg.fill)`` of the patch side at a spacing
of at least 1 mm (so tumors are seen at many spacings); the centre is shifted by up to 2 cells;
random flips, an in-plane quarter turn and a HU shift of +-10 HU augment it. Patches are in
window units ([-1, 1]).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from ..anatomy.organs import ORGANS
from ..anatomy.task_labels import guess_convention, tumor_ids
from ..core.errors import InputError, TumorSynthError
from ..core.volume import Box
from ..core.volume_io import load_volume
from ..segmentation.datasets import Case
from ..synthesis.learned.config import DiffusionConfig, to_unit
from ..synthesis.learned.patch import (
    PatchGrid,
    dilate_mm,
    extent_mm,
    patch_for_mask,
    patch_spacing,
)

#: Tumor components smaller than this are ignored (voxels).
MIN_COMPONENT_VOXELS = 8
#: Largest shift of the patch centre from the tumor's centre (cells, per axis).
MAX_SHIFT_CELLS = 2.0
HU_SHIFT = 10.0


@dataclass
class TumorCrop:
    """The image around one tumor component and the component's mask (same grid)."""

    image: np.ndarray           # float32 HU
    tumor: np.ndarray           # bool, this component
    region: np.ndarray          # bool, the conditioning mask: the component grown by the margin
    spacing: np.ndarray         # mm per axis
    case_id: str
    source: str                 # the image file (unique per case)
    diameter_mm: float          # equivalent-sphere diameter of the component


def tumor_label_ids(labels: np.ndarray, organs: Sequence[str], convention: str) -> tuple[int, ...]:
    """The tumor ids of ``organs`` in ``convention`` ("auto": guessed from the labels)."""
    ids: set[int] = set()
    for organ in organs:
        conv = guess_convention(labels, organ) if convention == "auto" else convention
        ids.update(tumor_ids(organ, conv))
    return tuple(sorted(ids))


def crop_margin_mm(extent: float, cfg: DiffusionConfig) -> float:
    """Room (mm) around a tumor's mask for any patch ``draw_patch`` may read for it."""
    h = min(patch_spacing(extent, cfg.patch, cfg.fill[0], cfg.spacing_mm[0]), cfg.spacing_mm[1])
    return 0.5 * cfg.patch * h + (MAX_SHIFT_CELLS + 2.0) * h + cfg.mask_margin_mm


def crops_of_case(case: Case, organs: Sequence[str], convention: str, cfg: DiffusionConfig) -> list[TumorCrop]:
    """Every tumor component of one case as a crop (empty when the case has no tumor)."""
    image, labels = load_volume(case.image), load_volume(case.label)
    if image.shape != labels.shape:
        raise InputError(f"image {image.shape} and label {labels.shape} grids differ; resample the label")
    lab = np.asarray(labels.array)
    tumor = np.isin(lab, tumor_label_ids(lab, organs, convention))
    components, count = ndimage.label(tumor, structure=np.ones((3, 3, 3)))
    spacing = np.asarray(image.spacing, dtype=float)
    out = []
    for index, slices in enumerate(ndimage.find_objects(components), start=1):
        if slices is None:
            continue
        local = components[slices] == index
        n_vox = int(local.sum())
        if n_vox < MIN_COMPONENT_VOXELS:
            continue
        extent = extent_mm(dilate_mm(np.pad(local, 2), spacing, cfg.mask_margin_mm), spacing)
        pad = np.ceil(crop_margin_mm(extent, cfg) / spacing).astype(int)
        box = Box(tuple(max(s.start - p, 0) for s, p in zip(slices, pad)),
                  tuple(min(s.stop + p, n) for s, p, n in zip(slices, pad, image.shape)))
        volume = n_vox * float(np.prod(spacing))
        mask = components[box.slices] == index
        out.append(TumorCrop(image=np.asarray(image.array[box.slices], dtype=np.float32), tumor=mask,
                             region=dilate_mm(mask, spacing, cfg.mask_margin_mm), spacing=spacing,
                             case_id=case.case_id, source=case.image, diameter_mm=float((6.0 * volume / np.pi) ** (1 / 3))))
    return out


def load_tumor_crops(cases: Sequence[Case], cfg: DiffusionConfig, organs: Sequence[str] = ORGANS,
                     convention: str = "auto", warn: Callable[[str], Any] | None = None) -> list[TumorCrop]:
    """Crops of every tumor of ``cases``; cases without tumors or unreadable are skipped with a
    warning (``find_cases`` has already refused datalists whose files mostly do not exist).
    May be empty: the callers say what is missing (the trainers raise InputError)."""
    crops: list[TumorCrop] = []
    for case in cases:
        try:
            found = crops_of_case(case, organs, convention, cfg)
        except TumorSynthError as exc:
            found, reason = [], f"unreadable ({exc})"
        else:
            reason = "no tumor label (nothing to learn from)"
        if not found and warn is not None:
            warn(f"warning: skipped case '{case.case_id}' ({case.label}): {reason}")
        crops += found
    return crops


def draw_grid(crop: TumorCrop, region: np.ndarray, cfg: DiffusionConfig, rng: np.random.Generator) -> PatchGrid:
    """A random patch around ``crop``'s tumor (fill, shift; spacing within the config's range)."""
    fill = float(rng.uniform(*cfg.fill))
    shift = rng.uniform(-MAX_SHIFT_CELLS, MAX_SHIFT_CELLS, 3)
    grid = patch_for_mask(region, crop.spacing, cfg.patch, fill, cfg.spacing_mm[0], shift)
    if grid.spacing_mm > cfg.spacing_mm[1]:
        grid = PatchGrid(grid.center, float(cfg.spacing_mm[1]), grid.n, grid.voxel_mm)
    return grid


def draw_patch(crop: TumorCrop, cfg: DiffusionConfig, rng: np.random.Generator,
               augment: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(image patch in window units, conditioning mask) of one random patch of ``crop``."""
    grid = draw_grid(crop, crop.region, cfg, rng)
    hu = grid.sample(crop.image)
    mask = grid.sample_mask(crop.region)
    if augment:
        hu = hu + np.float32(rng.uniform(-HU_SHIFT, HU_SHIFT))
        for axis in range(3):
            if rng.random() < 0.5:
                hu, mask = np.flip(hu, axis), np.flip(mask, axis)
        if rng.random() < 0.5:
            hu, mask = np.swapaxes(hu, 0, 1), np.swapaxes(mask, 0, 1)
    return to_unit(np.ascontiguousarray(hu), cfg.window_hu), np.ascontiguousarray(mask)


def draw_batch(crops: Sequence[TumorCrop], cfg: DiffusionConfig, rng: np.random.Generator, size: int,
               augment: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(images (B, n, n, n), masks (B, n, n, n)) of ``size`` patches of crops drawn uniformly."""
    if not crops:
        raise InputError("no tumor crops to draw patches from")
    picks = rng.integers(0, len(crops), size)
    pairs = [draw_patch(crops[int(i)], cfg, rng, augment) for i in picks]
    return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])


def split_crops(crops: Sequence[TumorCrop], held_sources: set[str]) -> tuple[list[TumorCrop], list[TumorCrop]]:
    """(training, held-out) crops by the case's image file."""
    train = [c for c in crops if c.source not in held_sources]
    held = [c for c in crops if c.source in held_sources]
    return train, held


def crops_summary(crops: Sequence[TumorCrop]) -> dict[str, Any]:
    """Counts and diameter quantiles (mm) of crops, for events and the training record."""
    if not crops:
        return {"tumors": 0, "cases": 0}
    d = np.array([c.diameter_mm for c in crops])
    return {"tumors": len(crops), "cases": len({c.source for c in crops}),
            "diameter_mm": {"min": float(d.min()), "median": float(np.median(d)), "max": float(d.max())}}


__all__ = ["TumorCrop", "crop_margin_mm", "crops_of_case", "crops_summary", "draw_batch", "draw_grid",
           "draw_patch", "load_tumor_crops", "split_crops", "tumor_label_ids"]
