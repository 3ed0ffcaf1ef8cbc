"""Gastrointestinal tract of the phantom: stomach, duodenum, colon and small bowel (mm, RAS).

Each is a tube along a smooth centre line with an enhancing wall and contents: fluid below and
gas above a horizontal air-fluid level (the patient is supine, so gas rises anteriorly, +y),
mottled stool in the colon. The small bowel is a random meandering path that visits every cell of
a lattice filling the lower abdomen, so its loops pack the space and differ for every seed; where
loops touch, a wall is drawn along the seam.
"""
from __future__ import annotations

import numpy as np

from .body import Landmarks
from .shapes import TubeField, ValueNoise, smooth_curve, tube_field
from .tissue import Canvas, L, T


def _radii_along(arc: np.ndarray, control_radii, control_pts) -> np.ndarray:
    chord = np.concatenate([[0], np.cumsum(np.linalg.norm(np.diff(control_pts, axis=0), axis=1))])
    return np.interp(arc, chord * arc[-1] / chord[-1], control_radii)


def _paint_hollow(cv: Canvas, field: TubeField | None, label: int, wall_mm: float,
                  gas: np.ndarray, content=T.GIFLUID) -> None:
    """Wall + contents of a hollow organ; ``gas`` marks (box-shaped) voxels of gas. Where two
    distant parts of the tube touch, a wall is drawn along the seam so loops stay distinct."""
    if field is None:
        return
    reg, level = field.region, field.level
    wall = (level > -wall_mm) | _seams(field.arc, seam_mm=4.0 * wall_mm + 30.0)
    tissue = np.where(wall, T.GIWALL, np.where(gas, T.AIR, content)).astype(np.uint8)
    cv.paint(reg, level <= 0, tissue, label)


def _seams(arc: np.ndarray, seam_mm: float) -> np.ndarray:
    """Voxels next to a neighbour whose nearest centre-line point is ``seam_mm`` further along."""
    seam = np.zeros(arc.shape, bool)
    for axis in range(3):
        lo = [slice(None)] * 3
        hi = [slice(None)] * 3
        lo[axis], hi[axis] = slice(0, -1), slice(1, None)
        jump = np.abs(arc[tuple(hi)] - arc[tuple(lo)]) > seam_mm
        seam[tuple(lo)] |= jump
        seam[tuple(hi)] |= jump
    return seam


def paint_esophagus(cv: Canvas, lm: Landmarks, rng: np.random.Generator) -> None:
    """Distal oesophagus: in front of the aorta through the hiatus to the cardia (collapsed
    muscular tube with a little air)."""
    ys, z1 = lm.ys, lm.z_l1
    control = np.array([(lm.xa + 12, lm.ya + 12, z1 + 150), (lm.xa + 8, lm.ya + 16, z1 + 100),
                        (lm.xa - 6, lm.ya + 26, z1 + 80), (-34, ys + 52, z1 + 70)])
    control = control + rng.uniform(-3, 3, control.shape)
    pts, _ = smooth_curve(control, 5.0)
    field = tube_field(cv.grid, pts, 8.0)
    if field is not None:
        gas = field.level < -6.5
        tissue = np.where(gas, T.AIR, T.GIWALL).astype(np.uint8)
        cv.paint(field.region, field.level <= 0, tissue, L["esophagus"])


def paint_stomach(cv: Canvas, lm: Landmarks, rng: np.random.Generator) -> None:
    """J-shaped stomach from the fundus under the left dome to the pylorus, with rugal folds."""
    ys, z1 = lm.ys, lm.z_l1

    def j(a):  # random jitter (mm) of a control point
        return rng.uniform(-a, a, 3)

    control = np.array([(-52, ys + 45, z1 + 78), (-72, ys + 72, z1 + 45), (-58, ys + 98, z1 + 16),
                        (-22, ys + 108, z1 + 2), (14, ys + 92, z1 + 2)]) \
        + np.stack([j(5), j(6), j(6), j(5), j(3)])
    radii = np.array([36, 34, 29, 19, 10]) * rng.uniform(0.85, 1.12)
    pts, arc = smooth_curve(control, 12.0)
    field = tube_field(cv.grid, pts, _radii_along(arc, radii, control))
    if field is None:
        return
    reg = field.region
    folds = ValueNoise(rng, pts.min(axis=0) - 50, pts.max(axis=0) + 50, 9.0)
    near = field.level <= 0
    wall = np.full(reg.shape, 3.0, np.float32)
    wall[near] = 3.0 + 3.0 * np.clip(folds(reg, near), 0, None)
    gas_level = ys + rng.uniform(78, 100)
    gas = np.broadcast_to(reg.y > gas_level, reg.shape)
    reg_tissue = np.where(field.level > -wall, T.GIWALL, np.where(gas, T.AIR, T.GIFLUID))
    cv.paint(reg, near, reg_tissue.astype(np.uint8), L["stomach"])


def paint_duodenum(cv: Canvas, lm: Landmarks, rng: np.random.Generator) -> np.ndarray:
    """C-loop round the pancreatic head (bulb, descending, horizontal between aorta and SMA,
    ascending); returns the duodenojejunal flexure (mm)."""
    ys, z1, xa, ya = lm.ys, lm.z_l1, lm.xa, lm.ya
    control = np.array([(14, ys + 92, z1 + 2), (40, ys + 78, z1 + 2), (56, ys + 58, z1 - 10),
                        (58, ys + 52, z1 - 42), (42, ys + 44, z1 - 62), (xa + 10, ya + 18, z1 - 66),
                        (xa - 22, ya + 26, z1 - 52), (xa - 32, ya + 40, z1 - 32)])
    control = control + rng.uniform(-3, 3, control.shape)
    pts, arc = smooth_curve(control, 8.0)
    field = tube_field(cv.grid, pts, 11.0 * rng.uniform(0.9, 1.1))
    if field is not None:
        gas = (field.centre_y < field.region.y - 4.0) & (field.arc < 60.0)
        _paint_hollow(cv, field, L["duodenum"], 2.5, gas)
    return control[-1]


