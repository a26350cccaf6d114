"""Decoding conditioned on the image-level tags a ``.vlic`` file carries (Diff-ICMH's Tag Guidance Module, laptop form;
format version 3, :mod:`vlic.codec.bitstream`).

* :class:`TagEmbedding` — a learned table, one ``cond_channels`` vector per ImageNet class (the "learned table"
  option; Diff-ICMH uses its diffusion model's text encoder). An image's tag vector is the mean of its tags' rows,
  added to the decoder's conditioning features at every position; no tags = the zero vector. The table starts at
  zero, so a fresh table decodes exactly like the untagged codec. It is stored next to its codec as
  ``<codec>.tags.safetensors`` (:func:`table_path`), with the classifier-free guidance scale it was made for.
* :func:`decode` — decode a file with its tags and classifier-free guidance over the tags:
  v = v(∅) + w · (v(tags) − v(∅)), where ∅ keeps the latent's conditioning and drops only the tags.

Training the table (and the decoder with it) is :func:`vlic.training.tag_guidance.finetune_with_tags`; this module
is what every decoder of a file needs — the chapters and ``vlic decompress``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from vlic.codec.bitstream import TAG_CLASSES
from vlic.codec.image_codec import DEFAULT_MAX_PIXELS

SUFFIX = ".tags.safetensors"


def table_path(checkpoint: str | Path) -> Path:
    """Where the tag table of the codec at ``checkpoint`` lives: ``models/x.safetensors`` → ``models/x.tags.safetensors``."""
    p = Path(checkpoint)
    return p.with_name(p.name.removesuffix(".safetensors") + SUFFIX)


class TagEmbedding(nn.Module):
    def __init__(self, channels: int, classes: int = TAG_CLASSES, cfg_scale: float = 1.0):
        super().__init__()
        self.table = nn.Embedding(classes, channels)
        nn.init.zeros_(self.table.weight)
        self.cfg_scale = float(cfg_scale)   # the guidance scale the table is decoded with by default

    def forward(self, tags: list) -> torch.Tensor:
        """(B, C, 1, 1) tag vectors of a batch of tag lists (an empty list → zeros)."""
        rows = []
        for t in tags:
            t = [int(v) for v in t]
            rows.append(self.table(torch.tensor(t)).mean(0) if t else self.table.weight.new_zeros(self.table.embedding_dim))
        return torch.stack(rows)[:, :, None, None]

    def save(self, path: str | Path) -> Path:
        from safetensors.torch import save_file

        path = Path(path)
        save_file({"table": self.table.weight.detach().contiguous()}, str(path),
                  metadata={"cfg_scale": repr(self.cfg_scale)})
        return path

    @classmethod
    def load(cls, path: str | Path) -> "TagEmbedding":
        from safetensors import safe_open
        from safetensors.torch import load_file

        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
        w = load_file(str(path))["table"]
        out = cls(w.shape[1], w.shape[0], cfg_scale=float(meta.get("cfg_scale", 1.0)))
        out.table.weight.data.copy_(w)
        return out.eval()


def decode(codec, data, table: TagEmbedding, steps: int = 1, seed: int = 0, cfg_scale: float | None = None,
           name: str = "<bytes>", max_pixels: int | None = DEFAULT_MAX_PIXELS, tile: int | None | str = "file"
           ) -> np.ndarray:
    """Decode a ``.vlic`` file with the tags it carries (none for an untagged file) and CFG over the tags at
    ``cfg_scale`` (None: the table's), at most ``max_pixels`` pixels (``data``: bytes or a parsed container), on the
    file's tile layout (the same Euler steps and noise as
    :func:`vlic.codec.sampling.sample`)."""
    from vlic.codec.sampling import noise_like, start_point, timesteps
    from vlic.codec.tiling import tiled
    from vlic.images import to_pixels

    cfg_scale = table.cfg_scale if cfg_scale is None else float(cfg_scale)
    c, features, mean = codec.decode_condition(data, name, max_pixels, tile)
    size = c.tile if tile == "file" else tile
    f_tag = features + table([list(c.tags or ())])
    model, p = codec.model, codec.config.patch
    start = model.config.sample_start
    x, ts = start_point(mean, noise_like(mean, seed), start), timesteps(steps, start=start)

    def velocity(xt, t, ft, f0, mu):
        tt = torch.full((xt.shape[0],), float(t))
        v = model.velocity(xt, tt, ft, mu)
        if cfg_scale != 1.0:
            v0 = model.velocity(xt, tt, f0, mu)
            v = v0 + cfg_scale * (v - v0)
        return v

    with torch.no_grad():
        for i in range(steps):
            t, s = float(ts[i]), float(ts[i + 1])
            v = tiled(lambda xt, ft, f0, mu: velocity(xt, t, ft, f0, mu), x, [f_tag, features, mean], size,
                      c.overlap, [p, p, 1], align=p)
            x = x + (s - t) * v
    return to_pixels(x.clamp(-1, 1)[0, :, : c.height, : c.width])
