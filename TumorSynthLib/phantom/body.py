"""Body wall, skeleton, back muscles, lung bases and heart of the phantom (mm, patient RAS:
+x = patient right, +y = anterior, +z = superior).

The body is a super-ellipse in the axial plane (slightly tapered along z) whose layers -- skin,
subcutaneous fat, muscle wall with fat planes -- are depths below the skin. The spine is a stack
of vertebrae (body with cortex and marrow, disc, canal, pedicles, laminae, transverse and spinous
processes); ribs 7-12 run in the wall from the transverse processes, descending as they go round.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .shapes import ellipsoid_level, smooth_curve, tube_voxels
from .tissue import Canvas, L, T

SKIN_MM = 2.5
VERTEBRAE = ("T10", "T11", "T12", "L1", "L2", "L3", "L4", "L5")
#: Half width / half depth (mm) of each vertebral body.
VERTEBRA_SIZE = {"T10": (16.5, 13.5), "T11": (17.5, 14.0), "T12": (19.0, 14.5),
                 "L1": (20.5, 15.0), "L2": (21.5, 15.5), "L3": (22.5, 16.0),
                 "L4": (23.5, 16.0), "L5": (24.5, 16.0)}
BODY_HALF_HEIGHT = 12.5  # vertebral body, mm
DISC_MM = 9.0


@dataclass(frozen=True)
class Body:
    """Outline and wall layers of the trunk. The half axes describe the abdominal cavity (inside
    the muscle wall), so a thicker fat layer makes a bigger patient, not smaller organs. Angles
    ``theta`` are atan2(y - yc, x) in radians (0 = patient right, pi/2 = anterior)."""

    half_width: float
    half_ant: float
    half_post: float
    yc: float
    power: float
    harmonics: np.ndarray   # rows (k, amplitude, phase)
    fat: tuple[float, float, float]   # anterior, lateral, posterior subcutaneous fat (mm)
    wall: tuple[float, float, float]  # anterior, lateral, posterior muscle wall (mm)
    taper: float                      # relative radius change per 100 mm downward

    @staticmethod
    def random(rng: np.random.Generator) -> "Body":
        harm = np.stack([np.array([2, 3, 4, 5]), rng.uniform(0.004, 0.018, 4),
                         rng.uniform(0, 2 * np.pi, 4)], axis=1)
        return Body(
            half_width=rng.uniform(121, 132), half_ant=rng.uniform(77, 86),
            half_post=rng.uniform(78, 87), yc=rng.uniform(-4, 4), power=rng.uniform(2.2, 2.6),
            harmonics=harm, fat=(rng.uniform(14, 36), rng.uniform(14, 34), rng.uniform(10, 24)),
            wall=(rng.uniform(9, 12), rng.uniform(11, 15), rng.uniform(6, 9)),
            taper=rng.uniform(0.0, 0.02),
        )

    def radius(self, theta):
        """Distance (mm) from the body axis to the skin along ``theta`` at z = 0."""
        return self.cavity_radius(theta) + SKIN_MM + self.fat_mm(theta) + self.wall_mm(theta)

    def cavity_radius(self, theta):
        """Distance (mm) from the body axis to the inner surface of the muscle wall."""
        c, s = np.abs(np.cos(theta)), np.sin(theta)
        b = np.where(s >= 0, self.half_ant, self.half_post)
        p = np.where(s >= 0, self.power, self.power + 0.9)
        r = ((c / self.half_width) ** p + (np.abs(s) / b) ** p) ** (-1.0 / p)
        for k, a, ph in self.harmonics:
            r = r * (1.0 + a * np.cos(k * theta + ph))
        return r

    def zscale(self, z):
        return 1.0 - self.taper * np.asarray(z, float) / 100.0

    def _mix(self, theta, values):
        s = np.sin(theta)
        ant, lat, post = values
        return (lat + (ant - lat) * np.clip(s, 0, None) ** 2
                + (post - lat) * np.clip(-s, 0, None) ** 2)

    def fat_mm(self, theta):
        return self._mix(theta, self.fat) * (1.0 + 0.12 * np.sin(3 * theta + self.harmonics[0, 2]))

    def wall_mm(self, theta):
        return self._mix(theta, self.wall)

    def point(self, theta, z, depth):
        """(x, y) in mm of the point ``depth`` mm below the skin along ``theta`` at height z."""
        r = self.radius(theta) * self.zscale(z) - depth
        return r * np.cos(theta), self.yc + r * np.sin(theta)


@dataclass(frozen=True)
class Spine:
    """Vertebral column: level centres along z and the (lordotic) AP position of the bodies."""

    y0: float
    z_l1: float
    step: float
    lordosis: float

    @staticmethod
    def random(rng: np.random.Generator, body: Body) -> "Spine":
        return Spine(y0=body.yc - body.half_post + rng.uniform(56, 63),
                     z_l1=rng.uniform(2, 14), step=rng.uniform(32, 36),
                     lordosis=rng.uniform(3, 9))

    def y(self, z):
        """y (mm) of the vertebral body centre at height z."""
        return self.y0 + self.lordosis * np.exp(-((np.asarray(z, float) + 60.0) / 90.0) ** 2)

    def z_of(self, name: str) -> float:
        """Centre height (mm) of a vertebra ("T10" ... "L5", "T7" ... for rib origins)."""
        order = {f"T{n}": n - 13 for n in range(1, 13)} | {f"L{n}": n - 1 for n in range(1, 6)}
        return self.z_l1 - order[name] * self.step

    def canal_y(self, z):
        """y (mm) of the spinal canal's centre at height z."""
        zc = [self.z_of(n) for n in reversed(VERTEBRAE)]
        depth = np.interp(z, zc, [VERTEBRA_SIZE[n][1] for n in reversed(VERTEBRAE)])
        return self.y(z) - depth - 10.0


