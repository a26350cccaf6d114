"""End to end on a tiny codec trained for a few steps: API and CLI round trips, odd inputs, determinism, bits vs
ideal, and every way a .vlic file can be wrong → one line on stderr, exit code 2."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from vlic.cli import main
from vlic.codec.autoencoder import CodecConfig
from vlic.codec.bitstream import OVERHEAD_BYTES, parse
from vlic.codec.image_codec import DecodeError, ImageCodec
from vlic.training.pretrain import PretrainConfig, pretrain
from conftest import synthetic_photo as _photo

TINY = CodecConfig(fsq_levels=(5, 3, 3), downsample=8, patch=4, encoder_width=16, cond_channels=8, flow_widths=(16, 16),
                   tile=32, prior_dim=32, prior_layers=1, prior_heads=2, prior_block=8)
TRAIN = PretrainConfig(steps=4, batch_size=4, prior_steps=3, prior_batch=4, checkpoint_every=2, log_every=1)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    d = tmp_path_factory.mktemp("tiny_codec")
    images = [_photo(96, 128, 1), _photo(128, 80, 2)]
    result = pretrain(TINY, TRAIN, images, d / "models" / "codec_tiny.safetensors", rate="tiny",
                      resume_path=d / "codec_tiny.resume.pt", progress=False)
    pretrain(TINY, PretrainConfig(**{**TRAIN.__dict__, "seed": 1}), images, d / "other.safetensors",
                     rate="tiny", progress=False)
    return {"dir": d, "ckpt": d / "models" / "codec_tiny.safetensors", "other": d / "other.safetensors",
            "result": result, "codec": ImageCodec(result.checkpoint), "images": images, "resume": d / "codec_tiny.resume.pt"}


def test_training_logs_curves_and_resumes(tiny):
    r = tiny["result"]
    assert [c["step"] for c in r.curves] == [0, 1, 2, 3]
    assert all(np.isfinite(c["loss"]) for c in r.curves)
    again = pretrain(TINY, TRAIN, tiny["images"], tiny["dir"] / "again.safetensors", rate="tiny",
                     resume_path=tiny["resume"], progress=False)
    assert again.resumed_from == TRAIN.steps  # nothing left to train: the saved state is reused
    assert again.curves == r.curves


@pytest.mark.parametrize("shape", [(64, 64), (37, 101), (130, 45), (8, 8), (1, 1), (33, 200), (24, 2050)],
                         ids=["square", "landscape-odd", "portrait-odd", "one-latent", "one-pixel", "wide", "2050-px"])
def test_round_trip_any_size(tiny, shape):
    codec = tiny["codec"]
    px = _photo(*shape, seed=3)
    z = codec.compress(px)
    c = parse(z.data)
    assert (c.width, c.height) == (shape[1], shape[0])
    assert codec.decode_codes(c).shape[-2:] == c.latent_shape
    out = codec.decompress(z.data, steps=2, seed=0)
    assert out.shape == px.shape and out.dtype == np.uint8
    assert z.bytes == len(z.data) and z.bpp == pytest.approx(8 * len(z.data) / (shape[0] * shape[1]))


def test_codes_survive_the_bitstream_exactly(tiny):
    import torch

    from vlic.codec.image_codec import pad_to
    from vlic.images import to_tensor

    codec = tiny["codec"]
    px = _photo(70, 90, seed=4)
    codes = codec.model.encode(pad_to(to_tensor(px), 8))
    assert torch.equal(codec.decode_codes(parse(codec.compress(px).data)), codes)


def test_bits_within_half_a_percent_of_the_ideal(tiny):
    z = tiny["codec"].compress(_photo(256, 256, seed=5))
    assert z.ideal_bits > 2000
    assert z.payload_bits <= 1.005 * z.ideal_bits + 32  # + at most one partial 32-bit word of coder flush
    assert len(z.data) == OVERHEAD_BYTES + z.payload_bits // 8


def test_same_seed_same_png_different_seed_differs(tiny, tmp_path):
    src = tmp_path / "in.png"
    Image.fromarray(_photo(50, 70, seed=6)).save(src)
    f = tmp_path / "x.vlic"
    assert main(["compress", str(src), str(f), "--model", str(tiny["ckpt"])]) == 0
    outs = []
    for i, seed in enumerate([7, 7, 8]):
        out = tmp_path / f"out{i}.png"
        assert main(["decompress", str(f), str(out), "--model", str(tiny["ckpt"]), "--seed", str(seed), "--steps", "2"]) == 0
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]
    assert outs[0] != outs[2]


def test_tiled_decode_matches_whole_image_decode_closely(tiny):
    codec = tiny["codec"]
    z = codec.compress(_photo(72, 104, seed=7))
    tiled = codec.decompress(z.data, steps=2, seed=1).astype(float)
    whole = codec.decompress(z.data, steps=2, seed=1, tile=None).astype(float)
    assert np.abs(tiled - whole).mean() < 12  # GroupNorm statistics differ per tile; no gross seams


@pytest.mark.parametrize("mode", ["L", "RGBA", "I;16", "P", "LA"])
def test_cli_converts_other_modes_explicitly(tiny, tmp_path, mode, capsys):
    rgb = Image.fromarray(_photo(40, 56, seed=8))
    if mode == "I;16":
        im = Image.fromarray((np.asarray(rgb.convert("L"), dtype=np.uint16) * 257))
    elif mode == "RGBA":
        a = rgb.convert("RGBA")
        a.putalpha(Image.fromarray(np.full((40, 56), 128, np.uint8)))
        im = a
    else:
        im = rgb.convert(mode)
    src = tmp_path / f"in_{mode.replace(';', '')}.png"
    im.save(src)
    f = tmp_path / "m.vlic"
    assert main(["compress", str(src), str(f), "--model", str(tiny["ckpt"]), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["conversions"], f"no conversion reported for {mode}"
    assert {"bytes", "bpp", "ideal_bits", "seconds"} <= set(stats)
    assert stats["bytes"] == f.stat().st_size
    assert main(["info", str(f), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["source_mode"] == parse(f.read_bytes()).mode and (info["width"], info["height"]) == (56, 40)
    out = tmp_path / "m.png"
    assert main(["decompress", str(f), str(out), "--model", str(tiny["ckpt"]), "--steps", "1"]) == 0
    assert "decoded as RGB" in capsys.readouterr().out
    assert Image.open(out).mode == "RGB"


@pytest.fixture
def good_file(tiny, tmp_path):
    src = tmp_path / "g.png"
    Image.fromarray(_photo(40, 40, seed=9)).save(src)
    f = tmp_path / "g.vlic"
    assert main(["compress", str(src), str(f), "--model", str(tiny["ckpt"])]) == 0
    return f


def _run_fails(argv, capsys, *expected):
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1, err
    for e in expected:
        assert e in err, err
    return err


@pytest.mark.parametrize("damage", ["empty", "foreign", "truncated", "corrupted", "header-only"])
def test_damaged_files_exit_2_with_one_line(tiny, good_file, tmp_path, capsys, damage):
    data = good_file.read_bytes()
    bad = tmp_path / f"{damage}.vlic"
    bad.write_bytes({"empty": b"", "foreign": Image.new("RGB", (4, 4)).tobytes() + b"JFIF" * 10,
                     "truncated": data[: len(data) // 2], "corrupted": data[:-9] + bytes([data[-9] ^ 0x10]) + data[-8:],
                     "header-only": data[:20]}[damage])
    expected = {"empty": "is empty", "foreign": "is not a .vlic file", "truncated": "is truncated",
                "corrupted": "is corrupted", "header-only": "is truncated"}[damage]
    for cmd in (["decompress", str(bad), str(tmp_path / "o.png"), "--model", str(tiny["ckpt"])], ["info", str(bad)]):
        _run_fails(cmd, capsys, str(bad), expected)


def test_file_from_a_different_model_is_refused(tiny, good_file, tmp_path, capsys):
    _run_fails(["decompress", str(good_file), str(tmp_path / "o.png"), "--model", str(tiny["other"])], capsys,
               "was made by model", "not by this model")
    with pytest.raises(DecodeError):
        ImageCodec.from_file(tiny["other"]).decompress(good_file.read_bytes())


def test_missing_inputs_and_models_exit_2(tiny, good_file, tmp_path, capsys, monkeypatch):
    _run_fails(["decompress", str(tmp_path / "nope.vlic"), str(tmp_path / "o.png")], capsys, "does not exist")
    _run_fails(["compress", str(tmp_path / "nope.png"), str(tmp_path / "o.vlic"), "--model", str(tiny["ckpt"])], capsys,
               "does not exist")
    not_png = tmp_path / "text.png"
    not_png.write_text("hello")
    _run_fails(["compress", str(not_png), str(tmp_path / "o.vlic"), "--model", str(tiny["ckpt"])], capsys, "not in a format")
    _run_fails(["compress", str(not_png), str(tmp_path / "o.vlic"), "--model", str(tmp_path / "none.safetensors")], capsys)
    _run_fails(["compress", str(not_png), str(tmp_path / "o.vlic"), "--model", str(not_png)], capsys)
    monkeypatch.chdir(tmp_path)  # no models/ here: the default model lookup finds nothing
    _run_fails(["decompress", str(good_file), str(tmp_path / "o.png")], capsys, "no checkpoint under 'models/'")
    monkeypatch.chdir(tiny["dir"])  # models/codec_tiny.safetensors matches the file's fingerprint
    assert main(["decompress", str(good_file), str(tmp_path / "o.png"), "--steps", "1"]) == 0
