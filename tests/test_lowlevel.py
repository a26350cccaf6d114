"""vlic.lowlevel: seeded degradations with known properties, classical restorers, the conditioned restorer and the
RPO loss (gradients reach codec and restorer; γ = 0 is the RDO objective)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vlic.codec.autoencoder import CodecConfig, DiffusionCodec
from vlic.codec.checkpoint import build_prior
from vlic.codec.quality import psnr
from vlic.lowlevel import classical, degradations as D
from vlic.lowlevel.restorer import DegradationController, ResidualUNet
from vlic.images import to_tensor
from vlic.lowlevel.training import degraded_pool, fine_tune, rpo_loss, train_controller


@pytest.fixture(autouse=True)
def one_thread():
    """Two torch threads stall on a machine whose other core is busy (20× slower here); the stage uses one too."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _photo(size: int = 64, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    base = np.stack([0.3 + 0.4 * x, 0.2 + 0.5 * y, 0.5 + 0.2 * np.sin(6 * x * y)], axis=-1)
    return np.clip((base + 0.03 * rng.standard_normal(base.shape)) * 255, 0, 255).round().astype(np.uint8)


GREY = np.full((96, 96, 3), 128, np.uint8)


@pytest.mark.parametrize("kind", sorted(D.DEGRADATIONS))
def test_every_degradation_is_seeded_and_keeps_the_clean_photo(kind):
    img = _photo()
    before = img.copy()
    a, b = D.degrade(img, kind, seed=3), D.degrade(img, kind, seed=3)
    assert a.shape == img.shape and a.dtype == np.uint8
    assert np.array_equal(a, b)
    assert np.array_equal(img, before)
    assert not np.array_equal(a, img)
    if kind in D.RANDOM:
        assert not np.array_equal(a, D.degrade(img, kind, seed=4))
    else:
        assert np.array_equal(a, D.degrade(img, kind, seed=4))


def test_noise_std_measured_matches_the_parameter():
    out = D.degrade(GREY, "noise", seed=0, sigma=10.0).astype(float) - 128
    assert abs(out.mean()) < 0.2
    assert out.std() == pytest.approx(10.0, rel=0.02)


def test_haze_at_transmission_one_is_the_identity_and_brightens_towards_the_airlight():
    img = _photo()
    assert np.array_equal(D.degrade(img, "haze", beta=0.0), img)
    t = D.transmission(img, 1.5)
    assert t.min() >= np.exp(-1.5) - 1e-9 and t.max() <= 1
    hazy = D.degrade(img, "haze", beta=1.5, airlight=1.0).astype(float)
    assert (hazy >= img.astype(float) - 0.5).all()           # pulled towards white (airlight 1) everywhere
    d = D.depth_proxy(img)
    assert d[:8].mean() > d[-8:].mean()                         # top of the frame is far


def test_blur_kernels_are_normalised_and_blur_keeps_a_flat_image():
    for k in (D.gaussian_kernel(1.7), D.motion_kernel(9, 30), D.motion_kernel(5, 0)):
        assert k.sum() == pytest.approx(1.0)
    assert np.count_nonzero(D.motion_kernel(5, 0).sum(axis=1) > 1e-9) == 1    # horizontal line: one row
    assert np.array_equal(D.degrade(GREY, "gaussian_blur", sigma=2.0), GREY)
    assert np.array_equal(D.degrade(GREY, "motion_blur", length=7, angle=45), GREY)


def test_low_light_without_noise_is_gain_times_power_gamma():
    img = _photo()
    out = D.degrade(img, "low_light", gamma=2.0, gain=0.5, sigma=0.0)
    expect = np.round(0.5 * (img / 255.0) ** 2 * 255)
    assert np.abs(out - expect).max() <= 1


def test_rain_only_adds_light_and_jpeg_quality_orders_the_error():
    img = _photo()
    rainy = D.degrade(img, "rain", seed=1, density=0.02)
    assert (rainy.astype(int) >= img.astype(int)).all() and (rainy > img).mean() > 0.02
    assert psnr(img, D.degrade(img, "jpeg", quality=90)) > psnr(img, D.degrade(img, "jpeg", quality=10))


def test_unknown_degradation_or_parameter_is_named():
    with pytest.raises(ValueError, match="unknown degradation 'snow'"):
        D.degrade(_photo(), "snow")
    with pytest.raises(ValueError, match="no parameter"):
        D.degrade(_photo(), "noise", length=3)


def test_classical_references_improve_their_task():
    from skimage.data import astronaut   # shipped inside scikit-image

    img = np.ascontiguousarray(astronaut()[80:176, 160:256])
    for task, sev in (("noise", {"sigma": 25.0}), ("haze", {"beta": 1.5}), ("motion_blur", {"length": 9.0}),
                      ("low_light", {"sigma": 0.0})):
        bad = D.degrade(img, task, seed=0, **sev)
        fixed = classical.restore_classical(bad, task, sev)
        assert psnr(img, fixed) > psnr(img, bad) + 1.0, task


def test_restorer_starts_as_identity_and_film_conditioning_changes_the_output():
    torch.manual_seed(0)
    x = torch.rand(2, 3, 30, 34) * 2 - 1          # not a multiple of 4: padded and cropped back
    unet = ResidualUNet(width=8, cond_dim=6)
    cond = torch.randn(2, 6)
    assert torch.allclose(unet(x, cond), x)
    with pytest.raises(ValueError, match="conditioned"):
        unet(x)
    for p in unet.parameters():                   # leave the zero initialisation
        p.data.add_(0.05 * torch.randn_like(p))
    a, b = unet(x, cond), unet(x, -cond)
    assert a.shape == x.shape and not torch.allclose(a, b)
    loss = unet(x, cond).pow(2).mean()
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for n, p in unet.named_parameters() if "film" in n)


