"""Training a FlowMo (:class:`vlic.codec.flowmo.model.FlowMo`, the paper profile's architecture) from scratch: FlowMo's
objective in miniature, for the laptop's architecture comparison (chapter 02).

Phase 1 (``steps`` steps, random ``image_size``-pixel crops of the training photos, drawn on the fly and mirrored at
random, as :func:`vlic.training.pretrain.random_crops`):

    code = encoder(x);  q = LFQ(code) (sign of every channel, straight-through gradient)
    loss = ‖v̂(x_t, [q, 1]·keep, t) − (ε − x)‖²          rectified flow, t ~ logit-normal(0, 1), x_t = (1 − t)x + tε,
                                                       the condition dropped (× 0) for ``cfg_dropout`` of the samples
         + w_H · (H(sample) − H(batch))                FlowMo's LFQ entropy loss over groups of ``entropy_bits`` channels
         + w_c · ‖code − sign(code)‖²                   FlowMo's commitment loss (w_H, w_c: the model config's
                                                       ``entropy_loss_weight`` / ``commit_loss_weight``)
         + λ_p · (1 − MS-SSIM(x̂₀, x))                   the UNet recipe's perceptual term on x̂₀ = x_t − t·v̂ (0: off)

FlowMo's initialisation (the adaLN gates start at 0) and its ``fix_initial_norms`` ("l2": after every step, each
linear weight of the double-stream blocks is rescaled to its initial norm); AdamW with FlowMo's betas (0.9, 0.95),
warm-up and cosine decay; an EMA of the weights, which is what is saved.

Phase 2: the token prior is fitted to the EMA model's tokens of every tile of the training photos
(:func:`vlic.codec.flowmo.codec.fit_token_prior`), and weights + prior are saved as one ``vlic-flowmo/1`` safetensors
file (:func:`vlic.codec.flowmo.checkpoint.save_codec_checkpoint`), so ``vlic compress --model <file>`` works.

Resumable like :mod:`vlic.training.pretrain`: every ``checkpoint_every`` steps the full state goes to
``resume_path``; the same configuration continues from there, another one starts over (and says so).
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from vlic.codec.flowmo.model import FlowMo, FlowMoConfig, decoder_condition
from vlic.codec.flowmo.checkpoint import FlowMoCheckpoint, save_codec_checkpoint, uniform_prior
from vlic.codec.flowmo.codec import FlowMoCodec, fit_token_prior
from vlic.images import to_tensor
from vlic.training.pretrain import PerceptualLoss, resolve_device, training_loop


@dataclass(frozen=True)
class FlowMoPretrainConfig:
    steps: int = 600
    batch_size: int = 16
    lr: float = 1e-3
    warmup: int = 30
    perceptual: str = "ms_ssim"  # as PretrainConfig: "ms_ssim", "lpips" or "none"
    perceptual_weight: float = 0.5
    cfg_dropout: float = 0.1
    time_sampling: str = "logit_normal"  # or FlowMo's default "fat_logit_normal" (10 % of t uniform), or "uniform"
    ema_decay: float = 0.995
    entropy_bits: int = 0  # channels per LFQ entropy codeword (FlowMo: 9 of 18); 0 = the largest divisor ≤ 9
    fix_initial_norms: bool = True
    prior_steps: int = 150
    prior_lr: float = 3e-3
    prior_batch: int = 8
    prior_dim: int = 64
    prior_layers: int = 2
    seed: int = 0
    threads: int = 0  # torch threads (0 = leave torch's default)
    checkpoint_every: int = 100
    log_every: int = 10
    device: str = "auto"


@dataclass
class FlowMoPretrainResult:
    checkpoint: FlowMoCheckpoint
    curves: list[dict] = field(default_factory=list)
    prior_curves: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    prior_seconds: float = 0.0
    resumed_from: int = 0
    cpu_seconds: float = 0.0  # CPU time of this process for both phases (the budget the UNet is compared at)
    reused: bool = False      # True: ``out_path`` already held this recipe's model (:func:`pretrain_flowmo`'s
                              # ``reuse``); the times are those of the run that trained it, the curves are not kept


def mini_config(context_dim: int, width: int = 64, heads: int = 4, enc_depth: int = 2, dec_depth: int = 2,
                tile: int = 64, patch: int = 4, code_length: int = 16, mlp_ratio: float = 4.0,
                sample_steps: int = 1, schedule: str = "pow_0.25", cfg: float = 1.0) -> FlowMoConfig:
    """A small FlowMo: ``tile``-pixel squares, ``code_length`` tokens of ``context_dim`` bits, both transformers
    ``width`` wide with ``heads`` heads. The DiT entry is chosen so FlowMo's width scaling (``mup_width / 4``) gives
    exactly ``width``; the RoPE axes split the head dimension as (8 or 4, rest / 2, rest / 2)."""
    if width % (4 * heads) or width // heads < 12:
        raise ValueError(f"width {width} must be a multiple of 4 × heads ({heads}) with a head dimension of at least 12")
    head = width // heads
    first = 8 if head % 8 == 0 else 4
    axes = (first, (head - first) // 2, (head - first) // 2)
    return FlowMoConfig(patch_size=patch, mup_width=4, enc_mup_width=4, code_length=code_length,
                        context_dim=context_dim, enc_depth=enc_depth, dec_depth=dec_depth, image_size=tile,
                        hidden_size=width, num_heads=heads, mlp_ratio=mlp_ratio, axes_dim=axes,
                        sample_steps=sample_steps, schedule=schedule, cfg=cfg)


def flowmo_init_(model: FlowMo) -> FlowMo:
    """FlowMo's initialisation on top of torch's defaults: every adaLN gate (the 3rd and 6th chunk of each block's
    modulation) starts at 0, so each block starts as the identity of its stream."""
    with torch.no_grad():
        for part in (model.encoder, model.decoder):
            for block in part.double_blocks:
                for mod in (block.img_mod, block.txt_mod):
                    d = mod.lin.out_features // 6
                    for k in (2, 5):
                        mod.lin.weight[k * d : (k + 1) * d] = 0.0
                        mod.lin.bias[k * d : (k + 1) * d] = 0.0
    return model


def _norm_fixed_weights(model: FlowMo) -> dict[str, torch.nn.Parameter]:
    """The weights FlowMo keeps at their initial L2 norm: the linear layers inside the double-stream blocks."""
    return {n: m.weight for n, m in model.named_modules()
            if "double_blocks" in n and isinstance(m, torch.nn.Linear)}


def entropy_group(context_dim: int, requested: int = 0) -> int:
    if requested:
        if context_dim % requested:
            raise ValueError(f"entropy_bits {requested} must divide context_dim {context_dim}")
        return requested
    return max(g for g in range(1, min(9, context_dim) + 1) if context_dim % g == 0)


def lfq_losses(code: torch.Tensor, group: int, temperature: float = 0.1, eps: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor]:
    """FlowMo's LFQ auxiliary losses of a pre-quantization code (B, L, C).

    Entropy: the C channels are split into ``group`` blocks of C / group (FlowMo's ``b t (fg fh) -> b fg (t fh)``);
    every (token, position in block) gives a ``group``-bit codeword, one channel from each block. Its affinity to each
    of the 2^group ±1 codewords c is 2·x·c; softmax at temperature 0.1 → the per-sample entropy (minimised: decisive
    codes) minus the entropy of the batch-average distribution (maximised: every codeword used).
    Commitment: mean ‖code − sign(code)‖². Returns (entropy loss, commitment loss)."""
    B, L, C = code.shape
    x = code.reshape(B, L, group, C // group).transpose(-1, -2).reshape(-1, group)
    idx = torch.arange(2**group, device=code.device)
    codebook = ((idx[:, None] >> torch.arange(group, device=code.device)) & 1).to(code.dtype) * 2 - 1
    logits = 2 * x @ codebook.T / temperature
    probs = logits.softmax(-1)
    sample_entropy = -(probs * F.log_softmax(logits + eps, -1)).sum(-1).mean()
    avg = probs.mean(0)
    batch_entropy = -(avg * torch.log(avg + eps)).sum()
    sign = torch.where(code > 0, torch.ones_like(code), -torch.ones_like(code))
    return sample_entropy - batch_entropy, F.mse_loss(code, sign.detach())


def flow_times(n: int, kind: str, gen: torch.Generator) -> torch.Tensor:
    """Training times t ∈ (0, 1): ``logit_normal`` (sigmoid of a standard normal), FlowMo's ``fat_logit_normal``
    (the same, with 10 % of the draws uniform) or ``uniform``."""
    if kind == "uniform":
        return torch.rand(n, generator=gen)
    t = torch.sigmoid(torch.randn(n, generator=gen))
    if kind == "fat_logit_normal":
        u, fat = torch.rand(n, generator=gen), torch.rand(n, generator=gen) > 0.9
        return torch.where(fat, u, t)
    if kind != "logit_normal":
        raise ValueError(f"time_sampling must be 'logit_normal', 'fat_logit_normal' or 'uniform', got {kind!r}")
    return t


def training_loss(model: FlowMo, x: torch.Tensor, cfg: FlowMoPretrainConfig, perceptual: PerceptualLoss,
                  gen: torch.Generator) -> tuple[torch.Tensor, dict]:
    """The phase-1 loss of a batch ``x`` in [-1, 1]; noise and dropout from the CPU generator ``gen``."""
    B, mc = x.shape[0], model.config
    code = model.encode(x)
    q, _ = model.quantize(code)
    cond = decoder_condition(q)
    dev = x.device
    keep = (torch.rand(B, generator=gen) >= cfg.cfg_dropout).float().view(B, 1, 1).to(dev)
    t = flow_times(B, cfg.time_sampling, gen).to(dev)
    eps = torch.randn(x.shape, generator=gen).to(dev)
    tt = t.view(B, 1, 1, 1)
    x_t = (1 - tt) * x + tt * eps
    v = model.velocity(x_t, cond * keep, t)
    flow = F.mse_loss(v, eps - x)
    entropy, commit = lfq_losses(code, entropy_group(mc.context_dim, cfg.entropy_bits))
    quantizer = mc.entropy_loss_weight * entropy + mc.commit_loss_weight * commit
    x0 = x_t - tt * v
    perc = perceptual(x0, x) if cfg.perceptual_weight else x.new_zeros(())
    loss = flow + quantizer + cfg.perceptual_weight * perc
    bits = (code.detach() > 0).float()
    parts = {"flow_loss": flow.detach(), "entropy_loss": entropy.detach(), "commit_loss": commit.detach(),
             "perceptual_loss": perc.detach(), "bit_balance": bits.mean(), "loss": loss.detach()}
    return loss, parts


def _state_key(config: FlowMoConfig, cfg: FlowMoPretrainConfig) -> str:
    keep = {k: v for k, v in dataclasses.asdict(cfg).items()
            if k not in ("threads", "checkpoint_every", "log_every", "device", "prior_steps", "prior_lr",
                         "prior_batch", "prior_dim", "prior_layers")}
    return json.dumps({"flowmo": json.loads(config.to_json()), "train": keep}, sort_keys=True)


def train_flowmo(config: FlowMoConfig, cfg: FlowMoPretrainConfig, images: list[np.ndarray],
                 resume_path: str | Path | None = None, progress: bool = True):
    """Phase 1. Returns (EMA model on the CPU, curve rows, seconds spent in this call, step resumed from)."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    device = resolve_device(cfg.device)
    model = flowmo_init_(FlowMo(config)).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0, betas=(0.9, 0.95))
    fixed = _norm_fixed_weights(model) if cfg.fix_initial_norms else {}
    extra = {"norms": {n: w.detach().norm() for n, w in fixed.items()}}   # restored with a resume state
    perceptual = PerceptualLoss(cfg.perceptual if cfg.perceptual_weight else "none", device)

    @torch.no_grad()
    def fix_norms() -> None:   # FlowMo's norm fixing: these weights keep their initial norms
        for n, w in fixed.items():
            w.mul_(extra["norms"][n] / w.norm())

    ema, curves, seconds, resumed_from = training_loop(
        model, opt, cfg, [to_tensor(im)[0] for im in images], config.image_size,
        lambda m, x, gen: training_loss(m, x, cfg, perceptual, gen), _state_key(config, cfg), resume_path,
        f"train FlowMo ({config.context_dim} bits × {config.code_length} tokens)", progress,
        after_step=fix_norms, extra=extra, name="FlowMo training")
    return ema.cpu().eval(), curves, seconds, resumed_from


