"""Chapter 02 under ``codec.family: flowmo`` (the paper's pipeline): the released FlowMo checkpoints are *imported*,
not pre-trained. Each rate point's ``.pth`` (FlowMo-Lo → low, FlowMo-Hi → high) is loaded strictly, its tokens on
the training photos (every 256-px tile, FlowMo's encoder and LFQ) fit the project's token prior, and the result is
saved as ``models/codec_<rate>.safetensors`` (``vlic-flowmo/1``: FlowMo weights + fitted prior + config + the
``.pth``'s SHA-256), which every later chapter loads through :mod:`vlic.codec.families`.

The returned :class:`~vlic.training.pretrain.PretrainResult` has no autoencoder curves (nothing was trained) and the
prior's curve in bits per token bit (1.0 = the uniform prior of a bare ``.pth``).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from vlic.codec.families import load
from vlic.codec.flowmo.checkpoint import FlowMoCheckpoint
from vlic.codec.flowmo.codec import FlowMoCodec, fit_token_prior
from vlic.fetch import sha256_of
from vlic.training.pretrain import PretrainResult


def import_released(weights: str | Path, images: list[np.ndarray], out_path: str | Path, rate: str,
                    prior_steps: int = 200, prior_dim: int = 64, prior_layers: int = 2, prior_heads: int = 4,
                    batch: int = 8, seed: int = 0) -> PretrainResult:
    """Load ``weights`` (a released-layout FlowMo ``.pth``), fit the token prior to its tokens on ``images`` and save
    the codec checkpoint to ``out_path``."""
    t0, cpu0 = time.perf_counter(), time.process_time()
    weights = Path(weights)
    if not weights.is_file():
        raise FileNotFoundError(f"FlowMo weights '{weights}' not found: `vlic models download flowmo_lo` "
                                f"(and flowmo_hi), or point codec.flowmo_{rate} at them")
    base = load(weights)
    if not isinstance(base, FlowMoCheckpoint):
        raise ValueError(f"'{weights}' is a laptop-codec checkpoint, not FlowMo weights")
    dims = {"dim": int(prior_dim), "layers": int(prior_layers), "heads": int(prior_heads)}
    prior, curve = fit_token_prior(FlowMoCodec(base, device="auto"), images, steps=int(prior_steps), batch=int(batch),
                                   seed=int(seed), dims=dims)
    seconds = time.perf_counter() - t0
    training = {"imported_from": weights.name, "sha256": sha256_of(weights), "prior": dims,
                "prior_steps": int(prior_steps), "prior_bits_per_bit": curve[-1]["bits_per_bit"] if curve else None,
                "prior_seconds": round(seconds, 1)}
    ck = FlowMoCheckpoint(base.model, prior, None, "fitted", training, rate)
    ck.save(out_path)
    return PretrainResult(ck, [], curve, 0.0, seconds, 0, time.process_time() - cpu0)
