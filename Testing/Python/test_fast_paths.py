"""The synthesis's fast paths give what their plain definitions give: the low-pass at every
n-th row, the voxels of coarse cells, the grain noise read as rows of its tile, the early
rejection of sampled places (same decisions as the full ball test, also where the required
depth is a whole number of voxels), and the coarse size fit keeps its scale in bounds."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from TumorSynthLib.anatomy import sampling
from TumorSynthLib.core.resample import expand_blocks
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


def _repeated(cells: np.ndarray, factor, shape) -> np.ndarray:
    """The plain reference: one np.repeat per axis, then the cut."""
    out = cells
    for axis, f in enumerate(factor):
        out = np.repeat(out, f, axis=axis)
    return out[tuple(slice(0, n) for n in shape)]


def test_cell_voxels_are_the_voxels_of_the_expanded_cells():
    rng = np.random.default_rng(0)
    for factor, shape in (((2, 2, 2), (9, 8, 7)), ((3, 1, 2), (7, 5, 6)), ((4, 4, 4), (3, 2, 5))):
        factor = np.asarray(factor)
        cells = rng.random(tuple(-(-n // f) for n, f in zip(shape, factor))) > 0.6
        fast = shapes._cell_voxels(cells, factor, shape)
        slow = np.nonzero(_repeated(cells, factor, shape))
        assert sorted(zip(*fast)) == sorted(zip(*slow))


def test_expand_blocks_is_one_repeat_per_axis_then_the_cut():
    rng = np.random.default_rng(3)
    for factor, shape, dtype in (((2, 2, 2), (9, 8, 7), bool), ((3, 1, 2), (7, 5, 6), np.int32),
                                 ((1, 1, 1), (4, 3, 2), np.float32), ((2, 3, 4), (6, 9, 8), np.int64)):
        cells = (rng.random(tuple(-(-n // f) for n, f in zip(shape, factor))) * 10).astype(dtype)
        out = expand_blocks(cells, factor, shape)
        assert out.shape == shape and out.dtype == cells.dtype and out.flags.c_contiguous
        assert np.array_equal(out, _repeated(cells, factor, shape))


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


@pytest.mark.parametrize("mode", ["nearest", "constant", "wrap"])
def test_float32_gaussian_is_scipys_within_rounding(mode):
    from scipy import ndimage

    from TumorSynthLib.core.gaussian import gaussian_blur

    rng = np.random.default_rng(7)
    for shape, sigma, truncate in (((17, 11, 9), 1.0, 3.0), ((5, 40, 3), (0.0, 2.2, 0.6), 4.0), ((2, 2, 30), 1.7, 3.0)):
        image = (rng.standard_normal(shape) * 40 + 30).astype(np.float32)
        before = image.copy()
        ours = gaussian_blur(image, sigma, truncate, mode)
        ref = ndimage.gaussian_filter(image, sigma, mode=mode, truncate=truncate)
        assert ours.dtype == np.float32 and np.array_equal(image, before)
        np.testing.assert_allclose(ours, ref, rtol=0, atol=2e-5 * float(np.abs(ref).max()))
    wide = rng.standard_normal((6, 7, 8))                        # float64 keeps scipy's double result
    assert np.array_equal(gaussian_blur(wide, 1.0, 3.0), ndimage.gaussian_filter(wide, 1.0, mode="nearest", truncate=3.0))
    with pytest.raises(ValueError, match="mode"):
        gaussian_blur(image, 1.0, 3.0, "reflect")


def test_fast_median_and_voxel_indices_match_numpy():
    from TumorSynthLib.core.stats import fast_median, fast_quantile
    from TumorSynthLib.core.volume import voxel_coords, voxel_indices

    rng = np.random.default_rng(11)
    for n in (1, 2, 7, 10, 4097):
        for dtype in (np.float32, np.float64, np.int16):
            values = (rng.standard_normal(n) * 100).astype(dtype)
            assert fast_median(values) == pytest.approx(float(np.median(values)), abs=1e-4)
            for q in (0.0, 0.13, 0.5, 0.9, 1.0):
                assert fast_quantile(values, q) == pytest.approx(float(np.quantile(values, q)), abs=1e-4)
    mask = rng.random((9, 13, 6)) > 0.7
    assert all(np.array_equal(a, b) for a, b in zip(voxel_indices(mask), np.nonzero(mask)))
    assert np.array_equal(voxel_coords(mask), np.argwhere(mask))
    assert voxel_coords(np.zeros((3, 4, 5), bool)).shape == (0, 3)


def test_is_any_by_runs_and_by_table_match_isin():
    from TumorSynthLib.core.volume import IS_ANY_MAX_RUNS, is_any

    labels = np.random.default_rng(2).integers(0, 120, (20, 15, 10)).astype(np.int16)
    many = list(range(1, 4 * IS_ANY_MAX_RUNS, 2))                # more runs than the comparison path takes
    for ids in ([], [5], [52, 53, 54, 55, 56, 57, 58, 59, 60, 62, 63, 64, 65, 66, 67, 68], [7, 3, 3, 4], many):
        assert np.array_equal(is_any(labels, ids), np.isin(labels, ids)), ids


def test_allocator_tuning_applies_once_and_can_be_turned_off():
    import subprocess
    import sys

    from TumorSynthLib.core.allocator import OPT_OUT_VARIABLE, tune_allocator

    assert tune_allocator() is tune_allocator()                  # idempotent, one bool per process
    code = ("from TumorSynthLib.core import allocator; import TumorSynthLib; print(allocator._applied); "
            "print(allocator.tune_allocator())")
    off = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**__import__("os").environ, OPT_OUT_VARIABLE: "0"}, check=True)
    assert off.stdout.split() == ["None", "False"]               # not applied on import; refused when opted out


def test_bounding_box_is_the_extent_of_the_true_voxels():
    from TumorSynthLib.core.volume import bounding_box

    rng = np.random.default_rng(21)
    for _ in range(200):
        shape = tuple(int(n) for n in rng.integers(1, 10, 3))
        mask = rng.random(shape) < rng.choice([0.0, 0.02, 0.3])
        margin = (1, 0, 2)
        box = bounding_box(mask, margin)
        idx = np.argwhere(mask)
        if idx.size == 0:
            assert box is None
            continue
        lo = np.maximum(idx.min(axis=0) - margin, 0)
        hi = np.minimum(idx.max(axis=0) + 1 + np.asarray(margin), shape)
        assert (box.lo, box.hi) == (tuple(int(v) for v in lo), tuple(int(v) for v in hi))


def _openblas_threads() -> list[int]:
    """Thread counts of the OpenBLAS libraries loaded here (skips the test without any)."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    counts = [i["num_threads"] for i in threadpoolctl.threadpool_info() if i["internal_api"] == "openblas"]
    if not counts:
        pytest.skip("numpy / scipy are not linked to OpenBLAS here")
    return counts


