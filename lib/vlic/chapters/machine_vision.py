"""Chapter 06 (``notebooks/06_machine_vision.ipynb``): its set-up from its parameters and its results file
(``results/machine.json``).

:func:`setup` does what the chapter's first cell did, in the same order: repository root, stage clock, figure style,
torch's threads, output folders, decoding seeds, the tasks that can run here (the others with their reason in
``not_available``, which later sections extend), the learned codecs, the images (photos and text images with known
strings) and the tasks' reference answers on the originals (timed: ``reference_seconds``).
"""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from vlic.chapters.parameters import open_chapter

CHAPTER = "06_machine_vision"
PARAMETERS = (
    "prepared_dir", "models_dir", "results_dir", "rate_points", "dpo_model", "sample_steps", "start_time_share",
    "seeds", "photos", "text_photos", "text_sizes", "text_width", "text_height", "max_side", "tasks",
    "retrieval_patch", "retrieval_per_image", "retrieval_input", "baselines", "downscale", "human_metrics",
    "tag_threshold", "max_tags", "finetune_rate", "finetune_variants", "finetune_steps", "tag_dropout",
    "tag_cfg_scale", "finetune_batch", "finetune_lr", "sc_weight_flow_mid", "sc_weight_effnet", "bootstrap", "seed",
    "threads")


@dataclass
class MachineVisionChapter:
    params: dict[str, Any]
    started: float               # time.perf_counter() when the chapter started
    models: Path
    results: Path
    fig_dir: Path                # results/figures
    seed_list: tuple[int, ...]   # decoding seeds
    not_available: dict          # what could not run here, and why (later sections add to it)
    task_list: list              # the tasks that run
    metric_list: list            # their metrics
    learned: dict                # key → (codec name, rate point, ImageCodec); the fine-tuned variants join it
    dpo_rate: str | None         # the rate point the DPO codec was post-trained at
    images: Any                  # vlic.machine.images: photos, text images and their strings
    human_list: list             # human-side (full-reference) metrics
    ref: Any                     # the tasks' answers on the originals
    orig: pd.DataFrame           # the tasks scored on the originals themselves (the ceiling)
    reference_seconds: float

    def overview(self) -> pd.DataFrame:
        """Every image: size, source, whether the codecs trained on it, faces on the original, its strings."""
        images = self.images
        return pd.DataFrame({
            "size": {n: f"{px.shape[1]}×{px.shape[0]}" for n, px in images.all().items()},
            "source": {n: images.source.get(n, f"text on {n.removeprefix('text:')}") for n in images.all()},
            "seen in codec training": {n: images.seen_in_training(n) for n in images.all()},
            "faces (original)": {n: len(self.ref.faces.get(n, [])) for n in images.all()},
            "strings": {n: " | ".join(ln.text for ln in images.lines[n]) for n in images.text},
        }).fillna("")


def setup(namespace: dict) -> MachineVisionChapter:
    """Chapter 06's objects from the parameters in ``namespace`` (the notebook's ``globals()``)."""

    from vlic.config import as_list
    from vlic.eval.benchmark import learned_codecs
    from vlic.machine import availability, suite
    from vlic.machine import images as machine_images

    o = open_chapter(namespace, PARAMETERS, CHAPTER, set_threads=True)
    p, started, results, fig_dir = o.params, o.started, o.results, o.figures
    models = Path(p["models_dir"])
    seed_list = tuple(int(s) for s in as_list(p["seeds"]))

    not_available = {t: r for t, r in availability().items() if r and t in as_list(p["tasks"])}
    task_list = [t for t in as_list(p["tasks"]) if t not in not_available]
    unknown = set(task_list) - set(suite.TASKS)
    if unknown:
        raise ValueError(f"unknown tasks {sorted(unknown)} (known: {', '.join(suite.TASKS)})")
    if not task_list:
        raise RuntimeError(f"none of the tasks '{p['tasks']}' can run here: {not_available}")
    metric_list = suite.metrics_of(task_list)

    learned, missing, dpo_rate = learned_codecs(models, as_list(p["rate_points"]), p["dpo_model"])
    not_available |= missing
    if not any(k.startswith("vlic@") for k in learned):
        raise FileNotFoundError(f"no pre-trained codec among rate points '{p['rate_points']}' under {models}")

    images = machine_images.build(p["prepared_dir"], list(as_list(p["photos"])), list(as_list(p["text_photos"])),
                                  [int(s) for s in as_list(p["text_sizes"])], (int(p["text_width"]), int(p["text_height"])),
                                  int(p["max_side"]), int(p["seed"]))
    human_list = list(as_list(p["human_metrics"]))
    t0 = time.perf_counter()
    ref = suite.prepare(images, task_list, int(p["retrieval_patch"]), int(p["retrieval_per_image"]),
                        int(p["retrieval_input"]), human=human_list)
    orig = suite.originals(images, ref)
    reference_seconds = time.perf_counter() - t0
    return MachineVisionChapter(params=p, started=started, models=models, results=results, fig_dir=fig_dir,
                                seed_list=seed_list, not_available=not_available, task_list=task_list,
                                metric_list=metric_list, learned=learned, dpo_rate=dpo_rate, images=images,
                                human_list=human_list, ref=ref, orig=orig, reference_seconds=reference_seconds)


