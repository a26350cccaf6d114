"""bd_rate and elo_ratings, each checked against a second, independent implementation."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.interpolate import PchipInterpolator

from vlic.eval.elo import bradley_terry, elo_bootstrap, elo_ratings
from vlic.eval.ratedistortion import bd_rate


def _bd_rate_vceg_m33(r1, d1, r2, d2) -> float:
    """Bjøntegaard's original VCEG-M33 recipe: cubic polynomial fit of log-rate over quality, integrated."""
    l1, l2 = np.log(r1), np.log(r2)
    p1, p2 = np.polyfit(d1, l1, 3), np.polyfit(d2, l2, 3)
    lo, hi = max(min(d1), min(d2)), min(max(d1), max(d2))
    i1, i2 = np.polyint(p1), np.polyint(p2)
    avg = ((np.polyval(i2, hi) - np.polyval(i2, lo)) - (np.polyval(i1, hi) - np.polyval(i1, lo))) / (hi - lo)
    return (np.exp(avg) - 1) * 100


def _bd_rate_pchip(r1, d1, r2, d2) -> float:
    """Second implementation with scipy's PCHIP, integrated numerically."""
    f1, f2 = PchipInterpolator(d1, np.log(r1)), PchipInterpolator(d2, np.log(r2))
    lo, hi = max(min(d1), min(d2)), min(max(d1), max(d2))
    x = np.linspace(lo, hi, 200001)
    return (np.exp(np.trapezoid(f2(x) - f1(x), x) / (hi - lo)) - 1) * 100


ANCHOR = ([0.1, 0.2, 0.4, 0.8], [28.0, 31.0, 34.0, 37.0])
TEST = ([0.09, 0.18, 0.36, 0.72], [28.2, 31.1, 34.0, 37.1])


def test_uniform_rate_saving_is_exact():
    # the test codec needs 10 % fewer bits at every quality → BD-rate is exactly −10 %
    assert bd_rate([0.1, 0.2], [28, 31], [0.09, 0.18], [28, 31]) == pytest.approx(-10.0, abs=1e-9)
    assert bd_rate(*ANCHOR, [r * 1.25 for r in ANCHOR[0]], ANCHOR[1]) == pytest.approx(25.0, abs=1e-9)


def test_matches_vceg_m33_cubic():
    assert bd_rate(*ANCHOR, *TEST, method="cubic") == pytest.approx(_bd_rate_vceg_m33(*ANCHOR, *TEST), abs=1e-6)


def test_default_matches_an_independent_pchip_for_two_and_three_points():
    for k in (2, 3):
        a = (ANCHOR[0][:k], ANCHOR[1][:k])
        t = (TEST[0][:k], TEST[1][:k])
        assert bd_rate(*a, *t) == pytest.approx(_bd_rate_pchip(*a, *t), abs=1e-4)


def test_four_points_use_akima_close_to_the_others():
    v = bd_rate(*ANCHOR, *TEST)
    assert v == pytest.approx(-11.5117, abs=1e-3)
    assert abs(v - _bd_rate_vceg_m33(*ANCHOR, *TEST)) < 0.05


@pytest.mark.parametrize(
    "args, match",
    [
        (([0.1], [30], [0.1], [30]), "at least 2"),
        (([0.1, 0.2], [30, 29], [0.1, 0.2], [30, 31]), "increase strictly"),
        (([0.1, 0.2], [20, 21], [0.1, 0.2], [30, 31]), "do not overlap"),
        (([0.0, 0.2], [20, 21], [0.1, 0.2], [20, 21]), "positive"),
    ],
)
def test_bad_curves_are_refused(args, match):
    with pytest.raises(ValueError, match=match):
        bd_rate(*args)


def _bt_by_logistic_regression(comparisons, prior):
    """Second implementation: Bradley–Terry as L2-regularised logistic regression in scikit-learn."""
    from sklearn.linear_model import LogisticRegression

    players = sorted({p for a, b, _ in comparisons for p in (a, b)})
    pos = {p: k for k, p in enumerate(players)}
    X, y, w = [], [], []
    for a, b, s in comparisons:
        row = np.zeros(len(players))
        row[pos[a]], row[pos[b]] = 1.0, -1.0
        for label, weight in ((1, s), (0, 1 - s)):
            if weight > 0:
                X.append(row), y.append(label), w.append(weight)
    model = LogisticRegression(C=1.0 / prior, fit_intercept=False, tol=1e-12, max_iter=10000)
    model.fit(np.array(X), np.array(y), sample_weight=np.array(w))
    theta = model.coef_[0] - model.coef_[0].mean()
    return dict(zip(players, theta))


