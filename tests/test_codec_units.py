"""Building blocks of the codec, pinned with real values: FSQ, tiling, the prior's coding walk, quality metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vlic.codec.autoencoder import CodecConfig, DiffusionCodec
from vlic.codec.fsq import FSQ
from vlic.codec.prior import TokenPrior, empty_blocks, from_blocks, to_blocks, walk
from vlic.codec.quality import ms_ssim, psnr
from vlic.codec.sampling import timesteps
from vlic.codec.tiling import tile_starts, tiled


def test_fsq_levels_codes_and_values():
    fsq = FSQ((8, 5, 3))
    z = torch.tensor([-10.0, -0.3, 0.0, 0.4, 10.0])
    zz = torch.stack([z, z, z]).view(1, 3, 1, 5)
    q, codes = fsq(zz)
    assert codes[0, :, 0].tolist() == [[0, 3, 4, 5, 7], [0, 1, 2, 3, 4], [0, 1, 1, 1, 2]]
    assert torch.allclose(fsq.codes_to_values(codes), q)
    assert q[0, 0, 0].tolist() == pytest.approx([-1.0, -0.25, 0.0, 0.25, 0.75])
    assert fsq.bits_per_vector == pytest.approx(math.log2(120))
    zz.requires_grad_(True)
    fsq(zz)[0].sum().backward()  # straight-through: gradients flow
    assert zz.grad.abs().sum() > 0


def test_config_rates_and_validation():
    assert CodecConfig(fsq_levels=(8, 5, 5, 5), downsample=8).bits_per_pixel_raw == pytest.approx(math.log2(1000) / 64)
    with pytest.raises(ValueError, match="power of two"):
        CodecConfig(downsample=12)
    cfg = CodecConfig(fsq_levels=(5, 3), downsample=16, flow_widths=(16, 16), tile=32)
    assert CodecConfig.from_json(cfg.to_json()) == cfg


def test_tile_starts_cover_with_overlap():
    assert tile_starts(64, 64, 8) == [0]
    assert tile_starts(40, 64, 8) == [0]
    assert tile_starts(200, 64, 8, align=4) == [0, 56, 112, 136]
    assert tile_starts(128, 64, 8, align=4) == [0, 56, 64]


@pytest.mark.parametrize("shape", [(1, 3, 200, 136), (1, 3, 64, 64), (1, 3, 40, 296)])
def test_tiling_is_exact_for_local_functions(shape):
    """Blending tile outputs of a pointwise function reproduces the untiled result exactly (no seams)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=g)
    feats = torch.randn(shape[0], 5, shape[2] // 4, shape[3] // 4, generator=g)

    def fn(xt, f):
        return torch.tanh(xt) * 2 + f.mean(1, keepdim=True).repeat_interleave(4, 2).repeat_interleave(4, 3)

    whole = tiled(fn, x, [feats], None, 8, [4])
    tiles = tiled(fn, x, [feats], 64, 8, [4], align=4)
    assert torch.allclose(whole, tiles, atol=1e-6)


def test_timesteps_and_shift():
    assert timesteps(4).tolist() == pytest.approx([1.0, 0.75, 0.5, 0.25, 0.0])
    assert timesteps(2, shift=3.0).tolist() == pytest.approx([1.0, 0.75, 0.0])
    assert timesteps(2, start=0.3).tolist() == pytest.approx([0.3, 0.15, 0.0])
    with pytest.raises(ValueError, match="t₀ in \\(0, 1\\]"):
        timesteps(2, start=0.0)


def test_sampler_start_point_and_the_sample_prediction():
    """A sampler started at t₀ begins at (1 − t₀)·μ + t₀·ε; an untrained "sample"-prediction decoder returns μ
    exactly from any t₀ (x̂₀ = μ + 0), where the "velocity" form leaves noise behind below t = 1."""
    import dataclasses

    from vlic.codec.autoencoder import CodecConfig, DiffusionCodec
    from vlic.codec.sampling import noise_like, sample, start_point

    mean = torch.rand(1, 3, 32, 32) * 2 - 1
    eps = noise_like(mean, 3)
    assert torch.allclose(start_point(mean, eps, 0.25), 0.75 * mean + 0.25 * eps)
    assert torch.equal(start_point(mean, eps, 1.0), eps)
    cfg = CodecConfig(fsq_levels=(5, 3), downsample=16, flow_widths=(16, 16), tile=32, encoder_width=16,
                      cond_channels=8, sample_start=0.3)
    torch.manual_seed(0)
    feats = torch.randn(1, 8, 8, 8)
    x = sample(DiffusionCodec(dataclasses.replace(cfg, prediction="sample")), feats, mean, steps=2, seed=3, tile=None)
    assert torch.allclose(x, mean.clamp(-1, 1), atol=1e-6)
    v = sample(DiffusionCodec(cfg), feats, mean, steps=2, seed=3, tile=None)
    assert (v - mean).abs().mean() > 0.01
    with pytest.raises(ValueError, match="prediction"):
        CodecConfig(prediction="epsilon")
    with pytest.raises(ValueError, match="sample_start"):
        CodecConfig(sample_start=1.5)


def test_blocks_round_trip_odd_grid():
    codes = torch.randint(0, 5, (3, 7, 10))
    b = to_blocks(codes, 4)
    assert b.lengths.tolist() == [16, 16, 8, 12, 12, 6]
    assert torch.equal(from_blocks(b, 3, 7, 10), codes)


def test_prior_walk_matches_teacher_forcing_and_codes_exactly():
    from vlic.codec.bitstream import RangeCoder

    torch.manual_seed(0)
    prior = TokenPrior((8, 5, 3), dim=32, layers=2, heads=2, block=4).double().eval()
    codes = torch.stack([torch.randint(0, L, (6, 9)) for L in (8, 5, 3)])
    blocks = to_blocks(codes, 4)
    seen = []
    walk(prior, blocks, lambda n, j, a, p: seen.append((n, j, a, p)))
    logits = prior(blocks.seq, blocks.rows, blocks.cols)
    for n, j, a, p in seen[::7]:
        ref = torch.softmax(logits[j][torch.as_tensor(a), n], -1).detach().numpy()
        assert np.allclose(p, ref, atol=1e-12)
    ideal = float(prior.bits(blocks.seq, blocks.rows, blocks.cols, blocks.valid).detach())
    enc = RangeCoder()
    walk(prior, blocks, lambda n, j, a, p: enc.encode(blocks.seq.numpy()[a, n, j], p))
    # the coder's ideal is the cross-entropy under the 14-bit integer model it really uses: within 0.1 % of the prior's
    assert enc.ideal_bits == pytest.approx(ideal, rel=1e-3) and enc.ideal_bits != ideal
    dec = RangeCoder(enc.words())
    out = walk(prior, empty_blocks(3, 6, 9, 4), lambda n, j, a, p: dec.decode(p))
    assert torch.equal(from_blocks(out, 3, 6, 9), codes)


def test_quality_metrics_known_values():
    a = np.zeros((64, 64, 3), np.uint8)
    b = a.copy()
    b[0, 0, 0] = 255
    assert psnr(a, b) == pytest.approx(10 * math.log10(64 * 64 * 3))
    assert psnr(a, a) == float("inf")
    img = (np.random.default_rng(0).random((200, 200, 3)) * 255).astype(np.uint8)
    assert ms_ssim(img, img) == pytest.approx(1.0)
    assert 0 < ms_ssim(img, np.clip(img.astype(int) + 40, 0, 255).astype(np.uint8)) < 1


def test_model_shapes_and_parameter_budget():
    cfg = CodecConfig(fsq_levels=(8, 5, 5, 5), downsample=8)
    m = DiffusionCodec(cfg)
    x = torch.zeros(2, 3, 64, 96)
    q, codes = m.quantize(x)
    assert codes.shape == (2, 4, 8, 12)
    f, mu = m.condition(q)
    assert f.shape == (2, cfg.cond_channels, 16, 24) and mu.shape == x.shape
    assert m.velocity(x, torch.rand(2), f, mu).shape == x.shape
    with pytest.raises(ValueError, match="multiples of 8"):
        m.quantize(torch.zeros(1, 3, 60, 64))


def test_training_and_decoding_create_no_tensor_off_the_models_device():
    """On the 'meta' device any tensor made on the CPU inside these paths raises, as it would on a GPU (none here)."""
    from vlic.codec.sampling import sample
    from vlic.training.pretrain import PerceptualLoss, PretrainConfig, resolve_device, training_loss

    cfg = CodecConfig(fsq_levels=(5, 3), downsample=16, flow_widths=(16, 16), tile=32, encoder_width=16,
                      cond_channels=8)
    model = DiffusionCodec(cfg).to("meta")
    x = torch.empty(2, 3, 32, 32, device="meta")
    loss, parts = training_loss(model, x, PretrainConfig(perceptual="none"), PerceptualLoss("none"),
                                torch.Generator().manual_seed(0))
    assert loss.device.type == "meta" and all(v.device.type == "meta" for v in parts.values())
    features, mean = model.condition(model.quantize(torch.empty(1, 3, 48, 80, device="meta"))[0])
    out = sample(model, features, mean, steps=2, seed=0, tile=32, overlap=8)   # tiled MultiDiffusion path
    assert out.shape == (1, 3, 48, 80) and out.device.type == "meta"
    assert resolve_device("auto").type in ("cpu", "cuda") and resolve_device("cpu") == torch.device("cpu")


def test_the_sampler_path_loss_is_the_sample_error_and_starts_at_the_samplers_start():
    """``flow_path: sampler``: a network whose one-step prediction x̂₀ = x_t − t·v̂ is the original has flow loss 0 at
    every t ∈ (0, t₀], and one that misses by 0.1 has loss 0.01 (measured on x̂₀); an unknown path is refused."""
    import dataclasses

    from vlic.training.pretrain import PerceptualLoss, PretrainConfig, training_loss

    cfg = CodecConfig(fsq_levels=(5, 3), downsample=16, flow_widths=(16, 16), tile=32, encoder_width=16,
                      cond_channels=8, sample_start=0.3, prediction="sample")
    model = DiffusionCodec(cfg)
    x = torch.rand(4, 3, 32, 32) * 2 - 1

    class Exact(torch.nn.Module):   # x̂₀ = x whatever x_t: the velocity (x_t − x)/t
        prediction = "sample"

        def forward(self, x_t, t, features, mean):
            return (x_t - x) / t.view(-1, 1, 1, 1)

    model.flow = Exact()
    loss, parts = training_loss(model, x, PretrainConfig(perceptual="none", flow_path="sampler", cfg_dropout=0.0),
                                PerceptualLoss("none"), torch.Generator().manual_seed(0))
    assert float(parts["flow_loss"]) < 1e-10
    x = x + 0.1   # the same network now misses every pixel by 0.1: the loss is measured on x̂₀ (0.01), not on v (0.01/t²)
    _, off = training_loss(model, x - 0.1, PretrainConfig(perceptual="none", flow_path="sampler", cfg_dropout=0.0),
                           PerceptualLoss("none"), torch.Generator().manual_seed(0))
    assert float(off["flow_loss"]) == pytest.approx(0.01, rel=1e-4)
    with pytest.raises(ValueError, match="flow_path"):
        training_loss(model, x, dataclasses.replace(PretrainConfig(perceptual="none"), flow_path="bridge"),
                      PerceptualLoss("none"), torch.Generator().manual_seed(0))
