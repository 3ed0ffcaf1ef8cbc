"""Property tests (hypothesis) of the geometry: voxel <-> RAS, file round trips, ROI boxes."""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from TumorSynthLib.core.volume import Box, Volume, box_around
from TumorSynthLib.core.volume_io import load_volume, save_volume

FAST = settings(max_examples=40, deadline=None)
FILES = settings(max_examples=30, deadline=None)

spacings = st.tuples(*[st.floats(0.3, 6.0)] * 3)
origins = st.tuples(*[st.floats(-500.0, 500.0)] * 3)
quaternions = st.tuples(*[st.floats(-1.0, 1.0)] * 4).filter(lambda q: np.linalg.norm(q) > 0.1)


def rotation(q) -> np.ndarray:
    """Proper rotation matrix of the (normalised) quaternion ``q``."""
    w, x, y, z = np.asarray(q, dtype=float) / np.linalg.norm(q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def make_affine(q, spacing, origin, flip: bool = False) -> np.ndarray:
    aff = np.eye(4)
    aff[:3, :3] = rotation(q) @ np.diag(spacing) @ np.diag([1, 1, -1 if flip else 1])
    aff[:3, 3] = origin
    return aff


@FAST
@given(quaternions, spacings, origins, st.booleans(),
       st.lists(st.tuples(*[st.floats(-50, 300)] * 3), min_size=1, max_size=5))
def test_voxel_ras_voxel_round_trip(q, spacing, origin, flip, points):
    vol = Volume(np.zeros((2, 2, 2), np.int16), make_affine(q, spacing, origin, flip))
    ijk = np.asarray(points)
    ras = vol.voxel_to_ras(ijk)
    np.testing.assert_allclose(vol.ras_to_voxel(ras), ijk, atol=1e-6)
    np.testing.assert_allclose(vol.spacing, spacing, rtol=1e-9)
    # one voxel step along axis a moves exactly spacing[a] mm
    step = vol.voxel_to_ras(ijk + np.eye(3)[0]) - ras
    np.testing.assert_allclose(np.linalg.norm(step, axis=-1), spacing[0], rtol=1e-9)


@FILES
@given(quaternions, spacings, origins, st.booleans(), st.sampled_from([".nii.gz", ".nrrd"]))
def test_file_round_trip_keeps_oblique_anisotropic_affine(q, spacing, origin, flip, suffix):
    affine = make_affine(q, spacing, origin, flip)
    data = np.arange(3 * 4 * 2, dtype=np.int16).reshape(3, 4, 2)
    with tempfile.TemporaryDirectory() as tmp:
        back = load_volume(save_volume(Volume(data, affine), Path(tmp) / f"v{suffix}"))
    np.testing.assert_allclose(back.affine, affine, atol=1e-4)
    np.testing.assert_array_equal(back.array, data)


shapes = st.tuples(*[st.integers(1, 60)] * 3)


@FAST
@given(shapes, st.data(), st.floats(0.5, 40.0), spacings)
def test_box_around_holds_the_ball_and_stays_inside(shape, data, radius, spacing):
    center = [data.draw(st.floats(-5, n + 5)) for n in shape]
    box = box_around(center, radius, spacing, shape)
    assert all(0 <= lo <= hi <= n for lo, hi, n in zip(box.lo, box.hi, shape))
    for a in range(3):  # every voxel within the radius on each axis is inside the box
        want_lo = max(0, int(np.ceil(center[a] - radius / spacing[a])))
        want_hi = min(shape[a], int(np.floor(center[a] + radius / spacing[a])) + 1)
        if want_lo < want_hi:
            assert box.lo[a] <= want_lo and want_hi <= box.hi[a]


boxes = st.tuples(st.tuples(*[st.integers(-5, 20)] * 3), st.tuples(*[st.integers(0, 30)] * 3)).map(
    lambda t: Box(t[0], tuple(a + b for a, b in zip(t[0], t[1]))))


@FAST
@given(boxes, boxes, shapes)
def test_box_union_and_clip_invariants(a, b, shape):
    u = a.union(b)
    for box in (a, b):
        assert all(ul <= lo and hi <= uh for ul, lo, hi, uh in zip(u.lo, box.lo, box.hi, u.hi))
    c = a.clip(shape)
    assert all(0 <= lo <= hi <= n for lo, hi, n in zip(c.lo, c.hi, shape))
    assert c.clip(shape) == c
    if not c.is_empty:
        vol = Volume(np.arange(np.prod(shape)).reshape(shape), np.eye(4))
        crop = vol.crop(c)
        assert crop.shape == c.shape
        np.testing.assert_allclose(crop.voxel_to_ras([0, 0, 0]), vol.voxel_to_ras(c.lo))
        assert np.array_equal(vol.paste(c, crop.array).array, vol.array)
