"""The quality bar of methods.md section 3, measured on held-out patches.

For each patch (window units) the model fills the conditioning mask from the masked patch (the
mean of ``chains`` chains, by default the ``diffusion`` appearance's ``DEFAULT_CHAINS``); then,
inside the mask:

* ``mae``: mean absolute error of the sample against the true patch;
* ``mae_surround_fill``: the same for the baseline that fills the mask with the mean of the
  true patch in a shell of ``SHELL_CELLS`` cells around it (the "surrounding mean");
* ``mae_ratio`` = mean ``mae`` / mean ``mae_surround_fill`` (bar: < 0.6, written for single
  samples: ``chains=1``; the appearance's output is the mean of ``DEFAULT_CHAINS``);
* ``mean_error``: mean over patches of |mean of the sample - mean of the truth| (bar: < 0.15,
  window units; 0.15 = 32 HU);
* ``mae_smooth``: ``mae`` of the sample low-passed by a 1-cell Gaussian (what the appearance
  keeps after ``change_towards``: the scan's own grain replaces the model's);
* ``grain_floor_ratio``: the ``mae_ratio`` of an oracle sampler that gets the truth's low
  frequencies exactly right (1-cell Gaussian) and draws grain as strong as the truth's but
  independent of it (the truth's own high-pass, shifted by ``GRAIN_SHIFT`` cells, wrapping
  around). For faint tumors, where the grain is most of the error, a sampler whose grain is as
  strong as the scan's scores about this or worse, and where it is above the bar only samples
  smoother than the scan can pass. It is an estimate, not a bound: the shifted high-pass also
  moves edges (organ contour, a strong tumor's rim), so with strong tumors a sampler can beat it
  (measured on the shipped model's held-out patches: phantom 0.54, example CT 0.67, all 0.60).

Voxels outside the mask are never changed by the appearance (the paste is in-mask and the
change is zero where the weight is zero), so they are not scored here.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage

from ..synthesis.learned.checkpoint import DiffusionModel
from ..synthesis.learned.config import DEFAULT_CHAINS
from ..synthesis.learned.sampler import InpaintSampler

SHELL_CELLS = 2
QUALITY_BAR = {"mae_ratio": 0.6, "mean_error": 0.15}
#: Cells by which the grain oracle of ``grain_floor_ratio`` shifts the truth's high-pass.
GRAIN_SHIFT = (9, 5, 3)


def surround_fill(image: np.ndarray, mask: np.ndarray, shell: int = SHELL_CELLS) -> float:
    """Mean of ``image`` in a shell of ``shell`` cells around ``mask`` (the rest of the patch
    when the shell is empty)."""
    ring = ndimage.binary_dilation(mask, iterations=shell) & ~mask
    if not ring.any():
        ring = ~mask
    return float(image[ring].mean()) if ring.any() else 0.0


def score_samples(samples: np.ndarray, truths: np.ndarray, masks: np.ndarray) -> dict[str, Any]:
    """The scores of the module docstring for batches (B, n, n, n) of samples, true patches and
    masks (patches whose mask is empty are skipped)."""
    mae, base, err, smooth, floor = [], [], [], [], []
    for s, t, m in zip(samples, truths, masks):
        if not m.any():
            continue
        mae.append(float(np.abs(s[m] - t[m]).mean()))
        base.append(float(np.abs(surround_fill(t, m) - t[m]).mean()))
        err.append(abs(float(s[m].mean() - t[m].mean())))
        low = ndimage.gaussian_filter(s, 1.0, mode="nearest")
        smooth.append(float(np.abs(low[m] - t[m]).mean()))
        floor.append(float(np.abs(grain_oracle(t)[m] - t[m]).mean()))
    if not mae:
        return {"n_patches": 0}
    ratio = float(np.mean(mae) / max(np.mean(base), 1e-8))
    out = {"n_patches": len(mae), "mae": float(np.mean(mae)), "mae_surround_fill": float(np.mean(base)),
           "mae_ratio": ratio, "mae_smooth": float(np.mean(smooth)),
           "mae_smooth_ratio": float(np.mean(smooth) / max(np.mean(base), 1e-8)),
           "mean_error": float(np.mean(err)), "mean_error_max": float(np.max(err)),
           "grain_floor_ratio": float(np.mean(floor) / max(np.mean(base), 1e-8))}
    out["passes"] = bool(ratio < QUALITY_BAR["mae_ratio"] and out["mean_error"] < QUALITY_BAR["mean_error"])
    return out


def grain_oracle(truth: np.ndarray) -> np.ndarray:
    """The oracle sample of ``grain_floor_ratio``: the truth's 1-cell Gaussian low-pass plus its
    high-pass shifted by ``GRAIN_SHIFT`` cells (as strong and as correlated as the truth's grain,
    but not the same grain)."""
    low = ndimage.gaussian_filter(np.asarray(truth, dtype=np.float64), 1.0, mode="nearest")
    return low + np.roll(truth - low, GRAIN_SHIFT, axis=(0, 1, 2))


def sample_patches(model: DiffusionModel, images: np.ndarray, masks: np.ndarray, seed: int,
                   batch: int = 8, sampler: str | None = None, steps: int | None = None,
                   chains: int = DEFAULT_CHAINS) -> np.ndarray:
    """The model's samples (each the mean of ``chains`` chains) for ``images`` (window units)
    with ``masks`` filled, in batches."""
    out = []
    batch = max(1, batch // max(1, int(chains)))      # the denoiser's batch stays ``batch``
    for start in range(0, len(images), batch):
        run = InpaintSampler(model, images[start:start + batch], masks[start:start + batch],
                             seed + start, sampler, steps, chains)
        sample = run.result()
        out.append(sample[None] if sample.ndim == 3 else sample)
    return np.concatenate(out)


def evaluate_patches(model: DiffusionModel, images: np.ndarray, masks: np.ndarray, seed: int = 0,
                     **kwargs: Any) -> dict[str, Any]:
    """``score_samples`` of the model's samples on held-out patches, with the ``chains`` each
    sample averaged (1: single samples, what methods.md's bar is written for)."""
    samples = sample_patches(model, images, masks, seed, **kwargs)
    return {**score_samples(samples, images, masks), "chains": int(kwargs.get("chains", DEFAULT_CHAINS))}


__all__ = ["GRAIN_SHIFT", "QUALITY_BAR", "SHELL_CELLS", "evaluate_patches", "grain_oracle", "sample_patches", "score_samples", "surround_fill"]
