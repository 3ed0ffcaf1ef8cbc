"""The quality-bar scores of held-out diffusion patches (``generative.metrics``), on patches
built here: the surround-fill baseline, and the grain floor that tells whether a sampler with
realistic grain can pass the bar at all."""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from TumorSynthLib.generative.metrics import grain_oracle, score_samples


def _patches(drop: float, noise: float, n: int = 6, seed: int = 0):
    """(truths, masks): a flat organ at 0.3 (window units) with a ball ``drop`` darker, plus grain
    of ``noise`` SD (a 0.7-cell Gaussian of white noise)."""
    rng = np.random.default_rng(seed)
    g = np.indices((32, 32, 32)) - 15.5
    mask = (g ** 2).sum(0) < 8.0 ** 2
    truths = []
    for _ in range(n):
        grain = ndimage.gaussian_filter(rng.normal(0.0, 1.0, mask.shape), 0.7)
        truths.append(0.3 - drop * mask + noise * grain / grain.std())
    return np.stack(truths), np.stack([mask] * n)


def test_a_perfect_sample_scores_zero_and_the_baseline_one():
    truths, masks = _patches(0.2, 0.03)
    scores = score_samples(truths, truths, masks)
    assert scores["mae"] == 0.0 and scores["mean_error"] == 0.0 and scores["mae_ratio"] == 0.0
    fill = np.stack([np.where(m, t[ndimage.binary_dilation(m, iterations=2) & ~m].mean(), t)
                     for t, m in zip(truths, masks)])
    assert abs(score_samples(fill, truths, masks)["mae_ratio"] - 1.0) < 1e-6


def test_the_grain_floor_rises_as_the_tumor_fades_into_the_grain():
    strong = score_samples(*_patches(0.25, 0.04)[:1], *_patches(0.25, 0.04))
    faint = score_samples(*_patches(0.03, 0.04)[:1], *_patches(0.03, 0.04))
    assert strong["grain_floor_ratio"] < 0.5 < 0.6 < faint["grain_floor_ratio"]
    truths, masks = _patches(0.03, 0.04)
    rng = np.random.default_rng(1)
    own_grain = []                        # a sampler with the truth's low frequencies and grain of its own
    for t in truths:
        grain = ndimage.gaussian_filter(rng.normal(0.0, 1.0, t.shape), 0.7)
        grain = 0.04 * grain / grain.std()
        fine = grain - ndimage.gaussian_filter(grain, 1.0, mode="nearest")
        own_grain.append(ndimage.gaussian_filter(t, 1.0, mode="nearest") + fine)
    scores = score_samples(np.stack(own_grain), truths, masks)
    assert abs(scores["mae_ratio"] - faint["grain_floor_ratio"]) < 0.15 * faint["grain_floor_ratio"]


def test_the_oracle_keeps_the_low_frequencies_and_the_grain_strength():
    truths, _ = _patches(0.2, 0.05, n=1)
    oracle = grain_oracle(truths[0])
    low = ndimage.gaussian_filter(truths[0], 1.0, mode="nearest")
    assert np.abs(ndimage.gaussian_filter(oracle, 1.0, mode="nearest") - low).mean() < 0.02
    assert 0.8 < np.std(oracle - low) / np.std(truths[0] - low) < 1.25
    assert not np.allclose(oracle, truths[0], atol=0.01)
