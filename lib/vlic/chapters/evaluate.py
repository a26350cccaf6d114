"""Chapter 05 (``notebooks/05_evaluate.ipynb``): its set-up from its parameters and its results file
(``results/eval.json``).

:func:`setup` does what the chapter's first cell did, in the same order: repository root, stage clock, figure style,
torch's threads, output folders, decoding seeds, the holdout photos and crops, the learned codecs (pre-trained at
each rate point, post-trained at its own), and which metrics and CompressAI models can run here — what cannot is
collected with its reason in ``not_available``, which later sections extend and the results file carries.
"""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from vlic.chapters.parameters import open_chapter

CHAPTER = "05_evaluate"
PARAMETERS = (
    "prepared_dir", "models_dir", "results_dir", "rate_points", "dpo_model", "sample_steps", "seeds", "metrics",
    "no_reference_metrics", "distribution_metrics", "effnet_input", "effnet_input_robustness",
    "realism_patch_candidates", "effnet_input_candidates", "realism_validation_photos", "realism_validation_patches",
    "realism_validation_families", "realism_validation_levels", "realism_validation_codecs", "realism_validation_bpp",
    "realism_validation_bootstrap", "distribution_bootstrap", "baselines", "baseline_bpp", "downscale",
    "compressai_models", "compressai_qualities", "bd_anchors", "bd_metrics", "elo_judges", "bootstrap", "seed",
    "threads")


@dataclass
class EvaluateChapter:
    params: dict[str, Any]
    started: float                 # time.perf_counter() when the chapter started
    prepared: Path
    results: Path
    figures: Path
    seed_list: tuple[int, ...]     # decoding seeds
    photos: dict                   # holdout photos
    crops: Any                     # chapter 0's holdout crops
    patch: int                     # their size in pixels
    boxes: dict                    # photo → crop positions
    learned: dict                  # key → (codec name, rate point, ImageCodec)
    dpo_rate: str | None           # the rate point the DPO codec was post-trained at
    post_trained_rates: set
    metric_names: list             # full-reference metrics that can run here
    nr_names: list                 # no-reference metrics that can run here
    dist_names: list               # distribution metrics that can run here
    cai_models: list               # CompressAI models whose weights are here
    not_available: dict            # what could not run here, and why (later sections add to it)

    def overview(self) -> pd.DataFrame:
        """Photos, patches, codecs, metrics and decoder of this run."""
        from vlic.config import as_list

        p = self.params
        return pd.DataFrame({"value": {
            "holdout photos": ", ".join(f"{k} ({v.shape[1]}×{v.shape[0]})" for k, v in self.photos.items()),
            "holdout patches": f"{len(self.crops)} × {self.patch} px",
            "learned codecs": ", ".join(f"{n} ({rp})" for n, (_, rp, _) in self.learned.items()),
            "post-trained rate point": self.dpo_rate or "—",
            "classical codecs": ", ".join(as_list(p["baselines"])) + (" (+ downscale-then-code)" if p["downscale"] else ""),
            "metrics computed": ", ".join(self.metric_names + self.nr_names + self.dist_names),
            "decoder": f"{p['sample_steps']} step(s), seeds {', '.join(map(str, self.seed_list))}",
        }})


def setup(namespace: dict) -> EvaluateChapter:
    """Chapter 05's objects from the parameters in ``namespace`` (the notebook's ``globals()``)."""

    from vlic.config import as_list
    from vlic.data.prepare import load_photos
    from vlic.data.splits import Crops, crop_boxes
    from vlic.eval.benchmark import compressai_availability, learned_codecs
    from vlic.eval.metrics import availability

    o = open_chapter(namespace, PARAMETERS, CHAPTER, set_threads=True)
    p, started, results, figures = o.params, o.started, o.results, o.figures
    prepared, models = Path(p["prepared_dir"]), Path(p["models_dir"])
    seed_list = tuple(int(s) for s in as_list(p["seeds"]))
    if not seed_list:
        raise ValueError("give at least one decoding seed (seeds)")

    photos = load_photos(prepared, "holdout")
    crops = Crops.load(prepared / "holdout_crops.npz")
    patch = int(crops.pixels.shape[1])
    boxes = crop_boxes(crops, photos)

    not_available = {}  # what could not run here, and why — written into the results
    learned, missing, dpo_rate = learned_codecs(models, as_list(p["rate_points"]), p["dpo_model"])
    not_available |= missing
    if not any(k.startswith("vlic@") for k in learned):
        raise FileNotFoundError(f"no pre-trained codec among rate points '{p['rate_points']}' under {models}")
    post_trained_rates = {dpo_rate} if dpo_rate else set()
    for rp in as_list(p["rate_points"]):
        if rp not in post_trained_rates:
            not_available[f"vlic-dpo@{rp}"] = ("not post-trained at this rate point (the DPO stage post-trains only "
                                               f"dpo.rate = {dpo_rate or '—'})")
    names = {}
    for kind in ("metrics", "no_reference_metrics", "distribution_metrics"):
        names[kind] = [m for m in as_list(p[kind]) if availability(m) is None]
        not_available |= {m: availability(m) for m in as_list(p[kind]) if availability(m)}
    cai_models = [m for m in as_list(p["compressai_models"]) if compressai_availability(m) is None]
    not_available |= {f"compressai-{m}": compressai_availability(m) for m in as_list(p["compressai_models"])
                      if compressai_availability(m)}
    if not names["metrics"]:
        raise RuntimeError(f"none of the metrics '{p['metrics']}' can run here")
    return EvaluateChapter(params=p, started=started, prepared=prepared, results=results, figures=figures,
                           seed_list=seed_list, photos=photos, crops=crops, patch=patch, boxes=boxes, learned=learned,
                           dpo_rate=dpo_rate, post_trained_rates=post_trained_rates, metric_names=names["metrics"],
                           nr_names=names["no_reference_metrics"], dist_names=names["distribution_metrics"],
                           cai_models=cai_models, not_available=not_available)


