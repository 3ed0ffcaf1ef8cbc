"""Geometry primitives of the procedural phantom, all in millimetres (patient RAS).

Why a module of its own: the anatomy in ``phantom_body`` / ``phantom_organs`` is described as
implicit shapes (deformed ellipsoids, tubes along curves) evaluated only inside each shape's own
bounding box, so the phantom builds in well under two seconds and looks the same at any voxel
size. A *level* is an implicit function that is negative inside the shape and zero on its surface
(normalised units for ellipsoids, millimetres for tubes).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import map_coordinates

from ..core.volume import voxel_indices


@dataclass(frozen=True)
class Region:
    """A box of the grid: voxel slices plus mm coordinates that broadcast to the box shape,
    ``x`` (n, 1, 1), ``y`` (1, m, 1), ``z`` (1, 1, k)."""

    slices: tuple[slice, slice, slice]
    x: np.ndarray
    y: np.ndarray
    z: np.ndarray

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.x.shape[0], self.y.shape[1], self.z.shape[2])

    def sub(self, other: "Region") -> tuple[slice, slice, slice]:
        """Slices of ``other`` (a box inside this one) relative to this box."""
        return tuple(  # type: ignore[return-value]
            slice(o.start - s.start, o.stop - s.start) for s, o in zip(self.slices, other.slices)
        )


@dataclass(frozen=True)
class Grid:
    """An axis-aligned voxel grid centred on RAS (0, 0, 0): voxel [i, j, k] lies at
    ``origin + (i, j, k) * spacing`` with i -> +x (patient right), j -> +y (anterior),
    k -> +z (superior)."""

    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]

    def __post_init__(self) -> None:
        origin = -(np.asarray(self.shape, float) - 1.0) / 2.0 * np.asarray(self.spacing, float)
        axes = tuple((origin[a] + np.arange(self.shape[a]) * self.spacing[a]).astype(np.float32)
                     for a in range(3))
        object.__setattr__(self, "_origin", origin)
        object.__setattr__(self, "_axes", axes)

    @property
    def origin(self) -> np.ndarray:
        return self._origin.copy()  # type: ignore[attr-defined]

    @property
    def affine(self) -> np.ndarray:
        aff = np.diag([*map(float, self.spacing), 1.0])
        aff[:3, 3] = self.origin
        return aff

    def axis(self, a: int) -> np.ndarray:
        """mm coordinates of the voxel centres along array axis ``a`` (float32)."""
        return self._axes[a]  # type: ignore[attr-defined]

    def region(self, lo_mm, hi_mm) -> Region | None:
        """The voxels whose centres lie in the mm box [lo_mm, hi_mm], or None if none do."""
        sl = []
        origin, axes = self._origin, self._axes  # type: ignore[attr-defined]
        for a in range(3):
            lo = int(np.ceil((lo_mm[a] - origin[a]) / self.spacing[a] - 1e-6))
            hi = int(np.floor((hi_mm[a] - origin[a]) / self.spacing[a] + 1e-6)) + 1
            lo, hi = max(lo, 0), min(hi, self.shape[a])
            if hi <= lo:
                return None
            sl.append(slice(lo, hi))
        return Region(tuple(sl), axes[0][sl[0], None, None],  # type: ignore[arg-type]
                      axes[1][None, sl[1], None], axes[2][None, None, sl[2]])

    def full(self) -> Region:
        return self.region(np.full(3, -1e9), np.full(3, 1e9))  # type: ignore[return-value]


def frame(long_axis, toward) -> np.ndarray:
    """Orthonormal 3x3 frame (columns u, v, w): w along ``long_axis``, v as close as possible to
    ``toward``, u = v x w. Used to orient ellipsoids (kidneys, spleen, gallbladder)."""
    w = np.asarray(long_axis, float)
    w = w / np.linalg.norm(w)
    v = np.asarray(toward, float)
    v = v - v.dot(w) * w
    v = v / np.linalg.norm(v)
    u = np.cross(v, w)
    return np.stack([u, v, w], axis=1)


def rot_z(deg: float) -> np.ndarray:
    """Frame rotated by ``deg`` degrees about the superior axis (local u, v in the axial plane)."""
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


@dataclass(frozen=True)
class Wobble:
    """A smooth random multiplier ``1 + sum_k a_k sin(f_k . (u, v, w) + phi_k)`` of an
    ellipsoid's normalised radius: bumps and lobes a few centimetres wide."""

    freqs: np.ndarray
    phases: np.ndarray
    amps: np.ndarray

    @staticmethod
    def random(rng: np.random.Generator, amplitude: float, terms: int = 3,
               freq: float = 2.2) -> "Wobble":
        dirs = rng.normal(size=(terms, 3))
        dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
        freqs = dirs * freq * rng.uniform(0.7, 1.3, size=(terms, 1))
        phases = rng.uniform(0, 2 * np.pi, terms)
        return Wobble(freqs, phases, amplitude * rng.uniform(0.5, 1.0, terms))

    def __call__(self, u, v, w):
        out = 1.0
        for f, p, a in zip(self.freqs, self.phases, self.amps):
            arg = float(f[0]) * u + float(f[1]) * v + float(f[2]) * w + float(p)
            out = out + float(a) * np.sin(arg)
        return out


