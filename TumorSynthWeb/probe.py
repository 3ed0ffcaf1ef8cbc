"""Test hooks (``tumorsynth web --test-hooks`` only): where on screen a test must click.

``probe(case, views, target)`` moves every slice view through the target point (the deepest
voxel of an organ, or an air voxel outside the body) without panning or zooming, and returns
the point's position in each slice view in view pixels from the top-left corner, with the view
size the server renders at (the browser's size of the view after its first resize). A test
adds the view element's page position and clicks there.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from TumorSynthSlicer.volume_logic import array_ijk, world_affine

from .scene import Case, deepest_voxel, spacing_of

OUTSIDE = "outside"


def target_voxel(case: Case, target: str) -> tuple[int, int, int]:
    """The voxel a test clicks: the deepest voxel of organ ``target``; for "outside", an air
    voxel 10-20 mm outside the body on the axial slice through the liver, the one nearest the
    liver (so it is on screen wherever the liver is)."""
    affine = world_affine(case.ct)
    liver = deepest_voxel(case.organ_mask("liver"), spacing_of(affine))
    if target != OUTSIDE:
        return deepest_voxel(case.organ_mask(target), spacing_of(affine))
    from scipy.ndimage import distance_transform_edt

    i, j, k = liver
    slab = np.asarray(array_ijk(case.ct))[:, :, k]
    body = slab > -500
    gap = distance_transform_edt(~body, sampling=tuple(spacing_of(affine)[:2]))
    candidates = np.argwhere((gap >= 10.0) & (gap <= 20.0))
    if candidates.size == 0:
        raise ValueError("no air within 20 mm of the body on the liver's slice")
    nearest = candidates[np.argmin(((candidates - [i, j]) ** 2).sum(axis=1))]
    return int(nearest[0]), int(nearest[1]), int(k)


def probe(case: Case, views: Sequence[Any], target: str) -> dict[str, Any]:
    """{"ras": [r, a, s], "voxel": [i, j, k], "organ_at_voxel": str | None, "views": {orientation:
    {"x", "y", "width", "height"}}} for ``target`` (see ``target_voxel``)."""
    ijk = target_voxel(case, target)
    affine = world_affine(case.ct)
    ras = affine[:3, :3] @ np.asarray(ijk, dtype=float) + affine[:3, 3]
    out: dict[str, Any] = {"ras": ras.tolist(), "voxel": list(ijk),
                           "organ_at_voxel": case.organ_at(ijk), "views": {}}
    for view in views:
        node = view.get_view_node()
        node.JumpSliceByOffsetting(*ras)
        width, height = (int(v) for v in node.GetDimensions()[:2])
        x, y = _xy(node, ras)
        out["views"][view.get_orientation().lower()] = {
            "x": x, "y": height - y, "width": width, "height": height}
    return out


def _xy(slice_node: Any, ras: Sequence[float]) -> tuple[float, float]:
    """View pixel (x right, y up from the bottom-left) of world ``ras`` in a slice view."""
    matrix = slice_node.GetXYToRAS()
    xy_to_ras = np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])
    xy = np.linalg.inv(xy_to_ras) @ np.append(np.asarray(ras, dtype=float), 1.0)
    return float(xy[0]), float(xy[1])


__all__ = ["OUTSIDE", "probe", "target_voxel"]
