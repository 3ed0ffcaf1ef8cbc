"""Slices of a volume shown the way radiologists look at them, whatever the array order.

Axial with anterior up and the patient's right on the image left, coronal with superior up and
the patient's right on the left, sagittal with superior up and anterior on the left. Each array
axis is mapped to the RAS axis it is most aligned with (exact for axis-aligned scans, nearest
for oblique ones). Used by the synthesis preview and the evaluation's worst-case montage, so
every picture the project draws has one orientation.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

#: (name, fixed RAS axis, vertical RAS axis (up = +), horizontal RAS axis, sign of the RAS
#: coordinate change when moving right on the image).
PLANES = (
    ("axial", 2, 1, 0, -1.0),
    ("coronal", 1, 2, 0, -1.0),
    ("sagittal", 0, 2, 1, -1.0),
)
def ras_axis_map(affine: np.ndarray) -> tuple[list[int], list[float]]:
    """For each array axis, the RAS axis (0 R, 1 A, 2 S) it is most aligned with and the sign
    of that RAS coordinate's change per index step. Each RAS axis is used once."""
    m = np.asarray(affine, dtype=float)[:3, :3]
    cos = np.abs(m / np.linalg.norm(m, axis=0))
    ras_of = [-1, -1, -1]
    for a in np.argsort(-cos.max(axis=0)):  # most clearly aligned axes choose first
        ras_of[int(a)] = int(next(r for r in np.argsort(-cos[:, a]) if r not in ras_of))
    signs = [float(np.sign(m[ras_of[a], a]) or 1.0) for a in range(3)]
    return ras_of, signs


def plane_slice(array: np.ndarray, affine: np.ndarray, center_vox: Sequence[float],
                plane: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The whole slice of ``plane`` through ``center_vox`` in display orientation (rows top to
    bottom, columns left to right), the centre's (row, column) in it, and the (row, column)
    spacing in mm."""
    _, fixed, vert, horiz, right_sign = next(p for p in PLANES if p[0] == plane)
    ras_of, signs = ras_axis_map(affine)
    axis_of = {r: a for a, r in enumerate(ras_of)}
    a_fix, a_v, a_h = axis_of[fixed], axis_of[vert], axis_of[horiz]
    spacing = np.linalg.norm(np.asarray(affine, dtype=float)[:3, :3], axis=0)
    c = np.asarray(center_vox, dtype=float)
    index: list[Any] = [slice(None)] * 3
    index[a_fix] = int(np.clip(np.rint(c[a_fix]), 0, array.shape[a_fix] - 1))
    image = np.asarray(array[tuple(index)])
    if a_v > a_h:  # the remaining axes come in array order: make rows the vertical axis
        image = image.T
    row, col = c[a_v], c[a_h]
    if signs[a_v] > 0:  # rows grow downwards: flip when the index grows upwards
        image, row = image[::-1, :], array.shape[a_v] - 1 - row
    if signs[a_h] != right_sign:
        image, col = image[:, ::-1], array.shape[a_h] - 1 - col
    return image, np.array([row, col]), np.array([spacing[a_v], spacing[a_h]])


def axial_axis(affine: np.ndarray) -> int:
    """The array axis closest to superior-inferior (the axis axial slices are taken along)."""
    ras_of, _ = ras_axis_map(affine)
    return ras_of.index(2)


__all__ = ["PLANES", "axial_axis", "plane_slice", "ras_axis_map"]
