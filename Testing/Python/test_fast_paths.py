"""The synthesis's fast paths give what their plain definitions give: the low-pass at every
n-th row, the voxels of coarse cells, the grain noise read as rows of its tile, the early
rejection of sampled places (same decisions as the full ball test, also where the required
depth is a whole number of voxels), and the coarse size fit keeps its scale in bounds."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from TumorSynthLib.anatomy import sampling
from TumorSynthLib.core.volume import Box
from TumorSynthLib.synthesis import shapes
from TumorSynthLib.synthesis.contracts import low_pass, low_pass_rows
from TumorSynthLib.synthesis.intensity import ct_grain, grain_values


@pytest.mark.parametrize("step", [1, 2, 3, 5])
def test_low_pass_rows_is_the_low_pass_at_those_rows(step):
    image = (np.random.default_rng(step).standard_normal((23, 17, 12)) * 15 + 40).astype(np.float32)
    before = image.copy()
    np.testing.assert_allclose(low_pass_rows(image, step), low_pass(image)[::step], atol=1e-4)
    assert np.array_equal(image, before)


def test_cell_voxels_are_the_voxels_of_the_expanded_cells():
    rng = np.random.default_rng(0)
    for factor, shape in (((2, 2, 2), (9, 8, 7)), ((3, 1, 2), (7, 5, 6)), ((4, 4, 4), (3, 2, 5))):
        factor = np.asarray(factor)
        cells = rng.random(tuple(-(-n // f) for n, f in zip(shape, factor))) > 0.6
        fast = shapes._cell_voxels(cells, factor, shape)
        slow = np.nonzero(shapes._expand(cells, factor, shape))
        assert sorted(zip(*fast)) == sorted(zip(*slow))


def test_ct_grain_in_a_region_is_the_full_field_there():
    where = np.zeros((30, 20, 25), bool)
    where[4:19, 3:9, 10:24] = np.random.default_rng(1).random((15, 6, 14)) > 0.3
    full = ct_grain(where.shape, 7.0, np.random.default_rng(5))
    part = ct_grain(where.shape, 7.0, np.random.default_rng(5), where=where)
    assert np.array_equal(part, np.where(where, full, 0.0).astype(np.float32))
    assert not ct_grain(where.shape, 7.0, np.random.default_rng(5), where=np.zeros_like(where)).any()
    values = grain_values(where, 7.0, np.random.default_rng(5))      # the same noise, its mean removed
    np.testing.assert_allclose(values, full[where] - full[where].mean(), atol=1e-4)
    assert abs(float(values.mean())) < 1e-4 and grain_values(np.zeros_like(where), 7.0, np.random.default_rng(5)).size == 0


@pytest.mark.parametrize("diameter, spacing", [(48.0, 0.8), (42.0, 0.6), (105.0, 0.7), (30.0, 1.0), (20.0, 1.5)])
def test_early_rejection_decides_as_the_ball_test(diameter, spacing):
    need = 0.4 * 0.5 * diameter
    reach = int(np.ceil(need / spacing))
    shape = (2 * reach + 9,) * 3
    centre = np.array([reach + 4] * 3)
    sp = np.full(3, spacing)
    for far in range(reach - 1, reach + 2):                        # a hole on the axis, near the limit
        organ = np.ones(shape, bool)
        organ[centre[0] + far, centre[1], centre[2]] = False
        region = SimpleNamespace(view=SimpleNamespace(analysis=SimpleNamespace(spacing=sp, shape=shape)),
                                 masks=lambda box, organ=organ: (organ[box.slices].copy(), np.zeros(box.shape, bool)))
        fast = sampling._fits(centre, region, need, 0.5 * diameter)
        original = sampling._axes_inside
        try:
            sampling._axes_inside = lambda *args: True
            slow = sampling._fits(centre, region, need, 0.5 * diameter)
        finally:
            sampling._axes_inside = original
        assert fast == slow == ((far * spacing) ** 2 >= need**2), (far, need)


def test_organ_voxels_are_drawn_uniformly_over_the_organ():
    from collections import Counter

    labels = np.zeros((12, 10, 8), np.int32)
    labels[2:5, 3:6, 1:3] = 5
    labels[9, 8, 6] = 5                                             # a lone voxel far in the box corner
    analysis = SimpleNamespace(label_array=labels)
    rules = sampling._Rules.__new__(sampling._Rules)
    rules.analysis, rules.ids = analysis, (5,)
    rules.box = Box((2, 3, 1), (10, 9, 7))
    rng = np.random.default_rng(0)
    counts: Counter = Counter()
    while sum(counts.values()) < 3800:
        counts.update(tuple(int(x) for x in v) for v in rules.organ_voxels(rng))
    n = sum(counts.values())
    assert set(counts) == {tuple(int(x) for x in v) for v in np.argwhere(labels == 5)}
    assert 0.75 < counts[(9, 8, 6)] / (n / 19) < 1.25              # 1 of 19 voxels
    absent = sampling._Rules.__new__(sampling._Rules)
    absent.analysis, absent.ids, absent.box = SimpleNamespace(label_array=np.zeros_like(labels)), (5,), Box((2, 3, 1), (10, 9, 7))
    assert absent.organ_voxels(rng) is None                           # ORGAN_DRAWS misses
    rules.box = None
    assert rules.organ_voxels(rng) is None
