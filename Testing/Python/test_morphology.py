"""``core.morphology`` gives exactly scipy's binary dilation / erosion / opening (false beyond
the array), for the cross, anisotropic balls and a few iterations, on random masks touching
the array's edges."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from TumorSynthLib.core.morphology import dilate, erode, opening


def _ball(half):
    g = np.ogrid[tuple(slice(-h, h + 1) for h in half)]
    return sum((gi / max(h, 1)) ** 2 for gi, h in zip(g, half)) <= 1.0


@pytest.mark.parametrize("structure", [None, np.ones((3, 3, 3), bool), _ball((2, 2, 1)), _ball((3, 1, 2)),
                                       np.ones((1, 1, 3), bool)], ids=["cross", "cube", "ball221", "ball312", "line"])
@pytest.mark.parametrize("iterations", [1, 2])
def test_equal_to_scipy(structure, iterations):
    rng = np.random.default_rng(iterations)
    for shape, level in (((23, 17, 9), 0.5), ((8, 30, 12), 0.62), ((4, 5, 3), 0.4)):
        mask = ndimage.gaussian_filter(rng.random(shape), 1.2) > level
        before = mask.copy()
        kwargs = {} if structure is None else {"structure": structure}
        assert np.array_equal(dilate(mask, structure, iterations), ndimage.binary_dilation(mask, iterations=iterations, **kwargs))
        assert np.array_equal(erode(mask, structure, iterations), ndimage.binary_erosion(mask, iterations=iterations, **kwargs))
        assert np.array_equal(opening(mask, structure), ndimage.binary_opening(mask, **kwargs))
        assert np.array_equal(mask, before)


def test_full_mask_erodes_from_the_edges_and_bad_elements_are_refused():
    full = np.ones((5, 6, 7), bool)
    assert np.array_equal(erode(full), ndimage.binary_erosion(full))
    assert not erode(full, np.ones((3, 3, 3), bool), 3).any()
    with pytest.raises(ValueError, match="symmetric"):
        dilate(full, np.ones((2, 3, 3), bool))
    lopsided = np.zeros((3, 3, 3), bool)
    lopsided[1, 1, 1] = lopsided[2, 1, 1] = True
    with pytest.raises(ValueError, match="symmetric"):
        erode(full, lopsided)


def test_edge_cases_of_the_elements_and_iterations():
    mask = np.zeros((4, 5), bool)
    mask[1, 2] = True                                               # 2D: the 2D cross by default
    assert np.array_equal(dilate(mask), ndimage.binary_dilation(mask))
    big = np.ones((9, 9, 9), bool)                                  # element larger than the array
    small = np.zeros((3, 2, 4), bool)
    small[1, 0, 2] = True
    assert np.array_equal(dilate(small, big), ndimage.binary_dilation(small, big))
    assert not erode(np.ones((3, 2, 4), bool), big).any()
    with pytest.raises(ValueError, match="iterations"):
        dilate(small, iterations=0)
