"""Which FD-/KID-EffNet configuration to believe: the one that orders known degradations as expected — chosen with
no learned codec in sight.

Chapter 05's realism metrics (:mod:`vlic.eval.metrics`: Fréchet / kernel distance of the pooled EfficientNet-Lite0
feature of HiFiC-style patches, each patch resized to an input size first) have two free settings, the **patch
size** and the network's **input size**, and a verdict between two systems can flip with the input size (issue
#23). This module fixes them by a validation that involves none of the systems compared. On training photos (never
the holdout), every configuration of a grid measures how far degraded versions of the photos are from the originals
(same patch positions in both sets), for

* **severity ladders** — chapter 01's distortion families (:mod:`vlic.data.distortions`: blur, noise, JPEG quality,
  resampling, …), rung by rung, the random draw shared by the rungs of a photo; and
* **rate ladders** — the classical codecs (:class:`vlic.codec.baselines.BaselineCodec`) at decreasing bits per
  pixel, whole photos coded as in chapter 05; ``<codec>-ds`` is its downscale-then-code variant
  (:func:`vlic.eval.benchmark.downscaled_compress`), which meets every rate.

The expected order is known by construction: a more severe rung, or fewer bits, is further from the originals — and
every ladder starts at the **sampling floor**: undistorted patches of the same photos at *other* positions (real
photographs, different content — what a perfectly realistic decoder would draw), which should be closer to the
originals' distribution than any degraded rung. That first rung is the realism claim of chapter 05 in miniature
(plausible new texture beats a faithful but blurred or noisy copy), with no codec in it. A configuration scores by
its **rank agreement** with the expected order — Kendall's τ between rung and distance, per ladder and metric (FD and
KID), averaged — and, as further numbers, the share of rungs above the floor and of **adjacent rungs** in order.
Intervals: a bootstrap over photos (a photo is resampled with all its patches; the same draws for every
configuration, so two configurations are compared *paired*). The chosen configuration is the best-scoring one (τ
averaged over the draws, then the share above the floor, then the adjacent share); an exact tie goes to the cheaper
one (fewer network pixels: patches × input²). The floor falls as the patch count grows, so the verdict belongs to the
patch count it was measured at: validate at the count the claims are made at when the budget allows.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from vlic.data.distortions import FAMILIES, LADDERS, distort
from vlic.eval.metrics import PairedGrams, distance_of_features, feature_network, hifid_patches, patch_features

METRICS = ("fd_effnet", "kid_effnet")


@dataclass(frozen=True, order=True)
class Configuration:
    """One setting of the EfficientNet distribution metrics: ``patch``-px patches resized to ``input_size``²."""

    patch: int
    input_size: int

    @property
    def label(self) -> str:
        return f"patch {self.patch} px → input {self.input_size} px"


def configurations(patches: Sequence[int], input_sizes: Sequence[int]) -> list[Configuration]:
    """The grid patch size × input size, in that order."""
    return [Configuration(int(p), int(s)) for p in patches for s in input_sizes]


# ---- the ladders ------------------------------------------------------------------------------------------------------

@dataclass
class LadderPatches:
    """Patches of the originals and of every rung of every ladder, the same positions in each.

    ``patches[patch][key]``: list of uint8 patches, ``key`` = ``"originals"``, ``(ladder, level)`` or
    ``"elsewhere"`` — undistorted patches of the same photos at other positions (as many per photo): real photographs,
    different content, so their distance from the originals is the **sampling floor** of the metric at this patch count;
    ``photo_of[patch]``: (N,) index of each patch's photo in ``photos``; ``rungs``: one row per rung (ladder, kind,
    level — 0 the mildest —, strength, and for rate ladders the achieved bpp and downscale factor, means over photos).
    """

    photos: tuple[str, ...]
    patches: dict[int, dict]
    photo_of: dict[int, np.ndarray]
    rungs: pd.DataFrame


def _codec_ladder(name: str, px: np.ndarray, bpp: float) -> tuple[np.ndarray, float, float]:
    """(reconstruction, achieved bpp, downscale factor) of photo ``px`` by classical codec ``name`` (``jpeg``,
    ``webp``, ``avif``, or ``<codec>-ds``, downscale-then-code) at target ``bpp``."""
    from vlic.codec.baselines import BaselineCodec
    from vlic.eval.benchmark import downscaled_compress

    base = name.removesuffix("-ds")
    codec = BaselineCodec(base)
    n = px.shape[0] * px.shape[1]
    if name.endswith("-ds"):
        data, rec, scale, _, _ = downscaled_compress(codec, px, bpp)
        return rec, 8 * len(data) / n, scale
    r = codec.compress(px, bpp=bpp)
    return codec.decompress(r.data), r.bpp, 1.0


def _positions(n_available: int, per_photo: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Two disjoint sets of patch positions of one photo, ``per_photo`` each (0 or too many: half the grid each)."""
    per_photo = n_available // 2 if per_photo <= 0 or 2 * per_photo > n_available else per_photo
    pick = rng.permutation(n_available)
    return np.sort(pick[:per_photo]), np.sort(pick[per_photo : 2 * per_photo])


