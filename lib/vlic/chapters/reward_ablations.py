"""Chapter 03 (``notebooks/03_reward_ablations.ipynb``): its set-up from its parameters and its results file
(``results/rewards.json``).

:func:`setup` does what the chapter's first cell did, in the same order: repository root, stage clock, figure style,
output folders, the VLM and simulated-judge settings, the judges' roles, the grid of reward variants and the training
variants, and the checks that the referee is none of the variants' judges and that every training variant and the
referee can run here (``status``: each judge's reason not to run, or None).
"""

from __future__ import annotations

import dataclasses
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vlic.chapters.parameters import open_chapter

CHAPTER = "03_reward_ablations"
PARAMETERS = (
    "prepared_dir", "twoafc_dir", "models_dir", "results_dir", "cache_path", "runs_dir", "rate", "vlm_judge",
    "lpips_judge", "majority_judges", "weights", "weighted_margin", "combinations", "seeds_grid", "orders_grid",
    "twoafc_sets", "max_pairs", "sim_sensitivity", "sim_noise", "sim_position_bias", "sim_lapse", "sim_parse_failure",
    "train_variants", "train_seeds", "referee", "vlm_backend", "vlm_model", "vlm_base_url", "vlm_api_key_env",
    "vlm_concurrency", "vlm_temperature", "vlm_max_tokens", "vlm_min_side", "vlm_send_seed", "vlm_timeout_s",
    "vlm_max_retries", "vlm_retry_budget_s", "vlm_breaker_failures", "steps", "batch_size", "lr", "warmup", "beta",
    "flow_weight", "cfg_dropout", "train_encoder", "encoder_lr_scale", "latent_decoder_lr_scale", "buffer_capacity",
    "refresh_every", "refresh_size", "min_pairs", "sample_steps", "dpo_times", "dpo_path", "eval_seeds", "workers",
    "threads", "bootstrap", "seed")


@dataclass
class RewardAblationsChapter:
    params: dict[str, Any]
    started: float               # time.perf_counter() when the chapter started
    prepared: Path
    results: Path
    models: Path
    figures: Path
    vlm: Any                     # VLMSettings
    sim: Any                     # SimulationSettings of the simulated stochastic judge
    roles: Any                   # vlic.judges.reward_variants.Roles
    seeds_list: list             # seeds on the grid
    orders_list: list            # orders on the grid
    variants: list               # the reward variants measured as judges
    train_list: list             # the variants trained as DPO rewards
    judge_names: list
    status: dict                 # judge → why it cannot run here, or None

    def overview(self) -> pd.DataFrame:
        """Every judge the variants use: what kind it is, and whether it runs here."""
        from vlic.judges.simulated import is_simulated

        return pd.DataFrame({"judge": self.judge_names,
                             "kind": ["SIMULATED stochastic judge (not a VLM)" if is_simulated(j) else
                                      ("VLM" if j == "vlm" else "metric (deterministic, order-free)")
                                      for j in self.judge_names],
                             "status": [self.status[j] or "ok" for j in self.judge_names]}).set_index("judge")


def setup(namespace: dict) -> RewardAblationsChapter:
    """Chapter 03's objects from the parameters in ``namespace`` (the notebook's ``globals()``)."""
    from vlic.config import as_list
    from vlic.judges.factory import VLMSettings, availability
    from vlic.judges.reward_variants import Roles, grid, parse_variants
    from vlic.judges.simulated import SimulationSettings, is_simulated, simulated_metric

    o = open_chapter(namespace, PARAMETERS, CHAPTER)
    p, started, results, figures = o.params, o.started, o.results, o.figures
    prepared, models = Path(p["prepared_dir"]), Path(p["models_dir"])
    vlm = VLMSettings.from_params({k: v for k, v in p.items() if k.startswith("vlm_") and k != "vlm_judge"})
    sim = SimulationSettings.from_params({k: v for k, v in p.items() if k.startswith("sim_")})
    roles = Roles(vlm=p["vlm_judge"], lpips=p["lpips_judge"], majority=as_list(p["majority_judges"]),
                  weights=tuple(float(w) for w in as_list(p["weights"])), margin=float(p["weighted_margin"]))
    seeds_list = [int(s) for s in as_list(p["seeds_grid"])]
    orders_list = [int(o) for o in as_list(p["orders_grid"])]
    if not (seeds_list and set(orders_list) <= {1, 2}):
        raise ValueError(f"seeds_grid {p['seeds_grid']!r} / orders_grid {p['orders_grid']!r}: give at least one seed "
                         f"count and orders among 1, 2")
    # the VLM role on the grid: the configured judge and, when that is a simulation, the real VLM (its rows say why not)
    vlm_roles = [p["vlm_judge"]] + (["vlm"] if p["vlm_judge"] != "vlm" else [])
    variants = grid(as_list(p["combinations"]), seeds_list, orders_list, roles, vlm_roles, direct=True)
    train_list = parse_variants(as_list(p["train_variants"]), roles)
    judge_names = sorted({j for v in variants + train_list for j in v.judges})
    underlying = {j: (simulated_metric(j) if is_simulated(j) else j) for j in judge_names}
    referee = p["referee"]
    if referee in judge_names or referee in underlying.values():
        raise ValueError(f"the referee '{referee}' must not be one of the variants' judges ({', '.join(judge_names)})")
    status = {j: availability(j, vlm) for j in judge_names}
    for v in train_list:
        bad = [j for j in v.judges if status[j]]
        if bad:
            raise RuntimeError(f"training variant '{v.token}' cannot run here: " +
                               "; ".join(f"{j}: {status[j]}" for j in bad))
    if availability(referee, vlm):
        raise RuntimeError(f"referee '{referee}' cannot run here: {availability(referee, vlm)}")
    return RewardAblationsChapter(params=p, started=started, prepared=prepared, results=results, models=models,
                                  figures=figures, vlm=vlm, sim=sim, roles=roles, seeds_list=seeds_list,
                                  orders_list=orders_list, variants=variants, train_list=train_list,
                                  judge_names=judge_names, status=status)


