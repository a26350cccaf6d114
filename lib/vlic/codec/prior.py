"""The entropy model: a small causal transformer over the FSQ token sequence.

The latent grid (C channels × h × w positions) is cut into blocks of ``block × block`` positions; each block is one
sequence in raster order, coded independently (so cost stays bounded for any image size and all blocks of an image are
processed as one batch). For position n the transformer sees positions < n and predicts the C channels of position n
one after another: channel j's head also sees the embeddings of channels < j of the same position, so the model is
fully autoregressive at no extra transformer pass.

:func:`walk` is the one procedure that produces the probabilities, used identically by the range encoder (tokens
known) and decoder (tokens decoded as it goes): both run the same tensor shapes in float64. That makes the two sides
agree bit for bit on one machine with one numerical set-up, but *not* across instruction sets, BLAS builds or thread
counts (the last bits of ≈ 98 % of rows differ, up to ~1e-15). Bit-identical coding therefore does not rest on this
module: :func:`vlic.codec.bitstream.quantize_probs` turns the rows into integer counts before they reach the coder,
and the container's content CRC detects the rare row that still rounds differently.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F


class CausalLayer(nn.Module):
    """Pre-norm transformer layer; ``step`` processes one new position of every sequence against a key/value cache."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def _split(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        B, N, D = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(B, N, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
        return q, k, v

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, D = x.shape
        q, k, v = self._split(x)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(B, N, D)
        x = x + self.proj(a)
        return x + self.mlp(self.norm2(x))

    def step(self, x: torch.Tensor, cache: dict, n: int) -> torch.Tensor:
        """x (B, 1, D): position n of every sequence; ``cache`` holds keys/values of positions < n (filled here)."""
        B, _, D = x.shape
        q, k, v = self._split(x)
        if "k" not in cache:
            cache["k"] = x.new_zeros(B, self.heads, cache["length"], D // self.heads)
            cache["v"] = torch.zeros_like(cache["k"])
        cache["k"][:, :, n] = k[:, :, 0]
        cache["v"][:, :, n] = v[:, :, 0]
        keys, values = cache["k"][:, :, : n + 1], cache["v"][:, :, : n + 1]
        att = torch.softmax((q @ keys.transpose(-1, -2)) / math.sqrt(D // self.heads), dim=-1)
        a = (att @ values).transpose(1, 2).reshape(B, 1, D)
        x = x + self.proj(a)
        return x + self.mlp(self.norm2(x))


class TokenPrior(nn.Module):
    def __init__(self, levels: tuple[int, ...], dim: int = 64, layers: int = 2, heads: int = 4, block: int = 16):
        super().__init__()
        self.levels = tuple(int(L) for L in levels)
        self.block = int(block)
        self.embed = nn.ModuleList(nn.Embedding(L, dim) for L in self.levels)  # previous position's channels
        self.within = nn.ModuleList(nn.Embedding(L, dim) for L in self.levels[:-1])  # current position, channels < j
        self.bos = nn.Parameter(torch.zeros(dim))
        self.row = nn.Embedding(block, dim)
        self.col = nn.Embedding(block, dim)
        self.layers = nn.ModuleList(CausalLayer(dim, heads) for _ in range(layers))
        self.norm = nn.LayerNorm(dim)
        self.heads = nn.ModuleList(nn.Linear(dim, L) for L in self.levels)

    def _inputs(self, seq: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        """Input at position n = embedding of position n − 1's symbols (BOS at n = 0) + position n's row/col."""
        B, N, C = seq.shape
        prev = sum(self.embed[j](seq[:, :-1, j]) for j in range(C))  # (B, N - 1, dim)
        return torch.cat([self.bos.expand(B, 1, -1), prev], dim=1) + self.row(rows) + self.col(cols)

    def context(self, seq: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        """Hidden state for each position n given positions < n. seq (B, N, C) int; rows/cols (B, N) → (B, N, dim)."""
        h = self._inputs(seq, rows, cols)
        for layer in self.layers:
            h = layer(h)
        return self.norm(h)

    def channel_logits(self, h: torch.Tensor, current: torch.Tensor, j: int) -> torch.Tensor:
        """Logits of channel j given hidden state h (..., dim) and the current position's channels < j (..., C)."""
        for k in range(j):
            h = h + self.within[k](current[..., k])
        return self.heads[j](h)

    def forward(self, seq: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> list[torch.Tensor]:
        """Per-channel logits (B, N, L_j) for every position (teacher forcing, for training)."""
        h = self.context(seq, rows, cols)
        return [self.channel_logits(h, seq, j) for j in range(len(self.levels))]

    def bits(self, seq: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, valid: torch.Tensor | None = None):
        """Total cross-entropy in bits of ``seq`` (positions where ``valid`` is True)."""
        total = 0.0
        for j, logits in enumerate(self(seq, rows, cols)):
            nll = F.cross_entropy(logits.flatten(0, 1), seq[..., j].flatten(), reduction="none")
            if valid is not None:
                nll = nll * valid.flatten()
            total = total + nll.sum()
        return total / math.log(2)


@dataclass(frozen=True)
class Blocks:
    """A latent grid cut into prior blocks: ``seq`` (B, N, C) padded with zeros, ``lengths`` (B,), positions."""

    seq: torch.Tensor
    rows: torch.Tensor
    cols: torch.Tensor
    lengths: torch.Tensor
    boxes: tuple[tuple[int, int, int, int], ...]  # (y, x, h, w) of each block in the latent grid

    @property
    def valid(self) -> torch.Tensor:
        n = self.seq.shape[1]
        return torch.arange(n).unsqueeze(0) < self.lengths.unsqueeze(1)


def to_blocks(codes: torch.Tensor, block: int) -> Blocks:
    """codes (C, h, w) → :class:`Blocks` in raster order of blocks, each block read in raster order."""
    C, h, w = codes.shape
    seqs, rows, cols, lengths, boxes = [], [], [], [], []
    n = block * block
    for y in range(0, h, block):
        for x in range(0, w, block):
            bh, bw = min(block, h - y), min(block, w - x)
            s = codes[:, y : y + bh, x : x + bw].reshape(C, -1).T
            r, c = torch.meshgrid(torch.arange(bh), torch.arange(bw), indexing="ij")
            pad = n - bh * bw
            seqs.append(F.pad(s, (0, 0, 0, pad)))
            rows.append(F.pad(r.reshape(-1), (0, pad)))
            cols.append(F.pad(c.reshape(-1), (0, pad)))
            lengths.append(bh * bw)
            boxes.append((y, x, bh, bw))
    return Blocks(torch.stack(seqs), torch.stack(rows), torch.stack(cols), torch.tensor(lengths), tuple(boxes))


def from_blocks(blocks: Blocks, channels: int, h: int, w: int) -> torch.Tensor:
    codes = torch.zeros(channels, h, w, dtype=torch.int64)
    for b, (y, x, bh, bw) in enumerate(blocks.boxes):
        codes[:, y : y + bh, x : x + bw] = blocks.seq[b, : bh * bw].T.reshape(channels, bh, bw)
    return codes


def empty_blocks(channels: int, h: int, w: int, block: int) -> Blocks:
    """The block layout of an h × w grid with all codes zero (the decoder fills them in)."""
    return to_blocks(torch.zeros(channels, h, w, dtype=torch.int64), block)


@torch.no_grad()
def walk(prior: TokenPrior, blocks: Blocks, emit: Callable[[int, int, np.ndarray, np.ndarray], np.ndarray | None]) -> Blocks:
    """Visit every (position n, channel j) in coding order with its probabilities, batched over blocks.

    ``emit(n, j, active, probs)`` gets the indices of the blocks that have a position n and their probability rows
    (float64, shape (len(active), L_j)); it returns the symbols to use (the decoder) or None (the encoder, whose
    symbols are already in ``blocks.seq``). Returns the blocks with decoded symbols filled in. Pass a float64 copy of
    the prior for coding (see :class:`vlic.codec.image_codec.ImageCodec`).
    """
    prior.eval()
    seq = blocks.seq.clone()
    lengths = blocks.lengths
    B, N, C = seq.shape
    caches = [{"length": N} for _ in prior.layers]
    # Every step runs all B blocks (finished short blocks just carry zeros): the same tensor shapes on both sides.
    for n in range(int(lengths.max())):
        active = torch.nonzero(lengths > n).flatten()
        a = active.numpy()
        if n == 0:
            x = prior.bos.expand(B, 1, -1)
        else:
            x = sum(prior.embed[j](seq[:, n - 1 : n, j]) for j in range(C))
        x = x + prior.row(blocks.rows[:, n : n + 1]) + prior.col(blocks.cols[:, n : n + 1])
        for layer, cache in zip(prior.layers, caches):
            x = layer.step(x, cache, n)
        h = prior.norm(x)[:, 0]
        for j in range(len(prior.levels)):
            probs = torch.softmax(prior.channel_logits(h, seq[:, n], j), dim=-1).numpy()
            out = emit(n, j, a, probs[a])
            if out is not None:
                seq[active, n, j] = torch.as_tensor(np.asarray(out), dtype=torch.int64)
    return Blocks(seq, blocks.rows, blocks.cols, blocks.lengths, blocks.boxes)
