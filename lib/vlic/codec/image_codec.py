"""Whole-image compression with a trained codec: pixels ⇄ ``.vlic`` bytes (the CompressAI ``compress``/``decompress``
contract: ``compress`` returns the bytes and what they cost, ``decompress`` takes the bytes back to pixels).

compress: RGB uint8 → [-1, 1] → pad to a multiple of ``downsample`` (edge replication) → encoder → FSQ codes →
prior blocks → range coding → container. decompress: container → range decoding (the prior walks the same blocks)
→ codes → content CRC checked → features and mean → seeded Euler sampling, MultiDiffusion-tiled → crop → uint8.

Limits, the same for both directions: at most ``max_pixels`` pixels (default :data:`DEFAULT_MAX_PIXELS`, Pillow's
decompression-bomb threshold; ``None`` or 0 lifts it), a decoder tile that is a multiple of the model's downsample and
at least its training tile, an overlap that is a positive multiple of the patch and under half the tile, and a
memory estimate (:func:`estimate_memory`) below the memory available (:func:`available_memory`: the smallest of
``MemAvailable``, what ``RLIMIT_AS`` leaves and what the memory cgroup leaves) — all checked before anything large is
allocated. Should the allocator fail all the same, that is the same one-line error (:class:`LimitError` to encode,
:class:`DecodeError` to decode), never a traceback.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from vlic.codec import bitstream
from vlic.codec.bitstream import Container, RangeCoder
from vlic.codec.checkpoint import Checkpoint, load
from vlic.codec.prior import empty_blocks, from_blocks, to_blocks, walk
from vlic.codec.sampling import sample
from vlic.images import DEFAULT_MAX_PIXELS, to_pixels, to_tensor  # one pixel limit for reading, encoding, decoding


# Peak resident bytes per pixel, measured on the laptop profile's high-rate codec (encoder width 64, flow widths
# 64/96) and scaled by the model's widths; see estimate_memory.
_BYTES_PER_PIXEL_WHOLE = 90.0  # encoder / latent decoder on the whole padded image (measured 85 B/px to encode)
_BYTES_PER_PIXEL_FLOW = 120.0  # the flow network on the pixels it sees at once (measured 240 B/px in all, untiled)
_TILE_BATCH = 64  # tiles per flow-network call (vlic.codec.tiling.tiled's default)


class DecodeError(ValueError):
    """A .vlic file cannot be decoded by this model (one-line message)."""


class LimitError(ValueError):
    """An image exceeds the pixel limit or the memory available (one-line message saying how to raise the limit)."""


def layout_problems(cfg, tile: int, overlap: int) -> list[str]:
    """What is wrong with decoder ``tile`` / ``overlap`` for a model of configuration ``cfg`` (empty list: fine)."""
    out = []
    if tile % cfg.downsample or not cfg.tile <= tile <= 65535:
        out.append(f"tile {tile} must be a multiple of {cfg.downsample} between the model's training tile "
                   f"{cfg.tile} and 65535")
    if overlap < 1 or overlap % cfg.patch or 2 * overlap >= tile:
        out.append(f"overlap {overlap} must be a positive multiple of {cfg.patch} below half the tile ({tile})")
    return out


def _meminfo_available() -> int | None:
    """The machine's ``MemAvailable`` (bytes), or None when unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _address_space_room() -> int | None:
    """What ``RLIMIT_AS`` (``ulimit -v``, batch systems) leaves this process: the soft limit minus the address space
    it already maps (``VmSize``); None without a limit."""
    import resource

    soft = resource.getrlimit(resource.RLIMIT_AS)[0]
    if soft == resource.RLIM_INFINITY:
        return None
    try:
        with open("/proc/self/status") as f:
            used = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
    except (OSError, ValueError, StopIteration):
        used = 0
    return max(0, soft - used)


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _cgroup_room(root: Path = Path("/sys/fs/cgroup")) -> int | None:
    """What this process's memory cgroup leaves: v2 ``memory.max − memory.current``, v1 ``memory.limit_in_bytes −
    memory.usage_in_bytes`` (under ``root``); None without a limit."""
    for limit_file, usage_file in ((root / "memory.max", root / "memory.current"),
                                   (root / "memory" / "memory.limit_in_bytes", root / "memory" / "memory.usage_in_bytes")):
        limit = _read_int(limit_file)  # "max" (v2) reads as None: no limit
        if limit is not None and limit < 2**60:  # v1 writes "no limit" as a number near 2**63
            return max(0, limit - (_read_int(usage_file) or 0))
    return None


