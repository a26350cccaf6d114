"""Is chapter 04's result a property of the recipe or of one run? The same post-training with other seeds.

A DPO run's randomness — which crops become candidates, the decoder's noise when it draws them, which buffered
pairs make up a batch, the held-out noise aside — changes what the decoder learns. At laptop scale (tens of steps
on eight photos) one run's held-out win-rate, even with its bootstrap interval over patches, says little about the
recipe: that interval treats the trained decoder as fixed. :func:`replicate` reruns the chapter's post-training with
only ``seed`` changed and evaluates it exactly as the main run (same bitstreams, patches, evaluation noise, judges);
:func:`across_seeds` summarises the runs with a t-interval over seeds, the independent units of training
randomness. Replicates run in parallel processes and resume from ``models/codec_dpo.resume/seed<k>/`` like the
main run.

One pre-trained codec is itself one draw: a pre-training with another seed — or the same seed on a machine whose
floats differ in the last bit — is a slightly different model, and a recipe tuned on one model may not carry over.
So a replicate names its pre-trained model too (``pretrain_seed``: 0 is chapter 02's ``codec_<rate>``, k > 0 its
replicate ``replicates/codec_<rate>_seed<k>``), and :func:`two_level` reports the effect over pre-trained models × DPO seeds
with the pre-trained models as the unit of the interval.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from vlic.config import as_list


def pretrained_path(models_dir: str | Path, rate: str, pretrain_seed: int) -> Path:
    """Chapter 02's checkpoint of ``rate`` for pre-training seed replicate ``pretrain_seed`` (0 = the main model)."""
    if int(pretrain_seed) == 0:
        return Path(models_dir) / f"codec_{rate}.safetensors"
    return Path(models_dir) / "replicates" / f"codec_{rate}_seed{int(pretrain_seed)}.safetensors"


