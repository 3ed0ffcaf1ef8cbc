"""Solid organs and vessels of the phantom (mm, RAS: +x patient right, +y anterior, +z up).

Organs are unions of deformed ellipsoids or tubes placed relative to the spine and the body wall
(``Landmarks``), painted only into still-free fat, so each one nestles against what was painted
before it: kidneys and great vessels first, then spleen, the portal system, gallbladder, pancreas
and duodenum, the liver (which wraps round them), the rest of the gut (``phantom_gut``) and
finally the veins inside the liver.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .body import Body, Landmarks, Spine
from .gut import (
    paint_colon,
    paint_duodenum,
    paint_esophagus,
    paint_small_bowel,
    paint_stomach,
)
from .shapes import (
    Ellipsoid,
    ValueNoise,
    Wobble,
    capsule_field,
    frame,
    rot_z,
    smooth_curve,
    tube_field,
)
from .tissue import Canvas, L, T


def paint_organs(cv: Canvas, body: Body, spine: Spine, rng: np.random.Generator) -> None:
    """Every abdominal organ and vessel, in painting order (see the module docstring)."""
    lm = Landmarks.random(rng, body, spine)
    hila = paint_kidneys(cv, lm, rng)
    paint_great_vessels(cv, lm, spine)
    paint_esophagus(cv, lm, rng)
    paint_adrenals(cv, lm, hila, rng)
    spleen_hilum = paint_spleen(cv, lm, rng)
    porta = paint_branch_vessels(cv, lm, hila, spleen_hilum, rng)
    paint_gallbladder(cv, lm, rng)
    paint_pancreas(cv, lm, spleen_hilum, rng)
    jejunum_start = paint_duodenum(cv, lm, rng)
    liver = paint_liver(cv, lm, rng)
    paint_stomach(cv, lm, rng)
    cecum = paint_colon(cv, lm, rng)
    paint_small_bowel(cv, lm, jejunum_start, cecum, rng)
    paint_mesenteric_vessels(cv, lm, rng)
    paint_liver_veins(cv, lm, liver, porta, rng)


# -- kidneys ---------------------------------------------------------------------------------
def paint_kidneys(cv: Canvas, lm: Landmarks, rng: np.random.Generator) -> dict[int, np.ndarray]:
    """Both kidneys (cortex, medullary pyramids, sinus fat, pelvis); returns hilum points (mm)
    by side (+1 right, -1 left)."""
    hila = {}
    for side, key in ((1, "kidney_right"), (-1, "kidney_left")):
        dz = -rng.uniform(2, 14) if side > 0 else rng.uniform(0, 12)
        centre = (side * rng.uniform(70, 78), lm.ys + rng.uniform(6, 14), lm.z_l2 + dz)
        axes = frame((-side * rng.uniform(0.15, 0.3), -rng.uniform(0.1, 0.25), 1.0),
                     (-side * 0.85, 0.55, 0.0))
        radii = (rng.uniform(20, 23), rng.uniform(27, 31), rng.uniform(54, 60))
        kid = Ellipsoid(centre, radii, axes, Wobble.random(rng, 0.03))
        hila[side] = np.asarray(centre) + axes[:, 1] * radii[1] * 1.1
        _paint_kidney(cv, kid, L[key], rng)
    return hila


def _paint_kidney(cv: Canvas, kid: Ellipsoid, label: int, rng: np.random.Generator) -> None:
    reg = kid.region(cv.grid)
    if reg is None:
        return
    u, v, w = kid.normalised(reg)
    outer = kid.level(reg) <= 0
    notch = (u / 0.38) ** 2 + ((v - 1.0) / 0.55) ** 2 + (w / 0.4) ** 2 <= 1
    sinus = (u / 0.36) ** 2 + ((v - 0.4) / 0.45) ** 2 + (w / 0.55) ** 2 <= 1
    pelvis = (u / 0.28) ** 2 + ((v - 0.62) / 0.45) ** 2 + ((w + 0.05) / 0.26) ** 2 <= 1
    medulla = np.zeros(reg.shape, bool)
    phis = np.radians(np.array([-160, -125, -90, -55, -20, 15, 150, 185]) + rng.uniform(-8, 8, 8))
    for k, phi in enumerate(phis):
        pu = 0.22 if k % 2 else -0.22
        pv, pw = 0.72 * np.sin(phi) - 0.05, 0.74 * np.cos(phi)
        medulla |= ((u - pu) / 0.3) ** 2 + ((v - pv) / 0.24) ** 2 + ((w - pw) / 0.24) ** 2 <= 1
    tissue = np.full(reg.shape, T.KCORTEX, np.uint8)
    tissue[medulla] = T.KMEDULLA
    tissue[sinus] = T.SINUSFAT
    tissue[pelvis] = T.URINE
    cv.paint(reg, outer & ~notch, tissue, label)
    cv.paint(reg, pelvis & notch, T.URINE)


def paint_adrenals(cv: Canvas, lm: Landmarks, hila: dict[int, np.ndarray],
                   rng: np.random.Generator) -> None:
    """Adrenal glands: thin inverted-Y limbs above and medial to each kidney's upper pole."""
    for side, key in ((1, "adrenal_gland_right"), (-1, "adrenal_gland_left")):
        top = np.array([side * rng.uniform(30, 38), lm.ys + rng.uniform(22, 30),
                        hila[side][2] + rng.uniform(55, 65)])
        for limb in ((side * 10, -14, -22), (side * 2, -22, -18), (0, 8, -12)):
            end = top + np.asarray(limb, float)
            pts = np.linspace(top, end, 4)
            _tube(cv, pts, 2.4, T.ADRENAL, L[key])


