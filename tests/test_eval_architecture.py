"""vlic.eval.architecture: paired per-photo differences with bootstrap intervals and issue #13's keep-the-better rule."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from vlic.eval.architecture import keep_better, paired_differences
from vlic.stats import mean_ci

METRICS = {"psnr": True, "gmsd": False}


def _scores(psnr_gain, gmsd_gain, n=6):
    rows = []
    for k in range(n):
        for seed in (0, 1):
            rows.append({"system": "unet", "photo": f"p{k}", "seed": seed, "psnr": 20.0 + k, "gmsd": 0.2})
            rows.append({"system": "flowmo", "photo": f"p{k}", "seed": seed, "psnr": 20.0 + k + psnr_gain[k] + 0.1 * seed,
                         "gmsd": 0.2 - gmsd_gain[k]})
    return pd.DataFrame(rows)


def test_differences_are_per_photo_means_with_the_bootstrap_interval():
    gains = [1.0, 1.2, 0.8, 1.1, 0.9, 1.0]
    d = paired_differences(_scores(gains, [0.0] * 6), "system", "unet", "flowmo", METRICS).set_index("metric")
    per_photo = np.array(gains) + 0.05  # the two seeds (+0, +0.1) averaged first
    assert d.loc["psnr", "difference"] == pytest.approx(per_photo.mean())
    assert (d.loc["psnr", "ci_low"], d.loc["psnr", "ci_high"]) == pytest.approx(mean_ci(per_photo)[1:])
    assert d.loc["psnr", "favours"] == "flowmo" and d.loc["gmsd", "favours"] == "within noise"
    assert d.loc["psnr", "unet"] == pytest.approx(22.5) and d.loc["psnr", "n"] == 6


def test_lower_is_better_metrics_and_the_rule():
    # flowmo worse on PSNR everywhere, better (lower) on GMSD everywhere: one win each → the tie-breaker
    d = paired_differences(_scores([-1.0] * 6, [0.05] * 6), "system", "unet", "flowmo", METRICS).set_index("metric")
    assert d.loc["psnr", "favours"] == "unet" and d.loc["gmsd", "favours"] == "flowmo"
    decision = keep_better(d.reset_index(), "unet", "flowmo", tie="flowmo")
    assert decision.keep == "flowmo" and decision.wins == {"unet": ["psnr"], "flowmo": ["gmsd"]}
    # flowmo worse on PSNR, GMSD within noise → the UNet is kept
    noisy = [0.05, -0.05, 0.02, -0.02, 0.01, -0.01]
    d2 = paired_differences(_scores([-1.0] * 6, noisy), "system", "unet", "flowmo", METRICS)
    assert keep_better(d2, "unet", "flowmo", tie="flowmo").keep == "unet"
    # nothing separates them → the tie-breaker, with the reason saying so
    d3 = paired_differences(_scores([g - 0.05 for g in noisy], noisy), "system", "unet", "flowmo", METRICS)  # seeds add 0.05
    decision = keep_better(d3, "unet", "flowmo", tie="flowmo")
    assert decision.keep == "flowmo" and "within noise" in decision.reason


def test_unpaired_or_missing_scores_are_named():
    s = _scores([1.0] * 6, [0.0] * 6)
    with pytest.raises(ValueError, match="unpaired: \\['p5'\\]"):
        paired_differences(s[~((s.system == "flowmo") & (s.photo == "p5"))], "system", "unet", "flowmo", METRICS)
    with pytest.raises(ValueError, match="no scores of \\['jpeg'\\]"):
        paired_differences(s, "system", "unet", "jpeg", METRICS)
