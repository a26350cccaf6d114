"""From chapter 07's rows to its answers: BD-rates per task (RPO vs RDO, RPO vs the best cascade) and averaged,
abnormal tasks, paired differences at equal rate point, and the universal restorer on the held-out degradation.

Conventions are chapter 05's (:mod:`vlic.eval.summary`): photo-averaged rate–quality curves, BD-rate with a
bootstrap over photos or the reason it is undefined. The ``system`` column plays the ``codec`` role.

**Abnormal** (LL-ICM's word): a (task, system, metric) whose photo-averaged quality does *not* improve from the
lower to the higher rate point — e.g. denoising, where more bits keep more of the noise. A task is abnormal for a
metric when RDO or RPO is; abnormal tasks are listed with their curves and left out of the average BD-rate (which
needs monotone curves anyway), never silently.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from vlic.eval.summary import bd_rate_entry, paired_difference
from vlic.stats import mean_ci


def _codec_view(df: pd.DataFrame) -> pd.DataFrame:
    """Rows of one task in :mod:`vlic.eval.summary`'s shape (system → codec, seeds absent)."""
    v = df.rename(columns={"system": "codec"}).copy()
    v["matched"] = v.get("matched", pd.Series(True, index=v.index)).fillna(True).astype(bool)
    v["target_bpp"] = np.nan
    return v


