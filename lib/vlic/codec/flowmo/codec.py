"""FlowMo as a codec of the compendium: pixels ⇄ ``.vlic`` bytes with a FlowMo model (VLIC's inference).

compress: RGB uint8 → [-1, 1] → pad by edge replication to at least one tile a side → cut into ``image_size``-pixel
tiles (256 for the released models) overlapping by at least ``overlap`` pixels (:func:`vlic.codec.tiling.tile_starts`,
so any H × W, portrait or landscape, is covered) → FlowMo's encoder and LFQ: ``code_length × context_dim`` bits per
tile → the token prior over each tile's tokens (one prior block per tile: the tokens in FlowMo's order laid out
√code_length × √code_length, each token's ``context_dim`` bits coded channel after channel) → ``constriction`` range
coding → the ``.vlic`` container (:mod:`vlic.codec.bitstream`: the model fingerprint, W × H, tile and overlap).

decompress: container → the same tile layout from (W, H, tile, overlap) → range decoding → per-tile decoder
conditions → FlowMo's sampler (:func:`vlic.codec.flowmo.model.rf_sample`: steps, ``pow_p``/``linear`` schedule, CFG in its
interval) where every velocity evaluation is MultiDiffusion: each tile's velocity under its own code, blended with
weights ramping over the overlap margin, from one shared seeded noise image → crop → uint8.

Models: a released FlowMo ``.pth`` (``--model flowmo_lo.pth``; the architecture is read off the tensor shapes, or
from a ``<name>.json`` FlowMo config next to it) is coded with a *uniform* token prior — exactly one bit per bit,
256 × context_dim bits per tile; a ``vlic-flowmo/1`` safetensors checkpoint
(:func:`vlic.codec.flowmo.checkpoint.save_codec_checkpoint`) carries a token prior fitted to FlowMo's tokens
(:func:`fit_token_prior`), which codes below that. The model runs on the GPU when torch sees one; the token prior
always runs on the CPU in float64, so encoder and decoder sides compute the same probabilities.
"""

from __future__ import annotations

import copy
import math
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from vlic.codec import bitstream
from vlic.codec.bitstream import Container, RangeCoder
from vlic.codec.flowmo.model import FlowMo, FlowMoConfig, bits_to_code, decoder_condition, rf_sample
from vlic.codec.flowmo.checkpoint import (DEFAULT_PRIOR, FlowMoCheckpoint, build_token_prior, load_codec_checkpoint,
                                          token_side)
from vlic.codec.image_codec import Compressed, DecodeError
from vlic.images import DEFAULT_MAX_PIXELS, to_pixels, to_tensor  # the one pixel limit of compress and decompress
from vlic.codec.prior import TokenPrior, empty_blocks, from_blocks, to_blocks, walk
from vlic.codec.sampling import noise_like
from vlic.codec.tiling import _ramp, tile_starts


# --- tiles ---------------------------------------------------------------------------------------------------------

def tile_boxes(height: int, width: int, tile: int, overlap: int, align: int) -> list[tuple[int, int]]:
    """Top-left corners of the tiles covering a (padded) height × width canvas, in raster order."""
    return [(y, x) for y in tile_starts(height, tile, overlap, align) for x in tile_starts(width, tile, overlap, align)]


def canvas(height: int, width: int, tile: int) -> tuple[int, int]:
    """Images smaller than a tile are padded (edge replication) up to one tile."""
    return max(height, tile), max(width, tile)


