"""Gastrointestinal tract of the phantom: stomach, duodenum, colon and small bowel (mm, RAS).

Each is a tube along a smooth centre line with an enhancing wall and contents: fluid below and
gas above a horizontal air-fluid level (the patient is supine, so gas rises anteriorly, +y),
mottled stool in the colon. The small bowel is a self-avoiding random walk packed into the lower
abdomen, so its loops look different for every seed.
"""
from __future__ import annotations

import numpy as np

from .phantom_organs import Landmarks
from .phantom_shapes import TubeField, ValueNoise, smooth_curve, tube_field
from .phantom_tissue import Canvas, L, T


def _radii_along(arc: np.ndarray, control_radii, control_pts) -> np.ndarray:
    chord = np.concatenate([[0], np.cumsum(np.linalg.norm(np.diff(control_pts, axis=0), axis=1))])
    return np.interp(arc, chord * arc[-1] / chord[-1], control_radii)


def _paint_hollow(cv: Canvas, field: TubeField | None, label: int, wall_mm: float,
                  gas: np.ndarray, content=T.GIFLUID) -> None:
    """Wall + contents of a hollow organ; ``gas`` marks (box-shaped) voxels of gas."""
    if field is None:
        return
    reg, level = field.region, field.level
    tissue = np.where(level > -wall_mm, T.GIWALL, np.where(gas, T.AIR, content)).astype(np.uint8)
    cv.paint(reg, level <= 0, tissue, label)


def paint_stomach(cv: Canvas, lm: Landmarks, rng: np.random.Generator) -> None:
    """J-shaped stomach from the fundus under the left dome to the pylorus, with rugal folds."""
    ys, z1 = lm.ys, lm.z_l1
    j = lambda a: rng.uniform(-a, a, 3)  # noqa: E731
    control = np.array([(-52, ys + 45, z1 + 78), (-72, ys + 72, z1 + 45), (-58, ys + 98, z1 + 16),
                        (-22, ys + 108, z1 + 2), (14, ys + 92, z1 + 2)]) \
        + np.stack([j(5), j(6), j(6), j(5), j(3)])
    radii = np.array([36, 34, 29, 19, 10]) * rng.uniform(0.85, 1.12)
    pts, arc = smooth_curve(control, 6.0)
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
    pts, arc = smooth_curve(control, 6.0)
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
    pts, arc = smooth_curve(control, 8.0)
    r = _radii_along(arc, radii, control) * (1 + 0.12 * np.cos(2 * np.pi * arc / 42.0))
    field = tube_field(cv.grid, pts, r)
    if field is not None:
        reg = field.region
        inside = field.level <= 0
        stool_part = field.arc < arc[-1] * rng.uniform(0.3, 0.45)
        bubbles = np.zeros(reg.shape, bool)
        noise = ValueNoise(rng, pts.min(axis=0) - 40, pts.max(axis=0) + 40, 5.0)
        bubbles[inside] = noise(reg, inside) > 0.35
        gas = (reg.y > field.centre_y + 4.0 - 8.0 * rng.random()) & ~stool_part | (stool_part & bubbles)
        content = np.where(stool_part, T.STOOL, T.GIFLUID).astype(np.uint8)
        _paint_hollow(cv, field, L["colon"], 2.0, gas, content)
    return control[0]


def paint_small_bowel(cv: Canvas, lm: Landmarks, start: np.ndarray, end: np.ndarray,
                      rng: np.random.Generator) -> None:
    """Jejunum and ileum: a packed self-avoiding walk from the duodenojejunal flexure to the
    cecum, fluid-filled with a few gas pockets."""
    centre = np.array([-10.0, lm.ys + 72.0, lm.z_l1 - 62.0])
    half = np.array([95.0, 58.0, 90.0])
    path = _packed_walk(start, end, centre, half, rng)
    pts, arc = smooth_curve(path, 7.0)
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


def _packed_walk(start, end, centre, half, rng: np.random.Generator, steps: int = 520,
                 step_mm: float = 6.0) -> np.ndarray:
    """Random walk that keeps away from its own past and inside an ellipsoid, then heads home."""
    pts = [np.asarray(start, float)]
    heading = np.array([0.0, 0.3, -1.0])
    heading /= np.linalg.norm(heading)
    for k in range(steps):
        pull = (np.asarray(end) - pts[-1]) * (k / steps) ** 4 * 0.05
        cand = heading + 0.8 * rng.normal(size=(10, 3)) + pull
        cand /= np.linalg.norm(cand, axis=1, keepdims=True)
        nxt = pts[-1] + step_mm * cand
        past = np.array(pts[:-6]) if len(pts) > 6 else np.empty((0, 3))
        clear = np.full(len(cand), 40.0)
        if len(past):
            dist = np.linalg.norm(nxt[:, None, :] - past[None, :, :], axis=2).min(axis=1)
            clear = np.minimum(dist, 40.0)
        outside = np.clip(np.linalg.norm((nxt - centre) / half, axis=1) - 1.0, 0, None)
        score = clear - 120.0 * outside + 3.0 * rng.random(len(cand))
        best = int(np.argmax(score))
        heading = cand[best]
        pts.append(nxt[best])
    pts.append(np.asarray(end, float))
    return np.array(pts)