def recipe_key(config: FlowMoConfig, cfg: FlowMoPretrainConfig, images: list[np.ndarray]) -> str:
    """What a trained model is a function of (:func:`vlic.training.pretrain.recipe_digest`): the architecture, the
    training recipe of both phases, the photos, the training code and the pinned numerics (torch version, CPU
    kernels). Two runs with the same key give the same weights bit for bit (single-threaded, as chapter 02 trains
    it)."""
    from vlic.codec import quality
    from vlic.codec.flowmo import checkpoint, codec, model
    from vlic.numerics import fingerprint
    from vlic.training import pretrain

    recipe = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in ("checkpoint_every", "log_every")}
    return pretrain.recipe_digest(
        {"flowmo": json.loads(config.to_json()), "train": recipe, "numerics": fingerprint()["id"]}, images,
        [__file__, checkpoint.__file__, codec.__file__, model.__file__, pretrain.__file__,
         quality.__file__])   # the model, its prior, the training loop and its MS-SSIM loss


def _reusable(out_path: Path, key: str) -> FlowMoPretrainResult | None:
    """The result stored in ``out_path`` if it was trained with recipe ``key``, else None (absent, another recipe,
    or unreadable: trained again)."""
    from vlic.codec.flowmo.checkpoint import load_codec_checkpoint

    if not out_path.is_file():
        return None
    try:
        ck = load_codec_checkpoint(out_path)
    except Exception as e:   # a damaged file is trained again, and says so
        print(f"FlowMo pre-training: {out_path} is unreadable ({e}); training it again")
        return None
    t = ck.training or {}
    if t.get("recipe") != key:
        return None
    return FlowMoPretrainResult(ck, [], [{"bits_per_bit": t.get("prior_bits_per_bit")}], float(t.get("seconds", 0.0)),
                                float(t.get("prior_seconds", 0.0)), int(t.get("steps", 0)),
                                float(t.get("cpu_seconds", 0.0)), reused=True)