def curves(df: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Photo-averaged (bpp, metric) per task, system and rate point (compressed rows only)."""
    c = df[df.rate_point != "uncompressed"]
    return c.groupby(["task", "system", "rate_point"], sort=False)[["bpp", metric]].mean().reset_index()


def abnormal(df: pd.DataFrame, metrics: Sequence[str], higher_better: dict, systems=("rdo", "rpo")) -> list[dict]:
    """Every (task, system, metric) whose quality does not rise with bpp (sorted by mean bpp)."""
    out = []
    for m in metrics:
        c = curves(df, m)
        for (task, system), g in c[c.system.isin(systems)].groupby(["task", "system"], sort=False):
            g = g.sort_values("bpp")
            q = g[m].to_numpy() * (1 if higher_better[m] else -1)
            if len(q) >= 2 and np.any(np.diff(q) <= 0):
                out.append({"task": task, "system": system, "metric": m, "bpp": g.bpp.round(4).tolist(),
                            "quality": g[m].round(4).tolist()})
    return out


def bd_rates(df: pd.DataFrame, metrics: Sequence[str], higher_better: dict, cascades: Sequence[str],
             n_boot: int = 500, seed: int = 0) -> list[dict]:
    """Per task and metric: RPO vs RDO, and RPO vs every cascade (``best_cascade`` marks, per task and metric, the
    cascade against which RPO saves the least, i.e. the strongest one whose BD-rate is defined)."""
    out = []
    for task, g in df[df.rate_point != "uncompressed"].groupby("task", sort=False):
        view = _codec_view(g)
        for m in metrics:
            e = bd_rate_entry(view, "rdo", "rpo", m, higher_better[m], n_boot, seed)
            out.append({"task": task, "comparison": "rpo_vs_rdo"} | e)
            per = [({"task": task, "comparison": "rpo_vs_cascade"} | bd_rate_entry(view, c, "rpo", m, higher_better[m],
                                                                                   n_boot, seed)) for c in cascades]
            defined = [x for x in per if x["bd_rate"] is not None]
            best = max(defined, key=lambda x: x["bd_rate"]) if defined else None
            for x in per:
                x["best_cascade"] = x is best
            out += per
    return out


def average_bd(entries: list[dict], abnormal_rows: list[dict], comparison: str, metric: str,
               best_cascade_only: bool = True, n_boot: int = 2000, seed: int = 0) -> dict:
    """Mean BD-rate over tasks (interval: bootstrap over tasks) of one comparison and metric, leaving out tasks
    that are abnormal for that metric or whose BD-rate is undefined — each left-out task named with its reason."""
    bad = {(a["task"], a["metric"]) for a in abnormal_rows}
    rows = [e for e in entries if e["comparison"] == comparison and e["metric"] == metric
            and (comparison != "rpo_vs_cascade" or not best_cascade_only or e.get("best_cascade"))]
    used, left_out = [], {}
    tasks = sorted({e["task"] for e in entries if e["comparison"] == comparison and e["metric"] == metric})
    by_task = {e["task"]: e for e in rows}
    for t in tasks:
        e = by_task.get(t)
        if (t, metric) in bad:
            left_out[t] = "abnormal: quality does not rise with bpp"
        elif e is None or e["bd_rate"] is None:
            left_out[t] = (e or {}).get("undefined") or "no cascade has a defined BD-rate"
        else:
            used.append(e)
    head = {"comparison": comparison, "metric": metric, "tasks": [e["task"] for e in used], "left_out": left_out}
    if not used:
        return head | {"bd_rate": None, "undefined": "no task has a defined, normal BD-rate"}
    mean, lo, hi = mean_ci([e["bd_rate"] for e in used], n_boot, seed)
    interval = ("one task: no interval" if len(used) < 2 else
                "bootstrap over tasks" if len(used) > 2 else "bootstrap over only 2 tasks: the range of their values")
    return head | {"bd_rate": round(mean, 3), "ci_low": round(lo, 3), "ci_high": round(hi, 3), "interval": interval}


def equal_rate_differences(df: pd.DataFrame, metrics: Sequence[str], n_boot: int = 2000, seed: int = 0) -> list[dict]:
    """RPO − RDO per task and rate point, paired by photo (bpp included: the two codecs do not write equal bits)."""
    out = []
    for task, g in df[df.system.isin(["rdo", "rpo"])].groupby("task", sort=False):
        view = _codec_view(g)
        for rp in g.rate_point.unique():
            out.append({"task": task, "rate_point": rp} | paired_difference(view, "rpo", "rdo", rp, metrics, n_boot, seed))
    return out


def generalisation(df: pd.DataFrame, task: str, metrics: Sequence[str], n_boot: int = 2000, seed: int = 0) -> dict:
    """On degradation ``task`` (uncompressed): each restorer − the degraded input, and universal − the per-task
    specialist, per metric, paired by photo."""
    g = _codec_view(df[(df.task == task) & (df.rate_point == "uncompressed")])
    out = {}
    for a, b in (("universal", "degraded"), ("task_unet", "degraded"), ("classical", "degraded"),
                 ("universal", "task_unet")):
        d = paired_difference(g, a, b, "uncompressed", metrics, n_boot, seed)
        d.pop("bpp", None)
        out[f"{a}_minus_{b}"] = d
    return out


def _fmt(e: dict) -> str:
    if e.get("bd_rate") is None:
        return f"undefined ({e.get('undefined')})"
    ci = "" if e.get("ci_low") is None or e["ci_low"] != e["ci_low"] else f" [{e['ci_low']:+.1f}, {e['ci_high']:+.1f}]"
    return f"{e['bd_rate']:+.1f} %{ci}"


def answers(averages: list[dict], bd: list[dict], abnormal_rows: list[dict], generalisation_: dict, controller: dict,
            heldout: str, headline_metric: str = "psnr") -> list[str]:
    """The chapter's answers as sentences generated from its tables (nothing typed in by hand)."""
    out = []
    avg = next((a for a in averages if a["comparison"] == "rpo_vs_rdo" and a["metric"] == headline_metric), None)
    if avg is not None:
        if avg.get("bd_rate") is None:
            out.append(f"RPO vs RDO, {headline_metric}: the average BD-rate is undefined ({avg.get('undefined')}).")
        else:
            verdict = ("RPO needs fewer bits than RDO for the same quality" if avg["bd_rate"] < 0
                       else "RPO needs more bits than RDO for the same quality")
            sure = (avg["ci_high"] < 0 or avg["ci_low"] > 0) if avg["ci_low"] == avg["ci_low"] else False
            out.append(f"{verdict}: average BD-rate on {headline_metric} {_fmt(avg)} over tasks "
                       f"{', '.join(avg['tasks'])} ({avg.get('interval')}); "
                       + ("the interval excludes 0" if sure else "the interval includes 0: not established")
                       + (" — but from fewer than 3 tasks, weak evidence." if sure and len(avg["tasks"]) < 3 else ".")
                       + (f" Left out: {avg['left_out']}." if avg["left_out"] else ""))
    others = [a for a in averages if a["comparison"] == "rpo_vs_rdo"]
    if len(others) > 1:
        out.append("Average RPO-vs-RDO BD-rate by metric (negative = RPO saves bits): " + "; ".join(
            f"{a['metric']} " + (f"{_fmt(a)} ({len(a['tasks'])} tasks)" if a.get("bd_rate") is not None
                                 else "undefined") for a in others) + ".")
    per = [e for e in bd if e["comparison"] == "rpo_vs_rdo" and e["metric"] == headline_metric]
    wins = [e["task"] for e in per if e["bd_rate"] is not None and e["bd_rate"] < 0]
    losses = [e["task"] for e in per if e["bd_rate"] is not None and e["bd_rate"] >= 0]
    out.append(f"Per task ({headline_metric}): RPO saves bits on {wins or 'no task'}, costs bits on "
               f"{losses or 'no task'}; " + "; ".join(f"{e['task']} {_fmt(e)}" for e in per) + ".")
    casc = next((a for a in averages if a["comparison"] == "rpo_vs_cascade" and a["metric"] == headline_metric), None)
    if casc is not None:
        out.append(f"RPO vs the strongest cascade per task, {headline_metric}: "
                   + (_fmt(casc) + f" over {', '.join(casc['tasks'])}" if casc.get("bd_rate") is not None
                      else f"undefined ({casc.get('undefined')})")
                   + (f"; left out: {casc['left_out']}" if casc["left_out"] else "") + ".")
    if abnormal_rows:
        out.append("Abnormal (quality does not rise with bits): " + "; ".join(
            f"{a['task']}/{a['system']}/{a['metric']}" for a in abnormal_rows) + ".")
    else:
        out.append("No abnormal task: every RDO and RPO curve improves with bits.")
    g = generalisation_.get("universal_minus_degraded", {}).get(headline_metric)
    s = generalisation_.get("universal_minus_task_unet", {}).get(headline_metric)
    if g is not None:
        helps = g["ci_low"] > 0
        out.append(f"Held-out degradation '{heldout}': the universal restorer changes {headline_metric} by "
                   f"{g['delta']:+.3f} [{g['ci_low']:+.3f}, {g['ci_high']:+.3f}] vs the degraded input "
                   + ("— it generalises (interval above 0)" if helps else "— no generalisation established")
                   + (f"; vs a specialist trained on it: {s['delta']:+.3f} [{s['ci_low']:+.3f}, {s['ci_high']:+.3f}]"
                      if s is not None else "") + ".")
    out.append(f"Controller: {controller['accuracy']:.1%} of {controller['n']} holdout crops get their degradation "
               f"type right; the never-seen '{heldout}' is taken for {controller['heldout_taken_for']}.")
    return out
