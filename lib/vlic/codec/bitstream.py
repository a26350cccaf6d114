"""The ``.vlic`` container and the range coding of FSQ tokens with ``constriction``.

Layout (big-endian), 32-byte header + payload + 4-byte CRC-32::

    offset size field
         0    4 magic b"VLIC"
         4    1 format version (2)
         5    8 model fingerprint (first 8 bytes of the checkpoint's SHA-256, see vlic.codec.checkpoint)
        13    2 width  (pixels, 1…65535)
        15    2 height
        17    1 source mode (MODES index: what the input was before the explicit conversion to RGB)
        18    1 downsample (latent grid = image / downsample, padded up)
        19    1 prior block (the latent is coded in independent blocks of this many positions squared)
        20    2 decoder tile (pixels) — MultiDiffusion layout used at decode time
        22    2 tile overlap margin (pixels)
        24    4 content CRC-32: the header fields above (from the fingerprint on) followed by the coded tokens
                (uint16 little-endian, channel-major (C, h, w)) — a wrong decode is detected, never silently drawn
        28    4 payload length in bytes (a multiple of 4: constriction's 32-bit words, little-endian)
        32    … payload
      end-4   4 CRC-32 of everything before it

**Tags (format version 3).** A file may carry image-level tags (Diff-ICMH's tag guidance: class indices of a
tagger, e.g. EfficientNet-Lite0's ImageNet classes, :mod:`vlic.perception.tags`), coded losslessly at a fixed
:data:`TAG_BITS` = ⌈log₂ 1000⌉ = 10 bits per tag after a one-byte count, between the header and the payload::

        32    1 tag count n (0 … MAX_TAGS)
        33    ⌈10·n / 8⌉ the tags, 10 bits each, most significant bit first, zero-padded to a whole byte
         …    payload, CRC-32 (as in version 2; the CRC covers the tags too)

A file without tags is written as version 2 (byte for byte as before tags existed), a file with a tag list — even an
empty one — as version 3; both versions are read. The tags are part of the file's bytes, so of its bpp.

:func:`parse` never trusts the input: every failure is a :class:`ContainerError` whose one-line message names the
file and what was expected (the CLI turns it into exit code 2). Fields that depend on the model (layout, tile) are
checked against it by :meth:`vlic.codec.image_codec.ImageCodec.check`.

**Bit-identical coding on any machine.** The prior's float probabilities differ across instruction sets and thread
counts in their last bits (≈ 1e-15). :func:`quantize_probs` maps each row onto integer counts summing to
``2**PROB_BITS`` (every symbol ≥ 1, the rounding remainder given to the most probable symbol, first index on ties)
and the coder is fed those counts divided by a power of two — exact floats, so ``constriction`` builds the same
model on both sides whenever the counts agree. Counts can still disagree when a scaled probability lies within
≈ 1e-15 × 2**PROB_BITS of a rounding boundary (≈ 3e-11 per probability; the cost of the coarse grid is below 0.06 % of the bits even for very peaked rows); then the content CRC fails and the decoder
stops with one line instead of drawing a wrong image.
"""

from __future__ import annotations

import math
import struct
import zlib
from dataclasses import dataclass

import numpy as np

MAGIC = b"VLIC"
VERSION = 2          # the untagged format (what every codec writes without tags)
VERSION_TAGS = 3     # version 2 + a tag block after the header
READS = (VERSION, VERSION_TAGS)
TAG_CLASSES = 1000   # the tag vocabulary: ImageNet-1k class indices
TAG_BITS = 10        # ⌈log2 1000⌉ bits per tag
MAX_TAGS = 16
_HEADER = struct.Struct(">4sB8sHHBBBHHII")
_CONTENT = struct.Struct(">8sHHBBBHH")  # the fields the content CRC covers (fingerprint … overlap)
HEADER_BYTES = _HEADER.size  # 32
TRAILER_BYTES = 4
OVERHEAD_BYTES = HEADER_BYTES + TRAILER_BYTES
MODES = ("RGB", "L", "RGBA", "LA", "I;16", "P", "CMYK", "other")
MAX_PAYLOAD = 1 << 30
PROB_BITS = 14  # probabilities are coded as integer counts out of 2**14 (see quantize_probs)