def paint_body(cv: Canvas, body: Body) -> None:
    """Skin, subcutaneous fat, muscle wall (with two fat planes laterally), cavity fat, table.

    The outline changes with z only by a slow scale, so each axial layer map is computed once
    per 0.2 % step of that scale and copied to every slice that shares it."""
    grid = cv.grid
    x2, y2 = grid.axis(0)[:, None], grid.axis(1)[None, :]
    theta = np.arctan2(y2 - body.yc, x2)
    r2 = np.hypot(x2, y2 - body.yc)
    radius = body.radius(theta)
    t_fat = SKIN_MM + body.fat_mm(theta)
    wall = np.where((np.abs(x2) < 4.0) & (y2 > body.yc), 2.0, body.wall_mm(theta))  # linea alba
    lateral = (np.abs(np.cos(theta)) > 0.55) & (np.sin(theta) > -0.35)
    lut = np.array([T.AIR, T.SKIN, T.SUBFAT, T.MUSCLE, T.FAT], np.uint8)
    keys = np.round(body.zscale(grid.axis(2)) / 0.002).astype(int)
    start = 0
    for k in range(1, len(keys) + 1):
        if k < len(keys) and keys[k] == keys[start]:
            continue
        depth = radius * (keys[start] * 0.002) - r2
        layer = (depth >= 0).astype(np.uint8) + (depth >= SKIN_MM) + (depth >= t_fat) \
            + (depth >= t_fat + wall)
        rel = depth - t_fat
        planes = lateral & (layer == 3) & ((np.abs(rel - 0.36 * wall) < 0.8)
                                           | (np.abs(rel - 0.68 * wall) < 0.8))
        cv.tissue[:, :, start:k] = np.where(planes, T.SUBFAT, lut[layer])[:, :, None]
        start = k
    _paint_table(cv, body)


def _paint_table(cv: Canvas, body: Body) -> None:
    y_back = body.yc - float(body.radius(-np.pi / 2)) - 1.5
    reg = cv.grid.region((-200, y_back - 60, -1e9), (200, y_back + 40, 1e9))
    if reg is None:
        return
    top = y_back + 0.00035 * reg.x ** 2
    shell = (np.abs(reg.y - top) < 1.6) | (np.abs(reg.y - (top - 30.0)) < 1.6)
    cv.paint(reg, shell & (np.abs(reg.x) < 190), T.TABLE, into=(T.AIR,))


def _ellipse_sdf(x, y, a, b):
    return (np.sqrt((x / a) ** 2 + (y / b) ** 2) - 1.0) * min(a, b)


