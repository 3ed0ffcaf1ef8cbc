"""Blurred salt-noise texture: range, determinism, mm-based smoothing, heterogeneity."""
from __future__ import annotations

import numpy as np
import pytest

from TumorSynthLib.synthesis.texture import ACTIVE_THRESHOLD, make_texture


def _lag1_correlation(a: np.ndarray, axis: int) -> float:
    x = np.moveaxis(a, axis, 0)
    return float(np.corrcoef(x[:-1].ravel(), x[1:].ravel())[0, 1])


def test_texture_range_dtype_and_mean():
    draws: dict = {}
    tex = make_texture((40, 40, 20), (1.0, 1.0, 2.0), np.random.default_rng(0), draws=draws)
    assert tex.dtype == np.float32 and tex.shape == (40, 40, 20)
    assert tex.min() >= 0.0 and tex.max() <= 1.0
    active = tex[tex > ACTIVE_THRESHOLD]
    assert active.mean() == pytest.approx(draws["texture_mean_target"], abs=0.03)
    assert 0.04 <= draws["texture_base"] <= 0.06 and 0.5 <= draws["texture_mean_target"] <= 0.55


def test_texture_is_deterministic_per_generator():
    a = make_texture((30, 30, 30), (1, 1, 1), np.random.default_rng(5))
    b = make_texture((30, 30, 30), (1, 1, 1), np.random.default_rng(5))
    c = make_texture((30, 30, 30), (1, 1, 1), np.random.default_rng(6))
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_sigmas_are_in_mm_per_axis():
    """With 4 mm slices the same mm blur spans fewer voxels along k: lower neighbour correlation."""
    tex = make_texture((60, 60, 60), (1.0, 1.0, 4.0), np.random.default_rng(1), heterogeneity=1.0)
    assert _lag1_correlation(tex, 2) < _lag1_correlation(tex, 0) - 0.1


def test_heterogeneity_flattens_the_texture():
    rng = lambda: np.random.default_rng(3)  # noqa: E731
    full = make_texture((40, 40, 40), (1, 1, 1), rng(), heterogeneity=1.0)
    mild = make_texture((40, 40, 40), (1, 1, 1), rng(), heterogeneity=0.3)
    flat = make_texture((40, 40, 40), (1, 1, 1), rng(), heterogeneity=0.0)
    assert flat.std() < 1e-6
    assert mild.std() == pytest.approx(0.3 * full.std(), rel=0.05)
