"""The transformer of FlowMo (Sargent et al., 2025): a Flux-style double-stream DiT over image patches and a 1-D token
stream, used both as FlowMo's encoder and as its rectified-flow decoder (:mod:`vlic.codec.flowmo.model` assembles them).

Reading order: rotary position embedding over three axes (:func:`rope_tables`, :func:`apply_rope`), μP attention
(:func:`attention`: scale ``8 / head_dim`` instead of ``1 / sqrt(head_dim)``), QK RMSNorm, adaLN modulation,
the :class:`DoubleStreamBlock` (each stream has its own weights, both attend jointly), the readout
(:class:`LastLayer`) and :class:`FluxTransformer`.

Module and parameter names follow FlowMo's ``flowmo/models.py`` exactly, so the released checkpoints load strictly.
Written from the paper and FlowMo's public code (Apache-2.0), not copied.
"""

from __future__ import annotations

import math

import torch
from torch.utils.checkpoint import checkpoint
from torch import nn
from torch.nn import functional as F


# --- positions ---------------------------------------------------------------------------------------------------

def rope_tables(ids: torch.Tensor, axes_dim: tuple[int, ...], theta: int) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin tables for rotary embedding. ``ids`` (B, L, n_axes) positions → two (B, 1, L, head_dim / 2) tensors.

    Axis ``a`` owns ``axes_dim[a] / 2`` consecutive rotation pairs of each head, with frequencies
    ``theta ** (-2k / axes_dim[a])``; angles are computed in float64 and rounded once to float32 (as FlowMo does).
    """
    angles = []
    for a, dim in enumerate(axes_dim):
        if dim % 2:
            raise ValueError(f"every RoPE axis needs an even dimension, got axes_dim={tuple(axes_dim)}")
        omega = 1.0 / theta ** (torch.arange(0, dim, 2, dtype=torch.float64, device=ids.device) / dim)
        angles.append(ids[..., a].double()[..., None] * omega)
    angle = torch.cat(angles, dim=-1).unsqueeze(1)
    return torch.cos(angle).float(), torch.sin(angle).float()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate consecutive channel pairs (x₀, x₁) of ``x`` (B, H, L, D) by the tabulated angles, in float32."""
    pairs = x.float().unflatten(-1, (-1, 2))
    x0, x1 = pairs[..., 0], pairs[..., 1]
    out = torch.stack((cos * x0 - sin * x1, sin * x0 + cos * x1), dim=-1)
    return out.flatten(-2).type_as(x)


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, pe: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Joint attention with RoPE and the μP scale 8 / head_dim. (B, H, L, D) → (B, L, H·D)."""
    cos, sin = pe
    q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
    x = F.scaled_dot_product_attention(q, k, v, scale=8.0 / q.shape[-1])
    return x.transpose(1, 2).flatten(2)


def timestep_embedding(t: torch.Tensor, dim: int = 256, max_period: float = 10000.0, factor: float = 1000.0) -> torch.Tensor:
    """Sinusoidal embedding of flow times t ∈ [0, 1] (scaled by 1000): [cos | sin] of geometric frequencies."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / half).to(t.device)
    args = (factor * t)[:, None].float() * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
    return emb.to(t) if torch.is_floating_point(t) else emb


# --- building blocks ---------------------------------------------------------------------------------------------

class MLPEmbedder(nn.Module):
    def __init__(self, in_dim: int, hidden_dim: int):
        super().__init__()
        self.in_layer = nn.Linear(in_dim, hidden_dim)
        self.out_layer = nn.Linear(hidden_dim, hidden_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out_layer(F.silu(self.in_layer(x)))


class RMSNorm(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + 1e-6)).to(x.dtype) * self.scale


