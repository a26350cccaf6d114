"""Does the flow decoder do a generative decoder's job? Its samples against its own mean head μ, on the same files.

A codec with a deterministic mean head μ (the latent decoder's MSE estimate of the image) and a flow decoder that
samples around it has two decoders of every file. What the flow is for is the perception–distortion trade: an exact
posterior sample has **twice the MSE** of the posterior mean, so it sits 10·log10(2) ≈ **3.01 dB** below it in PSNR
(:data:`POSTERIOR_SAMPLE_GAP_DB`), and in return it is distributed like the photographs — *more* realistic than the
blurry mean. A flow decoder falls short of that when its samples are further than 3 dB below μ (noise, not detail)
or are not measurably more realistic than μ (FD/KID on patch features: lower is more like the originals).

:func:`flow_vs_mean` measures both for every (rate point, step count) of a
:class:`~vlic.eval.benchmark.Reconstructions`: distribution metrics as paired differences flow − μ over the same
patch positions (:func:`vlic.eval.metrics.distribution_difference`, bootstrap over positions) at each feature input
size asked for — the validated one and a robustness one — and the PSNR gap, mean over photos.
:func:`interval_verdict` turns an interval into words ("no measurable difference" when it holds 0), and
:func:`generative_verdicts` says, per rate point and step count, whether the flow decoder passes both tests.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

POSTERIOR_SAMPLE_GAP_DB = 10 * math.log10(2)   # PSNR of an exact posterior sample below the posterior mean's
TABLE_COLUMNS = ["codec", "rate_point", "steps", "metric", "input_size", "delta", "n", "ci_low", "ci_high"]
LOWER_IS_BETTER = ("fd_effnet", "kid_effnet", "fid", "kid", "fd_dino", "niqe", "brisque")


def interval_verdict(lo: float | None, hi: float | None, below: str, above: str) -> str:
    """``below`` when the whole interval is under 0, ``above`` when it is over 0, else "no measurable difference"."""
    if lo is None or hi is None or np.isnan(lo) or np.isnan(hi) or not (lo > 0 or hi < 0):
        return "no measurable difference"
    return below if hi < 0 else above


def flow_vs_mean(rec, photos: dict[str, np.ndarray], input_sizes: Sequence[int], metrics: Sequence[str] = ("fd_effnet", "kid_effnet"),
                 patch: int = 64, n_boot: int = 50, seed: int = 0) -> pd.DataFrame:
    """One row per (codec, rate point, steps, metric, input size): flow − μ of the same file. ``rec``: learned
    reconstructions with mean heads (systems named ``"<codec> (<n> steps)"`` or ``"<codec>"``; the first decoding
    seed of each is used for the distribution metrics, every seed for PSNR); ``input_sizes``: the feature network's
    input side for each row set (the first is the reported one). Distribution rows carry ``delta``, ``ci_low``,
    ``ci_high``, ``n`` (patches); PSNR rows (``metric`` "psnr", ``input_size`` 0) the mean over photos of flow − μ
    and the photos' interval."""
    from vlic.codec.quality import psnr
    from vlic.eval.metrics import distribution_difference, feature_network, hifid_patches, patch_features
    from vlic.stats import mean_ci

    names = list(photos)
    patches_of = lambda pxs: [q for px in pxs for q in hifid_patches(px, patch)]   # noqa: E731
    systems: dict[tuple[str, str, int], dict] = {}
    for row in rec.rows:
        base = row["codec"].split(" (")[0]
        if (base, row["rate_point"], names[0]) not in rec.mean_heads:
            continue
        key = (base, row["rate_point"], int(row["steps"]))
        systems.setdefault(key, {"name": row["codec"], "seeds": []})
        if row["seed"] not in systems[key]["seeds"]:
            systems[key]["seeds"].append(row["seed"])
    rows = []
    for size in input_sizes:
        fns = {m: feature_network(m, int(size)) for m in metrics}
        cache: dict = {}

        def feats(metric, key, pixels):
            net = "effnet" if metric.endswith("_effnet") else metric
            if (net, key) not in cache:
                cache[(net, key)] = patch_features(fns[metric], patches_of(pixels))
            return cache[(net, key)]

        for (codec, rp, steps), s in systems.items():
            s0 = min(s["seeds"])
            flow = [rec.pixels[(s["name"], rp, p, s0)] for p in names]
            mean = [rec.mean_heads[(codec, rp, p)] for p in names]
            for metric in metrics:
                d = distribution_difference(metric, feats(metric, "originals", list(photos.values())),
                                            feats(metric, ("flow", codec, rp, steps), flow),
                                            feats(metric, ("mean", codec, rp), mean), n_boot=n_boot, seed=seed)
                rows.append({"codec": codec, "rate_point": rp, "steps": steps, "metric": metric,
                             "input_size": int(size), **d})
    for (codec, rp, steps), s in systems.items():
        gaps = [np.mean([psnr(photos[p], rec.pixels[(s["name"], rp, p, sd)]) for sd in s["seeds"]])
                - psnr(photos[p], rec.mean_heads[(codec, rp, p)]) for p in names]
        d, lo, hi = mean_ci(np.asarray(gaps), 1000, seed)
        rows.append({"codec": codec, "rate_point": rp, "steps": steps, "metric": "psnr", "input_size": 0,
                     "delta": float(d), "ci_low": float(lo), "ci_high": float(hi), "n": len(gaps)})
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)   # no row (and these columns) for codecs without a mean head


def generative_verdicts(table: pd.DataFrame, input_size: int, realism_metrics: Sequence[str] = ("fd_effnet", "kid_effnet"),
                        bound_db: float = POSTERIOR_SAMPLE_GAP_DB) -> pd.DataFrame:
    """Per (codec, rate point, steps) from :func:`flow_vs_mean`'s table at feature input ``input_size``: is every
    realism metric's flow − μ interval below 0 (``more_realistic``), is the PSNR gap within ``bound_db`` of μ
    (``within_bound``: mean gap ≥ −bound), and both (``generative``)."""
    out = []
    for (codec, rp, steps), g in table.groupby(["codec", "rate_point", "steps"], sort=False):  # none: empty table
        real = g[(g.input_size == input_size) & g.metric.isin(realism_metrics)]
        gap = g[g.metric == "psnr"]
        more = bool(len(real) == len(realism_metrics) and (real.ci_high < 0).all())
        gap_db = float(gap.delta.iloc[0]) if len(gap) else float("nan")
        within = bool(gap_db >= -bound_db)
        out.append({"codec": codec, "rate_point": rp, "steps": int(steps), "input_size": int(input_size),
                    **{f"{m}_delta": float(real[real.metric == m].delta.iloc[0]) if (real.metric == m).any() else np.nan
                       for m in realism_metrics},
                    "psnr_gap_db": gap_db, "more_realistic": more, "within_bound": within,
                    "generative": more and within})
    return pd.DataFrame(out, columns=["codec", "rate_point", "steps", "input_size",
                                      *[f"{m}_delta" for m in realism_metrics], "psnr_gap_db", "more_realistic",
                                      "within_bound", "generative"])
