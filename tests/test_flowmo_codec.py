"""FlowMo as a codec: a tiny FlowMo saved in the released .pth layout round-trips 768×512 and 512×768 photos through
``vlic compress | info | decompress``; bits on disk vs the prior's cross-entropy; a fitted prior; the downloader's
resume, lock file and offline error."""

from __future__ import annotations

import hashlib
import http.server
import json
import threading

import numpy as np
import pytest
import torch
from PIL import Image

from vlic.cli import main
from vlic.codec.bitstream import parse
from vlic.codec.flowmo.model import FlowMo, FlowMoConfig, FlowMoWeightsError, save_released_layout
from vlic.codec.flowmo.checkpoint import (FlowMoCheckpoint, infer_config, load_codec_checkpoint,
                                          save_codec_checkpoint)
from vlic.codec.flowmo.codec import FlowMoCodec, blended_velocity, fit_token_prior, tile_boxes
from vlic.codec.image_codec import DecodeError
from conftest import synthetic_photo as _photo

# 256-px tiles like the released models, but narrow, shallow, patch 8 and 64 tokens × 4 bits so CPU tests stay fast
TINY = FlowMoConfig(patch_size=8, mup_width=1, enc_mup_width=1, code_length=64, context_dim=4, enc_depth=1,
                    dec_depth=1, hidden_size=256, num_heads=4, axes_dim=(8, 24, 32), mlp_ratio=2.0, sample_steps=2)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    d = tmp_path_factory.mktemp("flowmo_codec")
    torch.manual_seed(0)
    model = FlowMo(TINY)
    pth = save_released_layout(model, d / "tiny_flowmo.pth", total_steps=1)
    (d / "tiny_flowmo.json").write_text(TINY.to_json())  # the architecture, which weights alone do not tell
    return {"dir": d, "pth": pth, "codec": FlowMoCodec.from_file(pth), "model": model}


def test_released_layout_loads_with_its_config(tiny):
    raw = torch.load(tiny["pth"], weights_only=True)
    assert set(raw) == {"total_steps", "model_ema_state_dict", "model_state_dict"}
    codec = tiny["codec"]
    assert codec.config == TINY and codec.checkpoint.prior_kind == "uniform"
    for k, v in tiny["model"].state_dict().items():
        assert torch.equal(codec.model.state_dict()[k], v)


