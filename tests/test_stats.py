"""The one mean-and-bootstrap-interval of the compendium."""

from __future__ import annotations

import numpy as np
import pytest

from vlic.stats import mean_ci


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