def tag_block_bytes(n: int) -> int:
    """Bytes of the tag block for ``n`` tags (count byte + 10-bit tags padded to a byte)."""
    return 1 + (TAG_BITS * n + 7) // 8


def pack_tags(tags) -> bytes:
    """The tag block: count byte, then each tag in :data:`TAG_BITS` bits, MSB first, zero-padded."""
    tags = [int(t) for t in tags]
    if len(tags) > MAX_TAGS:
        raise ValueError(f"{len(tags)} tags; a .vlic file holds at most {MAX_TAGS}")
    if any(not 0 <= t < TAG_CLASSES for t in tags):
        raise ValueError(f"tags {tags} outside the {TAG_CLASSES} classes 0…{TAG_CLASSES - 1}")
    acc = 0
    for t in tags:
        acc = (acc << TAG_BITS) | t
    nbytes = tag_block_bytes(len(tags)) - 1
    acc <<= 8 * nbytes - TAG_BITS * len(tags)
    return bytes([len(tags)]) + acc.to_bytes(nbytes, "big")


def unpack_tags(block: bytes) -> tuple[int, ...]:
    """Inverse of :func:`pack_tags` (the block must be exactly its length; padding bits must be zero)."""
    n = block[0]
    nbytes = tag_block_bytes(n) - 1
    if len(block) != nbytes + 1:
        raise ValueError(f"tag block of {len(block)} bytes for {n} tags (expected {nbytes + 1})")
    acc = int.from_bytes(block[1:], "big")
    pad = 8 * nbytes - TAG_BITS * n
    if acc & ((1 << pad) - 1):
        raise ValueError("tag block padding bits are not zero")
    acc >>= pad
    return tuple((acc >> (TAG_BITS * (n - 1 - k))) & ((1 << TAG_BITS) - 1) for k in range(n))


class ContainerError(ValueError):
    """A .vlic file is empty, foreign, truncated, corrupted or of an unknown version (one-line message)."""


def content_crc(fingerprint: bytes, width: int, height: int, mode: str, downsample: int, prior_block: int, tile: int,
                overlap: int, tokens: np.ndarray) -> int:
    """CRC-32 of the layout fields and the tokens (C, h, w) as little-endian uint16, channel-major."""
    m = MODES.index(mode) if mode in MODES else MODES.index("other")
    head = _CONTENT.pack(fingerprint, width, height, m, downsample, prior_block, tile, overlap)
    t = np.ascontiguousarray(np.asarray(tokens), dtype="<u2")
    return zlib.crc32(t.tobytes(), zlib.crc32(head))


@dataclass(frozen=True)
class Container:
    fingerprint: bytes
    width: int
    height: int
    mode: str
    downsample: int
    prior_block: int
    tile: int
    overlap: int
    payload: bytes
    tokens_crc: int = 0
    version: int = VERSION
    tags: tuple[int, ...] | None = None   # None: an untagged (version 2) file

    def __post_init__(self) -> None:
        if self.tags is not None:
            pack_tags(self.tags)   # validates count and range
            object.__setattr__(self, "tags", tuple(int(t) for t in self.tags))
            object.__setattr__(self, "version", VERSION_TAGS)
        elif self.version == VERSION_TAGS:
            object.__setattr__(self, "tags", ())
        if len(self.fingerprint) != 8:
            raise ValueError(f"fingerprint must be 8 bytes, got {len(self.fingerprint)}")
        if not (1 <= self.width <= 65535 and 1 <= self.height <= 65535):
            raise ValueError(f"image size {self.width}×{self.height} outside 1…65535")
        if len(self.payload) % 4:
            raise ValueError(f"payload must be whole 32-bit words, got {len(self.payload)} bytes")

    @property
    def latent_shape(self) -> tuple[int, int]:
        return math.ceil(self.height / self.downsample), math.ceil(self.width / self.downsample)

    def content_crc(self, tokens: np.ndarray) -> int:
        """The content CRC these header fields and ``tokens`` (C, h, w) give (compare with :attr:`tokens_crc`)."""
        return content_crc(self.fingerprint, self.width, self.height, self.mode, self.downsample, self.prior_block,
                           self.tile, self.overlap, tokens)

    @property
    def tag_bytes(self) -> int:
        """Bytes of the tag block (0 in an untagged file)."""
        return 0 if self.tags is None else tag_block_bytes(len(self.tags))

    @property
    def tag_bits(self) -> int:
        """Bits the tags cost as coded: 8 (count) + 10 per tag; :attr:`tag_bytes` adds the byte padding."""
        return 0 if self.tags is None else 8 + TAG_BITS * len(self.tags)

    def to_bytes(self) -> bytes:
        mode = MODES.index(self.mode) if self.mode in MODES else MODES.index("other")
        head = _HEADER.pack(MAGIC, self.version, self.fingerprint, self.width, self.height, mode, self.downsample,
                            self.prior_block, self.tile, self.overlap, self.tokens_crc, len(self.payload))
        body = head + (b"" if self.tags is None else pack_tags(self.tags)) + self.payload
        return body + struct.pack(">I", zlib.crc32(body))

    def words(self) -> np.ndarray:
        return np.frombuffer(self.payload, dtype="<u4").astype(np.uint32)


