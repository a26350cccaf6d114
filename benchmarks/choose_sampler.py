"""How params.yaml's decoder sampler (codec.sample_steps, codec.sample_start) was chosen — on validation photos, never
the holdout.

    python benchmarks/choose_sampler.py [--validation chelsea,motorcycle] [--steps 1,2] [--starts 0.1,0.15,0.2,0.3,1]
                                        [--out cache/sampler_choice] [--set key=value ...]

Both rate points are pre-trained with params.yaml's `codec` recipe on the training photos **minus** the validation
photos (two processes, ≈ 4 CPU minutes), then each validation photo is compressed to a real file and decoded with
every (steps, t₀); per setting: PSNR minus the mean head μ's (the posterior-sample bound is −3.01 dB) and FD-EffNet
flow − μ on HiFiC patches at 224 px (the size chapter 05 validates) and 96 px, paired bootstrap over patch positions.
Prints a Markdown table; the rule used for params.yaml: the largest t₀ within the bound at both rates whose FD
interval at 224 px is below 0 at both rates. ``--set prediction=sample`` (any CodecConfig or PretrainConfig field)
measures a variant. Not a test: it trains models and takes ≈ 10 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from vlic.codec.autoencoder import CodecConfig
from vlic.codec.checkpoint import load
from vlic.codec.families import image_codec
from vlic.codec.quality import psnr
from vlic.config import as_list, build, load_params
from vlic.data.prepare import load_photos
from vlic.eval.metrics import distribution_difference, feature_network, hifid_patches, patch_features
from vlic.eval.realism import POSTERIOR_SAMPLE_GAP_DB
from vlic.training.pretrain import PretrainConfig, pretrain_many


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--validation", default="chelsea,motorcycle", help="training photos left out of pre-training")
    ap.add_argument("--steps", default="1,2")
    ap.add_argument("--starts", default="0.1,0.15,0.2,0.3,1")
    ap.add_argument("--inputs", default="224,96", help="EfficientNet-Lite0 input sizes (the first decides)")
    ap.add_argument("--out", default="cache/sampler_choice")
    ap.add_argument("--set", nargs="*", default=[], help="key=value overrides of the codec recipe")
    a = ap.parse_args()
    params = load_params()
    c = params["codec"]
    overrides = dict(kv.split("=", 1) for kv in a.set)
    common = {k: c[k] for k in ("patch", "encoder_width", "cond_channels", "flow_widths", "tile", "prior_dim",
                                "prior_layers", "prior_block")}
    code_fields = {f.name for f in dataclasses.fields(CodecConfig)}
    cfgs = {rate: build(CodecConfig, {"fsq_levels": c[f"{rate}_fsq_levels"], "downsample": c[f"{rate}_downsample"],
                                      **common, **{k: v for k, v in overrides.items() if k in code_fields}})
            for rate in ("low", "high")}
    train_fields = {f.name for f in dataclasses.fields(PretrainConfig)}
    tcfg = build(PretrainConfig, {**{k: c[k] for k in ("steps", "batch_size", "lr", "perceptual", "perceptual_weight",
                                                      "cfg_dropout", "ema_decay", "prior_steps", "seed",
                                                      "start_time_share")},
                                  "threads": 1, **{k: v for k, v in overrides.items() if k in train_fields}})
    train = load_photos(params["data"]["out_dir"], "train")
    held = {k: train[k] for k in as_list(a.validation)}
    out = Path(a.out) / json.dumps(overrides, sort_keys=True).replace(" ", "")
    out.mkdir(parents=True, exist_ok=True)
    jobs = [dict(codec_cfg=cfg, cfg=tcfg, images=[v for k, v in train.items() if k not in held], rate=rate,
                 out_path=out / f"codec_{rate}.safetensors") for rate, cfg in cfgs.items()
            if not (out / f"codec_{rate}.safetensors").is_file()]
    if jobs:
        pretrain_many(jobs, workers=2)
    torch.set_num_threads(2)
    sizes = [int(s) for s in as_list(a.inputs)]
    rows = []
    for rate in cfgs:
        codec = image_codec(load(out / f"codec_{rate}.safetensors"))
        orig, mean, flows = [], [], {}
        for name, px in held.items():
            c_, f, m = codec.decode_condition(codec.compress(px).data, name)
            orig.append(px), mean.append(codec.mean_pixels(c_, m))
            for steps in (int(s) for s in as_list(a.steps)):
                for start in (float(t) for t in as_list(a.starts)):
                    flows.setdefault((steps, start), []).append(codec.sample(c_, f, m, steps=steps, seed=0, start=start))
        patches = lambda ims: [q for im in ims for q in hifid_patches(im, int(c["tile"]))]   # noqa: E731
        feats = {s: feature_network("fd_effnet", s) for s in sizes}
        f_orig = {s: patch_features(feats[s], patches(orig)) for s in sizes}
        f_mean = {s: patch_features(feats[s], patches(mean)) for s in sizes}
        mu_psnr = np.mean([psnr(o, m) for o, m in zip(orig, mean)])
        for (steps, start), ims in flows.items():
            row = {"rate": rate, "steps": steps, "t0": start,
                   "psnr_vs_mu_db": round(float(np.mean([psnr(o, x) for o, x in zip(orig, ims)]) - mu_psnr), 2)}
            for s in sizes:
                d = distribution_difference("fd_effnet", f_orig[s], patch_features(feats[s], patches(ims)), f_mean[s],
                                            n_boot=200)
                row[f"fd_vs_mu_{s}"] = f"{d['delta']:+.1f} [{d['ci_low']:+.1f}, {d['ci_high']:+.1f}]"
                row[f"_hi_{s}"] = d["ci_high"]
            rows.append(row)
    table = pd.DataFrame(rows)
    ok = table[(table.psnr_vs_mu_db >= -POSTERIOR_SAMPLE_GAP_DB) & (table[f"_hi_{sizes[0]}"] < 0)]
    both = ok.groupby(["steps", "t0"]).rate.nunique()
    passing = sorted(both[both == len(cfgs)].index, key=lambda k: (k[1], k[0]))
    print(table.drop(columns=[k for k in table if k.startswith("_")]).to_markdown(index=False))
    print(f"\nwithin −{POSTERIOR_SAMPLE_GAP_DB:.2f} dB and FD@{sizes[0]} below μ at both rates: "
          + (", ".join(f"{s} steps from t₀ {t:g}" for s, t in passing) or "none"))


if __name__ == "__main__":
    main()
