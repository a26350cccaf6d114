"""FlowMo, the paper's base autoencoder (Sargent et al., 2025, "Flow to the Mode"): a FlowMo-compatible
implementation that loads the released FlowMo-Lo / FlowMo-Hi checkpoints.

* :class:`FlowMoConfig` — FlowMo's own configuration fields (``model.*``, ``data.image_size``, ``eval.sampling.*``)
  plus its DiT entry (``dit_b_4``: width, heads, RoPE axes), which FlowMo scales by ``mup_width / 4``;
* :class:`FlowMo` — encoder and decoder, two :class:`~vlic.codec.flowmo.layers.FluxTransformer`; ``encode``
  (image → ``code_length`` × ``context_dim`` pre-quantization code), :func:`lfq_quantize` (sign of every channel: one
  bit each, FlowMo's test-time ``codebook_size_for_entropy = 1``), :func:`decoder_condition` (code + a ones channel;
  CFG's null condition is that tensor × 0) and ``velocity`` (the decoder's rectified-flow velocity);
* :func:`flow_times` and :func:`rf_sample` — FlowMo's sampler: Euler steps from t = 1 (noise) to 0 on the ``linear``
  or ``pow_p`` schedule, classifier-free guidance only while t lies in the CFG interval (given in EDM noise levels σ,
  mapped to flow time by σ / (1 + σ));
* :func:`load_weights` — ``model_ema_state_dict`` (or ``model_state_dict``) of a released ``.pth`` read with
  ``torch.load(weights_only=True)`` (never unpickles code), or a safetensors file; strict, with one-line errors.

Images are (B, 3, H, W) tensors in [-1, 1] with H, W multiples of ``patch_size``. FlowMo trains and codes
``image_size``-pixel squares (256 for the released models); whole photographs are tiled (:mod:`vlic.codec.flowmo.codec`).
"""

from __future__ import annotations

import ast
import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from vlic.codec.flowmo.layers import FluxTransformer

DIT_B_4 = {"hidden_size": 768, "mlp_ratio": 4.0, "num_heads": 12, "axes_dim": (8, 28, 28), "theta": 10_000, "qkv_bias": True}