# -- great vessels ---------------------------------------------------------------------------
def paint_great_vessels(cv: Canvas, lm: Landmarks, spine: Spine) -> None:
    """Aorta (bifurcating into the common iliac arteries at L4), IVC (intrahepatic at the top,
    iliac veins below) and the diaphragmatic crura around the aorta."""
    z_bif = lm.z_l4 + 6.0
    zs = np.arange(200.0, z_bif - 1.0, -10.0)
    aorta = np.stack([np.full_like(zs, lm.xa), spine.y(zs) + 16.0 + lm.ra
                      - 3.0 * np.clip((zs - lm.z_l1) / 40.0, 0, 1), zs], axis=1)
    _tube(cv, aorta, lm.ra, T.AORTA, L["aorta"], into=None)
    bif = aorta[-1]
    for side, key in ((1, "iliac_artery_right"), (-1, "iliac_artery_left")):
        path = [bif, bif + (side * 14, 4, -25), bif + (side * 34, 10, -70),
                bif + (side * 52, 14, -130)]
        pts, _ = smooth_curve(path, 8.0)
        _tube(cv, pts, 0.62 * lm.ra, T.AORTA, L[key], into=(T.FAT, T.MUSCLE))
    zs_i = np.arange(200.0, z_bif - 12.0, -10.0)
    up = np.clip((zs_i - (lm.z_l1 + 5.0)) / 35.0, 0, 1)
    ivc = np.stack([lm.xi + 6.0 * up, spine.y(zs_i) + 19.0 + lm.ri + 22.0 * up, zs_i], axis=1)
    _tube(cv, ivc, lm.ri, T.IVC, L["inferior_vena_cava"], into=None)
    conf = ivc[-1]
    for side, key in ((1, "iliac_vena_right"), (-1, "iliac_vena_left")):
        path = [conf, conf + (side * 12 - 8, -4, -20), conf + (side * 30 - 10, 0, -60),
                conf + (side * 48 - 10, 6, -125)]
        pts, _ = smooth_curve(path, 8.0)
        _tube(cv, pts, 0.75 * lm.ri, T.IVC, L[key], into=(T.FAT, T.MUSCLE))
    for side in (1, -1):
        crus = [(lm.xa + side * (lm.ra + 5), lm.ya + 8, lm.z_l1 + 60.0),
                (lm.xa + side * (lm.ra + 4), lm.ya - 2, lm.z_l1),
                (lm.xa + side * (lm.ra - 2), lm.ys + 8, lm.z_l2 - 10)]
        pts, _ = smooth_curve(crus, 4.0)
        _tube(cv, pts, 3.2, T.MUSCLE, None, into=(T.FAT,))


def _tube(cv: Canvas, pts, radius, tissue, label, into="free", over_labels=False):
    field = tube_field(cv.grid, pts, radius, with_arc=False)
    if field is not None:
        cv.paint(field.region, field.level <= 0, tissue, label, into=into, over_labels=over_labels)
    return field


# -- liver and gallbladder -------------------------------------------------------------------
@dataclass(frozen=True)
class LiverShape:
    lobes: tuple[Ellipsoid, ...]

    def level_at(self, pts) -> np.ndarray:
        return np.min([e.level_at(pts) for e in self.lobes], axis=0)