def test_controller_learns_separable_degradation_types():
    gen = torch.Generator().manual_seed(0)
    labels = torch.arange(3).repeat(40)
    desc = torch.randn(120, 10, generator=gen) + 3 * torch.nn.functional.one_hot(labels, 10).float()
    clean = torch.randn(120, 10, generator=gen)
    ctrl = DegradationController(10, 3, emb_dim=4, content_dim=5, hidden=16)
    train_controller(ctrl, desc, labels, clean, steps=150, lr=1e-2)
    logits, e, c = ctrl(desc)
    assert (logits.argmax(1) == labels).float().mean() > 0.95
    assert e.shape == (120, 4) and c.shape == (120, 5) and ctrl.condition(desc).shape == (120, 9)


def _tiny_codec():
    torch.manual_seed(0)
    cfg = CodecConfig(fsq_levels=(5, 5, 5), downsample=8, patch=4, encoder_width=8, cond_channels=4,
                      flow_widths=(8, 8), tile=16, prior_dim=16, prior_layers=1, prior_heads=2, prior_block=4)
    return DiffusionCodec(cfg), build_prior(cfg)


def test_rpo_loss_gradients_reach_codec_and_restorer_and_gamma_zero_is_rdo():
    codec, prior = _tiny_codec()
    restorer = ResidualUNet(width=8)
    for p in restorer.out.parameters():
        p.data.normal_(0, 0.05)
    run = lambda y: restorer(y)
    clean = to_tensor(np.stack([_photo(16, 1), _photo(16, 2)]))
    degraded = to_tensor(np.stack([D.degrade(_photo(16, s), "noise", seed=s) for s in (1, 2)]))
    loss, parts = rpo_loss(codec, prior, run, degraded, clean, alpha=0.0, beta=0.0, gamma=1.0)
    loss.backward()
    assert codec.encoder.net[1].weight.grad.abs().sum() > 0          # the task loss reaches the encoder (STE)
    assert codec.latent_decoder.mean[0].weight.grad.abs().sum() > 0
    assert restorer.out.weight.grad.abs().sum() > 0
    for m in (codec, prior, restorer):
        m.zero_grad(set_to_none=True)
    loss0, parts0 = rpo_loss(codec, prior, run, degraded, clean, alpha=1.0, beta=0.05, gamma=0.0)
    assert "task" not in parts0
    assert torch.allclose(loss0, parts0["distortion"] + 0.05 * parts0["rate_bpp"])
    loss0.backward()
    assert all(p.grad is None for p in restorer.parameters())       # γ = 0: the restorer plays no part
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in prior.parameters())   # the rate trains the prior
    assert parts0["rate_bpp"] > 0


def test_fine_tune_rdo_keeps_the_codec_and_rpo_changes_it():
    codec, prior = _tiny_codec()
    clean_px = np.stack([_photo(16, s) for s in range(6)])
    pool = degraded_pool(clean_px, {"noise": {"sigma": 20.0}})
    y, x = to_tensor(pool["noise"]), to_tensor(clean_px)
    unet = ResidualUNet(width=8)
    c_rdo, p_rdo, r_rdo, _ = fine_tune(codec, prior, unet, y, x, steps=3, train_codec=False, batch=2)
    c_rpo, p_rpo, r_rpo, curves = fine_tune(codec, prior, unet, y, x, steps=3, train_codec=True, batch=2)
    same = lambda a, b: all(torch.equal(u, v) for u, v in zip(a.state_dict().values(), b.state_dict().values()))
    assert same(c_rdo, codec) and same(p_rdo, prior) and not same(r_rdo, unet)
    assert not same(c_rpo, codec) and not same(p_rpo, prior) and not same(r_rpo, unet)
    assert same(c_rpo.flow, codec.flow)                                # the flow decoder is not part of it
    assert {"distortion", "rate_bpp", "task", "loss"} <= set(curves[0])
    assert unet.out.weight.abs().sum() == 0                            # the inputs are untouched


def test_universal_restorer_conditions_on_its_own_descriptor_and_travels_to_workers_without_its_backbone():
    import copy
    import pickle

    from vlic.perception import effnet
    from vlic.lowlevel.restorer import DESCRIPTOR_DIM, UniversalRestorer

    if effnet.availability():
        pytest.skip(effnet.availability())
    net = effnet.load()
    ctrl = DegradationController(DESCRIPTOR_DIM, 3, emb_dim=4, content_dim=4, hidden=8)
    unet = ResidualUNet(width=4, cond_dim=8)
    for p in unet.parameters():
        p.data.add_(0.05 * torch.randn_like(p))
    r = UniversalRestorer(net, ctrl, unet)
    x = to_tensor(np.stack([_photo(32, 1), D.degrade(_photo(32, 1), "haze")]))
    desc = r.descriptor(x)
    assert desc.shape == (2, DESCRIPTOR_DIM)
    assert torch.allclose(r(x), unet(x, ctrl.condition(desc)))
    assert copy.deepcopy(r).effnet.net is net                      # copies share the frozen backbone
    blob = pickle.dumps(r)
    assert len(blob) < 2_000_000                                   # the 18 MB backbone is not in it
    assert torch.allclose(pickle.loads(blob)(x), r(x))
    assert not any(p.requires_grad for p in r.controller.parameters())
