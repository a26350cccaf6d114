"""The machine-task suite over every reconstruction: one row per (codec, rate point, image, seed) with every task's
score, then means over images with bootstrap intervals, paired differences, and the chapter's answers.

Which image feeds which task: classification, retrieval, faces and person masks use the **photos**; OCR uses the
**text images** (:mod:`vlic.machine.images`). Faces and masks are scored only on photos whose original shows a face
(or a person); every other task on every image of its kind. Each score is per image, so intervals are bootstraps
over images (:func:`vlic.eval.summary.mean_ci`) — few images, coarse intervals, reported as such.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd

from vlic.stats import mean_ci

# metric → (task, higher is better, label)
METRICS = {
    "top1": ("classification", True, "top-1 agreement"),
    "top5": ("classification", True, "top-5 agreement"),
    "kl": ("classification", False, "KL(original ‖ decoded), nats"),
    "recall1": ("retrieval", True, "retrieval recall@1"),
    "map": ("retrieval", True, "retrieval mAP"),
    "cer": ("ocr", False, "OCR character error rate"),
    "face_ap": ("faces", True, "face AP@0.5"),
    "mask_iou": ("person_mask", True, "person mask IoU"),
}
TASKS = tuple(dict.fromkeys(t for t, _, _ in METRICS.values()))


def metrics_of(tasks: Sequence[str]) -> list[str]:
    return [m for m, (t, _, _) in METRICS.items() if t in tasks]


def describe(metric: str) -> tuple[str, bool, str]:
    """(task, higher is better, label) of a machine metric, or of a human-side full-reference metric of
    :mod:`vlic.eval.metrics` (task ``"human"``)."""
    if metric in METRICS:
        return METRICS[metric]
    from vlic.eval.metrics import HIGHER_IS_BETTER, LABELS

    if metric not in HIGHER_IS_BETTER:
        raise KeyError(f"unknown metric '{metric}'")
    return "human", HIGHER_IS_BETTER[metric], LABELS[metric]


@dataclass
class Reference:
    """What the originals give each task: class distributions, the retrieval gallery, faces, masks."""

    tasks: tuple[str, ...]
    probabilities: dict[str, np.ndarray] = field(default_factory=dict)
    boxes: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    first_index: dict[str, int] = field(default_factory=dict)    # photo → index of its first patch in the gallery
    gallery: np.ndarray | None = None
    patch: int = 64
    retrieval_input: int = 96
    faces: dict[str, list] = field(default_factory=dict)
    masks: dict[str, np.ndarray] = field(default_factory=dict)
    human: object = None     # a vlic.eval.metrics.FullReference: the human-side metrics of the same photos


def prepare(images, tasks: Sequence[str], patch: int = 64, per_image: int = 16, retrieval_input: int = 96,
            human: Sequence[str] = ()) -> Reference:
    """Run every task on the originals once; ``human``: full-reference metrics (:mod:`vlic.eval.metrics`) to score
    the same decoded photos with, for the human side of the comparison."""
    from vlic.machine import classification, faces, retrieval

    ref = Reference(tuple(tasks), patch=int(patch), retrieval_input=int(retrieval_input))
    if human:
        from vlic.eval.metrics import FullReference

        ref.human = FullReference(list(human))
    photos = images.photos
    if "classification" in tasks:
        ref.probabilities = dict(zip(photos, classification.probabilities(list(photos.values()))))
    if "retrieval" in tasks:
        gallery = []
        for name, px in photos.items():
            ref.boxes[name] = retrieval.grid_boxes(*px.shape[:2], patch, per_image)
            ref.first_index[name] = len(gallery)
            gallery += [px[y : y + patch, x : x + patch] for y, x in ref.boxes[name]]
        ref.gallery = retrieval.embed(gallery, retrieval_input)
    if "faces" in tasks:
        ref.faces = {n: f for n, px in photos.items() if (f := faces.reference_faces(px))}
    if "person_mask" in tasks:
        ref.masks = {n: m for n, px in photos.items() if (m := faces.person_mask(px)).any() and n in ref.faces}
    return ref


def score_image(ref: Reference, images, name: str, px: np.ndarray) -> dict[str, float]:
    """Every task's score of one decoded image ``px`` of image ``name`` (NaN where a task does not apply)."""
    from vlic.machine import classification, faces, ocr, retrieval

    out = {m: np.nan for m in metrics_of(ref.tasks)} | ({m: np.nan for m in ref.human.names} if ref.human else {})
    if name in images.text:
        if "ocr" in ref.tasks:
            lines = images.lines[name]
            read = ocr.line_texts(ocr.reader()(px), lines)
            errors = [ocr.cer(r, ln.text) for r, ln in zip(read, lines)]
            out["cer"] = float(np.mean(errors))
            out |= {f"cer_{ln.size}px": e for ln, e in zip(lines, errors)}
            out["ocr_read"] = " | ".join(read)
        return out
    if ref.human is not None:
        out |= ref.human(images.photos[name], px)
    if "classification" in ref.tasks:
        out |= classification.agreement(ref.probabilities[name], classification.probabilities([px])[0])
    if "retrieval" in ref.tasks:
        p = ref.patch
        q = retrieval.embed([px[y : y + p, x : x + p] for y, x in ref.boxes[name]], ref.retrieval_input)
        s = retrieval.scores(ref.gallery, q, ref.first_index[name] + np.arange(len(q)))
        out |= {"recall1": float(s["recall1"].mean()), "map": float(s["ap"].mean())}
    if "faces" in ref.tasks and name in ref.faces:
        out["face_ap"] = faces.average_precision(ref.faces[name], faces.detect(px))
    if "person_mask" in ref.tasks and name in ref.masks:
        out["mask_iou"] = faces.mask_iou(ref.masks[name], faces.person_mask(px))
    return out


