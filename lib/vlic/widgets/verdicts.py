"""The verdicts behind one pair, as the reward explorer shows them: which judge said what under the current seeds/orders
setting, in words a reader understands (what each reward option really runs here).

**Signs.** A judge is shown the pair in an order: ``A,B`` (p0 first) or ``B,A`` (p1 first, the order swap). Its
rating is about the images *as shown*: negative = the first one shown is closer. So a ``B,A`` row rated +5 prefers A;
the ``prefers`` column undoes the order, and a simulated judge's rationale also speaks of "A" and "B" as shown.
"""

from __future__ import annotations

import html
from typing import Mapping

import numpy as np
import pandas as pd

from vlic.judges.ensemble import JudgeRun, combine
from vlic.judges.reward_variants import RewardVariant, Roles, _subset, judge_key

SIGN_NOTE = ("A judge rates the images <i>as shown</i>: negative = the image shown first is closer. In a "
             "<b>B,A</b> row (order swapped: B shown first) a rating of +5 therefore prefers <b>A</b>; "
             "<i>prefers</i> undoes the order, and a simulated judge's rationale names the images as shown.")


# --- names a reader understands --------------------------------------------------------------------------------------
def judge_label(name: str) -> str:
    """``ms_ssim`` → ``MS-SSIM``; ``sim_vlm(haarpsi)`` → ``simulated VLM (HaarPSI)``; ``vlm`` → ``VLM``."""
    from vlic.judges.metric import METRICS

    if name.startswith("sim_vlm(") and name.endswith(")"):
        inner = name[len("sim_vlm("):-1]
        return f"simulated VLM ({METRICS[inner].label if inner in METRICS else inner})"
    if name in METRICS:
        return METRICS[name].label
    return {"vlm": "VLM", "vlm:direct": "VLM (no-reasoning prompt)"}.get(name, name)


def combination_label(combination: str, roles: Roles) -> str:
    """What a reward combination runs here, e.g. ``lpips → MS-SSIM (offline stand-in for LPIPS)``."""
    def role(name: str) -> str:
        j = roles.resolve(name)
        text = judge_label(j)
        if name == "lpips" and not j.startswith("lpips"):
            text += " (offline stand-in for LPIPS)"
        if name == "vlm" and j.startswith("sim_vlm("):
            text += ", not a real VLM"
        return text

    if combination in ("vlm", "lpips"):
        return f"{combination} → {role(combination)}"
    if combination == "unanimous":
        return f"unanimous: {judge_label(roles.vlm)} and {judge_label(roles.lpips)} agree"
    if combination == "weighted":
        w = roles.weights
        return f"weighted: {w[0]:g}·{judge_label(roles.vlm)} + {w[1]:g}·{judge_label(roles.lpips)} > {roles.margin:g}"
    if combination == "majority":
        return "majority of " + ", ".join(judge_label(roles.resolve(j)) for j in roles.majority)
    return combination


# --- verdicts --------------------------------------------------------------------------------------------------------
def _prefers(rating: float, order: int) -> str:
    if rating is None or np.isnan(rating):
        return "failed"
    if rating == 0:
        return "tie"
    first_closer = rating < 0
    return ("A" if first_closer else "B") if order == 0 else ("B" if first_closer else "A")


def _verdict_word(v: float) -> str:
    return "failed" if np.isnan(v) else "A" if v < 0 else "B" if v > 0 else "tie"


def verdict_table(runs: Mapping[str, JudgeRun], pair: int, variant: RewardVariant) -> pd.DataFrame:
    """The raw verdicts on ``pair`` that ``variant``'s seeds/orders setting asks for, for every judge in ``runs``.

    Columns: judge, used (the judge is part of this reward), seed, shown (``A,B`` or ``B,A``), rating (as shown),
    prefers (A/B after undoing the order, tie, failed), judge verdict (the judge's combined verdict over these rows:
    Σ sign over seeds, see :func:`vlic.judges.ensemble.combine`) and the whole rationale. A deterministic,
    order-free metric is asked once whatever the setting says (one row). Judges of the reward come first.
    """
    in_reward = {judge_key(j, variant.reasoning) for j in variant.judges}
    names = [n for n in runs if n in in_reward] + [n for n in runs if n not in in_reward]
    rows = []
    for name in names:
        run = runs[name]
        raw, _, n_orders = _subset(run, variant.seeds, variant.orders, 0)
        mine = raw[raw["pair"] == pair].sort_values(["seed", "order"])
        verdict = combine(mine, n_orders=n_orders)["verdict"] if len(mine) else pd.Series([np.nan])
        v = float(verdict.iloc[0]) if len(verdict) else float("nan")
        for t in mine.itertuples():
            text = str(t.text) if isinstance(t.text, str) else (str(t.failure) if t.failure else "")
            rows.append({"judge": name, "used": name in in_reward, "seed": int(t.seed),
                         "shown": "A,B" if t.order == 0 else "B,A", "rating": t.rating,
                         "prefers": _prefers(t.rating, int(t.order)),
                         "judge verdict": f"{_verdict_word(v)} (Σ = {v:+g})" if not np.isnan(v) else "failed",
                         "rationale": text})
    return pd.DataFrame(rows, columns=["judge", "used", "seed", "shown", "rating", "prefers", "judge verdict",
                                       "rationale"])


def verdict_html(table: pd.DataFrame, variant: RewardVariant) -> str:
    """The verdict table as HTML: rationale whole and wrapped, rows of judges outside the reward greyed."""
    seeds = "seed 0" if variant.seeds == 1 else f"seeds 0–{variant.seeds - 1}"
    setting = (f"{seeds}, {'both orders' if variant.orders == 2 else 'order A,B only'}"
               if variant.stochastic else "deterministic judges: one verdict each")
    head = "".join(f"<th style='text-align:left;padding:2px 6px'>{html.escape(c)}</th>" for c in
                   ("judge", "in this reward", "seed", "shown", "rating", "prefers", "judge verdict", "rationale"))
    body = []
    for r in table.itertuples(index=False):
        style = "" if r.used else "color:#888"
        rating = "—" if r.rating is None or np.isnan(r.rating) else f"{r.rating:+g}"
        cells = [html.escape(r.judge), "✔ used" if r.used else "not used", str(r.seed), r.shown, rating, r.prefers,
                 html.escape(r[6])]
        tds = "".join(f"<td style='padding:2px 6px;vertical-align:top'>{c}</td>" for c in cells)
        tds += ("<td style='padding:2px 6px;vertical-align:top;white-space:pre-wrap;word-break:break-word;"
                f"max-width:60em;font-family:monospace;font-size:90%'>{html.escape(r.rationale)}</td>")
        body.append(f"<tr style='{style};border-top:1px solid #ddd'>{tds}</tr>")
    return (f"<div style='font-size:90%'><p>Verdicts this setting uses ({html.escape(setting)}). {SIGN_NOTE}</p>"
            f"<table style='border-collapse:collapse'><tr>{head}</tr>{''.join(body)}</table></div>")