def ladder_patches(photos: dict[str, np.ndarray], patch_sizes: Sequence[int],
                   families: Sequence[str] = ("blur", "noise", "jpeg", "resample"),
                   codecs: Sequence[str] = ("jpeg-ds", "webp-ds"), bpp: Sequence[float] = (1.0, 0.5, 0.25, 0.12),
                   patches_per_photo: int = 4, seed: int = 0, levels: Sequence[int] | None = None) -> LadderPatches:
    """Degrade every photo (whole) along every ladder and cut the same patches from originals and rungs.

    Patch positions: the HiFiC grid at each patch size (:func:`vlic.eval.metrics.hifid_patches`), ``patches_per_photo``
    of them drawn per photo (0 = half the grid), seeded, and as many others for the ``"elsewhere"`` set. Severity
    ladders use the ``levels`` of :data:`vlic.data.distortions.LADDERS` (None = all), rate ladders the targets ``bpp``
    from most to fewest bits."""
    unknown = sorted(set(families) - set(FAMILIES))
    if unknown:
        raise ValueError(f"unknown distortion families {unknown}; known: {', '.join(FAMILIES)}")
    if not photos:
        raise ValueError("ladder_patches needs at least one photo")
    targets = sorted((float(b) for b in bpp), reverse=True)
    for fam in families:
        bad = sorted(set(levels or ()) - set(range(len(LADDERS[fam]))))
        if bad:
            raise ValueError(f"levels {bad} outside the {fam} ladder 0..{len(LADDERS[fam]) - 1}")
    rungs = [(fam, "severity", k, float(v)) for fam in families for k, v in enumerate(LADDERS[fam])
             if levels is None or k in set(levels)]
    rungs += [(c, "rate", k, b) for c in codecs for k, b in enumerate(targets)]
    sizes = [int(p) for p in dict.fromkeys(patch_sizes)]
    rng = np.random.default_rng(seed)
    patches = {p: {"originals": [], "elsewhere": []} | {(lad, k): [] for lad, _, k, _ in rungs} for p in sizes}
    photo_of = {p: [] for p in sizes}
    achieved = {(lad, k): [] for lad, kind, k, _ in rungs if kind == "rate"}
    for i, (name, px) in enumerate(photos.items()):
        pos = {}
        for p in sizes:
            cut = hifid_patches(px, p)
            pos[p], other = _positions(len(cut), patches_per_photo, rng)
            patches[p]["originals"] += [cut[j] for j in pos[p]]
            patches[p]["elsewhere"] += [cut[j] for j in other]
            photo_of[p] += [i] * len(pos[p])
        for lad, kind, k, strength in rungs:
            if kind == "severity":
                out = distort(px, lad, k, seed + i)   # the same random draw at every rung of this photo
            else:
                out, got_bpp, scale = _codec_ladder(lad, px, strength)
                achieved[(lad, k)].append((got_bpp, scale))
            for p in sizes:
                cut = hifid_patches(out, p)
                patches[p][(lad, k)] += [cut[j] for j in pos[p]]
    table = pd.DataFrame([{"ladder": lad, "kind": kind, "level": k, "strength": s,
                           "bpp": float(np.mean([a for a, _ in achieved[(lad, k)]])) if kind == "rate" else np.nan,
                           "scale": float(np.mean([b for _, b in achieved[(lad, k)]])) if kind == "rate" else np.nan}
                          for lad, kind, k, s in rungs])
    return LadderPatches(tuple(photos), patches, {p: np.asarray(v) for p, v in photo_of.items()}, table)


