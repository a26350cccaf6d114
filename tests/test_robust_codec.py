"""Issue #18, codec side: bit-identical entropy coding under different numerics, forged files (CRC recomputed),
decompression bombs and pixel limits, and writes that must not lose data. A tiny *untrained* codec is enough: none of
this depends on what the weights learned."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vlic.cli import main
from vlic.codec import image_codec
from vlic.codec.autoencoder import CodecConfig, DiffusionCodec
from vlic.codec.bitstream import HEADER_BYTES, RangeCoder, parse, quantize_probs
from vlic.codec.checkpoint import Checkpoint, build_prior
from vlic.codec.image_codec import DecodeError, ImageCodec, LimitError
from conftest import synthetic_photo as _photo

TINY = CodecConfig(fsq_levels=(5, 3, 3), downsample=8, patch=4, encoder_width=16, cond_channels=8, flow_widths=(16, 16),
                   tile=32, prior_dim=32, prior_layers=1, prior_heads=2, prior_block=8)
LIB = str(Path(__file__).resolve().parents[1] / "lib")


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("robust_codec") / "codec_tiny.safetensors"
    Checkpoint(DiffusionCodec(TINY), build_prior(TINY), rate="tiny").save(path)
    return path


@pytest.fixture(scope="module")
def codec(ckpt) -> ImageCodec:
    return ImageCodec.from_file(ckpt)


@pytest.fixture(scope="module")
def good(codec, tmp_path_factory) -> Path:
    f = tmp_path_factory.mktemp("good") / "good.vlic"
    f.write_bytes(codec.compress(_photo(40, 56, seed=1)).data)
    return f


def _fails(argv, capsys, *expected) -> str:
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1, err
    for e in expected:
        assert e in err, err
    return err


# --- 1. bit-identical entropy coding ------------------------------------------------------------------------------

def test_quantized_probabilities_are_integers_that_sum_exactly():
    rng = np.random.default_rng(0)
    p = np.concatenate([rng.dirichlet(np.ones(8) * 0.05, 500), np.eye(8)[:3], np.full((1, 8), 1e-300)])
    q = quantize_probs(p)
    assert q.dtype == np.int64 and np.all(q >= 1) and np.all(q.sum(1) == 2**14)
    assert np.array_equal(quantize_probs(p * 3.0), q)  # scale-free


def test_decoder_side_perturbations_of_3e12_still_decode_exactly():
    """Float probabilities that differ in their last bits (as across ISAs / thread counts) decode the same symbols.

    Fed straight to constriction (the previous coder), this very perturbation breaks the decode of these 200 000
    symbols; the integer model absorbs it."""
    rng = np.random.default_rng(1)
    p = rng.dirichlet(np.ones(8) * 0.5, size=200_000)
    s = (p.cumsum(1) > rng.random((len(p), 1))).argmax(1)
    perturbed = p * (1 + 3e-12 * rng.standard_normal(p.shape))
    enc = RangeCoder()
    enc.encode(s, p)
    dec = RangeCoder(enc.words())
    assert np.array_equal(dec.decode(perturbed), s)
    assert dec.exhausted()


_NUMERICS_SCRIPT = textwrap.dedent("""
    import hashlib, json, sys
    import numpy as np, torch
    torch.set_num_threads(int(sys.argv[1]))
    from vlic.codec.bitstream import quantize_probs
    from vlic.codec.image_codec import ImageCodec
    from vlic.codec.prior import to_blocks, walk
    codec = ImageCodec.from_file(sys.argv[2])
    rng = np.random.default_rng(0)
    codes = torch.stack([torch.as_tensor(rng.integers(0, L, (24, 40))) for L in codec.config.fsq_levels])
    raw, quant = hashlib.sha256(), hashlib.sha256()
    def emit(n, j, a, probs):
        raw.update(np.ascontiguousarray(probs).tobytes()); quant.update(quantize_probs(probs).tobytes())
    walk(codec.prior64, to_blocks(codes, codec.config.prior_block), emit)
    px = np.load(sys.argv[3])
    z = codec.compress(px)
    out = {"raw": raw.hexdigest(), "quant": quant.hexdigest(), "file": hashlib.sha256(z.data).hexdigest()}
    if len(sys.argv) > 4:  # decode a file made under other numerics
        c, _, _ = codec.decode_condition(open(sys.argv[4], "rb").read(), sys.argv[4])
        out["decoded"] = True
        open(sys.argv[4] + ".mine", "wb").write(z.data)
    print(json.dumps(out))