def score(rec, images, ref: Reference) -> pd.DataFrame:
    """One row per reconstruction of ``rec`` (:class:`vlic.eval.benchmark.Reconstructions`): its facts and scores.
    Reconstructions that are the same pixels object (a ``-ds`` variant that fits at full size) are scored once."""
    memo, rows = {}, []
    for row in rec.rows:
        px = rec.pixels[(row["codec"], row["rate_point"], row["photo"], row["seed"])]
        if id(px) not in memo:
            memo[id(px)] = score_image(ref, images, row["photo"], px)
        rows.append(dict(row, kind="text" if row["photo"] in images.text else "photo",
                         seen_in_training=images.seen_in_training(row["photo"]), **memo[id(px)]))
    return pd.DataFrame(rows)


def originals(images, ref: Reference) -> pd.DataFrame:
    """The tasks on the originals themselves: the ceiling each codec is measured against (OCR errors of the
    original, faces found, …)."""
    rows = []
    for name, px in images.all().items():
        rows.append({"codec": "original", "rate_point": "—", "photo": name, "seed": 0, "bpp": 24.0,
                     "kind": "text" if name in images.text else "photo",
                     "seen_in_training": images.seen_in_training(name), **score_image(ref, images, name, px)})
    return pd.DataFrame(rows)


