"""The paper's pipeline on a tiny FlowMo saved in the released ``.pth`` layout, on CPU: chapter 02's import (strict
load + token prior fitted to its tokens) → chapter 04's Diffusion-DPO (the same trainer as the laptop codec, encoder
trained, bf16 autocast and gradient checkpointing) → the post-trained checkpoint saved and loaded back through
:mod:`vlic.codec.families` → chapter 04/05's evaluation paths (real bitstreams, the held-out same-bitstream decode,
the rate–distortion harness, token drift)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import synthetic_photo
from vlic.codec import families
from vlic.codec.flow_model import enable_gradient_checkpointing
from vlic.codec.flowmo.model import FlowMo, FlowMoConfig, save_released_layout
from vlic.codec.flowmo.checkpoint import FlowMoCheckpoint
from vlic.codec.flowmo.codec import FlowMoCodec
from vlic.eval.benchmark import learned_codecs, learned_reconstructions
from vlic.eval.decoder_comparison import bitstream_rates, compare_on_same_bitstream
from vlic.training.buffer import Candidate, Judgement
from vlic.training.dpo.memory import memory_estimate
from vlic.training.dpo.trainer import DPOConfig, post_trained_checkpoint, train_dpo
from vlic.training.flowmo_import import import_released

# 64-px tiles, patch 8, 16 tokens × 4 bits: the released layout and code path at a size a CPU test can train
TINY = FlowMoConfig(patch_size=8, mup_width=1, enc_mup_width=1, code_length=16, context_dim=4, enc_depth=1,
                    dec_depth=1, hidden_size=256, num_heads=4, axes_dim=(8, 24, 32), mlp_ratio=2.0, image_size=64,
                    sample_steps=2, cfg=1.5)


def closer_wins(c: Candidate) -> Judgement:
    da = float(((c.a.astype(float) - c.original) ** 2).mean())
    db = float(((c.b.astype(float) - c.original) ** 2).mean())
    return Judgement(None, "tie") if da == db else Judgement("a" if da < db else "b", rating=db - da)


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    d = tmp_path_factory.mktemp("flowmo_chain")
    torch.manual_seed(0)
    pth = save_released_layout(FlowMo(TINY), d / "tiny_lo.pth", total_steps=1)
    (d / "tiny_lo.json").write_text(TINY.to_json())
    photos = [synthetic_photo(96, 128, k) for k in range(3)]
    imported = import_released(pth, photos, d / "codec_low.safetensors", "low", prior_steps=20, prior_dim=16,
                               prior_layers=1, prior_heads=2)
    return {"dir": d, "pth": pth, "photos": photos, "imported": imported}


def _cfg(**kw) -> DPOConfig:
    base = dict(steps=4, batch_size=2, lr=1e-3, warmup=1, beta=500.0, refresh_every=2, refresh_size=4, min_pairs=2,
                sample_steps=2, judge_workers=0, checkpoint_every=0, buffer_capacity=16, threads=1)
    return DPOConfig(**{**base, **kw})


def test_import_fits_a_prior_and_saves_a_flowmo_codec_checkpoint(chain):
    run = chain["imported"]
    ck = families.load(chain["dir"] / "codec_low.safetensors")
    assert isinstance(ck, FlowMoCheckpoint) and families.family(ck) == "flowmo"
    assert ck.rate == "low" and ck.prior_kind == "fitted" and ck.fingerprint == run.checkpoint.fingerprint
    assert ck.training["imported_from"] == "tiny_lo.pth" and len(ck.training["sha256"]) == 64
    assert run.curves == [] and run.prior_curves[-1]["bits_per_bit"] < run.prior_curves[0]["bits_per_bit"]
    for k, v in FlowMo(TINY).state_dict().items():  # the imported weights are the .pth's, untouched
        assert ck.model.state_dict()[k].shape == v.shape
    assert families.read_fingerprint(chain["dir"] / "codec_low.safetensors") == ck.fingerprint


def test_dpo_post_trains_flowmo_and_the_evaluation_paths_take_it(chain, tmp_path):
    base = families.load(chain["dir"] / "codec_low.safetensors")
    res = train_dpo(base, chain["photos"], closer_wins, _cfg(), progress=False)
    assert len(res.curves) == 4 and all(np.isfinite(r["loss"]) for r in res.curves)
    assert res.stats["accepted"] >= 2
    changed = [k for k, v in res.model.state_dict().items() if not torch.equal(v, base.model.state_dict()[k])]
    assert any(k.startswith("decoder.") for k in changed) and any(k.startswith("encoder.") for k in changed)

    dpo = post_trained_checkpoint(base, res, _cfg())
    assert isinstance(dpo, FlowMoCheckpoint) and dpo.fingerprint != base.fingerprint
    dpo.save(tmp_path / "codec_dpo.safetensors")
    (tmp_path / "codec_low.safetensors").write_bytes((chain["dir"] / "codec_low.safetensors").read_bytes())
    learned, missing, dpo_rate = learned_codecs(tmp_path, ["low", "high"], "codec_dpo.safetensors")
    assert set(learned) == {"vlic@low", "vlic-dpo"} and dpo_rate == "low" and "vlic@high" in missing
    assert all(isinstance(codec, FlowMoCodec) for _, _, codec in learned.values())

    photos = {"a": synthetic_photo(80, 112, 7)}
    rec = learned_reconstructions(list(learned.values()), photos, 2, (0,))
    assert len(rec.rows) == 2 and rec.mean_heads == {}  # FlowMo has no mean head
    assert all(px.shape == (80, 112, 3) for px in rec.pixels.values())

    base_codec = learned["vlic@low"][2]
    same = compare_on_same_bitstream(base_codec, {"pre": base.model, "dpo": dpo.model}, photos,
                                     {"a": [(0, 0), (16, 48)]}, patch=32, seeds=(0,), steps=2)
    assert len(same.original) == 2 and set(same.recon) == {"pre", "dpo"}
    # the base model decoding its own file's codes through the held-out path = the codec's own decompress
    own = base_codec.decompress(base_codec.compress(photos["a"]).data, steps=2, seed=0)
    np.testing.assert_array_equal(same.recon["pre"][0], own[0:32, 0:32])
    rates = bitstream_rates({"pre": base_codec, "dpo": learned["vlic-dpo"][2]}, photos)
    assert 0.0 <= rates[1]["tokens_changed"] <= 1.0 and rates[0]["bpp"] > 0


def test_bf16_autocast_and_gradient_checkpointing_run_and_checkpointing_changes_nothing(chain):
    base = families.load(chain["dir"] / "codec_low.safetensors")
    plain = train_dpo(base, chain["photos"], closer_wins, _cfg(steps=2), progress=False)
    ckpt = train_dpo(base, chain["photos"], closer_wins, _cfg(steps=2, gradient_checkpointing=True), progress=False)
    for k, v in plain.model.state_dict().items():  # recomputation in the backward pass: the same gradients
        torch.testing.assert_close(ckpt.model.state_dict()[k], v, rtol=1e-5, atol=1e-6)
    bf16 = train_dpo(base, chain["photos"], closer_wins, _cfg(steps=2, mixed_precision="bf16"), progress=False)
    assert all(np.isfinite(r["loss"]) for r in bf16.curves)
    with pytest.raises(ValueError, match="mixed_precision"):
        train_dpo(base, chain["photos"], closer_wins, _cfg(mixed_precision="fp8"), progress=False)


def test_gradient_checkpointing_is_refused_for_the_unet_codec():
    from vlic.codec.autoencoder import CodecConfig, DiffusionCodec

    with pytest.raises(ValueError, match="no transformer blocks"):
        enable_gradient_checkpointing(DiffusionCodec(CodecConfig(fsq_levels=(5, 3), flow_widths=(16, 16), tile=32,
                                                                  encoder_width=16, cond_channels=8)))


def test_memory_estimate_counts_the_released_models_parameters_exactly():
    from vlic.codec.flowmo.model import FLOWMO_LO

    with torch.device("meta"):
        n = FlowMo(FLOWMO_LO).parameter_count()
    est = memory_estimate(FLOWMO_LO, DPOConfig(batch_size=4, mixed_precision="bf16", gradient_checkpointing=True))
    assert est["parameters"] == n and 0.9e9 < n < 1.0e9
    # policy fp32 + gradients fp32 + AdamW's two fp32 moments + the bf16 reference
    assert est["weights_bytes"] == n * (4 + 4 + 8 + 2)
    full = memory_estimate(FLOWMO_LO, DPOConfig(batch_size=4))
    assert full["activation_bytes"] > est["activation_bytes"] and full["total_bytes"] > est["total_bytes"]


def test_the_cli_finds_an_imported_flowmo_codec_by_the_fingerprint_in_the_file(chain, tmp_path, monkeypatch):
    """``vlic compress --rate low`` uses models/codec_low.safetensors whatever its family, and ``vlic decompress``
    without --model finds the FlowMo checkpoint under models/ by the fingerprint the file carries."""
    from PIL import Image

    from vlic.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "codec_low.safetensors").write_bytes((chain["dir"] / "codec_low.safetensors").read_bytes())
    Image.fromarray(synthetic_photo(72, 100, 5)).save(tmp_path / "in.png")
    assert main(["compress", "in.png", "x.vlic", "--rate", "low"]) == 0
    assert main(["decompress", "x.vlic", "out.png", "--steps", "2"]) == 0
    assert Image.open(tmp_path / "out.png").size == (100, 72)


def test_chapter_03s_reward_ablation_runs_post_train_flowmo_and_decode_the_base_bitstreams(chain, tmp_path):
    from vlic.eval.decoder_comparison import heldout_codes
    from vlic.judges.factory import VLMSettings
    from vlic.judges.reward_variants import Roles, parse_variants
    from vlic.judges.simulated import SimulationSettings
    from vlic.training.reward_ablation import AblationJob, run_jobs

    ck_path = chain["dir"] / "codec_low.safetensors"
    base = families.load(ck_path)
    photos = {"a": synthetic_photo(80, 112, 7)}
    evals = heldout_codes(families.image_codec(base), photos, {"a": [(0, 0), (16, 48)]})
    variant = parse_variants(["unanimous:n1:o1"], Roles(vlm="psnr", lpips="ssim"))[0]
    job = AblationJob(variant, 0, _cfg(steps=2), str(ck_path), str(tmp_path / "cache.sqlite"), SimulationSettings(),
                      VLMSettings(), patch=32, eval_seeds=(0,), sample_steps=2)
    out = run_jobs([job], chain["photos"], evals, photos, tmp_path / "runs", base.fingerprint, workers=1,
                   log=lambda _: None)
    res = out[(variant.token, 0)]
    assert res["ok"], res.get("error")
    assert res["patches"].shape == (2, 32, 32, 3) and res["bpp"]["a"] > 0
