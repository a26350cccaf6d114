"""The reward explorer (``notebooks/explore_rewards.ipynb``): browse 2AFC pairs with every judge's verdict, switch the
reward combination and watch which pairs it accepts and how often it agrees with ground truth.

:func:`summary_figure` is what the widget's summary panel shows and what the headless notebook saves.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from vlic.data.twoafc import TwoAFCSet
from vlic.judges.ensemble import JudgeRun
from vlic.judges.reward_variants import RewardVariant, Roles, parse_variant, variant_outcome, variant_row


def zoom(img: np.ndarray, factor: int) -> np.ndarray:
    """The central 1/factor of ``img``, enlarged back by nearest-neighbour (pixels stay pixels)."""
    f = max(1, int(factor))
    if f == 1:
        return img
    h, w = img.shape[:2]
    ch, cw = max(1, h // f), max(1, w // f)
    y, x = (h - ch) // 2, (w - cw) // 2
    return np.repeat(np.repeat(img[y : y + ch, x : x + cw], f, axis=0), f, axis=1)


def pair_verdicts(runs: Mapping[str, JudgeRun], pair: int) -> pd.DataFrame:
    """Every raw verdict of every judge on one pair: seed, order, rating, rationale (VLM or simulated judge)."""
    rows = []
    for name, run in runs.items():
        r = run.raw[run.raw["pair"] == pair]
        for t in r.itertuples():
            text = t.text or ""
            rows.append({"judge": name, "seed": t.seed, "order": "A,B" if t.order == 0 else "B,A",
                         "rating": t.rating, "failure": t.failure,
                         "rationale": text.split("\nRATING")[0][:300] if "sim_vlm" in name or name.startswith("vlm")
                         else text[:120]})
    return pd.DataFrame(rows)


def summary_table(variants: Sequence[RewardVariant], runs: Mapping[str, JudgeRun], pairs: TwoAFCSet,
                  set_name: str = "pairs", n_boot: int = 200) -> pd.DataFrame:
    return pd.DataFrame([variant_row(variant_outcome(v, runs), pairs, set_name, n_boot=n_boot) for v in variants])


def summary_figure(table: pd.DataFrame, highlight: str | None = None):
    """Kept pairs and (with ground truth) accuracy of the kept pairs per variant; ``highlight`` marks one."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 0.35 * max(6, len(table)) + 1.2))
    y = np.arange(len(table))
    colors = ["C3" if v == highlight else "C0" for v in table["variant"]]
    labels = [("SIM " if "sim_vlm" in j else "") + l for l, j in zip(table["label"], table["judges"])]
    axes[0].barh(y, table["kept"], color=colors)
    axes[0].set_yticks(y, labels, fontsize=7)
    axes[0].invert_yaxis()
    axes[0].set_xlabel("accepted pairs")
    if "accuracy_kept" in table:
        axes[1].errorbar(table["accuracy_kept"], y, xerr=[table["accuracy_kept"] - table["accuracy_kept_ci_low"],
                         table["accuracy_kept_ci_high"] - table["accuracy_kept"]], fmt="o", capsize=3)
        axes[1].set_xlabel("accuracy of accepted pairs (95 % CI)")
    else:
        axes[1].barh(y, table["self_consistency"], color=colors)
        axes[1].set_xlabel("self-consistency (no ground truth in this set)")
    axes[1].set_yticks(y, [])
    axes[1].invert_yaxis()
    fig.suptitle("reward variants on these pairs (SIM = simulated judge, not a VLM)", fontsize=10)
    fig.tight_layout()
    return fig


class RewardExplorer:
    """ipywidgets UI: a pair slider, a zoom slider, the combination / seeds / order controls."""

    def __init__(self, pairs: TwoAFCSet, runs: Mapping[str, JudgeRun], roles: Roles, combinations: Sequence[str],
                 max_seeds: int, display_px: int = 224):
        import ipywidgets as w

        self.pairs, self.runs, self.roles = pairs, runs, roles
        self.w_pair = w.IntSlider(0, 0, max(0, len(pairs) - 1), description="pair")
        self.w_zoom = w.IntSlider(1, 1, 8, description="zoom ×")
        self.w_combo = w.Dropdown(options=list(combinations), value=combinations[0], description="reward")
        self.w_seeds = w.IntSlider(1, 1, max(1, max_seeds), description="seeds n")
        self.w_orders = w.ToggleButtons(options=[("both orders", 2), ("one order", 1)], value=2)
        self.w_only = w.Checkbox(False, description="browse accepted pairs only")
        self.out_pair, self.out_summary = w.Output(), w.Output()
        self.display_px = display_px
        for c in (self.w_pair, self.w_zoom):
            c.observe(lambda _: self.show_pair(), "value")
        for c in (self.w_combo, self.w_seeds, self.w_orders, self.w_only):
            c.observe(lambda _: self.refresh(), "value")
        self.box = w.VBox([w.HBox([self.w_combo, self.w_seeds, self.w_orders]), self.out_summary,
                           w.HBox([self.w_pair, self.w_zoom, self.w_only]), self.out_pair])
        self.refresh()

    def variant(self) -> RewardVariant:
        return parse_variant(f"{self.w_combo.value}:n{self.w_seeds.value}:o{self.w_orders.value}", self.roles)

    def refresh(self) -> None:
        self.outcome = variant_outcome(self.variant(), self.runs)
        row = variant_row(self.outcome, self.pairs, "pairs", n_boot=200)
        with self.out_summary:
            self.out_summary.clear_output(wait=True)
            acc = (f"accuracy of accepted pairs {row['accuracy_kept']:.3f} "
                   f"[{row['accuracy_kept_ci_low']:.3f}, {row['accuracy_kept_ci_high']:.3f}]"
                   if "accuracy_kept" in row else "no ground truth")
            print(f"{row['label']}: {row['kept']} of {row['n_pairs']} accepted, {acc}, self-consistency "
                  f"{row['self_consistency']:.3f}, {row['calls_per_accepted']:.1f} calls per accepted pair")
        self.show_pair()

    def show_pair(self) -> None:
        i = self.w_pair.value
        kept = self.outcome.combination.kept
        if self.w_only.value and kept.any() and not kept[i]:
            i = int(np.flatnonzero(kept)[np.searchsorted(np.flatnonzero(kept), i) % kept.sum()])
        p, z = self.pairs, self.w_zoom.value
        lab, why = self.outcome.combination.label[i], self.outcome.combination.reason[i]
        with self.out_pair:
            self.out_pair.clear_output(wait=True)
            fig, axes = plt.subplots(1, 3, figsize=(3 * self.display_px / 80, self.display_px / 80 + 0.4))
            truth = "" if np.isnan(p.human[i]) else f" — humans/ground truth prefer p1 with {p.human[i]:.2f}"
            for ax, img, title in zip(axes, (p.ref[i], p.p0[i], p.p1[i]), ("reference", "A (p0)", "B (p1)")):
                ax.imshow(zoom(img, z), interpolation="nearest")
                ax.set_title(title)
                ax.axis("off")
            fig.suptitle(f"pair {i} ({p.family[i]}): reward says "
                         f"{'A' if lab < 0 else 'B' if lab > 0 else 'discard (' + str(why) + ')'}{truth}", fontsize=9)
            plt.show()
            from IPython.display import display

            display(pair_verdicts(self.runs, i))
