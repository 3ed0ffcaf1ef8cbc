"""Training crops of ``tumorsynth train-adversarial`` (numpy; methods.md section 4).

Cases are image/label pairs read once, turned to RAS and kept in memory. Each step draws, from
an explicit seed (so a resumed run sees the same batches):

* *synthetic* crops: a ``patch``^3 crop at 1.5 mm centred in an organ of a case, with a
  procedural tumor shape ``M`` (deformed ellipsoid in mm, inside the organ), its soft weight
  ``W`` (``M`` blurred by U(1, 2) mm), a texture with mean 1 in ``M``, the organ ``O`` (and
  ``M``), the drop base ``max(organ_median - 10, 25)`` HU and the generator channel of the organ;
* *real* crops: centred on a voxel of a labelled tumor, with its mask ``R``.

Crops are windowed to [0, 1] over the model's HU window (values outside are clipped).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from scipy import ndimage

from ..anatomy.organs import organ_label_ids
from ..anatomy.task_labels import guess_convention, tumor_ids
from ..core.errors import InputError
from ..core.resample import resample
from ..core.volume import Volume
from ..core.volume_io import load_volume
from ..segmentation.datasets import find_cases
from ..synthesis.learned.gan import GanConfig, drop_base_hu
from ..synthesis.shapes import deformed_ellipsoid, draw_radii
from ..synthesis.texture import make_texture

#: Organ voxels a case needs for an organ to be sampled.
MIN_ORGAN_VOXELS = 500
MIN_TUMOR_VOXELS = 20
DIAMETER_MM = (8.0, 40.0)
EDGE_SIGMA_MM = (1.0, 2.0)
DEFORM_FRACTION = 0.25
AIR_HU = -1000.0


@dataclass
class CaseArrays:
    """One case in RAS: HU image, organ channel per voxel (-1: none), tumor mask, spacing."""

    case_id: str
    image: np.ndarray
    organ_channel: np.ndarray
    tumor: np.ndarray
    spacing: np.ndarray
    centres: dict[int, np.ndarray]          # channel -> (N, 3) organ voxels away from the contour
    medians: dict[int, float]               # channel -> organ median HU
    tumor_voxels: np.ndarray                # (N, 3)


def to_ras(volume: Volume, order_is_label: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(array, spacing) of a volume re-ordered so that its axes run R, A, S."""
    import nibabel.orientations as nio

    ornt = nio.ornt_transform(nio.io_orientation(volume.affine), nio.axcodes2ornt("RAS"))
    array = nio.apply_orientation(np.asarray(volume.array), ornt)
    spacing = np.asarray(volume.spacing, dtype=float)[np.argsort(ornt[:, 0].astype(int))]
    return np.ascontiguousarray(array), spacing


def load_case(image: Volume, labels: Volume, case_id: str, cfg: GanConfig, convention: str = "auto") -> CaseArrays:
    """The arrays of one case (organs of ``cfg.organs``; tumors of those organs)."""
    img, spacing = to_ras(image)
    lab, _ = to_ras(labels)
    conv = guess_convention(lab, cfg.organs[0]) if convention == "auto" else convention
    channel = np.full(lab.shape, -1, dtype=np.int8)
    tumor = np.zeros(lab.shape, dtype=bool)
    centres, medians = {}, {}
    for index, organ in enumerate(cfg.organs):
        organ_ids = organ_label_ids(organ, conv)
        t_ids = [t for t in tumor_ids(organ, conv) if t not in organ_ids]
        tissue = np.isin(lab, organ_ids)
        tumor |= np.isin(lab, t_ids) if t_ids else False
        channel[tissue | (np.isin(lab, t_ids) if t_ids else False)] = index
        if np.count_nonzero(tissue) >= MIN_ORGAN_VOXELS:
            inner = ndimage.binary_erosion(tissue, iterations=2)
            centres[index] = np.argwhere(inner if inner.any() else tissue)
            medians[index] = float(np.median(img[tissue]))
    return CaseArrays(case_id, img.astype(np.float32), channel, tumor, spacing, centres, medians,
                      np.argwhere(tumor))


def load_cases(folder: str | Path, cfg: GanConfig, convention: str = "auto", *, need_tumor: bool) -> list[CaseArrays]:
    """Every image/label pair of ``folder`` (or datalist); InputError when none is usable."""
    found, validation = find_cases(folder)
    cases = []
    for case in [*found, *validation]:
        arrays = load_case(load_volume(case.image), load_volume(case.label), case.case_id, cfg, convention)
        if (len(arrays.tumor_voxels) >= MIN_TUMOR_VOXELS) if need_tumor else bool(arrays.centres):
            cases.append(arrays)
    if not cases:
        what = "labelled tumors" if need_tumor else f"any of the organs {', '.join(cfg.organs)}"
        raise InputError(f"no case in '{folder}' has {what}; check the labels and --labels convention")
    return cases


