"""Fine-tuning a pre-trained codec's decoder at equal bits — the chapter-06 variants (baseline, + SC loss).

The encoder and the FSQ quantiser are **frozen**, so every image codes to the same tokens and the same bitstream
payload as with the pre-trained codec (only the file's model fingerprint differs): the variants are compared at
exactly equal bits. The latent decoder and the flow decoder train for ``steps`` steps on random crops of the training
photos with the pre-training loss (:func:`vlic.training.pretrain.training_loss`: flow matching + perceptual + mean
head, conditioning dropout for CFG) plus, with ``sc_weight`` > 0, the semantic-consistency loss
(:class:`vlic.training.semantic.SemanticConsistency`, features ``sc_features``). AdamW at a constant learning rate;
the last weights are saved (no EMA over so few steps). The token prior is kept as it is.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np
import torch

from vlic.codec.checkpoint import Checkpoint
from vlic.images import to_tensor
from vlic.training.pretrain import PerceptualLoss, PretrainConfig, random_crops, training_loss
from vlic.training.semantic import SemanticConsistency


@dataclass(frozen=True)
class FinetuneConfig:
    steps: int = 60
    batch_size: int = 8
    lr: float = 2e-4
    sc_weight: float = 0.0            # 0 = the baseline fine-tune (same steps, same data, no SC term)
    sc_features: str = "effnet"       # "flow_mid" (a: frozen pre-trained flow decoder) or "effnet" (b)
    perceptual: str = "ms_ssim"
    perceptual_weight: float = 0.5
    mean_weight: float = 1.0
    cfg_dropout: float = 0.1
    start_time_share: float = 0.0     # as pre-training's: share of flow times uniform in (0, the codec's sample_start]
    seed: int = 0


def decoder_copy(checkpoint: Checkpoint, seed: int):
    """A trainable copy of ``checkpoint``'s model with the encoder and quantiser frozen (the tokens cannot change);
    torch's global RNG seeded first, so what is created next (e.g. a tag table) is seeded too."""
    torch.manual_seed(seed)
    model = copy.deepcopy(checkpoint.model).train().requires_grad_(True)   # a loaded EMA may come frozen
    model.encoder.requires_grad_(False).eval()
    model.fsq.requires_grad_(False)
    return model


def train_decoder(net: torch.nn.Module, reference, data: list[torch.Tensor], tile: int, cfg: FinetuneConfig,
                  name: str = "", prepare: Callable | None = None) -> list[dict]:
    """The fine-tuning loop: AdamW on ``net``'s trainable parameters, ``cfg.steps`` steps of random ``tile``-px crops of
    ``data`` with the pre-training loss (+ SC against the frozen ``reference`` model when ``cfg.sc_weight``).
    ``prepare(crops, gen)`` may turn the crops into the batch (and set per-batch conditioning). Returns curve rows."""
    trainable = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=cfg.lr, weight_decay=0.0, betas=(0.9, 0.99))
    gen = torch.Generator().manual_seed(cfg.seed)
    loss_cfg = PretrainConfig(perceptual=cfg.perceptual, perceptual_weight=cfg.perceptual_weight,
                              mean_weight=cfg.mean_weight, cfg_dropout=cfg.cfg_dropout,
                              start_time_share=cfg.start_time_share)
    perceptual = PerceptualLoss(cfg.perceptual)
    sc = SemanticConsistency(cfg.sc_features, reference) if cfg.sc_weight else None
    curves, t0 = [], time.perf_counter()
    for step in range(cfg.steps):
        x = random_crops(data, tile, cfg.batch_size, gen)
        if prepare is not None:
            x = prepare(x, gen)
        loss, parts = training_loss(net, x, loss_cfg, perceptual, gen, sc=sc, sc_weight=cfg.sc_weight)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"fine-tuning loss became {loss.item()} at step {step}: lower the learning rate")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        opt.step()
        curves.append({"variant": name, "step": step, **{k: round(v.item(), 6) for k, v in parts.items()},
                       "seconds": round(time.perf_counter() - t0, 2)})
    return curves


def finetune(checkpoint: Checkpoint, images: list[np.ndarray], cfg: FinetuneConfig, name: str = "") -> tuple[Checkpoint, list[dict]]:
    """A new checkpoint whose decoder is fine-tuned from ``checkpoint`` (which stays untouched), and its curve rows."""
    model = decoder_copy(checkpoint, cfg.seed)
    curves = train_decoder(model, checkpoint.model, [to_tensor(im)[0] for im in images], model.config.tile, cfg, name)
    model.eval()
    training = dict(checkpoint.training, finetune=asdict(cfg) | {"from": checkpoint.fingerprint, "variant": name})
    return Checkpoint(model, copy.deepcopy(checkpoint.prior), checkpoint.rate, training), curves
