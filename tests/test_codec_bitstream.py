"""The .vlic container and the range coder, pinned with real bytes; the parser fuzzed with hypothesis."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vlic.codec.bitstream import (
    HEADER_BYTES,
    OVERHEAD_BYTES,
    Container,
    ContainerError,
    RangeCoder,
    parse,
    words_to_bytes,
)

KNOWN = Container(fingerprint=bytes(range(8)), width=3, height=2, mode="L", downsample=8, prior_block=16, tile=64,
                  overlap=8, payload=b"\x01\x02\x03\x04", tokens_crc=0xCAFEF00D)
KNOWN_HEX = "564c49430200010203040506070003000201081000400008cafef00d0000000401020304707946c7"


def test_known_container_bytes():
    data = KNOWN.to_bytes()
    assert HEADER_BYTES == 32 and OVERHEAD_BYTES == 36
    assert data.hex() == KNOWN_HEX
    assert parse(data, "known.vlic") == KNOWN
    assert KNOWN.latent_shape == (1, 1)


@pytest.mark.parametrize(
    "data,message",
    [
        (b"", "'x.vlic' is empty (0 bytes)"),
        (b"\x89PNG\r\n\x1a\n" + bytes(40), "'x.vlic' is not a .vlic file (starts with b'\\x89PNG'"),
        (b"VLI", "'x.vlic' is truncated: 3 bytes"),
        (bytes.fromhex(KNOWN_HEX)[:-1], "'x.vlic' is truncated: header says 40 bytes, found 39"),
        (bytes.fromhex(KNOWN_HEX) + b"\x00", "'x.vlic' has 1 trailing bytes"),
        (bytes.fromhex(KNOWN_HEX)[:34] + b"\xff" + bytes.fromhex(KNOWN_HEX)[35:], "'x.vlic' is corrupted: CRC-32 mismatch"),
        (bytes.fromhex(KNOWN_HEX)[:4] + b"\x07" + bytes.fromhex(KNOWN_HEX)[5:], "'x.vlic' has format version 7"),
    ],
    ids=["empty", "png", "short", "truncated", "trailing", "corrupted", "version"],
)
def test_bad_files_give_one_line_errors(data, message):
    with pytest.raises(ContainerError) as e:
        parse(data, "x.vlic")
    assert str(e.value).startswith(message)
    assert "\n" not in str(e.value)


def test_invalid_header_fields_behind_a_valid_crc():
    body = bytearray(KNOWN.to_bytes()[:-4])
    body[18] = 6  # downsample 6 is not a power of two
    data = bytes(body) + struct.pack(">I", zlib.crc32(bytes(body)))
    with pytest.raises(ContainerError, match=r"invalid header \(downsample 6\)"):
        parse(data, "x.vlic")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80))
def test_fuzz_parser_raises_only_container_errors(data):
    try:
        c = parse(data, "fuzz.vlic")
    except ContainerError as e:
        assert "fuzz.vlic" in str(e) and "\n" not in str(e)
    else:
        assert c.to_bytes() == data


@settings(max_examples=200, deadline=None)
@given(st.integers(0, len(bytes.fromhex(KNOWN_HEX)) - 1), st.integers(1, 255))
def test_fuzz_every_single_byte_flip_is_caught(pos, xor):
    data = bytearray(bytes.fromhex(KNOWN_HEX))
    data[pos] ^= xor
    with pytest.raises(ContainerError):
        parse(bytes(data), "flip.vlic")


@settings(max_examples=100, deadline=None)
@given(st.binary(min_size=4, max_size=64).map(lambda b: b[: len(b) // 4 * 4]), st.integers(1, 65535), st.integers(1, 65535),
       st.integers(0, 2**32 - 1))
def test_fuzz_round_trip(payload, w, h, crc):
    c = Container(b"ABCDEFGH", w, h, "RGB", 16, 16, 64, 8, payload, crc)
    assert parse(c.to_bytes()) == c


def test_range_coder_known_words_and_near_ideal_bits():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(5) * 0.5, size=2000)
    symbols = np.array([rng.choice(5, p=p) for p in probs])
    enc = RangeCoder()
    for k in range(0, 2000, 100):  # in chunks, as the prior walk does
        enc.encode(symbols[k : k + 100], probs[k : k + 100])
    words = enc.words()
    assert words[:4].tolist() == KNOWN_WORDS
    bits = 32 * len(words)
    assert enc.ideal_bits == pytest.approx(IDEAL_BITS, rel=1e-9)
    assert bits <= 1.005 * enc.ideal_bits + 32  # within 0.5 % plus at most one partial 32-bit word
    dec = RangeCoder(np.frombuffer(words_to_bytes(words), dtype="<u4"))
    out = np.concatenate([dec.decode(probs[k : k + 100]) for k in range(0, 2000, 100)])
    assert np.array_equal(out, symbols)


KNOWN_WORDS = [1416677135, 1357727793, 3564082103, 1392712020]
IDEAL_BITS = 3112.58846243591  # −Σ log2 q under the 14-bit integer model; the coder writes 98 words = 3136 bits
