"""The diffusion autoencoder: encoder → FSQ latent → latent decoder (features + mean image) → rectified-flow decoder.

Reading order, top to bottom:

* :class:`CodecConfig` — every architectural choice, saved with each checkpoint;
* :class:`Encoder` — convolutions downsampling by ``downsample`` to ``len(fsq_levels)`` channels;
* :class:`LatentDecoder` — upsamples the quantized latent to a full-resolution *feature map* and a deterministic
  *mean reconstruction* μ (what a plain autoencoder would output);
* :class:`FlowDecoder` — a small time-conditioned UNet predicting the rectified-flow velocity
  v = ε − x from the noisy image x_t = (1 − t)·x + t·ε concatenated with the features and μ. It refines μ into a
  sharp sample; dropping the conditioning 10 % of the time in training enables classifier-free guidance;
* :class:`DiffusionCodec` — the three together, with ``encode`` (image → integer codes) and ``condition``
  (codes → features, μ). Sampling lives in :mod:`vlic.codec.sampling`, the entropy model in :mod:`vlic.codec.prior`.

Encoder and latent decoder use no normalization layers, so they process a whole photograph exactly as they process a
training crop; only the flow network (GroupNorm inside its blocks) is applied tile by tile (:mod:`vlic.codec.tiling`).
Images are tensors in [-1, 1], shape (B, 3, H, W), H and W multiples of ``downsample``.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from vlic.codec.fsq import FSQ


@dataclass(frozen=True)
class CodecConfig:
    fsq_levels: tuple[int, ...] = (8, 5, 5, 5)
    downsample: int = 8  # latent grid = image / downsample (a power of two, ≥ patch)
    patch: int = 4  # networks work on patch × patch pixel blocks folded into channels (space-to-depth)
    encoder_width: int = 64  # channels at patch resolution; doubled per further halving, capped at 2×
    cond_channels: int = 32  # feature map channels (at patch resolution) handed to the flow network
    flow_widths: tuple[int, ...] = (64, 96)  # UNet block widths (one down/upsampling between blocks)
    flow_layers_per_block: int = 1
    tile: int = 64  # training crop size = tile size of the flow network at inference
    prior_dim: int = 64
    prior_layers: int = 2
    prior_heads: int = 4
    prior_block: int = 16  # the prior codes the latent in blocks of prior_block × prior_block positions
    sample_steps: int = 1  # the decoder's default sampler (vlic.codec.sampling): Euler steps …
    sample_start: float = 1.0  # … from t₀ = sample_start, x_t₀ = (1 − t₀)·μ + t₀·ε (1: from pure noise)
    prediction: str = "velocity"  # what the flow network's residual corrects (FlowDecoder): "velocity" or "sample"

    def __post_init__(self) -> None:
        for name in ("downsample", "patch"):
            v = getattr(self, name)
            if v < 1 or v & (v - 1):
                raise ValueError(f"{name} must be a power of two, got {v}")
        if self.downsample < self.patch:
            raise ValueError(f"downsample {self.downsample} must be ≥ patch {self.patch}")
        if self.downsample < self.patch * 2 ** (len(self.flow_widths) - 1):
            raise ValueError(f"downsample {self.downsample} must be ≥ patch × the UNet stride ({self.patch} × {2 ** (len(self.flow_widths) - 1)})")
        if self.prediction not in ("velocity", "sample"):
            raise ValueError(f"prediction must be 'velocity' or 'sample', got {self.prediction!r}")
        if self.sample_steps < 1 or not 0.0 < self.sample_start <= 1.0:
            raise ValueError(f"the default sampler needs sample_steps ≥ 1 and 0 < sample_start ≤ 1, got "
                             f"{self.sample_steps} and {self.sample_start}")
        if self.tile % self.downsample:
            raise ValueError(f"tile {self.tile} must be a multiple of downsample {self.downsample} and of the UNet stride")

    @property
    def bits_per_pixel_raw(self) -> float:
        """Rate before entropy coding: log2(∏ levels) bits per latent position / downsample² pixels."""
        return sum(math.log2(L) for L in self.fsq_levels) / self.downsample**2

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "CodecConfig":
        raw = json.loads(text)
        known = {f.name for f in dataclasses.fields(cls)}
        raw = {k: tuple(v) if isinstance(v, list) else v for k, v in raw.items() if k in known}
        return cls(**raw)


class ResBlock(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.conv1 = nn.Conv2d(ch, ch, 3, padding=1)
        self.conv2 = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.silu(self.conv1(F.silu(x))))


def _widths(cfg: CodecConfig) -> list[int]:
    """Channels at /patch, /2·patch, … down to /downsample."""
    n = int(math.log2(cfg.downsample // cfg.patch))
    return [min(cfg.encoder_width * 2**i, cfg.encoder_width * 2) for i in range(n + 1)]


class Encoder(nn.Module):
    def __init__(self, cfg: CodecConfig):
        super().__init__()
        w = _widths(cfg)
        p = cfg.patch
        layers: list[nn.Module] = [nn.PixelUnshuffle(p), nn.Conv2d(3 * p * p, w[0], 3, padding=1), ResBlock(w[0])]
        for i in range(len(w) - 1):
            layers += [nn.SiLU(), nn.Conv2d(w[i], w[i + 1], 4, stride=2, padding=1), ResBlock(w[i + 1])]
        layers += [nn.SiLU(), nn.Conv2d(w[-1], len(cfg.fsq_levels), 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class LatentDecoder(nn.Module):
    """Quantized latent → (features (B, cond_channels, H/patch, W/patch), mean image μ (B, 3, H, W))."""

    def __init__(self, cfg: CodecConfig):
        super().__init__()
        w = _widths(cfg)[::-1]
        layers: list[nn.Module] = [nn.Conv2d(len(cfg.fsq_levels), w[0], 3, padding=1), ResBlock(w[0])]
        for i in range(len(w) - 1):
            layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(w[i], w[i + 1], 3, padding=1), ResBlock(w[i + 1])]
        layers += [ResBlock(w[-1])]
        self.body = nn.Sequential(*layers)
        self.features = nn.Conv2d(w[-1], cfg.cond_channels, 3, padding=1)
        self.mean = nn.Sequential(nn.Conv2d(w[-1], 3 * cfg.patch**2, 3, padding=1), nn.PixelShuffle(cfg.patch))

    def forward(self, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = F.silu(self.body(q))
        return self.features(h), self.mean(h)


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of t ∈ [0, 1] (scaled to 0…1000 like DDPM timesteps), shape (B, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = (t.float() * 1000.0)[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=1)


class TimeResBlock(nn.Module):
    """GroupNorm → SiLU → conv, time-conditioned scale/shift, GroupNorm → SiLU → conv, residual."""

    def __init__(self, cin: int, cout: int, tdim: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(min(8, cin), cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.time = nn.Linear(tdim, 2 * cout)
        self.norm2 = nn.GroupNorm(min(8, cout), cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        nn.init.zeros_(self.conv2.weight), nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.time(temb)[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        return self.skip(x) + self.conv2(F.silu(h))


SAMPLE_PREDICTION_T_MIN = 0.05   # "sample" prediction divides by t; below this time it divides by this instead


class FlowDecoder(nn.Module):
    """Velocity v̂(x_t, t | features, μ): a small time-conditioned UNet (DDPM-style residual blocks).

    It runs at patch resolution: x_t and μ are folded to 3·patch² channels (space-to-depth), concatenated with the
    features, and the output is unfolded back to pixels — the DiT/“patchify” trick that makes a CPU budget go 16×
    further than full-resolution convolutions.

    Preconditioning: the network predicts a correction to the velocity that points from μ to x_t, v̂ = (x_t − μ) + r̂.
    The implied one-step prediction at t = 1 is x̂₀ = μ − r̂, so an untrained network (its last layer starts at zero)
    already decodes the mean image in one step and training only has to learn what μ misses, instead of first
    learning to copy the noise through the UNet. (An EDM-style Gaussian preconditioning around μ was tried too: at
    this training budget it made one-step decoding worse.)

    That ``"velocity"`` form is exact only at t = 1: at a small t the true velocity is ≈ (x_t − x)/t, so the
    residual must grow like 1/t and a small network leaves noise behind (a sampler that starts at t₀ = 0.2 landed
    2.4–3.4 dB below μ on validation photos). ``prediction="sample"`` corrects the *image* instead: x̂₀ = μ + r̂ and
    v̂ = (x_t − x̂₀)/t (t floored at ``SAMPLE_PREDICTION_T_MIN``), so an untrained network decodes μ from any t, each
    Euler step is the interpolation x_s = (s/t)·x_t + (1 − s/t)·x̂₀, and the last step returns x̂₀ itself.

    (A diffusers ``UNet2DModel`` of the same shape works as well; this hand-written one avoids diffusers' ≈ 10–20 s
    import in every CLI call on a small machine.)
    """

    def __init__(self, cfg: CodecConfig):
        super().__init__()
        p, w = cfg.patch, list(cfg.flow_widths)
        tdim = 4 * w[0]
        self.fold, self.unfold = nn.PixelUnshuffle(p), nn.PixelShuffle(p)
        self.time = nn.Sequential(nn.Linear(w[0], tdim), nn.SiLU(), nn.Linear(tdim, tdim))
        self.temb_dim = w[0]
        self.inp = nn.Conv2d(6 * p * p + cfg.cond_channels, w[0], 3, padding=1)
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        for i in range(len(w)):
            self.down.append(TimeResBlock(w[i - 1] if i else w[0], w[i], tdim))
            if i < len(w) - 1:
                self.downsample.append(nn.Conv2d(w[i], w[i], 3, stride=2, padding=1))
        self.mid = TimeResBlock(w[-1], w[-1], tdim)
        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for i in reversed(range(len(w))):
            self.up.append(TimeResBlock(w[-1] + w[i] if i == len(w) - 1 else w[i + 1] + w[i], w[i], tdim))
            if i > 0:
                self.upsample.append(nn.Conv2d(w[i], w[i], 3, padding=1))
        self.out = nn.Sequential(nn.GroupNorm(min(8, w[0]), w[0]), nn.SiLU(), nn.Conv2d(w[0], 3 * p * p, 3, padding=1))
        nn.init.zeros_(self.out[-1].weight), nn.init.zeros_(self.out[-1].bias)
        self.prediction = cfg.prediction

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, features: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
        t = t.reshape(-1).expand(x_t.shape[0]) if t.numel() == 1 else t.reshape(-1)
        temb = self.time(timestep_embedding(t, self.temb_dim))
        h = self.inp(torch.cat([self.fold(x_t), features, self.fold(mean)], dim=1))
        skips = []
        for i, block in enumerate(self.down):
            h = block(h, temb)
            skips.append(h)
            if i < len(self.downsample):
                h = self.downsample[i](h)
        h = self.mid(h, temb)
        for k, block in enumerate(self.up):
            h = block(torch.cat([h, skips.pop()], dim=1), temb)
            if k < len(self.upsample):
                h = self.upsample[k](F.interpolate(h, scale_factor=2.0, mode="nearest"))
        r = self.unfold(self.out(h))
        if self.prediction == "velocity":
            return (x_t - mean) + r
        t_ = t.view(-1, 1, 1, 1).clamp(min=SAMPLE_PREDICTION_T_MIN).to(x_t.dtype)
        return (x_t - (mean + r)) / t_


class DiffusionCodec(nn.Module):
    def __init__(self, cfg: CodecConfig):
        super().__init__()
        self.config = cfg
        self.encoder = Encoder(cfg)
        self.fsq = FSQ(cfg.fsq_levels)
        self.latent_decoder = LatentDecoder(cfg)
        self.flow = FlowDecoder(cfg)

    def quantize(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Image (B, 3, H, W) in [-1, 1] → (quantized latent in [-1, 1], integer codes)."""
        self._check(x)
        return self.fsq(self.encoder(x))

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Image → integer codes (B, C, H/downsample, W/downsample)."""
        return self.quantize(x)[1]

    def condition(self, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Quantized latent → (features, mean image μ)."""
        return self.latent_decoder(q)

    def condition_from_codes(self, codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.condition(self.fsq.codes_to_values(codes))

    def velocity(self, x_t, t, features, mean) -> torch.Tensor:
        return self.flow(x_t, t, features, mean)

    # the flow-model calls shared with FlowMo (vlic.codec.flow_model); a condition is (features, mean μ)
    @property
    def crop_size(self) -> int:
        return self.config.tile

    def quantized(self, x: torch.Tensor) -> torch.Tensor:
        return self.quantize(x)[0]

    def code_condition(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.condition(self.quantized(x))

    def flow_velocity(self, x_t: torch.Tensor, t: torch.Tensor, condition) -> torch.Tensor:
        return self.velocity(x_t, t, *condition)

    @torch.no_grad()
    def draw(self, condition, steps: int, seed: int, start: float | None = None) -> torch.Tensor:
        """Seeded samples of the default sampler (``start``: another t₀ than the configuration's)."""
        from vlic.codec.sampling import sample

        return sample(self, *condition, steps=steps, seed=seed, tile=None, start=start)

    def sampler_times(self, steps: int) -> torch.Tensor:
        from vlic.codec.sampling import timesteps

        return timesteps(steps, start=self.config.sample_start)[:-1]

    def sampler_start(self, condition, noise: torch.Tensor) -> tuple[float, torch.Tensor]:
        """(t₀, x_t₀): where the default sampler starts for this condition and noise, (1 − t₀)·μ + t₀·ε."""
        from vlic.codec.sampling import start_point

        t0 = float(self.config.sample_start)
        return t0, start_point(condition[1], noise, t0)

    def _check(self, x: torch.Tensor) -> None:
        f = self.config.downsample
        if x.ndim != 4 or x.shape[1] != 3 or x.shape[2] % f or x.shape[3] % f:
            raise ValueError(f"expected images (B, 3, H, W) with H, W multiples of {f}, got {tuple(x.shape)}")

    def parameter_counts(self) -> dict[str, int]:
        return {name: sum(p.numel() for p in m.parameters()) for name, m in
                (("encoder", self.encoder), ("latent_decoder", self.latent_decoder), ("flow", self.flow))}
