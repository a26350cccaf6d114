"""Diffusion-DPO in rectified-flow form (Wallace et al., 2024, with the flow-matching error in place of ε-MSE).

For a preference pair — winner ``x_w`` and loser ``x_l``, two decoder samples of the same code — both are noised
with the **same** time ``t`` and noise ``ε``; the flow network θ and a frozen reference copy predict the velocity.
With per-sample errors e = ‖v_target − v_pred‖² (mean over pixels)::

    Δ_w = e_θ(x_w) − e_ref(x_w)        Δ_l = e_θ(x_l) − e_ref(x_l)
    L_DPO = −log σ(−β · w(t) · (Δ_w − Δ_l))

i.e. the policy is pushed to fit the winner better and the loser worse than the reference does. The implicit reward
accuracy is the fraction of pairs with −(Δ_w − Δ_l) > 0. Training adds λ · (flow-matching loss on the original images)
to keep the decoder anchored to the data.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class DPOTerms:
    loss: torch.Tensor              # scalar: mean −log σ(inside)
    inside: torch.Tensor            # (B,) −β·w(t)·(Δ_w − Δ_l)
    implicit_accuracy: torch.Tensor  # scalar in [0, 1]
    delta_w: torch.Tensor           # (B,)
    delta_l: torch.Tensor           # (B,)


def per_sample_error(target: torch.Tensor, pred: torch.Tensor) -> torch.Tensor:
    """Mean squared error per sample (all non-batch dimensions averaged)."""
    return (target.float() - pred.float()).pow(2).flatten(1).mean(dim=1)


def diffusion_dpo_loss(
    target_w: torch.Tensor,
    pred_w: torch.Tensor,
    ref_pred_w: torch.Tensor,
    target_l: torch.Tensor,
    pred_l: torch.Tensor,
    ref_pred_l: torch.Tensor,
    beta: float,
    weight: torch.Tensor | float = 1.0,
) -> DPOTerms:
    """The Diffusion-DPO objective for a batch of pairs; ``ref_pred_*`` are detached here."""
    if beta <= 0:
        raise ValueError(f"beta must be positive, got {beta}")
    delta_w = per_sample_error(target_w, pred_w) - per_sample_error(target_w, ref_pred_w.detach())
    delta_l = per_sample_error(target_l, pred_l) - per_sample_error(target_l, ref_pred_l.detach())
    inside = -beta * torch.as_tensor(weight, dtype=delta_w.dtype, device=delta_w.device) * (delta_w - delta_l)
    return DPOTerms(
        loss=-F.logsigmoid(inside).mean(),
        inside=inside,
        implicit_accuracy=(inside.detach() > 0).float().mean(),
        delta_w=delta_w.detach(),
        delta_l=delta_l.detach(),
    )
