"""Chapter 07 (``notebooks/07_low_level_vision.ipynb``): its set-up from its parameters and its results file
(``results/lowlevel.json``).

:func:`setup` does what the chapter's first cell did, in the same order: repository root, stage clocks (wall and CPU),
figure style, torch's threads, output folders, the study's :class:`~vlic.lowlevel.study.LowLevelConfig`, the check
that every rate point is the laptop codec (before any work), the photos, the pre-trained codecs — and then
``torch.manual_seed(cfg.seed)``, the seed the training below starts from.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from vlic.chapters.parameters import open_chapter

CHAPTER = "07_low_level_vision"
PARAMETERS = (
    "prepared_dir", "models_dir", "results_dir", "rate_points", "tasks", "heldout_degradation", "crop_size",
    "crops_per_photo", "eval_size", "width", "controller_steps", "task_steps", "universal_steps", "finetune_steps",
    "batch", "lr", "finetune_lr", "codec_lr", "alpha", "beta", "gamma", "cascades", "fr_metrics", "nr_metrics",
    "bootstrap", "daclip_checkpoint", "seed", "threads", "workers")


@dataclass
class LowLevelChapter:
    params: dict[str, Any]
    started: float              # time.perf_counter() when the chapter started
    cpu_started: float          # vlic.processes.cpu_seconds() then
    models_path: Path
    results: Path
    figures_dir: Path
    cfg: Any                    # vlic.lowlevel.study.LowLevelConfig
    rates: list                 # rate points
    fr: list                    # full-reference metrics (against the clean photo)
    nr: list                    # no-reference metrics (of the output)
    metrics: list               # fr + nr
    train_photos: dict
    photos: dict                # holdout photos, centre crops of eval_size
    checkpoints: dict           # rate point → pre-trained codec

    def cpu_seconds(self) -> float:
        """CPU seconds of this kernel and of the worker processes it has waited for, since the chapter started."""
        from vlic.processes import cpu_seconds

        return cpu_seconds() - self.cpu_started

    def overview(self) -> pd.DataFrame:
        """Training tasks, the held-out degradation, photos and training crops."""
        cfg = self.cfg
        return pd.DataFrame({
            "training tasks": [", ".join(f"{t} {s}" for t, s in cfg.tasks.items())],
            "held-out degradation": [f"{cfg.heldout_degradation} {cfg.heldout_severity}"],
            "holdout photos": [", ".join(f"{k} ({v.shape[1]}×{v.shape[0]})" for k, v in self.photos.items())],
            "training crops": [f"{len(self.train_photos)} photos × {cfg.crops_per_photo} × {cfg.crop_size} px"]}).T


def setup(namespace: dict) -> LowLevelChapter:
    """Chapter 07's objects from the parameters in ``namespace`` (the notebook's ``globals()``)."""
    import torch

    from vlic.codec.checkpoint import load
    from vlic.codec.families import require_unet
    from vlic.config import as_list
    from vlic.images import load_rgb
    from vlic.lowlevel import study
    from vlic.processes import cpu_seconds

    o = open_chapter(namespace, PARAMETERS, CHAPTER, set_threads=True)
    p, started, cpu_started, results, figures_dir = o.params, o.started, cpu_seconds(), o.results, o.figures
    prepared, models_path = Path(p["prepared_dir"]), Path(p["models_dir"])
    held_name, held_sev = next(iter(study.parse_degradations(p["heldout_degradation"]).items()))
    cfg = study.LowLevelConfig(
        tasks=study.parse_degradations(p["tasks"]), heldout_degradation=held_name, heldout_severity=held_sev,
        crop_size=int(p["crop_size"]), crops_per_photo=int(p["crops_per_photo"]), eval_size=int(p["eval_size"]),
        width=int(p["width"]), controller_steps=int(p["controller_steps"]), task_steps=int(p["task_steps"]),
        universal_steps=int(p["universal_steps"]), finetune_steps=int(p["finetune_steps"]), batch=int(p["batch"]),
        lr=float(p["lr"]), finetune_lr=float(p["finetune_lr"]), codec_lr=float(p["codec_lr"]),
        alpha=float(p["alpha"]), beta=float(p["beta"]), gamma=float(p["gamma"]), seed=int(p["seed"]))
    rates = as_list(p["rate_points"])
    for rp in rates:  # before any work: RPO trains the laptop codec's own parts (encoder, mean head, FSQ rate term)
        require_unet(models_path / f"codec_{rp}.safetensors",
                     "chapter 07's RPO fine-tunes the laptop codec's encoder and mean head jointly with the restorer")
    fr, nr = as_list(p["fr_metrics"]), as_list(p["nr_metrics"])
    train_photos = {q.stem: load_rgb(q).pixels for q in sorted((prepared / "train").glob("*.png"))}
    photos = {q.stem: study.center_crop(load_rgb(q).pixels, cfg.eval_size)
              for q in sorted((prepared / "holdout").glob("*.png"))}
    if not (train_photos and photos):
        raise FileNotFoundError(f"no photos under {prepared}: run `dvc repro data` first")
    checkpoints = {rp: load(models_path / f"codec_{rp}.safetensors") for rp in rates}
    torch.manual_seed(cfg.seed)
    return LowLevelChapter(params=p, started=started, cpu_started=cpu_started, models_path=models_path,
                           results=results, figures_dir=figures_dir, cfg=cfg, rates=rates, fr=fr, nr=nr,
                           metrics=[*fr, *nr], train_photos=train_photos, photos=photos, checkpoints=checkpoints)


def write_results(ch: LowLevelChapter, *, controller: dict, daclip: dict, trained: Any,
                  training_curves: pd.DataFrame, abnormal: list, bd: list, averages: list, equal_rate: list,
                  generalisation: dict, rows: pd.DataFrame, answers: list) -> dict:
    """Write ``results/lowlevel.json`` (:func:`vlic.notebooks.write_metrics`, values through
    :func:`vlic.notebooks.json_tree`) and return what was written; the keys are the ones ``vlic results
    summary``/``compare`` and the tests read."""
    from vlic.notebooks import json_tree, write_metrics

    cfg = ch.cfg
    summary_rows = (rows.groupby(["task", "system", "rate_point"], sort=False)[["bpp", *ch.metrics]].mean().round(5)
                    .reset_index().to_dict("records"))
    out = json_tree({
        "tasks": cfg.tasks, "heldout_degradation": {cfg.heldout_degradation: cfg.heldout_severity},
        "photos": list(ch.photos), "eval_size": cfg.eval_size, "rate_points": ch.rates,
        "controller": controller, "daclip": daclip,
        "training_seconds": trained.seconds, "workers": int(ch.params["workers"]),
        "final_training_loss": training_curves.groupby(["rate_point", "system"]).last()[["task"]].reset_index()
        .to_dict("records"),
        "abnormal": abnormal, "bd_rate": bd, "bd_rate_average": averages, "rpo_minus_rdo": equal_rate,
        "generalisation": generalisation, "results": summary_rows, "answers": answers,
        "stage_seconds": round(time.perf_counter() - ch.started, 1), "stage_cpu_seconds": round(ch.cpu_seconds(), 1),
    })
    write_metrics(ch.results / "lowlevel.json", out)
    return out
