"""Chapter 06's figures (seaborn): each task's score against bits per pixel, and what OCR read on decoded text."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from vlic.machine.suite import describe


FIGURES = {"machine_bpp.png": "learned vs classical", "machine_bpp_downscaled.png": "downscale-then-code",
           "machine_bpp_finetunes.png": "fine-tunes"}


def codec_groups(codecs: list[str], most: int = 6) -> dict[str, tuple[str, list[str]]]:
    """Chapter 06's accuracy-vs-bits figures, one question each: file name → (title, codecs)
    (:func:`vlic.eval.summary.codec_groups`)."""
    from vlic.eval.summary import codec_groups as groups

    chosen = groups(codecs, list(FIGURES.values()), most)
    return {file: chosen[group] for file, group in FIGURES.items()}


def accuracy_vs_bpp(table: pd.DataFrame, metrics: list[str], originals: pd.DataFrame | None = None,
                    codecs: list[str] | None = None, title: str | None = None):
    """One panel per metric: mean over images (error bars: bootstrap interval over images) against the mean bpp of
    the same images, one line per codec across its rate points; hollow markers = a classical codec that missed its
    target rate; a dotted line = the original's score (the ceiling)."""
    metrics = [m for m in metrics if m in set(table.metric)]
    ncols = min(4, len(metrics))
    nrows = -(-len(metrics) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.8 * ncols, 3.3 * nrows), squeeze=False)
    for ax in axes.flat[len(metrics):]:
        ax.axis("off")
    # colours from all codecs, the same in every group: black and red for the learned codecs, a downscaled
    # variant in its codec's colour (dashed)
    every = list(dict.fromkeys(table.sort_values("family").codec))
    base = [c for k, c in enumerate(sns.color_palette("tab10", 10)) if k != 3]
    own = [c for c in every if c not in ("vlic", "vlic-dpo") and not c.endswith("-ds")]
    palette = dict(zip(own, base * 2)) | {"vlic": "black", "vlic-dpo": "crimson"}
    palette |= {c: palette.get(c.removesuffix("-ds"), "grey") for c in every if c.endswith("-ds")}
    if codecs is not None:
        table = table[table.codec.isin(codecs)]
    for ax, m in zip(axes.flat, metrics):
        t = table[table.metric == m].sort_values("bpp")
        for codec, g in t.groupby("codec", sort=False):
            col = palette.get(codec, "grey")
            ax.plot(g.bpp, g.value, "--" if codec.endswith("-ds") else "-", color=col, lw=1.4, label=codec)
            err = [(g.value - g.ci_low).fillna(0).clip(lower=0), (g.ci_high - g.value).fillna(0).clip(lower=0)]
            ax.errorbar(g.bpp, g.value, yerr=err, fmt="none", ecolor=col, alpha=0.45)
            for matched, face in ((True, col), (False, "white")):
                sel = g[g.matched == matched]
                ax.scatter(sel.bpp, sel.value, s=30, facecolors=face, edgecolors=col, zorder=3)
        if originals is not None and m in originals and originals[m].notna().any():
            ax.axhline(float(originals[m].mean()), ls=":", c="grey", lw=1)
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(plt.FixedLocator([0.03, 0.05, 0.1, 0.2, 0.5, 1.0]))
        ax.xaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(plt.NullFormatter())
        ax.set_xlabel("bits per pixel (file bytes)")
        _, higher, label = describe(m)
        ax.set_title(f"{label} {'↑' if higher else '↓'}", fontsize=10)
    from vlic import viz

    axes.flat[len(metrics) - 1].legend(fontsize=8)
    viz.legend_outside(axes.flat[len(metrics) - 1])
    if title:
        fig.suptitle(title, y=1.0)
    fig.tight_layout()
    return fig


def ocr_examples(original: np.ndarray, decoded: dict[str, np.ndarray], read: dict[str, str], truth: str,
                 bpp: dict[str, float] | None = None, ncols: int = 3):
    """The text image as each codec decoded it, titled with its bits per pixel (a codec that cannot reach the rate
    point shows its nearest, higher rate) and what OCR read (the first panel: the original and the true strings).
    Characters outside Latin-1 (the reader's alphabet is larger than the figure font's) show as ?."""
    from vlic import viz

    def safe(text: str) -> str:
        return str(text).encode("latin-1", "replace").decode("latin-1")

    rate = {c: f" ({bpp[c]:.3f} bpp)" if bpp and c in bpp else "" for c in decoded}
    titles = [f"original: {truth}"] + [safe(f"{c}{rate[c]}: {read.get(c, '')}") for c in decoded]
    return viz.image_grid([original, *decoded.values()], titles, ncols=ncols, size=3.3)
