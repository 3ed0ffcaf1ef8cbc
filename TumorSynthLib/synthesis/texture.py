"""Blurred salt-noise texture of a tumor, generated for the ROI only (common.md "Texture").

Steps (sizes in mm, converted per axis to voxels so anisotropic scans get round blobs):
uniform noise -> Gaussian(sigma_a) -> rescale to [b, b + ~0.2] with b ~ U(0.04, 0.06) ->
Bernoulli sample ("salt") -> Gaussian(sigma_b) -> scale so the mean of the values above 0.12 is
~U(0.5, 0.55) -> clip to [0, 1]. ``heterogeneity`` in [0, 1] blends the texture with its own mean:
0 gives a flat tumor (tiny / early), 1 the full texture (advanced).

Why per ROI: the reference pre-computes ten whole-volume fields (~3 GB, 87 s at start-up); a
texture the size of one tumor box costs milliseconds. On fine grids it is made on a coarse grid
of cells of about a third of the smaller sigma and interpolated to the voxels (the field is
smooth at that scale), which keeps large tumors at 1 mm cheap.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..core.gaussian import gaussian_blur
from ..core.resample import coarse_grid, upsample

#: Gaussian kernels are cut at this many sigmas (enough for a texture, faster than scipy's 4).
TRUNCATE = 3.0
#: Texture values above this count as the "active" part whose mean is normalised.
ACTIVE_THRESHOLD = 0.12

#: The texture's grid has cells of at most (smaller sigma / this), in mm.
COARSE_CELLS_PER_SIGMA = 1.5

#: Stage -> texture heterogeneity (0 flat .. 1 full salt-noise texture).
STAGE_HETEROGENEITY = {"tiny": 0.25, "early": 0.45, "intermediate": 0.75, "advanced": 1.0}


def sigma_voxels(sigma_mm: float | Sequence[float], spacing: Sequence[float]) -> np.ndarray:
    """A Gaussian sigma in mm expressed in voxels along each array axis."""
    return np.asarray(sigma_mm, dtype=float) / np.asarray(spacing, dtype=float)


def gaussian_mm(array: np.ndarray, sigma_mm: float, spacing: Sequence[float]) -> np.ndarray:
    """Separable Gaussian blur (float32) with a sigma given in mm, per-axis in voxels."""
    return gaussian_blur(np.asarray(array, dtype=np.float32), sigma_voxels(sigma_mm, spacing), TRUNCATE, "nearest")


def make_texture(
    shape: Sequence[int], spacing: Sequence[float], rng: np.random.Generator, *,
    sigma_a_mm: float = 3.0, sigma_b_mm: float = 4.0, heterogeneity: float = 1.0,
    draws: dict[str, Any] | None = None,
) -> np.ndarray:
    """A float32 texture in [0, 1] of ``shape`` (voxel size ``spacing`` mm).

    ``draws``, when given, receives the scalar draws (base, scale, mean target) for the report.
    """
    shape = tuple(int(s) for s in shape)
    factor = coarse_grid(spacing, min(sigma_a_mm, sigma_b_mm) / COARSE_CELLS_PER_SIGMA)
    fine, shape = shape, tuple(-(-n // f) for n, f in zip(shape, factor))
    spacing = np.asarray(spacing, dtype=float) * factor
    base = float(rng.uniform(0.04, 0.06))
    scale = float(rng.uniform(0.19, 0.21))
    target = float(rng.uniform(0.5, 0.55))
    smooth = gaussian_mm(rng.random(shape, dtype=np.float32), sigma_a_mm, spacing)
    lo, hi = float(smooth.min()), float(smooth.max())
    prob = base + scale * ((smooth - lo) / (hi - lo) if hi > lo else np.zeros_like(smooth))
    salt = (rng.random(shape, dtype=np.float32) < prob).astype(np.float32)
    tex = gaussian_mm(salt, sigma_b_mm, spacing)
    active = tex > ACTIVE_THRESHOLD
    active_mean = float(tex[active].mean()) if active.any() else float(tex.mean())
    if active_mean > 0:
        tex *= np.float32(target / active_mean)
    np.clip(tex, 0.0, 1.0, out=tex)
    if np.any(factor > 1):
        tex = upsample(tex, factor, fine)
    h = float(np.clip(heterogeneity, 0.0, 1.0))
    if h < 1.0:
        tex = np.float32(h) * tex + np.float32((1.0 - h) * target)
    if draws is not None:
        draws.update(texture_base=base, texture_scale=scale, texture_mean_target=target,
                     texture_sigma_a_mm=float(sigma_a_mm), texture_sigma_b_mm=float(sigma_b_mm),
                     texture_heterogeneity=h)
    return tex.astype(np.float32, copy=False)


__all__ = ["STAGE_HETEROGENEITY", "gaussian_mm", "make_texture", "sigma_voxels"]
