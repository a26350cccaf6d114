"""Chapter 07's figures: rate–quality per task (compressed systems as curves, uncompressed references as lines) and
restored crops side by side."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

STYLE = {"decoded": ("grey", "o", ":"), "rdo": ("tab:blue", "s", "-"), "rpo": ("tab:red", "D", "-")}
REFERENCES = {"degraded": "black", "universal": "tab:green", "task_unet": "tab:olive", "classical": "tab:purple"}


def rate_quality(df: pd.DataFrame, metrics: Sequence[str], labels: dict, higher_better: dict, path: str | Path):
    """One column per task, one row per metric: photo-averaged quality against bpp for every compressed system;
    horizontal lines: the uncompressed degraded input and restorers. Abnormal curves show as such."""
    import matplotlib.pyplot as plt

    tasks = list(dict.fromkeys(df[df.rate_point != "uncompressed"].task))
    fig, axes = plt.subplots(len(metrics), len(tasks), figsize=(3.1 * len(tasks), 2.6 * len(metrics)), squeeze=False)
    for j, task in enumerate(tasks):
        g = df[df.task == task]
        comp = g[g.rate_point != "uncompressed"].groupby(["system", "rate_point"], sort=False).mean(numeric_only=True)
        unc = g[g.rate_point == "uncompressed"].groupby("system").mean(numeric_only=True)
        for i, m in enumerate(metrics):
            ax = axes[i, j]
            for system in comp.index.get_level_values(0).unique():
                c = comp.loc[system].sort_values("bpp")
                colour, marker, ls = STYLE.get(system, ("tab:orange", "^", "--"))
                ax.plot(c.bpp, c[m], marker=marker, ls=ls, color=colour, label=system, ms=4)
            for ref, colour in REFERENCES.items():
                if ref in unc.index:
                    ax.axhline(unc.loc[ref, m], color=colour, lw=0.8, ls="--", label=f"{ref} (uncompressed)")
            ax.set_title(task if i == 0 else "", fontsize=9)
            ax.set_xlabel("bpp" if i == len(metrics) - 1 else "")
            ax.set_ylabel(f"{labels.get(m, m)} {'↑' if higher_better[m] else '↓'}" if j == 0 else "", fontsize=8)
            ax.tick_params(labelsize=7)
    handles, names = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=min(8, len(names)), fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.savefig(path, dpi=110)
    return fig


def side_by_side(pixels: dict, clean: dict, tasks: Sequence[str], columns: Sequence[tuple[str, str, str]],
                 photo: str, box: tuple[int, int, int], path: str | Path):
    """Rows: tasks; columns: (label, system, rate point) — the clean crop first; ``box`` = (y, x, size)."""
    import matplotlib.pyplot as plt

    y, x, s = box
    fig, axes = plt.subplots(len(tasks), len(columns) + 1, figsize=(1.45 * (len(columns) + 1), 1.55 * len(tasks)),
                             squeeze=False)
    for i, task in enumerate(tasks):
        cells = [("clean", clean[photo])] + [(label, pixels.get((task, system, rp, photo))) for label, system, rp in columns]
        for j, (label, px) in enumerate(cells):
            ax = axes[i, j]
            ax.axis("off")
            if px is not None:
                ax.imshow(np.asarray(px)[y : y + s, x : x + s])
            if i == 0:
                ax.set_title(label, fontsize=7)
        axes[i, 0].text(-0.08, 0.5, task, transform=axes[i, 0].transAxes, rotation=90, va="center", ha="right", fontsize=7)
    fig.tight_layout(pad=0.3)
    fig.savefig(path, dpi=110)
    return fig