def paint_liver(cv: Canvas, lm: Landmarks, rng: np.random.Generator) -> LiverShape:
    """Liver: right lobe, inferior right lobe, left lobe and caudate as deformed ellipsoids,
    clipped by the wall, diaphragm and kidney; the falciform fissure as a fat cleft."""
    ys, z1, sx, sy = lm.ys, lm.z_l1, lm.sx, lm.sy
    def j(a):  # random jitter of one coordinate
        return rng.uniform(-a, a)

    s = rng.uniform(1.04, 1.12) / (sx * sy) ** (1 / 3)  # liver volume varies less than build

    def lobe(centre, radii, axes, wobble):  # scaled to this patient's cavity
        c = (centre[0] * sx, ys + (centre[1] - ys) * sy, centre[2])
        r = (radii[0] * sx * s, radii[1] * sy * s, radii[2] * s)
        return Ellipsoid(c, r, axes, Wobble.random(rng, wobble))

    lobes = (
        lobe((64 + j(4), ys + 52 + j(4), z1 + 44 + j(5)), (68, 74, 74),
             frame((-0.35 + j(0.1), 0.0, 1.0), (0.0, 1.0, 0.0)), 0.06),
        lobe((84 + j(4), ys + 42 + j(4), z1 - 8 + j(5)), (44, 50, 48), rot_z(j(10)), 0.07),
        lobe((-18 + j(6), ys + 98 + j(4), z1 + 52 + j(5)), (66, 30, 36), rot_z(-12 + j(8)), 0.08),
        lobe((24, ys + 58, z1 + 38), (29, 29, 36), None, 0.05),
        lobe((72 + j(4), ys + 4 + j(4), z1 + 58 + j(5)), (46, 40, 44), None, 0.06),
    )
    for lobe in lobes:
        reg = lobe.region(cv.grid)
        if reg is not None:
            cv.paint(reg, lobe.level(reg) <= 0, T.LIVER, L["liver"])
    reg = cv.grid.region((-10, ys + 80, z1 - 30), (25, ys + 150, z1 + 60))
    if reg is not None:
        x_fissure = 6.0 + 0.25 * (reg.y - ys - 90.0)
        cleft = (np.abs(reg.x - x_fissure) < 2.2) & (reg.z < z1 + 40.0)
        cv.paint(reg, cleft, T.FAT, 0, into=(T.LIVER,), over_labels=True)
    return LiverShape(lobes)


def paint_gallbladder(cv: Canvas, lm: Landmarks, rng: np.random.Generator) -> None:
    """Gallbladder in the liver's fossa: bile with a thin enhancing wall (label 4)."""
    centre = (rng.uniform(36, 48), lm.ys + rng.uniform(88, 98), lm.z_l1 - rng.uniform(8, 18))
    axes = frame((0.25, 0.55, -0.8), (1.0, 0.0, 0.0))
    radii = (rng.uniform(13, 17), rng.uniform(13, 17), rng.uniform(30, 40))
    gb = Ellipsoid(centre, radii, axes, Wobble.random(rng, 0.04))
    reg = gb.region(cv.grid)
    if reg is None:
        return
    level = gb.level(reg)
    tissue = np.where(level > -2.5 / radii[0], T.GBWALL, T.BILE).astype(np.uint8)
    cv.paint(reg, level <= 0, tissue, L["gallbladder"])


# -- spleen ----------------------------------------------------------------------------------
def paint_spleen(cv: Canvas, lm: Landmarks, rng: np.random.Generator) -> np.ndarray:
    """Spleen: a crescent along the left posterolateral wall (concave towards the stomach and
    kidney); returns its hilum (mm)."""
    centre = np.array([-rng.uniform(88, 98), lm.ys + rng.uniform(8, 18),
                       lm.z_l1 + rng.uniform(20, 32)])
    axes = frame((-0.3, 0.55, -0.78), (0.8, 0.5, 0.0))
    radii = (rng.uniform(36, 42), rng.uniform(24, 28), rng.uniform(56, 64))
    outer = Ellipsoid(tuple(centre), radii, axes, Wobble.random(rng, 0.05))
    inner = Ellipsoid(tuple(centre + axes[:, 1] * 44.0), (40, 28, 60), axes)
    reg = outer.region(cv.grid)
    if reg is not None:
        cv.paint(reg, (outer.level(reg) <= 0) & (inner.level(reg) > 0), T.SPLEEN, L["spleen"])
    return centre + axes[:, 1] * 20.0