@dataclass(frozen=True)
class FlowMoConfig:
    # FlowMo's config.model.* (the released models: FlowMo-Lo context_dim 18, FlowMo-Hi 56)
    patch_size: int = 4
    mup_width: int = 6  # decoder width in units of the DiT entry / 4
    enc_mup_width: int | None = 4  # encoder width (None: mup_width)
    code_length: int = 256
    context_dim: int = 18  # bits per token at test time
    enc_depth: int = 8
    dec_depth: int = 16
    quantization_type: str = "lfq"
    codebook_size_for_entropy: int = 1  # 1 at test time (each channel one bit); training used 9 for the entropy loss
    enable_cfg: bool = True
    enable_mup: bool = True
    entropy_loss_weight: float = 0.0025
    commit_loss_weight: float = 0.000625
    # training-only fields of FlowMo's config.model (kept so a FlowMo config round-trips; inference ignores them)
    fix_initial_norms: bool = True
    fix_norm_mode: str = "l2"
    ema_decay: float = 0.9999
    posttrain_sample: bool = False
    posttrain_sample_enable_cfg: bool = False
    posttrain_sample_k: int = 8
    # config.data.image_size
    image_size: int = 256
    # the DiT entry (FlowMo's DIT_ZOO["dit_b_4"]), before scaling by width / 4
    hidden_size: int = 768
    mlp_ratio: float = 4.0
    num_heads: int = 12
    axes_dim: tuple[int, ...] = (8, 28, 28)
    theta: int = 10_000
    qkv_bias: bool = True
    # config.eval.sampling.*
    sample_steps: int = 25
    schedule: str = "pow_0.25"
    cfg: float = 1.5
    cfg_interval: tuple[float, float] | None = (0.17, 1.02)

    def __post_init__(self) -> None:
        if self.quantization_type != "lfq":
            raise ValueError(f"only FlowMo's 'lfq' quantization is implemented, got quantization_type={self.quantization_type!r}")
        if self.image_size % self.patch_size:
            raise ValueError(f"image_size {self.image_size} must be a multiple of patch_size {self.patch_size}")
        flow_times(1, self.schedule)  # validates the schedule name

    def transformer(self, part: str) -> dict:
        """Constructor arguments of the encoder's or the decoder's transformer (FlowMo's width scaling)."""
        width = self.mup_width if part == "decoder" or self.enc_mup_width is None else self.enc_mup_width
        context = self.context_dim + 1 if part == "decoder" else self.context_dim
        return dict(in_channels=3 * self.patch_size**2, patch_size=self.patch_size, context_dim=context,
                    hidden_size=width * (self.hidden_size // 4), mlp_ratio=self.mlp_ratio, num_heads=self.num_heads,
                    depth=self.dec_depth if part == "decoder" else self.enc_depth,
                    axes_dim=tuple((d // 4) * width for d in self.axes_dim), theta=self.theta, qkv_bias=self.qkv_bias)

    @property
    def bits_per_image(self) -> int:
        return self.code_length * self.context_dim

    @property
    def bits_per_pixel_raw(self) -> float:
        """Bits per pixel of one tile before entropy coding (FlowMo-Lo 0.0703, FlowMo-Hi 0.2188)."""
        return self.bits_per_image / self.image_size**2

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_dict(cls, raw: dict) -> "FlowMoConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in raw.items() if k in known}
        for k in ("axes_dim", "cfg_interval"):
            if isinstance(kw.get(k), list):
                kw[k] = tuple(kw[k])
        return cls(**kw)

    @classmethod
    def from_json(cls, text: str) -> "FlowMoConfig":
        return cls.from_dict(json.loads(text))

    @classmethod
    def from_flowmo(cls, config: dict, dit: dict | None = None) -> "FlowMoConfig":
        """From FlowMo's nested config (``model``, ``data``, ``eval.sampling`` sections, as in its ``base.yaml``) and
        an optional DiT entry replacing ``dit_b_4``. Training-only fields (optimizer, EMA, …) are ignored."""
        flat = dict(config.get("model", {}))
        if "image_size" in config.get("data", {}):
            flat["image_size"] = config["data"]["image_size"]
        sampling = dict(config.get("eval", {}).get("sampling", {}))
        if isinstance(sampling.get("cfg_interval"), str):
            sampling["cfg_interval"] = tuple(ast.literal_eval(sampling["cfg_interval"]))
        flat.update({k: sampling[k] for k in ("sample_steps", "schedule", "cfg", "cfg_interval") if k in sampling})
        flat.update(dit or {})
        return cls.from_dict(flat)


# --- quantization and the decoder condition ----------------------------------------------------------------------

def lfq_quantize(code: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Lookup-free quantization at test time: each channel → +1 if > 0 else −1, with a straight-through gradient.
    Returns (quantized code, bits ∈ {0, 1} as int64), both shaped like ``code``."""
    sign = torch.where(code > 0, torch.ones_like(code), -torch.ones_like(code))
    return code + (sign - code).detach(), (sign > 0).long()


def bits_to_code(bits: torch.Tensor, dtype=torch.float32) -> torch.Tensor:
    return bits.to(dtype) * 2 - 1


def decoder_condition(code: torch.Tensor) -> torch.Tensor:
    """The decoder's token input: the quantized code with a ones channel appended, (B, L, context_dim + 1)."""
    ones = torch.ones_like(code[..., :1])
    return torch.cat([code * ones, ones], dim=-1)


def null_condition(condition: torch.Tensor) -> torch.Tensor:
    """CFG's unconditional input: the whole condition (ones channel included) times 0."""
    return condition * 0.0


# --- the model ---------------------------------------------------------------------------------------------------

class FlowMo(nn.Module):
    def __init__(self, config: FlowMoConfig | None = None):
        super().__init__()
        config = config or FlowMoConfig()
        self.config = config
        self.encoder = FluxTransformer(**config.transformer("encoder"))
        self.decoder = FluxTransformer(**config.transformer("decoder"))

    def encode(self, img: torch.Tensor) -> torch.Tensor:
        """Pre-quantization code (B, code_length, context_dim) of images (B, 3, H, W)."""
        B = img.shape[0]
        tokens = torch.zeros(B, self.config.code_length, self.config.context_dim, device=img.device, dtype=img.dtype)
        return self.encoder(img, tokens, None, outputs=("txt",))["txt"]

    def quantize(self, code: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return lfq_quantize(code)

    def velocity(self, x: torch.Tensor, condition: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Decoder velocity v ≈ ε − x at x_t = (1 − t)·x + t·ε; ``condition`` from :func:`decoder_condition`, t (B,)."""
        return self.decoder(x, condition, t, outputs=("img",))["img"]

    def forward(self, img: torch.Tensor, noised_img: torch.Tensor, t: torch.Tensor, cfg_dropout: float = 0.0):
        """Training form: encode, quantize, (drop the condition with probability ``cfg_dropout``), velocity."""
        code = self.encode(img)
        cond = decoder_condition(self.quantize(code)[0])
        if cfg_dropout > 0:
            cond = cond * (torch.rand(cond.shape[0], device=cond.device) > cfg_dropout)[:, None, None]
        return self.velocity(noised_img, cond, t), code

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # the flow-model calls shared with the laptop codec (vlic.codec.flow_model); a condition is decoder_condition(q)
    @property
    def crop_size(self) -> int:
        return self.config.image_size

    def quantized(self, img: torch.Tensor) -> torch.Tensor:
        return self.quantize(self.encode(img))[0]

    @staticmethod
    def condition(q: torch.Tensor) -> torch.Tensor:
        return decoder_condition(q)

    def code_condition(self, img: torch.Tensor) -> torch.Tensor:
        return self.condition(self.quantized(img))

    def flow_velocity(self, x_t: torch.Tensor, t: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        return self.velocity(x_t, condition, t.reshape(-1))

    @torch.no_grad()
    def draw(self, condition: torch.Tensor, steps: int, seed: int, start: float | None = None) -> torch.Tensor:
        """Seeded samples of ``image_size`` crops with the config's schedule and CFG (noise drawn on the CPU).
        ``start`` must be None or 1: FlowMo has no mean image to start a sampler from below t = 1."""
        from vlic.codec.sampling import noise_like

        if start is not None and start != 1.0:
            raise ValueError(f"FlowMo's sampler starts from pure noise (t₀ = 1), not {start:g}: it has no mean image "
                             "to start from, so dpo.candidate_starts must be empty for FlowMo")
        c, B = self.config, condition.shape[0]
        z = noise_like(torch.zeros(B, 3, c.image_size, c.image_size), seed).to(condition.device)
        return rf_sample(self.velocity, z, condition, steps, c.schedule, c.cfg, c.cfg_interval).clamp(-1, 1)

    def sampler_times(self, steps: int) -> torch.Tensor:
        return flow_times(steps, self.config.schedule)[0]

    def sampler_start(self, condition: torch.Tensor, noise: torch.Tensor) -> tuple[float, torch.Tensor]:
        """(t₀, x_t₀) of FlowMo's sampler: it always starts from pure noise, t₀ = 1."""
        return 1.0, noise


# --- sampling ----------------------------------------------------------------------------------------------------

def flow_times(steps: int, schedule: str = "linear") -> tuple[torch.Tensor, torch.Tensor]:
    """FlowMo's sampling times: (t_i, dt_i) for i = 0…steps−1, from t = 1 down; x ← x − dt·v after each step.
    ``linear``: t = 1, (n−1)/n, …, 1/n with dt = 1/n. ``pow_p``: t_k = (k / n)^(1/p) for k = n…0 (p = 0.25 spends
    the steps near t = 0)."""
    if steps < 1:
        raise ValueError(f"sampling needs at least 1 step, got {steps}")
    if schedule == "linear":
        ts = torch.arange(1, steps + 1).flip(0) / steps
        return ts, torch.ones_like(ts) / steps
    if schedule.startswith("pow_"):
        try:
            p = float(schedule.split("_", 1)[1])
        except ValueError:
            p = 0.0
        if p <= 0:
            raise ValueError(f"schedule {schedule!r}: expected pow_<p> with p > 0, e.g. pow_0.25")
        ts = torch.arange(0, steps + 1).flip(0) ** (1 / p) / steps ** (1 / p)
        return ts[:-1], ts[:-1] - ts[1:]
    raise ValueError(f"unknown sampling schedule {schedule!r}; expected 'linear' or 'pow_<p>'")


def cfg_window(interval: tuple[float, float] | None) -> tuple[float, float] | None:
    """CFG interval in EDM noise levels σ → flow times σ / (1 + σ)."""
    return None if interval is None else tuple(s / (1 + s) for s in interval)


@torch.no_grad()
def rf_sample(velocity, z: torch.Tensor, condition: torch.Tensor, steps: int = 25, schedule: str = "pow_0.25",
              cfg: float = 1.5, cfg_interval: tuple[float, float] | None = (0.17, 1.02)) -> torch.Tensor:
    """Euler-integrate ``velocity(x, condition, t)`` from noise ``z`` (t = 1) to t = 0; returns the unclipped sample.
    CFG (v = v_∅ + cfg·(v_c − v_∅), v_∅ with :func:`null_condition`) runs only when ``cfg != 1`` and only at the
    steps whose t lies in the mapped interval."""
    ts, dts = flow_times(steps, schedule)
    window = cfg_window(cfg_interval)
    null = null_condition(condition) if cfg != 1.0 else None
    x = z
    for t, dt in zip(ts, dts):
        tt = torch.full((z.shape[0],), float(t), device=z.device, dtype=torch.float32)
        v = velocity(x, condition, tt)
        if null is not None and (window is None or window[0] <= t.item() <= window[1]):
            v0 = velocity(x, null, tt)
            v = v0 + cfg * (v - v0)
        x = x - dt * v
    return x


def reconstruct(model: FlowMo, images: torch.Tensor, z: torch.Tensor | None = None, seed: int = 0,
                steps: int | None = None, cfg: float | None = None) -> torch.Tensor:
    """Encode → quantize → sample with the config's sampling settings (overridable) → clip to [-1, 1]."""
    c = model.config
    with torch.no_grad():
        cond = decoder_condition(model.quantize(model.encode(images))[0])
    if z is None:
        z = torch.randn(images.shape, generator=torch.Generator().manual_seed(seed)).to(images)
    x = rf_sample(model.velocity, z, cond, steps or c.sample_steps, c.schedule, c.cfg if cfg is None else cfg, c.cfg_interval)
    return x.clamp(-1, 1)


FLOWMO_LO = FlowMoConfig(context_dim=18)
FLOWMO_HI = FlowMoConfig(context_dim=56)
RELEASED = {"flowmo_lo": FLOWMO_LO, "flowmo_hi": FLOWMO_HI}
RELEASED_BPP_AT_256 = {k: c.bits_per_image / c.image_size**2 for k, c in RELEASED.items()}


# --- weights -----------------------------------------------------------------------------------------------------

class FlowMoWeightsError(ValueError):
    """A FlowMo weight file is missing, unreadable or does not fit the model (one-line message naming the file)."""


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__


def read_state_dict(path: str | Path, key: str | None = None) -> dict[str, torch.Tensor]:
    """The tensors of a FlowMo checkpoint: a ``.pth``/``.pt`` ({"model_ema_state_dict", "model_state_dict", …};
    ``key`` picks one, default the EMA weights FlowMo evaluates with) or a safetensors file."""
    path = Path(path)
    if not path.is_file():
        raise FlowMoWeightsError(f"FlowMo weights '{path}' not found")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as e:  # safetensors raises several types for a bad header / short file
            raise FlowMoWeightsError(f"'{path}' is not a readable safetensors file ({_first_line(e)})") from None
    try:
        import zipfile

        # memory-map zip-format files: a released .pth holds two copies of 0.95 B parameters, only one is used
        obj = torch.load(str(path), map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except Exception as e:  # truncated zip, pickle with code, not a torch file …
        raise FlowMoWeightsError(f"'{path}' is not a readable FlowMo checkpoint ({_first_line(e)})") from None
    if not isinstance(obj, dict):
        raise FlowMoWeightsError(f"'{path}' holds a {type(obj).__name__}, expected a dict of tensors")
    keys = [key] if key else ["model_ema_state_dict", "model_state_dict"]
    for k in keys:
        if isinstance(obj.get(k), dict):
            return obj[k]
    if key is None and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return obj  # a bare state dict
    raise FlowMoWeightsError(f"'{path}' has no {' or '.join(repr(k) for k in keys)} (top-level keys: "
                             f"{', '.join(map(str, list(obj)[:5]))})")


def check_state_dict(model: nn.Module, state: dict[str, torch.Tensor], name: str) -> None:
    """Strict comparison of names and shapes; raises :class:`FlowMoWeightsError` for the first difference."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing:
        raise FlowMoWeightsError(f"'{name}' does not fit this FlowMo ({len(missing)} missing tensors, first "
                                 f"'{missing[0]}' {expected[missing[0]]}; {len(unexpected)} unexpected)")
    if unexpected:
        raise FlowMoWeightsError(f"'{name}' does not fit this FlowMo ({len(unexpected)} unexpected tensors, first "
                                 f"'{unexpected[0]}')")
    for k, shape in expected.items():
        got = state[k]
        if not isinstance(got, torch.Tensor) or tuple(got.shape) != shape:
            got_shape = tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__
            raise FlowMoWeightsError(f"'{name}' does not fit this FlowMo: '{k}' has shape {got_shape}, expected {shape}")


def load_weights(model: FlowMo, path: str | Path, key: str | None = None) -> FlowMo:
    """Load a FlowMo checkpoint into ``model`` strictly (names and shapes), as float32."""
    state = read_state_dict(path, key)
    check_state_dict(model, state, str(path))
    model.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    return model.eval()


def save_released_layout(model: FlowMo, path: str | Path, total_steps: int = 0) -> Path:
    """Save in the released checkpoints' layout ({"total_steps", "model_ema_state_dict", "model_state_dict"})."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    torch.save({"total_steps": int(total_steps), "model_ema_state_dict": state,
                "model_state_dict": {k: v.clone() for k, v in state.items()}}, str(path))
    return path
