"""vlic.training.flowmo_pretrain: FlowMo trained from scratch (chapter 02's FlowMo-mini) — FlowMo's LFQ losses, its
initialisation and norm fixing, the loss going down, the saved checkpoint coding real files, resuming."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from conftest import synthetic_photo
from vlic.cli import main
from vlic.codec.flowmo.model import FlowMo
from vlic.codec.flowmo.checkpoint import load_codec_checkpoint
from vlic.codec.flowmo.codec import FlowMoCodec
from vlic.training.flowmo_pretrain import (FlowMoPretrainConfig, entropy_group, flowmo_init_, lfq_losses, mini_config,
                                           pretrain_flowmo, train_flowmo)

TINY = dict(width=32, heads=2, enc_depth=1, dec_depth=1, tile=32, code_length=4)


def _photos():
    return [synthetic_photo(80, 96, seed=k) for k in range(2)]


def test_mini_config_has_the_requested_geometry():
    c = mini_config(12)
    assert (c.image_size, c.patch_size, c.code_length, c.context_dim) == (64, 4, 16, 12)
    model = FlowMo(c)
    assert model.encoder.img_in.out_features == model.decoder.img_in.out_features == 64
    assert sum(c.transformer("decoder")["axes_dim"]) == 64 // 4
    with pytest.raises(ValueError, match="multiple of 4"):
        mini_config(12, width=40, heads=4)


def test_entropy_group_follows_flowmo():
    assert entropy_group(18) == 9 and entropy_group(12) == 6 and entropy_group(11) == 1
    with pytest.raises(ValueError, match="divide"):
        entropy_group(12, 5)


def test_lfq_losses_by_hand():
    # decisive codes spread evenly over the 4 codewords of 2 bits: sample entropy ≈ 0, batch entropy = log 4
    code = torch.tensor([[[3.0, 3.0], [3.0, -3.0], [-3.0, 3.0], [-3.0, -3.0]]])
    entropy, commit = lfq_losses(code, 2)
    assert entropy.item() == pytest.approx(-np.log(4), abs=1e-3)
    assert commit.item() == pytest.approx(4.0)  # (3 − 1)² everywhere
    # all on one codeword: batch entropy 0 as well → loss ≈ 0 (worse than spread out)
    same, _ = lfq_losses(code.abs(), 2)
    assert same.item() == pytest.approx(0.0, abs=1e-3)
    # channel grouping is FlowMo's "b t (fg fh) -> b fg (t fh)": with C = 4 and groups of 2, a codeword is the
    # channels (0, 2) or (1, 3); channels 0 and 1 opposite, 2 and 3 opposite, every codeword is (+, +) or (−, −)
    c4 = torch.tensor([[[1.0, -1.0, 1.0, -1.0]]]) * 5
    e4, _ = lfq_losses(c4, 2)
    assert e4.item() == pytest.approx(-np.log(2), abs=1e-3)


def test_init_zeroes_every_gate():
    model = flowmo_init_(FlowMo(mini_config(4, **TINY)))
    x, cond = torch.randn(2, 3, 32, 32), torch.randn(2, 4, 5)
    block = model.decoder.double_blocks[0]
    (_, _, g1), (_, _, g2) = block.img_mod(torch.randn(2, 32))
    assert torch.count_nonzero(g1) == 0 and torch.count_nonzero(g2) == 0
    assert model.velocity(x, cond, torch.rand(2)).shape == x.shape


def test_training_lowers_the_loss_and_keeps_norms(tmp_path):
    cfg = FlowMoPretrainConfig(steps=30, batch_size=8, lr=3e-3, warmup=3, log_every=1, threads=1,
                               perceptual_weight=0.0, ema_decay=0.9)
    ema, curves, _, resumed = train_flowmo(mini_config(4, **TINY), cfg, _photos(), progress=False)
    assert resumed == 0 and len(curves) == 30
    loss = [r["flow_loss"] for r in curves]
    assert np.mean(loss[-8:]) < 0.8 * np.mean(loss[:4])  # flow loss starts near ‖ε − x‖² ≈ 1.3
    torch.manual_seed(cfg.seed)  # the trainer's seed → the same initial weights
    init = flowmo_init_(FlowMo(mini_config(4, **TINY)))
    w0 = init.decoder.double_blocks[0].img_attn.qkv.weight.norm()
    # the EMA mixes fixed-norm weights, so its norm is at most the initial one (equal up to averaging)
    assert ema.decoder.double_blocks[0].img_attn.qkv.weight.norm() <= w0 * 1.0001


def test_checkpoint_round_trips_through_the_codec_and_cli(tmp_path):
    from PIL import Image

    cfg = FlowMoPretrainConfig(steps=4, batch_size=4, warmup=2, threads=1, prior_steps=5, prior_dim=16, prior_layers=1)
    out = tmp_path / "mini.safetensors"
    run = pretrain_flowmo(mini_config(4, **TINY), cfg, _photos(), out, progress=False)
    assert run.cpu_seconds > 0 and len(run.prior_curves) == 5
    ck = load_codec_checkpoint(out)
    assert ck.prior_kind == "fitted" and ck.fingerprint == run.checkpoint.fingerprint
    assert ck.training["pretrain_flowmo"]["steps"] == 4
    codec = FlowMoCodec(ck, device="cpu")
    img = synthetic_photo(70, 90, seed=5)
    z = codec.compress(img)
    assert z.bpp > 0 and z.payload_bits <= z.ideal_bits + 64
    a = codec.decompress(z.data, steps=2, seed=1)
    assert a.shape == img.shape and np.array_equal(a, codec.decompress(z.data, steps=2, seed=1))
    src, f, dst = tmp_path / "in.png", tmp_path / "in.vlic", tmp_path / "out.png"
    Image.fromarray(img).save(src)
    assert main(["compress", str(src), str(f), "--model", str(out)]) == 0
    assert main(["decompress", str(f), str(dst), "--model", str(out), "--steps", "1"]) == 0
    assert np.asarray(Image.open(dst)).shape == img.shape


def test_an_interrupted_run_resumes_to_the_same_weights(tmp_path, monkeypatch):
    import vlic.training.pretrain as fp   # the training loop FlowMo shares with the UNet codec

    cfg = FlowMoPretrainConfig(steps=6, batch_size=4, warmup=2, threads=1, checkpoint_every=3, perceptual_weight=0.0)
    config = mini_config(4, **TINY)
    straight, curves, _, _ = train_flowmo(config, cfg, _photos(), progress=False)
    state = tmp_path / "resume" / "mini.pt"
    calls, crops = [], fp.random_crops

    def crash_at_step_4(*args):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt("simulated interruption")
        return crops(*args)

    monkeypatch.setattr(fp, "random_crops", crash_at_step_4)
    with pytest.raises(KeyboardInterrupt):
        train_flowmo(config, cfg, _photos(), state, progress=False)
    monkeypatch.setattr(fp, "random_crops", crops)
    assert (tmp_path / "resume" / ".gitignore").is_file()
    # another configuration does not pick the state up
    _, _, _, other = train_flowmo(config, dataclasses.replace(cfg, lr=5e-4, steps=1), _photos(), tmp_path / "x.pt",
                                  progress=False)
    assert other == 0
    resumed, resumed_curves, _, start = train_flowmo(config, cfg, _photos(), state, progress=False)
    def untimed(rows):
        return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]

    assert start == 3 and untimed(resumed_curves) == untimed(curves)
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name


def test_training_times():
    from vlic.training.flowmo_pretrain import flow_times

    gen = torch.Generator().manual_seed(0)
    ln, fat, uni = (flow_times(20000, k, gen) for k in ("logit_normal", "fat_logit_normal", "uniform"))
    assert all(((t > 0) & (t < 1)).all() for t in (ln, fat, uni))
    # logit-normal(0, 1) rarely reaches the ends; the fat variant puts ~10 % uniform mass there; uniform ~ t itself
    assert (ln > 0.95).float().mean() < 0.003 < (fat > 0.95).float().mean() < 0.01  # 0.9 · 0.002 + 0.1 · 0.05
    assert uni.mean().item() == pytest.approx(0.5, abs=0.01) and (uni > 0.95).float().mean().item() == pytest.approx(0.05, abs=0.01)
    with pytest.raises(ValueError, match="time_sampling"):
        flow_times(2, "cosine", gen)


def test_a_finished_model_of_the_same_recipe_is_reused_and_any_change_trains_again(tmp_path, capsys):
    """Chapter 02 ships FlowMo-mini's checkpoint and reuses it (`reuse=True`) when its recorded recipe key — model,
    both training phases, photos, training code, numerics — is the one asked for; anything else trains."""
    from vlic.training.flowmo_pretrain import recipe_key

    cfg = FlowMoPretrainConfig(steps=3, batch_size=4, warmup=1, threads=1, prior_steps=2, prior_dim=16, prior_layers=1,
                               perceptual_weight=0.0)
    config, photos, out = mini_config(4, **TINY), _photos(), tmp_path / "mini.safetensors"
    first = pretrain_flowmo(config, cfg, photos, out, progress=False, reuse=True)   # nothing there yet: trains
    assert not first.reused and first.checkpoint.training["recipe"] == recipe_key(config, cfg, photos)
    again = pretrain_flowmo(config, cfg, photos, out, progress=False, reuse=True)
    assert again.reused and again.checkpoint.fingerprint == first.checkpoint.fingerprint
    assert (again.seconds, again.cpu_seconds) == (round(first.seconds, 1), round(first.cpu_seconds, 1))
    assert again.prior_curves[-1]["bits_per_bit"] == first.prior_curves[-1]["bits_per_bit"]
    retrained = pretrain_flowmo(config, cfg, photos, out, progress=False)          # reuse off: trains
    assert not retrained.reused and retrained.checkpoint.fingerprint == first.checkpoint.fingerprint   # bit for bit
    for changed in (dataclasses.replace(cfg, prior_steps=3), dataclasses.replace(cfg, seed=1)):
        assert recipe_key(config, changed, photos) != recipe_key(config, cfg, photos)
    assert recipe_key(config, cfg, photos[:1]) != recipe_key(config, cfg, photos)
    other = pretrain_flowmo(config, dataclasses.replace(cfg, seed=1), photos, out, progress=False, reuse=True)
    assert not other.reused and other.checkpoint.fingerprint != first.checkpoint.fingerprint
    out.write_bytes(b"not a checkpoint")
    capsys.readouterr()
    damaged = pretrain_flowmo(config, cfg, photos, out, progress=False, reuse=True)
    assert not damaged.reused and "unreadable" in capsys.readouterr().out
    assert damaged.checkpoint.fingerprint == first.checkpoint.fingerprint
