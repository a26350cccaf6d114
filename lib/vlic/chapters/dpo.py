"""Chapter 04 (``notebooks/04_dpo_posttrain.ipynb``): its set-up from its parameters, its claim across runs and its
results file (``results/dpo.json``).

:func:`setup` does what the chapter's first cell did, in the same order: repository root, the parameters as one
dict (params.yaml's ``dpo`` names — the seed replicates and ``accelerate launch -m vlic.training.dpo.launch`` build
their runs from the same values), the figure style, the results folders, torch's threads, then
:func:`vlic.training.dpo.setup.setup_dpo` (codec, photos, reward, judges) and, for FlowMo, the memory estimate.
"""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from vlic.chapters.parameters import open_chapter
from vlic.stats import chance_verdict

CHAPTER = "04_dpo_posttrain"
# the parameters setup_dpo, the seed replicates and the oracle check read (the parameters cell minus oracle_*)
PARAMETERS = (
    "prepared_dir", "models_dir", "results_dir", "cache_path", "rate", "reward_judges", "reward_seeds",
    "reward_orders", "referees", "vlm_backend", "vlm_model", "vlm_base_url", "vlm_api_key_env", "vlm_concurrency",
    "vlm_temperature", "vlm_max_tokens", "vlm_min_side", "vlm_send_seed", "vlm_timeout_s", "vlm_max_retries",
    "vlm_retry_budget_s", "vlm_breaker_failures", "steps", "batch_size", "lr", "warmup", "beta", "flow_weight",
    "cfg_dropout", "train_encoder", "encoder_lr_scale", "latent_decoder_lr_scale", "buffer_capacity",
    "refresh_every", "refresh_size", "candidates", "candidate_starts", "min_pairs", "sample_steps", "dpo_times",
    "dpo_path", "judge_workers", "merge_after", "ref_weight", "validation_images", "eval_seeds", "bootstrap", "seed",
    "threads", "checkpoint_every", "mixed_precision", "gradient_checkpointing", "robustness_seeds", "pretrain_seeds",
    "robustness_workers")


@dataclass
class DPOChapter:
    params: dict[str, Any]     # the chapter's parameters by params.yaml's names (see PARAMETERS)
    started: float             # time.perf_counter() when the chapter started (stage_seconds)
    results: Path              # results_dir
    figures: Path              # results_dir/figures
    base: Any                  # the pre-trained codec of ``rate``
    reward: Any                # UnanimousReward of the training judges
    cfg: Any                   # DPOConfig
    vlm: Any                   # VLMSettings
    cache: Any                 # VerdictCache
    train_images: dict         # training photos minus the validation photos
    validation: dict           # training photos left out of post-training
    holdout: dict              # evaluation photos
    referee_names: list        # referees that can run here (the first is the headline one)
    resume_dir: Path
    out_path: Path
    memory: dict | None        # FlowMo: estimated memory and GPU-hours of post-training; None for the laptop codec

    def overview(self) -> pd.DataFrame:
        """The run at a glance: rate point, photos, reward and referees."""
        return pd.DataFrame({"value": {
            "rate point": f"{self.params['rate']} ({self.base.config.bits_per_pixel_raw:.4f} bpp before entropy coding)",
            "training photos": ", ".join(self.train_images), "holdout photos": ", ".join(self.holdout),
            "validation photos (train photos left out)": ", ".join(sorted(self.validation)) or "—",
            "reward": self.reward.name, "referee (headline)": self.referee_names[0],
            "other referees": ", ".join(self.referee_names[1:]) or "—"}})


def setup(namespace: dict) -> DPOChapter:
    """Chapter 04's objects from the parameters in ``namespace`` (the notebook's ``globals()``)."""
    from vlic.codec.families import family
    from vlic.training.dpo.memory import describe, memory_estimate
    from vlic.training.dpo.setup import setup_dpo

    o = open_chapter(namespace, PARAMETERS, CHAPTER, set_threads=True)
    params, started, results, figures = o.params, o.started, o.results, o.figures
    s = setup_dpo(**params)
    memory = memory_estimate(s.base.config, s.cfg) if family(s.base) == "flowmo" else None
    if memory:
        print(f"FlowMo post-training, estimated (not measured): {describe(memory)}")
    return DPOChapter(params=params, started=started, results=results, figures=figures, base=s.base,
                      reward=s.reward, cfg=s.cfg, vlm=s.vlm, cache=s.cache, train_images=s.train_images,
                      validation=s.validation, holdout=s.holdout, referee_names=s.referee_names,
                      resume_dir=s.resume_dir, out_path=s.out_path, memory=memory)


