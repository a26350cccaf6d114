"""Pictures of the reward explorer as plain PNG bytes (no pyplot state, nothing shown twice): the pair side by side
(:func:`pair_png`) and the summary of every reward variant (:func:`summary_figure`, also what the headless notebook
saves), with the explorer's current setting ringed.
"""

from __future__ import annotations

import io
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from vlic.data.twoafc import TwoAFCSet
from vlic.judges.ensemble import JudgeRun
from vlic.judges.reward_variants import RewardVariant, variant_outcome, variant_row

# --- the pair ----------------------------------------------------------------------------------------------------------
def zoom(img: np.ndarray, factor: int) -> np.ndarray:
    """The central 1/factor of ``img``, enlarged back by nearest-neighbour (pixels stay pixels)."""
    f = max(1, int(factor))
    if f == 1:
        return img
    h, w = img.shape[:2]
    ch, cw = max(1, h // f), max(1, w // f)
    y, x = (h - ch) // 2, (w - cw) // 2
    return np.repeat(np.repeat(img[y : y + ch, x : x + cw], f, axis=0), f, axis=1)


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
