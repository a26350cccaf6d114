"""Chapter 02 (``notebooks/02_pretrain_codec.ipynb``): its set-up from its parameters and its results file
(``results/pretrain.json``).

:func:`setup` does what the chapter's first cell did, in the same order: repository root, figure style, output
folders, the training and holdout photos (checked disjoint), the codec family (checked), both rate points'
:class:`~vlic.codec.autoencoder.CodecConfig`, the pre-training recipe and FlowMo-mini's architecture and recipe.
"""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from vlic.chapters.parameters import open_chapter

CHAPTER = "02_pretrain_codec"
PARAMETERS = (
    "prepared_dir", "models_dir", "results_dir", "low_downsample", "low_fsq_levels", "high_downsample",
    "high_fsq_levels", "patch", "encoder_width", "cond_channels", "flow_widths", "tile", "overlap", "prior_dim",
    "prior_layers", "prior_block", "steps", "batch_size", "lr", "perceptual", "perceptual_weight", "cfg_dropout",
    "ema_decay", "prior_steps", "sample_steps", "sample_start", "prediction", "start_time_share", "eval_steps",
    "eval_seeds", "baselines", "seed", "replicate_seeds", "replicate_rate", "threads", "workers", "mini_context_dim",
    "mini_code_length", "mini_width", "mini_heads", "mini_enc_depth", "mini_dec_depth", "mini_steps", "mini_lr",
    "mini_perceptual_weight", "mini_time_sampling", "mini_prior_steps", "mini_sample_steps", "mini_eval_steps",
    "family", "effnet_input", "effnet_input_robustness", "distribution_bootstrap", "flowmo_low", "flowmo_high")


@dataclass
class PretrainChapter:
    params: dict[str, Any]
    models: Path                 # models_dir (and models_dir/replicates)
    results: Path
    figures: Path
    train_images: dict
    holdout_images: dict
    configs: dict                # rate point → CodecConfig (the laptop UNet codec)
    train_cfg: Any               # PretrainConfig
    flowmo_mini: Any             # FlowMo-mini's architecture (section "Which architecture for the laptop codec?")
    mini_train_cfg: Any          # FlowMoPretrainConfig
    weights: dict                # family flowmo: rate point → the released checkpoint
    started: float = 0.0         # time.perf_counter() when the chapter opened (stage_seconds)

    def overview(self) -> pd.DataFrame:
        """The two rate points: the UNet codecs' sizes and rates before entropy coding, or FlowMo's released files."""
        from vlic.codec.autoencoder import DiffusionCodec

        if self.params["family"] == "unet":
            return pd.DataFrame([{"rate": r, "downsample": c.downsample, "fsq_levels": c.fsq_levels,
                                  "bpp before entropy coding": round(c.bits_per_pixel_raw, 4),
                                  **DiffusionCodec(c).parameter_counts()} for r, c in self.configs.items()])
        return pd.DataFrame([{"rate": r, "released weights": w} for r, w in self.weights.items()])


