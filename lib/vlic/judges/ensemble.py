"""The paper's protocol around any judge: both orders, n seeds, a combined verdict, and the unanimous vote.

For pair (ref, A, B) and seed i the judge is asked r_AB = rating(ref, A, B) and r_BA = rating(ref, B, A) (each
negative when its *first* candidate is closer). Seen from A's side the swapped answer is −r_BA, so the seed's vote is

    r_i = sign(r_AB − r_BA) ∈ {−1, 0, +1}          (−1: A preferred)

and the pair's verdict is V = Σ_i r_i over the seeds with both orders answered (|V| ≤ n). A seed with a failed
order is a failed seed; a pair with no valid seed is a failed pair (``verdict`` is NaN and ``failure`` says why) —
never a 0. Deterministic judges are asked one seed, antisymmetric ones one order (their other answers are implied).

:func:`run_judge` goes through the :class:`~vlic.judges.cache.VerdictCache` first and writes each new verdict as it
arrives, so an interrupted run resumes and a repeated run makes no model call.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd

from vlic.judges.base import Judge, Query, Verdict
from vlic.judges.cache import VerdictCache, verdict_key
from vlic.judges.combination import combine_judges


@dataclass
class JudgeRun:
    """Every raw verdict of one judge on a set of pairs, plus what this run cost."""

    judge: str
    raw: pd.DataFrame        # one row per (pair, seed, order)
    n_seeds: int             # seeds asked (1 for deterministic judges)
    n_orders: int            # orders asked (1 for antisymmetric judges or when orders=1)
    antisymmetric: bool
    calls: int = 0           # verdicts computed by the model in this run (cache misses)
    cache_hits: int = 0
    wall_s: float = 0.0
    identity: dict = field(default_factory=dict)
    _pairs: dict = field(default_factory=dict, repr=False)

    def pairs(self, seeds: int | None = None) -> pd.DataFrame:
        """The combined verdict per pair (see :func:`combine`), using the first ``seeds`` seeds (all by default)."""
        key = seeds if seeds is not None and seeds < self.n_seeds else None
        if key not in self._pairs:
            self._pairs[key] = combine(self.raw, n_orders=self.n_orders, seeds=key)
        return self._pairs[key]


def queries_for(refs: Sequence[np.ndarray], a: Sequence[np.ndarray], b: Sequence[np.ndarray], seeds: Sequence[int],
                orders: int) -> tuple[list[Query], list[tuple[int, int, int]]]:
    """All queries (pair × seed × order) and their (pair, seed, order) labels. Order 1 shows B first."""
    qs, labels = [], []
    for p in range(len(refs)):
        for s in seeds:
            q = Query(refs[p], a[p], b[p], int(s))
            qs.append(q)
            labels.append((p, int(s), 0))
            if orders == 2:
                qs.append(q.swapped())
                labels.append((p, int(s), 1))
    return qs, labels


def run_judge(
    judge: Judge,
    refs: Sequence[np.ndarray],
    a: Sequence[np.ndarray],
    b: Sequence[np.ndarray],
    *,
    seeds: int = 3,
    orders: int = 2,
    cache: VerdictCache | None = None,
    chunk: int = 512,
    progress: bool = False,
) -> JudgeRun:
    """Ask ``judge`` about every pair (both orders × ``seeds`` seeds), through ``cache``; see the module docstring."""
    if not (len(refs) == len(a) == len(b)):
        raise ValueError(f"refs, a and b differ in length: {len(refs)}, {len(a)}, {len(b)}")
    if orders not in (1, 2) or seeds < 1:
        raise ValueError(f"orders must be 1 or 2 and seeds ≥ 1, got orders={orders}, seeds={seeds}")
    n_seeds = 1 if judge.deterministic else int(seeds)
    n_orders = 1 if (judge.antisymmetric or orders == 1) else 2
    identity = judge.identity()
    cache = cache if cache is not None else VerdictCache(None)
    qs, labels = queries_for(refs, a, b, range(n_seeds), n_orders)
    keys = [verdict_key(identity, q) for q in qs]
    verdicts: list[Verdict | None] = [cache.get(k) for k in keys]
    todo = [i for i, v in enumerate(verdicts) if v is None]
    hits = len(qs) - len(todo)
    t0 = time.perf_counter()
    bar = None
    if progress and todo:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(todo), desc=f"judge {judge.name}")
    for s in range(0, len(todo), chunk):
        part = todo[s : s + chunk]

        def arrived(k: int, v: Verdict, part=part) -> None:
            i = part[k]
            verdicts[i] = v
            cache.put(keys[i], v, judge.name, identity, qs[i].seed)
            if bar is not None:
                bar.update(1)

        judge.judge_many([qs[i] for i in part], on_verdict=arrived)
    if bar is not None:
        bar.close()
    rows = []
    for (p, s, o), v in zip(labels, verdicts):
        assert v is not None
        rows.append({
            "pair": p, "seed": s, "order": o, "rating": v.rating, "failure": v.failure, "failure_kind": v.failure_kind,
            "latency_s": v.latency_s, "tokens_in": v.tokens_in, "tokens_out": v.tokens_out, "cost_usd": v.cost_usd,
            "cached": v.cached, "text": v.text,
        })
    raw = pd.DataFrame(rows)
    raw["rating"] = raw["rating"].astype("float64")
    return JudgeRun(judge.name, raw, n_seeds, n_orders, judge.antisymmetric, calls=len(todo), cache_hits=hits,
                    wall_s=time.perf_counter() - t0, identity=identity)


def combine(raw: pd.DataFrame, n_orders: int = 2, seeds: int | None = None) -> pd.DataFrame:
    """Per pair: ``verdict`` V = Σ_i sign(r_AB − r_BA) over valid seeds (NaN when none), ``preference`` sign(V),
    ``n_valid_seeds``, ``n_consistent`` (seeds whose two orders pick the same image), ``strength`` (mean of
    (r_AB − r_BA)/2, a graded preference), ``failure`` (the first failure met when no seed is valid, else None)."""
    df = raw if seeds is None else raw[raw["seed"] < seeds]
    wide = df.set_index(["pair", "seed", "order"])["rating"].unstack("order")
    r_ab = wide[0]
    r_ba = wide[1] if (n_orders == 2 and 1 in wide.columns) else -r_ab
    valid = r_ab.notna() & r_ba.notna()
    diff = (r_ab - r_ba).where(valid)
    per_seed = pd.DataFrame({
        "vote": np.sign(diff), "strength": diff / 2, "valid": valid,
        "consistent": valid & (np.sign(r_ab) == -np.sign(r_ba)),
    })
    g = per_seed.groupby(level="pair", sort=True)
    n_valid = g["valid"].sum().astype(int)
    verdict = g["vote"].sum(min_count=1)
    out = pd.DataFrame({
        "pair": n_valid.index.to_numpy(), "verdict": verdict.to_numpy(), "preference": np.sign(verdict.to_numpy()),
        "n_valid_seeds": n_valid.to_numpy(), "n_consistent": g["consistent"].sum().astype(int).to_numpy(),
        "strength": g["strength"].mean().to_numpy(),
    })
    first_failure = df[df["rating"].isna()].groupby("pair", sort=True)["failure"].first()
    out["failure"] = [first_failure.get(p) if n == 0 else None for p, n in zip(out["pair"], out["n_valid_seeds"])]
    return out


def order_consistency(raw: pd.DataFrame) -> float:
    """Fraction of (pair, seed) with both orders answered where the judge picks the same image in both orders."""
    if raw["order"].nunique() < 2:
        return 1.0
    wide = raw.pivot_table(index=["pair", "seed"], columns="order", values="rating", aggfunc="first").dropna()
    if wide.empty:
        return float("nan")
    return float((np.sign(wide[0]) == -np.sign(wide[1])).mean())


@dataclass(frozen=True)
class Vote:
    """The unanimous vote of two judges over the same pairs."""

    keep: np.ndarray        # bool per pair: both answered, both strict, same side
    label: np.ndarray       # −1 (A) / +1 (B) where kept, 0 elsewhere
    n_kept: int
    n_disagree: int         # both strict, opposite sides → discarded
    n_tie: int              # at least one judge without preference → discarded
    n_failed: int           # at least one judge without a verdict → discarded

    @property
    def n_discarded(self) -> int:
        return self.n_disagree + self.n_tie + self.n_failed


def unanimous_vote(pref_1: Sequence[float], pref_2: Sequence[float]) -> Vote:
    """Keep a pair only when both judges prefer the same candidate (the paper keeps reward pairs on which the VLM
    and LPIPS agree): the ``unanimous`` rule of :func:`vlic.judges.combination.combine_judges` for two judges, as
    counts. Inputs: verdicts or preferences per pair (sign used; NaN = failed)."""
    c = combine_judges("unanimous", {"judge 1": pref_1, "judge 2": pref_2})
    d = c.discards()
    return Vote(c.kept, c.label, c.n_kept, d.get("disagreement", 0), d.get("tie", 0), d.get("failure", 0))


def agreement(pref_1: Sequence[float], pref_2: Sequence[float]) -> dict:
    """Agreement of two judges' preferences on the pairs both answered: raw rate (ties count as a side of their
    own) and Cohen's κ over the three outcomes {A, tie, B}."""
    p1 = np.sign(np.asarray(pref_1, dtype=float))
    p2 = np.sign(np.asarray(pref_2, dtype=float))
    ok = ~(np.isnan(p1) | np.isnan(p2))
    p1, p2 = p1[ok], p2[ok]
    n = int(ok.sum())
    if n == 0:
        return {"n": 0, "agreement": float("nan"), "kappa": float("nan")}
    po = float((p1 == p2).mean())
    pe = float(sum((p1 == c).mean() * (p2 == c).mean() for c in (-1.0, 0.0, 1.0)))
    kappa = (po - pe) / (1 - pe) if pe < 1 else float("nan")
    return {"n": n, "agreement": po, "kappa": kappa}
