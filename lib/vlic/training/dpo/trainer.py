"""Diffusion-DPO post-training of a pre-trained codec, with an online preference buffer judged concurrently.

Two copies of the pre-trained codec's networks — the laptop :class:`~vlic.codec.autoencoder.DiffusionCodec` or
FlowMo (:class:`~vlic.codec.flowmo.model.FlowMo`, the paper's base model); the trainer only uses the calls of
:mod:`vlic.codec.flow_model`:

* the **policy** — trainable, *encoder included* (the paper does not freeze it): every step re-encodes the originals,
  so its codes may drift from the pre-trained ones; the chapter measures the drift on real bitstreams;
* the **reference** — frozen.

The loop (one process; :class:`accelerate.Accelerator` makes the same code run on one CPU, one GPU or many)::

    every refresh_every steps: random train crops → policy encoder → codes → `candidates` decoder samples per
                               code (different noise seeds) → Candidate(original, a, b, more) → collector (judge
                               threads; with more than two samples, the judge's best against its worst)
    every step:                B pairs from the buffer; the same t and ε for winner and loser;
                               v_target = ε − x;  loss = L_DPO(policy, reference) + λ · ‖v_θ(x_t) − (ε − x)‖² on
                               the originals (conditioning dropped for cfg_dropout of them, as in pre-training)

The judge (the reward, e.g. :class:`~vlic.training.reward.UnanimousReward`) runs on the collector's threads while
training goes on. The pairs of the refresh submitted at step s join the buffer together, in submission order, at
step s + ``merge_after`` (a deadline fixed in advance, not "whenever the thread finishes"): the buffer's contents at
every step — hence the whole run — do not depend on thread timing or on ``judge_workers``, and a run is
bit-reproducible. The trainer waits on the judge only before its first step (until ``min_pairs`` pairs are
accepted), when a batch is not judged by its deadline, and at checkpoints (it drains what is being judged, so the
saved state is complete); every wait is measured. Ties and disagreements are discarded and counted.

On a GPU, ``mixed_precision="bf16"`` runs the policy under bf16 autocast and keeps the frozen reference in bf16, and
``gradient_checkpointing`` recomputes FlowMo's transformer blocks in the backward pass (:func:`memory_estimate` says
what a configuration needs before it runs).

Resumable: every ``checkpoint_every`` steps the policy weights (safetensors), the optimizer, the random generator,
the buffer, the judged-but-not-yet-merged pairs and the curves go to ``resume_dir`` as one atomic unit (a directory
with a SHA-256 manifest, swapped in with one rename: :func:`save_checkpoint`); rerunning with the same
configuration continues from there (bit-identical to an uninterrupted run), a different configuration starts over
(and says so).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from vlic.codec.flow_model import cat_conditions, enable_gradient_checkpointing, mask_condition
from vlic.codec.sampling import noised
from vlic.files import recover_dir, replace_dir
from vlic.images import to_pixels, to_tensor
from vlic.training.buffer import Candidate, Judgement, OnlinePreferenceCollector, PreferenceBuffer, PreferencePair
from vlic.training.dpo.loss import diffusion_dpo_loss
from vlic.training.pretrain import UnsafeResumeState, random_crops, read_state


@dataclass(frozen=True)
class DPOConfig:
    steps: int = 150
    batch_size: int = 8            # preference pairs per step (per process)
    lr: float = 1e-4
    warmup: int = 10
    beta: float = 2000.0           # β of −log σ(−β·w(t)·(Δ_w − Δ_l)); Δ are per-pixel mean squared errors
    flow_weight: float = 1.0       # λ: flow-matching loss on the originals
    cfg_dropout: float = 0.1
    train_encoder: bool = True
    encoder_lr_scale: float = 1.0  # the encoder learns at lr × this (small: the codes, hence the bits, barely move)
    latent_decoder_lr_scale: float = 1.0  # the latent decoder (features and mean head μ; UNet codec) at lr × this;
                                   # 0 freezes it: DPO then changes only how the flow refines μ, never μ itself
    buffer_capacity: int = 256
    refresh_every: int = 25        # steps between two batches of new candidates
    refresh_size: int = 64         # candidate pairs (codes) generated per refresh
    candidates: int = 2            # reconstructions per code: 2 = one pair as sampled; k > 2 = the judge's best
                                   # and worst of k (round robin, k(k−1)/2 judgements): a pair further apart in
                                   # what the judge sees
    candidate_starts: tuple[float, ...] = ()  # sampler start t₀ of each candidate, cycled (empty: the decoder's
                                   # own start for all). Two starts make a pair differ in how much of the start
                                   # noise is left, something the decoder controls (docs/dpo.md)
    min_pairs: int = 16            # accepted pairs needed before the first step
    sample_steps: int = 4          # Euler steps of the decoder when sampling candidates
    dpo_times: str = "logit_normal"  # t of the DPO pairs: "logit_normal" (as in pre-training), "uniform" or
                                   # "sampler" (the sampler's own times); on the sampler path, t ∈ (0, t₀]
    judge_workers: int = 1         # judge threads (0 = judge inline: the trainer waits, same result)
    merge_after: int = 5           # steps between a refresh and its judged pairs joining the buffer (the judge's
                                   # deadline; 0 = wait for the judge at once)
    seed: int = 0
    threads: int = 0               # torch threads (0 = torch's default)
    checkpoint_every: int = 50
    log_every: int = 1
    mixed_precision: str = "fp32"  # "bf16": policy under bf16 autocast, frozen reference stored in bf16 (GPU)
    gradient_checkpointing: bool = False  # recompute transformer blocks in the backward pass (FlowMo)
    dpo_path: str = "sampler"      # how a pair is noised: "sampler" = along the decoder's own path, from where its
                                   # sampler starts (x_t₀) to the sample; "data" = (1 − t)·x + t·ε, Wallace et al.'s
                                   # forward process (the same when the sampler starts from pure noise, t₀ = 1)
    ref_weight: float = 0.0        # γ: + γ·‖v_θ − v_ref‖² at the pairs' noisy states, a trust region around the
                                   # reference where DPO trains (0 = off; docs/dpo.md: it removes the coin's drift,
                                   # and what is left of the oracle's effect has a seed-dependent sign)


@dataclass
class DPOResult:
    model: torch.nn.Module                      # the post-trained networks (policy), eval mode, on CPU
    curves: list[dict] = field(default_factory=list)       # one row per logged step
    judge_log: list[dict] = field(default_factory=list)    # one row per judged candidate
    stats: dict = field(default_factory=dict)   # collector statistics (accepted, discarded, judge calls, …)
    seconds: float = 0.0                        # wall time of this call's training loop
    wait_seconds: float = 0.0                   # of which the trainer waited on the judge (first fill, checkpoints)
    resumed_from: int = 0
    refreshes: int = 0


class PolicyForward(nn.Module):
    """Everything the policy computes with gradients, in one ``forward`` (what DDP wraps under accelerate):
    encode and quantize the originals, condition, and predict velocities for [winner_t, loser_t, original_t]."""

    def __init__(self, codec: nn.Module, train_encoder: bool = True, train_latent_decoder: bool = True):
        super().__init__()
        self.codec = codec
        self.train_encoder = train_encoder
        if not train_encoder:
            codec.encoder.requires_grad_(False)
        if not train_latent_decoder and hasattr(codec, "latent_decoder"):
            codec.latent_decoder.requires_grad_(False)

    def forward(self, x: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """``x`` (B, …) originals; ``x_t`` (3B, …) noisy winner, loser, original; ``t`` (3B,); ``keep`` (B,) 0/1."""
        with torch.set_grad_enabled(self.train_encoder and torch.is_grad_enabled()):
            q = self.codec.quantized(x)
        cond = self.codec.condition(q)
        return self.codec.flow_velocity(x_t, t, cat_conditions(cond, cond, mask_condition(cond, keep)))


def _pixel_list(x: torch.Tensor) -> list[np.ndarray]:
    return list(to_pixels(x))


def _lr(step: int, cfg: DPOConfig) -> float:
    return cfg.lr * min(1.0, (step + 1) / max(1, cfg.warmup))


def _code_digest() -> str:
    """SHA-256 of the training code itself, so a resume state made by an older version is not reused."""
    import hashlib

    from vlic.training import buffer
    from vlic.training.dpo import loss as dpo_loss

    h = hashlib.sha256()
    for path in sorted({__file__, dpo_loss.__file__, buffer.__file__}):
        h.update(Path(path).read_bytes())
    return h.hexdigest()[:16]


CHECKPOINT_DIR = "checkpoint"  # resume_dir/rank<r>/checkpoint/{policy.safetensors, state.pt, manifest.json}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save_checkpoint(target: Path, weights: dict[str, torch.Tensor], state: dict) -> None:
    """Write one checkpoint as one unit: a staging directory with the weights, the state and a manifest of their
    SHA-256, made ``target`` in one directory swap (:func:`vlic.files.replace_dir`). A kill at any moment leaves the
    previous checkpoint or the new one, never half of each."""
    from safetensors.torch import save_file

    target = Path(target)
    staging = target.with_name(f"{target.name}.staging")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    save_file(weights, str(staging / "policy.safetensors"))
    torch.save(state, staging / "state.pt")
    files = {name: _sha256(staging / name) for name in ("policy.safetensors", "state.pt")}
    (staging / "manifest.json").write_text(json.dumps({"step": state.get("step"), "files": files}, sort_keys=True))
    for name in (*files, "manifest.json"):
        with open(staging / name, "rb") as f:
            os.fsync(f.fileno())
    replace_dir(staging, target)


def load_checkpoint(target: Path) -> tuple[dict[str, torch.Tensor], dict] | None:
    """(weights, state) of the checkpoint at ``target`` after checking its manifest; None if there is none or it
    does not verify (then it says so: training restarts rather than mixing two checkpoints)."""
    from safetensors.torch import load_file

    folder = recover_dir(target)
    if folder is None:
        return None
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
        bad = [n for n, digest in manifest["files"].items() if _sha256(folder / n) != digest]
        if bad:
            raise ValueError(f"{', '.join(bad)} do not match the manifest")
        weights = load_file(str(folder / "policy.safetensors"))
        state = read_state(folder / "state.pt", allow=(PreferencePair,))  # data only: a planted file runs nothing
        if state.get("step") != manifest.get("step"):
            raise ValueError(f"state step {state.get('step')} ≠ manifest step {manifest.get('step')}")
    except UnsafeResumeState:
        raise
    except (OSError, ValueError, KeyError, TypeError, RuntimeError, EOFError) as e:
        print(f"checkpoint '{folder}' is damaged ({e}); post-training from scratch")
        return None
    return weights, state


def state_key(checkpoint, cfg: DPOConfig, reward_name: str, n_images: int) -> str:
    """What a resume state must match: the base codec, the configuration, the reward, the data, the code."""
    keep = {k: v for k, v in dataclasses.asdict(cfg).items()
            if k not in ("threads", "checkpoint_every", "log_every", "judge_workers", "gradient_checkpointing")}
    return json.dumps({"codec": checkpoint.fingerprint, "dpo": keep, "reward": reward_name, "images": n_images,
                       "code": _code_digest()}, sort_keys=True)


@torch.no_grad()
def sample_candidates(model: nn.Module, x: torch.Tensor, steps: int, seeds: tuple[int, ...],
                      chunk: int = 32, starts: tuple[float, ...] = ()) -> tuple[torch.Tensor, ...]:
    """Encode crops ``x`` with ``model`` and decode each code once per noise seed in ``seeds`` (each seed draws one
    noise tensor for the whole chunk, so every sample has its own noise): one tensor of reconstructions per seed.
    ``starts``: the sampler's start t₀ of the i-th candidate is ``starts[i % len(starts)]`` (empty: the decoder's
    own start)."""
    outs: list[list[torch.Tensor]] = [[] for _ in seeds]
    for s in range(0, len(x), chunk):
        cond = model.code_condition(x[s : s + chunk])
        for i, (out, seed) in enumerate(zip(outs, seeds)):
            out.append(model.draw(cond, steps, seed + s, start=starts[i % len(starts)] if starts else None))
    return tuple(torch.cat(o) for o in outs)


DPO_TIMES = ("logit_normal", "uniform", "sampler")
DPO_PATHS = ("sampler", "data")


def path_start(model: nn.Module, cfg: DPOConfig) -> float:
    """t₀ of the pairs' noising path: where the decoder's sampler starts (``dpo_path: sampler``), else 1."""
    if cfg.dpo_path != "sampler":
        return 1.0
    grid = model.sampler_times(cfg.sample_steps)
    return float(grid.max())


def pair_times(model: nn.Module, cfg: DPOConfig, n: int, gen: torch.Generator) -> torch.Tensor:
    """``n`` times of the DPO pairs in (0, t₀]: the sampler's own times, or logit-normal / uniform over (0, 1)
    scaled to the path's t₀ (:func:`path_start`)."""
    if cfg.dpo_times == "sampler":
        grid = informative_times(model, cfg)
        return grid[torch.randint(0, len(grid), (n,), generator=gen)]
    u = torch.sigmoid(torch.randn(n, generator=gen)) if cfg.dpo_times == "logit_normal" else 1 - torch.rand(n, generator=gen)
    return path_start(model, cfg) * u