""")


def _under(numerics: dict, threads: int, *args) -> dict:
    env = {**os.environ, "PYTHONPATH": LIB, "VLIC_NUMERICS": "native", **numerics}  # no study-wide pin: raw kernels
    r = subprocess.run([sys.executable, "-c", _NUMERICS_SCRIPT, str(threads), *map(str, args)], env=env,
                       capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_encoder_and_decoder_under_different_isa_and_threads_agree(ckpt, tmp_path):
    """The prior runs with ATen's baseline kernels and one thread vs the best kernels and two threads: the integer
    coding model, the file and the decode agree (the raw float rows may or may not differ on a given machine)."""
    px = tmp_path / "px.npy"
    np.save(px, _photo(48, 72, seed=5))
    base = _under({"ATEN_CPU_CAPABILITY": "default"}, 1, ckpt, px)
    f = tmp_path / "base.vlic"
    codec_bytes = ImageCodec.from_file(ckpt).compress(np.load(px)).data  # in-process (the test's own numerics)
    f.write_bytes(codec_bytes)
    other = _under({}, 2, ckpt, px, f)  # decodes the in-process file, re-encodes under its own numerics
    print("raw float rows identical across numerics:", base["raw"] == other["raw"])
    assert base["quant"] == other["quant"]
    assert base["file"] == other["file"]
    assert other["decoded"] is True
    assert (f.with_suffix(".vlic.mine")).read_bytes() == codec_bytes


def test_a_wrong_decode_is_detected_not_drawn(codec, good, ckpt):
    """A decoder whose prior computes different probabilities stops with one line instead of a silent wrong image."""
    other = ImageCodec.from_file(ckpt)
    with torch.no_grad():
        for p in other.prior64.heads[0].parameters():
            p.add_(0.05 * torch.randn_like(p))
    data = good.read_bytes()
    assert np.array_equal(codec.decode_codes(parse(data)).numpy(), codec.decode_codes(parse(data)).numpy())
    with pytest.raises(DecodeError, match="content checksum|cannot be range-decoded|goes on after"):
        other.decode_codes(parse(data), "good.vlic")


# --- 2/3. forged files (CRC recomputed) -------------------------------------------------------------------------

_FIELDS = struct.Struct(">4sB8sHHBBBHHII")


def _forge(data: bytes, payload: bytes | None = None, **fields) -> bytes:
    """Rewrite header fields and/or the payload of a valid file and recompute the CRC-32 (a forger's file)."""
    names = ["magic", "version", "fp", "width", "height", "mode", "down", "block", "tile", "overlap", "tcrc", "n"]
    head = dict(zip(names, _FIELDS.unpack_from(data)))
    body = data[HEADER_BYTES:-4] if payload is None else payload
    head.update(fields, n=len(body))
    out = _FIELDS.pack(*(head[k] for k in names)) + body
    return out + struct.pack(">I", zlib.crc32(out))


def _forgeries(data: bytes) -> dict[str, bytes]:
    c = parse(data)
    n = len(c.payload)
    rng = np.random.default_rng(0)
    return {
        "empty-payload": _forge(data, b""),
        "zero-payload": _forge(data, bytes(n)),
        "random-payload": _forge(data, rng.integers(0, 256, n, dtype=np.uint8).tobytes()),
        "doubled-payload": _forge(data, c.payload * 2),
        "1MB-payload": _forge(data, rng.integers(0, 256, 1 << 20, dtype=np.uint8).tobytes()),
        "mode-7": _forge(data, mode=7),
        "tile-8": _forge(data, tile=8),
        "tile-16": _forge(data, tile=16),
        "tile-24": _forge(data, tile=24),
        "overlap-0": _forge(data, overlap=0),
        "overlap-60": _forge(data, tile=64, overlap=60),
        "size-1x1": _forge(data, width=1, height=1),
        "height-1": _forge(data, height=c.height - 1),
        "width-x2": _forge(data, width=c.width * 2),
        "8000x8000-tiny-payload": _forge(data, width=8000, height=8000),
        "tile-65528": _forge(data, width=8000, height=8000, tile=65528),
    }


FORGERIES = ["empty-payload", "zero-payload", "random-payload", "doubled-payload", "1MB-payload", "mode-7", "tile-8",
             "tile-16", "tile-24", "overlap-0", "overlap-60", "size-1x1", "height-1", "width-x2",
             "8000x8000-tiny-payload", "tile-65528"]


@pytest.mark.parametrize("kind", FORGERIES)
def test_forged_files_fail_with_one_line_exit_2(kind, ckpt, good, tmp_path, capsys):
    forged = tmp_path / f"{kind}.vlic"
    forgeries = _forgeries(good.read_bytes())
    assert sorted(forgeries) == sorted(FORGERIES)
    forged.write_bytes(forgeries[kind])
    out = tmp_path / "out.png"
    err = _fails(["decompress", str(forged), str(out), "--model", str(ckpt)], capsys, str(forged))
    assert not out.exists()
    print(kind, "→", err.strip())


def test_the_unforged_file_decodes(ckpt, good, tmp_path):
    assert main(["decompress", str(good), str(tmp_path / "out.png"), "--model", str(ckpt)]) == 0
    assert Image.open(tmp_path / "out.png").size == (56, 40)


def test_one_pixel_limit_for_both_directions(codec, ckpt, good, tmp_path, capsys):
    src = tmp_path / "x.png"
    Image.fromarray(_photo(40, 56)).save(src)
    _fails(["compress", str(src), str(tmp_path / "x.vlic"), "--model", str(ckpt), "--max-pixels", "2000"], capsys,
           "more than the limit of 2,000", "--max-pixels")
    _fails(["decompress", str(good), str(tmp_path / "o.png"), "--model", str(ckpt), "--max-pixels", "2000"], capsys,
           "more than the limit of 2,000", "--max-pixels")
    assert main(["compress", str(src), str(tmp_path / "x.vlic"), "--model", str(ckpt), "--max-pixels", "2240"]) == 0
    assert main(["decompress", str(good), str(tmp_path / "o.png"), "--model", str(ckpt), "--max-pixels", "0"]) == 0
    with pytest.raises(LimitError):
        codec.compress(_photo(40, 56), max_pixels=100)
    from vlic import images
    from vlic.codec import cli as codec_cli

    assert codec_cli.DEFAULT_MAX_PIXELS == image_codec.DEFAULT_MAX_PIXELS == images.DEFAULT_MAX_PIXELS == 89_478_485


def test_memory_is_estimated_before_allocating(codec, good, monkeypatch):
    monkeypatch.setattr(image_codec, "available_memory", lambda: 10 * 2**20)
    with pytest.raises(DecodeError, match="needs about .* GiB of memory"):
        codec.decompress(good.read_bytes())
    with pytest.raises(LimitError, match="needs about"):
        codec.compress(_photo(1000, 1000))
    est = image_codec.estimate_memory(TINY, 8000, 8000, 65528, decode=True)
    assert est > image_codec.estimate_memory(TINY, 8000, 8000, 32, decode=True) > 2**30


# --- 4. writes that lose data --------------------------------------------------------------------------------------

def test_output_equal_to_input_is_refused(ckpt, good, tmp_path, capsys):
    src = tmp_path / "photo.png"
    Image.fromarray(_photo(40, 40)).save(src)
    before = src.read_bytes()
    _fails(["compress", str(src), str(src), "--model", str(ckpt)], capsys, "is the input")
    link = tmp_path / "link.png"
    link.symlink_to(src)
    _fails(["compress", str(src), str(link), "--model", str(ckpt)], capsys, "is the input")
    _fails(["compress", str(link), str(tmp_path / "." / "photo.png"), "--model", str(ckpt)], capsys, "is the input")
    assert src.read_bytes() == before
    copy = tmp_path / "copy.vlic"
    copy.write_bytes(good.read_bytes())
    _fails(["decompress", str(copy), str(copy), "--model", str(ckpt)], capsys, "is the input")
    assert copy.read_bytes() == good.read_bytes()


def test_unwritable_outputs_are_refused_before_encoding(ckpt, tmp_path, capsys, monkeypatch):
    src = tmp_path / "photo.png"
    Image.fromarray(_photo(40, 40)).save(src)
    monkeypatch.setattr(ImageCodec, "compress", lambda *a, **k: pytest.fail("encoded before checking the output"))
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    for bad in (a_file / "out.vlic", tmp_path, Path("/proc/version"), Path("/dev/null")):
        _fails(["compress", str(src), str(bad), "--model", str(ckpt)], capsys, str(bad))


def test_decompress_to_bad_paths_is_one_line(ckpt, good, tmp_path, capsys):
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    for bad in (a_file / "o.png", tmp_path, Path("/proc/nope/o.png")):
        _fails(["decompress", str(good), str(bad), "--model", str(ckpt)], capsys, str(bad))


def test_a_failed_write_leaves_the_old_file_whole(ckpt, good, tmp_path):
    """With a 1 KiB file-size limit the PNG cannot be written: exit 2, and the existing file is untouched."""
    out = tmp_path / "existing.png"
    old = os.urandom(5000)
    out.write_bytes(old)
    script = textwrap.dedent(f"""
        import resource, signal, sys
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1024, 1024))
        from vlic.cli import main
        sys.exit(main(["decompress", {str(good)!r}, {str(out)!r}, "--model", {str(ckpt)!r}]))
    """)
    r = subprocess.run([sys.executable, "-c", script], env={**os.environ, "PYTHONPATH": LIB}, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    err = r.stderr.split("Remainder of file ignored")[-1].strip()  # after a start-up hook's complaint, if any
    assert err.count("\n") == 0 and err.startswith("vlic decompress: error: cannot write output"), err
    assert out.read_bytes() == old
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".existing")] == []  # no temp file left


