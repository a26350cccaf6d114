"""Tag guidance in the bitstream: image-level tags coded at 10 bits each after a count byte (``.vlic`` format
version 3), round trips from 0 tags to the maximum, known bytes, every malformed tag block refused in one line, the
untagged format unchanged, and the CLI (`vlic compress --tags`, `vlic info --json`) on a tiny codec."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vlic.cli import main
from vlic.codec.bitstream import (MAX_TAGS, OVERHEAD_BYTES, Container, ContainerError, pack_tags, parse,
                                  tag_block_bytes, unpack_tags)
from vlic.codec.image_codec import ImageCodec
from vlic.training.pretrain import PretrainConfig, pretrain
from vlic.codec.autoencoder import CodecConfig
from conftest import synthetic_photo as _photo

TINY = CodecConfig(fsq_levels=(5, 3), downsample=8, patch=4, encoder_width=8, cond_channels=4, flow_widths=(8, 8),
                   tile=32, prior_dim=16, prior_layers=1, prior_heads=2, prior_block=8)

BASE = dict(fingerprint=bytes(range(8)), width=3, height=2, mode="L", downsample=8, prior_block=16, tile=64, overlap=8,
            payload=b"\x01\x02\x03\x04", tokens_crc=0xDEADBEEF)


@pytest.mark.parametrize("tags", [[], [0], [999], [285, 281, 282], [3, 1, 4, 1, 5], list(range(1000 - MAX_TAGS, 1000))],
                         ids=["none", "zero", "last-class", "three", "five", "maximum"])
def test_tag_block_round_trip(tags):
    block = pack_tags(tags)
    assert len(block) == tag_block_bytes(len(tags)) == 1 + (10 * len(tags) + 7) // 8
    assert unpack_tags(block) == tuple(tags)


def test_tag_block_known_bytes_and_sizes():
    # count 2, then 0000000001 0000000010 and 4 zero bits of padding
    assert pack_tags([1, 2]) == bytes.fromhex("02004020")
    assert pack_tags([]) == b"\x00"
    assert [tag_block_bytes(n) for n in (0, 1, 4, 5, 16)] == [1, 3, 6, 8, 21]


@pytest.mark.parametrize("tags,match", [(list(range(MAX_TAGS + 1)), "at most"), ([1000], "outside"), ([-1], "outside")])
def test_bad_tags_are_refused(tags, match):
    with pytest.raises(ValueError, match=match):
        pack_tags(tags)
    with pytest.raises(ValueError, match=match):
        Container(**BASE, tags=tags)


def test_untagged_files_stay_version_2_and_tagged_files_are_version_3():
    plain = Container(**BASE)
    assert plain.version == 2 and plain.tags is None and plain.tag_bits == 0
    assert parse(plain.to_bytes()) == plain
    empty = Container(**BASE, tags=())
    assert empty.version == 3 and len(empty.to_bytes()) == len(plain.to_bytes()) + 1 and empty.tag_bits == 8
    tagged = Container(**BASE, tags=[285, 281, 282, 1, 999])
    data = tagged.to_bytes()
    assert data[4] == 3 and len(data) == OVERHEAD_BYTES + 8 + 4 and tagged.tag_bits == 58 and tagged.tag_bytes == 8
    back = parse(data, "t.vlic")
    assert back == tagged and back.tags == (285, 281, 282, 1, 999) and back.payload == BASE["payload"]


def _resealed(body: bytes) -> bytes:
    import struct
    import zlib

    return body + struct.pack(">I", zlib.crc32(body))


@pytest.mark.parametrize("case", ["truncated", "too-many", "padding", "beyond-vocabulary", "version-9"])
def test_malformed_tag_blocks_fail_in_one_line(case):
    data = Container(**BASE, tags=[1, 2]).to_bytes()
    body = bytearray(data[:-4])
    if case == "truncated":
        bad, match = data[:-6], "truncated"
    elif case == "too-many":
        body[32] = 200
        bad, match = _resealed(bytes(body) + bytes(tag_block_bytes(200) - 4)), "200 tags"
    elif case == "padding":
        body[35] |= 0x01
        bad, match = _resealed(bytes(body)), "padding"
    elif case == "beyond-vocabulary":
        body[33:36] = bytes.fromhex("ffc000")     # 1023, 0
        bad, match = _resealed(bytes(body)), "beyond the 1000 classes"
    else:
        bad, match = data[:4] + b"\x09" + data[5:], "reads versions 2, 3"
    with pytest.raises(ContainerError, match=match) as e:
        parse(bad, "x.vlic")
    assert "\n" not in str(e.value) and "'x.vlic'" in str(e.value)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    d = tmp_path_factory.mktemp("tags_codec")
    r = pretrain(TINY, PretrainConfig(steps=2, batch_size=2, prior_steps=2, prior_batch=2, log_every=1),
                 [_photo(64, 64, 1)], d / "codec_tiny.safetensors", rate="tiny", progress=False)
    return {"dir": d, "ckpt": d / "codec_tiny.safetensors", "codec": ImageCodec(r.checkpoint)}


def test_tags_cost_their_bytes_and_leave_the_decode_unchanged(tiny):
    codec, px = tiny["codec"], _photo(40, 56, 3)
    plain, tagged, empty = codec.compress(px), codec.compress(px, tags=[285, 281]), codec.compress(px, tags=[])
    assert tagged.bytes == plain.bytes + tag_block_bytes(2) and empty.bytes == plain.bytes + 1
    assert tagged.payload_bits == plain.payload_bits and tagged.bpp > plain.bpp
    assert tagged.stats()["tags"] == [285, 281] and "tags" not in plain.stats()
    assert parse(tagged.data).tags == (285, 281)
    assert np.array_equal(codec.decompress(tagged.data, steps=1), codec.decompress(plain.data, steps=1))
    with pytest.raises(ValueError, match="outside"):
        codec.compress(px, tags=[1000])


def test_cli_codes_tags_and_info_lists_them(tiny, tmp_path, capsys):
    src, f = tmp_path / "in.png", tmp_path / "out.vlic"
    Image.fromarray(_photo(48, 64, 4)).save(src)
    assert main(["compress", str(src), str(f), "--model", str(tiny["ckpt"]), "--tags", "285,281", "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["tags"] == [285, 281] and stats["bytes"] == f.stat().st_size
    assert main(["info", str(f), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["version"] == 3 and info["tags"] == [285, 281]
    assert info["tag_names"] == ["Egyptian cat", "tabby"] and info["tag_bits"] == 28 and info["tag_bytes"] == 4
    assert info["bytes"] == OVERHEAD_BYTES + 4 + info["payload_bytes"]
    assert main(["decompress", str(f), str(tmp_path / "out.png"), "--model", str(tiny["ckpt"])]) == 0
    assert main(["compress", str(src), str(f), "--model", str(tiny["ckpt"]), "--tags", "cat"]) == 2
    assert "expected 'auto', 'none'" in capsys.readouterr().err
    assert main(["compress", str(src), str(tmp_path / "plain.vlic"), "--model", str(tiny["ckpt"])]) == 0
    capsys.readouterr()
    assert main(["info", str(tmp_path / "plain.vlic"), "--json"]) == 0
    assert "tags" not in json.loads(capsys.readouterr().out)


def test_cli_auto_tags_are_efficientnets_classes(tiny, tmp_path, capsys):
    from skimage import data

    from vlic.perception import effnet

    if effnet.availability():
        pytest.skip(effnet.availability())
    from vlic.perception.tags import image_tags, select

    assert select(np.array([0.05, 0.5, 0.2, 0.25]), 0.1, 2) == [1, 3]
    assert select(np.array([0.05, 0.5, 0.2, 0.25]), 0.6, 5) == []
    src, f = tmp_path / "chelsea.png", tmp_path / "chelsea.vlic"
    Image.fromarray(data.chelsea()).save(src)
    assert image_tags(data.chelsea(), threshold=0.5) == [285]          # Egyptian cat, p = 0.77
    assert image_tags(data.chelsea(), threshold=0.01, most=3)[:2] == [285, 282]   # + tiger cat (p ≈ 0.10)
    assert main(["compress", str(src), str(f), "--model", str(tiny["ckpt"]), "--tags", "auto",
                 "--tag-threshold", "0.5"]) == 0
    capsys.readouterr()
    assert main(["info", str(f), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["tag_names"] == ["Egyptian cat"]


def test_a_tag_guided_codec_codes_and_uses_tags_from_the_command_line(tiny, tmp_path, monkeypatch, capsys):
    """A codec with a tag table beside it (models/machine/…, as chapter 06 writes them): `vlic compress` codes the
    image's tags by default (`--tags none` opts out), `vlic decompress` finds the codec under models/machine/ by the
    file's fingerprint, conditions on the file's tags with the table's CFG scale and says so in --json; the pixels are
    those of :func:`vlic.codec.tag_conditioning.decode`, not the untagged decode's. Without a table the tags are coded
    only on request and not used, and a file no model under models/ made names where it looked."""
    import shutil

    import torch

    from vlic.codec.tag_conditioning import TagEmbedding, decode, table_path

    monkeypatch.chdir(tmp_path)
    machine = tmp_path / "models" / "machine"
    machine.mkdir(parents=True)
    ckpt = machine / "codec_ft_tags_tiny.safetensors"
    shutil.copy(tiny["ckpt"], ckpt)
    table = TagEmbedding(TINY.cond_channels, cfg_scale=2.5)
    torch.nn.init.normal_(table.table.weight, std=1.0)
    table.save(table_path(ckpt))
    assert table_path(ckpt).name == "codec_ft_tags_tiny.tags.safetensors"
    assert TagEmbedding.load(table_path(ckpt)).cfg_scale == 2.5
    src, f = tmp_path / "in.png", tmp_path / "in.vlic"
    Image.fromarray(_photo(48, 64, 4)).save(src)
    monkeypatch.setattr("vlic.perception.tags.image_tags", lambda px, threshold=0.1, most=5: [285, 281])

    assert main(["compress", str(src), str(f), "--model", str(ckpt), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["tags"] == [285, 281] and parse(f.read_bytes()).tags == (285, 281)
    out = tmp_path / "out.png"
    assert main(["decompress", str(f), str(out), "--steps", "2", "--json"]) == 0      # no --model: discovered
    d = json.loads(capsys.readouterr().out)
    assert d["model"] == str(Path("models") / "machine" / ckpt.name)
    assert d["tags"] == [285, 281] and d["tags_used"] is True and d["tag_cfg_scale"] == 2.5
    codec = ImageCodec.from_file(ckpt)
    want = decode(codec, f.read_bytes(), TagEmbedding.load(table_path(ckpt)), steps=2, seed=0)
    got = np.asarray(Image.open(out))
    assert np.array_equal(got, want)
    assert not np.array_equal(got, codec.decompress(f.read_bytes(), steps=2, seed=0))
    assert main(["decompress", str(f), str(out), "--steps", "2"]) == 0
    assert "tags 285,281 used, CFG 2.5 over them" in capsys.readouterr().out
    assert main(["decompress", str(f), str(out), "--untiled", "--cfg", "1.5", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["tags_used"] is True and d["tag_cfg_scale"] == 1.5

    assert main(["compress", str(src), str(f), "--model", str(ckpt), "--tags", "none", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["tags"] == [] and parse(f.read_bytes()).tags == ()

    plain = tmp_path / "models" / "codec_plain.safetensors"
    shutil.copy(tiny["ckpt"], plain)
    assert main(["compress", str(src), str(f), "--model", str(plain), "--tags", "285", "--json"]) == 0
    capsys.readouterr()
    assert main(["decompress", str(f), str(out), "--model", str(plain), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["tags"] == [285] and d["tags_used"] is False and d["tag_cfg_scale"] is None

    shutil.rmtree(tmp_path / "models")
    (tmp_path / "models" / "machine").mkdir(parents=True)
    assert main(["decompress", str(f), str(out)]) == 2
    err = capsys.readouterr().err
    assert "no checkpoint under 'models/'" in err and "no codec file found under models/" in err
    assert err.count("\n") == 1
