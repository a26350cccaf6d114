"""Training tag guidance (Diff-ICMH's Tag Guidance Module, laptop form): a decoder conditioned on the image-level tags
a ``.vlic`` file carries (:mod:`vlic.codec.bitstream` format version 3, tags from :mod:`vlic.perception.tags`). The
table and the tag-conditioned decoder are :mod:`vlic.codec.tag_conditioning` (every decoder of a file uses them).

* :func:`finetune_with_tags` — :func:`vlic.training.finetune.finetune` with the table trained alongside the decoder
  (encoder frozen: equal tokens), each crop carrying its photo's tags, dropped to none for ``tag_dropout`` of the
  crops (10 % as in Diff-ICMH) so the decoder also learns the unconditional case.
* :func:`tag_guided_reconstructions` — the chapter's rows: each image compressed with its tags, decoded with them.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from vlic.codec.tag_conditioning import TagEmbedding, decode  # noqa: F401  (decode: for the chapters' imports)


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
                       tag_dropout: float = 0.1, cfg_scale: float = 1.0):
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
    table = TagEmbedding(model.config.cond_channels, cfg_scale=cfg_scale)   # the scale it is decoded with by default
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
