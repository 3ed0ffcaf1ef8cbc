"""Order statistics by one ``np.partition``: the median and quantiles of the 10^4-10^5 values a
tumor's grain, parenchyma or necrosis is measured on, several times per tumor, at a fraction
of ``np.median`` / ``np.quantile``'s cost (they sort more than they need and check for NaN; the
callers' values are finite). Same values as numpy's (linear interpolation between order
statistics), up to float rounding."""
from __future__ import annotations

import numpy as np


def fast_median(values: np.ndarray) -> float:
    """The median of finite values (any shape, flattened; ``np.median``'s value; NaN when empty)."""
    values = np.asarray(values).ravel()
    n = values.size
    if n == 0:
        return float("nan")
    k = n // 2
    part = np.partition(values, k)
    upper = float(part[k])
    return upper if n % 2 else 0.5 * (float(part[:k].max()) + upper)


def fast_quantile(values: np.ndarray, q: float) -> float:
    """The ``q`` quantile (0..1) of finite values (any shape, flattened; ``np.quantile``'s
    default linear method; NaN when empty)."""
    values = np.asarray(values).ravel()
    n = values.size
    if n == 0:
        return float("nan")
    position = float(np.clip(q, 0.0, 1.0)) * (n - 1)
    k = int(np.floor(position))
    if k >= n - 1:
        return float(values.max())
    part = np.partition(values, [k, k + 1])
    lo, hi = float(part[k]), float(part[k + 1])
    return lo + (position - k) * (hi - lo)


__all__ = ["fast_median", "fast_quantile"]