# ---- distances --------------------------------------------------------------------------------------------------------

def photo_draws(n_photos: int, n_boot: int, seed: int = 0) -> np.ndarray:
    """(n_boot, n_photos) photo indices drawn with replacement — the bootstrap over photos, shared by every
    configuration."""
    return np.random.default_rng(seed).integers(0, n_photos, size=(int(n_boot), int(n_photos)))


def ladder_distances(lp: LadderPatches, configs: Sequence[Configuration], metrics: Sequence[str] = METRICS,
                     n_boot: int = 0, seed: int = 0, feature_fn: Callable[[int], Callable] | None = None
                     ) -> tuple[pd.DataFrame, pd.DataFrame, dict[Configuration, float]]:
    """Distance of every rung from the originals, at every configuration.

    Returns (``values``: one row per configuration × metric × rung — patch, input_size, metric, ladder, kind, level,
    strength, bpp, value, n_patches — plus the sampling floor, ladder ``"elsewhere"`` of kind ``"floor"`` (level −1);
    ``boots``: the same rows per bootstrap draw over photos, column ``draw``; the
    seconds spent per configuration, features and distances). ``feature_fn(input_size)`` gives the feature network
    ((B, 3, h, w) in [0, 1] → (B, D)); default EfficientNet-Lite0 (:func:`vlic.eval.metrics.feature_network`).
    Features are computed once per configuration and shared by both metrics."""
    feature_fn = feature_fn or (lambda size: feature_network("fd_effnet", size))
    draws = photo_draws(len(lp.photos), n_boot, seed) if n_boot > 0 else np.zeros((0, len(lp.photos)), int)
    rung_rows = lp.rungs.to_dict("records") + [{"ladder": "elsewhere", "kind": "floor", "level": -1,
                                                 "strength": np.nan, "bpp": np.nan, "scale": np.nan}]
    values, boots, seconds = [], [], {}
    for cfg in configs:
        t0 = time.perf_counter()
        sets = lp.patches[cfg.patch]
        fn = feature_fn(cfg.input_size)
        f_ref = patch_features(fn, sets["originals"])
        rows_of = [np.flatnonzero(lp.photo_of[cfg.patch] == i) for i in range(len(lp.photos))]
        idx = [np.concatenate([rows_of[i] for i in d]) for d in draws]
        for rung in rung_rows:
            f = patch_features(fn, sets["elsewhere" if rung["kind"] == "floor" else (rung["ladder"], rung["level"])])
            grams = PairedGrams(f_ref, f) if len(idx) else None
            for name in metrics:
                base = {"patch": cfg.patch, "input_size": cfg.input_size, "metric": name, **rung}
                values.append(base | {"value": distance_of_features(name, f_ref, f), "n_patches": len(f)})
                boots += [base | {"draw": b, "value": v} for b, v in enumerate(grams.distances(name, idx) if idx else [])]
        seconds[cfg] = time.perf_counter() - t0
    return pd.DataFrame(values), pd.DataFrame(boots), seconds


# ---- scoring ----------------------------------------------------------------------------------------------------------