def paint_colon(cv: Canvas, lm: Landmarks, rng: np.random.Generator) -> np.ndarray:
    """Cecum, ascending colon, flexures, sagging transverse and descending colon with haustra,
    stool in the right colon and gas anteriorly; returns the cecum (mm)."""
    ys, z1, z4 = lm.ys, lm.z_l1, lm.z_l4
    control = np.array([
        (78, ys + 62, z4 - 35), (96, ys + 52, z4 + 5), (100, ys + 50, z1 - 55),
        (88, ys + 78, z1 - 28), (45, ys + 118, z1 - 40), (0, ys + 124, z1 - 58),
        (-48, ys + 114, z1 - 35), (-86, ys + 70, z1 + 6), (-102, ys + 38, z1 - 20),
        (-100, ys + 36, z1 - 80), (-94, ys + 42, z4 - 40),
    ]) + rng.uniform(-5, 5, (11, 3))
    radii = np.array([30, 26, 25, 24, 24, 22, 22, 21, 19, 18, 18]) * rng.uniform(0.85, 1.1)
    pts, arc = smooth_curve(control, 18.0)
    r = _radii_along(arc, radii, control)
    field = tube_field(cv.grid, pts, r, margin_mm=4.0)
    if field is not None:
        r_here = np.interp(field.arc, arc, r).astype(np.float32)
        field.level -= 0.12 * r_here * np.cos(np.float32(2 * np.pi / 42.0) * field.arc)  # haustra
        reg = field.region
        inside = field.level <= 0
        stool_part = field.arc < arc[-1] * rng.uniform(0.3, 0.45)
        bubbles = np.zeros(reg.shape, bool)
        noise = ValueNoise(rng, pts.min(axis=0) - 40, pts.max(axis=0) + 40, 5.0)
        bubbles[inside] = noise(reg, inside) > 0.35
        fluid_top = field.centre_y + np.float32(4.0 - 8.0 * rng.random())  # air-fluid level
        gas = np.where(stool_part, bubbles, reg.y > fluid_top)
        content = np.where(stool_part, T.STOOL, T.GIFLUID).astype(np.uint8)
        _paint_hollow(cv, field, L["colon"], 2.0, gas, content)
    return control[0]


def paint_small_bowel(cv: Canvas, lm: Landmarks, start: np.ndarray, end: np.ndarray,
                      rng: np.random.Generator) -> None:
    """Jejunum and ileum: a packed meandering loop from the duodenojejunal flexure to the
    cecum, fluid-filled with a few gas pockets."""
    centre = np.array([-10.0 * lm.sx, lm.ys + 70.0 * lm.sy, lm.z_l1 - 60.0])
    half = np.array([92.0 * lm.sx, 50.0 * lm.sy, 84.0])
    path = _packed_walk(start, end, centre, half, rng)
    pts, arc = smooth_curve(path, 12.0)
    radius = 13.0 * rng.uniform(0.9, 1.1) * (1 + 0.08 * np.sin(arc / 37.0))
    field = tube_field(cv.grid, pts, radius)
    if field is None:
        return
    pockets = rng.uniform(0, arc[-1], 5)
    near_pocket = np.zeros(field.level.shape, bool)
    for p in pockets:
        near_pocket |= np.abs(field.arc - np.float32(p)) < 30.0
    gas = near_pocket & (field.region.y > field.centre_y + 5.0)
    _paint_hollow(cv, field, L["small_bowel"], 2.2, gas)


def _packed_walk(start, end, centre, half, rng: np.random.Generator, cell_mm: float = 27.0,
                 step_mm: float = 6.0) -> np.ndarray:
    """A meandering path that visits every cell of a lattice filling the ellipsoid (centre,
    half axes) once, nearest-first with some randomness, so the loops pack the space."""
    axes = [np.arange(-h, h + 1e-6, cell_mm) for h in half]
    cells = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    cells = cells[np.linalg.norm(cells / half, axis=1) < 0.92] + centre
    cells += rng.uniform(-0.25, 0.25, cells.shape) * cell_mm
    targets, left, here = [], list(range(len(cells))), np.asarray(start, float)
    while left:
        dist = np.linalg.norm(cells[left] - here, axis=1)
        pick = left[int(np.argsort(dist)[min(int(rng.integers(0, 3)), len(left) - 1)])]
        targets.append(cells[pick])
        here = cells[pick]
        left.remove(pick)
    targets.append(np.asarray(end, float))
    pts, heading = [np.asarray(start, float)], np.array([0.0, 0.3, -1.0])
    for target in targets:
        for _ in range(40):
            to_target = target - pts[-1]
            dist = np.linalg.norm(to_target)
            if dist < 0.6 * cell_mm:
                break
            heading = 0.55 * heading + 0.45 * to_target / dist + 0.35 * rng.normal(size=3)
            heading /= np.linalg.norm(heading)
            pts.append(pts[-1] + step_mm * heading)
    pts.append(np.asarray(end, float))
    return np.array(pts)
