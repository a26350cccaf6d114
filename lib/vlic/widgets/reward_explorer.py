"""The reward explorer (``notebooks/explore_rewards.ipynb``): browse 2AFC pairs with every judge's verdict, switch the
reward combination and watch which pairs it accepts and how often it agrees with ground truth.

Everything the widget shows is made here as plain values, so tests drive it without a browser: the pair is a PNG
(:func:`pair_png`, sent as bytes to a ``widgets.Image`` — never ``plt.show()`` inside an ``Output``, which
sent a blank figure first), the verdicts are a table (:func:`verdict_table`) rendered as HTML with the whole rationale wrapped,
and :func:`summary_figure` is what the summary panel shows (current setting highlighted) and what the headless notebook
saves.

**Signs.** A judge is shown the pair in an order: ``A,B`` (p0 first) or ``B,A`` (p1 first, the order swap). Its
rating is about the images *as shown*: negative = the first one shown is closer. So a ``B,A`` row rated +5 prefers A;
the ``prefers`` column undoes the order, and a simulated judge's rationale also speaks of "A" and "B" as shown.
"""

from __future__ import annotations

import html
import io
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from vlic.data.twoafc import TwoAFCSet
from vlic.judges.ensemble import JudgeRun, combine
from vlic.judges.reward_variants import (RewardVariant, Roles, _subset, is_stochastic, judge_key, parse_variant,
                                         variant_outcome, variant_row)

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