def crop(case: CaseArrays, centre: Sequence[float], cfg: GanConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(HU, organ channel, tumor) crops of ``cfg.patch``^3 cells of ``cfg.spacing_mm`` at ``centre``."""
    offsets = (np.arange(cfg.patch) - 0.5 * (cfg.patch - 1)) * cfg.spacing_mm
    coords = [centre[a] + offsets / case.spacing[a] for a in range(3)]
    image = resample(case.image, coords, order=1, fill=AIR_HU)
    channel = resample(case.organ_channel, coords, order=0, fill=-1)
    tumor = resample(case.tumor, coords, order=0, fill=False)
    return image.astype(np.float32), channel, tumor


def window(hu: np.ndarray, cfg: GanConfig) -> np.ndarray:
    w0, w1 = cfg.window_hu
    return np.clip((hu - w0) / (w1 - w0), 0.0, 1.0).astype(np.float32)


def synthetic_sample(cases: list[CaseArrays], cfg: GanConfig, rng: np.random.Generator) -> dict[str, Any]:
    """One synthetic-tumor crop (see the module doc)."""
    iso = (cfg.spacing_mm,) * 3
    for _ in range(20):
        case = cases[int(rng.integers(len(cases)))]
        channel = int(rng.choice(sorted(case.centres)))
        centre = case.centres[channel][int(rng.integers(len(case.centres[channel])))]
        hu, organ_channel, _tumor = crop(case, centre, cfg)
        organ = organ_channel == channel
        diameter = float(rng.uniform(DIAMETER_MM[0], min(DIAMETER_MM[1], 0.7 * cfg.patch * cfg.spacing_mm)))
        mid = [0.5 * (cfg.patch - 1)] * 3
        mask = deformed_ellipsoid(hu.shape, mid, draw_radii(diameter, rng), iso, rng,
                                  deform_fraction=DEFORM_FRACTION) & organ
        if np.count_nonzero(mask) >= MIN_TUMOR_VOXELS:
            break
    else:
        raise InputError("could not place a tumor shape inside an organ in 20 tries; the organs are "
                         "too small for this --patch")
    weight = ndimage.gaussian_filter(mask.astype(np.float32), float(rng.uniform(*EDGE_SIGMA_MM)) / cfg.spacing_mm)
    tex = make_texture(hu.shape, iso, rng, sigma_a_mm=float(rng.uniform(3.0, 6.0)),
                       sigma_b_mm=float(rng.uniform(3.0, 5.0)))
    tex = tex / np.float32(max(float(tex[mask].mean()), 1e-6))
    return {"x": window(hu, cfg), "mask": mask, "weight": weight, "texture": tex.astype(np.float32),
            "organ": (organ | mask), "base_hu": drop_base_hu(case.medians[channel]), "channel": channel}


def real_sample(cases: list[CaseArrays], cfg: GanConfig, rng: np.random.Generator) -> dict[str, Any]:
    """One crop centred on a voxel of a labelled tumor, with its tumor mask."""
    case = cases[int(rng.integers(len(cases)))]
    centre = case.tumor_voxels[int(rng.integers(len(case.tumor_voxels)))]
    hu, _channel, tumor = crop(case, centre, cfg)
    return {"x": window(hu, cfg), "real": tumor.astype(bool)}


def make_batch(healthy: list[CaseArrays], tumors: list[CaseArrays], cfg: GanConfig, batch: int,
               rng: np.random.Generator) -> dict[str, np.ndarray]:
    """``batch`` synthetic and ``batch`` real crops stacked as (B, 1, n, n, n) arrays (``base_hu``
    and ``channel``: (B,))."""
    fake = [synthetic_sample(healthy, cfg, rng) for _ in range(batch)]
    real = [real_sample(tumors, cfg, rng) for _ in range(batch)]
    out = {key: np.stack([s[key] for s in fake])[:, None] for key in ("x", "mask", "weight", "texture", "organ")}
    out["base_hu"] = np.asarray([s["base_hu"] for s in fake], dtype=np.float32)
    out["channel"] = np.asarray([s["channel"] for s in fake], dtype=np.int64)
    out["x_real"] = np.stack([s["x"] for s in real])[:, None]
    out["real"] = np.stack([s["real"] for s in real])[:, None]
    return out


__all__ = ["CaseArrays", "crop", "load_case", "load_cases", "make_batch", "real_sample", "synthetic_sample",
           "to_ras", "window"]
