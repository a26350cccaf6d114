"""Zero-shot 2AFC validation of judges (chapter 01): run every judge on every set, then score and compare.

Tables, one row each, ready for seaborn and for ``results/*.csv``:

* :func:`score_table` — 2AFC score per judge × set × subset (distortion family, or ``all``) with bootstrap CIs;
  failed pairs earn chance credit ½ and are counted in ``failure_rate``.
* :func:`seed_curve` — score as a function of the number of seeds used in the self-ensemble.
* :func:`cost_table` — order consistency, failure rate, model calls and seconds per pair, tokens and cost.
* :func:`agreement_table` — pairwise agreement and Cohen's κ of judges' preferences on one set.
* :func:`vote_table` — the unanimous vote of two judges: pairs kept / discarded and, with ground truth, the accuracy
  of the kept pairs next to each judge alone.
"""

from __future__ import annotations

import itertools
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from vlic.data.twoafc import TwoAFCSet, twoafc_credit
from vlic.stats import mean_ci
from vlic.judges.base import Judge
from vlic.judges.cache import VerdictCache
from vlic.judges.ensemble import JudgeRun, agreement, order_consistency, run_judge, unanimous_vote

Runs = Mapping[tuple[str, str], JudgeRun]  # (judge, set) → run


def run_all(judges: Mapping[str, Judge], sets: Mapping[str, TwoAFCSet], *, seeds: int, orders: int,
            cache: VerdictCache, progress: bool = True) -> dict[tuple[str, str], JudgeRun]:
    runs = {}
    for set_name, s in sets.items():
        for name, judge in judges.items():
            runs[(name, set_name)] = run_judge(judge, s.ref, s.p0, s.p1, seeds=seeds, orders=orders, cache=cache,
                                               progress=progress)
    return runs


def _score_rows(judge: str, set_name: str, pairs: pd.DataFrame, s: TwoAFCSet, n_boot: int, seed: int) -> list[dict]:
    credit = twoafc_credit(pairs["preference"].to_numpy(), s.human)
    failed = pairs["preference"].isna().to_numpy()
    fam = np.asarray(s.family)
    rows = []
    for subset in ["all", *sorted(set(s.family))]:
        m = np.ones(len(s), bool) if subset == "all" else fam == subset
        score, lo, hi = mean_ci(credit[m], n_boot=n_boot, seed=seed, drop_nan=True)
        rows.append({"judge": judge, "set": set_name, "subset": subset, "n_pairs": int(m.sum()), "score": score,
                     "ci_low": lo, "ci_high": hi, "failure_rate": float(failed[m].mean()) if m.any() else np.nan})
    return rows


