"""Chapter 00 (``notebooks/00_data.ipynb``): its set-up from its parameters and its results file
(``results/data.json``).

:func:`setup` does what the chapter's first cell did, in the same order: repository root, figure style, the results
paths, and the :class:`~vlic.data.prepare.DataConfig` typed from the parameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from vlic.chapters.parameters import open_chapter

CHAPTER = "00_data"
PARAMETERS = ("raw_dir", "out_dir", "results_dir", "train_collections", "holdout_collections", "holdout_images",
              "max_side", "crop_size", "train_crops_per_image", "holdout_crops_per_image", "seed")


@dataclass
class DataChapter:
    params: dict[str, Any]
    results: Path
    figures: Path
    cfg: Any           # vlic.data.prepare.DataConfig


def setup(namespace: dict) -> DataChapter:
    """Chapter 00's objects from the parameters in ``namespace`` (the notebook's ``globals()``)."""
    from vlic.config import build
    from vlic.data.prepare import DataConfig

    o = open_chapter(namespace, PARAMETERS, CHAPTER)
    p, results, figures = o.params, o.results, o.figures
    cfg = build(DataConfig, {k: p[k] for k in PARAMETERS if k != "results_dir"})
    return DataChapter(params=p, results=results, figures=figures, cfg=cfg)


def write_results(ch: DataChapter, *, summary: dict, stats: pd.DataFrame) -> dict:
    """Add the crops' mean gradient per split to ``summary`` (the preparation's summary, in place, as the chapter
    always did), write it as ``results/data.json`` (:func:`vlic.notebooks.write_metrics`) and return it; the keys are
    the ones ``vlic results summary``/``compare`` and the tests read."""
    from vlic.notebooks import write_metrics

    summary["train_gradient_mean"] = round(float(stats.loc[stats.split == "train", "gradient_mean"].mean()), 4)
    summary["holdout_gradient_mean"] = round(float(stats.loc[stats.split == "holdout", "gradient_mean"].mean()), 4)
    ch.results.mkdir(parents=True, exist_ok=True)
    write_metrics(ch.results / "data.json", summary)
    return summary
