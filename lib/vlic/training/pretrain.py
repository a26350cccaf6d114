"""Pre-training the diffusion codec at one rate: autoencoder + flow decoder, then the token prior.

Phase 1 (``steps`` steps, random ``tile``-pixel crops of the training photos, drawn on the fly, flipped at random):

    loss = ‖v̂ − (ε − x)‖²                                   rectified-flow matching, t ~ logit-normal(0, 1)
         + λ_p · (1 − MS-SSIM(x̂₀, x))                      perceptual loss on the one-step prediction x̂₀ = x_t − t·v̂
         + λ_μ · ‖μ − x‖²                                   the deterministic mean head (an MSE estimate) the flow refines

with the conditioning (features and μ) zeroed for ``cfg_dropout`` of the samples (classifier-free guidance), AdamW
with warm-up and cosine decay, and an exponential moving average (EMA) of the weights, which is what gets saved.
Phase 2 (``prior_steps``): the token prior learns, by cross-entropy, the FSQ codes (from the EMA encoder) of random
crops exactly one prior block in size (prior_block × downsample pixels), so every block position is trained.

Progress goes to a tqdm bar and to curve rows (CSV for DVC plots). Every ``checkpoint_every`` steps the full state
(weights, EMA, optimizer, RNG, curves) is saved to ``resume_path`` (its folder gets a ``.gitignore`` of ``*``: scratch,
not versioned); rerunning with the same configuration continues from there; a different configuration starts over
(and says so).

Device: ``device="auto"`` trains on the GPU when torch sees one, else on the CPU. Random numbers are always drawn
from a CPU generator and then moved, so a run's data order and noise do not depend on the device.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import pickle
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F
from tqdm.auto import tqdm

from vlic.codec.autoencoder import CodecConfig, DiffusionCodec
from vlic.codec.checkpoint import Checkpoint, build_prior
from vlic.codec.prior import to_blocks
from vlic.codec.quality import ms_ssim_torch
from vlic.images import to_tensor


@dataclass(frozen=True)
class PretrainConfig:
    steps: int = 600
    batch_size: int = 16
    lr: float = 2e-3
    warmup: int = 30
    perceptual: str = "ms_ssim"  # "ms_ssim" (laptop), "lpips" (paper: LPIPS-VGG, needs its weights), "none"
    perceptual_weight: float = 0.5
    mean_weight: float = 1.0
    flow_path: str = "data"        # "data": x_t = (1 − t)·x + t·ε, flow loss on v; "sampler": t ∈ (0, t₀] on the straight
                                   # path from x to the sampler's start (1 − t₀)·μ + t₀·ε, loss on x̂₀ (a measured
                                   # alternative, docs/decoder.md: samples stay within 1 dB of μ, not more realistic)
    start_time_share: float = 0.0  # share of samples whose t is uniform in (0, t₀], t₀ = the codec's sample_start: the
                                   # only times its default sampler queries (the rest: logit-normal over (0, 1))
    cfg_dropout: float = 0.1
    ema_decay: float = 0.995
    prior_steps: int = 200
    prior_lr: float = 3e-3
    prior_batch: int = 16
    seed: int = 0
    threads: int = 0  # torch threads per training process (0 = leave torch's default)
    checkpoint_every: int = 100
    log_every: int = 10
    device: str = "auto"  # "auto" (cuda if available, else cpu), "cpu", "cuda", "cuda:1", …


def resolve_device(name: str = "auto") -> torch.device:
    """``"auto"`` → the first CUDA device if torch sees one, else the CPU; anything else as torch spells it."""
    if name in ("", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


@dataclass
class PretrainResult:
    checkpoint: Checkpoint
    curves: list[dict] = field(default_factory=list)
    prior_curves: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    prior_seconds: float = 0.0
    resumed_from: int = 0
    cpu_seconds: float = 0.0  # CPU time of the training process (both phases): the cost without competing programs
    reused: bool = False      # True: ``out_path`` already held this recipe's model (:func:`pretrain`'s ``reuse``); the
                              # times, CPU seconds and curves are those of the run that trained it (kept in its file)


def random_crops(images: list[torch.Tensor], size: int, n: int, gen: torch.Generator) -> torch.Tensor:
    """``n`` random ``size``-pixel crops (images drawn in proportion to their area), half of them mirrored."""
    usable = [im for im in images if min(im.shape[-2:]) >= size]
    if not usable:
        raise ValueError(f"no training image is at least {size} pixels on its shorter side")
    areas = torch.tensor([float(im.shape[-1] * im.shape[-2]) for im in usable])
    which = torch.multinomial(areas / areas.sum(), n, replacement=True, generator=gen)
    out = []
    for k in which.tolist():
        im = usable[k]
        y = int(torch.randint(0, im.shape[-2] - size + 1, (1,), generator=gen))
        x = int(torch.randint(0, im.shape[-1] - size + 1, (1,), generator=gen))
        c = im[:, y : y + size, x : x + size]
        out.append(c.flip(-1) if torch.rand((), generator=gen) < 0.5 else c)
    return torch.stack(out)


class PerceptualLoss:
    def __init__(self, kind: str, device: torch.device | str = "cpu"):
        self.kind = kind
        self._lpips = None
        if kind == "lpips":
            import lpips  # paper profile: needs the VGG weights available locally

            self._lpips = lpips.LPIPS(net="vgg", verbose=False).eval().requires_grad_(False).to(device)
        elif kind not in ("ms_ssim", "none"):
            raise ValueError(f"perceptual loss must be 'ms_ssim', 'lpips' or 'none', got {kind!r}")

    def __call__(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.kind == "none":
            return pred.new_zeros(())
        if self.kind == "lpips":
            return self._lpips(pred.clamp(-1, 1), target).mean()
        return (1 - ms_ssim_torch((pred.clamp(-1, 1) + 1) / 2, (target + 1) / 2)).mean()


def _lr(step: int, cfg: PretrainConfig) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


@torch.no_grad()
def _ema_update(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    for e, p in zip(ema.parameters(), model.parameters()):
        e.lerp_(p, 1 - decay)


def training_times(n: int, gen: torch.Generator, start_share: float = 0.0, start: float = 1.0) -> torch.Tensor:
    """``n`` flow-matching times: logit-normal(0, 1) over (0, 1) (SD3's), and — for a share ``start_share`` of them,
    chosen at random — uniform in (0, ``start``]: a decoder that samples from t₀ = ``start`` never queries a larger
    t, so those times teach what it uses. Drawn in a fixed order from ``gen`` whatever the share (reproducible)."""
    logit_normal = torch.sigmoid(torch.randn(n, generator=gen))
    if start_share <= 0:
        return logit_normal
    low = float(start) * (1.0 - torch.rand(n, generator=gen))          # (0, start]
    pick = torch.rand(n, generator=gen) < float(start_share)
    return torch.where(pick, low, logit_normal)


def training_loss(model: DiffusionCodec, x: torch.Tensor, cfg: PretrainConfig, perceptual: PerceptualLoss,
                  gen: torch.Generator, sc=None, sc_weight: float = 0.0) -> tuple[torch.Tensor, dict]:
    """The phase-1 loss of a batch ``x``; with ``sc`` (a :class:`vlic.training.semantic.SemanticConsistency`) and
    ``sc_weight`` > 0 also Diff-ICMH's semantic-consistency term ``sc_weight · sc(x̂₀, x)``."""
    B = x.shape[0]
    q, _ = model.quantize(x)
    features, mean = model.condition(q)
    dev = x.device   # noise from the CPU generator, then moved: the same numbers on any device
    keep = (torch.rand(B, generator=gen) >= cfg.cfg_dropout).float().view(B, 1, 1, 1).to(dev)
    t = training_times(B, gen, cfg.start_time_share, model.config.sample_start).view(B, 1, 1, 1).to(dev)
    eps = torch.randn(x.shape, generator=gen).to(dev)
    if cfg.flow_path == "sampler":
        from vlic.codec.sampling import noised, start_point

        t0 = float(model.config.sample_start)
        t = t0 * (1 - torch.rand(B, generator=gen)).view(B, 1, 1, 1).to(dev)
        x_t, _ = noised(x, start_point(mean.detach(), eps, t0), t, t0)
        v = model.velocity(x_t, t.view(B), features * keep, mean * keep)
        x0 = x_t - t * v
        flow = F.mse_loss(x0, x)
    elif cfg.flow_path == "data":
        x_t = (1 - t) * x + t * eps
        v = model.velocity(x_t, t.view(B), features * keep, mean * keep)
        flow = F.mse_loss(v, eps - x)
        x0 = x_t - t * v
    else:
        raise ValueError(f"flow_path must be 'data' or 'sampler', got {cfg.flow_path!r}")
    perc = perceptual(x0, x)
    mean_mse = F.mse_loss(mean, x)
    loss = flow + cfg.perceptual_weight * perc + cfg.mean_weight * mean_mse
    extra = {}
    if sc is not None and sc_weight:
        sc_loss = sc(x0, x)
        loss = loss + sc_weight * sc_loss
        extra["sc_loss"] = sc_loss.detach()
    # detached tensors, not floats: reading a value (.item()) waits for the GPU, so the loop does it only when it logs
    parts = {"flow_loss": flow.detach(), "perceptual_loss": perc.detach(), "mean_mse": mean_mse.detach(), **extra,
             "loss": loss.detach()}
    return loss, parts


class UnsafeResumeState(ValueError):
    """A resume state file that holds more than tensors, numpy arrays and plain values (one-line reason)."""


def read_state(path: str | Path, allow: tuple[type, ...] = ()) -> dict:
    """The dict in a resume state file, unpickled with ``torch.load(weights_only=True)``: tensors, numpy arrays,
    numbers, strings, lists, dicts and the dataclasses in ``allow`` only — a planted file cannot run code
    (:class:`UnsafeResumeState`, one line, nothing in it run). The one reader of every training resume state."""
    dtypes = tuple(type(np.dtype(t)) for t in (np.uint8, np.int32, np.int64, np.float16, np.float32, np.float64,
                                               np.bool_))
    core = np._core if hasattr(np, "_core") else np.core  # numpy 2 / numpy 1
    numpy_arrays = [np.ndarray, np.dtype, core.multiarray._reconstruct, *dtypes]
    try:
        with torch.serialization.safe_globals([*numpy_arrays, *allow]):
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        detail = next((line.split("WeightsUnpickler error:", 1)[1].strip() for line in str(e).splitlines()
                       if "WeightsUnpickler error:" in line), "") or str(e).strip().splitlines()[-1]
        detail = detail.split(" was not an allowed global")[0].split(". Please use")[0]
        raise UnsafeResumeState(f"resume state '{path}' holds more than tensors and plain values ({detail}): "
                                f"refused, nothing in it was run; delete it to start from scratch") from None
    if not isinstance(state, dict):
        raise UnsafeResumeState(f"resume state '{path}' holds a {type(state).__name__}, expected a dict: refused")
    return state


def load_resume_state(path: str | Path | None, key: str, allow: tuple[type, ...] = ()) -> dict | None:
    """A training resume state saved by :func:`save_resume_state` under ``key`` (the configuration it belongs to);
    None if there is none, or — said once — if it belongs to another configuration. Read by :func:`read_state`
    (data only; ``allow``: the dataclasses the caller stored)."""
    if not path or not Path(path).is_file():
        return None
    state = read_state(path, allow)
    if state.get("key") == key:
        return state
    print(f"resume state '{path}' was made with another configuration: training from scratch")
    return None


def save_resume_state(path: str | Path | None, state: dict) -> None:
    """Save a training resume state atomically (temporary file + rename) into a folder git ignores: resume states
    are scratch, never versioned (git) nor declared (DVC)."""
    if not path:
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ignore = path.parent / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# training resume states (vlic.training): scratch, not versioned\n*\n")
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def _state_key(codec_cfg: CodecConfig, cfg: PretrainConfig) -> str:
    keep = {k: v for k, v in dataclasses.asdict(cfg).items()
            if k not in ("threads", "checkpoint_every", "log_every", "device")}
    return json.dumps({"codec": json.loads(codec_cfg.to_json()), "train": keep}, sort_keys=True)


def training_loop(model: torch.nn.Module, opt: torch.optim.Optimizer, cfg, data: list[torch.Tensor], crop: int,
                  loss_fn, key: str, resume_path: str | Path | None, desc: str, progress: bool = True,
                  prepare=None, after_step=None, extra: dict | None = None, name: str = "training"):
    """The pre-training loop of both codec families (the UNet codec here, FlowMo in
    :mod:`vlic.training.flowmo_pretrain`): seeded random crops, ``loss_fn(model, x, gen) → (loss, parts)``, warm-up +
    cosine lr (``_lr``), gradient clipping, EMA, curve rows every ``cfg.log_every`` steps, and a resume state every
    ``cfg.checkpoint_every`` steps (:func:`save_resume_state`, checked against ``key``). ``prepare``: applied to each
    batch on the device; ``after_step``: called after every optimizer step; ``extra``: further state saved and restored
    with the resume state (its values updated in place). Returns (EMA model on the device, curve rows, seconds spent
    in this call, step resumed from)."""
    device = next(model.parameters()).device
    ema = copy.deepcopy(model).requires_grad_(False)
    gen = torch.Generator().manual_seed(cfg.seed)
    extra = {} if extra is None else extra
    curves: list[dict] = []
    start, elapsed = 0, 0.0
    state = load_resume_state(resume_path, key)
    if state is not None:
        model.load_state_dict(state["model"]), ema.load_state_dict(state["ema"]), opt.load_state_dict(state["opt"])
        gen.set_state(state["gen"])
        extra.update({k: state[k] for k in extra})
        curves, start, elapsed = state["curves"], state["step"], state["seconds"]
    resumed_from = start

    def save_state(step: int, seconds: float) -> None:
        save_resume_state(resume_path, {"key": key, "model": model.state_dict(), "ema": ema.state_dict(),
                                        "opt": opt.state_dict(), "gen": gen.get_state(), **extra, "curves": curves,
                                        "step": step, "seconds": seconds})

    t0 = time.perf_counter()
    model.train()
    bar = tqdm(range(start, cfg.steps), desc=desc, disable=not progress, initial=start, total=cfg.steps)
    for step in bar:
        for g in opt.param_groups:
            g["lr"] = _lr(step, cfg)
        x = random_crops(data, crop, cfg.batch_size, gen).to(device)
        loss, parts = loss_fn(model, x if prepare is None else prepare(x), gen)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{name} loss became {loss.item()} at step {step}: lower the learning rate")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if after_step is not None:
            after_step()
        _ema_update(ema, model, min(cfg.ema_decay, (1 + step) / (10 + step)))
        if step % cfg.log_every == 0 or step == cfg.steps - 1:
            parts = {k: v.item() for k, v in parts.items()}
            curves.append({"step": step, **{k: round(v, 6) for k, v in parts.items()},
                           "lr": round(_lr(step, cfg), 7), "seconds": round(elapsed + time.perf_counter() - t0, 2)})
            bar.set_postfix(loss=f"{parts['loss']:.4f}", flow=f"{parts['flow_loss']:.3f}")
        if cfg.checkpoint_every and (step + 1) % cfg.checkpoint_every == 0 and step + 1 < cfg.steps:
            save_state(step + 1, elapsed + time.perf_counter() - t0)
    seconds = time.perf_counter() - t0
    save_state(cfg.steps, elapsed + seconds)
    return ema, curves, seconds, resumed_from


def train_autoencoder(codec_cfg: CodecConfig, cfg: PretrainConfig, images: list[np.ndarray],
                      resume_path: str | Path | None = None, progress: bool = True):
    """Phase 1. Returns (EMA model, curve rows, seconds spent in this call, step resumed from)."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    device = resolve_device(cfg.device)
    model = DiffusionCodec(codec_cfg).to(device, memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0, betas=(0.9, 0.99))
    perceptual = PerceptualLoss(cfg.perceptual, device)
    ema, curves, seconds, resumed_from = training_loop(
        model, opt, cfg, [to_tensor(im)[0] for im in images], codec_cfg.tile,
        lambda m, x, gen: training_loss(m, x, cfg, perceptual, gen), _state_key(codec_cfg, cfg), resume_path,
        f"train codec ({codec_cfg.bits_per_pixel_raw:.3f} bpp raw)", progress,
        prepare=lambda x: x.contiguous(memory_format=torch.channels_last))
    ema = ema.to("cpu", memory_format=torch.contiguous_format).eval()
    return ema, curves, seconds, resumed_from


@torch.no_grad()
def _encode_crops(model: DiffusionCodec, data: list[torch.Tensor], size: int, n: int, gen) -> torch.Tensor:
    f = model.config.downsample
    size = max(f, min(size, min(min(im.shape[-2:]) for im in data)) // f * f)
    device = next(model.parameters()).device
    return model.encode(random_crops(data, size, n, gen).to(device)).cpu()


def train_prior(model: DiffusionCodec, cfg: PretrainConfig, images: list[np.ndarray], progress: bool = True):
    """Phase 2: fit the token prior to the codes of the trained encoder. Returns (prior, curve rows, seconds)."""
    codec_cfg = model.config
    torch.manual_seed(cfg.seed + 1)
    device = resolve_device(cfg.device)
    model = model.to(device)
    prior = build_prior(codec_cfg).to(device)
    opt = torch.optim.AdamW(prior.parameters(), lr=cfg.prior_lr, weight_decay=0.0)
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    data = [to_tensor(im)[0] for im in images]
    curves = []
    t0 = time.perf_counter()
    crop = codec_cfg.prior_block * codec_cfg.downsample
    pool = _encode_crops(model, data, crop, max(8, cfg.prior_batch), gen)
    for step in tqdm(range(cfg.prior_steps), desc="train prior", disable=not progress):
        if step % 25 == 0 and step:
            pool = _encode_crops(model, data, crop, max(8, cfg.prior_batch), gen)
        lr = cfg.prior_lr * min(1.0, (step + 1) / 20) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / max(1, cfg.prior_steps))))
        for g in opt.param_groups:
            g["lr"] = lr
        codes = pool[torch.randint(0, len(pool), (cfg.prior_batch,), generator=gen)]
        blocks = [to_blocks(c, codec_cfg.prior_block) for c in codes]
        seq = torch.cat([b.seq for b in blocks]); rows = torch.cat([b.rows for b in blocks])
        cols = torch.cat([b.cols for b in blocks]); valid = torch.cat([b.valid for b in blocks])
        bits = prior.bits(seq.to(device), rows.to(device), cols.to(device), valid.to(device))
        per_position = bits / valid.sum()
        opt.zero_grad(set_to_none=True)
        per_position.backward()
        torch.nn.utils.clip_grad_norm_(prior.parameters(), 1.0)
        opt.step()
        if step % cfg.log_every == 0 or step == cfg.prior_steps - 1:
            curves.append({"step": step, "bits_per_position": round(per_position.item(), 5),
                           "bpp": round(per_position.item() / codec_cfg.downsample**2, 6),
                           "seconds": round(time.perf_counter() - t0, 2)})
    model.cpu()
    return prior.cpu().eval(), curves, time.perf_counter() - t0


def recipe_digest(payload: dict, images: list[np.ndarray], modules: list[str]) -> str:
    """20 hex digits of SHA-256 over what a trained model is a function of: ``payload`` (architecture, training
    recipe and numerics id, as sorted JSON), the photos (:func:`vlic.judges.base.image_digest`) and the source of the
    ``modules`` files (model, loss, training loop). The one recipe key of every pre-training that chapter 02 reuses."""
    import hashlib

    from vlic.judges.base import image_digest

    h = hashlib.sha256(json.dumps(payload, sort_keys=True).encode())
    for im in images:
        h.update(image_digest(im).encode())
    for path in sorted(set(modules)):
        h.update(Path(path).read_bytes())
    return h.hexdigest()[:20]


def recipe_key(codec_cfg: CodecConfig, cfg: PretrainConfig, images: list[np.ndarray]) -> str:
    """The key of one UNet-codec pre-training: architecture, both phases' recipe (all of :class:`PretrainConfig`
    but its logging and device), the photos, the code of the model, its FSQ, prior, sampler paths, MS-SSIM loss and
    this training loop, and the pinned numerics. Two runs with the same key give the same weights bit for bit
    (single-threaded on the CPU, as chapter 02 trains them)."""
    from vlic.codec import autoencoder, checkpoint, fsq, prior, quality, sampling
    from vlic.numerics import fingerprint

    recipe = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in ("checkpoint_every", "log_every", "device")}
    return recipe_digest({"codec": json.loads(codec_cfg.to_json()), "train": recipe, "numerics": fingerprint()["id"]},
                         images, [__file__, autoencoder.__file__, checkpoint.__file__, fsq.__file__, prior.__file__,
                                  quality.__file__, sampling.__file__])


def _reusable(out_path: Path, key: str) -> PretrainResult | None:
    """The result stored in ``out_path`` if it was trained with recipe ``key``, else None (absent, another recipe, or
    unreadable: trained again, and an unreadable file says so in one line)."""
    from vlic.codec.checkpoint import load

    if not out_path.is_file():
        return None
    try:
        ck = load(out_path)
    except Exception as e:   # CheckpointError and anything a damaged header raises
        print(f"pre-training: {out_path} is unreadable ({e}); training it again")
        return None
    t = ck.training or {}
    if t.get("recipe") != key:
        return None
    return PretrainResult(ck, list(t.get("curves", [])), list(t.get("prior_curves", [])), float(t.get("seconds", 0.0)),
                          float(t.get("prior_seconds", 0.0)), int(t.get("steps", 0)), float(t.get("cpu_seconds", 0.0)),
                          reused=True)


def pretrain(codec_cfg: CodecConfig, cfg: PretrainConfig, images: list[np.ndarray], out_path: str | Path,
             rate: str = "", resume_path: str | Path | None = None, progress: bool = True,
             reuse: bool = False) -> PretrainResult:
    """Both phases; saves the checkpoint (EMA weights + prior + configuration) to ``out_path``, with the run's
    :func:`recipe_key`, times, CPU seconds and curves in its training record. ``reuse``: if ``out_path`` already
    holds a model of the same recipe key, return it without training (chapter 02's committed codecs)."""
    key = recipe_key(codec_cfg, cfg, images)
    if reuse and (done := _reusable(Path(out_path), key)) is not None:
        return done
    cpu0 = time.process_time()
    model, curves, seconds, resumed = train_autoencoder(codec_cfg, cfg, images, resume_path, progress)
    prior, prior_curves, prior_seconds = train_prior(model, cfg, images, progress)
    cpu_seconds = time.process_time() - cpu0
    summary = {"pretrain": dataclasses.asdict(cfg), "seconds": round(seconds, 1), "prior_seconds": round(prior_seconds, 1),
               "cpu_seconds": round(cpu_seconds, 1), "steps": cfg.steps, "recipe": key,
               "final_flow_loss": curves[-1]["flow_loss"] if curves else None,
               "prior_bits_per_position": prior_curves[-1]["bits_per_position"] if prior_curves else None,
               "curves": curves, "prior_curves": prior_curves}   # so a reused model still draws chapter 02's curves
    ck = Checkpoint(model, prior, rate, summary)
    ck.save(out_path)
    return PretrainResult(ck, curves, prior_curves, seconds, prior_seconds, resumed, cpu_seconds)


def _pretrain_job(job: dict) -> PretrainResult:
    import os

    os.environ.setdefault("OMP_NUM_THREADS", str(job["cfg"].threads or 1))
    return pretrain(job["codec_cfg"], job["cfg"], job["images"], job["out_path"], job.get("rate", ""),
                    job.get("resume_path"), progress=job.get("progress", False), reuse=job.get("reuse", False))


def pretrain_many(jobs: list[dict], workers: int = 1) -> list[PretrainResult]:
    """Run several :func:`pretrain` calls (dicts of its arguments), in ``workers`` parallel processes.

    On a small CPU, two single-threaded processes (one per rate) use two cores better than one two-threaded process:
    small convolutions parallelise poorly, and a second busy program on the machine makes multi-threaded torch stall
    (threads wait on each other), while single-threaded processes just share the cores.
    """
    if workers <= 1 or len(jobs) <= 1:
        return [_pretrain_job(dict(j, progress=j.get("progress", True))) for j in jobs]
    from vlic.processes import worker_pool

    with worker_pool(min(workers, len(jobs))) as pool:  # workers die with this process (SIGKILL included)
        return list(pool.map(_pretrain_job, jobs))