def write_results(ch: RewardAblationsChapter, *, table: pd.DataFrame, skipped: list, summary: pd.DataFrame,
                  answers: list, failures: list, seed_list, patch_rows: pd.DataFrame, bpp_base: dict,
                  train_wall: float, base: Any) -> dict:
    """Write ``results/rewards.json`` (:func:`vlic.notebooks.write_metrics`) and return its contents; the keys are
    the ones ``vlic results summary``/``compare`` and the tests read."""
    from vlic.config import as_list
    from vlic.judges.simulated import is_simulated
    from vlic.notebooks import json_value, write_metrics

    p = ch.params
    judges_json = {}
    for _, r in table.iterrows():
        e = judges_json.setdefault(r.variant, {"label": r.label, "simulated": bool(r.simulated)})
        e[r.set] = {k: json_value(r[k], 4) for k in ["discard_rate", "self_consistency", "calls_per_accepted",
                                                     "model_s_per_accepted", "accuracy_kept", "accuracy_kept_ci_low",
                                                     "accuracy_kept_ci_high"] if k in r}
    for v in skipped:
        judges_json[v.token] = {"label": v.label,
                                "status": "; ".join(sorted({ch.status[j] for j in v.judges if ch.status[j]}))}
    metrics = {
        "vlm_role": p["vlm_judge"], "vlm_role_is_simulated": is_simulated(p["vlm_judge"]), "lpips_role": p["lpips_judge"],
        "referee": p["referee"], "simulation": dataclasses.asdict(ch.sim) if is_simulated(p["vlm_judge"]) else None,
        "judges": judges_json,
        "training": {r.variant: {
            "label": r.label, "runs": int(r.runs), "referee_winrate_mean": json_value(r.referee_winrate, 4),
            "referee_winrate_min": json_value(r.referee_min, 4), "referee_winrate_max": json_value(r.referee_max, 4),
            "referee_winrate_ci_low": json_value(r.referee_ci_low, 4),
            "referee_winrate_ci_high": json_value(r.referee_ci_high, 4),
            "paired_diff_vs_best": json_value(r.paired_diff_vs_best, 4), "paired_ci_low": json_value(r.paired_ci_low, 4),
            "paired_ci_high": json_value(r.paired_ci_high, 4),
            "referee_ci_low_min": json_value(r.ci_low_min, 4), "referee_ci_high_max": json_value(r.ci_high_max, 4),
            "psnr_gain_db": json_value(r.psnr_gain_db, 4), "ms_ssim_gain": json_value(r.ms_ssim_gain, 5),
            "bpp_change_percent": json_value(r.bpp_change_percent, 3), "acceptance": json_value(r.acceptance, 4),
            "queries_per_accepted": json_value(r.queries_per_accepted, 2)}
            for r in summary.itertuples()} if len(summary) else {},
        "answers": answers,
        "failed_runs": failures,
        "steps": int(p["steps"]), "train_seeds": [int(s) for s in as_list(p["train_seeds"])],
        "eval_seeds": list(seed_list),
        "heldout_patches": int(patch_rows["patch"].nunique()),
        "bpp_pretrained": json_value(np.mean(list(bpp_base.values())), 6),
        "train_wall_seconds": round(train_wall, 1), "workers": int(p["workers"]), "threads": int(p["threads"]),
        "stage_seconds": round(time.perf_counter() - ch.started, 1), "machine": platform.machine(),
        "fingerprint_pretrained": base.fingerprint,
    }
    write_metrics(ch.results / "rewards.json", metrics, default=str)
    return metrics
