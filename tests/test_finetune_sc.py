"""The semantic-consistency loss (Diff-ICMH, both feature choices) and the equal-bits decoder fine-tuning of
chapter 06, on a tiny codec trained for a few steps."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vlic.codec.bitstream import parse
from vlic.codec.image_codec import ImageCodec
from vlic.perception import effnet
from vlic.training.finetune import FinetuneConfig, finetune
from vlic.training.pretrain import PerceptualLoss, PretrainConfig, training_loss
from vlic.training.semantic import SemanticConsistency, one_minus_cos
from conftest import synthetic_photo as _photo

needs_effnet = pytest.mark.skipif(effnet.availability() is not None, reason=str(effnet.availability()))


@pytest.fixture(scope="module")
def tiny(tiny_pretrained):
    return tiny_pretrained


def test_one_minus_cos_known_values():
    a = torch.tensor([1.0, 0.0]).view(1, 2, 1, 1).expand(1, 2, 2, 2)
    assert one_minus_cos(a, a).item() == pytest.approx(0.0, abs=1e-7)
    assert one_minus_cos(a, -a).item() == pytest.approx(2.0)
    b = torch.tensor([0.0, 3.0]).view(1, 2, 1, 1).expand(1, 2, 2, 2)
    assert one_minus_cos(a, b).item() == pytest.approx(1.0)
    mixed = torch.cat([a[..., :1], b[..., 1:]], dim=-1)          # half the positions agree
    assert one_minus_cos(a, mixed).item() == pytest.approx(0.5)


def test_bad_sc_features_are_refused(tiny):
    with pytest.raises(ValueError, match="one of flow_mid, effnet"):
        SemanticConsistency("clip")
    with pytest.raises(ValueError, match="frozen pre-trained codec"):
        SemanticConsistency("flow_mid")


@pytest.mark.parametrize("features", ["flow_mid", pytest.param("effnet", marks=needs_effnet)])
def test_sc_is_zero_on_the_original_and_trains_only_the_prediction(tiny, features):
    sc = SemanticConsistency(features, tiny["ck"].model)
    x = torch.from_numpy(_photo(32, 32, 5)).permute(2, 0, 1)[None].float() / 127.5 - 1
    assert sc(x, x).item() == pytest.approx(0.0, abs=1e-5)
    pred = (x + 0.3 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))).clamp(-1, 1)
    pred.requires_grad_(True)
    loss = sc(pred, x)
    assert 0 < loss.item() < 2
    loss.backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0
    assert all(p.grad is None for p in sc.parameters())                 # the feature network stays frozen
    assert all(p.grad is None for p in tiny["ck"].model.parameters())   # and the reference codec is untouched


def test_training_loss_without_sc_is_unchanged(tiny):
    model, cfg = tiny["ck"].model, PretrainConfig()
    x = torch.from_numpy(_photo(32, 32, 6)).permute(2, 0, 1)[None].float() / 127.5 - 1
    a, pa = training_loss(model, x, cfg, PerceptualLoss("ms_ssim"), torch.Generator().manual_seed(3))
    b, pb = training_loss(model, x, cfg, PerceptualLoss("ms_ssim"), torch.Generator().manual_seed(3),
                          sc=SemanticConsistency("flow_mid", model), sc_weight=0.0)
    assert a.item() == b.item() and "sc_loss" not in pb
    c, pc = training_loss(model, x, cfg, PerceptualLoss("ms_ssim"), torch.Generator().manual_seed(3),
                          sc=SemanticConsistency("flow_mid", model), sc_weight=2.0)
    assert c.item() == pytest.approx(a.item() + 2.0 * pc["sc_loss"].item(), rel=1e-5)


def test_finetune_keeps_the_encoder_so_bits_are_equal(tiny):
    base = tiny["ck"]
    before = {k: v.clone() for k, v in base.model.state_dict().items()}
    ft, curves = finetune(base, tiny["images"], FinetuneConfig(steps=2, batch_size=2, sc_weight=1.0,
                                                               sc_features="flow_mid"), "sc")
    assert [c["step"] for c in curves] == [0, 1] and all("sc_loss" in c for c in curves)
    assert all(torch.equal(v, base.model.state_dict()[k]) for k, v in before.items())   # the input is untouched
    new = ft.model.state_dict()
    assert all(torch.equal(new[k], v) for k, v in before.items() if k.startswith("encoder."))
    assert any(not torch.equal(new[k], v) for k, v in before.items() if k.startswith("flow."))
    assert ft.fingerprint != base.fingerprint and ft.training["finetune"]["sc_features"] == "flow_mid"
    px = _photo(48, 40, 7)
    a, b = ImageCodec(base).compress(px), ImageCodec(ft).compress(px)
    assert parse(a.data).payload == parse(b.data).payload and a.bytes == b.bytes
    _, plain = finetune(base, tiny["images"], FinetuneConfig(steps=1, batch_size=2), "baseline")
    assert "sc_loss" not in plain[0]
    out = ImageCodec(ft).decompress(b.data, steps=1)
    assert out.shape == px.shape and np.isfinite(out).all()
