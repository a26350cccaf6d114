"""The reward explorer (``notebooks/explore_rewards.ipynb``): browse 2AFC pairs with every judge's verdict, switch the
reward combination and watch which pairs it accepts and how often it agrees with ground truth.

Everything the widget shows is made as plain values, so tests drive it without a browser: the pair is a PNG
(:func:`vlic.widgets.reward_figures.pair_png`, sent as bytes to a ``widgets.Image`` — never ``plt.show()`` inside an
``Output``, which sent a blank figure first), the verdicts are a table (:mod:`vlic.widgets.verdicts`) rendered as HTML
with the whole rationale wrapped, and :func:`vlic.widgets.reward_figures.summary_figure` is what the summary panel
shows (current setting highlighted) and what the headless notebook saves.

Keys: while the mouse pointer is over the explorer (a blue frame shows it) every key goes to the explorer, never to
JupyterLab — a focused slider or menu can no longer pass ``a``/``b``/``dd``/``m`` on to the notebook, which inserted,
deleted or converted cells (read through ``ipyevents``, as the human study does). ←/→ step through the pairs, ↑/↓
zoom; the controls work with the mouse. Elsewhere keys go to JupyterLab as usual.

Signs of ratings: see :mod:`vlic.widgets.verdicts`.
"""

from __future__ import annotations

import html
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from vlic.data.twoafc import TwoAFCSet
from vlic.judges.ensemble import JudgeRun
from vlic.judges.reward_variants import RewardVariant, Roles, is_stochastic, parse_variant, variant_outcome, variant_row
from vlic.viz import figure_png
from vlic.widgets.keys import capture_keys, frame_css
from vlic.widgets.reward_figures import decision_text, pair_png, summary_figure, summary_table
from vlic.widgets.reward_figures import zoom  # noqa: F401  (the explorer's zoom, importable from here)
from vlic.widgets.verdicts import combination_label, verdict_html, verdict_table


PREVIOUS_KEYS, NEXT_KEYS = {"ArrowLeft", ","}, {"ArrowRight", "."}
ZOOM_IN_KEYS, ZOOM_OUT_KEYS = {"ArrowUp", "+", "="}, {"ArrowDown", "-"}
STYLE = frame_css("vlic-explorer")


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
        # sized to the longest label (a cut label hid which judges a rule combines)
        width = max(24, max(len(v) for v in self.labels.values()) + 8)
        self.w_combo = w.Dropdown(options=[(self.labels[c], c) for c in combinations], value=combinations[0],
                                  description="reward", layout=w.Layout(width=f"{width}ch"))
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
        self.keys_help = w.HTML(STYLE + "<small>While the pointer is over the explorer (blue frame) keys stay here: "
                                "←/→ pair, ↑/↓ zoom. Elsewhere they go to JupyterLab.</small>")
        self.box = w.VBox([self.keys_help,
                           w.HBox([self.w_combo, self.w_seeds, self.w_orders], layout=w.Layout(flex_flow="row wrap")),
                           self.summary_text, self.summary_image,
                           w.HBox([self.w_pair, self.w_zoom, self.w_only]), self.pair_title, self.pair_image,
                           self.verdicts])
        self.box.add_class("vlic-explorer")
        self.keyboard = capture_keys(self.box, self.handle_key)
        self.refresh()

    def handle_key(self, event: dict) -> None:
        """A key pressed over the explorer: ←/→ previous / next browsable pair, ↑/↓ zoom; any other key is swallowed."""
        key = event.get("key")
        options = [v for _, v in self.w_pair.options]
        k = options.index(self.w_pair.value)
        if key in PREVIOUS_KEYS and k > 0:
            self.w_pair.value = options[k - 1]
        elif key in NEXT_KEYS and k < len(options) - 1:
            self.w_pair.value = options[k + 1]
        elif key in ZOOM_IN_KEYS:
            self.w_zoom.value = min(self.w_zoom.max, self.w_zoom.value + 1)
        elif key in ZOOM_OUT_KEYS:
            self.w_zoom.value = max(self.w_zoom.min, self.w_zoom.value - 1)

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
