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


MAX_SERIES = 6  # a panel a reader can follow on a slide: at most six labelled series


def _is_heading(handle) -> bool:
    """seaborn's legend headings (the hue or style variable's name) are entries drawn with nothing: no line, no mark."""
    width = getattr(handle, "get_linewidth", lambda: 1.0)()
    marker = getattr(handle, "get_marker", lambda: "o")()
    return hasattr(handle, "get_linewidth") and not np.any(width) and marker in (None, "", "None", " ")


def _series(ax) -> tuple[list, list[str]]:
    """The labelled series of one panel: its legend's entries (or, without a legend, its labelled artists), without
    seaborn's headings."""
    legend = ax.get_legend()
    if legend is not None:
        pairs = zip(legend.legend_handles, [t.get_text() for t in legend.get_texts()])
    else:
        pairs = zip(*ax.get_legend_handles_labels())
    kept = [(h, label) for h, label in pairs if not _is_heading(h)]
    return [h for h, _ in kept], [label for _, label in kept]


def _look(handle) -> tuple:
    """What tells a series apart on a slide: colour, line style and marker."""
    from matplotlib.colors import to_hex
    from matplotlib.container import Container

    if isinstance(handle, Container):   # errorbar / bar containers: look at their first drawn artist
        handle = next(iter(handle.get_children()), handle)
    colour = None
    for getter in ("get_color", "get_facecolor", "get_edgecolor"):
        if hasattr(handle, getter):
            c = np.asarray(getattr(handle, getter)(), dtype=object)
            c = c[0] if c.ndim == 2 and len(c) else c
            try:
                colour = to_hex(c.tolist() if hasattr(c, "tolist") else c, keep_alpha=False)
                break
            except (ValueError, TypeError):
                continue
    style = getattr(handle, "get_linestyle", lambda: None)()
    marker = getattr(handle, "get_marker", lambda: None)()
    return colour, str(style), str(marker)


def legend_outside(ax, where: str = "right", ncol: int = 1, **kw) -> None:
    """Move a panel's legend off its data: to the right of the panel (``"right"``) or under it (``"below"``, for a
    panel with neighbours on its right)."""
    if where == "right":
        sns.move_legend(ax, "upper left", bbox_to_anchor=(1.02, 1), ncol=ncol, frameon=False, **kw)
    elif where == "below":
        sns.move_legend(ax, "upper center", bbox_to_anchor=(0.5, -0.22), ncol=ncol, frameon=False, **kw)
    else:
        raise ValueError(f"legend_outside: where must be 'right' or 'below', got {where!r}")


def slide_problems(fig) -> list[str]:
    """What keeps a figure from being readable as a slide: a panel with more than :data:`MAX_SERIES` labelled series,
    two series of one panel that look the same, or a legend drawn over a panel's data area (:func:`legend_outside`)."""
    if not hasattr(fig.canvas, "get_renderer"):   # a Figure built without pyplot: give it a canvas that draws
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        FigureCanvasAgg(fig)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    problems = []
    for i, ax in enumerate(fig.axes):
        name = ax.get_title() or f"panel {i + 1}"
        handles, labels = _series(ax)
        if len(labels) > MAX_SERIES:
            problems.append(f"{name!r}: {len(labels)} series (at most {MAX_SERIES})")
        looks = [_look(h) for h in handles]
        if len(set(looks)) < len(looks):
            problems.append(f"{name!r}: two series look the same (colour, line style and marker)")
        legend = ax.get_legend()
        if legend is not None and legend.get_visible():
            box, area = legend.get_window_extent(renderer), ax.get_window_extent(renderer)
            if box.overlaps(area):
                problems.append(f"{name!r}: the legend covers the data area")
    return problems


STRICT_FIGURES = "VLIC_STRICT_FIGURES"  # "1": :func:`save` refuses a figure that is not slide-ready (the test suite)


def save(fig, path: str | Path, dpi: int = 110, check: bool = True) -> Path:
    """Save a figure as PNG (creating folders) and return the path. ``check``: say in one line what keeps the figure
    from being readable as a slide (:func:`slide_problems`); with ``VLIC_STRICT_FIGURES=1`` in the environment (the
    test suite's smoke runs) refuse it instead, naming the file and what is wrong."""
    import os

    path = Path(path)
    if check and (problems := slide_problems(fig)):
        message = f"figure {path.name!r} is not readable as a slide: {'; '.join(problems)}"
        if os.environ.get(STRICT_FIGURES) == "1":
            raise ValueError(message)
        print(f"note: {message}")
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