def informative_times(model: nn.Module, cfg: DPOConfig) -> torch.Tensor:
    """The sampler's times at which a pair carries a preference: all but where the noising path starts (pure noise
    at t = 1, or x_t₀ on the sampler's path), where winner and loser share their noisy input (see
    :func:`check_dpo_times`)."""
    grid = model.sampler_times(cfg.sample_steps)
    return grid[grid < min(1.0, path_start(model, cfg))]


def check_dpo_times(model: nn.Module, cfg: DPOConfig) -> None:
    """Refuse, in one line, a configuration whose DPO pairs carry no preference: ``dpo_times: sampler`` with a
    one-step sampler. Its only time is where the path starts — pure noise at t = 1, or x_t₀ of a sampler that starts
    at t₀ — and there winner and loser share their noisy input, so the loss cannot tell them apart and only pushes
    the one-step prediction along (x_w − x_l): the same push for every noise, which fits each pair's texture instead
    of the preference."""
    if cfg.dpo_times != "sampler":
        return
    grid = model.sampler_times(cfg.sample_steps)
    if len(informative_times(model, cfg)) == 0:
        raise ValueError(f"dpo_times 'sampler' with sample_steps {cfg.sample_steps} trains every pair at t = "
                         f"{float(grid.max()):g}, where the path starts and winner and loser share their noisy input, "
                         "so DPO learns no preference: use ≥ 2 steps or dpo_times 'logit_normal'")


