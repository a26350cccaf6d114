"""The held-out comparison at identical bitstreams: the same model decodes to identical patches, a different decoder
is compared on the same codes and seeds, and bitstream rates report unchanged tokens for an unchanged encoder."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from vlic.codec.autoencoder import CodecConfig, DiffusionCodec
from vlic.codec.checkpoint import Checkpoint, build_prior
from vlic.codec.image_codec import ImageCodec
from vlic.eval.decoder_comparison import bitstream_rates, compare_on_same_bitstream

TINY = CodecConfig(fsq_levels=(5, 3), downsample=16, flow_widths=(16, 16), tile=32, encoder_width=16,
                   cond_channels=8, prior_dim=32, prior_layers=1, prior_block=8)


def test_same_bitstream_same_seed_and_rates():
    torch.manual_seed(0)
    model = DiffusionCodec(TINY).eval()
    torch.nn.init.normal_(model.flow.out[-1].weight, std=0.05)   # a noise-dependent decoder (zero-initialised: μ)
    base = Checkpoint(model, build_prior(TINY).eval())
    other = copy.deepcopy(base.model)
    with torch.no_grad():
        other.flow.out[-1].bias.add_(0.2)          # a different decoder, the same encoder
    rng = np.random.default_rng(0)
    photos = {"p": rng.integers(0, 256, (48, 40, 3), dtype=np.uint8)}
    boxes = {"p": [(0, 0), (16, 8)]}
    pp = compare_on_same_bitstream(ImageCodec(base), {"new": other, "old": base.model, "again": base.model}, photos,
                                   boxes, 16, seeds=(0, 1), steps=1, keep_photos=("p",))
    assert len(pp.original) == 4 and [r["seed"] for r in pp.rows] == [0, 0, 1, 1]
    assert pp.patch_ids.tolist() == [0, 1, 0, 1]
    assert all(np.array_equal(a, b) for a, b in zip(pp.recon["old"], pp.recon["again"]))   # same bits, same seed
    assert not np.array_equal(pp.recon["new"][0], pp.recon["old"][0])
    assert not np.array_equal(pp.photos[("p", "old", 0)], pp.photos[("p", "old", 1)])     # seeds differ
    assert pp.photos[("p", "old", 0)].shape == (48, 40, 3)
    np.testing.assert_array_equal(pp.original[1], photos["p"][16:32, 8:24])
    rows = bitstream_rates({"base": ImageCodec(base), "same": ImageCodec(Checkpoint(other, base.prior))}, photos)
    assert rows[0]["bpp"] == rows[1]["bpp"] and rows[1]["tokens_changed"] == 0.0


def test_a_memo_of_the_fixed_decodes_is_reused_only_where_it_matches(tmp_path, monkeypatch, capsys):
    import vlic.eval.decoder_comparison as dc

    torch.manual_seed(0)
    model = DiffusionCodec(TINY).eval()
    torch.nn.init.normal_(model.flow.out[-1].weight, std=0.05)
    base = Checkpoint(model, build_prior(TINY).eval())
    other = copy.deepcopy(base.model)
    with torch.no_grad():
        other.flow.out[-1].bias.add_(0.2)
    rng = np.random.default_rng(0)
    photos = {"p": rng.integers(0, 256, (48, 40, 3), dtype=np.uint8), "q": rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)}
    boxes = {"p": [(0, 0), (16, 8)], "q": [(8, 8)]}
    run = lambda models, **kw: compare_on_same_bitstream(ImageCodec(base), models, photos, boxes, 16, (0, 1), steps=1,  # noqa: E731
                                                         memo=tmp_path, base_fingerprint="base-a", fixed=("old",), **kw)
    plain = compare_on_same_bitstream(ImageCodec(base), {"new": other, "old": base.model}, photos, boxes, 16, (0, 1), steps=1)
    first = run({"new": other, "old": base.model})
    assert len(list(tmp_path.glob("*.npz"))) == 1
    decoded = []
    real = dc.decode_patches
    monkeypatch.setattr(dc, "decode_patches", lambda m, *a, **k: decoded.append(m) or real(m, *a, **k))
    again = run({"new": other, "old": base.model})
    assert decoded == [other]                                  # the fixed model's patches came from the memo
    for pp in (first, again):
        assert pp.rows == plain.rows and pp.bpp == plain.bpp
        assert all(np.array_equal(a, b) for a, b in zip(pp.original, plain.original))
        for name in ("new", "old"):
            assert all(np.array_equal(a, b) for a, b in zip(pp.recon[name], plain.recon[name]))
    decoded.clear()
    compare_on_same_bitstream(ImageCodec(base), {"new": other, "old": base.model}, photos, boxes, 16, (0, 1), steps=2,
                              memo=tmp_path, base_fingerprint="base-a", fixed=("old",))
    assert decoded == [other, base.model]                      # other steps: another entry
    entry = tmp_path / f"{dc.memo_key('base-a', ('old',), photos, boxes, 16, (0, 1), 1)}.npz"
    assert entry.is_file()
    entry.write_bytes(b"not an npz")                           # a damaged entry is decoded again, with a one-line note
    decoded.clear()
    capsys.readouterr()
    run({"new": other, "old": base.model})
    assert decoded == [other, base.model] and "damaged" in capsys.readouterr().out
    decoded.clear()
    run({"new": other, "old": base.model})                     # … and stored again
    assert decoded == [other]
    with pytest.raises(ValueError, match="fingerprint"):
        compare_on_same_bitstream(ImageCodec(base), {"old": base.model}, photos, boxes, 16, (0,), steps=1, memo=tmp_path,
                                  fixed=("old",))


def test_the_rd_harness_names_step_counts_and_scores_shared_pixels_once():
    from vlic.eval.benchmark import (MEAN_HEAD_FAMILY, learned_reconstructions, mean_head_rows, score_mean_heads,
                                     score_reconstructions)
    from vlic.eval.decoder_comparison import decode_patches, heldout_codes

    torch.manual_seed(0)
    model = DiffusionCodec(TINY).eval()
    torch.nn.init.normal_(model.flow.out[-1].weight, std=0.05)
    codec = ImageCodec(Checkpoint(model, build_prior(TINY).eval()))
    photos = {"p": np.random.default_rng(1).integers(0, 256, (48, 40, 3), dtype=np.uint8)}
    several = learned_reconstructions([("vlic", "low", codec)], photos, (1, 2), (0,))
    assert [r["codec"] for r in several.rows] == ["vlic (1 steps)", "vlic (2 steps)"]
    assert [r["steps"] for r in several.rows] == [1, 2] and several.rows[0]["bpp"] == codec.compress(photos["p"]).bpp
    one = learned_reconstructions([("vlic", "low", codec)], photos, 2, (0, 3))
    assert [(r["codec"], r["seed"]) for r in one.rows] == [("vlic", 0), ("vlic", 3)]
    np.testing.assert_array_equal(one.pixels[("vlic", "low", "p", 0)], several.pixels[("vlic (2 steps)", "low", "p", 0)])
    calls = []
    def scorer(ref, px):
        calls.append(px)
        return {"mse": float(((ref.astype(float) - px) ** 2).mean())}
    one.pixels[("vlic", "low", "p", 3)] = one.pixels[("vlic", "low", "p", 0)]      # two rows, one decoded image
    df = score_reconstructions(one, photos, scorer)
    assert len(df) == 2 and len(calls) == 1 and df.mse.nunique() == 1
    assert score_mean_heads(one, photos, scorer).columns.tolist() == ["codec", "rate_point", "photo", "mse"]
    mu = mean_head_rows(several, photos, scorer, lambda px: {"mean": float(px.mean())})   # μ: a system of its own
    assert len(mu) == 1 and mu.codec[0] == "vlic μ" and mu.family[0] == MEAN_HEAD_FAMILY and mu.steps[0] == 0
    assert mu.bpp[0] == several.rows[0]["bpp"] and mu.bytes[0] == several.rows[0]["bytes"]  # the same file
    mu_px = several.mean_heads[("vlic", "low", "p")]
    assert mu.mse[0] == scorer(photos["p"], mu_px)["mse"] and mu["mean"][0] == float(mu_px.mean())
    assert not np.array_equal(mu_px, several.pixels[("vlic (1 steps)", "low", "p", 0)])
    # the held-out path decodes the same codes to the same pixels the harness shows
    held = heldout_codes(codec, photos, {"p": [(0, 0), (16, 8)]})
    patches, rows, kept = decode_patches(model, held, 16, (0,), 2, keep_photos=("p",))
    assert rows == [("p", 0, 0), ("p", 1, 0)] and held[0].bpp == several.rows[0]["bpp"]
    np.testing.assert_array_equal(kept[("p", 0)], one.pixels[("vlic", "low", "p", 0)])
    np.testing.assert_array_equal(patches[1], kept[("p", 0)][16:32, 8:24])