def local_coords(reg: Region, centre, axes=None):
    """Coordinates of the region relative to ``centre`` in the frame ``axes`` (columns), mm."""
    dx, dy, dz = (c - np.float32(centre[k]) for k, c in enumerate((reg.x, reg.y, reg.z)))
    if axes is None:
        return dx, dy, dz
    m = np.asarray(axes, float)
    return tuple(float(m[0, c]) * dx + float(m[1, c]) * dy + float(m[2, c]) * dz for c in range(3))


@dataclass(frozen=True)
class Ellipsoid:
    """A (deformed) ellipsoid: ``radii`` in mm along the columns of ``axes`` (None = RAS)."""

    centre: tuple[float, float, float]
    radii: tuple[float, float, float]
    axes: np.ndarray | None = None
    wobble: Wobble | None = None

    def normalised(self, reg: Region):
        """Local coordinates of the region divided by the radii (u, v, w)."""
        local = local_coords(reg, self.centre, self.axes)
        return tuple(c / np.float32(r) for c, r in zip(local, self.radii))

    def level(self, reg: Region) -> np.ndarray:
        """About -1 at the centre, 0 on the surface (normalised units), full box shape."""
        return np.broadcast_to(self._level(*self.normalised(reg)), reg.shape)

    def level_at(self, points) -> np.ndarray:
        """Level at points (N, 3) in mm."""
        d = np.atleast_2d(np.asarray(points, float)) - np.asarray(self.centre, float)
        loc = d if self.axes is None else d @ np.asarray(self.axes, float)
        u, v, w = (loc / np.asarray(self.radii, float)).T
        return self._level(u, v, w)

    def _level(self, u, v, w):
        s = np.sqrt(u * u + v * v + w * w)
        if self.wobble is not None:
            s = s / self.wobble(u, v, w)
        return s - 1.0

    def box(self, scale: float | None = None):
        """mm bounding box (lo, hi), enlarged by ``scale`` (default: enough for the wobble)."""
        if scale is None:
            scale = 1.02 + (0.0 if self.wobble is None else float(np.sum(self.wobble.amps)))
        m = np.eye(3) if self.axes is None else np.asarray(self.axes, float)
        half = np.sqrt((m ** 2) @ (np.asarray(self.radii, float) ** 2)) * scale
        c = np.asarray(self.centre, float)
        return c - half, c + half

    def region(self, grid: "Grid", scale: float | None = None) -> Region | None:
        return grid.region(*self.box(scale))


def ellipsoid_level(reg: Region, centre, radii, axes=None,
                    wobble: Wobble | None = None) -> np.ndarray:
    """Normalised level of a (deformed) ellipsoid on a region (see :class:`Ellipsoid`)."""
    return Ellipsoid(tuple(centre), tuple(radii), axes, wobble).level(reg)


def smooth_curve(control, step_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """A smooth curve through the control points (N, 3) sampled every ``step_mm``: (points,
    arc length in mm of each point). Cubic spline in chord-length parameter."""
    from scipy.interpolate import CubicSpline

    pts = np.asarray(control, float)
    chord = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(pts, axis=0), axis=1))])
    spline = CubicSpline(chord, pts, axis=0, bc_type="natural")
    t = np.linspace(0.0, chord[-1], max(int(np.ceil(chord[-1] / step_mm)) + 1, 2))
    out = spline(t)
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(out, axis=0), axis=1))])
    return out, arc