def kendall_tau(values: np.ndarray) -> np.ndarray:
    """Kendall's τ-a between rung (position along the last axis, mildest first) and ``values``: (concordant −
    discordant pairs) / all pairs; equal values count as neither. Any leading axes are kept."""
    v = np.asarray(values, float)
    n = v.shape[-1]
    if n < 2:
        raise ValueError(f"Kendall's τ needs at least 2 rungs, got {n}")
    i, j = np.triu_indices(n, 1)
    return np.sign(v[..., j] - v[..., i]).mean(-1)


def adjacent_ordered(values: np.ndarray) -> np.ndarray:
    """Share of adjacent rungs whose distance grows with severity (ties count as wrong)."""
    return (np.diff(np.asarray(values, float), axis=-1) > 0).mean(-1)


KEYS = ["patch", "input_size"]
FLOOR = "floor"   # kind of the sampling-floor row of :func:`ladder_distances`


def ladder_agreement(values: pd.DataFrame) -> pd.DataFrame:
    """Per configuration, metric and ladder (and ``draw``, if the table has one): Kendall's τ and the adjacent share
    of the distances ordered by ``level``. When the table has the sampling floor (kind ``"floor"``: real photographs
    at other positions) it is every ladder's mildest rung — the expected order is *real photographs, then increasing
    severity*, so a configuration that cannot tell a mild rung from real photographs at this patch count loses τ —
    and ``above_floor`` is the share of rungs further from the originals than it. ``kendall_tau_rungs``: τ of the
    rungs alone. ``values`` needs patch, input_size, metric, ladder, level, value (and kind, for the floor)."""
    by = KEYS + ["metric"] + (["draw"] if "draw" in values else [])
    kind = values["kind"] if "kind" in values else pd.Series("", index=values.index)
    floor = values[kind == FLOOR].set_index(by)["value"] if (kind == FLOOR).any() else None
    out = []
    for _, g in values[kind != FLOOR].groupby("ladder", sort=False):   # ladders may differ in length
        wide = g.pivot_table(index=by + ["ladder"], columns="level", values="value", aggfunc="first", sort=False)
        if wide.isna().any().any():
            raise ValueError(f"ladder '{g.ladder.iloc[0]}' lacks a rung in some configuration")
        v = wide.sort_index(axis=1).to_numpy()
        t = wide.index.to_frame(index=False)
        t["kendall_tau_rungs"] = kendall_tau(v)
        if floor is not None:   # the floor is the mildest rung of every ladder: real photographs come first
            f = floor.reindex(pd.MultiIndex.from_frame(t[by])).to_numpy()
            if np.isnan(f).any():
                raise ValueError("the sampling floor is missing for some configuration, metric or draw")
            t["above_floor"] = (v > f[:, None]).mean(1)
            v = np.concatenate([f[:, None], v], axis=1)
        t["kendall_tau"], t["adjacent_ordered"] = kendall_tau(v), adjacent_ordered(v)
        out.append(t)
    return pd.concat(out, ignore_index=True)