@pytest.mark.parametrize("shape", [(512, 768), (768, 512)], ids=["768x512", "512x768"])
def test_cli_round_trip(tiny, tmp_path, capsys, shape):
    h, w = shape
    src, f, out = tmp_path / "in.png", tmp_path / "x.vlic", tmp_path / "out.png"
    Image.fromarray(_photo(h, w, 3)).save(src)
    assert main(["compress", str(src), str(f), "--model", str(tiny["pth"]), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    tiles = len(tile_boxes(h, w, 256, 8, 8))
    assert tiles == 12  # 768 px need 4 tiles of 256 with an 8-px margin, 512 px need 3
    assert stats["tokens"] == tiles * 64 * 4 and stats["ideal_bits"] == pytest.approx(tiles * 64 * 4)  # uniform prior
    assert stats["bytes"] == f.stat().st_size and stats["payload_bits"] <= stats["ideal_bits"] * 1.01 + 64
    assert main(["info", str(f), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["width"], info["height"], info["tile"], info["overlap"]) == (w, h, 256, 8)
    assert info["fingerprint"] == tiny["codec"].fingerprint.hex()
    assert main(["decompress", str(f), str(out), "--model", str(tiny["pth"]), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["steps"] == TINY.sample_steps  # the model's default
    with Image.open(out) as im:
        assert im.size == (w, h) and im.mode == "RGB"


def test_tokens_survive_the_bitstream_and_seeds_are_deterministic(tiny):
    codec = tiny["codec"]
    img = _photo(256, 300, 4)  # not a multiple of the tile: 1 × 2 tiles
    result = codec.compress(img)
    bits, boxes = codec.encode_bits(img)
    decoded, boxes2 = codec.decode_bits(parse(result.data))
    assert torch.equal(bits, decoded) and boxes == boxes2 == [(0, 0), (0, 44)]
    a = codec.decompress(result.data, steps=1, seed=3)
    assert np.array_equal(a, codec.decompress(result.data, steps=1, seed=3))
    assert not np.array_equal(a, codec.decompress(result.data, steps=1, seed=4))


def test_tags_are_carried_in_the_file_and_do_not_change_the_decode(tiny):
    codec = tiny["codec"]
    img = _photo(100, 180, 6)
    plain, tagged = codec.compress(img), codec.compress(img, tags=[285, 281])
    assert parse(tagged.data).tags == (285, 281) and tagged.tags == (285, 281) and parse(plain.data).tags is None
    assert tagged.bytes - plain.bytes == tagged.tag_bytes > 0
    assert np.array_equal(codec.decompress(plain.data, steps=1), codec.decompress(tagged.data, steps=1))
    with pytest.raises(ValueError):
        codec.compress(img, tags=[1000])  # not an ImageNet class: refused before the encode


def test_small_images_are_padded_to_one_tile(tiny):
    codec = tiny["codec"]
    img = _photo(100, 180, 5)
    result = codec.compress(img)
    assert result.n_tokens == 64 * 4
    assert codec.decompress(result.data, steps=1).shape == (100, 180, 3)


def test_multidiffusion_blends_tile_velocities_over_the_margin():
    """Each tile's velocity under its own condition; one tile alone → its value, overlaps → a weighted average whose
    weight ramps over the 8-px margin."""
    class Constant:  # velocity = the tile's condition value, everywhere in the tile
        def velocity(self, x, cond, t):
            return cond[:, :1, :1, None].expand(-1, 3, x.shape[2], x.shape[3]).clone()

    boxes = tile_boxes(256, 504, 256, 8, 8)
    assert boxes == [(0, 0), (0, 248)]
    conds = torch.tensor([0.0, 1.0]).view(2, 1, 1).expand(2, 4, 5)
    v = blended_velocity(Constant(), boxes, 256, 8)(torch.zeros(1, 3, 256, 504), conds, torch.ones(1))[0, 0, 100]
    assert torch.all(v[:248] == 0) and torch.all(v[256:] == 1)
    inside = v[248:256]
    assert torch.all(inside > 0) and torch.all(inside < 1) and torch.all(inside[1:] > inside[:-1])
    assert float(inside[0] + inside[-1]) == pytest.approx(1.0)  # the two ramps mirror each other


def test_wrong_model_and_layout_are_refused(tiny, tmp_path):
    codec = tiny["codec"]
    data = codec.compress(_photo(256, 256)).data
    torch.manual_seed(1)
    other = FlowMoCodec(FlowMoCheckpoint(FlowMo(TINY), codec.checkpoint.prior))
    with pytest.raises(DecodeError, match="not by this FlowMo model"):
        other.decompress(data, steps=1, name="x.vlic")
    with pytest.raises(DecodeError, match="tile by tile"):
        codec.decompress(data, steps=1, tile=None)
    with pytest.raises(ValueError, match="256-pixel tiles"):
        codec.compress(_photo(256, 256), tile=128)


def test_fitted_prior_codes_below_one_bit_per_bit_and_saves(tiny, tmp_path):
    codec = tiny["codec"]
    images = [_photo(256, 256, s) for s in range(3)]
    prior, curve = fit_token_prior(codec, images, steps=25, lr=1e-2, batch=3, dims={"dim": 32, "layers": 1, "heads": 2})
    assert curve[-1]["bits_per_bit"] < curve[0]["bits_per_bit"]
    fitted = FlowMoCheckpoint(codec.model, prior, prior_kind="fitted", training={"prior_steps": 25})
    path = save_codec_checkpoint(fitted, tmp_path / "models" / "flowmo_tiny.safetensors")
    loaded = load_codec_checkpoint(path)
    assert loaded.prior_kind == "fitted" and loaded.fingerprint == fitted.fingerprint != codec.checkpoint.fingerprint
    fc = FlowMoCodec(loaded)
    img = _photo(256, 256, 1)
    uniform, coded = codec.compress(img), fc.compress(img)
    assert coded.ideal_bits < uniform.ideal_bits
    assert coded.payload_bits <= coded.ideal_bits * 1.01 + 64  # bits on disk track the prior's cross-entropy
    assert torch.equal(fc.decode_bits(parse(coded.data))[0], codec.encode_bits(img)[0])
    src, f = tmp_path / "a.png", tmp_path / "a.vlic"
    Image.fromarray(img).save(src)
    assert main(["compress", str(src), str(f), "--model", str(path)]) == 0
    assert main(["decompress", str(f), str(tmp_path / "a_out.png"), "--model", str(path), "--steps", "1"]) == 0


def test_architecture_is_read_off_released_shapes():
    with torch.device("meta"):
        state = FlowMo(FlowMoConfig(context_dim=56)).state_dict()
    assert infer_config(state, "flowmo_hi.pth") == FlowMoConfig(context_dim=56)
    with torch.device("meta"):
        tiny_state = FlowMo(TINY).state_dict()
    with pytest.raises(FlowMoWeightsError, match="tiny.json"):  # widths that dit_b_4 cannot explain need the config
        infer_config(tiny_state, "tiny.pth")


def test_bad_model_file_exits_2_with_one_line(tiny, tmp_path, capsys):
    src = tmp_path / "in.png"
    Image.fromarray(_photo(64, 64)).save(src)
    bad = tmp_path / "broken.pth"
    bad.write_bytes(tiny["pth"].read_bytes()[:5000])
    assert main(["compress", str(src), str(tmp_path / "o.vlic"), "--model", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "broken.pth" in err


# --- vlic models download ------------------------------------------------------------------------------------------

PAYLOAD = bytes(range(251)) * 300


class _Handler(http.server.BaseHTTPRequestHandler):
    requests: list = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        rng = self.headers.get("Range")
        type(self).requests.append(rng)
        start = int(rng.split("=")[1].split("-")[0]) if rng else 0
        body = PAYLOAD[start:]
        self.send_response(206 if rng else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture()
def server():
    _Handler.requests = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_download_records_then_verifies_the_lock(server, tmp_path):
    from vlic.codec.flowmo.download import download_model
    from vlic.fetch import DownloadError

    urls = {"flowmo_lo": f"{server}/flowmo_lo.pth"}
    lock = tmp_path / "flowmo.lock.json"
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "flowmo_lo.pth.part").write_bytes(PAYLOAD[:1000])  # an interrupted earlier download
    path, digest, recorded = download_model("flowmo_lo", tmp_path / "m", lock, urls)
    assert recorded and path.read_bytes() == PAYLOAD and _Handler.requests == ["bytes=1000-"]
    entry = json.loads(lock.read_text())["flowmo_lo"]
    assert entry == {"sha256": hashlib.sha256(PAYLOAD).hexdigest(), "size": len(PAYLOAD), "url": urls["flowmo_lo"]}
    assert download_model("flowmo_lo", tmp_path / "m", lock, urls)[2] is False  # present and matching: kept
    # another machine whose download differs from the locked file is refused
    lock.write_text(json.dumps({"flowmo_lo": dict(entry, sha256="ab" * 32)}))
    with pytest.raises(DownloadError, match="does not match the pinned"):
        download_model("flowmo_lo", tmp_path / "other", lock, urls)


def test_download_offline_is_one_line_exit_2(tmp_path, capsys, monkeypatch):
    from vlic.codec.flowmo import download as flowmo_download

    monkeypatch.setitem(flowmo_download.RELEASED_URLS, "flowmo_hi", "http://127.0.0.1:9/flowmo_hi.pth")
    assert main(["models", "download", "flowmo_hi", "--dir", str(tmp_path), "--lock", str(tmp_path / "l.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "127.0.0.1:9" in err and "network" in err
    assert not (tmp_path / "l.json").exists()