def _capsule_sdf(x, y, p0, p1, r):
    d = np.subtract(p1, p0)
    t = np.clip(((x - p0[0]) * d[0] + (y - p0[1]) * d[1]) / float(d.dot(d)), 0.0, 1.0)
    return np.hypot(x - p0[0] - t * d[0], y - p0[1] - t * d[1]) - r


def paint_spine(cv: Canvas, spine: Spine) -> None:
    """Vertebrae T10-L5 (labelled per level), discs, canal with cord (above the conus)."""
    _paint_canal(cv, spine)
    for name in VERTEBRAE:
        _paint_vertebra(cv, spine, name)


def _paint_canal(cv: Canvas, spine: Spine) -> None:
    reg = cv.grid.region((-15, spine.y0 - 55, -1e9), (15, spine.y0, 1e9))
    if reg is None:
        return
    cy = spine.canal_y(reg.z).astype(np.float32)
    canal = (reg.x / 10.0) ** 2 + ((reg.y - cy) / 7.5) ** 2 <= 1.0
    cv.paint(reg, canal, T.CSF, into=None)
    conus = spine.z_of("L1") - 14.0
    cord = ((reg.x / 4.5) ** 2 + ((reg.y - cy) / 4.0) ** 2 <= 1.0) & (reg.z > conus)
    cv.paint(reg, cord, T.CORD, L["spinal_cord"], into=None)


def _paint_vertebra(cv: Canvas, spine: Spine, name: str) -> None:
    zc = spine.z_of(name)
    w, d = VERTEBRA_SIZE[name]
    ys = float(spine.y(zc))
    cy = float(spine.canal_y(zc))
    reg = cv.grid.region((-w - 45, cy - 45, zc - 22), (w + 45, ys + d + 3, zc + BODY_HALF_HEIGHT))
    if reg is None:
        return
    x, y, zr = reg.x[:, :, 0], reg.y[:, :, 0], reg.z[0, 0, :] - zc
    body = np.maximum(_ellipse_sdf(x, y - ys, w, d), -(np.hypot(x, y - (ys - d - 4.0)) - 8.0))
    big = np.float32(1e3)
    in_body = np.abs(zr) <= BODY_HALF_HEIGHT
    bone = np.where(in_body[None, None, :], body[:, :, None], big)
    for sdf, (lo, hi) in _posterior_elements(x, y, cy, w, lumbar=name.startswith("L")):
        band = (zr >= lo) & (zr <= hi)
        bone = np.minimum(bone, np.where(band[None, None, :], sdf[:, :, None], big))
    in_disc = (zr < -BODY_HALF_HEIGHT) & (zr > -BODY_HALF_HEIGHT - DISC_MM)
    disc = _ellipse_sdf(x, y - ys, w + 1.0, d + 1.0)
    cv.paint(reg, (disc[:, :, None] <= 0) & in_disc[None, None, :], T.DISC, into=None)
    endplate = (np.abs(zr) > BODY_HALF_HEIGHT - 1.5)[None, None, :] & (body[:, :, None] <= 0)
    tissue = np.where((bone > -1.6) | endplate, T.CORTEX, T.MARROW).astype(np.uint8)
    cv.paint(reg, bone <= 0, tissue, L[f"vertebrae_{name}"], into=None)


def _posterior_elements(x, y, cy, w, lumbar: bool):
    """(2D signed distance in mm, z band relative to the body centre) of the pedicles, laminae,
    transverse and spinous processes and facets around a canal centred at y = cy."""
    ca, cb = 10.0, 7.5  # canal half width / depth
    ring = np.abs(_ellipse_sdf(x, y - cy, ca + 4.5, cb + 4.5)) - 4.5
    tip = (w + 24.0, cy + 3.0) if lumbar else (w + 12.0, cy - 9.0)
    def pair(p0, p1, r):  # the right element and its mirror image on the left
        return np.minimum(*[_capsule_sdf(x, y, (s * p0[0], p0[1]), (s * p1[0], p1[1]), r)
                            for s in (1, -1)])

    return [
        (np.where(y > cy - cb - 8.0, ring, 1e3), (-6, 9)),           # pedicles
        (np.where(y < cy - 2.0, ring, 1e3), (-17, 12.5)),            # laminae
        (pair((ca + 6, cy + 1), tip, 3.6), (-4, 5)),                 # transverse processes
        (_capsule_sdf(x, y, (0.0, cy - cb - 5), (0.0, cy - 40), 3.4), (-21, 5)),  # spinous
        (pair((14.0, cy - 5), (16.0, cy - 10), 4.5), (-24, -12)),    # facet joints
    ]