# --- issue #25, item 9: the memory guard sees the real limit, and running out anyway is one line ---------------------

_UNDER_RLIMIT = textwrap.dedent("""
    import resource, sys
    from vlic.cli import main
    import vlic.codec.cli, vlic.codec.image_codec, vlic.images, PIL.PngImagePlugin  # what the command imports
    from vlic.codec.image_codec import available_memory
    # the address space this interpreter (with torch) already maps, plus a small room: the limit a container, a
    # batch system or `ulimit -v` would set. Set here rather than in preexec_fn: torch's start-up alone maps GBs.
    vm = int(next(l for l in open("/proc/self/status") if l.startswith("VmSize")).split()[1]) * 1024
    resource.setrlimit(resource.RLIMIT_AS, (vm + {room}, resource.getrlimit(resource.RLIMIT_AS)[1]))
    print("available", available_memory(), file=sys.stderr, flush=True)
    sys.exit(main(sys.argv[1:]))
""")


def test_the_guard_honours_rlimit_as(ckpt, tmp_path):
    image = tmp_path / "big.png"
    Image.fromarray(_photo(1000, 1000)).save(image)  # estimate ≈ 150 MiB to encode with the tiny codec
    room = 64 * 2**20
    env = {**os.environ, "PYTHONPATH": LIB, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-c", _UNDER_RLIMIT.replace("{room}", str(room)), "compress", str(image),
                        str(tmp_path / "big.vlic"), "--model", str(ckpt)], env=env, capture_output=True, text=True,
                       timeout=120, check=False)
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    available = int(lines[0].split()[1])
    assert available <= room, lines  # the limit, not MemAvailable (GBs on this machine)
    assert r.returncode == 2, r.stderr[-3000:]
    assert len(lines) == 2 and lines[1].startswith("vlic compress: error:") and "memory" in lines[1], lines
    assert not (tmp_path / "big.vlic").exists()