def train_dpo(
    checkpoint,
    images: list[np.ndarray],
    reward: Callable[[Candidate], Judgement],
    cfg: DPOConfig,
    resume_dir: str | Path | None = None,
    reward_name: str = "",
    accelerator=None,
    progress: bool = True,
    stop_at: int | None = None,
) -> DPOResult:
    """Post-train ``checkpoint``'s codec (a laptop :class:`~vlic.codec.checkpoint.Checkpoint` or a
    :class:`~vlic.codec.flowmo.checkpoint.FlowMoCheckpoint`) on random crops of ``images`` (uint8 RGB) with preferences from ``reward``.

    ``stop_at``: return after that many steps (the run is interrupted as by a time limit; its state is saved to
    ``resume_dir`` and the next call continues it). While it runs, the rank's resume directory is locked
    (:class:`vlic.processes.ResumeLock`): a second run into it stops with :class:`vlic.processes.ResumeDirBusy`."""
    from accelerate import Accelerator

    from vlic.processes import ResumeLock

    if cfg.mixed_precision not in ("fp32", "bf16"):
        raise ValueError(f"mixed_precision must be 'fp32' or 'bf16', got {cfg.mixed_precision!r}")
    if cfg.candidates < 2:
        raise ValueError(f"candidates must be ≥ 2 reconstructions per code (a pair), got {cfg.candidates}")
    accelerator = accelerator or Accelerator()
    args = (checkpoint, images, reward, cfg, resume_dir, reward_name, accelerator, progress, stop_at)
    if resume_dir is None:
        return _train_dpo(*args)
    with ResumeLock(Path(resume_dir) / f"rank{accelerator.process_index}"):
        return _train_dpo(*args)


