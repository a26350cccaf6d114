"""Diffusion-DPO loss: hand-computed values and the direction of its gradient."""

from __future__ import annotations

import math

import pytest
import torch

from vlic.training.dpo.loss import diffusion_dpo_loss, per_sample_error


def test_per_sample_error():
    t = torch.zeros(2, 1, 2, 2)
    p = torch.tensor([[[[1.0, 1.0], [1.0, 1.0]]], [[[2.0, 0.0], [0.0, 0.0]]]])
    assert per_sample_error(t, p).tolist() == [1.0, 1.0]


def test_equal_policy_and_reference_give_log2():
    x = torch.randn(3, 3, 4, 4)
    p = torch.randn(3, 3, 4, 4)
    terms = diffusion_dpo_loss(x, p, p, x, p, p, beta=10.0)
    assert terms.loss.item() == pytest.approx(math.log(2.0))
    assert terms.implicit_accuracy.item() == 0.0  # inside == 0 is not counted as correct


def test_hand_computed_value():
    z = torch.zeros(1, 1, 1, 1)
    # policy errors: winner 0.25 (pred 0.5), loser 1.0 (pred 1.0); reference errors: 1.0 and 1.0
    terms = diffusion_dpo_loss(z, z + 0.5, z + 1.0, z, z + 1.0, z + 1.0, beta=2.0, weight=1.5)
    # Δ_w = 0.25 − 1 = −0.75, Δ_l = 0 → inside = −2·1.5·(−0.75) = 2.25
    assert terms.inside.item() == pytest.approx(2.25)
    assert terms.loss.item() == pytest.approx(-math.log(1 / (1 + math.exp(-2.25))))
    assert terms.implicit_accuracy.item() == 1.0


def test_gradient_pulls_towards_winner_and_away_from_loser():
    target_w, target_l = torch.zeros(1, 4), torch.ones(1, 4)
    ref = torch.full((1, 4), 0.5)
    pred = torch.full((1, 4), 0.5, requires_grad=True)  # the same prediction scored against both targets
    terms = diffusion_dpo_loss(target_w, pred, ref, target_l, pred, ref, beta=1.0)
    terms.loss.backward()
    # a gradient step (−grad) must move pred towards the winner target 0 — i.e. the gradient is positive
    assert (pred.grad > 0).all()


def test_reference_gets_no_gradient():
    x = torch.randn(2, 4)
    ref = torch.randn(2, 4, requires_grad=True)
    pol = torch.randn(2, 4, requires_grad=True)
    diffusion_dpo_loss(x, pol, ref, x, pol, ref, beta=1.0).loss.backward()
    assert ref.grad is None


def test_beta_must_be_positive():
    x = torch.zeros(1, 1)
    with pytest.raises(ValueError, match="beta"):
        diffusion_dpo_loss(x, x, x, x, x, x, beta=0.0)