def _league(seed=0, n=300):
    rng = np.random.default_rng(seed)
    true = {"pretrained": 0.0, "dpo": 0.6, "jpeg": -0.8, "webp": -0.3}
    names = list(true)
    comps = []
    for _ in range(n):
        a, b = rng.choice(names, 2, replace=False)
        p = 1 / (1 + np.exp(-(true[a] - true[b])))
        u = rng.random()
        comps.append((a, b, 0.5 if abs(u - p) < 0.03 else float(u < p)))
    return comps


def test_bradley_terry_matches_logistic_regression():
    comps = _league()
    ours = bradley_terry(comps, prior=0.01)
    ref = _bt_by_logistic_regression(comps, prior=0.01)
    for p in ours:
        assert ours[p] == pytest.approx(ref[p], abs=1e-4)


def test_elo_scale_and_mean():
    r = elo_ratings([("a", "b", 1.0)] * 10 + [("a", "b", 0.0)] * 10)
    assert r == pytest.approx({"a": 1000.0, "b": 1000.0})
    r = elo_ratings(_league())
    assert np.mean(list(r.values())) == pytest.approx(1000.0)
    assert r["dpo"] > r["pretrained"] > r["webp"] > r["jpeg"]
    # 10:1 odds ↔ 400 points (weak prior → almost exactly)
    r = elo_ratings([("a", "b", 1.0)] * 100 + [("a", "b", 0.0)] * 10, prior=1e-9)
    assert r["a"] - r["b"] == pytest.approx(400.0, abs=0.5)


def test_unbeaten_player_gets_a_finite_rating_and_order_does_not_matter():
    comps = [("a", "b", 1.0)] * 5 + [("b", "c", 0.5)] * 4
    r1, r2 = elo_ratings(comps), elo_ratings(comps[::-1])
    assert all(np.isfinite(v) for v in r1.values())
    assert r1 == pytest.approx(r2)


def test_bootstrap_ci_brackets_the_point():
    ci = elo_bootstrap(_league(n=120), n_boot=60, seed=1)
    for v in ci.values():
        assert v["ci_low"] <= v["elo"] <= v["ci_high"]


@pytest.mark.parametrize("bad, match", [([("a", "b", 2)], "score"), ([("a", "a", 1)], "itself"), ([], "no comparisons"), ([("a", 1)], "expected")])
def test_bad_comparisons(bad, match):
    with pytest.raises(ValueError, match=match):
        elo_ratings(bad)


@pytest.mark.parametrize("wins,games", [(7, 10), (5, 10), (10, 10), (23, 40)])
def test_elo_intervals_match_an_exact_bootstrap_written_independently(wins, games):
    """Two players, ``wins`` of ``games`` to A. Resampling games with replacement makes A's wins Binomial(games,
    wins/games); for each possible count the MAP rating difference solves, in one dimension,
    k − n·σ(d) = prior·d/2 (θ_A = d/2, θ_B = −d/2, Gaussian prior of precision ``prior`` on each). The exact
    percentile bootstrap — quantiles of that discrete distribution — must match elo_bootstrap's interval, and a
    lower bound is never pinned at 1000 unless the data are."""
    from scipy.optimize import brentq
    from scipy.stats import binom

    prior, level = 0.01, 0.95
    scale = 400.0 / np.log(10.0)

    def elo_a(k: int) -> float:
        d = brentq(lambda d: k - games / (1.0 + np.exp(-d)) - prior * d / 2, -60, 60)
        return 1000.0 + scale * d / 2

    values = np.array([elo_a(k) for k in range(games + 1)])
    pmf = binom.pmf(np.arange(games + 1), games, wins / games)
    cdf = np.cumsum(pmf)

    def exact_quantile(q: float) -> float:   # inverse CDF of the discrete bootstrap distribution
        return float(values[np.searchsorted(cdf, q - 1e-12)])

    comps = [("A", "B", 1.0)] * wins + [("A", "B", 0.0)] * (games - wins)
    got = elo_bootstrap(comps, n_boot=4000, seed=1)
    assert got["A"]["elo"] == pytest.approx(elo_a(wins), abs=1e-3)
    assert got["A"]["elo"] + got["B"]["elo"] == pytest.approx(2000.0, abs=1e-6)
    step = np.diff(values).max()   # neighbouring counts: the sampled quantile may sit one count away at a CDF step
    assert abs(got["A"]["ci_low"] - exact_quantile((1 - level) / 2)) <= step + 1e-6
    assert abs(got["A"]["ci_high"] - exact_quantile(1 - (1 - level) / 2)) <= step + 1e-6
    assert got["B"]["ci_low"] == pytest.approx(2000.0 - got["A"]["ci_high"], abs=1e-3)
    if 0 < wins < games:
        assert got["A"]["ci_low"] < got["A"]["elo"] < got["A"]["ci_high"]
        assert got["B"]["ci_low"] < 1000.0 or got["A"]["ci_low"] < 1000.0
