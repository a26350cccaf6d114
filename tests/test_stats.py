"""The one mean-and-bootstrap-interval of the compendium."""

from __future__ import annotations

import numpy as np
import pytest

from vlic.stats import chance_verdict, mean_ci


def test_the_interval_brackets_the_mean():
    m, lo, hi = mean_ci(np.r_[np.ones(80), np.zeros(20)], n_boot=2000, seed=1)
    assert m == 0.8 and 0.7 < lo < 0.8 < hi < 0.9
    m, lo, hi = mean_ci([1.0, 2.0, 3.0, 4.0], n_boot=500, seed=0)
    assert m == 2.5 and 1.0 <= lo < 2.5 < hi <= 4.0


def test_one_value_has_no_interval_and_nan_is_an_error_unless_dropped():
    assert np.isnan(mean_ci([3.0])[1])
    with pytest.raises(ValueError):
        mean_ci([1.0, float("nan")])
    assert mean_ci([1.0, float("nan"), 0.0], n_boot=100, drop_nan=True)[0] == 0.5
    assert all(np.isnan(mean_ci([float("nan")], drop_nan=True)))


def test_same_seed_same_interval():
    v = np.random.default_rng(0).random(30)
    assert mean_ci(v, seed=4) == mean_ci(v, seed=4) != mean_ci(v, seed=5)


def test_an_interval_is_above_below_or_around_chance():
    assert chance_verdict(0.51, 0.7) == "above chance"
    assert chance_verdict(0.383, 0.461) == "below chance"
    assert chance_verdict(0.349, 0.505) == "not distinguishable from chance"
    assert chance_verdict(0.5, 0.6) == "not distinguishable from chance"      # touching chance is not above it
    assert chance_verdict(float("nan"), float("nan")) == "not distinguishable from chance"
    assert chance_verdict(0.2, 0.3, chance=0.25) == "not distinguishable from chance"