class QKNorm(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.query_norm = RMSNorm(dim)
        self.key_norm = RMSNorm(dim)


class SelfAttention(nn.Module):
    """The projections of one stream (its attention runs jointly with the other stream's, in the block)."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.norm = QKNorm(dim // num_heads)
        self.proj = nn.Linear(dim, dim)

    def qkv_heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, L, dim) → normalized q, k and v, each (B, H, L, head_dim)."""
        B, L, _ = x.shape
        q, k, v = self.qkv(x).view(B, L, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        return self.norm.query_norm(q).to(v), self.norm.key_norm(k).to(v), v


class Modulation(nn.Module):
    """adaLN: the conditioning vector → (shift, scale, gate) for the attention and the MLP half of a block."""

    def __init__(self, dim: int):
        super().__init__()
        self.lin = nn.Linear(dim, 6 * dim)

    def forward(self, vec: torch.Tensor) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
        out = self.lin(F.silu(vec))[:, None, :].chunk(6, dim=-1)
        return out[:3], out[3:]


def _mlp(dim: int, ratio: float) -> nn.Sequential:
    hidden = int(dim * ratio)
    return nn.Sequential(nn.Linear(dim, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, dim))


class DoubleStreamBlock(nn.Module):
    """Image and token streams with separate weights and one joint attention (tokens first, then patches).
    Without a conditioning vector (FlowMo's encoder) the modulation is the identity: shift 0, scale 0, gate 1."""

    def __init__(self, hidden_size: int, num_heads: int, mlp_ratio: float, qkv_bias: bool):
        super().__init__()
        self.num_heads = num_heads
        for stream in ("img", "txt"):
            setattr(self, f"{stream}_mod", Modulation(hidden_size))
            setattr(self, f"{stream}_norm1", nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6))
            setattr(self, f"{stream}_attn", SelfAttention(hidden_size, num_heads, qkv_bias))
            setattr(self, f"{stream}_norm2", nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6))
            setattr(self, f"{stream}_mlp", _mlp(hidden_size, mlp_ratio))

    def _mods(self, stream: str, vec: torch.Tensor | None):
        if vec is None:
            identity = (0.0, 0.0, 1.0)
            return identity, identity
        return getattr(self, f"{stream}_mod")(vec)

    def forward(self, img: torch.Tensor, txt: torch.Tensor, vec: torch.Tensor | None, pe) -> tuple[torch.Tensor, torch.Tensor]:
        streams = {"txt": txt, "img": img}
        mods, qkv = {}, {}
        for name, x in streams.items():
            mods[name] = self._mods(name, vec)
            shift, scale, _ = mods[name][0]
            h = (1 + scale) * getattr(self, f"{name}_norm1")(x) + shift
            qkv[name] = getattr(self, f"{name}_attn").qkv_heads(h)
        q, k, v = (torch.cat((qkv["txt"][i], qkv["img"][i]), dim=2) for i in range(3))
        out = attention(q, k, v, pe)
        n_txt = txt.shape[1]
        attn = {"txt": out[:, :n_txt], "img": out[:, n_txt:]}
        for name, x in streams.items():
            (_, _, gate1), (shift2, scale2, gate2) = mods[name]
            x = x + gate1 * getattr(self, f"{name}_attn").proj(attn[name])
            h = (1 + scale2) * getattr(self, f"{name}_norm2")(x) + shift2
            streams[name] = x + gate2 * getattr(self, f"{name}_mlp")(h)
        return streams["img"], streams["txt"]


class LastLayer(nn.Module):
    """Readout. With a conditioning vector: adaLN (shift, scale) of the normalized stream, *then normalized again*
    (FlowMo's order), then the μP readout — a linear layer on ``x / width_mult``; the released models were trained
    with their own width as μP base, so ``width_mult = 1``."""

    def __init__(self, hidden_size: int, out_features: int, width_mult: float = 1.0):
        super().__init__()
        self.width_mult = width_mult
        self.norm_final = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(hidden_size, out_features)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden_size, 2 * hidden_size))

    def forward(self, x: torch.Tensor, vec: torch.Tensor | None) -> torch.Tensor:
        if vec is not None:
            shift, scale = self.adaLN_modulation(vec).chunk(2, dim=1)
            x = (1 + scale[:, None, :]) * self.norm_final(x) + shift[:, None, :]
        return self.linear(self.norm_final(x) / self.width_mult)


# --- the transformer ---------------------------------------------------------------------------------------------