def available_memory() -> int | None:
    """Bytes a new allocation can take: the smallest of the machine's ``MemAvailable``, what ``RLIMIT_AS`` leaves this
    process and what its memory cgroup leaves (each when known); None when none is known."""
    known = [m for m in (_meminfo_available(), _address_space_room(), _cgroup_room()) if m is not None]
    return min(known) if known else None


def out_of_memory(e: BaseException) -> bool:
    """Whether ``e`` is an allocator failure (``MemoryError``, torch's ``DefaultCPUAllocator`` / CUDA out of memory)."""
    if isinstance(e, MemoryError):
        return True
    text = str(e)
    return isinstance(e, RuntimeError) and any(s in text for s in ("DefaultCPUAllocator", "not enough memory",
                                                                   "can't allocate memory", "out of memory"))


def _oom_message(what: str, direction: str) -> str:
    free = available_memory()
    return (f"{what}: ran out of memory while {direction} (the estimate fitted, the allocator refused; "
            f"{'unknown' if free is None else f'{free / 2**30:.1f} GiB'} available now): free memory, raise the "
            f"limit (ulimit -v, the container's memory) or use a smaller image"
            + (" or decoder tile" if direction == "decoding" else ""))


def estimate_memory(cfg, width: int, height: int, tile: int | None, decode: bool) -> int:
    """Rough peak bytes to compress (``decode=False``) or decompress an image of ``width`` × ``height``."""
    d = cfg.downsample
    pixels = math.ceil(width / d) * d * math.ceil(height / d) * d
    scale_whole = max(cfg.encoder_width, cfg.cond_channels) / 64
    whole = _BYTES_PER_PIXEL_WHOLE * scale_whole * pixels
    if not decode:
        return int(whole + 2**27)
    seen = pixels if tile is None else min(pixels, _TILE_BATCH * tile * tile)
    flow = _BYTES_PER_PIXEL_FLOW * (sum(cfg.flow_widths) / 160) * seen
    return int(whole + flow + 2**27)


def check_limits(cfg, width: int, height: int, tile: int | None, decode: bool, max_pixels: int | None,
                 what: str) -> None:
    """:class:`LimitError` when ``what`` (a file or image name) is over the pixel limit or the memory available."""
    if max_pixels and width * height > max_pixels:
        raise LimitError(f"{what} has {width}×{height} = {width * height:,} pixels, more than the limit of "
                         f"{max_pixels:,} (raise it with --max-pixels N, or max_pixels=…; 0 = no limit)")
    need, free = estimate_memory(cfg, width, height, tile, decode), available_memory()
    if free is not None and need > free:
        raise LimitError(f"{what}: {'decoding' if decode else 'encoding'} {width}×{height} needs about "
                         f"{need / 2**30:.1f} GiB of memory, {free / 2**30:.1f} GiB are available"
                         + (" (a smaller decoder tile needs less)" if decode else ""))


@dataclass(frozen=True)
class Compressed(bitstream.CodedFile):
    data: bytes
    width: int
    height: int
    ideal_bits: float  # the prior's cross-entropy of the coded tokens, −Σ log2 p
    seconds: float
    n_tokens: int
    tags: tuple[int, ...] | None = None   # tags coded in the file (None: an untagged file)

    @property
    def tag_bytes(self) -> int:
        return 0 if self.tags is None else bitstream.tag_block_bytes(len(self.tags))

    @property
    def payload_bits(self) -> int:
        return 8 * (len(self.data) - bitstream.OVERHEAD_BYTES - self.tag_bytes)

    def stats(self) -> dict:
        return {"bytes": self.bytes, "bpp": round(self.bpp, 6), "ideal_bits": round(self.ideal_bits, 2),
                "payload_bits": self.payload_bits, "header_bytes": bitstream.OVERHEAD_BYTES,
                "bits_over_ideal": round(self.payload_bits / max(self.ideal_bits, 1e-9), 5),
                "seconds": round(self.seconds, 3), "width": self.width, "height": self.height, "tokens": self.n_tokens,
                **({} if self.tags is None else {"tags": list(self.tags), "tag_bytes": self.tag_bytes})}


def pad_to(x: torch.Tensor, multiple: int) -> torch.Tensor:
    H, W = x.shape[-2:]
    ph, pw = (-H) % multiple, (-W) % multiple
    return F.pad(x, (0, pw, 0, ph), mode="replicate") if ph or pw else x