def replicate(values: dict, seed: int, pretrain_seed: int = 0, on: str = "holdout", name: str = "") -> dict:
    """Post-train with chapter 04's parameters ``values`` but ``seed`` (DPO) from pre-trained model ``pretrain_seed``;
    return its win-rates and bpp on the holdout photos (``on="holdout"``, chapter 04's patches) or on the validation
    photos (``on="validation"``: ``values["validation_images"]``, left out of post-training; chapter 04's validation
    patches) — where a recipe may be chosen. ``name``: a run of another recipe than the chapter's (e.g. the oracle
    check's reward) resumes from a folder of its own, ``<name>_seed<k>``."""
    import torch

    from vlic.codec.families import image_codec, load
    from vlic.data.splits import Crops, crop_boxes, random_crops
    from vlic.eval.decoder_comparison import bitstream_rates, compare_on_same_bitstream
    from vlic.eval.heldout import score_comparison, win_rates, winrate_row
    from vlic.training.dpo.setup import setup_dpo
    from vlic.training.dpo.trainer import post_trained_checkpoint, train_dpo

    t0 = time.perf_counter()
    if int(values.get("threads", 0)):
        torch.set_num_threads(int(values["threads"]))

    setup = setup_dpo(**values)
    resume = setup.resume_dir / (f"{name}_seed{seed}" if name else f"seed{seed}")
    if on == "validation":
        if not setup.validation:
            raise ValueError("on='validation' needs validation_images (training photos left out of post-training)")
        # a search over recipes must not resume another recipe's run: key the scratch folder by the recipe; it lives
        # beside the verdict cache (scratch, gitignored), not inside the DVC output codec_dpo.resume
        resume = (Path(values["cache_path"]).parent / "dpo_validation" / _recipe_key(values)
                  / f"pretrain{int(pretrain_seed)}_seed{seed}")
    elif on != "holdout":
        raise ValueError(f"on must be 'holdout' or 'validation', got {on!r}")
    if int(pretrain_seed):
        base_path = pretrained_path(values["models_dir"], values["rate"], pretrain_seed)
        if not base_path.is_file():
            raise FileNotFoundError(f"no pre-trained replicate at {base_path}: set codec.replicate_seeds and run "
                                    "`dvc repro pretrain`")
        setup = dataclasses.replace(setup, base=load(base_path))
        if on == "holdout":
            resume = setup.resume_dir / f"{name + '_' if name else ''}pretrain{int(pretrain_seed)}_seed{seed}"
    cfg = dataclasses.replace(setup.cfg, seed=int(seed))
    result = train_dpo(setup.base, list(setup.train_images.values()), setup.reward, cfg,
                       resume_dir=resume, reward_name=setup.reward.name, progress=False)
    dpo = post_trained_checkpoint(setup.base, result, cfg)
    crops = Crops.load(Path(values["prepared_dir"]) / "holdout_crops.npz")
    photos = setup.holdout
    if on == "validation":  # chapter 04's validation patches: 32 random crops per photo, crop seed = seed + 1
        photos = setup.validation
        crops = random_crops(photos, int(crops.pixels.shape[1]), 32, seed=int(values["seed"]) + 1)
    base_codec = image_codec(setup.base)
    # every run of one base is compared with the same pre-trained decodes: kept beside the verdict cache (scratch)
    paired = compare_on_same_bitstream(base_codec, {"dpo": dpo.model, "pretrained": setup.base.model}, photos,
                                       crop_boxes(crops, photos), int(crops.pixels.shape[1]),
                                       tuple(int(s) for s in as_list(values["eval_seeds"])), steps=cfg.sample_steps,
                                       memo=Path(values["cache_path"]).parent / "decodes",
                                       base_fingerprint=setup.base.fingerprint, fixed=("pretrained",))
    scored = score_comparison(paired, setup.reward, setup.referee_names, setup.vlm, setup.cache,
                              int(values["reward_seeds"]), int(values["reward_orders"]))
    rates = pd.DataFrame(bitstream_rates({"pretrained": base_codec, "dpo": image_codec(dpo)}, photos))
    bpp = rates.groupby("codec")["bpp"].mean()
    row = {"pretrain_seed": int(pretrain_seed), "seed": int(seed), "base_fingerprint": setup.base.fingerprint}
    row.update(winrate_row(win_rates(scored, ["training_judge", *setup.referee_names], int(values["bootstrap"]),
                                     int(seed))))
    row.update({"bpp_change_percent": round(100 * (bpp["dpo"] / bpp["pretrained"] - 1), 3),
                "implicit_accuracy_second_half": round(float(np.mean(
                    [c["implicit_accuracy"] for c in result.curves[len(result.curves) // 2:]])), 4),
                "acceptance_rate": round(result.stats["acceptance_rate"], 4),
                "train_seconds": round(result.seconds, 1), "seconds": round(time.perf_counter() - t0, 1)})
    return row


def _recipe_key(values: dict) -> str:
    import hashlib
    import json

    keep = {k: v for k, v in sorted(values.items()) if k not in ("threads", "robustness_workers", "checkpoint_every")}
    return hashlib.sha256(json.dumps(keep, sort_keys=True, default=str).encode()).hexdigest()[:10]


def _replicate_job(job: tuple) -> dict:
    return replicate(*job)


def _replicate_jobs(values: dict, seeds: Sequence[int | tuple[int, int]]) -> list[tuple]:
    return [(dict(values), int(s[1]), int(s[0])) if isinstance(s, (tuple, list)) else (dict(values), int(s), 0)
            for s in seeds]


def replicates(values: dict, seeds: Sequence[int | tuple[int, int]], workers: int = 1) -> pd.DataFrame:
    """:func:`replicate` for every DPO seed, or every ``(pretrain_seed, seed)`` pair, in ``workers`` parallel processes
    (one torch thread each, as configured)."""
    return _run(_replicate_jobs(values, seeds), workers)


def oracle_check(values: dict, seeds: Sequence[int] = (0,), judge: str = "psnr", workers: int = 1) -> pd.DataFrame:
    """The recipe's oracle check: chapter 04's post-training with ``judge`` alone as the reward (an *oracle*: a
    preference the decoder can learn — for ``psnr``, "be closer to the original"), with the same judge flipped
    (``flipped(<judge>)``) and with a coin for a judge (``coin``: no preference at all, the null; both in
    :mod:`vlic.judges.oracle`), each for every DPO seed, scored on the holdout by ``judge``. The recipe passes when
    the oracle's held-out win-rate is above ½ and the flipped oracle's below: a recipe that cannot learn a reward it
    can reach has a defect, and one whose flipped run also "improves" measures something other than the preference.
    The null says how far training with no preference moves the same win-rate — the drift the other two are read
    against. One row per run: ``reward``, ``seed``, ``winrate`` (by ``judge``, ties half) and its interval over
    patches."""
    jobs = _oracle_jobs(values, seeds, judge)
    return _oracle_table(jobs, _run(jobs, workers), judge)


def _oracle_jobs(values: dict, seeds: Sequence[int], judge: str) -> list[tuple]:
    from vlic.judges.oracle import COIN

    jobs = []
    for reward in (judge, f"flipped({judge})", COIN):
        referees = [r for r in as_list(values["referees"]) if r != judge]
        # the held-out judge of the flipped and null runs is the plain judge, a referee there (never a training judge)
        run = {**values, "reward_judges": reward,
               "referees": ",".join(referees if reward == judge else [judge, *referees])}
        safe = reward.replace("(", "_").replace(")", "")
        jobs += [(run, int(s), 0, "holdout", f"oracle_{safe}") for s in seeds]
    return jobs


def _oracle_table(jobs: list[tuple], table: pd.DataFrame, judge: str) -> pd.DataFrame:
    rows = []
    for (run, seed, *_), row in zip(jobs, table.to_dict("records")):
        col = "training_judge" if run["reward_judges"] == judge else judge
        rows.append({"reward": run["reward_judges"], "seed": seed, "judge": judge, "winrate": row[col],
                     "ci_low": row[f"{col}_ci_low"], "ci_high": row[f"{col}_ci_high"],
                     "bpp_change_percent": row["bpp_change_percent"], "train_seconds": row["train_seconds"]})
    return pd.DataFrame(rows)


def oracle_verdict(table: pd.DataFrame) -> dict:
    """Passed when every oracle run's win-rate is above ½ and every flipped run's below; the means per reward (the
    null's too, when the table has coin runs: not part of the verdict, the baseline to read it against)."""
    from vlic.judges.oracle import COIN

    flip = table["reward"].str.startswith("flipped(")
    null = table["reward"] == COIN
    oracle, flipped = table.loc[~flip & ~null, "winrate"], table.loc[flip, "winrate"]
    out = {"passed": bool(len(oracle) and len(flipped) and (oracle > 0.5).all() and (flipped < 0.5).all()),
           "oracle_winrate_mean": round(float(oracle.mean()), 4),
           "flipped_winrate_mean": round(float(flipped.mean()), 4), "run_count": int(len(table))}
    if null.any():
        out["null_winrate_mean"] = round(float(table.loc[null, "winrate"].mean()), 4)
    return out


def recipe_search(values: dict, candidates: dict[str, dict], pretrain_seeds: Sequence[int], seeds: Sequence[int],
                  workers: int = 1) -> pd.DataFrame:
    """Every candidate recipe (name → parameter overrides of chapter 04's ``values``) × pre-trained model × DPO seed,
    scored on the validation photos (``values["validation_images"]``) — never on the holdout. One row per run."""
    jobs, names = [], []
    for name, overrides in candidates.items():
        for p in pretrain_seeds:
            for d in seeds:
                jobs.append(({**values, **overrides}, int(d), int(p), "validation"))
                names.append(name)
    table = _run(jobs, workers)
    table.insert(0, "recipe", names)
    return table


class Background:
    """Chapter 04's replicate runs (:func:`replicates`) and oracle check (:func:`oracle_check`), started together in
    ``workers`` processes *before* the chapter's main run, which then trains beside them: the main run's trainer uses
    one thread and its judge part of another, so the cores are otherwise half idle while it trains. Every run is
    the same as when started alone (each is seeded and single-threaded), so only the wall time changes.

    The jobs are handed out so that runs from different pre-trained models start first: a run whose base's decodes
    are already in the decode memo (:func:`vlic.eval.decoder_comparison.compare_on_same_bitstream`) skips decoding
    them, and two runs that start together on one base would both miss. :meth:`replicates` and :meth:`oracle` wait
    for their runs and return the tables :func:`replicates` and :func:`oracle_check` return, rows in their order."""

    def __init__(self, values: dict, seeds: Sequence[int | tuple[int, int]], oracle_seeds: Sequence[int] = (),
                 judge: str = "psnr", workers: int = 1):
        self.started = time.perf_counter()
        self.judge = judge
        self._replicate_jobs = _replicate_jobs(values, seeds)
        self._oracle_jobs = _oracle_jobs(values, oracle_seeds, judge) if oracle_seeds else []
        jobs = self._replicate_jobs + self._oracle_jobs
        self._pool = None
        self._futures: list = []
        if jobs:
            from vlic.processes import worker_pool

            self._pool = worker_pool(max(1, min(workers, len(jobs))))
            futures: dict[int, object] = {}
            for i in start_order([j[2] for j in jobs]):
                futures[i] = self._pool.submit(_replicate_job, jobs[i])
            self._futures = [futures[i] for i in range(len(jobs))]
        self.finished: float | None = None

    def _rows(self, futures: list) -> pd.DataFrame:
        try:
            table = pd.DataFrame([f.result() for f in futures])
        except BaseException:
            self.close()
            raise
        if all(f.done() for f in self._futures):
            self.finished = time.perf_counter()
            self.close()
        return table

    def replicates(self) -> pd.DataFrame:
        return self._rows(self._futures[: len(self._replicate_jobs)])

    def oracle(self) -> pd.DataFrame:
        return _oracle_table(self._oracle_jobs, self._rows(self._futures[len(self._replicate_jobs):]), self.judge)

    def seconds(self) -> float:
        """Wall time from the start until the last run finished (or until now)."""
        return (self.finished or time.perf_counter()) - self.started

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


def start_order(bases: Sequence[int]) -> list[int]:
    """Indices of jobs whose pre-trained models are ``bases`` in the order to start them: round robin over the
    models in order of first appearance, each model's jobs in their own order — so that the first runs of different
    models start together, and a model's later runs find its decodes in the memo."""
    groups: dict[int, list[int]] = {}
    for i, b in enumerate(bases):
        groups.setdefault(int(b), []).append(i)
    order, queues = [], [list(g) for g in groups.values()]
    while any(queues):
        for q in queues:
            if q:
                order.append(q.pop(0))
    return order


def _run(jobs: list[tuple], workers: int) -> pd.DataFrame:
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


def two_level(runs: pd.DataFrame, value: str, group: str = "pretrain_seed", level: float = 0.95) -> dict:
    """The mean of ``value`` over runs nested in ``group`` (pre-trained models), with a t-interval whose unit is the
    group: the mean of each group's runs, then :func:`across_seeds` over the group means (balanced designs make this
    the standard interval of a nested one-way random-effects mean). Also the spread within and between groups."""
    if runs.empty:
        raise ValueError("two_level needs at least one run")
    means = runs.groupby(group)[value].mean()
    out = across_seeds(means.to_numpy(), level)
    within = runs.groupby(group)[value].std(ddof=1)
    out.update({"groups": int(means.size), "runs": int(len(runs)), "runs_above_half": int((runs[value] > 0.5).sum()),
                "group_means": {str(k): round(float(v), 4) for k, v in means.items()},
                "sd_between_groups": round(float(means.std(ddof=1)), 4) if means.size > 1 else float("nan"),
                "sd_within_groups": round(float(np.sqrt(np.nanmean(within.to_numpy() ** 2))), 4)
                if within.notna().any() else float("nan")})
    return out
