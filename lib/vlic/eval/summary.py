"""From per-photo measurements to the chapter's tables: means with bootstrap intervals, BD-rates (or the reason one
is undefined), the DPO-vs-pre-trained difference on identical photos, and Elo comparisons from per-patch distances.

Intervals are percentile bootstraps over the *independent* units — photos for whole-photo metrics (several decoding
seeds of a photo are averaged first), patches (all seeds and pairs of a patch together) for judged comparisons.
With three holdout photos a photo-level interval is coarse; it is reported as what it is.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from vlic.eval.ratedistortion import bd_rate
from vlic.stats import mean_ci


def per_photo(df: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame:
    """Average decoding seeds: one row per (codec, rate_point, photo)."""
    agg = {m: "mean" for m in ["bpp", *metrics]} | {"matched": "all", "family": "first", "target_bpp": "first"}
    return df.groupby(["codec", "rate_point", "photo"], sort=False).agg(agg).reset_index()


def results_table(df: pd.DataFrame, metrics: Sequence[str], n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """One row per (codec, rate point): mean bpp and metrics over photos with bootstrap intervals over photos."""
    photos = per_photo(df, metrics)
    rows = []
    for (codec, rp), g in photos.groupby(["codec", "rate_point"], sort=False):
        row = {"codec": codec, "rate_point": rp, "family": g["family"].iloc[0], "photos": len(g),
               "matched": bool(g["matched"].all()), "target_bpp": float(g["target_bpp"].mean())}
        for m in ["bpp", *metrics]:
            mean, lo, hi = mean_ci(g[m].to_numpy(), n_boot, seed)
            row |= {m: mean, f"{m}_ci_low": lo, f"{m}_ci_high": hi}
        rows.append(row)
    return pd.DataFrame(rows)


def _matrices(photos: pd.DataFrame, codec: str, metric: str, higher_better: bool, names: np.ndarray):
    """(photo × rate point) arrays of bpp and quality (negated when lower is better) for one codec."""
    g = photos[photos.codec == codec]
    bpp = g.pivot_table(index="photo", columns="rate_point", values="bpp").reindex(names)
    q = g.pivot_table(index="photo", columns="rate_point", values=metric).reindex(names)
    if bpp.isna().any().any() or q.isna().any().any():
        raise ValueError(f"codec '{codec}' lacks {metric} at some rate point for some photo")
    return bpp.to_numpy(), (q.to_numpy() if higher_better else -q.to_numpy())


def _curve(bpp: np.ndarray, q: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The RD curve averaged over photo ``rows`` (duplicates count twice); rate points that produced the same
    files on every photo (equal mean bpp) are one point."""
    r, d = bpp[rows].mean(axis=0), q[rows].mean(axis=0)
    order = np.argsort(r, kind="stable")
    r, d = r[order], d[order]
    keep = np.r_[True, np.diff(np.round(r, 6)) != 0]
    return r[keep], d[keep]


def bd_rate_entry(photos: pd.DataFrame, anchor: str, test: str, metric: str, higher_better: bool,
                  n_boot: int = 1000, seed: int = 0) -> dict:
    """BD-rate (%) of ``test`` vs ``anchor`` on the photo-averaged RD curves, with a bootstrap over photos; if it is
    undefined (fewer than 2 rate points, no quality overlap, non-monotone curve) ``{"undefined": reason}``."""
    names = np.array(sorted(photos.photo.unique()))
    head = {"anchor": anchor, "test": test, "metric": metric}
    try:
        ma = _matrices(photos, anchor, metric, higher_better, names)
        mt = _matrices(photos, test, metric, higher_better, names)
        every = np.arange(len(names))
        value = bd_rate(*_curve(*ma, every), *_curve(*mt, every))
    except ValueError as e:
        return head | {"bd_rate": None, "undefined": str(e)}
    rng = np.random.default_rng(seed)
    draws, failed, memo = [], 0, {}
    for _ in range(int(n_boot)):
        rows = np.sort(rng.integers(0, len(names), len(names)))
        key = rows.tobytes()  # few photos → few distinct resamples: compute each once
        if key not in memo:
            try:
                memo[key] = bd_rate(*_curve(*ma, rows), *_curve(*mt, rows))
            except ValueError:
                memo[key] = None
        if memo[key] is None:
            failed += 1
        else:
            draws.append(memo[key])
    lo, hi = (np.quantile(draws, [0.025, 0.975]) if draws else (np.nan, np.nan))
    return head | {"bd_rate": round(value, 3), "ci_low": round(float(lo), 3), "ci_high": round(float(hi), 3),
                   "bootstrap_undefined": failed, "undefined": None}


