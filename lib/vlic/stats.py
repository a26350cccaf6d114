"""The mean and its percentile-bootstrap interval — used by every chapter that reports a mean over independent units
(2AFC items, photos, pairs of a human study) — and what an interval says about chance (:func:`chance_verdict`)."""

from __future__ import annotations

from typing import Sequence

import numpy as np


def mean_ci(values: Sequence[float], n_boot: int = 2000, seed: int = 0, level: float = 0.95,
            drop_nan: bool = False) -> tuple[float, float, float]:
    """``(mean, low, high)`` of independent values: the percentile bootstrap over them (NaN interval for fewer than 2
    values). NaN values are an error unless ``drop_nan`` (then they are left out, and no value at all gives NaNs)."""
    v = np.asarray(values, dtype=float)
    if drop_nan:
        v = v[~np.isnan(v)]
        if v.size == 0:
            return (float("nan"),) * 3
    if v.size == 0 or not np.all(np.isfinite(v)):
        raise ValueError(f"mean_ci needs finite values, got {v.tolist()}")
    if v.size < 2 or n_boot <= 0:
        return float(v.mean()), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    boot = v[rng.integers(0, v.size, size=(int(n_boot), v.size))].mean(axis=1)
    a = (1 - level) / 2
    lo, hi = np.quantile(boot, [a, 1 - a])
    return float(v.mean()), float(lo), float(hi)


def chance_verdict(ci_low: float, ci_high: float, chance: float = 0.5) -> str:
    """What a win-rate's interval says against ``chance``: "above chance" (the whole interval above it), "below
    chance" (the whole interval below) or "not distinguishable from chance" (the interval contains it, or is NaN)."""
    return ("above chance" if ci_low > chance else "below chance" if ci_high < chance
            else "not distinguishable from chance")
