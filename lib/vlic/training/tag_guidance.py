"""Tag guidance (Diff-ICMH's Tag Guidance Module, laptop form): a decoder conditioned on the image-level tags a
``.vlic`` file carries (:mod:`vlic.codec.bitstream` format version 3, tags from :mod:`vlic.perception.tags`).

* :class:`TagEmbedding` — a learned table, one ``cond_channels`` vector per ImageNet class (the "learned table"
  option; Diff-ICMH uses its diffusion model's text encoder). An image's tag vector is the mean of its tags' rows,
  added to the decoder's conditioning features at every position; no tags (or a dropped tag list) = the zero vector.
  The table starts at zero, so a fresh table decodes exactly like the untagged codec.
* :func:`finetune_with_tags` — :func:`vlic.training.finetune.finetune` with the table trained alongside the decoder
  (encoder frozen: equal tokens), each crop carrying its photo's tags, dropped to none for ``tag_dropout`` of the
  crops (10 % as in Diff-ICMH) so the decoder also learns the unconditional case.
* :func:`decode` — decode a file with its tags and classifier-free guidance over the tags:
  v = v(∅) + w · (v(tags) − v(∅)), where ∅ keeps the latent's conditioning and drops only the tags.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from vlic.codec.bitstream import TAG_CLASSES


class TagEmbedding(nn.Module):
    def __init__(self, channels: int, classes: int = TAG_CLASSES):
        super().__init__()
        self.table = nn.Embedding(classes, channels)
        nn.init.zeros_(self.table.weight)

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
        save_file({"table": self.table.weight.detach().contiguous()}, str(path))
        return path

    @classmethod
    def load(cls, path: str | Path) -> "TagEmbedding":
        from safetensors.torch import load_file

        w = load_file(str(path))["table"]
        out = cls(w.shape[1], w.shape[0])
        out.table.weight.data.copy_(w)
        return out.eval()


class _Tagged(nn.Module):
    """The codec seen by :func:`vlic.training.pretrain.training_loss`, with the current batch's tag vectors added
    to its conditioning features."""

    def __init__(self, model, tags: TagEmbedding):
        super().__init__()
        self.model, self.tags = model, tags
        self.current: torch.Tensor | None = None

    @property
    def config(self):
        return self.model.config

    def quantize(self, x):
        return self.model.quantize(x)

    def condition(self, q):
        features, mean = self.model.condition(q)
        return features + self.current, mean

    def velocity(self, x_t, t, features, mean):
        return self.model.velocity(x_t, t, features, mean)


def finetune_with_tags(checkpoint, images: list[np.ndarray], image_tags: list[list[int]], cfg, name: str = "",
                       tag_dropout: float = 0.1):
    """Fine-tune ``checkpoint``'s decoder (as :func:`vlic.training.finetune.finetune`, SC loss included when
    ``cfg.sc_weight`` > 0) together with a :class:`TagEmbedding`. Returns (checkpoint, table, curve rows)."""
    import copy
    from dataclasses import asdict

    from vlic.codec.checkpoint import Checkpoint
    from vlic.images import to_tensor
    from vlic.training.finetune import decoder_copy, train_decoder

    if len(images) != len(image_tags):
        raise ValueError(f"{len(images)} images but {len(image_tags)} tag lists")
    model = decoder_copy(checkpoint, cfg.seed)
    table = TagEmbedding(model.config.cond_channels)
    tagged = _Tagged(model, table)
    # a 4th channel holding the photo's index rides along with each crop (random_crops crops and flips it too)
    data = [torch.cat([x, torch.full_like(x[:1], k)]) for k, x in enumerate(to_tensor(im)[0] for im in images)]

    def with_tags(crops: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        x, which = crops[:, :3].contiguous(), crops[:, 3, 0, 0].round().long().tolist()
        keep = (torch.rand(len(which), generator=gen) >= tag_dropout).tolist()
        tagged.current = table([image_tags[k] if kp else [] for k, kp in zip(which, keep)])
        return x

    curves = train_decoder(tagged, checkpoint.model, data, model.config.tile, cfg, name, prepare=with_tags)
    model.eval(), table.eval()
    training = dict(checkpoint.training, finetune=asdict(cfg) | {"from": checkpoint.fingerprint, "variant": name,
                                                                  "tag_dropout": tag_dropout})
    return Checkpoint(model, copy.deepcopy(checkpoint.prior), checkpoint.rate, training), table, curves


def decode(codec, data: bytes, table: TagEmbedding, steps: int = 1, seed: int = 0, cfg_scale: float = 1.0,
           name: str = "<bytes>") -> np.ndarray:
    """Decode a ``.vlic`` file with the tags it carries (none for an untagged file) and CFG over the tags, on the
    file's tile layout (the same Euler steps and noise as :func:`vlic.codec.sampling.sample`)."""
    from vlic.images import to_pixels
    from vlic.codec.sampling import noise_like, start_point, timesteps
    from vlic.codec.tiling import tiled

    c, features, mean = codec.decode_condition(data, name)
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

    for i in range(steps):
        t, s = float(ts[i]), float(ts[i + 1])
        v = tiled(lambda xt, ft, f0, mu: velocity(xt, t, ft, f0, mu), x, [f_tag, features, mean], c.tile, c.overlap,
                  [p, p, 1], align=p)
        x = x + (s - t) * v
    return to_pixels(x.clamp(-1, 1)[0, :, : c.height, : c.width])


def tag_guided_reconstructions(name: str, rate_point: str, codec, table: TagEmbedding, images: dict[str, np.ndarray],
                               tags_of: dict[str, list[int]], steps: int, seeds, cfg_scale: float):
    """Each image compressed **with its tags in the file** (bits counted from the bytes) and decoded with
    :func:`decode`; yields (row, pixels) in the row schema of :func:`vlic.eval.benchmark.learned_reconstructions`."""
    import time

    for photo, px in images.items():
        z = codec.compress(px, tags=tags_of[photo])
        for seed in seeds:
            t0 = time.perf_counter()
            rec = decode(codec, z.data, table, steps=steps, seed=seed, cfg_scale=cfg_scale, name=photo)
            yield ({"codec": name, "family": "learned", "rate_point": rate_point, "photo": photo, "seed": int(seed),
                    "bpp": z.bpp, "bytes": z.bytes, "target_bpp": np.nan, "matched": True, "quality": np.nan,
                    "scale": 1.0, "decode_seconds": time.perf_counter() - t0, "tag_bytes": z.tag_bytes}, rec)