# --- images ----------------------------------------------------------------------------------------------------------
def zoom(img: np.ndarray, factor: int) -> np.ndarray:
    """The central 1/factor of ``img``, enlarged back by nearest-neighbour (pixels stay pixels)."""
    f = max(1, int(factor))
    if f == 1:
        return img
    h, w = img.shape[:2]
    ch, cw = max(1, h // f), max(1, w // f)
    y, x = (h - ch) // 2, (w - cw) // 2
    return np.repeat(np.repeat(img[y : y + ch, x : x + cw], f, axis=0), f, axis=1)


def figure_png(fig: Figure, dpi: int = 100) -> bytes:
    """The figure as PNG bytes (for a ``widgets.Image``); the figure is not shown anywhere else."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def decision_text(label: int, reason: str | None) -> str:
    return "A" if label < 0 else "B" if label > 0 else f"discard ({reason})"


def pair_png(pairs: TwoAFCSet, i: int, zoom_factor: int = 1, panel_px: int = 224) -> bytes:
    """Reference, A (p0) and B (p1) of pair ``i`` side by side as one PNG, each panel enlarged by nearest neighbour to
    about ``panel_px`` (pixels stay pixels) after zooming into the centre, with its name above it."""
    from PIL import Image, ImageDraw, ImageFont

    panels = []
    for img in (pairs.ref[i], pairs.p0[i], pairs.p1[i]):
        z = zoom(np.asarray(img), zoom_factor)
        scale = max(1, panel_px // max(z.shape[:2]))
        panels.append(Image.fromarray(z).resize((z.shape[1] * scale, z.shape[0] * scale), Image.Resampling.NEAREST))
    gap, head = 12, 26
    width = sum(p.width for p in panels) + gap * (len(panels) + 1)
    height = max(p.height for p in panels) + head + gap
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    try:
        font = ImageFont.load_default(size=16)
    except TypeError:  # Pillow < 10.1: fixed-size bitmap font
        font = ImageFont.load_default()
    x = gap
    for panel, name in zip(panels, ("reference", "A (p0)", "B (p1)")):
        draw.text((x + panel.width // 2, head // 2), name, fill="black", font=font, anchor="mm")
        canvas.paste(panel, (x, head))
        x += panel.width + gap
    buf = io.BytesIO()
    canvas.save(buf, format="PNG")
    return buf.getvalue()


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


# --- the whole grid --------------------------------------------------------------------------------------------------
def summary_table(variants: Sequence[RewardVariant], runs: Mapping[str, JudgeRun], pairs: TwoAFCSet,
                  set_name: str = "pairs", n_boot: int = 200) -> pd.DataFrame:
    return pd.DataFrame([variant_row(variant_outcome(v, runs), pairs, set_name, n_boot=n_boot) for v in variants])


def matches(table: pd.DataFrame, variant: RewardVariant) -> np.ndarray:
    """Rows of a summary table that are ``variant`` (a deterministic variant ignores seeds and orders)."""
    same = table["combination"] == variant.combination
    if variant.stochastic:
        same = same & (table["seeds"] == variant.seeds) & (table["orders"] == variant.orders)
    return same.to_numpy(bool)


def summary_figure(table: pd.DataFrame, highlight: RewardVariant | str | None = None,
                   labels: Mapping[str, str] | None = None) -> Figure:
    """Accepted pairs and accuracy of the accepted pairs (95 % CI; self-consistency without ground truth) against
    the number of seeds, one line per combination and order setting; deterministic rewards are flat lines. The
    ``highlight`` variant (the explorer's current setting) is ringed in red. About 1100 × 450 px whatever the grid."""
    labels = dict(labels or {})
    if isinstance(highlight, str):
        hit = table["variant"] == highlight
    elif highlight is not None:
        hit = pd.Series(matches(table, highlight), index=table.index)
    else:
        hit = pd.Series(False, index=table.index)
    truth = "accuracy_kept" in table and table["accuracy_kept"].notna().any()
    fig = Figure(figsize=(11, 4.5), dpi=100)
    ax_kept, ax_acc = fig.subplots(1, 2)
    stoch = table[table["stochastic"]]
    seeds = sorted(stoch["seeds"].dropna().astype(int).unique()) or [1]
    x_lo, x_hi = min(seeds) - 0.3, max(seeds) + 0.3
    combos = list(dict.fromkeys(table["combination"]))
    palette = ["C0", "C1", "C2", "C4", "C5", "C6", "C8", "C9", "C7"]  # no red: red marks the current setting
    for k, combo in enumerate(combos):
        color = palette[k % len(palette)]
        shift = (k - (len(combos) - 1) / 2) * 0.05  # lines that coincide stay visible side by side
        rows = table[table["combination"] == combo]
        name = labels.get(combo, combo)
        if not rows["stochastic"].iloc[0]:
            r = rows.iloc[0]
            ax_kept.hlines(r["kept"], x_lo, x_hi, colors=color, linestyles=":", label=f"{name} (deterministic)")
            y = r["accuracy_kept"] if truth else r["self_consistency"]
            ax_acc.hlines(y, x_lo, x_hi, colors=color, linestyles=":")
            if truth and not np.isnan(r["accuracy_kept_ci_low"]):
                ax_acc.fill_between([x_lo, x_hi], r["accuracy_kept_ci_low"], r["accuracy_kept_ci_high"], color=color,
                                    alpha=0.12, lw=0)
            continue
        for orders, style, dx in ((2, "-", -0.02), (1, "--", 0.02)):
            o = rows[rows["orders"] == orders].sort_values("seeds")
            if o.empty:
                continue
            x = o["seeds"].to_numpy(float) + shift
            ax_kept.plot(x, o["kept"], style, marker="o", ms=4, color=color,
                         label=f"{name}, {'both orders' if orders == 2 else 'one order'}")
            if truth:
                y = o["accuracy_kept"].to_numpy(float)
                ax_acc.errorbar(x + dx, y, yerr=[y - o["accuracy_kept_ci_low"], o["accuracy_kept_ci_high"] - y],
                                fmt=style, marker="o", ms=4, capsize=2, color=color)
            else:
                ax_acc.plot(x, o["self_consistency"], style, marker="o", ms=4, color=color)
    if hit.any():
        h = table[hit].iloc[0]
        k = combos.index(h["combination"])
        shift = (k - (len(combos) - 1) / 2) * 0.05
        hx = float(h["seeds"]) + shift if h["stochastic"] else float(np.mean([x_lo, x_hi]))
        ax_kept.plot([hx], [h["kept"]], "o", ms=16, mfc="none", mec="red", mew=2.5, zorder=5)
        ax_acc.plot([hx], [h["accuracy_kept"] if truth else h["self_consistency"]], "o", ms=16, mfc="none", mec="red",
                    mew=2.5, zorder=5)
        fig.suptitle(f"red ring = current setting: {h['label']}", fontsize=10, color="red")
    n_pairs = int(table["n_pairs"].iloc[0]) if len(table) else 0
    ax_kept.set(xlabel="seeds n", ylabel=f"accepted pairs (of {n_pairs})", xticks=seeds, xlim=(x_lo, x_hi))
    ax_kept.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax_acc.set(xlabel="seeds n", xticks=seeds, xlim=(x_lo, x_hi),
               ylabel="accuracy of accepted (95 % CI)" if truth else "self-consistency (no ground truth)")
    for ax in (ax_kept, ax_acc):
        ax.tick_params(labelsize=9)
        ax.grid(alpha=0.3)
    fig.legend(*ax_kept.get_legend_handles_labels(), loc="lower center", ncol=2, fontsize=8, frameon=False)
    n_rows = (len(ax_kept.get_legend_handles_labels()[1]) + 1) // 2
    fig.tight_layout(rect=(0, min(0.4, 0.03 + 0.045 * n_rows), 1, 0.95))
    return fig


class RewardExplorer:
    """ipywidgets UI: reward / seeds / orders controls with the summary figure, then a pair slider (over the accepted
    pairs only, when asked), a zoom slider, the pair as a PNG and its verdict table."""

    def __init__(self, pairs: TwoAFCSet, runs: Mapping[str, JudgeRun], roles: Roles, combinations: Sequence[str],
                 max_seeds: int, display_px: int = 224, table: pd.DataFrame | None = None):
        import ipywidgets as w

        from vlic.judges.reward_variants import grid

        self.pairs, self.runs, self.roles = pairs, runs, roles
        self.display_px = display_px
        self.labels = {c: combination_label(c, roles) for c in combinations}
        if table is None:
            variants = grid(list(combinations), list(range(1, max(1, int(max_seeds)) + 1)), [1, 2], roles,
                            [roles.vlm], direct=False)
            table = summary_table(variants, runs, pairs)
        self.table = table
        self.w_combo = w.Dropdown(options=[(self.labels[c], c) for c in combinations], value=combinations[0],
                                  description="reward", layout=w.Layout(width="32em"))
        self.w_seeds = w.IntSlider(1, 1, max(1, max_seeds), description="seeds n")
        self.w_orders = w.ToggleButtons(options=[("both orders", 2), ("one order", 1)], value=2)
        self.w_only = w.Checkbox(False, description="accepted pairs only", indent=False)
        self.w_pair = w.SelectionSlider(options=[(str(i), i) for i in range(len(pairs))], value=0, description="pair",
                                        continuous_update=False)
        self.w_zoom = w.IntSlider(1, 1, 8, description="zoom ×", continuous_update=False)
        self.summary_text = w.HTML()
        self.summary_image = w.Image(format="png", layout=w.Layout(max_width="100%"))
        self.pair_title = w.HTML()
        self.pair_image = w.Image(format="png")
        self.verdicts = w.HTML()
        self._quiet = False
        self.w_pair.observe(lambda _: None if self._quiet else self.show_pair(), "value")
        self.w_zoom.observe(lambda _: self.show_pair(), "value")
        self.w_only.observe(lambda _: self._browse(), "value")
        for c in (self.w_combo, self.w_seeds, self.w_orders):
            c.observe(lambda _: self.refresh(), "value")
        self.box = w.VBox([w.HBox([self.w_combo, self.w_seeds, self.w_orders]), self.summary_text, self.summary_image,
                           w.HBox([self.w_pair, self.w_zoom, self.w_only]), self.pair_title, self.pair_image,
                           self.verdicts])
        self.refresh()

    def variant(self) -> RewardVariant:
        return parse_variant(f"{self.w_combo.value}:n{self.w_seeds.value}:o{self.w_orders.value}", self.roles)

    @property
    def browsable(self) -> list[int]:
        """The pairs the slider steps through: all, or only those the current reward accepts."""
        kept = self.outcome.combination.kept
        if self.w_only.value:
            return [int(i) for i in np.flatnonzero(kept)]
        return list(range(len(self.pairs)))

    def refresh(self) -> None:
        """A reward / seeds / orders change: new outcome, summary line and figure, then the pair."""
        v = self.variant()
        self.outcome = variant_outcome(v, self.runs)
        stochastic = any(is_stochastic(j) for j in v.judges)
        self.w_seeds.disabled = self.w_orders.disabled = not stochastic
        row = variant_row(self.outcome, self.pairs, "pairs", n_boot=200)
        acc = (f"accuracy of accepted pairs <b>{row['accuracy_kept']:.3f}</b> "
               f"[{row['accuracy_kept_ci_low']:.3f}, {row['accuracy_kept_ci_high']:.3f}]"
               if "accuracy_kept" in row else "no ground truth in this set")
        self.summary_text.value = (
            f"<b>{html.escape(row['label'])}</b>: {row['kept']} of {row['n_pairs']} pairs accepted, {acc}, "
            f"self-consistency {row['self_consistency']:.3f}, {row['calls_per_accepted']:.1f} judge calls per "
            f"accepted pair" + ("" if stochastic else " — deterministic: seeds and orders do not change it"))
        self.summary_image.value = figure_png(summary_figure(self.table, v, self.labels))
        self._browse()

    def _browse(self) -> None:
        """Point the pair slider at the browsable pairs, staying on the current pair (or the next browsable one)."""
        options = self.browsable
        current = self.w_pair.value
        self._quiet = True
        try:
            if not options:
                self.w_pair.options = [(str(i), i) for i in range(len(self.pairs))]
                self.w_pair.value = current
            else:
                after = [i for i in options if i >= current]
                target = after[0] if after else options[0]
                self.w_pair.options = [(str(i), i) for i in options]
                self.w_pair.value = target
        finally:
            self._quiet = False
        self.show_pair()

    def show_pair(self) -> None:
        i = int(self.w_pair.value)
        p, v, combo = self.pairs, self.outcome.variant, self.outcome.combination
        options = self.browsable
        where = (f"accepted pair {options.index(i) + 1} of {len(options)}" if self.w_only.value and i in options
                 else "the reward accepts no pair: showing all" if self.w_only.value else f"{i + 1} of {len(p)}")
        truth = "" if np.isnan(p.human[i]) else f" · ground truth: fraction preferring B = {p.human[i]:.2f}"
        decision = decision_text(int(combo.label[i]), combo.reason[i])
        self.pair_title.value = (f"<b>pair {i}</b> ({html.escape(str(p.family[i]))}, id {html.escape(str(p.ids[i]))}; "
                                 f"{where}) · this reward says <b>{html.escape(decision)}</b>{truth}")
        self.pair_image.value = pair_png(p, i, self.w_zoom.value, self.display_px)
        self.verdict_rows = verdict_table(self.runs, i, v)
        self.verdicts.value = verdict_html(self.verdict_rows, v)

    def _ipython_display_(self):  # pragma: no cover - display in Jupyter
        from IPython.display import display

        display(self.box)
