"""Figures shared by the chapters (seaborn/matplotlib). Each function returns the figure; callers save it."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns


def setup() -> None:
    """The house style of every chapter's figures."""
    sns.set_theme(context="notebook", style="whitegrid", palette="colorblind")


def image_grid(images: list[np.ndarray], titles: list[str] | None = None, ncols: int = 4, size: float = 2.6):
    """Images (H, W, 3) uint8 in a grid with optional titles; axes off."""
    n = len(images)
    ncols = max(1, min(ncols, n))
    nrows = max(1, math.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k < n:
            ax.imshow(images[k], interpolation="nearest")
            if titles:
                ax.set_title(titles[k], fontsize=9)
    fig.tight_layout()
    return fig


def detail_crop(img: np.ndarray, size: int = 160) -> np.ndarray:
    """A square of side ``min(size, H, W)`` from an image, centred horizontally, from a quarter of the way down (where
    photos keep their subject): the detail panel of a figure that compares reconstructions."""
    h, w = img.shape[:2]
    s = min(size, h, w)
    y, x = max(0, h // 4 - s // 4), (w - s) // 2
    return img[y : y + s, x : x + s]


def interval_dots(data, value: str, low: str, high: str, category: str, reference: float | None = None, **_) -> None:
    """Dots with horizontal interval bars, one row per ``category``, sorted by ``value``, on the current axes, with a
    dotted line at ``reference``: for ``seaborn.FacetGrid.map_dataframe`` (which also passes ``color``, ignored)."""
    ax = plt.gca()
    data = data.sort_values(value)
    ax.errorbar(data[value], data[category], xerr=[(data[value] - data[low]).clip(lower=0),
                                                   (data[high] - data[value]).clip(lower=0)], fmt="o", color="C0")
    if reference is not None:
        ax.axvline(reference, ls=":", c="grey")


def save(fig, path: str | Path, dpi: int = 110) -> Path:
    """Save a figure as PNG (creating folders) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    return path


def figure_png(fig, dpi: int = 100) -> bytes:
    """The figure as PNG bytes (for a ``widgets.Image`` or :func:`shown`); the figure is not shown anywhere else."""
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return buf.getvalue()


def shown(fig, dpi: int = 100):
    """What ``display(...)`` should get for a figure built without pyplot (``matplotlib.figure.Figure``): a PNG image.
    ``display(fig)`` itself prints ``<Figure size … with N Axes>`` unless pyplot's inline backend happens to be on."""
    from IPython.display import Image

    return Image(data=figure_png(fig, dpi), format="png")