def paint_back_muscles(cv: Canvas, body: Body, spine: Spine) -> None:
    """Erector spinae (autochthon), psoas (iliopsoas) and quadratus lumborum muscles."""
    grid = cv.grid
    reg = grid.region((-95, spine.y0 - 90, -1e9), (95, spine.y0 + 40, 1e9))
    if reg is None:
        return
    z = reg.z
    ys = spine.y(z)
    cy = spine.canal_y(z)
    soft = (T.MUSCLE, T.FAT)
    for side, key in ((1, "autochthon_right"), (-1, "autochthon_left")):
        erector = ((reg.x - side * 27.0) / 23.0) ** 2 + ((reg.y - (cy - 19.0)) / 25.0) ** 2 <= 1
        cv.paint(reg, erector, T.MUSCLE, L[key], into=soft)
    z_top = spine.z_of("T12") - 5.0
    grow = np.clip((z_top - z) * 0.13, 0, None)
    pr = np.minimum(4.0 + grow, 22.0)
    for side, key in ((1, "iliopsoas_right"), (-1, "iliopsoas_left")):
        cx = side * (VERTEBRA_SIZE["L2"][0] + 2.0 + pr * 0.9)
        py = ys - 2.0 + 0.25 * pr
        psoas = (((reg.x - cx) / pr) ** 2 + ((reg.y - py) / (0.85 * pr)) ** 2 <= 1) & (z < z_top)
        cv.paint(reg, psoas, T.MUSCLE, L[key], into=soft)
        ql_r = np.minimum(4.0 + 0.6 * grow, 15.0)
        ql = (((reg.x - side * (62.0 - 0.2 * ql_r)) / ql_r) ** 2
              + ((reg.y - (cy + 2.0)) / (0.6 * ql_r)) ** 2 <= 1) & (z < z_top + 10)
        cv.paint(reg, ql, T.MUSCLE, into=soft)


def rib_path(body: Body, spine: Spine, n: int, side: int, rng: np.random.Generator):
    """Centre line (points, mm) of rib ``n`` (7-12) on ``side`` (+1 right, -1 left), and the
    index where its bony part ends (costal cartilage follows for ribs 7-10)."""
    name = f"T{n}"
    z0 = spine.z_of(name)
    w, d = VERTEBRA_SIZE.get(name, (16.0, 13.5))
    ys = float(spine.y(z0))
    cy = ys - d - 10.0
    end = {12: 72, 11: 100, 10: 132, 9: 142, 8: 150, 7: 156}[n] + rng.uniform(-6, 6)
    slope = rng.uniform(1.0, 1.2)  # mm of descent per degree round the trunk
    pts = [(side * (w - 2.0), ys - d + 4.0, z0 + 4.0), (side * (w + 12.0), cy - 8.0, z0)]
    alphas = np.arange(45.0, end + 1e-6, 6.0)
    cart = np.arange(end + 6.0, min(end + 30.0, 176.0), 6.0) if n <= 10 else np.array([])
    for i, a in enumerate(np.concatenate([alphas, cart])):
        theta = np.radians(a - 90.0) if side > 0 else np.radians(-90.0 - a)
        z = z0 - slope * (min(a, end) - 35.0) + 0.7 * max(a - end, 0.0)
        depth = SKIN_MM + body.fat_mm(theta) + 0.55 * body.wall_mm(theta)
        x, y = body.point(theta, z, depth)
        pts.append((float(x), float(y), float(z)))
    curve, arc = smooth_curve(np.array(pts), 10.0)
    bony_len = np.linalg.norm(np.diff(np.array(pts[: 2 + len(alphas)]), axis=0), axis=1).sum()
    return curve, int(np.searchsorted(arc, bony_len))