def _train_dpo(checkpoint, images, reward, cfg, resume_dir, reward_name, accelerator, progress, stop_at) -> DPOResult:
    from accelerate import Accelerator

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if cfg.dpo_times not in DPO_TIMES:
        raise ValueError(f"dpo_times must be one of {', '.join(DPO_TIMES)}, got {cfg.dpo_times!r}")
    if cfg.dpo_path not in DPO_PATHS:
        raise ValueError(f"dpo_path must be one of {', '.join(DPO_PATHS)}, got {cfg.dpo_path!r}")
    if cfg.merge_after < 0:
        raise ValueError(f"merge_after must be ≥ 0 steps, got {cfg.merge_after}")
    check_dpo_times(checkpoint.model, cfg)
    accelerator = accelerator or Accelerator()
    rank, device = accelerator.process_index, accelerator.device
    torch.manual_seed(cfg.seed + 1000 * rank)
    crop = checkpoint.model.crop_size
    policy = PolicyForward(copy.deepcopy(checkpoint.model).train(), cfg.train_encoder, cfg.latent_decoder_lr_scale > 0)
    if cfg.gradient_checkpointing:
        enable_gradient_checkpointing(policy.codec)
    ref = copy.deepcopy(checkpoint.model).eval().requires_grad_(False).to(device)
    bf16 = cfg.mixed_precision == "bf16"
    if bf16:
        ref = ref.to(torch.bfloat16)  # frozen: half the memory; it runs under the same autocast as the policy

    def autocast():  # torch's own autocast: accelerate's mixed precision is fixed once per process
        return torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)
    params = [p for p in policy.parameters() if p.requires_grad]
    enc = {id(p) for p in policy.codec.encoder.parameters()}
    lat = {id(p) for p in policy.codec.latent_decoder.parameters()} if hasattr(policy.codec, "latent_decoder") else set()
    groups = [{"params": [p for p in params if id(p) not in enc | lat], "scale": 1.0}]
    if cfg.train_encoder:
        groups.append({"params": [p for p in params if id(p) in enc], "scale": float(cfg.encoder_lr_scale)})
    if cfg.latent_decoder_lr_scale > 0 and lat:
        groups.append({"params": [p for p in params if id(p) in lat], "scale": float(cfg.latent_decoder_lr_scale)})
    opt = torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=0.0, betas=(0.9, 0.99))
    gen = torch.Generator().manual_seed(cfg.seed + 1000 * rank)
    buffer = PreferenceBuffer(cfg.buffer_capacity, seed=cfg.seed + rank)
    collector = OnlinePreferenceCollector(buffer, reward, cfg.judge_workers)
    data = [to_tensor(im)[0] for im in images]
    curves: list[dict] = []
    start, elapsed, waited, refreshes = 0, 0.0, 0.0, 0
    merges: dict[int, int] = {}   # staged batch → the step at which its pairs join the buffer
    key = state_key(checkpoint, cfg, reward_name, len(images))
    resume_dir = Path(resume_dir) / f"rank{rank}" if resume_dir else None

    saved = load_checkpoint(resume_dir / CHECKPOINT_DIR) if resume_dir else None
    if saved is not None:
        weights, state = saved
        if state.get("key") == key:
            policy.codec.load_state_dict(weights)
            opt.load_state_dict(state["opt"])
            gen.set_state(state["gen"])
            buffer.load_state_dict(state["buffer"])
            collector.load_state_dict(state["collector"])
            curves, start, elapsed = state["curves"], state["step"], state["seconds"]
            waited, refreshes = state["waited"], state["refreshes"]
            merges = {int(b): int(at) for b, at in state["merges"].items()}
        else:
            print(f"resume state in '{resume_dir}' was made with another configuration: post-training from scratch")
    resumed_from = start

    policy, opt = accelerator.prepare(policy, opt)
    unwrapped = lambda: accelerator.unwrap_model(policy).codec  # noqa: E731

    def refresh(step: int) -> int:
        nonlocal refreshes
        model = unwrapped()
        x = random_crops(data, crop, cfg.refresh_size, gen).to(device)
        seeds = tuple(int(s) for s in torch.randint(0, 2**30, (cfg.candidates,), generator=gen))
        with autocast():
            draws = [d.float() for d in sample_candidates(model, x, cfg.sample_steps, seeds,
                                                          starts=cfg.candidate_starts)]
        a, b = draws[0], draws[1]
        originals, pixels = _pixel_list(x), [_pixel_list(d) for d in draws]
        spread = (a - b).abs().flatten(1).mean(1).mul(127.5).tolist()   # how different two samples are (0–255)
        batch = collector.submit_batch(
            Candidate(o, ps[0], ps[1], {"step": step, "refresh": refreshes, "rank": rank, "sample_gap": round(d, 3)},
                      more=tuple(ps[2:]))
            for o, d, ps in zip(originals, spread, zip(*pixels)))
        refreshes += 1
        return batch

    def merge_due(step: int) -> None:
        nonlocal waited
        for batch in sorted(b for b, at in merges.items() if at <= step):
            waited += collector.merge(batch)
            del merges[batch]

    def save_state(step: int, seconds: float) -> None:
        if not resume_dir:
            return
        nonlocal waited
        t0 = time.perf_counter()
        collector.drain()
        waited += time.perf_counter() - t0
        weights = {k: v.detach().contiguous().cpu() for k, v in unwrapped().state_dict().items()}
        save_checkpoint(resume_dir / CHECKPOINT_DIR, weights,
                        {"key": key, "opt": opt.state_dict(), "gen": gen.get_state(), "buffer": buffer.state_dict(),
                         "collector": collector.state_dict(), "curves": curves, "step": step, "seconds": seconds,
                         "waited": waited, "refreshes": refreshes, "merges": dict(merges)})

    t0 = time.perf_counter()
    try:
        # first fill: the trainer waits for the judge until min_pairs pairs are accepted
        while len(buffer) < min(cfg.min_pairs, cfg.buffer_capacity) and start < cfg.steps:
            if refreshes >= 20:
                raise RuntimeError(f"the judge accepted {len(buffer)} of {collector.stats.judged} candidate pairs "
                                   f"in {refreshes} refreshes; {min(cfg.min_pairs, cfg.buffer_capacity)} are needed "
                                   f"to start (discarded: {collector.stats.discarded})")
            waited += collector.merge(refresh(start))
        policy.train()
        end = cfg.steps if stop_at is None else max(start, min(cfg.steps, int(stop_at)))
        bar = tqdm(range(start, end), desc="DPO", disable=not progress, initial=start, total=cfg.steps)
        for step in bar:
            if step > 0 and step % cfg.refresh_every == 0 and step + cfg.refresh_every <= cfg.steps:
                merges[refresh(step)] = step + cfg.merge_after
            merge_due(step)
            for g in opt.param_groups:
                g["lr"] = _lr(step, cfg) * g["scale"]
            pairs = buffer.sample(cfg.batch_size)
            B = len(pairs)
            x = to_tensor([p.original for p in pairs]).to(device)
            xw = to_tensor([p.winner for p in pairs]).to(device)
            xl = to_tensor([p.loser for p in pairs]).to(device)
            t = pair_times(unwrapped(), cfg, B, gen).to(device).view(B, 1, 1, 1)
            eps = torch.randn(x.shape, generator=gen).to(device)          # the same ε for winner and loser
            t_o = torch.sigmoid(torch.randn(B, generator=gen)).to(device).view(B, 1, 1, 1)
            eps_o = torch.randn(x.shape, generator=gen).to(device)
            keep = (torch.rand(B, generator=gen) >= cfg.cfg_dropout).float().to(device)
            with torch.no_grad(), autocast():
                rc = ref.code_condition(x)   # the reference's μ: where the deployed sampler starts for these codes
                path_t0, path_x0 = ref.sampler_start(rc, eps) if cfg.dpo_path == "sampler" else (1.0, eps)
            (xw_t, tgt_w), (xl_t, tgt_l) = (noised(xw, path_x0.float(), t, path_t0),
                                            noised(xl, path_x0.float(), t, path_t0))
            x_t = torch.cat([xw_t, xl_t, (1 - t_o) * x + t_o * eps_o])
            tt = torch.cat([t.view(B), t.view(B), t_o.view(B)])
            with autocast():
                v = policy(x, x_t, tt, keep)
            with torch.no_grad(), autocast():
                v_ref = ref.flow_velocity(x_t[: 2 * B], tt[: 2 * B], cat_conditions(rc, rc)).float()
            v = v.float()
            terms = diffusion_dpo_loss(tgt_w, v[:B], v_ref[:B], tgt_l, v[B : 2 * B], v_ref[B:], cfg.beta)
            flow = F.mse_loss(v[2 * B :], eps_o - x)
            loss = terms.loss + cfg.flow_weight * flow
            if cfg.ref_weight:
                loss = loss + cfg.ref_weight * F.mse_loss(v[: 2 * B], v_ref)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"DPO loss became {loss.item()} at step {step}: lower lr or beta")
            opt.zero_grad(set_to_none=True)
            accelerator.backward(loss)
            accelerator.clip_grad_norm_(params, 1.0)
            opt.step()
            if step % cfg.log_every == 0 or step == cfg.steps - 1:
                s = collector.stats
                curves.append({
                    "step": step, "loss": round(loss.item(), 6), "dpo_loss": round(terms.loss.item(), 6),
                    "flow_loss": round(flow.item(), 6),
                    "implicit_accuracy": round(terms.implicit_accuracy.item(), 4),
                    "inside": round(terms.inside.mean().item(), 6),
                    "delta_w": round(terms.delta_w.mean().item(), 8), "delta_l": round(terms.delta_l.mean().item(), 8),
                    "pair_age": round(float(np.mean([step - p.meta.get("step", step) for p in pairs])), 2),
                    "buffer": len(buffer), "judged": s.judged, "accepted": s.accepted, "judge_calls": s.judge_calls,
                    "pending": collector.pending, "lr": _lr(step, cfg),
                    "seconds": round(elapsed + time.perf_counter() - t0, 3),
                })
                bar.set_postfix(loss=f"{terms.loss.item():.4f}", acc=f"{terms.implicit_accuracy.item():.2f}",
                                buf=len(buffer))
            if cfg.checkpoint_every and (step + 1) % cfg.checkpoint_every == 0 and step + 1 < end:
                save_state(step + 1, elapsed + time.perf_counter() - t0)
        seconds = time.perf_counter() - t0
        save_state(end, elapsed + seconds)
        collector.drain()
    finally:
        collector.close()
    model = copy.deepcopy(unwrapped()).cpu().eval()
    return DPOResult(model, curves, list(collector.log), collector.stats.as_dict(), seconds, waited, resumed_from,
                     refreshes)


def post_trained_checkpoint(base, result: DPOResult, cfg: DPOConfig, extra: dict | None = None):
    """The post-trained codec as a checkpoint of the base's kind: policy weights, the pre-trained token prior (not
    refitted), a summary."""
    summary = {"dpo": dataclasses.asdict(cfg), "base_fingerprint": base.fingerprint,
               "seconds": round(result.seconds, 1), "stats": result.stats, **(extra or {})}
    return dataclasses.replace(base, model=result.model, training={**(base.training or {}), "post_training": summary},
                               path=None)