def test_openblas_runs_one_thread_inside_the_synthesis_and_is_restored():
    from TumorSynthLib.core.blas import single_threaded_blas

    openblas_threads = _openblas_threads
    before = openblas_threads()
    with single_threaded_blas():
        assert set(openblas_threads()) == {1}
    assert openblas_threads() == before


def test_the_blas_limit_survives_overlapping_threads():
    """Two threads inside at once, leaving in the other order: the original counts come back
    (threadpoolctl's own limit would restore the 1 the second thread saw)."""
    import threading

    from TumorSynthLib.core.blas import single_threaded_blas

    before = _openblas_threads()
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()

    def first() -> None:
        with single_threaded_blas():
            a_in.set()
            b_in.wait(5)
        a_out.set()

    def second() -> None:
        a_in.wait(5)
        with single_threaded_blas():
            b_in.set()
            a_out.wait(5)

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert _openblas_threads() == before


def test_low_frequencies_of_a_box_are_its_own_unless_a_crop_is_asked_for():
    from TumorSynthLib.synthesis.contracts import Scene

    image = (np.random.default_rng(9).standard_normal((30, 30, 30)) * 20 + 50).astype(np.float32)
    scene = Scene(image, np.zeros(image.shape, np.int16), np.ones(image.shape, bool), np.zeros(image.shape, bool))
    big, small = Box((0, 0, 0), (30, 30, 30)), Box((5, 6, 7), (15, 16, 17))
    scene.low_frequencies(big)
    assert np.array_equal(scene.low_frequencies(small), low_pass(image[small.slices]))       # exact, order-free
    assert np.array_equal(scene.low_frequencies(small, inside_known=True), low_pass(image)[small.slices])