def setup(namespace: dict) -> PretrainChapter:
    """Chapter 02's objects from the parameters in ``namespace`` (the notebook's ``globals()``)."""
    from vlic.codec.autoencoder import CodecConfig
    from vlic.codec.families import FAMILIES
    from vlic.config import build
    from vlic.data.prepare import load_photos
    from vlic.training.flowmo_pretrain import FlowMoPretrainConfig, mini_config
    from vlic.training.pretrain import PretrainConfig

    o = open_chapter(namespace, PARAMETERS, CHAPTER)
    p, results, figures = o.params, o.results, o.figures
    prepared, models = Path(p["prepared_dir"]), Path(p["models_dir"])
    for d in (models, models / "replicates"):
        d.mkdir(parents=True, exist_ok=True)
    train_images, holdout_images = load_photos(prepared, "train"), load_photos(prepared, "holdout")
    if set(train_images) & set(holdout_images):
        raise ValueError(f"photos {sorted(set(train_images) & set(holdout_images))} are both in train and holdout")
    if p["family"] not in FAMILIES:
        raise ValueError(f"codec family must be one of {FAMILIES}, got {p['family']!r}")
    common = {k: p[k] for k in ("patch", "encoder_width", "cond_channels", "flow_widths", "tile", "prior_dim",
                                "prior_layers", "prior_block",
                                "sample_steps", "sample_start",  # the decoder's default sampler, in the file
                                "prediction")}
    configs = {  # build(): each value cast to the field's type (vlic.config)
        "low": build(CodecConfig, dict(fsq_levels=p["low_fsq_levels"], downsample=p["low_downsample"], **common)),
        "high": build(CodecConfig, dict(fsq_levels=p["high_fsq_levels"], downsample=p["high_downsample"], **common)),
    }
    train_cfg = build(PretrainConfig, {k: p[k] for k in (
        "steps", "batch_size", "lr", "perceptual", "perceptual_weight", "cfg_dropout", "ema_decay", "prior_steps",
        "seed", "threads", "start_time_share")})
    flowmo_mini = mini_config(int(p["mini_context_dim"]), int(p["mini_width"]), int(p["mini_heads"]),
                              int(p["mini_enc_depth"]), int(p["mini_dec_depth"]), tile=int(p["tile"]),
                              patch=int(p["patch"]), code_length=int(p["mini_code_length"]),
                              sample_steps=int(p["mini_sample_steps"]))
    mini_train_cfg = build(FlowMoPretrainConfig, dict(
        steps=p["mini_steps"], batch_size=p["batch_size"], lr=p["mini_lr"], perceptual=p["perceptual"],
        perceptual_weight=p["mini_perceptual_weight"], cfg_dropout=p["cfg_dropout"],
        time_sampling=p["mini_time_sampling"], ema_decay=p["ema_decay"], prior_steps=p["mini_prior_steps"],
        prior_dim=p["prior_dim"], prior_layers=p["prior_layers"], seed=p["seed"], threads=p["threads"]))
    weights = {"low": p["flowmo_low"], "high": p["flowmo_high"]}  # family flowmo: the released checkpoints
    return PretrainChapter(params=p, models=models, results=results, figures=figures, train_images=train_images,
                           holdout_images=holdout_images, configs=configs, train_cfg=train_cfg,
                           flowmo_mini=flowmo_mini, mini_train_cfg=mini_train_cfg, weights=weights,
                           started=o.started)


def _mean(df: pd.DataFrame, col: str) -> float:
    return round(float(df[col].mean()), 4)