class ImageCodec:
    def __init__(self, checkpoint: Checkpoint):
        self.checkpoint = checkpoint
        self.model = checkpoint.model.eval()
        self.prior64 = copy.deepcopy(checkpoint.prior).double().eval()
        self.fingerprint = bytes.fromhex(checkpoint.fingerprint)

    @classmethod
    def from_file(cls, path: str | Path) -> "ImageCodec":
        return cls(load(path))

    @property
    def config(self):
        return self.model.config

    @property
    def default_steps(self) -> int:
        """The decoder's default Euler steps (its configuration's ``sample_steps``; it starts at ``sample_start``)."""
        return self.config.sample_steps

    @torch.no_grad()
    def compress(self, pixels: np.ndarray, mode: str = "RGB", tile: int | None = None, overlap: int = 8,
                 max_pixels: int | None = DEFAULT_MAX_PIXELS, tags=None) -> Compressed:
        """``tags``: None for an untagged file, else ImageNet class indices coded in the file (format version 3;
        :mod:`vlic.perception.tags` computes them)."""
        t0 = time.perf_counter()
        if tags is not None:
            bitstream.pack_tags(tags)   # refuse bad tags before the encode
        cfg = self.config
        if not isinstance(pixels, np.ndarray) or pixels.ndim != 3 or pixels.shape[2] != 3 or pixels.dtype != np.uint8:
            raise ValueError(f"expected an (H, W, 3) uint8 RGB array, got {getattr(pixels, 'shape', '?')} "
                             f"{getattr(pixels, 'dtype', type(pixels).__name__)}")
        H, W = pixels.shape[:2]
        if not (1 <= H <= 65535 and 1 <= W <= 65535):
            raise ValueError(f"image {W}×{H} is outside the .vlic limit of 1…65535 pixels a side")
        tile = cfg.tile if tile is None else int(tile)
        overlap = int(overlap)
        problems = layout_problems(cfg, tile, overlap)
        if problems:
            raise ValueError("; ".join(problems))
        check_limits(cfg, W, H, tile, False, max_pixels, f"image {W}×{H}")
        try:
            codes = self.model.encode(pad_to(to_tensor(pixels), cfg.downsample))[0]
        except (MemoryError, RuntimeError) as e:
            if not out_of_memory(e):
                raise
            raise LimitError(_oom_message(f"image {W}×{H}", "encoding")) from None
        blocks = to_blocks(codes, cfg.prior_block)
        coder = RangeCoder()
        symbols = blocks.seq.numpy()

        def emit(n, j, active, probs):
            coder.encode(symbols[active, n, j], probs)

        walk(self.prior64, blocks, emit)
        crc = bitstream.content_crc(self.fingerprint, W, H, mode, cfg.downsample, cfg.prior_block, tile, overlap,
                                    codes.numpy())
        c = Container(self.fingerprint, W, H, mode, cfg.downsample, cfg.prior_block, tile, overlap,
                      bitstream.words_to_bytes(coder.words()), crc, tags=None if tags is None else tuple(tags))
        return Compressed(c.to_bytes(), W, H, coder.ideal_bits, time.perf_counter() - t0, int(codes.numel()), c.tags)

    def check(self, c: Container, name: str = "<bytes>", max_pixels: int | None = DEFAULT_MAX_PIXELS,
              tile: int | None | str = "file") -> None:
        """Every header field of ``c`` against this model's layout and the limits, before any decoding work."""
        cfg = self.config
        if c.fingerprint != self.fingerprint:
            raise DecodeError(f"'{name}' was made by model {c.fingerprint.hex()}, not by this model "
                              f"{self.fingerprint.hex()} ({self.checkpoint.path}); pass the matching --model")
        if c.downsample != cfg.downsample or c.prior_block != cfg.prior_block:
            raise DecodeError(f"'{name}' has layout downsample={c.downsample}, block={c.prior_block}; "
                              f"the model expects {cfg.downsample}, {cfg.prior_block}")
        problems = layout_problems(cfg, c.tile, c.overlap)
        if problems:
            raise DecodeError(f"'{name}' has an invalid decoder layout: {'; '.join(problems)}")
        h, w = c.latent_shape
        words = len(c.payload) // 4
        most = 1 + math.ceil(h * w * len(cfg.fsq_levels) * bitstream.PROB_BITS / 32) + 1
        # no token costs more than PROB_BITS bits, and none less than −log2 of the largest possible probability
        least = h * w * sum(-math.log2(1 - (L - 1) / 2**bitstream.PROB_BITS) for L in cfg.fsq_levels) / 32
        if words > most or words < math.floor(least):
            raise DecodeError(f"'{name}' has {words} payload words; the {h * w * len(cfg.fsq_levels)} tokens of a "
                              f"{c.width}×{c.height} image need {math.floor(least)} to {most}")
        try:
            check_limits(cfg, c.width, c.height, c.tile if tile == "file" else tile, True, max_pixels, f"'{name}'")
        except LimitError as e:
            raise DecodeError(str(e)) from None

    @torch.no_grad()
    def decode_codes(self, c: Container, name: str = "<bytes>", max_pixels: int | None = DEFAULT_MAX_PIXELS,
                     tile: int | None | str = "file") -> torch.Tensor:
        self.check(c, name, max_pixels, tile)
        h, w = c.latent_shape
        C = len(self.config.fsq_levels)
        coder = RangeCoder(c.words())
        try:
            blocks = walk(self.prior64, empty_blocks(C, h, w, c.prior_block), lambda n, j, a, probs: coder.decode(probs))
        except (ValueError, RuntimeError, AssertionError) as e:  # the payload ran out or is inconsistent
            raise DecodeError(f"'{name}': the payload cannot be range-decoded ({e})") from None
        if not coder.exhausted():
            raise DecodeError(f"'{name}': the payload goes on after the last of its {h * w * C} tokens "
                              f"(corrupted or forged file)")
        codes = from_blocks(blocks, C, h, w)
        if c.content_crc(codes.numpy()) != c.tokens_crc:
            raise DecodeError(f"'{name}': the decoded tokens do not match the file's content checksum (a forged or "
                              f"damaged file, or this machine computes different prior probabilities); "
                              f"nothing was written")
        return codes.unsqueeze(0)

    @torch.no_grad()
    def tokens(self, pixels: np.ndarray) -> np.ndarray:
        """What this encoder codes for an image, one row per latent position (positions, channels)."""
        codes = self.model.encode(pad_to(to_tensor(pixels), self.config.downsample))[0]
        return codes.reshape(codes.shape[0], -1).T.numpy()

    @torch.no_grad()
    def decode_condition(self, data: bytes | Container, name: str = "<bytes>",
                         max_pixels: int | None = DEFAULT_MAX_PIXELS, tile: int | None | str = "file"
                         ) -> tuple[Container, torch.Tensor, torch.Tensor]:
        """Entropy-decode a file and run the latent decoder: (container, features, mean μ) — everything but sampling."""
        c = data if isinstance(data, Container) else bitstream.parse(data, name)
        features, mean = self.model.condition_from_codes(self.decode_codes(c, name, max_pixels, tile))
        return c, features, mean

    @torch.no_grad()
    def sample(self, c: Container, features: torch.Tensor, mean: torch.Tensor, steps: int = 4, seed: int = 0,
               tile: int | None | str = "file", overlap: int | None = None, cfg_scale: float = 1.0, shift: float = 1.0,
               progress: bool = False, start: float | None = None) -> np.ndarray:
        """Seeded Euler sampling from decoded conditioning → uint8 pixels. ``tile="file"``: the container's layout;
        ``None``: the whole image in one pass. ``start``: the sampler's first time t₀ (None: the codec's default)."""
        x = sample(self.model, features, mean, steps=steps, seed=seed, cfg_scale=cfg_scale,
                   tile=c.tile if tile == "file" else tile, overlap=c.overlap if overlap is None else overlap,
                   shift=shift, progress=progress, start=start)
        return to_pixels(x[0, :, : c.height, : c.width])

    def decompress(self, data: bytes | Container, steps: int = 4, seed: int = 0, tile: int | None | str = "file",
                   overlap: int | None = None, cfg_scale: float = 1.0, shift: float = 1.0, name: str = "<bytes>",
                   progress: bool = False, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
        if not (math.isfinite(cfg_scale) and math.isfinite(shift) and shift > 0):
            raise DecodeError(f"guidance scale {cfg_scale} and shift {shift} must be finite (shift > 0)")
        try:
            c, features, mean = self.decode_condition(data, name, max_pixels, tile)
            return self.sample(c, features, mean, steps, seed, tile, overlap, cfg_scale, shift, progress)
        except (MemoryError, RuntimeError) as e:
            if not out_of_memory(e):
                raise
            raise DecodeError(_oom_message(f"'{name}'", "decoding")) from None

    @staticmethod
    def mean_pixels(c: Container, mean: torch.Tensor) -> np.ndarray:
        """The deterministic mean head's reconstruction μ (what the flow refines), as uint8 pixels."""
        return to_pixels(mean[0, :, : c.height, : c.width])

    def mean_reconstruction(self, data: bytes | Container, name: str = "<bytes>") -> np.ndarray:
        """The mean head's reconstruction μ of a file (range decoding + latent decoder, no sampling)."""
        c, _, mean = self.decode_condition(data, name)
        return self.mean_pixels(c, mean)