def score_table(runs: Runs, sets: Mapping[str, TwoAFCSet], n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """2AFC score (BAPPS credit) per judge × set × subset, only for sets with ground truth."""
    rows = []
    for (judge, set_name), run in runs.items():
        s = sets[set_name]
        if s.has_ground_truth:
            rows += _score_rows(judge, set_name, run.pairs(), s, n_boot, seed)
    return pd.DataFrame(rows)


def seed_curve(runs: Runs, sets: Mapping[str, TwoAFCSet], n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Score on the whole set using the first k seeds, k = 1..n (deterministic judges: one point, repeated)."""
    rows = []
    for (judge, set_name), run in runs.items():
        s = sets[set_name]
        if not s.has_ground_truth:
            continue
        n_max = max(int(run.raw["seed"].max()) + 1, 1)
        for k in range(1, n_max + 1):
            credit = twoafc_credit(run.pairs(seeds=k)["preference"].to_numpy(), s.human)
            score, lo, hi = mean_ci(credit, n_boot=n_boot, seed=seed, drop_nan=True)
            rows.append({"judge": judge, "set": set_name, "seeds": k, "score": score, "ci_low": lo, "ci_high": hi})
    return pd.DataFrame(rows)


def cost_table(runs: Runs) -> pd.DataFrame:
    rows = []
    for (judge, set_name), run in runs.items():
        raw = run.raw
        n_pairs = int(raw["pair"].nunique())
        failures = raw["failure_kind"].value_counts().to_dict()
        rows.append({
            "judge": judge, "set": set_name, "n_pairs": n_pairs, "seeds": run.n_seeds, "orders": run.n_orders,
            "order_consistency": order_consistency(raw) if run.n_orders == 2 else np.nan,
            "parse_failure_rate": failures.get("parse", 0) / len(raw),
            "other_failure_rate": (failures.get("transport", 0) + failures.get("error", 0)) / len(raw),
            "calls_per_pair": len(raw) / n_pairs,
            "model_s_per_pair": float(raw["latency_s"].sum()) / n_pairs,
            "calls_this_run": run.calls, "cache_hits": run.cache_hits, "wall_s_this_run": run.wall_s,
            "tokens_per_pair": float(raw["tokens_in"].fillna(0).sum() + raw["tokens_out"].fillna(0).sum()) / n_pairs
            if raw["tokens_in"].notna().any() else np.nan,
            "cost_usd": float(raw["cost_usd"].sum()) if raw["cost_usd"].notna().any() else np.nan,
        })
    return pd.DataFrame(rows)


def agreement_table(runs: Runs, set_name: str, families: Sequence[str] | None = None) -> pd.DataFrame:
    """Agreement and κ for every ordered pair of judges on ``set_name`` (diagonal = 1): over all pairs
    (``family == "all"``) and, when ``families`` (the set's per-pair family labels) is given, per family."""
    prefs = {j: r.pairs()["preference"].to_numpy() for (j, s), r in runs.items() if s == set_name}
    groups = {"all": slice(None)}
    if families is not None:
        fam = np.asarray(families)
        groups.update({f: fam == f for f in sorted(set(fam))})
    rows = []
    for group, m in groups.items():
        for j1, j2 in itertools.product(prefs, repeat=2):
            ag = agreement(prefs[j1][m], prefs[j2][m])
            rows.append({"set": set_name, "family": group, "judge_1": j1, "judge_2": j2, **ag})
    return pd.DataFrame(rows)


def vote_table(runs: Runs, sets: Mapping[str, TwoAFCSet], judge_1: str, judge_2: str) -> pd.DataFrame:
    """The unanimous vote of ``judge_1`` and ``judge_2`` on every set both rated."""
    rows = []
    for set_name, s in sets.items():
        if (judge_1, set_name) not in runs or (judge_2, set_name) not in runs:
            continue
        p1 = runs[(judge_1, set_name)].pairs()["preference"].to_numpy()
        p2 = runs[(judge_2, set_name)].pairs()["preference"].to_numpy()
        v = unanimous_vote(p1, p2)
        row = {"set": set_name, "judges": f"{judge_1}+{judge_2}", "n_pairs": len(s), "kept": v.n_kept,
               "discarded_disagree": v.n_disagree, "discarded_tie": v.n_tie, "discarded_failed": v.n_failed,
               "kept_fraction": v.n_kept / len(s) if len(s) else np.nan}
        if s.has_ground_truth:
            row["accuracy_kept"] = float(twoafc_credit(v.label[v.keep], s.human[v.keep]).mean()) if v.n_kept else np.nan
            row[f"accuracy_{judge_1}"] = float(twoafc_credit(p1, s.human).mean())
            row[f"accuracy_{judge_2}"] = float(twoafc_credit(p2, s.human).mean())
        rows.append(row)
    return pd.DataFrame(rows)


def score_by_column(runs: Runs, sets: Mapping[str, TwoAFCSet], set_name: str, column: str) -> pd.DataFrame:
    """Mean 2AFC credit per judge (rows) and value of a per-pair ``column`` of the set's table (columns), e.g. the
    ladder ``gap`` between the two strengths."""
    s = sets[set_name]
    values = s.table()[column].to_numpy()
    rows = []
    for (judge, name), run in runs.items():
        if name != set_name:
            continue
        credit = twoafc_credit(run.pairs()["preference"].to_numpy(), s.human)
        rows += [{"judge": judge, column: v, "score": float(credit[values == v].mean())} for v in sorted(set(values))]
    if not rows:
        return pd.DataFrame()
    return pd.DataFrame(rows).pivot(index="judge", columns=column, values="score")


def summary_json(names: Sequence[str], label: Mapping[str, str], status: Mapping[str, str | None],
                 judges: Mapping[str, Judge], sets: Mapping[str, TwoAFCSet], overall: pd.DataFrame,
                 off_diag: pd.DataFrame, pair_agree: pd.DataFrame, costs: pd.DataFrame, votes: pd.DataFrame,
                 seeds: int, orders: int) -> dict:
    """Chapter 01's ``results/2afc.json``: per judge its status and, when it ran, its score on each set with a CI,
    its mean agreement with the other judges on compressed pairs and its cost; the unanimous vote; mean agreement."""
    summary: dict = {"sets": {k: len(s) for k, s in sets.items()}, "judges": {}, "seeds": seeds, "orders": orders}
    for n in names:
        entry: dict = {"label": label[n], "status": status[n] or "ok"}
        if n in judges:
            for _, r in overall[overall.judge == n].iterrows():
                entry[r.set] = {"score": round(r.score, 4), "ci": [round(r.ci_low, 4), round(r.ci_high, 4)],
                                "failure_rate": round(r.failure_rate, 4)}
            others = off_diag[(off_diag.judge_1 == n) | (off_diag.judge_2 == n)]
            if len(others):
                entry["compressed_mean_agreement"] = round(float(others.agreement.mean()), 4)
            c = costs[costs.judge == n]
            entry["model_calls_this_run"] = int(c.calls_this_run.sum())
            entry["model_s_per_pair"] = round(float((c.model_s_per_pair * c.n_pairs).sum() / c.n_pairs.sum()), 6)
        summary["judges"][n] = entry
    if len(votes):
        summary["unanimous_vote"] = {
            r.set: {k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items() if k != "set" and not pd.isna(v)}
            for _, r in votes.iterrows()
        }
    if len(off_diag):  # mean pairwise agreement of the judges that ran, over all compressed pairs and per codec pair
        summary["compressed_agreement"] = {"all": round(float(off_diag.agreement.mean()), 4),
                                           **pair_agree.groupby("family").agreement.mean().round(4).to_dict()}
    summary["model_calls_this_run"] = int(costs.calls_this_run.sum()) if len(costs) else 0
    return summary


def summary_table(summary: Mapping, gt_sets: Sequence[str]) -> pd.DataFrame:
    """The reader's view of :func:`summary_json`: one row per judge, score [95 % CI] per ground-truth set."""
    return pd.DataFrame([
        {"judge": e["label"], "status": e["status"],
         **{f"{k}: score [95 % CI]": f"{e[k]['score']:.3f} [{e[k]['ci'][0]:.3f}, {e[k]['ci'][1]:.3f}]" if k in e else "—"
            for k in gt_sets},
         "compressed: mean agreement": f"{e['compressed_mean_agreement']:.3f}" if "compressed_mean_agreement" in e else "—",
         "model calls this run": e.get("model_calls_this_run", "—")}
        for e in summary["judges"].values()
    ]).set_index("judge")
