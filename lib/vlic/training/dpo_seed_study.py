"""Is chapter 04's result a property of the recipe or of one run? The same post-training with other seeds.

A DPO run's randomness — which crops become candidates, the decoder's noise when it draws them, which buffered
pairs make up a batch, the held-out noise aside — changes what the decoder learns. At laptop scale (tens of steps
on eight photos) one run's held-out win-rate, even with its bootstrap interval over patches, says little about the
recipe: that interval treats the trained decoder as fixed. :func:`replicate` reruns the chapter's post-training with
only ``seed`` changed and evaluates it exactly as the main run (same bitstreams, patches, evaluation noise, judges);
:func:`across_seeds` summarises the runs with a t-interval over seeds, the independent units of training
randomness. Replicates run in parallel processes and resume from ``models/codec_dpo.resume/seed<k>/`` like the
main run.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from vlic.config import as_list


def replicate(values: dict, seed: int) -> dict:
    """Post-train with chapter 04's parameters ``values`` but ``seed``; return its held-out win-rates and bpp."""
    import torch

    from vlic.codec.image_codec import ImageCodec
    from vlic.data.splits import Crops
    from vlic.eval.decoder_comparison import bitstream_rates, compare_on_same_bitstream
    from vlic.eval.heldout import crop_boxes, score_comparison, win_rates
    from vlic.training.dpo_setup import setup_dpo
    from vlic.training.dpo_trainer import post_trained_checkpoint, train_dpo

    t0 = time.perf_counter()
    if int(values.get("threads", 0)):
        torch.set_num_threads(int(values["threads"]))
    setup = setup_dpo(**values)
    cfg = dataclasses.replace(setup.cfg, seed=int(seed))
    result = train_dpo(setup.base, list(setup.train_images.values()), setup.reward, cfg,
                       resume_dir=setup.resume_dir / f"seed{seed}", reward_name=setup.reward.name, progress=False)
    dpo = post_trained_checkpoint(setup.base, result, cfg)
    crops = Crops.load(Path(values["prepared_dir"]) / "holdout_crops.npz")
    base_codec = ImageCodec(setup.base)
    paired = compare_on_same_bitstream(base_codec, {"dpo": dpo.model, "pretrained": setup.base.model}, setup.holdout,
                                       crop_boxes(crops, setup.holdout), int(crops.pixels.shape[1]),
                                       tuple(int(s) for s in as_list(values["eval_seeds"])), steps=cfg.sample_steps)
    scored = score_comparison(paired, setup.reward, setup.referee_names, setup.vlm, setup.cache,
                              int(values["reward_seeds"]), int(values["reward_orders"]))
    rates = pd.DataFrame(bitstream_rates({"pretrained": base_codec, "dpo": ImageCodec(dpo)}, setup.holdout))
    bpp = rates.groupby("codec")["bpp"].mean()
    row = {"seed": int(seed)}
    for name, w in win_rates(scored, ["training_judge", *setup.referee_names], int(values["bootstrap"]),
                             int(seed)).items():
        row.update({name: round(w.winrate, 4), f"{name}_ci_low": round(w.ci_low, 4),
                    f"{name}_ci_high": round(w.ci_high, 4)})
    row.update({"bpp_change_percent": round(100 * (bpp["dpo"] / bpp["pretrained"] - 1), 3),
                "implicit_accuracy_second_half": round(float(np.mean(
                    [c["implicit_accuracy"] for c in result.curves[len(result.curves) // 2:]])), 4),
                "acceptance_rate": round(result.stats["acceptance_rate"], 4),
                "train_seconds": round(result.seconds, 1), "seconds": round(time.perf_counter() - t0, 1)})
    return row


def _replicate_job(job: tuple[dict, int]) -> dict:
    return replicate(*job)


def replicates(values: dict, seeds: Sequence[int], workers: int = 1) -> pd.DataFrame:
    """:func:`replicate` for every seed, in ``workers`` parallel processes (one torch thread each, as configured)."""
    jobs = [(dict(values), int(s)) for s in seeds]
    if not jobs:
        return pd.DataFrame()
    if workers <= 1 or len(jobs) == 1:
        return pd.DataFrame([_replicate_job(j) for j in jobs])
    from vlic.processes import worker_pool

    with worker_pool(min(workers, len(jobs))) as pool:  # workers die with this process (SIGKILL included)
        return pd.DataFrame(list(pool.map(_replicate_job, jobs)))


def across_seeds(winrates: Sequence[float], level: float = 0.95) -> dict:
    """Mean of per-seed win-rates with a Student-t interval over seeds; how many seeds land above ½."""
    from scipy import stats

    x = np.asarray(winrates, dtype=float)
    if x.size == 0:
        raise ValueError("across_seeds needs at least one run")
    mean = float(x.mean())
    if x.size > 1:
        sd = float(x.std(ddof=1))
        half = float(stats.t.ppf(0.5 + level / 2, x.size - 1) * sd / np.sqrt(x.size))
    else:
        sd, half = float("nan"), float("nan")
    return {"n": int(x.size), "mean": round(mean, 4), "sd": round(sd, 4), "ci_low": round(mean - half, 4),
            "ci_high": round(mean + half, 4), "min": round(float(x.min()), 4), "max": round(float(x.max()), 4),
            "above_half": int((x > 0.5).sum())}