def parse(data: bytes, name: str = "<bytes>") -> Container:
    """Bytes of a .vlic file → :class:`Container`, or :class:`ContainerError` naming ``name`` and the problem."""
    where = f"'{name}'"
    if len(data) == 0:
        raise ContainerError(f"{where} is empty (0 bytes), expected a .vlic file")
    if data[:4] != MAGIC[: len(data[:4])]:
        raise ContainerError(f"{where} is not a .vlic file (starts with {data[:4]!r}, expected {MAGIC!r})")
    if len(data) >= 5 and data[4] not in READS:
        raise ContainerError(f"{where} has format version {data[4]}; this vlic reads versions "
                             f"{', '.join(map(str, READS))}"
                             + (" (re-compress the image with this vlic)" if data[4] < VERSION else ""))
    if len(data) < OVERHEAD_BYTES + (data[4] == VERSION_TAGS if len(data) >= 5 else 0):
        raise ContainerError(f"{where} is truncated: {len(data)} bytes, shorter than the {OVERHEAD_BYTES}-byte header")
    magic, version, fp, width, height, mode, down, block, tile, overlap, tcrc, n = _HEADER.unpack_from(data)
    n_tags = data[HEADER_BYTES] if version == VERSION_TAGS else None
    tag_len = 0 if n_tags is None else tag_block_bytes(n_tags)
    expected = HEADER_BYTES + tag_len + n + TRAILER_BYTES
    if len(data) < expected:
        raise ContainerError(f"{where} is truncated: header says {expected} bytes, found {len(data)}")
    if len(data) > expected:
        raise ContainerError(f"{where} has {len(data) - expected} trailing bytes after the {expected} the header announces")
    (crc,) = struct.unpack_from(">I", data, expected - TRAILER_BYTES)
    if zlib.crc32(data[: expected - TRAILER_BYTES]) != crc:
        raise ContainerError(f"{where} is corrupted: CRC-32 mismatch")
    problems = []
    if not (1 <= width and 1 <= height):
        problems.append(f"image size {width}×{height}")
    if mode >= len(MODES):
        problems.append(f"source mode {mode}")
    if down < 1 or down & (down - 1):
        problems.append(f"downsample {down}")
    if block < 1 or tile < 1 or overlap >= tile:
        problems.append(f"layout block={block} tile={tile} overlap={overlap}")
    if n_tags is not None and n_tags > MAX_TAGS:
        problems.append(f"{n_tags} tags (at most {MAX_TAGS})")
    if n == 0:
        problems.append("empty payload (every image codes at least one token)")
    elif n % 4 or n > MAX_PAYLOAD:
        problems.append(f"payload length {n}")
    tags = None
    if n_tags is not None and not problems:
        try:
            tags = unpack_tags(bytes(data[HEADER_BYTES : HEADER_BYTES + tag_len]))
            if any(t >= TAG_CLASSES for t in tags):
                problems.append(f"tags {[t for t in tags if t >= TAG_CLASSES]} beyond the {TAG_CLASSES} classes")
        except ValueError as e:
            problems.append(str(e))
    if problems:
        raise ContainerError(f"{where} has an invalid header ({', '.join(problems)})")
    start = HEADER_BYTES + tag_len
    return Container(fp, width, height, MODES[mode], down, block, tile, overlap,
                     bytes(data[start : start + n]), tcrc, version, tags)


