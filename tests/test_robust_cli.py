"""Issue #18, item 10: silent conversions are reported, and every bad input of the command line is one line on
stderr with exit code 2 — never a traceback, never a silently wrong output."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vlic.cli import main
from vlic.codec.autoencoder import DiffusionCodec
from vlic.codec.checkpoint import Checkpoint, CheckpointError, build_prior, load
from vlic.images import load_rgb

from test_robust_codec import TINY, _fails, _photo


def _chunk(t: bytes, d: bytes) -> bytes:
    return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))


def _png16(path: Path, a: np.ndarray) -> None:
    """A 16-bit RGB PNG (Pillow cannot write one)."""
    h, w, _ = a.shape
    raw = b"".join(b"\x00" + a[y].astype(">u2").tobytes() for y in range(h))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
                     + _chunk(b"IDAT", zlib.compress(raw)) + _chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("cli_codec") / "codec_tiny.safetensors"
    Checkpoint(DiffusionCodec(TINY), build_prior(TINY), rate="tiny").save(path)
    return path


def test_16_bit_rgb_and_multi_frame_gif_are_reported(tmp_path, ckpt, capsys):
    p16 = tmp_path / "deep.png"
    _png16(p16, (np.arange(16 * 16 * 3).reshape(16, 16, 3) * 97 % 65536).astype(np.uint16))
    assert any("16-bit RGB → 8-bit" in c for c in load_rgb(p16).conversions)
    gif = tmp_path / "anim.gif"
    frames = [Image.fromarray(np.full((16, 16, 3), 40 * i, np.uint8)) for i in range(5)]
    frames[0].save(gif, save_all=True, append_images=frames[1:], duration=50)
    assert any("first frame of 5" in c for c in load_rgb(gif).conversions)
    assert main(["compress", str(gif), str(tmp_path / "a.vlic"), "--model", str(ckpt), "--tile", "32"]) == 0
    assert "first frame of 5 kept" in capsys.readouterr().out
    assert main(["compress", str(p16), str(tmp_path / "d.vlic"), "--model", str(ckpt), "--json"]) == 0
    assert any("16-bit" in c for c in json.loads(capsys.readouterr().out)["conversions"])


def test_png_bomb_is_refused_from_its_header(tmp_path, ckpt, capsys):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0))
                     + _chunk(b"IDAT", zlib.compress(bytes(1000))) + _chunk(b"IEND", b""))
    _fails(["compress", str(bomb), str(tmp_path / "b.vlic"), "--model", str(ckpt)], capsys,
           "20000×20000", "more than the limit", "--max-pixels")
    # past the limit on purpose: Pillow's own bomb guard is not a traceback either
    _fails(["compress", str(bomb), str(tmp_path / "b.vlic"), "--model", str(ckpt), "--max-pixels", "0"], capsys, "bomb.png")


@pytest.mark.parametrize("flag,value,expected", [("--cfg", "nan", "--cfg must be a finite"),
                                                 ("--cfg", "inf", "--cfg must be a finite"),
                                                 ("--seed", "99999999999999999999999", "--seed must be between"),
                                                 ("--seed", "-1", "--seed must be between"),
                                                 ("--steps", "0", "--steps must be between"),
                                                 ("--max-pixels", "-5", "--max-pixels must be")])
def test_bad_decoder_arguments(flag, value, expected, tmp_path, ckpt, capsys):
    src = tmp_path / "x.png"
    Image.fromarray(_photo(32, 32)).save(src)
    assert main(["compress", str(src), str(tmp_path / "x.vlic"), "--model", str(ckpt)]) == 0
    _fails(["decompress", str(tmp_path / "x.vlic"), str(tmp_path / "o.png"), "--model", str(ckpt), flag, value],
           capsys, expected)
    assert not (tmp_path / "o.png").exists()


def _rewrite_checkpoint(src: Path, dst: Path, meta_update: dict | None = None, drop_meta: str | None = None,
                        tensor_update: dict | None = None) -> Path:
    from safetensors.torch import load_file, safe_open, save_file

    with safe_open(str(src), framework="pt") as f:
        meta = dict(f.metadata())
    tensors = load_file(str(src))
    meta.update(meta_update or {})
    if drop_meta:
        meta.pop(drop_meta)
    tensors.update(tensor_update or {})
    save_file(tensors, str(dst), metadata=meta)
    return dst


def test_broken_model_files_are_one_line_errors(tmp_path, ckpt, capsys):
    src = tmp_path / "x.png"
    Image.fromarray(_photo(32, 32)).save(src)
    key = next(k for k in load(ckpt).tensors() if k.startswith("prior.") and k.endswith("weight"))
    bad = {
        "no-config": _rewrite_checkpoint(ckpt, tmp_path / "a.safetensors", drop_meta="config"),
        "non-json": _rewrite_checkpoint(ckpt, tmp_path / "b.safetensors", {"config": "{not json"}),
        "wrong-type": _rewrite_checkpoint(ckpt, tmp_path / "c.safetensors", {"config": "[1, 2]"}),
        "shapes": _rewrite_checkpoint(ckpt, tmp_path / "d.safetensors", tensor_update={key: torch.zeros(3, 3)}),
    }
    for name, path in bad.items():
        with pytest.raises(CheckpointError):
            load(path)
        _fails(["compress", str(src), str(tmp_path / f"{name}.vlic"), "--model", str(path)], capsys, str(path))


def test_version():
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0


def test_version_text(capsys):
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.startswith("vlic 0.")


def test_notebook_commands_on_missing_or_non_notebooks(tmp_path, capsys):
    png = tmp_path / "x.png"
    Image.fromarray(_photo(8, 8)).save(png)
    text = tmp_path / "x.ipynb"
    text.write_text('{"cells": "nope"}')
    for action in ("strip", "check"):
        _fails(["notebooks", action, str(tmp_path / "missing.ipynb")], capsys, "does not exist")
        _fails(["notebooks", action, str(png)], capsys, "is not a")
        _fails(["notebooks", action, str(text)], capsys, "is not a")
        _fails(["notebooks", action, str(tmp_path)], capsys, "is not a file")
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_params_set_args_on_a_non_yaml(tmp_path, capsys):
    png = tmp_path / "x.png"
    Image.fromarray(_photo(8, 8)).save(png)
    _fails(["params", "set-args", str(png)], capsys)


def test_data_assemble_does_not_create_data_raw_in_a_random_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _fails(["data", "assemble"], capsys, "not the compendium's root", "RAW_DIR")
    assert not (tmp_path / "data").exists()
