"""Tumor intensity relative to *this* scan (common.md "Intensity relative to this scan").

Shared by the appearance providers:

* ``darkening_delta``: ``delta = f * max(median - 10, 25)`` HU with ``f`` from the organ's
  range; the tumor's mean never falls below 10 HU (water-like necrosis is the floor);
* ``solid_change``: the tumor starts as solid parenchyma wherever it lies (fat inside a fatty
  pancreas, the renal sinus, tissue past the organ contour of an exophytic tumor are replaced,
  not darkened), keeping the scan's grain where it is noise and re-synthesising it
  (``ct_grain``, at the organ's measured amplitude) where it is structure;
* ``change_towards``: absolute HU made by a model turned into a smooth change (its low
  frequencies minus the scene's), so the scene's grain stays in the tumor.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

from ..anatomy.organs import intensity_profile
from ..anatomy.parenchyma import MAD_TO_SIGMA, fixed_sample
from ..anatomy.site import Site
from ..core.gaussian import gaussian_blur
from ..core.morphology import dilate, erode
from ..core.stats import fast_median
from ..core.volume import Box, bounding_box, voxel_indices
from .contracts import Scene, low_pass, low_pass_rows

#: Tumors are never darker than this on average (HU).
TUMOR_FLOOR_HU = 10.0
DELTA_OFFSET_HU = 10.0
DELTA_MIN_BASE_HU = 25.0
#: Low frequencies farther than max(3 MAD, 40 HU) from the parenchyma median are structure
#: (fat, contour, calcification), not parenchyma: the tumor re-synthesises its grain there.
STRUCTURE_GAP_MAD, STRUCTURE_GAP_HU = 3.0, 40.0
#: A voxel whose own HU lies farther from the median than this many grain SDs (and the gap) is
#: structure too: noise reaches that far in 1 voxel of 2000, a fat lobule always.
OUTLIER_GRAIN_SD = 3.5
#: CT noise correlation (Gaussian sigma, voxels) of re-synthesised grain.
GRAIN_CORRELATION_VOXELS = 0.6
#: Fewest voxels a grain (robust SD) is measured on.
GRAIN_MIN_VOXELS = 30
#: Robust SDs are measured on at most this many values (a fixed sample of larger sets: the
#: estimate's error is then ~0.5 %, and two medians of a million values cost 40 ms).
ROBUST_SD_MAX_VALUES = 1 << 16
#: The organ's grain around a pushed tumor is measured on every n-th row of its box, n = the
#: box's voxels // this (every row below 2^18 voxels, about a 40 mm tumor at 1 mm; a 64 mm
#: one: every 6th row, still ~10^5 organ voxels, more than ``robust_sd`` keeps).
GRAIN_ROW_VOXELS = 1 << 17
#: Grain (HU) assumed when the scan shows too little parenchyma to measure it.
FALLBACK_GRAIN_HU = 10.0
#: A tumor's grain is measured on (at most) this central cube of it, in voxels.
GRAIN_SAMPLE_VOXELS = 32
#: Where a tumor's grain is measured: (slices of its central cube, core voxels in it).
Cube = tuple[tuple[slice, ...], np.ndarray]
#: Largest gain on the scan's kept grain in ``solid_change`` (see there).
GRAIN_GAIN_MAX = 1.5


def darkening_delta(site: Site, rng: np.random.Generator, enhancement: str = "hypo") -> tuple[float, float]:
    """(delta HU, drawn f); negative delta (a brighter tumor) for ``enhancement="hyper"``. A
    hypo tumor whose mean would fall below 10 HU gets the largest drop that keeps it at 10 HU
    (with a warning in the site)."""
    lo, hi = intensity_profile(site.organ).f_range
    f = float(rng.uniform(lo, hi))
    median = float(site.organ_median_hu)
    delta = f * max(median - DELTA_OFFSET_HU, DELTA_MIN_BASE_HU)
    if enhancement == "hyper":
        return -delta, f
    if median - delta < TUMOR_FLOOR_HU:
        floored = max(median - TUMOR_FLOOR_HU, 0.0)
        site.warnings.append(f"organ parenchyma median {median:.1f} HU leaves no room for a {delta:.1f} HU "
                             f"drop above the {TUMOR_FLOOR_HU:g} HU tumor floor; drop set to {floored:.1f} HU")
        delta = floored
    return delta, f


def solid_change(site: Site, scene: Scene, box: Box, mask: np.ndarray, rng: np.random.Generator,
                 draws: dict[str, Any], restore_grain: bool = True) -> np.ndarray:
    """Change (float32, ``box`` shape) that makes every tumor voxel of ``mask`` (in ``box``)
    solid parenchyma at the organ's median with the organ's grain; zero elsewhere.

    A tumor replaces what was there (fat lobules of a fatty pancreas, the renal sinus,
    calcifications, partial volume at the contour, tissue past the contour of an exophytic
    tumor) consistently, instead of darkening each of them by the same amount:

    * where the scan was parenchyma-like (low frequencies within ``STRUCTURE_GAP_HU`` or 3 MAD
      of the median), only the low frequencies (1-voxel Gaussian) are replaced: the scan's own
      grain stays, less its mean over those voxels (in a thin organ the blur mixes in the fat
      around it and the organ's voxels sit above their low frequencies: kept, that bias would
      brighten the tumor);
    * elsewhere (and one voxel around, where the high-pass still holds the edge) the grain is
      structure, not noise (a kidney contour, fat septa): those voxels take the median plus
      noise of the organ's measured grain (``ct_grain``), so no ghost of the old anatomy shows.

    Labelled vessels crossing the tumor are handled by the shading (compressed, not erased).
    ``restore_grain``: the kept high-pass is scaled by its measured loss (``_kept_grain_gain``,
    reported as ``grain_gain``) so the tumor has the grain its voxels had."""
    out = np.zeros(mask.shape, dtype=np.float32)
    if not mask.any():
        return out
    image, low = scene.image[box.slices], scene.low_frequencies(box)
    median, gap = float(site.organ_median_hu), structure_gap_hu(site)
    amplitude = organ_grain_hu(site, scene, box, mask)
    structured = _structure_in_tumor(image, low, mask, median, gap, max(gap, OUTLIER_GRAIN_SD * amplitude))
    clean = mask & ~structured
    hp = image - low
    bias = float(np.mean(hp[clean])) if clean.any() else 0.0
    gain = _kept_grain_gain(image, hp, clean) if restore_grain else 1.0
    out[clean] = np.float32(median) - image[clean] + np.float32(gain) * (hp[clean] - np.float32(bias))
    draws["grain_gain"] = gain
    if structured.any():
        out[structured] = np.float32(median) + grain_values(structured, amplitude, rng) - image[structured]
        draws.update(grain_resynthesised_voxels=int(structured.sum()), grain_resynthesised_hu=amplitude)
    return out


def _kept_grain_gain(image: np.ndarray, hp: np.ndarray, clean: np.ndarray) -> float:
    """The factor on the kept high-pass ``hp`` (= image minus its 1-voxel blur) that gives the
    tumor the grain its voxels had: a grain is measured as the robust SD of an image minus its
    1-voxel blur, and ``hp`` minus its own blur is weaker than ``hp`` (about 0.88x on the 1 mm
    phantom), so a flattened tumor came out smoother than its organ and needed a top-up of
    synthetic noise. Measured on the central cube of ``clean`` (``grain_cube``); 1 when it is
    too small; within 1..``GRAIN_GAIN_MAX``."""
    cube = grain_cube(clean) if np.count_nonzero(clean) >= GRAIN_MIN_VOXELS else None
    if cube is None:
        return 1.0
    sub, core = cube
    before, after = grain_at(image[sub], core), grain_at(hp[sub], core)
    if not (np.isfinite(before) and np.isfinite(after)) or after <= 0:
        return 1.0
    return float(np.clip(before / after, 1.0, GRAIN_GAIN_MAX))


def grain_cube(mask: np.ndarray) -> Cube | None:
    """(slices, core) where a tumor's grain is measured: the central ``GRAIN_SAMPLE_VOXELS``
    cube of ``mask`` (plus 3 voxels for the blur; plenty of voxels for a robust SD, where a large
    tumor's whole box would cost a Gaussian over a million voxels) and, in it, ``mask`` less its
    outer voxel layer (the soft edge's gradient is not grain), or all of it when that is small."""
    box = bounding_box(mask)
    if box is None:
        return None
    half = GRAIN_SAMPLE_VOXELS // 2
    centre = [(a + b) // 2 for a, b in zip(box.lo, box.hi)]
    lo = [max(a, c - half) - 3 for a, c in zip(box.lo, centre)]
    hi = [min(b, c + half) + 3 for b, c in zip(box.hi, centre)]
    sub = tuple(slice(max(a, 0), min(b, n)) for a, b, n in zip(lo, hi, mask.shape))
    core = erode(mask[sub])
    return sub, (core if np.count_nonzero(core) >= GRAIN_MIN_VOXELS else mask[sub])


def grain_at(shaded: np.ndarray, core: np.ndarray) -> float:
    """Robust SD (HU) of ``shaded`` minus its 1-voxel blur over ``core``: the one grain measure."""
    return robust_sd((shaded - low_pass(shaded))[core])


def _structure_in_tumor(image: np.ndarray, low: np.ndarray, mask: np.ndarray, median: float, gap: float,
                        outlier: float) -> np.ndarray:
    """Tumor voxels that are structure, not parenchyma: their low frequencies lie farther than
    ``gap`` HU from ``median``, or their own value farther than ``outlier`` HU (a fat lobule or
    calcification of a voxel or two, which the 1-voxel low-pass hardly sees), or a
    6-neighbour's does (computed on the mask's box only)."""
    out = np.zeros(mask.shape, dtype=bool)
    box = bounding_box(mask, 1)
    if box is not None:
        sl = box.slices
        far = (np.abs(low[sl] - np.float32(median)) > gap) | (np.abs(image[sl] - np.float32(median)) > outlier)
        out[sl] = dilate(far) & mask[sl]
    return out


def structure_gap_hu(site: Site) -> float:
    """How far (HU) low frequencies may lie from the parenchyma median and still be parenchyma."""
    return max(STRUCTURE_GAP_MAD * float(site.organ_mad_hu), STRUCTURE_GAP_HU)


def organ_grain_hu(site: Site, scene: Scene, box: Box, mask: np.ndarray) -> float:
    """The organ's grain (HU) around a tumor: the robust SD of the image minus its 1-voxel blur
    over the organ's voxels of ``box`` off the tumor (``mask`` and 2 voxels around), its own
    texture included (the kidney's cortex and medulla: a tumor is at least that heterogeneous);
    with too few of those, over the organ's voxels of the box, then ``FALLBACK_GRAIN_HU``.
    Measured on the site's image before the mass effect: the push compresses the organ's
    structure into the ring around the tumor and bends vessels onto it, and measured there the
    "grain" held them (advanced venous kidney tumors were topped up to a grain ratio of 1.22).
    Cached in the scene (the appearance and the shading ask for the same tumor)."""
    return scene.memo(("organ_grain", box.lo, box.hi, hash(mask.tobytes())),
                      lambda: _measure_organ_grain(site, scene, box, mask))


def _measure_organ_grain(site: Site, scene: Scene, box: Box, mask: np.ndarray) -> float:
    step = 1
    if scene.image is site.image_roi:          # no mass effect: the scene's low-pass is the site's
        hp = scene.image[box.slices] - scene.low_frequencies(box)
    else:                                      # a large box: every few rows (``GRAIN_ROW_VOXELS``)
        image = site.image_roi[box.slices]
        step = max(1, int(mask.size // GRAIN_ROW_VOXELS))
        hp = image[::step] - low_pass_rows(image, step)
    organ = site.organ_mask[box.slices][::step]
    near_tumor = np.zeros_like(mask)
    near = bounding_box(mask, 2)
    if near is not None:
        near_tumor[near.slices] = dilate(mask[near.slices], iterations=2)
    near_tumor = near_tumor[::step]
    for where in (organ & ~near_tumor, organ):
        if np.count_nonzero(where) >= GRAIN_MIN_VOXELS:
            return robust_sd(hp[where])
    return FALLBACK_GRAIN_HU


#: Re-synthesised grain is read from one periodic tile of correlated noise (this many voxels a
#: side), at a random offset and orientation per tumor: no noise field is generated per call.
GRAIN_TILE_VOXELS = 96


@lru_cache(maxsize=2)
def _grain_tile(correlation_voxels: float) -> np.ndarray:
    """A periodic cube of white noise blurred by ``correlation_voxels`` (wrap-around), scaled to
    a grain (robust SD of it minus its 1-voxel blur) of 1 HU. Made once per process from a
    fixed seed, so every draw stays a function of the caller's generator."""
    n = GRAIN_TILE_VOXELS
    noise = gaussian_blur(np.random.default_rng(0).standard_normal((n, n, n), dtype=np.float32),
                          correlation_voxels, 4.0, "wrap")
    grain = robust_sd(noise - gaussian_blur(noise, 1.0, 4.0, "wrap"))
    tile = noise / np.float32(max(grain, 1e-6))
    tile.setflags(write=False)
    return tile


def _tile_axes(shape: tuple[int, ...], rng: np.random.Generator) -> list[np.ndarray]:
    """Per axis, the tile rows a field of ``shape`` reads: an offset and a flip drawn from ``rng``."""
    n = GRAIN_TILE_VOXELS
    offsets = rng.integers(0, n, size=3)
    signs = np.where(rng.random(3) < 0.5, -1, 1)
    return [(np.arange(size) * sign + offset) % n for size, sign, offset in zip(shape, signs, offsets)]


def _tile_field(axes: list[np.ndarray], box: Box) -> np.ndarray:
    """The grain tile read on ``box`` (whole rows of the tile: no per-voxel gather)."""
    field = _grain_tile(GRAIN_CORRELATION_VOXELS)
    for axis, (a, lo, hi) in enumerate(zip(axes, box.lo, box.hi)):
        field = field.take(a[lo:hi], axis=axis)
    return field


def ct_grain(shape: tuple[int, ...], amplitude_hu: float, rng: np.random.Generator,
             where: np.ndarray | None = None) -> np.ndarray:
    """CT-like noise (white noise blurred by ``GRAIN_CORRELATION_VOXELS``) whose grain (robust
    SD of it minus its 1-voxel blur) is ``amplitude_hu``: float32 of ``shape``, filled at
    ``where`` (bool, ``shape``; default everywhere) and zero elsewhere. Read from the periodic
    noise tile at an offset and axis flips drawn from ``rng``."""
    axes = _tile_axes(shape, rng)
    out = np.zeros(shape, dtype=np.float32)
    box = Box((0, 0, 0), tuple(shape)) if where is None else bounding_box(where)
    if box is None:
        return out
    field = _tile_field(axes, box)
    if where is None:
        out[...] = field
    else:
        inside = where[box.slices]
        out[box.slices][inside] = field[inside]
    out *= np.float32(amplitude_hu)
    return out


def grain_values(where: np.ndarray, amplitude_hu: float, rng: np.random.Generator) -> np.ndarray:
    """``ct_grain`` at the voxels of ``where`` (1D float32, in ``where``'s order; the same draws
    and values, without a field of ``where``'s shape) less its mean over them. Grain noise is
    spatially correlated, so over the few dozen voxels of a small tumor its mean is far from 0
    (+-10 HU at a 12 HU grain on 3 mm CT): re-synthesised grain must not move the tumor's level,
    which the drop sets (an early tumor in a fatty pancreas came out 12 HU brighter than its
    organ instead of 4 HU darker)."""
    axes = _tile_axes(where.shape, rng)
    at = voxel_indices(where)
    if at[0].size == 0:
        return np.zeros(0, dtype=np.float32)
    tile = _grain_tile(GRAIN_CORRELATION_VOXELS)
    noise = tile[tuple(a[i] for a, i in zip(axes, at))] * np.float32(amplitude_hu)
    return (noise - np.float32(noise.mean())).astype(np.float32)


def robust_sd(values: np.ndarray) -> float:
    """1.4826 x the median absolute deviation (NaN for fewer than 5 values); sets larger than
    ``ROBUST_SD_MAX_VALUES`` are measured on a fixed pseudo-random sample of them."""
    values = np.asarray(values).ravel()
    if values.size < 5:
        return float("nan")
    values = fixed_sample(values, ROBUST_SD_MAX_VALUES).astype(np.float64)
    return fast_median(np.abs(values - fast_median(values))) * MAD_TO_SIGMA


def change_towards(target_hu: np.ndarray, scene: Scene, box: Box, spacing: np.ndarray | None = None) -> np.ndarray:
    """Smooth change (float32, ``box`` shape) that moves the scene's low frequencies to those of
    ``target_hu`` (absolute HU in ``box``, e.g. a model's sample): the grain stays the scene's."""
    target_low = low_pass(np.asarray(target_hu, dtype=np.float32))
    return (target_low - scene.low_frequencies(box)).astype(np.float32)


__all__ = ["Cube", "TUMOR_FLOOR_HU", "change_towards", "ct_grain", "darkening_delta", "grain_at", "grain_cube",
           "organ_grain_hu", "robust_sd", "grain_values", "solid_change", "structure_gap_hu"]