@dataclass
class TubeField:
    """Distance field of a tube around a polyline inside ``region``: ``level`` (mm, distance to
    the axis minus the local radius; +inf far away), plus, at the nearest axis point, its arc
    length ``arc`` (mm) and its ``centre_y`` (mm, for air-fluid levels)."""

    region: Region
    level: np.ndarray
    arc: np.ndarray
    centre_y: np.ndarray


def tube_field(grid: Grid, points, radii, margin_mm: float = 1.5,
               with_arc: bool = True) -> TubeField | None:
    """Tube along the polyline ``points`` (N, 3, mm) with radii (N,) in mm (see
    :func:`capsule_field`); ``arc`` is the distance along the polyline."""
    pts = np.asarray(points, float)
    rad = np.broadcast_to(np.asarray(radii, float), (len(pts),))
    seg_len = np.linalg.norm(np.diff(pts, axis=0), axis=1)
    arc0 = np.concatenate([[0.0], np.cumsum(seg_len)[:-1]])
    return capsule_field(grid, pts[:-1], pts[1:], rad[:-1], rad[1:], arc0, margin_mm, with_arc)


def capsule_field(grid: Grid, p0, p1, r0, r1, arc0=None, margin_mm: float = 1.5,
                  with_arc: bool = True) -> TubeField | None:
    """Union of cone-capped capsules (segment i from p0[i] (radius r0[i]) to p1[i] (r1[i]), mm).

    Each capsule is evaluated only inside its own small box, which keeps a 1 m bowel loop or a
    vessel tree cheap. ``arc`` and ``centre_y`` are filled where the level is below
    ``margin_mm`` (zero everywhere unless ``with_arc``). Returns None when nothing reaches the
    grid."""
    p0, p1 = np.asarray(p0, float), np.asarray(p1, float)
    r0, r1 = np.asarray(r0, float), np.asarray(r1, float)
    arc0 = np.zeros(len(p0)) if arc0 is None else np.asarray(arc0, float)
    reach = float(max(r0.max(), r1.max())) + margin_mm
    whole = grid.region(np.minimum(p0, p1).min(axis=0) - reach,
                        np.maximum(p0, p1).max(axis=0) + reach)
    if whole is None:
        return None
    level = np.full(whole.shape, np.inf, np.float32)
    best = np.full(whole.shape, -1, np.int32)
    for i, (a, b, ra, rb) in enumerate(zip(p0, p1, r0, r1)):
        r = max(ra, rb) + margin_mm
        reg = grid.region(np.minimum(a, b) - r, np.maximum(a, b) + r)
        if reg is None:
            continue
        lev = _capsule_level(reg.x, reg.y, reg.z, a, b, ra, rb)[0]
        sub = whole.sub(reg)
        better = lev < level[sub]
        np.copyto(level[sub], lev, where=better)
        np.copyto(best[sub], i, where=better)
    arc = np.zeros(whole.shape, np.float32)
    cy = np.zeros(whole.shape, np.float32)
    if not with_arc:
        return TubeField(whole, level, arc, cy)
    near = voxel_indices(level <= margin_mm)
    seg = best[near]
    coords = [c.reshape(-1)[i] for c, i in zip((whole.x, whole.y, whole.z), near)]
    t = _capsule_level(*coords, p0[seg].T, p1[seg].T, r0[seg], r1[seg])[1]
    length = np.linalg.norm(p1 - p0, axis=1)
    arc[near] = arc0[seg] + t * length[seg]
    cy[near] = p0[seg, 1] + t * (p1[seg, 1] - p0[seg, 1])
    return TubeField(whole, level, arc, cy)


