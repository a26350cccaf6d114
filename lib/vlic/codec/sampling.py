"""Sampling the rectified-flow decoder: Euler steps from noise (t = 1) to image (t = 0), seeded, with optional CFG.

x_t = (1 − t)·x + t·ε and the network predicts v = ε − x, so one Euler step from t to s is x_s = x_t + (s − t)·v̂.
The first step from t = 1 lands on (1 − s)·x̂₀ + s·ε where x̂₀ = x_1 − v̂ is the one-step prediction — with one
step, the decoder returns x̂₀ itself. ``shift`` > 1 spends more steps at high noise (SD3's timestep shift).
Classifier-free guidance: v = v(∅) + w·(v(c) − v(∅)) with the conditioning zeroed, as dropped in training.
"""

from __future__ import annotations

import torch

from vlic.codec.tiling import tiled


def timesteps(steps: int, shift: float = 1.0) -> torch.Tensor:
    """``steps + 1`` times from 1 down to 0."""
    if steps < 1:
        raise ValueError(f"sampling needs at least 1 step, got {steps}")
    t = torch.linspace(1.0, 0.0, steps + 1)
    return shift * t / (1 + (shift - 1) * t)


def noise_like(mean: torch.Tensor, seed: int) -> torch.Tensor:
    """Seeded noise shaped like ``mean``, drawn on the CPU (the same numbers on any device) and moved to its device."""
    g = torch.Generator().manual_seed(int(seed))
    return torch.randn(mean.shape, generator=g, dtype=mean.dtype).to(mean.device)


@torch.no_grad()
def sample(model, features: torch.Tensor, mean: torch.Tensor, steps: int = 4, seed: int = 0, cfg_scale: float = 1.0,
           tile: int | None = 64, overlap: int = 8, shift: float = 1.0, progress: bool = False) -> torch.Tensor:
    """Decode one image (batch 1) from its conditioning; returns x in [-1, 1], shape of ``mean``."""
    from tqdm.auto import tqdm

    p = model.config.patch
    x = noise_like(mean, seed)
    ts = timesteps(steps, shift)

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