def blended_velocity(model: FlowMo, boxes: list[tuple[int, int]], tile: int, overlap: int, batch: int = 8):
    """``velocity(x, conditions, t)`` over the whole canvas: tile i's velocity under its condition ``conditions[i]``,
    blended with weights ramping linearly over the overlap margin (MultiDiffusion)."""
    def velocity(x: torch.Tensor, conditions: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        ramp = _ramp(tile, overlap, x.dtype, x.device)
        weight = ramp[:, None] * ramp[None, :]
        out, norm = torch.zeros_like(x), torch.zeros_like(x[:, :1])
        for k in range(0, len(boxes), batch):
            chunk = boxes[k : k + batch]
            xs = torch.cat([x[:, :, y : y + tile, xx : xx + tile] for y, xx in chunk])
            v = model.velocity(xs, conditions[k : k + len(chunk)], t[:1].expand(len(chunk)))
            for i, (y, xx) in enumerate(chunk):
                out[:, :, y : y + tile, xx : xx + tile] += v[i : i + 1] * weight
                norm[:, :, y : y + tile, xx : xx + tile] += weight
        return out / norm
    return velocity


# --- the codec -----------------------------------------------------------------------------------------------------

class FlowMoCodec:
    """The :class:`vlic.codec.image_codec.ImageCodec` interface (``compress`` → :class:`Compressed`, ``decompress``
    → uint8 pixels) for a FlowMo model."""

    def __init__(self, checkpoint: FlowMoCheckpoint, batch: int = 8, device: str | torch.device = "auto"):
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self.checkpoint = checkpoint
        self.model = checkpoint.model.eval().to(self.device)  # the token prior stays on the CPU, in float64
        self.prior64 = copy.deepcopy(checkpoint.prior).double().eval()
        self.fingerprint = bytes.fromhex(checkpoint.fingerprint)
        self.batch = batch
        self.side = token_side(self.config)
        ds = self.config.image_size // self.side
        if ds * self.side != self.config.image_size or ds & (ds - 1):
            raise ValueError(f"the .vlic container needs image_size / √code_length to be a power of two, got "
                             f"{self.config.image_size} / {self.side}")

    @classmethod
    def from_file(cls, path: str | Path, config: FlowMoConfig | None = None, device: str = "auto") -> "FlowMoCodec":
        return cls(load_codec_checkpoint(path, config), device=device)

    @property
    def config(self) -> FlowMoConfig:
        return self.model.config

    @property
    def downsample(self) -> int:
        """Pixels per token side: a tile of ``image_size``² pixels holds side² tokens (16 for the released models)."""
        return self.config.image_size // self.side

    @property
    def default_steps(self) -> int:
        return self.config.sample_steps

    @property
    def default_cfg(self) -> float:
        return self.config.cfg

    def _layout(self, height: int, width: int, tile: int, overlap: int):
        ch, cw = canvas(height, width, tile)
        return ch, cw, tile_boxes(ch, cw, tile, overlap, self.config.patch_size)

    def _check_layout(self, tile: int, overlap: int) -> None:
        p = self.config.patch_size
        if tile != self.config.image_size:
            raise ValueError(f"FlowMo codes {self.config.image_size}-pixel tiles; tile {tile} is not supported")
        if not (0 <= overlap < tile) or overlap % p:
            raise ValueError(f"overlap {overlap} must be a multiple of {p} in [0, {tile})")

    @torch.no_grad()
    def encode_bits(self, pixels: np.ndarray, tile: int | None = None, overlap: int = 8) -> tuple[torch.Tensor, list]:
        """(tiles, code_length, context_dim) bits of an image and the tile corners."""
        tile = tile or self.config.image_size
        self._check_layout(tile, overlap)
        H, W = pixels.shape[:2]
        ch, cw, boxes = self._layout(H, W, tile, overlap)
        x = to_tensor(pixels)
        x = F.pad(x, (0, cw - W, 0, ch - H), mode="replicate") if (ch, cw) != (H, W) else x
        bits = []
        for k in range(0, len(boxes), self.batch):
            crops = torch.cat([x[:, :, y : y + tile, xx : xx + tile] for y, xx in boxes[k : k + self.batch]])
            bits.append(self.model.quantize(self.model.encode(crops.to(self.device)))[1].cpu())
        return torch.cat(bits), boxes

    def _grid(self, n_rows: int, n_cols: int) -> tuple[int, int]:
        return n_rows * self.side, n_cols * self.side

    def bits_to_grid(self, bits: torch.Tensor, n_rows: int, n_cols: int) -> torch.Tensor:
        """(tiles, L, C) → (C, rows·side, cols·side): tile i is prior block i, its tokens in raster order."""
        n, L, C = bits.shape
        s = self.side
        g = bits.reshape(n_rows, n_cols, s, s, C).permute(4, 0, 2, 1, 3)
        return g.reshape(C, n_rows * s, n_cols * s)

    def grid_to_bits(self, grid: torch.Tensor, n_rows: int, n_cols: int) -> torch.Tensor:
        C = grid.shape[0]
        s = self.side
        g = grid.reshape(C, n_rows, s, n_cols, s).permute(1, 3, 2, 4, 0)
        return g.reshape(n_rows * n_cols, s * s, C)

    @torch.no_grad()
    def compress(self, pixels: np.ndarray, mode: str = "RGB", tile: int | None = None, overlap: int = 8,
                 max_pixels: int | None = DEFAULT_MAX_PIXELS, tags=None) -> Compressed:
        """``tags``: as :meth:`vlic.codec.image_codec.ImageCodec.compress` — coded in the file for its consumers (a
        machine task, ``vlic info``); FlowMo's decoder has no tag conditioning, so decoding does not use them."""
        t0 = time.perf_counter()
        if tags is not None:
            bitstream.pack_tags(tags)   # refuse bad tags before the encode
        H, W = pixels.shape[:2]
        if H > 65535 or W > 65535:
            raise ValueError(f"image {W}×{H} is larger than the .vlic limit of 65535 pixels a side")
        if max_pixels and H * W > max_pixels:
            raise ValueError(f"image {W}×{H} has more than {max_pixels:,} pixels (raise the limit with --max-pixels)")
        tile = tile or self.config.image_size
        bits, boxes = self.encode_bits(pixels, tile, overlap)
        ch, cw = canvas(H, W, tile)
        n_rows, n_cols = len(tile_starts(ch, tile, overlap, self.config.patch_size)), len(tile_starts(cw, tile, overlap, self.config.patch_size))
        grid = self.bits_to_grid(bits, n_rows, n_cols)
        blocks = to_blocks(grid, self.side)
        coder = RangeCoder()
        symbols = blocks.seq.numpy()
        walk(self.prior64, blocks, lambda n, j, active, probs: coder.encode(symbols[active, n, j], probs))
        crc = bitstream.content_crc(self.fingerprint, W, H, mode, self.downsample, self.side, tile, overlap,
                                    grid.numpy())  # a wrong decode is caught, not drawn (as vlic.codec.image_codec)
        c = Container(self.fingerprint, W, H, mode, self.downsample, self.side, tile, overlap,
                      bitstream.words_to_bytes(coder.words()), tokens_crc=crc, tags=None if tags is None else tuple(tags))
        return Compressed(c.to_bytes(), W, H, coder.ideal_bits, time.perf_counter() - t0, int(bits.numel()), c.tags)

    def check(self, c: Container, name: str = "<bytes>", max_pixels: int | None = DEFAULT_MAX_PIXELS) -> None:
        if c.fingerprint != self.fingerprint:
            raise DecodeError(f"'{name}' was made by model {c.fingerprint.hex()}, not by this FlowMo model "
                              f"{self.fingerprint.hex()} ({self.checkpoint.path}); pass the matching --model")
        if (c.downsample, c.prior_block, c.tile) != (self.downsample, self.side, self.config.image_size) or \
                c.overlap % self.config.patch_size:
            raise DecodeError(f"'{name}' has layout downsample={c.downsample}, block={c.prior_block}, tile={c.tile}, "
                              f"overlap={c.overlap}; this FlowMo expects {self.downsample}, {self.side}, "
                              f"{self.config.image_size} and an overlap multiple of {self.config.patch_size}")
        if max_pixels and c.width * c.height > max_pixels:
            raise DecodeError(f"'{name}' claims {c.width}×{c.height} pixels, more than the limit of {max_pixels:,} "
                              "(raise it with --max-pixels)")

    @torch.no_grad()
    def decode_bits(self, c: Container, name: str = "<bytes>",
                    max_pixels: int | None = DEFAULT_MAX_PIXELS) -> tuple[torch.Tensor, list]:
        self.check(c, name, max_pixels)
        ch, cw = canvas(c.height, c.width, c.tile)
        rows, cols = tile_starts(ch, c.tile, c.overlap, self.config.patch_size), tile_starts(cw, c.tile, c.overlap, self.config.patch_size)
        gh, gw = self._grid(len(rows), len(cols))
        coder = RangeCoder(c.words())
        try:
            blocks = walk(self.prior64, empty_blocks(self.config.context_dim, gh, gw, self.side),
                          lambda n, j, a, probs: coder.decode(probs))
        except (ValueError, RuntimeError, AssertionError) as e:
            raise DecodeError(f"'{name}': the payload cannot be range-decoded ({e})") from None
        grid = from_blocks(blocks, self.config.context_dim, gh, gw)
        if c.content_crc(grid.numpy()) != c.tokens_crc:
            raise DecodeError(f"'{name}': the decoded tokens do not match the file's content checksum (a forged or "
                              "damaged file, or a decoder whose probabilities differ from the encoder's)")
        return self.grid_to_bits(grid, len(rows), len(cols)), [(y, x) for y in rows for x in cols]

    def decode_codes(self, c: Container, name: str = "<bytes>", max_pixels: int | None = DEFAULT_MAX_PIXELS,
                     **_ignored) -> torch.Tensor:
        """The file's tokens, (tiles, code_length, context_dim) bits, range-decoded and checked."""
        return self.decode_bits(c, name, max_pixels)[0]

    @torch.no_grad()
    def tokens(self, pixels: np.ndarray) -> np.ndarray:
        """What this encoder codes for an image, one row per token position (tiles × code_length, context_dim)."""
        bits = self.encode_bits(pixels)[0]
        return bits.reshape(-1, bits.shape[-1]).numpy()

    @torch.no_grad()
    def decode_condition(self, data: bytes | Container, name: str = "<bytes>",
                         max_pixels: int | None = DEFAULT_MAX_PIXELS, tile: int | None | str = "file"
                         ) -> tuple[Container, torch.Tensor, None]:
        """Entropy-decode a file: (container, per-tile decoder conditions, None — FlowMo has no mean head)."""
        c = data if isinstance(data, Container) else bitstream.parse(data, name)
        if tile is None:
            raise DecodeError(f"'{name}': FlowMo decodes tile by tile (each tile has its own tokens); "
                              f"an untiled decode does not exist")
        return c, decoder_condition(bits_to_code(self.decode_codes(c, name, max_pixels))), None

    @torch.no_grad()
    def sample(self, c: Container, conditions: torch.Tensor, mean: None = None, steps: int | None = None,
               seed: int = 0, overlap: int | None = None, cfg_scale: float | None = None, **_ignored) -> np.ndarray:
        """FlowMo's sampler over the file's tiles (MultiDiffusion) from decoded conditions → uint8 pixels."""
        return render_tiles(self.model, conditions, c.height, c.width, c.tile, c.overlap, steps, seed, cfg_scale,
                            self.batch, blend=overlap)

    @staticmethod
    def mean_pixels(c: Container, mean: None) -> None:
        return None  # FlowMo has no deterministic mean head

    def decompress(self, data: bytes | Container, steps: int | None = None, seed: int = 0, tile: int | None | str = "file",
                   overlap: int | None = None, cfg_scale: float | None = None, name: str = "<bytes>",
                   progress: bool = False, max_pixels: int | None = DEFAULT_MAX_PIXELS, **_ignored) -> np.ndarray:
        """Decode to uint8 pixels. ``steps``/``cfg_scale`` default to the config's ``eval.sampling`` (25, 1.5 for the
        released models); the schedule and CFG interval are the config's. ``tile`` must be the file's layout."""
        c, conditions, _ = self.decode_condition(data, name, max_pixels, tile)
        return self.sample(c, conditions, None, steps, seed, overlap, cfg_scale)


@torch.no_grad()
def render_tiles(model: FlowMo, conditions: torch.Tensor, height: int, width: int, tile: int, overlap: int,
                 steps: int | None = None, seed: int = 0, cfg_scale: float | None = None, batch: int = 8,
                 blend: int | None = None) -> np.ndarray:
    """A whole photo from its tiles' decoder conditions with ``model`` (the file's model or another FlowMo of the same
    configuration, e.g. a post-trained one): one shared seeded noise image, MultiDiffusion velocities → uint8.
    ``tile``/``overlap``: the file's layout; ``blend``: the blending margin (default ``overlap``)."""
    cfg = model.config
    device = next(model.parameters()).device
    ch, cw = canvas(height, width, tile)
    boxes = tile_boxes(ch, cw, tile, overlap, cfg.patch_size)
    if len(boxes) != conditions.shape[0]:
        raise DecodeError(f"{conditions.shape[0]} tile codes for a {width}×{height} layout of {len(boxes)} tiles")
    z = noise_like(torch.zeros(1, 3, ch, cw), seed).to(device)  # drawn on the CPU: same noise on any device
    velocity = blended_velocity(model, boxes, tile, overlap if blend is None else blend, batch)
    x = rf_sample(velocity, z, conditions.to(device), steps or cfg.sample_steps,
                  cfg.schedule, cfg.cfg if cfg_scale is None else cfg_scale, cfg.cfg_interval)
    return to_pixels(x[0, :, :height, :width])


# --- fitting the token prior ---------------------------------------------------------------------------------------

def fit_token_prior(codec: FlowMoCodec, images: list[np.ndarray], steps: int = 200, lr: float = 3e-3, batch: int = 8,
                    seed: int = 0, dims: dict | None = None) -> tuple[TokenPrior, list[dict]]:
    """Fit the project's token prior to the FlowMo tokens of every tile of ``images`` (cross-entropy, AdamW,
    cosine decay). Returns the prior and a curve of bits per token bit (1.0 = the uniform prior)."""
    dims = dims or DEFAULT_PRIOR
    torch.manual_seed(seed)
    bits = torch.cat([codec.encode_bits(im)[0] for im in images])
    seqs = to_blocks(codec.bits_to_grid(bits, len(bits), 1), codec.side)
    prior = build_token_prior(codec.config, **dims)
    opt = torch.optim.AdamW(prior.parameters(), lr=lr, weight_decay=0.0)
    gen = torch.Generator().manual_seed(seed)
    curve = []
    n_bits = codec.config.code_length * codec.config.context_dim
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / max(1, steps))))
        idx = torch.randint(0, len(bits), (min(batch, len(bits)),), generator=gen)
        total = prior.bits(seqs.seq[idx], seqs.rows[idx], seqs.cols[idx])
        loss = total / (len(idx) * n_bits)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(prior.parameters(), 1.0)
        opt.step()
        curve.append({"step": step, "bits_per_bit": round(loss.item(), 5)})
    return prior.eval(), curve