def claim(seed_summary: dict, judges: list[str], nested: bool) -> list[str]:
    """The chapter's claim read off the seed table: per judge, the mean win-rate over runs, its t-interval, the unit
    it is over (pre-trained models × DPO seeds when ``nested``, else DPO seeds), whether it is distinguishable from
    chance (0.5) and how many runs land above 0.5. Judges without a summary are left out."""
    out = []
    for name in judges:
        if name in seed_summary:
            m = seed_summary[name]
            unit = (f"{m['groups']} pre-trained models × {m['runs'] // max(1, m['groups'])} DPO seeds" if nested
                    else f"{m['n']} DPO seeds")
            out.append(f"{name}: mean win-rate {m['mean']:.3f}, 95 % t-interval [{m['ci_low']:.3f}, {m['ci_high']:.3f}] "
                       f"over {unit} — {chance_verdict(m['ci_low'], m['ci_high'])}; "
                       f"{m.get('runs_above_half', m['above_half'])} of {m.get('runs', m['n'])} runs above 0.5")
    return out


def write_results(ch: DPOChapter, *, winrates: dict, scored: pd.DataFrame, seed_list, bpp_pre: float, bpp_dpo: float,
                  tokens_changed: float, result: Any, curves: pd.DataFrame, eval_seconds: float, validation: dict | None,
                  seed_table: pd.DataFrame, nested: bool, seed_summary: dict, seed_seconds: float, claim: list[str],
                  oracle: pd.DataFrame, oracle_summary: dict, oracle_judge: str, oracle_seconds: float,
                  dpo_ck: Any) -> dict:
    """Write ``results/dpo.json`` (a DVC metrics file, :func:`vlic.notebooks.write_metrics`) and return its
    contents; the keys are the ones ``vlic results summary``/``compare`` and the tests read."""
    from vlic.codec.families import family
    from vlic.notebooks import write_metrics

    referee = ch.referee_names[0]
    tj, rf = winrates["training_judge"], winrates[referee]
    half = max(1, len(curves) // 2)
    metrics = {
        "rate": ch.params["rate"],
        "reward": ch.reward.name,
        "referee": referee,
        "heldout_winrate_training_judge": round(tj.winrate, 4),
        "heldout_winrate_training_judge_ci_low": round(tj.ci_low, 4),
        "heldout_winrate_training_judge_ci_high": round(tj.ci_high, 4),
        "heldout_winrate_referee": round(rf.winrate, 4),
        "heldout_winrate_referee_ci_low": round(rf.ci_low, 4),
        "heldout_winrate_referee_ci_high": round(rf.ci_high, 4),
        "heldout": {k: w.as_dict() for k, w in winrates.items()},
        "heldout_patches": int(scored["patch"].nunique()),
        "heldout_seeds": len(seed_list),
        "bpp_pretrained": round(bpp_pre, 6),
        "bpp_dpo": round(bpp_dpo, 6),
        "bpp_change_percent": round(100 * (bpp_dpo / bpp_pre - 1), 3),
        "tokens_changed": round(tokens_changed, 5),
        "steps": int(ch.cfg.steps),
        "train_seconds": round(result.seconds, 1),
        "trainer_waited_seconds": round(result.wait_seconds, 2),
        "resumed_from_step": int(result.resumed_from),
        "refreshes": int(result.refreshes),
        "buffer": {k: v for k, v in result.stats.items()},
        "implicit_accuracy_second_half": round(float(curves["implicit_accuracy"].iloc[half:].mean()), 4),
        "dpo_loss_second_half": round(float(curves["dpo_loss"].iloc[half:].mean()), 4),
        "eval_seconds": round(eval_seconds, 1),
        "validation": validation,
        "seeds": {"runs": int(len(seed_table)), "pretrain_seeds": [int(x) for x in seed_table["pretrain_seed"]],
                  "seeds": [int(x) for x in seed_table["seed"]], "two_level": bool(nested),
                  "winrate": seed_summary, "seconds": round(seed_seconds, 1)},
        "training_judge_winrate_seed_mean": seed_summary.get("training_judge", {}).get("mean"),
        "referee_winrate_seed_mean": seed_summary.get(referee, {}).get("mean"),
        "referee_winrate_seed_ci_low": seed_summary.get(referee, {}).get("ci_low"),
        "referee_winrate_seed_ci_high": seed_summary.get(referee, {}).get("ci_high"),
        "claim": claim,
        "oracle": {"judge": oracle_judge, "runs": oracle.to_dict("records"), **oracle_summary,
                   "seconds": round(oracle_seconds, 1)},
        "stage_seconds": round(time.perf_counter() - ch.started, 1),
        "threads": int(ch.params["threads"]),
        "machine": platform.machine(),
        "fingerprint_pretrained": ch.base.fingerprint,
        "fingerprint_dpo": dpo_ck.fingerprint,
        "codec_family": family(ch.base),
        "memory_estimate": ch.memory,
    }
    write_metrics(ch.results / "dpo.json", metrics)
    return metrics