def paint_ribs(cv: Canvas, body: Body, spine: Spine, rng: np.random.Generator) -> None:
    """Ribs 7-12 both sides (bone with cortex, labelled per rib) and costal cartilages."""
    for n in (7, 8, 9, 10, 11, 12):
        for side, key in ((1, f"rib_right_{n}"), (-1, f"rib_left_{n}")):
            curve, cut = rib_path(body, spine, n, side, rng)
            radius = 4.3 if n < 11 else 3.8
            not_spine = tuple(t for t in T if t not in (T.CORTEX, T.MARROW, T.DISC))
            for pts, is_bone in ((curve[: cut + 1], True), (curve[cut:], False)):
                if len(pts) < 2:
                    continue
                flat, lev = tube_voxels(cv.grid, pts, radius)
                if is_bone:
                    tissue = np.where(lev > -1.5, T.CORTEX, T.MARROW).astype(np.uint8)
                    cv.paint_voxels(flat, tissue, L[key], into=not_spine)
                else:
                    cv.paint_voxels(flat, T.CARTILAGE, L["costal_cartilages"], into=not_spine)


def paint_thorax_base(cv: Canvas, body: Body, spine: Spine, rng: np.random.Generator) -> float:
    """Diaphragm domes with lung bases above them (posterior recesses reach lowest) and the
    inferior heart; returns the height (mm) of the right dome's top."""
    top_r = spine.z_l1 + rng.uniform(98, 110)
    top_l = top_r - rng.uniform(6, 14)
    xr, xl = rng.uniform(50, 70), -rng.uniform(55, 75)
    curv = rng.uniform(0.0013, 0.0018)
    reg = cv.grid.region((-1e9, -1e9, spine.z_l1 - 10.0), (1e9, 1e9, 1e9))
    if reg is None:
        return top_r
    x, y = reg.x[:, :, 0], reg.y[:, :, 0]
    post = np.clip(body.yc - y, 0, None)

    def dome(top, dist2):
        return top - curv * dist2 - 3.0e-7 * dist2 ** 2

    zd = np.maximum(dome(top_r, (x - xr) ** 2 + (y - 8.0) ** 2),
                    dome(top_l, (x - xl) ** 2 + y ** 2)) - 0.003 * post ** 2
    zd = zd.astype(np.float32)[:, :, None]
    above = reg.z > zd
    lung_label = np.where(reg.x > 0, L["lung_lower_lobe_right"], L["lung_lower_lobe_left"])
    free = cv.free(reg)
    heart = (ellipsoid_level(reg, (-25.0, 45.0, top_l + 62.0), (68, 52, 62)) <= 0) & above \
        & (reg.z > zd + 5.0)
    cv.paint(reg, heart & free, T.HEART, L["heart"], into=None)
    for side_label in (L["lung_lower_lobe_right"], L["lung_lower_lobe_left"]):
        cv.paint(reg, above & (lung_label == side_label), T.LUNG, side_label)
    cv.paint(reg, (reg.z > zd - 4.5) & ~above, T.MUSCLE)
    return top_r


@dataclass(frozen=True)
class Landmarks:
    """Positions (mm) shared by the organ builders, drawn once per patient."""

    ys: float          # y of the vertebral bodies' centre (upper lumbar)
    z_l1: float        # centre of L1
    z_l2: float
    z_l4: float
    xa: float          # aorta: x, radius, y in front of the spine
    ra: float
    ya: float
    xi: float          # inferior vena cava: x, radius, y
    ri: float
    yi: float
    sx: float          # cavity width / depth in front of the spine relative to an average adult
    sy: float

    @staticmethod
    def random(rng: np.random.Generator, body: Body, spine: Spine) -> "Landmarks":
        ys = float(spine.y(spine.z_l1))
        ra, ri = rng.uniform(9.5, 12.0), rng.uniform(9.0, 11.5)
        return Landmarks(ys=ys, z_l1=spine.z_l1, z_l2=spine.z_of("L2"), z_l4=spine.z_of("L4"),
                         xa=-rng.uniform(9, 15), ra=ra, ya=ys + 16.0 + ra,
                         xi=rng.uniform(17, 24), ri=ri, yi=ys + 19.0 + ri,
                         sx=body.half_width / 126.5, sy=(body.yc + body.half_ant - ys) / 105.0)


