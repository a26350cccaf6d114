"""MultiDiffusion-style tiled evaluation of the flow network (Bar-Tal et al., 2023).

The flow network is trained on ``tile``-pixel crops (its GroupNorm statistics and receptive field are tile-sized).
To decode any H × W, every sampling step evaluates the velocity on overlapping tiles and blends the tile predictions
into one velocity field — a weighted average where tiles overlap, with weights ramping linearly across the
``overlap`` margin so no tile edge is visible. All tiles share one noisy image, so they are denoised jointly.
"""

from __future__ import annotations

from typing import Callable

import torch


def tile_starts(size: int, tile: int, overlap: int, align: int = 1) -> list[int]:
    """Start offsets covering [0, size) with tiles of ``tile`` overlapping by at least ``overlap``; last ends at size."""
    if size <= tile:
        return [0]
    if not 0 <= overlap < tile:
        raise ValueError(f"overlap must be in [0, tile), got overlap={overlap}, tile={tile}")
    stride = max(align, (tile - overlap) // align * align)
    starts = list(range(0, size - tile, stride))
    starts.append(size - tile)
    return starts


def _ramp(n: int, overlap: int, dtype, device=None) -> torch.Tensor:
    """1 in the interior, rising linearly over ``overlap`` pixels at each end (never 0)."""
    i = torch.arange(n, dtype=dtype, device=device)
    edge = torch.minimum(i + 1, n - i)
    return torch.clamp(edge / (overlap + 1), max=1.0) if overlap > 0 else torch.ones(n, dtype=dtype, device=device)


def tiled(fn: Callable[..., torch.Tensor], x: torch.Tensor, cond: list[torch.Tensor], tile: int | None, overlap: int,
          scale: list[int], align: int = 1, batch: int = 64) -> torch.Tensor:
    """Apply ``fn(x_tiles, *cond_tiles)`` tile by tile and blend. ``x`` (1, C, H, W) in pixels; ``cond[k]`` has
    resolution H / scale[k]. ``tile=None`` (or a tile covering the image) evaluates the whole image at once."""
    _, _, H, W = x.shape
    if tile is None or (H <= tile and W <= tile):
        return fn(x, *cond)
    th, tw = min(tile, H), min(tile, W)
    boxes = [(y, xx) for y in tile_starts(H, th, overlap, align) for xx in tile_starts(W, tw, overlap, align)]
    weight = (_ramp(th, overlap, x.dtype, x.device)[:, None] * _ramp(tw, overlap, x.dtype, x.device)[None, :]
              if overlap else None)
    out = torch.zeros_like(x)
    norm = torch.zeros(1, 1, H, W, dtype=x.dtype, device=x.device)
    for k in range(0, len(boxes), batch):
        chunk = boxes[k : k + batch]
        xs = torch.cat([x[:, :, y : y + th, xx : xx + tw] for y, xx in chunk])
        cs = [torch.cat([c[:, :, y // s : (y + th) // s, xx // s : (xx + tw) // s] for y, xx in chunk]) for c, s in zip(cond, scale)]
        pred = fn(xs, *cs)
        for i, (y, xx) in enumerate(chunk):
            w = weight if weight is not None else 1.0
            out[:, :, y : y + th, xx : xx + tw] += pred[i : i + 1] * w
            norm[:, :, y : y + th, xx : xx + tw] += w
    return out / norm