def tube_voxels(grid: Grid, points, radii) -> tuple[np.ndarray, np.ndarray]:
    """Voxels inside a thin tube along ``points`` (N, 3, mm), radii (N,) mm: (flat indices into
    the grid, level in mm). Sparse, so a rib curving round half the trunk costs only its own
    voxels; see :func:`capsule_field` for the dense version."""
    pts = np.asarray(points, float)
    rad = np.broadcast_to(np.asarray(radii, float), (len(pts),))
    flat, levels = [], []
    for a, b, ra, rb in zip(pts[:-1], pts[1:], rad[:-1], rad[1:]):
        r = max(ra, rb)
        reg = grid.region(np.minimum(a, b) - r, np.maximum(a, b) + r)
        if reg is None:
            continue
        lev = _capsule_level(reg.x, reg.y, reg.z, a, b, ra, rb)[0]
        idx = voxel_indices(lev <= 0)
        flat.append(np.ravel_multi_index(tuple(i + s.start for i, s in zip(idx, reg.slices)),
                                         grid.shape))
        levels.append(lev[idx])
    flat_all = np.concatenate(flat) if flat else np.zeros(0, np.int64)
    lev_all = np.concatenate(levels) if levels else np.zeros(0, np.float32)
    if flat_all.size == 0:
        return flat_all, lev_all
    order = np.lexsort((lev_all, flat_all))  # per voxel, the lowest level first
    flat_all, lev_all = flat_all[order], lev_all[order]
    first = np.concatenate([[True], flat_all[1:] != flat_all[:-1]])
    return flat_all[first], lev_all[first]


def _capsule_level(x, y, z, a, b, ra, rb):
    """Distance to the segment a-b minus the interpolated radius, and the segment parameter t.
    ``a``/``b`` are 3-vectors (x, y, z broadcastable axes), or (3, N) arrays for flat points."""
    d = [b[k] - a[k] for k in range(3)]
    if np.ndim(d[0]) == 0:
        d = [float(v) for v in d]
        rel = [c - np.float32(a[k]) for k, c in enumerate((x, y, z))]
        ra, rb = float(ra), float(rb)
    else:
        rel = [c - a[k] for k, c in enumerate((x, y, z))]
    dd = np.maximum(d[0] * d[0] + d[1] * d[1] + d[2] * d[2], 1e-9)
    dist2 = rel[0] * rel[0] + rel[1] * rel[1] + rel[2] * rel[2]
    proj = rel[0] * d[0] + rel[1] * d[1] + rel[2] * d[2]
    t = np.clip(proj / dd, 0.0, 1.0)
    dist2 = dist2 - t * (2.0 * proj - t * dd)
    lev = np.sqrt(np.maximum(dist2, 0.0))
    if np.ndim(ra) == 0 and ra == rb:
        return lev - ra, t
    return lev - (ra + t * (rb - ra)), t


class ValueNoise:
    """Smooth random field in [-1, 1]: random values on a lattice of ``cell_mm`` spacing over the
    mm box [lo, hi], interpolated trilinearly. Used for lobulation, stool and texture."""

    def __init__(self, rng: np.random.Generator, lo_mm, hi_mm, cell_mm: float):
        self.lo = np.asarray(lo_mm, float)
        self.cell = float(cell_mm)
        n = np.ceil((np.asarray(hi_mm, float) - self.lo) / self.cell).astype(int) + 2
        self.values = rng.uniform(-1.0, 1.0, size=tuple(n)).astype(np.float32)

    def __call__(self, reg: Region, mask: np.ndarray) -> np.ndarray:
        """Noise at the voxels of ``mask`` (a boolean array of the region's shape), 1D."""

        coords = [(c - self.lo[a]) / self.cell for a, c in enumerate((reg.x, reg.y, reg.z))]
        idx = voxel_indices(mask)
        pts = [coords[a].reshape(-1)[idx[a]] for a in range(3)]
        return map_coordinates(self.values, pts, order=1, mode="nearest")


def blur3(a: np.ndarray, weights) -> np.ndarray:
    """Separable 3-tap blur ``[w, 1 - 2w, w]`` per axis (w = sigma^2 / 2 in voxels) with edge
    replication, done in place on ``a`` (float32) and returned. Far faster than a Gaussian
    filter for the sub-voxel blurs the phantom needs."""
    out = a
    nb = np.empty_like(out)
    for axis, w in enumerate(weights):
        n = out.shape[axis]
        if w <= 0 or n < 2:
            continue
        src = np.moveaxis(out, axis, 0)
        tmp = np.moveaxis(nb, axis, 0)
        tmp[1:] = src[:-1]        # left neighbour
        tmp[:1] = src[:1]
        tmp[:-1] += src[1:]       # plus right neighbour
        tmp[-1:] += src[-1:]
        tmp *= np.float32(w)
        src *= np.float32(1.0 - 2.0 * w)
        src += tmp
    return out