def write_results(ch: MachineVisionChapter, *, table: pd.DataFrame, targets: dict, dpo_vs_pre: dict | None,
                  ft_variants: list, tag_tables: dict, train_tags: list, eval_tags: dict, sc_vs_base: dict,
                  tag_rows: list, dpo_sentence: str, sc_sentences: list, classical_sentences: list,
                  seconds: dict) -> dict:
    """Write ``results/machine.json`` (:func:`vlic.notebooks.write_metrics`) and return its contents; the keys are
    the ones ``vlic results summary``/``compare`` and the tests read. ``seconds``: the sections' timings (finetune,
    learned, classical, scoring); the reference answers' and the stage's are added here."""
    from vlic.config import as_list
    from vlic.machine import suite
    from vlic.notebooks import json_value, write_metrics
    from vlic.perception.tags import tag_names

    p, images, orig = ch.params, ch.images, ch.orig
    out = {
        "images": {n: {"source": images.source.get(n, "text"), "seen_in_training": images.seen_in_training(n),
                       "size": list(px.shape[:2])} for n, px in images.all().items()},
        "text_strings": {n: [ln.text for ln in lines] for n, lines in images.lines.items()},
        "text_sizes_px": [int(s) for s in as_list(p["text_sizes"])],
        "faces_in_originals": {n: len(f) for n, f in ch.ref.faces.items()},
        "tasks": ch.task_list,
        "metrics": {m: {"task": suite.METRICS[m][0], "higher_is_better": suite.METRICS[m][1],
                        "label": suite.METRICS[m][2]} for m in ch.metric_list},
        "rate_points": list(targets),
        "post_trained_rate_point": ch.dpo_rate,
        "decoder_steps": int(p["sample_steps"]),
        "seeds": list(ch.seed_list),
        "originals": {m: json_value(float(orig[m].mean())) for m in ch.metric_list
                      if m in orig and orig[m].notna().any()},
        "table": [{k: json_value(v) for k, v in r.items()} for r in table.to_dict("records")],
        "dpo_vs_pretrained": dpo_vs_pre,
        "human_metrics": ch.human_list,
        "finetune": {"rate_point": p["finetune_rate"], "variants": ft_variants, "steps": int(p["finetune_steps"]),
                     "tag_dropout": float(p["tag_dropout"]), "tag_cfg_scale": float(p["tag_cfg_scale"]),
                     "training_photo_tags": {v: tag_names(t) for v, t in zip(
                         sorted(q.stem for q in (Path(p["prepared_dir"]) / "train").glob("*.png")), train_tags)}
                     if tag_tables else {},
                     "eval_image_tags": {n: tag_names(t) for n, t in eval_tags.items()},
                     # the table learned only the training photos' classes: an image whose tags are all unseen
                     # decodes as untagged
                     "eval_images_with_a_trained_tag": sum(bool(set(t) & {c for tt in train_tags for c in tt})
                                                           for t in eval_tags.values()) if tag_tables else 0,
                     "batch_size": int(p["finetune_batch"]), "lr": float(p["finetune_lr"]),
                     "sc_weights": {"sc_flow_mid": float(p["sc_weight_flow_mid"]),
                                    "sc_effnet": float(p["sc_weight_effnet"])},
                     "sc_vs_baseline": sc_vs_base},
        "tags": {"threshold": float(p["tag_threshold"]), "max_tags": int(p["max_tags"]), "rate_point": list(targets)[0],
                 "per_photo": [{k: json_value(v) for k, v in r.items()} for r in tag_rows]},
        "answers": {"dpo": dpo_sentence, "sc": sc_sentences, "classical": classical_sentences},
        "not_available": ch.not_available,
        "seconds": {"finetune": round(seconds["finetune"], 1), "reference": round(ch.reference_seconds, 1),
                    "learned": round(seconds["learned"], 1), "classical": round(seconds["classical"], 1),
                    "scoring": round(seconds["scoring"], 1), "stage": round(time.perf_counter() - ch.started, 1)},
        "threads": int(p["threads"]),
        "machine": platform.machine(),
    }
    write_metrics(ch.results / "machine.json", out, ensure_ascii=False)
    return out