# --- range coding -------------------------------------------------------------------------------------------------

_FAMILY = None


def _family():
    global _FAMILY
    if _FAMILY is None:
        import constriction

        _FAMILY = constriction.stream.model.Categorical(perfect=False)
    return _FAMILY


def quantize_probs(probs: np.ndarray, bits: int = PROB_BITS) -> np.ndarray:
    """Probability rows (m, L), any float dtype, not necessarily normalized → integer counts (m, L), int64.

    Every count is ≥ 1 and each row sums to exactly ``2**bits``: count = 1 + round(p · (2**bits − L)), and the
    rounding remainder (|·| ≤ L/2) goes to the row's largest count (lowest index on ties). Pure integer arithmetic
    after one rounding, so two machines whose probabilities agree to ~1e-15 agree on the counts unless a value sits
    within that distance of a rounding boundary.
    """
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] < 1:
        raise ValueError(f"expected probability rows (m, L), got shape {p.shape}")
    if not np.all(np.isfinite(p)) or np.any(p < 0):
        raise ValueError("probabilities must be finite and non-negative")
    total = 1 << bits
    L = p.shape[1]
    if L > total // 2:
        raise ValueError(f"{L} symbols do not fit {bits}-bit probabilities")
    s = p.sum(axis=1, keepdims=True)
    p = np.where(s > 0, p / np.where(s > 0, s, 1), 1.0 / L)
    counts = np.floor(p * (total - L) + 0.5).astype(np.int64) + 1
    top = np.argmax(counts, axis=1)  # first index of the largest count
    counts[np.arange(len(counts)), top] += total - counts.sum(axis=1)
    return counts


def coding_probs(probs: np.ndarray) -> np.ndarray:
    """What the range coder is really given: :func:`quantize_probs` counts / 2**PROB_BITS (exact float64)."""
    return quantize_probs(probs) / float(1 << PROB_BITS)


class RangeCoder:
    """Collects (symbols, probability rows) in coding order and range-codes them with constriction.

    Both sides quantize the rows with :func:`quantize_probs` first, so the coder's model is a function of integers.
    """

    def __init__(self, words: np.ndarray | None = None):
        import constriction

        if words is None:
            self._encoder = constriction.stream.queue.RangeEncoder()
            self._decoder = None
        else:
            self._encoder = None
            self._decoder = constriction.stream.queue.RangeDecoder(np.ascontiguousarray(words, dtype=np.uint32))
        self.ideal_bits = 0.0

    def encode(self, symbols: np.ndarray, probs: np.ndarray) -> None:
        symbols = np.ascontiguousarray(symbols, dtype=np.int32)
        q = coding_probs(probs)
        self.ideal_bits += float(-np.log2(q[np.arange(len(symbols)), symbols]).sum())
        self._encoder.encode(symbols, _family(), q)

    def decode(self, probs: np.ndarray) -> np.ndarray:
        return np.asarray(self._decoder.decode(_family(), coding_probs(probs)), dtype=np.int64)

    def exhausted(self) -> bool:
        """False when the decoder has definitely not consumed every word of the payload (extra data after the end)."""
        return bool(self._decoder.maybe_exhausted())

    def words(self) -> np.ndarray:
        return np.asarray(self._encoder.get_compressed(), dtype=np.uint32)


def words_to_bytes(words: np.ndarray) -> bytes:
    return np.asarray(words, dtype="<u4").tobytes()


class CodedFile:
    """What every coded file reports — the learned codec's ``.vlic`` and the Pillow baselines' files alike: its size in
    bytes and bits per pixel (of the ``width`` × ``height`` image its ``data`` holds)."""

    data: bytes
    width: int
    height: int

    @property
    def bytes(self) -> int:
        return len(self.data)

    @property
    def bpp(self) -> float:
        return 8 * len(self.data) / (self.width * self.height)