def write_results(ch: EvaluateChapter, *, table: pd.DataFrame, table_names: list, learned_rps: list,
                  dpo_vs_pre: dict | None, bd: list, bd_answers: list, elo: dict, items: list, dist_rows: list,
                  chosen: Any, agrees: bool, realism_validation: Any, realism_rows: list, answers: list,
                  seconds: dict) -> dict:
    """Write ``results/eval.json`` (:func:`vlic.notebooks.write_metrics`) and return its contents; the keys are the
    ones ``vlic results summary``/``compare``, ``vlic eval render-readme`` and the tests read. ``seconds``: the
    sections' timings (learned, classical, metrics, elo, distribution); the stage's is added here."""
    from vlic.config import as_list
    from vlic.eval.metrics import HIGHER_IS_BETTER, LABELS, SOURCES
    from vlic.notebooks import json_value, write_metrics

    p = ch.params
    table_records = [{k: json_value(v) for k, v in r.items()} for r in table.to_dict("records")]
    used_in_table = list(table_names)
    out = {
        "photos": list(ch.photos),
        "patches": int(sum(len(b) for b in ch.boxes.values())),
        "rate_points": learned_rps,
        "post_trained_rate_points": sorted(ch.post_trained_rates),
        "decoder_steps": int(p["sample_steps"]),
        "seeds": list(ch.seed_list),
        "table_metrics": used_in_table,
        "metric_labels": {m: LABELS[m] for m in [*used_in_table, *as_list(p["bd_metrics"])] if m in LABELS},
        "higher_is_better": {m: HIGHER_IS_BETTER[m] for m in used_in_table},
        "table": table_records,
        "dpo_vs_pretrained": dpo_vs_pre,
        "bd_rate": [{k: json_value(v) for k, v in e.items()} for e in bd],
        "bd_rate_answers": bd_answers,
        "elo": elo,
        "elo_patches": len({(ph, k) for ph, k, _ in items}),
        "distribution": {f"{r['metric']}:{r['codec']}@{r['rate_point']}": {
            "value": round(r["value"], 6), "ci": [round(r["ci_low"], 6), round(r["ci_high"], 6)], "patches": r["n"]}
            for r in dist_rows if r["role"] == "chosen"},
        "distribution_robustness": {f"{r['metric']}:{r['codec']}@{r['rate_point']}": {
            "value": round(r["value"], 6), "ci": [round(r["ci_low"], 6), round(r["ci_high"], 6)], "patches": r["n"]}
            for r in dist_rows if r["role"] == "robustness"},
        "distribution_patches": {"size": ch.patch, "grid": "non-overlapping + half-patch shifted (HiFiC)",
                                 "effnet_input": int(p["effnet_input"]),
                                 "effnet_input_robustness": int(p["effnet_input_robustness"]),
                                 "bootstrap": int(p["distribution_bootstrap"])},
        "realism_validation": {"chosen": {"patch": int(chosen.patch), "effnet_input": int(chosen.input_size)},
                               "effnet_input_is_validated": bool(agrees), "reason": realism_validation.reason,
                               "scores": [{k: json_value(v) for k, v in r.items()}
                                          for r in realism_validation.scores.to_dict("records")],
                               "seconds": round(realism_validation.seconds, 1)},
        "realism": {"rows": [{k: json_value(v) for k, v in r.items()} for r in realism_rows], "answers": answers},
        "model_sources": {m: SOURCES[m] for m in [*table_names, *ch.dist_names] if m in SOURCES},
        "not_available": ch.not_available,
        "seconds": {**{k: round(v, 1) for k, v in seconds.items()},
                    "stage": round(time.perf_counter() - ch.started, 1)},
        "threads": int(p["threads"]),
        "machine": platform.machine(),
    }
    write_metrics(ch.results / "eval.json", out, ensure_ascii=False)
    return out
