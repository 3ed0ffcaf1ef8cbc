"""Binary dilation and erosion by small symmetric structuring elements, as shifted logical ORs /
ANDs of whole arrays.

Same result as ``scipy.ndimage.binary_dilation`` / ``binary_erosion`` (voxels beyond the array
count as false) for connected elements (balls, crosses, boxes) and ``iterations >= 1``; with a
disconnected element and several iterations scipy takes a shortcut that can differ, and its
``iterations <= 0`` ("until nothing changes") is refused here. 10-15x faster for the 3D
6-neighbour cross and the few-voxel balls the synthesis uses: scipy visits every voxel's
neighbourhood one by one, here each offset of the element is one vectorised pass (a 64 mm
tumor's box: 20 ms -> 1.5 ms per dilation). The cost grows with the element's voxel count, so
large elements belong to ``core.resample.dilate_mm``.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage


def _offsets(structure: np.ndarray | None, ndim: int, iterations: int) -> list[tuple[int, ...]]:
    if iterations < 1:
        raise ValueError(f"iterations must be >= 1, got {iterations}")
    s = ndimage.generate_binary_structure(ndim, 1) if structure is None else np.asarray(structure, dtype=bool)
    centre = np.asarray(s.shape) // 2
    if (any(n % 2 == 0 for n in s.shape) or not s[tuple(centre)]
            or not np.array_equal(s, s[tuple(slice(None, None, -1) for _ in s.shape)])):
        raise ValueError("the structuring element must be odd-sized, hold its centre and be symmetric about it")
    return [tuple(int(v) for v in idx - centre) for idx in np.argwhere(s) if np.any(idx != centre)]


def _slices(offset: tuple[int, ...]) -> tuple[tuple[slice, ...], tuple[slice, ...]]:
    """(destination, source) slices that move an array by ``offset`` voxels."""
    dst = tuple(slice(o, None) if o > 0 else slice(0, o if o < 0 else None) for o in offset)
    src = tuple(slice(0, -o) if o > 0 else slice(-o, None) for o in offset)
    return dst, src


def dilate(mask: np.ndarray, structure: np.ndarray | None = None, iterations: int = 1) -> np.ndarray:
    """``mask`` (bool) dilated ``iterations`` (>= 1) times by ``structure`` (odd-sized,
    symmetric, holding its centre; default the nearest-neighbour cross): a new array."""
    return _grow(np.array(mask, dtype=bool, copy=True), structure, iterations, outside=False)


def erode(mask: np.ndarray, structure: np.ndarray | None = None, iterations: int = 1) -> np.ndarray:
    """``mask`` (bool) eroded ``iterations`` (>= 1) times by ``structure`` (odd-sized,
    symmetric, holding its centre; default the nearest-neighbour cross; voxels beyond the array
    are false): a new array. The complement's dilation with the outside counted as true."""
    return ~_grow(~np.asarray(mask, dtype=bool), structure, iterations, outside=True)


def _grow(out: np.ndarray, structure: np.ndarray | None, iterations: int, outside: bool) -> np.ndarray:
    """Dilate ``out`` in place; ``outside``: voxels beyond the array count as true."""
    offsets = _offsets(structure, out.ndim, int(iterations))
    for _ in range(int(iterations)):
        src = out.copy()
        for offset in offsets:
            dst, from_ = _slices(offset)
            out[dst] |= src[from_]
            for axis, o in enumerate(offset):
                if o and outside:                # the voxels whose neighbour lies beyond the array
                    edge = [slice(None)] * out.ndim
                    edge[axis] = slice(0, o) if o > 0 else slice(max(out.shape[axis] + o, 0), None)
                    out[tuple(edge)] = True
    return out


def opening(mask: np.ndarray, structure: np.ndarray | None = None) -> np.ndarray:
    """Erosion then dilation by ``structure`` (``ndimage.binary_opening``)."""
    return dilate(erode(mask, structure), structure)


__all__ = ["dilate", "erode", "opening"]
