"""What separates the winner of a DPO pair from its loser? For each judge, over pairs of two decoder samples of one
code (the candidates chapter 04 trains on), the share of kept pairs in which the winner has the smaller value of:

* ``grain``  — ‖x̂ − μ‖², how far the sample strays from the codec's mean image μ;
* ``error``  — ‖x̂ − x‖², its squared error to the original;
* ``detail`` — its squared horizontal + vertical pixel differences (high-frequency energy);

and the share in which it has the larger ``alignment`` ⟨x̂ − μ, x − μ⟩ (its departure from μ points towards the
original). 0.5 = the judge's choice is unrelated to that property. A preference DPO can learn from a pair must be
something the decoder can do for any noise (e.g. "less grain"); a choice at ≈ 0.5 on every property is, as far as
these properties go, a choice of one noise realisation over another.

    python benchmarks/dpo_pair_features.py [--model models/codec_low.safetensors] [--pairs 256]
                                           [--judges psnr haarpsi deep_effnet ms_ssim haarpsi,deep_effnet]

Not a test: ≈ 1–2 minutes on 2 cores (Deep-EffNet dominates).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from vlic.codec.checkpoint import load
from vlic.config import load_params
from vlic.data.prepare import load_photos
from vlic.images import to_pixels, to_tensor
from vlic.judges.factory import make_judge
from vlic.training.dpo.trainer import sample_candidates
from vlic.training.pretrain import random_crops
from vlic.training.reward import UnanimousReward


def properties(sample: torch.Tensor, mean: torch.Tensor, original: torch.Tensor) -> dict[str, torch.Tensor]:
    r = sample - mean

    def hf(z):
        return ((z[..., 1:, :] - z[..., :-1, :]).pow(2).flatten(1).mean(1)
                + (z[..., :, 1:] - z[..., :, :-1]).pow(2).flatten(1).mean(1))
    return {"grain": r.pow(2).flatten(1).mean(1), "error": (sample - original).pow(2).flatten(1).mean(1),
            "detail": hf(sample), "alignment": -(r * (original - mean)).flatten(1).mean(1)}   # smaller = better


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="models/codec_low.safetensors")
    ap.add_argument("--pairs", type=int, default=256)
    ap.add_argument("--judges", nargs="*", default=["psnr", "haarpsi", "deep_effnet", "ms_ssim", "haarpsi,deep_effnet"])
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    torch.set_num_threads(2)
    model = load(a.model).model.eval()
    photos = load_photos(load_params()["data"]["out_dir"], "train")
    x = random_crops([to_tensor(p)[0] for p in photos.values()], model.crop_size, a.pairs,
                     torch.Generator().manual_seed(a.seed))
    with torch.no_grad():
        s_a, s_b = sample_candidates(model, x, model.config.sample_steps, (a.seed + 11, a.seed + 22))
        mu = model.code_condition(x)[1]
    p_a, p_b = properties(s_a, mu, x), properties(s_b, mu, x)
    print(f"{a.pairs} pairs of {Path(a.model).name}, {model.config.sample_steps} steps from t₀ = "
          f"{model.config.sample_start:g}; sample detail {float(p_a['detail'].mean()):.4f}, original's "
          f"{float(properties(x, mu, x)['detail'].mean()):.4f}, μ's {float(properties(mu, mu, x)['detail'].mean()):.4f}")
    rows = []
    originals, recon_a, recon_b = list(to_pixels(x)), list(to_pixels(s_a)), list(to_pixels(s_b))
    for names in a.judges:
        label = UnanimousReward([make_judge(n) for n in names.split(",")], None, seeds=1, orders=1).vote(
            originals, recon_a, recon_b).label
        kept = torch.as_tensor(label != 0)
        a_wins = torch.as_tensor(label < 0)
        row = {"judge": " ∧ ".join(names.split(",")), "kept": round(float(kept.float().mean()), 3)}
        for k in p_a:   # share of kept pairs whose winner has the smaller (better) value
            winner_smaller = torch.where(a_wins, p_a[k] < p_b[k], p_b[k] < p_a[k])[kept]
            row[f"winner {'less' if k != 'alignment' else 'more'} {k}"] = round(float(winner_smaller.float().mean()), 3)
        rows.append(row)
    print(pd.DataFrame(rows).to_markdown(index=False))


if __name__ == "__main__":
    main()