def score_configurations(values: pd.DataFrame, boots: pd.DataFrame | None = None, level: float = 0.95) -> pd.DataFrame:
    """One row per configuration: Kendall's τ, the adjacent share and the share of rungs above the sampling floor,
    averaged over ladders and metrics; τ per metric and per kind of ladder; the cost (network pixels: patches × input²,
    relative to the cheapest). With ``boots`` (:func:`ladder_distances`): 95 % intervals over photo draws,
    ``kendall_tau_boot`` = τ averaged over the draws (how reliably the order survives a change of photos) and the
    paired difference of it from the chosen configuration. ``rank`` 1 = chosen: highest τ (over draws when there
    are draws), then the most rungs above the floor, then the adjacent share, then the lower cost."""
    per = ladder_agreement(values)
    kind = values.drop_duplicates("ladder").set_index("ladder")["kind"]
    per["kind"] = per.ladder.map(kind)
    cols = [c for c in ("kendall_tau", "adjacent_ordered", "above_floor", "kendall_tau_rungs") if c in per]
    scores = per.groupby(KEYS, sort=False)[cols].mean().reset_index()
    scores["ladders"] = per.groupby(KEYS, sort=False)["ladder"].nunique().to_numpy()
    idx = scores.set_index(KEYS).index
    for col, g in [(f"tau_{m}", per[per.metric == m]) for m in per.metric.unique()] + \
                  [(f"tau_{k}", per[per.kind == k]) for k in per.kind.unique()]:
        scores[col] = idx.map(g.groupby(KEYS)["kendall_tau"].mean()).to_numpy()
    n_patches = values.groupby(KEYS)["n_patches"].first() if "n_patches" in values else None
    pixels = [(n_patches[(p, s)] if n_patches is not None else 1) * s * s for p, s in zip(scores.patch, scores.input_size)]
    scores["cost"] = np.asarray(pixels, float) / min(pixels)
    a = (1 - level) / 2
    draws = None
    if boots is not None and len(boots):
        draws = ladder_agreement(boots).groupby(KEYS + ["draw"])[cols].mean()
        scores["kendall_tau_boot"] = idx.map(draws["kendall_tau"].groupby(KEYS).mean()).to_numpy()
        for col in cols:
            q = draws[col].groupby(KEYS).quantile([a, 1 - a]).unstack()
            scores[f"{col}_low"], scores[f"{col}_high"] = idx.map(q[a]).to_numpy(), idx.map(q[1 - a]).to_numpy()
    key = "kendall_tau_boot" if draws is not None else "kendall_tau"
    second = scores["above_floor"] if "above_floor" in scores else pd.Series(0.0, index=scores.index)
    order = sorted(range(len(scores)), key=lambda r: (-round(scores[key][r], 9), -round(second[r], 9),
                                                      -round(scores.adjacent_ordered[r], 9), scores.cost[r],
                                                      scores.input_size[r], scores.patch[r]))
    scores["rank"] = np.argsort(order) + 1
    scores = scores.sort_values("rank").reset_index(drop=True)
    if draws is not None:
        best = tuple(int(v) for v in scores.loc[0, KEYS])
        tau = draws["kendall_tau"]
        diff = tau - tau.xs(best, level=KEYS).reindex(tau.index.get_level_values("draw")).to_numpy()
        d, idx = diff.groupby(KEYS), scores.set_index(KEYS).index
        scores["tau_minus_chosen"] = idx.map(d.mean()).to_numpy()
        scores["tau_minus_chosen_low"] = idx.map(d.quantile(a)).to_numpy()
        scores["tau_minus_chosen_high"] = idx.map(d.quantile(1 - a)).to_numpy()
    return scores


def choose_configuration(scores: pd.DataFrame) -> tuple[Configuration, str]:
    """The configuration ranked first by :func:`score_configurations`, and why (one line)."""
    s = scores.sort_values("rank").reset_index(drop=True)
    best = Configuration(int(s.patch[0]), int(s.input_size[0]))
    key = "kendall_tau_boot" if "kendall_tau_boot" in s else "kendall_tau"

    def shown(r) -> str:
        out = f"τ = {s.kendall_tau[r]:.3f}"
        if key == "kendall_tau_boot":
            out += f", over photo draws {s.kendall_tau_boot[r]:.3f} [{s.kendall_tau_low[r]:.3f}, {s.kendall_tau_high[r]:.3f}]"
        if "above_floor" in s:
            out += f", rungs above the sampling floor {100 * s.above_floor[r]:.0f} %"
        return out + f", adjacent rungs in order {100 * s.adjacent_ordered[r]:.0f} %"

    if len(s) == 1:
        return best, f"{best.label}: the only configuration ({shown(0)})"
    runner = Configuration(int(s.patch[1]), int(s.input_size[1]))
    same = [c for c in (key, "above_floor", "adjacent_ordered") if c in s]
    if all(round(s[c][0], 9) == round(s[c][1], 9) for c in same):
        why = f"ties with {runner.label} ({shown(0)}) and costs {s.cost[1] / s.cost[0]:.1f}× less"
    else:
        gap = ("" if "tau_minus_chosen" not in s else
               f"; the runner-up's paired difference in τ over draws {s.tau_minus_chosen[1]:+.3f} "
               f"[{s.tau_minus_chosen_low[1]:+.3f}, {s.tau_minus_chosen_high[1]:+.3f}]")
        why = f"orders the ladders best ({shown(0)}) ahead of {runner.label} ({shown(1)}{gap})"
    return best, f"{best.label}: {why}"


