"""The evaluation chapter's library: codec reconstructions as real files, metrics (and their offline status),
statistics, clustered Elo intervals and the README table rendered from results."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from vlic.codec.baselines import BaselineCodec
from vlic.data.splits import cut_patches
from vlic.eval.benchmark import (Reconstructions, baseline_reconstructions, compressai_availability,
                                 downscaled_compress)
from vlic.eval.elo import elo_bootstrap, pairwise_comparisons
from vlic.eval.metrics import FullReference, distribution_metric, frechet_distance, kernel_distance, availability
from vlic.eval.report import END, START, render_readme, render_table, update_readme
from vlic.eval.summary import bd_rate_entry, paired_difference, results_table

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    from skimage import data

    from PIL import Image

    return np.asarray(Image.fromarray(data.astronaut()).resize((256, 256), Image.Resampling.LANCZOS))


# ---- reconstructions ----------------------------------------------------------------------------------------------

def test_downscale_then_code_reaches_a_rate_the_plain_codec_cannot(photo):
    jpeg = BaselineCodec("jpeg")
    target = 0.05
    plain = jpeg.compress(photo, bpp=target)
    assert not plain.met_target and plain.bpp > target          # JPEG's floor is far above 0.05 bpp
    data, rec, scale, quality, met = downscaled_compress(jpeg, photo, target)
    assert met and 8 * len(data) / (256 * 256) <= target          # bits counted over the full-resolution pixels
    assert scale < 1 and rec.shape == photo.shape and rec.dtype == np.uint8


def test_baseline_rows_mark_unmatched_rates_and_reuse_the_full_size_file(photo):
    rec = baseline_reconstructions({"a": photo}, {"low": {"a": 0.05}, "high": {"a": 1.5}}, ("jpeg",))
    rows = {(r["codec"], r["rate_point"]): r for r in rec.rows}
    assert rows[("jpeg", "low")]["matched"] is False and rows[("jpeg", "low")]["bpp"] > 0.05
    assert rows[("jpeg-ds", "low")]["matched"] is True and rows[("jpeg-ds", "low")]["bpp"] <= 0.05
    assert rows[("jpeg", "high")]["matched"] and rows[("jpeg-ds", "high")]["scale"] == 1.0
    assert rec.pixels[("jpeg", "high", "a", 0)] is rec.pixels[("jpeg-ds", "high", "a", 0)]
    with pytest.raises(KeyError, match="no target bpp for photo 'a'"):
        baseline_reconstructions({"a": photo}, {"low": {"b": 0.1}}, ("jpeg",))


def test_reconstructions_refuse_duplicates_and_patches_outside_the_photo(photo):
    r = Reconstructions()
    r.add({"codec": "x", "rate_point": "low", "photo": "a", "seed": 0}, photo)
    with pytest.raises(ValueError, match="added twice"):
        r.add({"codec": "x", "rate_point": "low", "photo": "a", "seed": 0}, photo)
    assert cut_patches(photo, [(0, 0), (192, 192)], 64)[1].shape == (64, 64, 3)
    with pytest.raises(ValueError, match="outside"):
        cut_patches(photo, [(200, 0)], 64)


def test_compressai_is_reported_not_faked():
    reason = compressai_availability("bmshj2018-hyperprior")
    try:
        import compressai  # noqa: F401
    except ImportError:
        assert "not installed" in reason


# ---- metrics --------------------------------------------------------------------------------------------------------

def test_full_reference_values_and_directions(photo):
    from vlic.codec.quality import ms_ssim, psnr

    noisy = np.clip(photo.astype(int) + np.random.default_rng(0).integers(-20, 21, photo.shape), 0, 255).astype(np.uint8)
    m = FullReference(["psnr", "ms_ssim", "haarpsi", "gmsd"])
    same, worse = m(photo, photo), m(photo, noisy)
    assert same["psnr"] == float("inf") and same["ms_ssim"] == pytest.approx(1, abs=1e-6)
    assert same["gmsd"] == pytest.approx(0, abs=1e-6) and worse["gmsd"] > 0.01
    assert worse["haarpsi"] < same["haarpsi"]
    assert worse["psnr"] == pytest.approx(psnr(photo, noisy))
    assert worse["ms_ssim"] == pytest.approx(ms_ssim(photo, noisy), abs=1e-5)  # the standard 5-scale variant
    with pytest.raises(ValueError, match="unknown"):
        FullReference(["psnr", "nonsense"])


def test_unavailable_metrics_say_why():
    for name in ("fid", "kid", "fd_dino"):
        reason = availability(name)
        assert reason is None or "not available offline" in reason
    assert "unknown metric" in availability("nope")


def _frechet_scipy(f1, f2):
    from scipy import linalg

    mu1, mu2, s1, s2 = f1.mean(0), f2.mean(0), np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    covmean = linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


def test_frechet_distance_matches_scipy_sqrtm():
    rng = np.random.default_rng(0)
    f1 = rng.normal(size=(200, 8))
    f2 = rng.normal(size=(150, 8)) @ rng.normal(size=(8, 8)) * 0.5 + 1.0
    assert frechet_distance(f1, f2) == pytest.approx(_frechet_scipy(f1, f2), rel=1e-6)
    assert frechet_distance(f1, f1) == pytest.approx(0, abs=1e-8)
    # 1-D Gaussians: (μ1 − μ2)² + (σ1 − σ2)²
    a, b = rng.normal(0, 1, (4000, 1)), rng.normal(2, 3, (4000, 1))
    assert frechet_distance(a, b) == pytest.approx((a.mean() - b.mean()) ** 2 + (a.std(ddof=1) - b.std(ddof=1)) ** 2)


def test_kernel_distance_matches_torchmetrics_poly_mmd():
    from torchmetrics.image.kid import poly_mmd

    rng = np.random.default_rng(1)
    f1, f2 = rng.normal(size=(40, 6)), rng.normal(0.3, 1.2, size=(40, 6))  # torchmetrics assumes equal sizes
    ref = float(poly_mmd(torch.from_numpy(f1), torch.from_numpy(f2), degree=3, coef=1.0))
    assert kernel_distance(f1, f2) == pytest.approx(ref, rel=1e-6)


def test_distribution_metric_runs_on_a_tiny_random_feature_network(photo):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 5, stride=4), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1))
    patches = cut_patches(photo, [(y, x) for y in range(0, 192, 32) for x in range(0, 192, 32)], 64)
    blurred = [np.asarray(p, dtype=np.uint8) // 2 + 64 for p in patches]
    assert distribution_metric("fid", net, patches, patches) == pytest.approx(0, abs=1e-6)
    assert distribution_metric("fid", net, patches, blurred) > 1e-4
    assert np.isfinite(distribution_metric("kid", net, patches, blurred))


# ---- statistics -----------------------------------------------------------------------------------------------------


def _photos_df():
    rows = []
    for photo, off in (("a", 0.0), ("b", 1.0), ("c", -1.0)):
        for rp, bpp, q in (("r1", 0.1, 28), ("r2", 0.2, 31), ("r3", 0.4, 34)):
            rows.append({"codec": "anchor", "rate_point": rp, "photo": photo, "bpp": bpp, "psnr": q + off,
                         "matched": True, "family": "x", "target_bpp": np.nan})
            rows.append({"codec": "test", "rate_point": rp, "photo": photo, "bpp": 0.9 * bpp, "psnr": q + off,
                         "matched": rp != "r1", "family": "y", "target_bpp": bpp})
        rows.append({"codec": "single", "rate_point": "r1", "photo": photo, "bpp": 0.1, "psnr": 29 + off,
                     "matched": True, "family": "z", "target_bpp": np.nan})
    return pd.DataFrame(rows)


def test_bd_rate_entry_value_interval_and_undefined_reason():
    df = _photos_df()
    e = bd_rate_entry(df, "anchor", "test", "psnr", True, n_boot=50)
    assert e["bd_rate"] == pytest.approx(-10.0, abs=1e-6) and e["ci_low"] == pytest.approx(-10.0, abs=1e-6)
    # lower-is-better metrics are flipped, not refused
    assert bd_rate_entry(df.assign(psnr=-df.psnr), "anchor", "test", "psnr", False, n_boot=0)["bd_rate"] == \
        pytest.approx(-10.0, abs=1e-6)
    u = bd_rate_entry(df, "anchor", "single", "psnr", True)
    assert u["bd_rate"] is None and "at least 2" in u["undefined"]


def test_results_table_and_paired_difference():
    df = _photos_df()
    t = results_table(df, ["psnr"], n_boot=100).set_index(["codec", "rate_point"])
    assert t.loc[("anchor", "r2"), "psnr"] == pytest.approx(31.0)
    assert t.loc[("anchor", "r2"), "psnr_ci_low"] <= 31.0 <= t.loc[("anchor", "r2"), "psnr_ci_high"]
    assert not t.loc[("test", "r1"), "matched"] and t.loc[("test", "r2"), "matched"]
    d = paired_difference(df, "single", "anchor", "r1", ["psnr"], n_boot=100)
    assert d["psnr"]["delta"] == pytest.approx(1.0) and d["psnr"]["ci_low"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="share no photo"):
        paired_difference(df, "single", "anchor", "r9", ["psnr"])


def test_pairwise_comparisons_and_clustered_elo():
    d = {"good": np.array([0.1, 0.1, 0.2]), "bad": np.array([0.5, 0.1, 0.9]), "mid": np.array([0.3, 0.3, 0.3])}
    comps, clusters = pairwise_comparisons(d, ["p0", "p1", "p2"])
    assert len(comps) == 9 and list(clusters[:3]) == ["p0", "p1", "p2"]
    assert ("good", "bad", 0.5) in comps  # equal distance on p1 = draw
    assert [c for c in comps if c[:2] == ("good", "mid")] == [("good", "mid", 1.0)] * 3
    with pytest.raises(ValueError, match="3 items"):
        pairwise_comparisons({"a": np.zeros(2), "b": np.zeros(3)}, ["x", "y", "z"])
    # 40 patches, each with 5 identical comparisons: clustering must widen the interval (fewer independent items)
    rng = np.random.default_rng(0)
    base = [("a", "b", float(rng.random() < 0.6)) for _ in range(40)]
    comps = [c for c in base for _ in range(5)]
    labels = [k for k in range(40) for _ in range(5)]
    naive = elo_bootstrap(comps, n_boot=300, seed=0)["a"]
    clustered = elo_bootstrap(comps, n_boot=300, seed=0, clusters=labels)["a"]
    assert naive["elo"] == clustered["elo"]
    assert clustered["ci_high"] - clustered["ci_low"] > 1.5 * (naive["ci_high"] - naive["ci_low"])
    with pytest.raises(ValueError, match="cluster labels"):
        elo_bootstrap(comps, n_boot=2, clusters=labels[:-1])


# ---- README table ---------------------------------------------------------------------------------------------------

def _results():
    return {"photos": ["a", "b"], "table_metrics": ["psnr", "gmsd"], "metric_labels": {"psnr": "PSNR (dB)", "gmsd": "GMSD"},
            "higher_is_better": {"psnr": True, "gmsd": False},
            "table": [{"codec": "vlic", "rate_point": "low", "matched": True, "bpp": 0.04, "bpp_ci_low": 0.039,
                       "bpp_ci_high": 0.041, "psnr": 16.1, "psnr_ci_low": 15.0, "psnr_ci_high": 17.2, "gmsd": 0.2,
                       "gmsd_ci_low": None, "gmsd_ci_high": None},
                      {"codec": "jpeg", "rate_point": "low", "matched": False, "bpp": 0.11, "psnr": 21.0, "gmsd": 0.1}],
            "bd_rate": [{"anchor": "jpeg", "test": "vlic", "metric": "psnr", "bd_rate": None, "undefined": "no overlap"}],
            "elo": {"haarpsi": {"low": {"vlic": {"elo": 900.0, "ci_low": 880.0, "ci_high": 920.0}}}}, "elo_patches": 8,
            "not_available": {"fid": "FID not available offline: reasons"}}


def test_render_table_and_readme_markers(tmp_path):
    text = render_table(_results())
    assert "| vlic | low | 0.040 [0.039, 0.041] | 16.10 [15.00, 17.20] | 0.2000 |" in text
    assert "jpeg *(not matched)*" in text and "| vlic | undefined (1) |" in text and "(1) no overlap." in text
    assert "FID not available" in text
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{START}\nold\n{END}\noutro\n")
    results = tmp_path / "eval.json"
    results.write_text(json.dumps(_results()))
    assert render_readme(results, readme, check=True) is False
    assert render_readme(results, readme) is False and render_readme(results, readme, check=True) is True
    assert readme.read_text().startswith("intro\n") and readme.read_text().endswith(f"{END}\noutro\n")
    with pytest.raises(ValueError, match="markers"):
        update_readme("no markers", text)


def test_readme_agrees_with_committed_results(tmp_path):
    """docs/evaluation.md's results table is exactly what results/eval.json renders to (`vlic eval render-readme`).

    Either the working tree's results (just re-rendered) or the committed ones (a rerun of the study on another
    machine rewrites results/eval.json; the README still shows the committed run, which is what it was rendered from).
    """
    from vlic.reproduce import committed_json

    results = REPO / "results" / "eval.json"
    if not results.is_file():
        pytest.skip("results/eval.json not produced yet (dvc repro evaluate)")
    candidates = [results]
    committed = committed_json("results/eval.json", repo=REPO)
    if committed is not None:
        candidates.append(tmp_path / "eval_committed.json")
        candidates[-1].write_text(json.dumps(committed))
    assert any(render_readme(c, REPO / "docs" / "evaluation.md", check=True) for c in candidates), \
        "docs/evaluation.md disagrees with results/eval.json (working tree and committed): run `vlic eval render-readme`"


def test_learned_codecs_say_which_checkpoint_is_missing(tmp_path):
    from vlic.eval.benchmark import learned_codecs

    learned, missing, dpo_rate = learned_codecs(tmp_path, ["low"], "codec_dpo.safetensors")
    assert learned == {} and dpo_rate is None
    assert "dvc repro pretrain" in missing["vlic@low"] and "dvc repro dpo" in missing["vlic-dpo"]


def test_bd_rate_answers_say_what_each_interval_means():
    from vlic.eval.summary import bd_rate_answers

    entries = [{"metric": "psnr", "anchor": "jpeg", "test": "vlic", "bd_rate": -16.6, "ci_low": -24.9, "ci_high": -6.2},
               {"metric": "psnr", "anchor": "jpeg", "test": "vlic μ", "bd_rate": 0.4, "ci_low": -29.0, "ci_high": 15.3},
               {"metric": "ms_ssim", "anchor": "jpeg-ds", "test": "vlic", "bd_rate": 78.3, "ci_low": 17.0, "ci_high": 116.8},
               {"metric": "psnr", "anchor": "vlic", "test": "vlic-dpo", "bd_rate": 1.0, "ci_low": None, "ci_high": None},
               {"metric": "psnr", "anchor": "jpeg", "test": "vlic-dpo", "bd_rate": None, "undefined": "one rate point"},
               {"metric": "psnr", "anchor": "jpeg", "test": "webp", "bd_rate": -40.0, "ci_low": -50.0, "ci_high": -30.0}]
    labels = {"psnr": "PSNR (dB)", "ms_ssim": "MS-SSIM"}
    assert bd_rate_answers(entries, {"vlic", "vlic μ", "vlic-dpo"}, ["jpeg", "jpeg-ds"], labels) == [
        "PSNR (dB): vlic vs jpeg BD-rate -16.6 % [-24.9, -6.2] → fewer bits at equal quality",
        "PSNR (dB): vlic μ vs jpeg BD-rate +0.4 % [-29.0, +15.3] → no measurable difference",
        "MS-SSIM: vlic vs jpeg-ds BD-rate +78.3 % [+17.0, +116.8] → more bits at equal quality"]
    # an anchor outside `anchors` is not reported; a system outside `systems` neither
    assert bd_rate_answers(entries[3:4], {"vlic-dpo"}, ["vlic"], labels) == [
        "PSNR (dB): vlic-dpo vs vlic BD-rate +1.0 % [+nan, +nan] → no interval"]


def test_pooled_hifid_patches_pool_every_photo_in_order():
    from vlic.eval.metrics import hifid_patches, pooled_hifid_patches

    a, b = np.zeros((64, 96, 3), np.uint8), np.ones((96, 64, 3), np.uint8)
    pooled = pooled_hifid_patches([a, b], 32)
    assert len(pooled) == len(hifid_patches(a, 32)) + len(hifid_patches(b, 32)) == (2 * 3 + 1 * 2) + (3 * 2 + 2 * 1)
    assert all(q.max() == 0 for q in pooled[:8]) and all(q.min() == 1 for q in pooled[8:])


def test_codec_groups_answer_one_question_each_with_at_most_six_codecs():
    import pytest

    from vlic.eval.summary import codec_groups

    codecs = ["vlic", "vlic μ", "vlic-dpo", "vlic-dpo μ", "jpeg", "jpeg-ds", "webp", "webp-ds", "avif", "avif-ds"]
    g = codec_groups(codecs, ["learned vs classical", "downscale-then-code", "learned decoders"])
    assert g["learned vs classical"][1] == ["vlic", "vlic-dpo", "jpeg", "webp", "avif"]
    assert g["downscale-then-code"][1] == ["jpeg", "jpeg-ds", "webp", "webp-ds", "avif", "avif-ds"]
    assert g["learned decoders"][1] == ["vlic", "vlic μ", "vlic-dpo", "vlic-dpo μ"]
    with pytest.raises(ValueError, match="unknown group"):
        codec_groups(codecs, ["everything"])