def patchify(img: torch.Tensor, p: int) -> torch.Tensor:
    """(B, C, H, W) → (B, (H/p)(W/p), p·p·C), channels fastest (FlowMo's layout)."""
    B, C, H, W = img.shape
    return img.reshape(B, C, H // p, p, W // p, p).permute(0, 2, 4, 3, 5, 1).reshape(B, (H // p) * (W // p), p * p * C)


def unpatchify(x: torch.Tensor, p: int, h: int, w: int) -> torch.Tensor:
    B = x.shape[0]
    return x.reshape(B, h // p, w // p, p, p, -1).permute(0, 5, 1, 3, 2, 4).reshape(B, -1, h, w)


def position_ids(batch: int, height: int, width: int, code_length: int, patch: int, device=None):
    """Patch ids (0, row, col) and token ids (i, i, i) — (B, h·w, 3) and (B, code_length, 3), float32."""
    gh, gw = height // patch, width // patch
    rows = torch.arange(gh, device=device, dtype=torch.float32)[:, None].expand(gh, gw)
    cols = torch.arange(gw, device=device, dtype=torch.float32)[None, :].expand(gh, gw)
    img_ids = torch.stack([torch.zeros_like(rows), rows, cols], dim=-1).reshape(1, gh * gw, 3).expand(batch, -1, -1)
    txt_ids = torch.arange(code_length, device=device, dtype=torch.float32)[None, :, None].expand(batch, -1, 3)
    return img_ids, txt_ids


class FluxTransformer(nn.Module):
    """Double-stream transformer: image (B, 3, H, W) and tokens (B, L, context_dim) in, both streams out.

    ``outputs`` selects which readouts are computed ("img", "txt"): FlowMo's encoder only uses the token readout and
    its decoder only the image readout; both readouts' weights exist (they are in the checkpoints)."""

    def __init__(self, in_channels: int, patch_size: int, context_dim: int, hidden_size: int, mlp_ratio: float,
                 num_heads: int, depth: int, axes_dim: tuple[int, ...], theta: int, qkv_bias: bool):
        super().__init__()
        if hidden_size % num_heads:
            raise ValueError(f"hidden size {hidden_size} must be divisible by num_heads {num_heads}")
        if sum(axes_dim) != hidden_size // num_heads:
            raise ValueError(f"RoPE axes {tuple(axes_dim)} must add up to the head dimension {hidden_size // num_heads}")
        self.patch_size, self.axes_dim, self.theta = patch_size, tuple(axes_dim), theta
        self.time_in = MLPEmbedder(256, hidden_size)
        self.img_in = nn.Linear(in_channels, hidden_size)
        self.txt_in = nn.Linear(context_dim, hidden_size)
        self.double_blocks = nn.ModuleList(
            DoubleStreamBlock(hidden_size, num_heads, mlp_ratio, qkv_bias) for _ in range(depth))
        self.final_layer_img = LastLayer(hidden_size, in_channels)
        self.final_layer_txt = LastLayer(hidden_size, context_dim)
        self.gradient_checkpointing = False  # training only: recompute each block in the backward pass

    def forward(self, img: torch.Tensor, txt: torch.Tensor, timesteps: torch.Tensor | None,
                outputs: tuple[str, ...] = ("img", "txt")) -> dict[str, torch.Tensor]:
        B, _, H, W = img.shape
        img_ids, txt_ids = position_ids(B, H, W, txt.shape[1], self.patch_size, img.device)
        pe = rope_tables(torch.cat((txt_ids, img_ids), dim=1), self.axes_dim, self.theta)
        vec = None if timesteps is None else self.time_in(timestep_embedding(timesteps, 256))
        x, t = self.img_in(patchify(img, self.patch_size)), self.txt_in(txt)
        for block in self.double_blocks:
            if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
                x, t = checkpoint(block, x, t, vec, pe, use_reentrant=False)
            else:
                x, t = block(x, t, vec, pe)
        out = {}
        if "img" in outputs:
            out["img"] = unpatchify(self.final_layer_img(x, vec), self.patch_size, H, W)
        if "txt" in outputs:
            out["txt"] = self.final_layer_txt(t, vec)
        return out