def pretrain_flowmo(config: FlowMoConfig, cfg: FlowMoPretrainConfig, images: list[np.ndarray],
                    out_path: str | Path, resume_path: str | Path | None = None,
                    progress: bool = True, reuse: bool = False) -> FlowMoPretrainResult:
    """Both phases; saves a ``vlic-flowmo/1`` checkpoint (EMA weights + fitted token prior) to ``out_path``, with
    the run's :func:`recipe_key`, times and CPU seconds in its training record. ``reuse``: if ``out_path`` already
    holds a model of the same recipe key, return it without training (chapter 02's committed FlowMo-mini)."""
    key = recipe_key(config, cfg, images)
    if reuse and (done := _reusable(Path(out_path), key)) is not None:
        return done
    cpu0 = time.process_time()
    model, curves, seconds, resumed = train_flowmo(config, cfg, images, resume_path, progress)
    t0 = time.perf_counter()
    codec = FlowMoCodec(FlowMoCheckpoint(model, uniform_prior(config)), device="cpu")
    dims = {"dim": cfg.prior_dim, "layers": cfg.prior_layers, "heads": 4}
    prior, prior_curves = fit_token_prior(codec, images, steps=cfg.prior_steps, lr=cfg.prior_lr,
                                          batch=cfg.prior_batch, seed=cfg.seed + 1, dims=dims)
    prior_seconds = time.perf_counter() - t0
    cpu_seconds = time.process_time() - cpu0
    summary = {"pretrain_flowmo": dataclasses.asdict(cfg), "seconds": round(seconds, 1),
               "prior_seconds": round(prior_seconds, 1), "cpu_seconds": round(cpu_seconds, 1), "steps": cfg.steps,
               "recipe": key, "final_flow_loss": curves[-1]["flow_loss"] if curves else None,
               "prior_bits_per_bit": prior_curves[-1]["bits_per_bit"] if prior_curves else None}
    ck = FlowMoCheckpoint(model, prior, prior_kind="fitted", training=summary)
    save_codec_checkpoint(ck, out_path, dims)
    return FlowMoPretrainResult(ck, curves, prior_curves, seconds, prior_seconds, resumed, cpu_seconds)


def pretrain_flowmo_job(job: dict) -> FlowMoPretrainResult:
    """:func:`pretrain_flowmo` from a dict of its arguments, for a worker process (single-threaded by default)."""
    import os

    os.environ.setdefault("OMP_NUM_THREADS", str(job["cfg"].threads or 1))
    return pretrain_flowmo(job["config"], job["cfg"], job["images"], job["out_path"], job.get("resume_path"),
                           progress=job.get("progress", False), reuse=job.get("reuse", False))


def pretrain_flowmo_background(**job):
    """Start :func:`pretrain_flowmo` (keyword arguments as :func:`pretrain_flowmo_job`) in a worker process of its
    own and return its :class:`concurrent.futures.Future` (``.result()`` waits). Chapter 02 trains FlowMo-mini this
    way while the UNet codecs train in their own processes; the worker dies with its parent."""
    from vlic.processes import worker_pool

    pool = worker_pool(1)
    future = pool.submit(pretrain_flowmo_job, job)
    future.add_done_callback(lambda _: pool.shutdown(wait=False))
    return future