def bd_rate_answers(entries: Sequence[dict], systems: set[str], anchors: Sequence[str], labels: dict[str, str]
                    ) -> list[str]:
    """The BD-rates of ``systems`` against ``anchors`` in words, one line per :func:`bd_rate_entry` that has a number:
    "fewer bits at equal quality" when the whole interval is below 0, "more bits …" above, "no measurable
    difference" when it contains 0, "no interval" without one. ``labels``: metric name → how to print it."""
    out = []
    for e in entries:
        if e["test"] in systems and e["anchor"] in anchors and e.get("bd_rate") is not None:
            lo, hi = (np.nan if e.get(k) is None else float(e[k]) for k in ("ci_low", "ci_high"))
            verdict = ("no interval" if not np.isfinite([lo, hi]).all() else "fewer bits at equal quality" if hi < 0
                       else "more bits at equal quality" if lo > 0 else "no measurable difference")
            out.append(f"{labels[e['metric']]}: {e['test']} vs {e['anchor']} BD-rate {e['bd_rate']:+.1f} % "
                       f"[{lo:+.1f}, {hi:+.1f}] → {verdict}")
    return out


def paired_difference(photos: pd.DataFrame, a: str, b: str, rate_point: str, metrics: Sequence[str],
                      n_boot: int = 2000, seed: int = 0) -> dict:
    """Per-photo ``a − b`` at one rate point (same photos), mean and bootstrap interval over photos, per metric."""
    pa = photos[(photos.codec == a) & (photos.rate_point == rate_point)].set_index("photo")
    pb = photos[(photos.codec == b) & (photos.rate_point == rate_point)].set_index("photo")
    common = sorted(set(pa.index) & set(pb.index))
    if not common:
        raise ValueError(f"'{a}' and '{b}' share no photo at rate point '{rate_point}'")
    out = {}
    for m in ["bpp", *metrics]:
        mean, lo, hi = mean_ci((pa.loc[common, m] - pb.loc[common, m]).to_numpy(), n_boot, seed)
        out[m] = {"delta": round(mean, 5), "ci_low": round(lo, 5), "ci_high": round(hi, 5)}
    return out


LEARNED = ("vlic", "vlic-dpo")   # the study's two learned codecs (pre-trained, post-trained)
CODEC_GROUPS = {
    "learned vs classical": "the learned codecs against each classical codec at full size",
    "downscale-then-code": "each classical codec with and without downscaling (dashed)",
    "learned decoders": "the learned codecs' flow decoders and their mean heads μ (dotted)",
    "fine-tunes": "the pre-trained codec and its machine-vision fine-tunes",
}


def codec_groups(codecs: Sequence[str], groups: Sequence[str], most: int = 6) -> dict[str, tuple[str, list[str]]]:
    """Codecs in the groups a slide can show, each answering one question (:data:`CODEC_GROUPS`): group → (title,
    codecs), for every group asked for even when it has a single codec. A group longer than ``most`` keeps its first
    ``most`` and says so in its title. Names follow the harness: ``<codec>-ds`` downscales first, ``<codec> μ`` is a
    learned codec's mean head, ``ft-<name>`` a fine-tune."""
    learned = [c for c in codecs if c in LEARNED]
    tuned = [c for c in codecs if c.startswith("ft-")]
    classical = [c for c in codecs if not c.startswith(("vlic", "ft-")) and not c.endswith("-ds")]
    members = {
        "learned vs classical": learned + classical,
        "downscale-then-code": [c for b in classical for c in (b, f"{b}-ds") if c in codecs],
        "learned decoders": [c for b in learned for c in (b, f"{b} μ") if c in codecs],
        "fine-tunes": [c for c in codecs if c == "vlic"] + tuned,
    }
    unknown = [g for g in groups if g not in members]
    if unknown:
        raise ValueError(f"codec_groups: unknown group(s) {unknown}; known: {list(members)}")
    return {g: (CODEC_GROUPS[g] + (f" (first {most} of {len(members[g])})" if len(members[g]) > most else ""),
                members[g][:most]) for g in groups}
