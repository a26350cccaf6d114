"""Training the LL task models, and codec + restorer under rate–distortion (RDO) or rate–perception (RPO)
optimisation.

Data: a *pool* of clean ``size``-px crops of the training photos, each degraded once by every task
(:func:`degraded_pool`, seeded), so every step draws (degraded, clean) pairs without re-synthesising them.

The joint objective (:func:`rpo_loss`), with y the degraded input, x its clean original, x̂ = D(Q(E(y))) the codec's
decoded image (the deterministic mean head μ, see below) and R the restorer:

    L = α · ‖x̂ − y‖²  +  β · rate(Q(E(y)))  +  γ · ‖R(x̂) − x‖²
        distortion      bits per pixel         task (vs the clean image)

* γ = 0 is rate–distortion optimisation (the codec reconstructs its degraded input, the restorer plays no part);
* **RDO** as a system: the pre-trained codec is kept as it is and only the restorer learns, afterwards, on decoded
  images (:func:`fine_tune` with ``train_codec=False``);
* **RPO**: codec (encoder, latent decoder, token prior) and restorer learn together on the whole loss.

The rate is the token prior's cross-entropy of the FSQ codes (−Σ log₂ p, the bits the range coder writes, up to a
few header bytes), in bits per pixel. FSQ rounds with a straight-through estimator and the codes themselves are
integers, so the rate term trains the *prior* (the entropy model) and gives the encoder no gradient: with a fixed
FSQ alphabet the encoder's bits move only through which codes it chooses, i.e. indirectly. The decoded image is the
codec's deterministic mean head μ (what its flow decoder refines): a restorer wants the point estimate, and
sampling the flow decoder at every step would not fit the chapter's CPU budget.
"""

from __future__ import annotations

import copy
import math
import time

import numpy as np
import torch
from torch.nn import functional as F

from vlic.codec.prior import to_blocks
from vlic.lowlevel.degradations import degrade


def degraded_pool(clean: np.ndarray, tasks: dict[str, dict], seed: int = 0) -> dict[str, np.ndarray]:
    """Every clean crop (N, S, S, 3) degraded by every task (name → severity keywords); crop i of task k uses the
    seed ``seed + 1000·k + i``."""
    return {task: np.stack([degrade(c, task, seed + 1000 * k + i, **sev) for i, c in enumerate(clean)])
            for k, (task, sev) in enumerate(tasks.items())}


def _lr(step: int, steps: int, lr: float, warmup: int = 10) -> float:
    if step < warmup:
        return lr * (step + 1) / warmup
    return lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup))))


def train_restorer(unet, inputs: torch.Tensor, targets: torch.Tensor, steps: int, lr: float = 2e-3,
                   batch: int = 8, seed: int = 0, cond: torch.Tensor | None = None, log_every: int = 10) -> list[dict]:
    """Fit ``unet`` (inputs → targets, MSE) on random mini-batches of the pool; ``cond`` (N, d): a fixed
    conditioning vector per pool item. Random horizontal flips. Returns curve rows."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(unet.parameters(), lr=lr)
    unet.train()
    curves, t0 = [], time.perf_counter()
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = _lr(step, steps, lr)
        idx = torch.randint(0, len(inputs), (batch,), generator=gen)
        x, y = inputs[idx], targets[idx]
        if torch.rand((), generator=gen) < 0.5:
            x, y = x.flip(-1), y.flip(-1)
        loss = F.mse_loss(unet(x, None if cond is None else cond[idx]), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % log_every == 0 or step == steps - 1:
            curves.append({"step": step, "mse": round(loss.item(), 6), "seconds": round(time.perf_counter() - t0, 2)})
    unet.eval()
    return curves


def train_controller(controller, desc: torch.Tensor, labels: torch.Tensor, clean_desc: torch.Tensor, steps: int,
                     lr: float = 3e-3, batch: int = 64, content_weight: float = 1.0, seed: int = 0,
                     log_every: int = 20) -> list[dict]:
    """Fit the controller: cross-entropy of the degradation type + ``content_weight`` × MSE between the content
    embedding and a fixed random projection (seeded, stored in the controller as ``content_target``) of the
    normalised descriptor of the *clean* crop."""
    gen = torch.Generator().manual_seed(seed)
    controller.set_normalisation(torch.cat([desc, clean_desc]))
    if not hasattr(controller, "content_target"):
        proj = torch.randn(desc.shape[1], controller.content_dim, generator=gen) / math.sqrt(desc.shape[1])
        controller.register_buffer("content_target", proj)
    target = ((clean_desc - controller.mu) / controller.sd) @ controller.content_target
    opt = torch.optim.Adam(controller.parameters(), lr=lr)
    curves = []
    controller.train()
    for step in range(steps):
        idx = torch.randint(0, len(desc), (min(batch, len(desc)),), generator=gen)
        logits, _, content = controller(desc[idx])
        ce = F.cross_entropy(logits, labels[idx])
        cm = F.mse_loss(content, target[idx])
        loss = ce + content_weight * cm
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % log_every == 0 or step == steps - 1:
            acc = (logits.argmax(1) == labels[idx]).float().mean().item()
            curves.append({"step": step, "cross_entropy": round(ce.item(), 5), "content_mse": round(cm.item(), 5),
                           "batch_accuracy": round(acc, 4)})
    controller.eval()
    return curves


def rate_bits(prior, codes: torch.Tensor, block: int) -> torch.Tensor:
    """The prior's cross-entropy (total bits, −Σ log₂ p) of integer ``codes`` (B, C, h, w), coded in blocks of
    ``block`` positions as the range coder does; differentiable in the prior's parameters."""
    blocks = [to_blocks(c, block) for c in codes]
    seq = torch.cat([b.seq for b in blocks]); rows = torch.cat([b.rows for b in blocks])
    cols = torch.cat([b.cols for b in blocks]); valid = torch.cat([b.valid for b in blocks])
    return prior.bits(seq, rows, cols, valid)