def task_table(df: pd.DataFrame, metrics: Sequence[str], n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Long table, one row per (codec, rate point, metric): mean over the images the metric applies to (decoding
    seeds averaged first), bootstrap interval over those images, and the mean bpp of the same images."""
    rows = []
    keys = ["codec", "rate_point", "photo"]
    per = df.groupby(keys, sort=False).agg({c: "mean" for c in ["bpp", *metrics]} |
                                           {"matched": "all", "family": "first"}).reset_index()
    for (codec, rp), g in per.groupby(["codec", "rate_point"], sort=False):
        for m in metrics:
            v = g[np.isfinite(g[m].astype(float))]
            if v.empty:
                continue
            mean, lo, hi = mean_ci(v[m].to_numpy(float), n_boot, seed)
            rows.append({"codec": codec, "rate_point": rp, "family": g["family"].iloc[0], "task": describe(m)[0],
                         "metric": m, "images": len(v), "bpp": float(v["bpp"].mean()), "value": mean,
                         "ci_low": lo, "ci_high": hi, "matched": bool(v["matched"].all())})
    return pd.DataFrame(rows)


def paired(df: pd.DataFrame, a: str, b: str, rate_point: str, metrics: Sequence[str], n_boot: int = 1000,
           seed: int = 0) -> dict[str, dict]:
    """Per image ``a − b`` at one rate point (images both scored), mean and bootstrap interval, and which is better
    (``a``, ``b``, or ``none`` when the interval holds 0)."""
    per = df.groupby(["codec", "rate_point", "photo"])[["bpp", *metrics]].mean()
    try:
        pa, pb = per.loc[(a, rate_point)], per.loc[(b, rate_point)]
    except KeyError:
        raise ValueError(f"'{a}' or '{b}' has no rows at rate point '{rate_point}'") from None
    out = {}
    for m in ["bpp", *metrics]:
        d = (pa[m] - pb[m]).dropna()
        if d.empty:
            continue
        mean, lo, hi = mean_ci(d.to_numpy(float), n_boot, seed)
        better = "none"
        if m != "bpp" and np.isfinite(lo) and (lo > 0 or hi < 0):
            better = a if (lo > 0) == describe(m)[1] else b
        out[m] = {"delta": round(mean, 5), "ci_low": round(lo, 5), "ci_high": round(hi, 5), "images": int(d.size),
                  "better": better}
    return out


def paired_answer(deltas: dict[str, dict], a: str, b: str, rate_point: str, what: str = "") -> str:
    """One sentence per metric on ``a − b``, read from :func:`paired`'s output: "helps" when ``a`` is better with
    an interval that excludes zero, "hurts" when ``b`` is, else "no detectable difference"."""
    parts = []
    for m, d in deltas.items():
        if m == "bpp":
            continue
        verdict = {a: "helps", b: "hurts"}.get(d["better"], "no detectable difference")
        parts.append(f"{describe(m)[2]}: {d['delta']:+.3f} [{d['ci_low']:+.3f}, {d['ci_high']:+.3f}] "
                     f"over {d['images']} images → {verdict}")
    return (f"{what or f'{a} − {b}'} at rate point '{rate_point}' "
            f"(bpp {deltas['bpp']['delta']:+.4f}): " + "; ".join(parts) + ".")


def dpo_answer(deltas: dict[str, dict], rate_point: str) -> str:
    """:func:`paired_answer` for DPO − pre-trained."""
    return paired_answer(deltas, "vlic-dpo", "vlic", rate_point, "DPO − pre-trained")


def classical_answer(table: pd.DataFrame, learned: str, rate_point: str) -> list[str]:
    """Per metric at one learned rate point: the learned codec against the best classical codec that met the bit
    budget (``matched``); when none did, against the best one, flagged as spending more bits."""
    out = []
    t = table[table.rate_point == rate_point]
    for m in dict.fromkeys(t.metric):
        hb = describe(m)[1]
        g = t[t.metric == m]
        mine = g[g.codec == learned]
        rivals = g[g.family.astype(str).str.startswith("classical")]
        if mine.empty or rivals.empty:
            continue
        pool = rivals[rivals.matched] if rivals.matched.any() else rivals
        best = pool.sort_values("value", ascending=not hb, kind="stable").iloc[0]
        v = float(mine.value.iloc[0])
        ahead = (v > best.value) if hb else (v < best.value)
        word = "ties with" if np.isclose(v, best.value) else ("beats" if ahead else "trails")
        which = ("the best classical codec within the budget" if best.matched
                 else "the best classical codec (none met the budget; this one spends more bits)")
        out.append(f"{describe(m)[2]} at '{rate_point}': {learned} {v:.3f} [{mine.ci_low.iloc[0]:.3f}, "
                   f"{mine.ci_high.iloc[0]:.3f}] at {mine.bpp.iloc[0]:.3f} bpp {word} {which}, "
                   f"{best.codec} {best.value:.3f} [{best.ci_low:.3f}, {best.ci_high:.3f}] at {best.bpp:.3f} bpp.")
    return out
