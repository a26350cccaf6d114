"""Chapter 02 commits its pre-trained UNet codecs and reuses each (``reuse=True``) when the recipe key recorded in its
file — architecture, both phases' settings, photos, training code, numerics — is the one asked for; any other file
(another recipe, other photos, a damaged file) is trained again, and a retraining gives the same weights."""

from __future__ import annotations

import dataclasses

from conftest import synthetic_photo

from vlic.codec.autoencoder import CodecConfig
from vlic.training.pretrain import PretrainConfig, pretrain, pretrain_many, recipe_key

CFG = CodecConfig(fsq_levels=(5, 3), downsample=8, patch=4, encoder_width=8, cond_channels=4, flow_widths=(8, 8),
                  tile=32, prior_dim=16, prior_layers=1, prior_heads=2, prior_block=8)
TRAIN = PretrainConfig(steps=3, batch_size=2, prior_steps=2, prior_batch=2, log_every=1, threads=1)


def test_a_model_of_the_same_recipe_is_reused_with_its_curves_and_any_change_trains_again(tmp_path, capsys):
    photos, out = [synthetic_photo(64, 80, 1), synthetic_photo(72, 64, 2)], tmp_path / "codec_low.safetensors"
    first = pretrain(CFG, TRAIN, photos, out, rate="low", progress=False, reuse=True)   # nothing there yet: trains
    assert not first.reused and first.checkpoint.training["recipe"] == recipe_key(CFG, TRAIN, photos)
    again = pretrain(CFG, TRAIN, photos, out, rate="low", progress=False, reuse=True)
    assert again.reused and again.checkpoint.fingerprint == first.checkpoint.fingerprint
    assert (again.seconds, again.cpu_seconds) == (round(first.seconds, 1), round(first.cpu_seconds, 1))
    assert again.curves == first.curves and again.prior_curves == first.prior_curves   # chapter 02 still draws them
    retrained = pretrain(CFG, TRAIN, photos, out, rate="low", progress=False)          # reuse off: trains
    assert not retrained.reused and retrained.checkpoint.fingerprint == first.checkpoint.fingerprint   # bit for bit
    for changed in (dataclasses.replace(TRAIN, steps=4), dataclasses.replace(TRAIN, seed=1),
                    dataclasses.replace(TRAIN, threads=2)):
        assert recipe_key(CFG, changed, photos) != recipe_key(CFG, TRAIN, photos)
    assert recipe_key(dataclasses.replace(CFG, sample_start=0.5), TRAIN, photos) != recipe_key(CFG, TRAIN, photos)
    assert recipe_key(CFG, dataclasses.replace(TRAIN, log_every=5), photos) == recipe_key(CFG, TRAIN, photos)
    assert recipe_key(CFG, TRAIN, photos[:1]) != recipe_key(CFG, TRAIN, photos)
    # the chapter's path: worker jobs with reuse=True, one reused and one trained (another seed, its own file)
    jobs = [dict(codec_cfg=CFG, cfg=TRAIN, images=photos, rate="low", out_path=out, reuse=True),
            dict(codec_cfg=CFG, cfg=dataclasses.replace(TRAIN, seed=1), images=photos, rate="low_seed1",
                 out_path=tmp_path / "codec_low_seed1.safetensors", reuse=True)]
    reused, other = pretrain_many(jobs, workers=1)
    assert reused.reused and not other.reused and other.checkpoint.fingerprint != first.checkpoint.fingerprint
    out.write_bytes(b"not a checkpoint")
    capsys.readouterr()
    damaged = pretrain(CFG, TRAIN, photos, out, rate="low", progress=False, reuse=True)
    assert not damaged.reused and "unreadable" in capsys.readouterr().out
    assert damaged.checkpoint.fingerprint == first.checkpoint.fingerprint
