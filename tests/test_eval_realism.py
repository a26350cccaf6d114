"""vlic.eval.realism: flow decoder vs its mean head μ — interval words, the 3 dB posterior-sample bound, and a real
EfficientNet-Lite0 measurement where the answer is known (a sharp copy vs a blurred one)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageFilter

from vlic.eval.benchmark import Reconstructions
from vlic.eval.realism import (POSTERIOR_SAMPLE_GAP_DB, flow_vs_mean, generative_verdicts, interval_verdict)
from vlic.perception import effnet


def test_posterior_sample_gap_is_ten_log_two():
    assert POSTERIOR_SAMPLE_GAP_DB == pytest.approx(3.0103, abs=1e-4)


def test_interval_verdict_says_no_difference_when_the_interval_holds_zero():
    assert interval_verdict(-2.0, -0.1, "better", "worse") == "better"
    assert interval_verdict(0.1, 3.0, "better", "worse") == "worse"
    assert interval_verdict(-1.0, 1.0, "better", "worse") == "no measurable difference"
    assert interval_verdict(float("nan"), 1.0, "better", "worse") == "no measurable difference"


def test_generative_verdicts_need_both_realism_and_the_bound():
    rows = []
    for steps, fd_hi, gap in ((1, 5.0, -1.0), (2, -1.0, -2.5), (4, -1.0, -3.5)):
        rows += [{"codec": "c", "rate_point": "low", "steps": steps, "metric": m, "input_size": 224,
                  "delta": fd_hi - 1, "ci_low": fd_hi - 2, "ci_high": fd_hi, "n": 10} for m in ("fd_effnet", "kid_effnet")]
        rows += [{"codec": "c", "rate_point": "low", "steps": steps, "metric": "fd_effnet", "input_size": 96,
                  "delta": 9.0, "ci_low": 8.0, "ci_high": 10.0, "n": 10}]
        rows += [{"codec": "c", "rate_point": "low", "steps": steps, "metric": "psnr", "input_size": 0, "delta": gap,
                  "ci_low": gap - 0.5, "ci_high": gap + 0.5, "n": 3}]
    v = generative_verdicts(pd.DataFrame(rows), 224).set_index("steps")
    assert v.loc[1, ["more_realistic", "within_bound", "generative"]].tolist() == [False, True, False]
    assert v.loc[2, ["more_realistic", "within_bound", "generative"]].tolist() == [True, True, True]
    assert v.loc[4, ["more_realistic", "within_bound", "generative"]].tolist() == [True, False, False]
    assert not generative_verdicts(pd.DataFrame(rows), 96).generative.any()   # the other input size disagrees


@pytest.mark.skipif(effnet.availability() is not None, reason="EfficientNet-Lite0 weights not installed")
def test_flow_vs_mean_finds_the_sharp_copy_more_realistic_than_the_blurred_one():
    from conftest import synthetic_photo

    photos = {f"p{k}": synthetic_photo(128, 128, k) for k in range(2)}
    rec = Reconstructions()
    rng = np.random.default_rng(0)
    for name, px in photos.items():
        blurred = np.asarray(Image.fromarray(px).filter(ImageFilter.GaussianBlur(3)))
        sharp = np.clip(px.astype(int) + rng.integers(-3, 4, px.shape), 0, 255).astype(np.uint8)
        rec.add({"codec": "c (2 steps)", "rate_point": "low", "photo": name, "seed": 0, "steps": 2}, sharp)
        rec.mean_heads[("c", "low", name)] = blurred
    table = flow_vs_mean(rec, photos, input_sizes=(96,), patch=64, n_boot=30)
    fd = table[table.metric == "fd_effnet"].iloc[0]
    assert fd.delta < 0 and fd.ci_high < 0 and fd.n == 2 * (4 + 1)      # 4 grid patches + 1 shifted, per photo
    gap = table[table.metric == "psnr"].iloc[0]
    assert gap.delta > 0 and math.isfinite(gap.ci_low)                    # the noisy copy is also closer than the blur


def test_codecs_without_a_mean_head_give_empty_tables():
    """FlowMo has no mean head: no row, but the columns chapter 02 reads."""
    table = flow_vs_mean(Reconstructions(), {"p": np.zeros((64, 64, 3), np.uint8)}, input_sizes=(96,))
    assert table.empty and "metric" in table
    verdicts = generative_verdicts(table, 96)
    assert verdicts.empty and "generative" in verdicts