def write_results(ch: PretrainChapter, *, runs: dict, flow_default: pd.DataFrame, mean_head: pd.DataFrame,
                  base: pd.DataFrame, replicate_table: pd.DataFrame, rep_codecs: dict, replicate_spread: pd.Series,
                  decision: Any, low_name: str, mini_run: Any, budget: pd.DataFrame, rate_gap: float, defaults: dict,
                  per_photo: pd.DataFrame, arch_metrics: dict, arch_diffs: pd.DataFrame, default_steps: int,
                  realism_inputs: list, flow_mu: pd.DataFrame, generative: pd.DataFrame) -> dict:
    """Write ``results/pretrain.json`` (:func:`vlic.notebooks.write_metrics`) and return its contents; the keys are
    the ones ``vlic results summary``/``compare``, chapter 05 and the tests read."""
    from vlic.eval.realism import POSTERIOR_SAMPLE_GAP_DB
    from vlic.notebooks import json_value, write_metrics

    p = ch.params
    metrics = {"family": p["family"], "training_processes": int(p["workers"]), "threads_per_process": int(p["threads"]),
               "machine": platform.machine(),
               "train_wall_seconds": round(max(r.seconds + r.prior_seconds for r in runs.values()), 1),
               "stage_seconds": round(time.perf_counter() - ch.started, 1)}
    for rate, run in runs.items():
        flow = flow_default[flow_default.rate_point == rate]
        mu = mean_head[mean_head.rate_point == rate]
        metrics[rate] = {
            "fingerprint": run.checkpoint.fingerprint,
            "bpp_before_entropy_coding": round(run.checkpoint.config.bits_per_pixel_raw, 4),
            "bpp": _mean(flow, "bpp"),
            "bits_over_ideal": round(float(flow["bits_over_ideal"].max()), 5),
            "train_seconds": round(run.seconds, 1),
            "prior_seconds": round(run.prior_seconds, 1),
            "train_cpu_seconds": round(run.cpu_seconds, 1),
            "parameters": sum(q.numel() for q in run.checkpoint.model.parameters()),
            "psnr": _mean(flow, "psnr"),
            "ms_ssim": _mean(flow, "ms_ssim"),
            "mean_head_psnr": _mean(mu, "psnr") if len(mu) else None,      # None: FlowMo has no mean head
            "mean_head_ms_ssim": _mean(mu, "ms_ssim") if len(mu) else None,
            "decode_steps": int(flow.steps.iloc[0]),
            "encode_seconds": _mean(flow, "encode_seconds"),
            "entropy_decode_seconds": _mean(flow, "entropy_decode_seconds"),
            "sampling_seconds": _mean(flow, "decode_seconds"),
            "baselines": {name: {"bpp": _mean(g, "bpp"), "psnr": _mean(g, "psnr"), "ms_ssim": _mean(g, "ms_ssim"),
                                 "matched": bool(g.matched.all())}
                          for name, g in base[base.rate_point == rate].groupby("codec")},
        }
    metrics["replicates"] = {"rate": p["replicate_rate"], "seeds": [int(k) for k in replicate_table.index],
                             "fingerprints": {str(k): c.checkpoint.fingerprint for k, c in rep_codecs.items()},
                             **{col: [float(v) for v in replicate_table[col]] for col in replicate_table},
                             "spread": {k: float(v) for k, v in replicate_spread.items()}}
    metrics["architecture"] = {
        "keep": decision.keep if decision else None, "reason": decision.reason if decision else "codec.family: flowmo",
        "rule": "keep the better; within noise, FlowMo-mini (issue #13)",
        "budget_cpu_seconds": {low_name: round(runs["low"].cpu_seconds, 1), "FlowMo-mini": round(mini_run.cpu_seconds, 1)},
        "flowmo_mini": {"fingerprint": mini_run.checkpoint.fingerprint,
                        "parameters": int(budget.loc["FlowMo-mini", "parameters"]),
                        "steps": int(p["mini_steps"]), "context_dim": int(p["mini_context_dim"]),
                        "code_length": int(p["mini_code_length"]), "width": int(p["mini_width"]),
                        "depths": [int(p["mini_enc_depth"]), int(p["mini_dec_depth"])],
                        "prior_bits_per_bit": mini_run.prior_curves[-1]["bits_per_bit"],
                        "train_seconds": round(mini_run.seconds, 1),
                        "reused": bool(mini_run.reused)},   # True: the committed checkpoint, not trained in this run
        "rate_gap": round(rate_gap, 4), "default_steps": defaults,
        "table": {f"{a} ({s} steps)": {m: json_value(float(v))
                                       for m, v in g[["bpp", *arch_metrics, "decode_seconds"]].mean().items()}
                  for (a, s), g in per_photo.groupby(["architecture", "steps"])},
        "paired_differences": {r.metric: {"difference": json_value(r.difference),
                                          "ci": [json_value(r.ci_low), json_value(r.ci_high)], "favours": r.favours}
                               for r in arch_diffs.itertuples()},
    }
    metrics["flow_vs_mean"] = {
        "default_steps": int(default_steps), "sample_start": {r: float(c.sample_start) for r, c in ch.configs.items()},
        "input_sizes": realism_inputs, "bound_db": round(POSTERIOR_SAMPLE_GAP_DB, 4),
        "rows": [{k: json_value(v) for k, v in r.items()} for r in flow_mu.to_dict("records")],
        "verdicts": [{k: json_value(v) for k, v in r.items()} for r in generative.to_dict("records")],
    }
    write_metrics(ch.results / "pretrain.json", metrics)
    return metrics
