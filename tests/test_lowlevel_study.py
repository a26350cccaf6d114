"""vlic.lowlevel.study / summary: parameter parsing, real bitstreams, abnormal tasks, BD-rate averages and answers
on hand-made rows with known outcomes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from vlic.eval.ratedistortion import bd_rate
from vlic.lowlevel import summary as ll
from vlic.lowlevel.study import LowLevelConfig, center_crop, coded_mean, parse_degradations

HB = {"psnr": True, "niqe": False}


def test_parse_degradations_and_config_refuse_bad_input():
    assert parse_degradations("noise sigma 25; haze beta 1.5 airlight 0.9; rain") == {
        "noise": {"sigma": 25.0}, "haze": {"beta": 1.5, "airlight": 0.9}, "rain": {}}
    with pytest.raises(ValueError, match="pairs"):
        parse_degradations("noise sigma")
    with pytest.raises(ValueError, match="not a number"):
        parse_degradations("noise sigma high")
    with pytest.raises(ValueError, match="must not be a training task"):
        LowLevelConfig.from_params({"tasks": {"noise": {}}, "heldout_degradation": "noise"})
    with pytest.raises(ValueError, match="unknown lowlevel parameter"):
        LowLevelConfig.from_params({"stepz": 3})
    assert center_crop(np.zeros((300, 200, 3), np.uint8), 224).shape == (200, 200, 3)


def _rows(curves: dict) -> pd.DataFrame:
    """curves: (task, system) → [(bpp, psnr, niqe) at low, at high]; three photos with a small per-photo offset."""
    rows = []
    for (task, system), pts in curves.items():
        for rp, (b, q, n) in zip(("low", "high"), pts):
            for i, photo in enumerate(("a", "b", "c")):
                rows.append({"task": task, "system": system, "family": "x", "rate_point": rp, "photo": photo,
                             "bpp": b * (1 + 0.01 * i), "psnr": q + 0.1 * i, "niqe": n - 0.1 * i})
    return pd.DataFrame(rows)


ROWS = _rows({
    ("haze", "rdo"): [(0.05, 20.0, 30.0), (0.10, 22.0, 25.0)],
    ("haze", "rpo"): [(0.05, 21.0, 29.0), (0.10, 23.0, 24.0)],
    ("haze", "webp-ds+universal"): [(0.05, 20.5, 31.0), (0.10, 22.5, 26.0)],
    ("noise", "rdo"): [(0.05, 20.0, 30.0), (0.10, 19.0, 35.0)],       # abnormal: worse with more bits
    ("noise", "rpo"): [(0.05, 21.0, 29.0), (0.10, 22.0, 28.0)],
    ("noise", "webp-ds+universal"): [(0.05, 20.5, 31.0), (0.10, 22.5, 26.0)],
})


def test_abnormal_tasks_are_found_per_metric():
    ab = ll.abnormal(ROWS, ["psnr", "niqe"], HB)
    assert {(a["task"], a["system"], a["metric"]) for a in ab} == {("noise", "rdo", "psnr"), ("noise", "rdo", "niqe")}


def test_bd_rates_match_the_package_and_the_average_leaves_abnormal_tasks_out():
    bd = ll.bd_rates(ROWS, ["psnr"], HB, ["webp-ds+universal"], n_boot=50)
    haze = next(e for e in bd if e["task"] == "haze" and e["comparison"] == "rpo_vs_rdo")
    g = ROWS[ROWS.task == "haze"].groupby(["system", "rate_point"]).mean(numeric_only=True)
    expect = bd_rate(g.loc["rdo"].sort_values("bpp").bpp, g.loc["rdo"].sort_values("bpp").psnr,
                     g.loc["rpo"].sort_values("bpp").bpp, g.loc["rpo"].sort_values("bpp").psnr)
    assert haze["bd_rate"] == pytest.approx(expect, abs=1e-3) and haze["bd_rate"] < 0
    noise = next(e for e in bd if e["task"] == "noise" and e["comparison"] == "rpo_vs_rdo")
    assert noise["bd_rate"] is None and "increase strictly" in noise["undefined"]
    avg = ll.average_bd(bd, ll.abnormal(ROWS, ["psnr"], HB), "rpo_vs_rdo", "psnr")
    assert avg["tasks"] == ["haze"] and avg["bd_rate"] == pytest.approx(haze["bd_rate"], abs=1e-3)
    assert avg["left_out"] == {"noise": "abnormal: quality does not rise with bpp"}
    casc = [e for e in bd if e["comparison"] == "rpo_vs_cascade"]
    assert all(e["best_cascade"] for e in casc if e["bd_rate"] is not None)
    sentences = ll.answers([avg], bd, ll.abnormal(ROWS, ["psnr"], HB),
                           {"universal_minus_degraded": {"psnr": {"delta": 1.0, "ci_low": 0.5, "ci_high": 1.5}}},
                           {"accuracy": 0.9, "n": 10, "heldout_taken_for": {"noise": 3}}, "motion_blur")
    assert sentences[0].startswith("RPO needs fewer bits than RDO") and "noise" in sentences[0]
    assert any("generalises" in s for s in sentences) and any("Abnormal" in s for s in sentences)


def test_equal_rate_differences_are_paired_by_photo():
    d = ll.equal_rate_differences(ROWS, ["psnr"], n_boot=50)
    haze_low = next(x for x in d if x["task"] == "haze" and x["rate_point"] == "low")
    assert haze_low["psnr"]["delta"] == pytest.approx(1.0)
    assert haze_low["bpp"]["delta"] == pytest.approx(0.0)


def test_coded_mean_writes_a_real_bitstream_and_decodes_to_the_same_pixels():
    from vlic.codec.autoencoder import CodecConfig, DiffusionCodec
    from vlic.codec.checkpoint import Checkpoint, build_prior
    from vlic.codec.image_codec import ImageCodec

    torch.manual_seed(0)
    cfg = CodecConfig(fsq_levels=(5, 3), downsample=8, patch=4, encoder_width=8, cond_channels=4,
                      flow_widths=(8, 8), tile=32, prior_dim=16, prior_layers=1, prior_heads=2, prior_block=4)
    codec = ImageCodec(Checkpoint(DiffusionCodec(cfg).eval(), build_prior(cfg).eval()))
    px = (np.random.default_rng(0).random((20, 28, 3)) * 255).astype(np.uint8)
    z, decoded = coded_mean(codec, px, verify=True)
    assert decoded.shape == px.shape and z.bpp == pytest.approx(8 * len(z.data) / (20 * 28))
    assert np.array_equal(decoded, codec.mean_reconstruction(z.data))