# ---- the whole validation ---------------------------------------------------------------------------------------------

@dataclass
class RealismValidation:
    """The outcome of :func:`validate_realism_configuration`: every distance (``values``, ``boots``), the scores per
    configuration, the chosen configuration, why, and the seconds it took (``seconds``; per configuration in
    ``scores.seconds``)."""

    values: pd.DataFrame
    boots: pd.DataFrame
    scores: pd.DataFrame
    rungs: pd.DataFrame
    chosen: Configuration
    reason: str
    seconds: float
    photos: tuple[str, ...] = field(default_factory=tuple)
    cpu_seconds: float = float("nan")   # CPU time of this process (what one free core would take)

    def robustness_input(self, candidates: Sequence[int] | None = None) -> int:
        """The input size of the robustness row: of ``candidates`` (default: the grid's), the one furthest from the
        chosen input size (ties: the larger)."""
        cands = sorted({int(c) for c in (candidates if candidates is not None else self.scores.input_size)})
        others = [c for c in cands if c != self.chosen.input_size]
        if not others:
            raise ValueError(f"no input size other than the chosen {self.chosen.input_size} among {cands}")
        return max(others, key=lambda c: (abs(c - self.chosen.input_size), c))


def validate_realism_configuration(photos: dict[str, np.ndarray], patch_sizes: Sequence[int] = (64,),
                                   input_sizes: Sequence[int] = (96, 160, 224),
                                   families: Sequence[str] = ("blur", "noise", "jpeg", "resample"),
                                   codecs: Sequence[str] = ("jpeg-ds", "webp-ds"),
                                   bpp: Sequence[float] = (0.5, 0.25, 0.12), patches_per_photo: int = 4,
                                   metrics: Sequence[str] = METRICS, n_boot: int = 50, seed: int = 0,
                                   levels: Sequence[int] | None = (1, 3, 5),
                                   feature_fn: Callable[[int], Callable] | None = None) -> RealismValidation:
    """Measure every configuration of the grid ``patch_sizes`` × ``input_sizes`` on the severity and rate ladders of
    ``photos`` (training photos — never the photos the metric will judge systems on), score each by rank agreement
    and choose one (:func:`choose_configuration`). Deterministic for a given ``seed``. The defaults (every other rung
    of the severity ladders, three rates, 4 + 4 patches per photo) keep the grid 64 px × {96, 160, 224} near one CPU
    minute on 8 photos; on the same features, all six rungs and four rates rank the candidates in the same order."""
    t0, c0 = time.perf_counter(), time.process_time()
    configs = configurations(patch_sizes, input_sizes)
    lp = ladder_patches(photos, patch_sizes, families, codecs, bpp, patches_per_photo, seed, levels)
    values, boots, seconds = ladder_distances(lp, configs, metrics, n_boot, seed, feature_fn)
    scores = score_configurations(values, boots if len(boots) else None)
    scores["seconds"] = [seconds[Configuration(int(p), int(s))] for p, s in zip(scores.patch, scores.input_size)]
    chosen, reason = choose_configuration(scores)
    return RealismValidation(values, boots, scores, lp.rungs, chosen, reason, time.perf_counter() - t0, lp.photos,
                             time.process_time() - c0)
