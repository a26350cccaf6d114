"""Sampling the rectified-flow decoder: Euler steps from noise (t = t₀) to image (t = 0), seeded, with optional CFG.

x_t = (1 − t)·x + t·ε and the network predicts v = ε − x, so one Euler step from t to s is x_s = x_t + (s − t)·v̂.
The first step from t = 1 lands on (1 − s)·x̂₀ + s·ε where x̂₀ = x_1 − v̂ is the one-step prediction — with one
step, the decoder returns x̂₀ itself. ``shift`` > 1 spends more steps at high noise (SD3's timestep shift).
Classifier-free guidance: v = v(∅) + w·(v(c) − v(∅)) with the conditioning zeroed, as dropped in training.

**Starting below t = 1** (``start`` = t₀ < 1): the sampler starts from x_{t₀} = (1 − t₀)·μ + t₀·ε — the codec's mean
image μ noised to level t₀, which is what x_{t₀} of the true image looks like when μ is close to it — and integrates
from t₀ to 0 (SDEdit's idea, with the codec's own estimate as the guide). It spends every step where the decoder
adds detail instead of re-deriving μ from pure noise, and leaves less of the sample to chance: a short sampler of a
small decoder lands nearer the data (chapter 02 measures it). The codec's default t₀ and step count are part of its
configuration (:class:`~vlic.codec.autoencoder.CodecConfig`), so every decoder of a file — CLI, chapters, DPO — uses
the same sampler.
"""

from __future__ import annotations

import torch

from vlic.codec.tiling import tiled


def timesteps(steps: int, shift: float = 1.0, start: float = 1.0) -> torch.Tensor:
    """``steps + 1`` times from ``start`` (t₀ ∈ (0, 1]) down to 0 (the shift is applied to the 1…0 grid, then scaled)."""
    if steps < 1:
        raise ValueError(f"sampling needs at least 1 step, got {steps}")
    if not 0.0 < float(start) <= 1.0:
        raise ValueError(f"sampling must start at a time t₀ in (0, 1], got {start}")
    t = torch.linspace(1.0, 0.0, steps + 1)
    return float(start) * (shift * t / (1 + (shift - 1) * t))


def start_point(mean: torch.Tensor, noise: torch.Tensor, start: float) -> torch.Tensor:
    """x_{t₀} = (1 − t₀)·μ + t₀·ε: where a sampler that starts at ``start`` = t₀ begins (pure noise at t₀ = 1)."""
    return noise if float(start) == 1.0 else (1.0 - float(start)) * mean + float(start) * noise


def noised(x: torch.Tensor, start: torch.Tensor, t: torch.Tensor, t0: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(x_t, velocity target) of sample ``x`` at time ``t`` on the straight path from x (t = 0) to the sampler's start
    ``start`` (t = t₀): x_t = (1 − t/t₀)·x + (t/t₀)·start, v = (start − x)/t₀. With t₀ = 1 and start = ε this is the
    usual x_t = (1 − t)·x + t·ε, v = ε − x. A sampler that starts from (1 − t₀)·μ + t₀·ε integrates exactly this
    path's velocity, so the pairs are noised the way the decoder meets them: on the data path instead, x_t carries
    (1 − t₀)·(x − μ) more detail at t₀ than anything the sampler sees, and DPO learns how to denoise states it never
    visits (issue #23, validation photos, DPO seed 0: the PSNR oracle won 0.59 that way, 0.96 on this path). Pre-training
    on this path is :class:`~vlic.training.pretrain.PretrainConfig`'s ``flow_path: sampler``."""
    r = t / t0
    return (1 - r) * x + r * start, (start - x) / t0


def noise_like(mean: torch.Tensor, seed: int) -> torch.Tensor:
    """Seeded noise shaped like ``mean``, drawn on the CPU (the same numbers on any device) and moved to its device."""
    g = torch.Generator().manual_seed(int(seed))
    return torch.randn(mean.shape, generator=g, dtype=mean.dtype).to(mean.device)


@torch.no_grad()
def sample(model, features: torch.Tensor, mean: torch.Tensor, steps: int = 4, seed: int = 0, cfg_scale: float = 1.0,
           tile: int | None = 64, overlap: int = 8, shift: float = 1.0, progress: bool = False,
           start: float | None = None) -> torch.Tensor:
    """Decode images from their conditioning; returns x in [-1, 1], shape of ``mean``. ``start``: the time t₀ the
    sampler starts at (None: the codec's ``config.sample_start``)."""
    from tqdm.auto import tqdm

    p = model.config.patch
    start = float(model.config.sample_start if start is None else start)
    x = start_point(mean, noise_like(mean, seed), start)
    ts = timesteps(steps, shift, start)

    def velocity(xt, t, feats, mu):
        tt = torch.full((xt.shape[0],), float(t), device=xt.device)
        v = model.velocity(xt, tt, feats, mu)
        if cfg_scale != 1.0:
            v0 = model.velocity(xt, tt, torch.zeros_like(feats), torch.zeros_like(mu))
            v = v0 + cfg_scale * (v - v0)
        return v

    for i in tqdm(range(steps), desc="decode", disable=not progress, leave=False):
        t, s = float(ts[i]), float(ts[i + 1])
        v = tiled(lambda xt, f, m: velocity(xt, t, f, m), x, [features, mean], tile, overlap, [p, 1], align=p)
        x = x + (s - t) * v
    return x.clamp(-1, 1)