def rpo_loss(codec, prior, restorer, degraded: torch.Tensor, clean: torch.Tensor, alpha: float = 1.0,
             beta: float = 0.01, gamma: float = 1.0) -> tuple[torch.Tensor, dict]:
    """α·distortion + β·rate + γ·task for one batch (see the module docstring); ``restorer`` maps decoded images
    to restored ones. With γ = 0 the restorer is not run and the loss is the codec's RDO objective."""
    q, codes = codec.quantize(degraded)
    _, decoded = codec.condition(q)
    distortion = F.mse_loss(decoded, degraded)
    H, W = degraded.shape[-2:]
    rate = rate_bits(prior, codes, codec.config.prior_block) / (degraded.shape[0] * H * W)
    loss = alpha * distortion + beta * rate
    parts = {"distortion": distortion.detach(), "rate_bpp": rate.detach()}
    if gamma:
        task = F.mse_loss(restorer(decoded), clean)
        loss = loss + gamma * task
        parts["task"] = task.detach()
    parts["loss"] = loss.detach()
    return loss, parts


def fine_tune(codec, prior, restorer, degraded: torch.Tensor, clean: torch.Tensor, steps: int, train_codec: bool,
              lr: float = 1e-3, codec_lr: float = 2e-4, batch: int = 8, alpha: float = 1.0, beta: float = 0.01,
              gamma: float = 1.0, seed: int = 0, log_every: int = 10):
    """RDO (``train_codec=False``: codec frozen, the restorer learns on its decoded images) or RPO (codec, prior and
    restorer together on :func:`rpo_loss`), from copies of the given models and the same mini-batches either way.
    Returns (codec, prior, restorer, curve rows); the inputs are not modified."""
    codec, prior, restorer = copy.deepcopy(codec), copy.deepcopy(prior), copy.deepcopy(restorer)
    codec.flow.requires_grad_(False)   # the decoded image is the mean head: the flow decoder is not trained here
    trainable = [p for p in restorer.parameters() if p.requires_grad]
    groups = [{"params": trainable, "lr": lr, "base": lr}]
    if train_codec:
        codec_params = [p for n, p in codec.named_parameters() if not n.startswith("flow.")]
        groups += [{"params": codec_params, "lr": codec_lr, "base": codec_lr},
                   {"params": list(prior.parameters()), "lr": codec_lr, "base": codec_lr}]
    else:
        codec.requires_grad_(False), prior.requires_grad_(False)
    opt = torch.optim.Adam(groups)
    gen = torch.Generator().manual_seed(seed)
    curves, t0 = [], time.perf_counter()
    codec.train(train_codec), prior.train(train_codec), restorer.train()
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = _lr(step, steps, g["base"])
        idx = torch.randint(0, len(degraded), (batch,), generator=gen)
        y, x = degraded[idx], clean[idx]
        if train_codec:
            loss, parts = rpo_loss(codec, prior, restorer, y, x, alpha, beta, gamma)
        else:
            with torch.no_grad():
                decoded = codec.condition(codec.quantize(y)[0])[1]
            loss = F.mse_loss(restorer(decoded), x)
            parts = {"task": loss.detach(), "loss": loss.detach()}
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for g in groups for p in g["params"]], 1.0)
        opt.step()
        if step % log_every == 0 or step == steps - 1:
            curves.append({"step": step, **{k: round(float(v), 6) for k, v in parts.items()},
                           "seconds": round(time.perf_counter() - t0, 2)})
    for m in (codec, prior, restorer):
        m.eval().requires_grad_(False)
    return codec, prior, restorer, curves
