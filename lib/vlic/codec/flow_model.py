"""What post-training and held-out scoring ask of a codec's networks — the same calls for both families, so one
Diffusion-DPO trainer and one held-out path serve the laptop UNet codec (:class:`~vlic.codec.autoencoder.DiffusionCodec`)
and FlowMo (:class:`~vlic.codec.flowmo.model.FlowMo`):

* ``crop_size`` — the side of the square crops the networks train on (the UNet's tile, FlowMo's ``image_size``);
* ``quantized(x)`` — images (B, 3, s, s) in [-1, 1] → their quantized code, with the straight-through gradient of the
  quantizer (so an encoder trained by DPO gets gradients); ``condition(q)`` — the decoder's condition of a quantized
  code; ``code_condition(x)`` — both;
* ``flow_velocity(x_t, t, condition)`` — the decoder's rectified-flow velocity v ≈ ε − x at x_t = (1 − t)·x + t·ε;
* ``draw(condition, steps, seed)`` — a seeded sample of the crops (the decoder's own sampler, no tiling), in [-1, 1];
* ``sampler_times(steps)`` — the times t > 0 at which that sampler queries the velocity.

A condition is a tensor (FlowMo: code + ones channel) or a tuple of tensors (UNet: features, mean μ); the
helpers below treat both alike. Dropping it (classifier-free guidance's null condition) multiplies every tensor by 0
— how both families train and sample.
"""

from __future__ import annotations

import torch
from torch.utils._pytree import tree_map


def mask_condition(condition, keep: torch.Tensor):
    """``condition`` with sample i multiplied by ``keep[i]`` (1 keeps it, 0 is the null condition)."""
    return tree_map(lambda c: c * keep.view(-1, *([1] * (c.dim() - 1))).to(c.dtype), condition)


def cat_conditions(*conditions):
    """Conditions of several batches, concatenated along the batch."""
    return tree_map(lambda *cs: torch.cat(cs), *conditions)


def enable_gradient_checkpointing(model) -> None:
    """Recompute the model's transformer blocks in the backward pass (FlowMo); :class:`ValueError` for a model
    without such blocks."""
    blocks = [m for m in model.modules() if hasattr(m, "gradient_checkpointing")]
    if not blocks:
        raise ValueError(f"{type(model).__name__} has no transformer blocks to checkpoint (gradient_checkpointing is "
                         "for FlowMo)")
    for m in blocks:
        m.gradient_checkpointing = True