def test_available_memory_is_the_smallest_of_meminfo_rlimit_and_cgroup(monkeypatch, tmp_path):
    cgroup_room = image_codec._cgroup_room
    monkeypatch.setattr(image_codec, "_meminfo_available", lambda: 8 * 2**30)
    monkeypatch.setattr(image_codec, "_address_space_room", lambda: 3 * 2**30)
    monkeypatch.setattr(image_codec, "_cgroup_room", lambda: 5 * 2**30)
    assert image_codec.available_memory() == 3 * 2**30
    monkeypatch.setattr(image_codec, "_cgroup_room", lambda: 2**30)
    assert image_codec.available_memory() == 2**30
    monkeypatch.setattr(image_codec, "_address_space_room", lambda: None)
    monkeypatch.setattr(image_codec, "_cgroup_room", lambda: None)
    assert image_codec.available_memory() == 8 * 2**30
    # cgroup v2 and v1 files: limit minus what the group already uses; "max" or a huge v1 number = no limit
    v2 = tmp_path / "v2"
    v2.mkdir()
    (v2 / "memory.max").write_text("1073741824\n")
    (v2 / "memory.current").write_text("268435456\n")
    assert cgroup_room(v2) == 768 * 2**20
    (v2 / "memory.max").write_text("max\n")
    assert cgroup_room(v2) is None
    v1 = tmp_path / "v1"
    (v1 / "memory").mkdir(parents=True)
    (v1 / "memory" / "memory.limit_in_bytes").write_text("536870912\n")
    (v1 / "memory" / "memory.usage_in_bytes").write_text("134217728\n")
    assert cgroup_room(v1) == 384 * 2**20
    (v1 / "memory" / "memory.limit_in_bytes").write_text("9223372036854771712\n")
    assert cgroup_room(v1) is None
    assert cgroup_room(tmp_path / "none") is None


@pytest.mark.parametrize("failure", [RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: "
                                                  "not enough memory: you tried to allocate 4831838208 bytes."),
                                     MemoryError()])
def test_running_out_of_memory_anyway_is_one_line(codec, good, monkeypatch, failure):
    def broke(*a, **k):
        raise failure

    with monkeypatch.context() as m:
        m.setattr(codec.model, "encode", broke)
        with pytest.raises(LimitError, match=r"^image 56×40: ran out of memory while encoding") as e:
            codec.compress(_photo(40, 56))
        assert "\n" not in str(e.value)
    with monkeypatch.context() as m:
        m.setattr(codec.model, "condition_from_codes", broke)
        with pytest.raises(DecodeError, match=r"ran out of memory while decoding") as e:
            codec.decompress(good.read_bytes(), name="good.vlic")
        assert "\n" not in str(e.value) and "good.vlic" in str(e.value)
