"""Choosing between two codecs from paired per-photo scores: the per-photo difference of each metric with a bootstrap
interval (:func:`vlic.stats.mean_ci`), a verdict per metric, and issue #13's rule for the laptop codec — keep the
better one; when the evidence does not separate them, keep the one preferred on other grounds (``tie``).

A metric counts for a system when the 95 % interval of its paired difference excludes zero in that system's favour;
the system that wins more metrics is kept, and equal counts (every interval containing zero included) keep ``tie``.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from vlic.stats import mean_ci


@dataclass(frozen=True)
class Decision:
    keep: str
    wins: dict[str, list[str]]  # system → the metrics on which it is better beyond noise
    reason: str


def paired_differences(scores: pd.DataFrame, system: str, a: str, b: str, metrics: dict[str, bool],
                       unit: str = "photo", n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """One row per metric: the mean of ``a`` and of ``b`` over ``unit`` (other rows, e.g. seeds, averaged per unit
    first), the mean difference b − a with its bootstrap interval over units, and which system it favours beyond noise.
    ``metrics``: name → True if higher is better."""
    per_unit = scores[scores[system].isin([a, b])].groupby([system, unit])[list(metrics)].mean()
    absent = {a, b} - set(per_unit.index.get_level_values(0))
    if absent:
        raise ValueError(f"no scores of {sorted(absent)} in column {system!r}")
    unpaired = set(per_unit.loc[a].index) ^ set(per_unit.loc[b].index)
    if unpaired:
        raise ValueError(f"paired comparison needs every {unit} scored for both {a!r} and {b!r}; unpaired: {sorted(unpaired)}")
    rows = []
    for metric, higher in metrics.items():
        diff = (per_unit.loc[b][metric] - per_unit.loc[a][metric]).to_numpy()  # aligned on the unit
        mean, lo, hi = mean_ci(diff, n_boot=n_boot, seed=seed)
        better_b = lo > 0 if higher else hi < 0
        better_a = hi < 0 if higher else lo > 0
        rows.append({"metric": metric, "higher_is_better": higher, a: float(per_unit.loc[a][metric].mean()),
                     b: float(per_unit.loc[b][metric].mean()), "difference": mean, "ci_low": lo, "ci_high": hi,
                     "n": len(diff), "favours": b if better_b else a if better_a else "within noise"})
    return pd.DataFrame(rows)


def keep_better(differences: pd.DataFrame, a: str, b: str, tie: str) -> Decision:
    """Issue #13's rule on :func:`paired_differences`: the system better beyond noise on more metrics; else ``tie``."""
    wins = {s: differences.loc[differences.favours == s, "metric"].tolist() for s in (a, b)}
    if len(wins[a]) != len(wins[b]):
        keep = a if len(wins[a]) > len(wins[b]) else b
        reason = (f"{keep} is better beyond noise on {len(wins[keep])} of {len(differences)} metrics "
                  f"({', '.join(wins[keep])}), the other on {len(wins[b if keep == a else a])}")
    else:
        keep = tie
        reason = (f"neither is better beyond noise on more metrics ({a}: {wins[a] or 'none'}, {b}: {wins[b] or 'none'}): "
                  f"within noise, so {tie}")
    return Decision(keep, wins, reason)
