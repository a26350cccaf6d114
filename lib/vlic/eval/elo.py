"""Elo ratings from pairwise comparisons, fitted as a Bradley–Terry model (maximum a posteriori).

Each comparison is ``(player_a, player_b, score_a)`` with ``score_a`` ∈ {1, 0.5, 0}. Under Bradley–Terry,
P(a beats b) = σ(θ_a − θ_b); a draw counts half a win for each side. We maximise the log-likelihood with a weak
Gaussian prior (``prior`` = its precision, default 0.01 on the natural-log scale) so that a player who wins every
comparison still gets a finite rating, then report Elo = 1000 + 400·log10(e)·(θ − mean θ): a 400-point gap means
10:1 odds, and the mean rating is 1000. Unlike online Elo updates, the result does not depend on comparison order.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import combinations

import numpy as np
from scipy.optimize import minimize

ELO_SCALE = 400.0 / np.log(10.0)


def _index(comparisons: list[tuple[str, str, float]]) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    players = sorted({p for a, b, _ in comparisons for p in (a, b)})
    pos = {p: k for k, p in enumerate(players)}
    a = np.array([pos[c[0]] for c in comparisons], dtype=np.int64)
    b = np.array([pos[c[1]] for c in comparisons], dtype=np.int64)
    s = np.array([float(c[2]) for c in comparisons], dtype=np.float64)
    return players, a, b, s


def _validate(comparisons: Iterable) -> list[tuple[str, str, float]]:
    out = []
    for k, c in enumerate(comparisons):
        try:
            a, b, s = c
        except (TypeError, ValueError):
            raise ValueError(f"comparison #{k} is {c!r}; expected (player_a, player_b, score_a)") from None
        if float(s) not in (0.0, 0.5, 1.0):
            raise ValueError(f"comparison #{k} ({a} vs {b}) has score {s!r}; expected 1, 0.5 or 0")
        if a == b:
            raise ValueError(f"comparison #{k} pits '{a}' against itself")
        out.append((str(a), str(b), float(s)))
    if not out:
        raise ValueError("no comparisons given")
    return out


def _fit(n: int, a: np.ndarray, b: np.ndarray, s: np.ndarray, prior: float, x0: np.ndarray | None = None) -> np.ndarray:
    """MAP Bradley–Terry strengths of players 0..n−1 from index arrays (mean 0); ``x0`` warm-starts the (convex)
    optimisation."""

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        d = theta[a] - theta[b]
        # −[s log σ(d) + (1−s) log σ(−d)] = softplus(−d) + (1−s)·d
        nll = np.logaddexp(0.0, -d) + (1.0 - s) * d
        g_d = -1.0 / (1.0 + np.exp(d)) + (1.0 - s)
        grad = np.bincount(a, g_d, n) - np.bincount(b, g_d, n) + prior * theta
        return float(nll.sum() + 0.5 * prior * theta @ theta), grad

    res = minimize(loss, np.zeros(n) if x0 is None else x0, jac=True, method="L-BFGS-B", options={"maxiter": 1000, "gtol": 1e-10})
    return res.x - res.x.mean()


def bradley_terry(comparisons: Iterable, prior: float = 0.01) -> dict[str, float]:
    """Bradley–Terry strengths θ (natural-log scale, mean 0) by MAP estimation."""
    comps = _validate(comparisons)
    players, a, b, s = _index(comps)
    return dict(zip(players, _fit(len(players), a, b, s, prior).tolist()))


def elo_ratings(comparisons: Iterable, prior: float = 0.01) -> dict[str, float]:
    """Elo ratings (400·log10 scale, mean 1000) of every player in ``comparisons``."""
    return {p: 1000.0 + ELO_SCALE * t for p, t in bradley_terry(comparisons, prior).items()}


def elo_bootstrap(comparisons: Iterable, n_boot: int = 1000, seed: int = 0, prior: float = 0.01, level: float = 0.95,
                  clusters=None):
    """Point ratings and percentile bootstrap CIs (comparisons resampled with replacement).

    ``clusters`` (one label per comparison, e.g. the image patch all codecs were compared on) resamples whole
    clusters instead of single comparisons, so the interval reflects the number of independent items.
    Returns ``{player: {"elo": r, "ci_low": lo, "ci_high": hi}}``.
    """
    comps = _validate(comparisons)
    point = elo_ratings(comps, prior)
    rng = np.random.default_rng(seed)
    if clusters is None:
        groups = [np.array([k]) for k in range(len(comps))]
    else:
        labels = np.asarray(clusters)
        if labels.shape[0] != len(comps):
            raise ValueError(f"{len(comps)} comparisons but {labels.shape[0]} cluster labels")
        _, inv = np.unique(labels, return_inverse=True)
        order = np.argsort(inv, kind="stable")
        groups = np.split(order, np.cumsum(np.bincount(inv))[:-1])
    players, a, b, s = _index(comps)
    theta_point = np.array([(point[p] - 1000.0) / ELO_SCALE for p in players])
    draws = {p: [] for p in point}
    for _ in range(n_boot):
        idx = np.concatenate([groups[g] for g in rng.integers(0, len(groups), len(groups))])
        present = np.unique(np.concatenate([a[idx], b[idx]]))  # players absent from a resample get no rating
        theta = _fit(len(present), np.searchsorted(present, a[idx]), np.searchsorted(present, b[idx]), s[idx], prior,
                     x0=theta_point[present])
        for k, t in zip(present, theta):
            draws[players[k]].append(1000.0 + ELO_SCALE * t)
    q = (1 - level) / 2
    return {
        p: {"elo": point[p], "ci_low": float(np.quantile(v, q)), "ci_high": float(np.quantile(v, 1 - q))}
        for p, v in draws.items()
    }


def pairwise_comparisons(distances: dict[str, np.ndarray], clusters: Sequence) -> tuple[list[tuple[str, str, float]], np.ndarray]:
    """Every pair of players on every item, scored by which reconstruction is closer (``distances[player][i]``,
    lower = closer; equal = draw). Returns (comparisons (a, b, score_a), cluster of each comparison)."""
    players = list(distances)
    n = len(clusters)
    for p in players:
        if len(distances[p]) != n:
            raise ValueError(f"player '{p}' has {len(distances[p])} distances for {n} items")
    comps, cl = [], []
    for a, b in combinations(players, 2):
        da, db = np.asarray(distances[a], float), np.asarray(distances[b], float)
        score = np.where(da < db, 1.0, np.where(da > db, 0.0, 0.5))
        comps += [(a, b, float(s)) for s in score]
        cl += list(clusters)
    return comps, np.asarray(cl)


def patch_tournament(judge, rec, photos: dict[str, np.ndarray], boxes: dict[str, list[tuple[int, int]]], patch: int,
                     seeds: Sequence[int], rate_point: str, players: Sequence[str], n_boot: int = 1000,
                     seed: int = 0) -> dict[str, dict[str, float]]:
    """Elo of ``players`` (codecs of a :class:`~vlic.eval.benchmark.Reconstructions` ``rec``) at ``rate_point``: on every
    patch (``boxes`` of every photo) and decoding seed, every two players are compared by ``judge.distances`` to the
    original patch (closer wins); ratings with a bootstrap over patches (all seeds and pairs of a patch together).
    A codec decoded with fewer seeds (a deterministic classical codec) plays its one reconstruction for every seed."""
    from vlic.data.splits import cut_patches

    refs = {p: cut_patches(px, boxes[p], patch) for p, px in photos.items()}
    items = [(p, k, s) for p in photos for k in range(len(boxes[p])) for s in seeds]
    distances = {}
    for c in players:
        have = {k[3] for k in rec.pixels if k[0] == c and k[1] == rate_point}
        cut = {(p, s): cut_patches(rec.pixels[(c, rate_point, p, s if s in have else min(have))], boxes[p], patch)
               for p in photos for s in seeds}
        distances[c] = judge.distances([refs[p][k] for p, k, s in items], [cut[(p, s)][k] for p, k, s in items])
    comps, clusters = pairwise_comparisons(distances, [f"{p}/{k}" for p, k, s in items])
    return elo_bootstrap(comps, n_boot=n_boot, seed=seed, clusters=clusters)