# -- portal system, visceral arteries, renal vessels -------------------------------------------
def paint_branch_vessels(cv: Canvas, lm: Landmarks, hila: dict[int, np.ndarray],
                         spleen_hilum: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Renal arteries and veins, celiac trunk and SMA, SMV, splenic and portal veins (64);
    returns the porta hepatis (mm), where the portal vein enters the liver."""
    z1 = lm.z_l1
    sma_x = lm.xa + 2.0
    vein_into = (T.FAT, T.SINUSFAT)
    for side, hilum in hila.items():
        vein_end = (lm.xi, lm.yi, hilum[2]) if side > 0 else (lm.xi - 4, lm.yi, hilum[2] + 4)
        mid = ((hilum[0] + vein_end[0]) / 2, lm.ya + (lm.ra + 9 if side < 0 else 4), hilum[2] + 2)
        pts, _ = smooth_curve([hilum, mid, vein_end], 8.0)
        _tube(cv, pts, 4.5, T.RENALV, None, into=vein_into, over_labels=True)
        art = [(lm.xa, lm.ya, hilum[2] + 6), (hilum[0] * 0.55, lm.ya - 10, hilum[2] + 3),
               (hilum[0] - side * 3, hilum[1] - 4, hilum[2])]
        pts, _ = smooth_curve(art, 8.0)
        _tube(cv, pts, 2.8, T.ARTERY, None, into=vein_into, over_labels=True)
    sma = [(lm.xa, lm.ya + lm.ra - 2, z1 + 2), (sma_x, lm.ya + lm.ra + 14, z1 - 10),
           (sma_x + 3, lm.ya + lm.ra + 19, z1 - 45), (sma_x + 12, lm.ya + 34, z1 - 110),
           (sma_x + 24, lm.ya + 38, z1 - 160)]
    pts, _ = smooth_curve(sma, 8.0)
    _tube(cv, pts, 3.6, T.ARTERY, None, into=(T.FAT,))
    celiac_root = np.array([lm.xa, lm.ya + lm.ra + 10, z1 + 16])
    porta = np.array([rng.uniform(34, 42), lm.ys + rng.uniform(58, 66), z1 + rng.uniform(26, 34)])
    for target in (porta + (-6, 4, -8), spleen_hilum + (8, 6, 6)):
        wiggle = rng.uniform(-6, 6, 3)
        path = [(lm.xa, lm.ya + lm.ra - 2, z1 + 16), celiac_root,
                (celiac_root + target) / 2 + wiggle + (0, 8, 4), target]
        pts, _ = smooth_curve(path, 8.0)
        _tube(cv, pts, 2.8, T.ARTERY, None, into=(T.FAT,))
    conf = np.array([sma_x + 13.0, lm.ya + lm.ra + 16, z1 - 6.0])
    smv = [(sma_x + 26, lm.ya + 40, z1 - 150), (sma_x + 18, lm.ya + 34, z1 - 90),
           (sma_x + 14, lm.ya + lm.ra + 18, z1 - 40), conf]
    splenic = [conf, conf + (-25, -4, 4), conf + (-60, -14, 10), spleen_hilum + (10, 0, -4),
               spleen_hilum]
    portal = [conf, (conf + porta) / 2 + (4, -4, 0), porta]
    for path, radius in ((smv, 5.5), (splenic, 4.5), (portal, 7.0)):
        pts, _ = smooth_curve(path, 8.0)
        _tube(cv, pts, radius, T.PORTAL, L["portal_vein_and_splenic_vein"], into=(T.FAT,))
    return porta


def paint_mesenteric_vessels(cv: Canvas, lm: Landmarks, rng: np.random.Generator) -> None:
    """Jejunal and ileal branches of the SMA and SMV fanning into the mesenteric fat."""
    for k in range(14):
        z = lm.z_l1 - rng.uniform(20, 120)
        start = np.array([lm.xa + 6.0 + (z - lm.z_l1) * -0.15, lm.ya + lm.ra + 20.0, z])
        angle = rng.uniform(-0.2, np.pi + 0.2)
        d = np.array([np.cos(angle), 0.6 * np.sin(angle) + 0.3, rng.uniform(-0.4, 0.2)])
        d /= np.linalg.norm(d)
        pts = [start + d * t + rng.normal(scale=2.0, size=3) * (t > 0) for t in (0, 25, 50, 75)]
        _tube(cv, np.array(pts), np.array([2.6, 2.0, 1.6, 1.2]),
              T.ARTERY if k % 2 else T.PORTAL, None)


# -- pancreas --------------------------------------------------------------------------------
def paint_pancreas(cv: Canvas, lm: Landmarks, spleen_hilum: np.ndarray,
                   rng: np.random.Generator) -> None:
    """Pancreas: a lobulated tube, head in the duodenal sweep, neck in front of the portal
    confluence, body over the aorta and SMA, tail to the splenic hilum; fat between lobules."""
    xa, ya, z1 = lm.xa, lm.ya, lm.z_l1
    def j(a):  # random jitter (mm) of a control point
        return rng.uniform(-a, a, 3)

    control = np.array([
        (xa + 38, ya + 20, z1 - 34), (xa + 46, ya + 30, z1 - 14), (xa + 26, ya + 42, z1 - 2),
        (xa - 6, ya + 44, z1 + 2), (xa - 40, ya + 32, z1 + 8),
        (spleen_hilum[0] + 12, spleen_hilum[1] + 12, spleen_hilum[2] - 8),
    ]) + np.concatenate([j(4)[None], j(4)[None], j(3)[None], j(4)[None], j(5)[None], j(5)[None]])
    radii_ctrl = np.array([12.0, 17.5, 12.0, 11.5, 11.0, 10.0]) * rng.uniform(0.92, 1.08)
    pts, arc = smooth_curve(control, 8.0)
    chord = np.concatenate([[0], np.cumsum(np.linalg.norm(np.diff(control, axis=0), axis=1))])
    radii = np.interp(arc, chord * arc[-1] / chord[-1], radii_ctrl)
    field = tube_field(cv.grid, pts, radii * 1.2)
    if field is None:
        return
    reg = field.region
    noise = ValueNoise(rng, pts.min(axis=0) - 30, pts.max(axis=0) + 30, 7.0)
    near = field.level <= 0
    bumps = np.zeros(reg.shape, np.float32)
    bumps[near] = noise(reg, near)
    r_local = np.interp(field.arc, arc, radii).astype(np.float32)
    inside = near & (field.level + r_local * 0.2 <= r_local * 0.16 * bumps)
    clefts = ValueNoise(rng, pts.min(axis=0) - 30, pts.max(axis=0) + 30, 4.0)
    fat = np.zeros(reg.shape, bool)
    fat[inside] = clefts(reg, inside) > 0.55
    tissue = np.where(fat, T.FAT, T.PANCREAS).astype(np.uint8)
    cv.paint(reg, inside, tissue, L["pancreas"])


# -- veins inside the liver ------------------------------------------------------------------
def paint_liver_veins(cv: Canvas, lm: Landmarks, liver: LiverShape, porta: np.ndarray,
                      rng: np.random.Generator) -> None:
    """Portal branches from the porta and hepatic veins converging on the IVC (both 64)."""
    z1 = lm.z_l1
    portal = []
    for target in ((92, lm.ys + 50, z1 + 52), (82, lm.ys + 20, z1 + 10), (-8, lm.ys + 104, z1 + 48),
                   (30, lm.ys + 85, z1 + 60)):
        d = np.asarray(target, float) - porta
        _grow(portal, porta, d / np.linalg.norm(d), 0.45 * np.linalg.norm(d), 5.5, 3, liver, rng)
    hepatic = []
    root = np.array([lm.xi + 6.0, lm.yi + 22.0, z1 + 72.0])
    for direction in ((1.0, -0.1, -0.45), (0.45, 0.85, -0.35), (-0.7, 0.75, -0.25)):
        d = np.asarray(direction) / np.linalg.norm(direction)
        _grow(hepatic, root, d, 38.0, 5.5, 3, liver, rng)
    for segs, tissue in ((portal, T.PORTAL), (hepatic, T.HEPVEIN)):
        if not segs:
            continue
        p0, p1, r0, r1 = (np.array([s[k] for s in segs]) for k in range(4))
        field = capsule_field(cv.grid, p0, p1, r0, r1, with_arc=False)
        if field is not None:
            cv.paint(field.region, field.level <= 0, tissue, L["portal_vein_and_splenic_vein"],
                     into=(T.LIVER,), over_labels=True)


def _grow(segments: list, start, direction, length, radius, depth, liver: LiverShape,
          rng: np.random.Generator) -> None:
    """Append a branch and, recursively, two children bent 20-45 degrees that stay in the liver."""
    end = start + direction * length
    segments.append((start, end, radius, radius * 0.85))
    if depth == 0 or radius < 2.2:
        return
    for _ in range(2):
        axes = np.cross(direction, rng.normal(size=(5, 3)))
        axes /= np.linalg.norm(axes, axis=1, keepdims=True)
        angles = np.radians(rng.uniform(20, 45, size=(5, 1)))
        dirs = direction * np.cos(angles) + np.cross(axes, direction) * np.sin(angles)
        ok = np.flatnonzero(liver.level_at(end + dirs * length * 0.8) < -0.08)
        if ok.size:
            _grow(segments, end, dirs[ok[0]], length * rng.uniform(0.65, 0.85), radius * 0.7,
                  depth - 1, liver, rng)
