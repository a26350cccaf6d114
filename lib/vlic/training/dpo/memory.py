"""What a Diffusion-DPO post-training of FlowMo needs before it runs: an *estimate* of GPU memory and compute, from
the configuration alone (printed by chapter 04 and quoted in the README; nothing here is measured).

Memory = weights + activations:

* weights: the policy in fp32, its gradients (fp32) and AdamW's two moments (fp32) for every trained parameter (the
  encoder too unless ``train_encoder`` is off), plus the frozen reference (bf16 under ``mixed_precision="bf16"``,
  else fp32) — exact counts of the configuration's parameters, built on the meta device;
* activations of the policy's backward pass: 3·B decoder samples (winner, loser, original) and B encoder samples;
  a double-stream block keeps about (10 + 2·mlp_ratio)·hidden values per token (norm/modulated inputs, q/k/v,
  attention output, the MLP's two hidden tensors, residuals), 2 bytes each under bf16 autocast, 4 in fp32; with
  ``gradient_checkpointing`` only each block's two input streams are kept and one block's activations exist at a
  time. Attention scores are not counted: on a GPU, ``scaled_dot_product_attention`` uses the flash /
  memory-efficient kernels that never materialise them.

Compute (FLOPs, 2 per multiply–add): a block costs 2·params·tokens + 4·tokens²·hidden (attention) per sample;
training = forward + backward (2× forward) + one recomputation with checkpointing; the reference runs forward only;
each refresh samples ``refresh_size`` codes twice with ``sample_steps`` steps (two decoder evaluations in the CFG
interval). Hours at an assumed sustained throughput, e.g. 150 TFLOP/s of bf16 (≈ 50 % of an A100's / 15 % of an
H100's dense peak) — real runs differ by the attention kernels, the data loading and the VLM judge, which runs on
other hardware.
"""

from __future__ import annotations

import math

import torch


def _transformer_flops(params: int, tokens: int, hidden: int, depth: int) -> float:
    return 2.0 * params * tokens + 4.0 * depth * tokens**2 * hidden


def memory_estimate(config, cfg, tflops: float = 150.0) -> dict:
    """Estimated bytes and FLOPs of post-training a FlowMo of ``config`` (a
    :class:`~vlic.codec.flowmo.model.FlowMoConfig`) with the trainer's ``cfg`` (a
    :class:`~vlic.training.dpo.trainer.DPOConfig`), per process; hours at ``tflops`` TFLOP/s sustained."""
    from vlic.codec.flowmo.model import FlowMo, cfg_window, flow_times

    with torch.device("meta"):
        model = FlowMo(config)
    enc = sum(p.numel() for p in model.encoder.parameters())
    dec = sum(p.numel() for p in model.decoder.parameters())
    n = enc + dec
    trained = n if cfg.train_encoder else dec
    bf16 = cfg.mixed_precision == "bf16"
    weights = 4 * n + (4 + 8) * trained + (2 if bf16 else 4) * n
    value = 2 if bf16 else 4
    img_tokens = (config.image_size // config.patch_size) ** 2
    tokens = img_tokens + config.code_length
    B = cfg.batch_size
    activations = 0
    for part, samples, trains in (("decoder", 3 * B, True), ("encoder", B, cfg.train_encoder)):
        t = config.transformer(part)
        hidden, depth = t["hidden_size"], t["depth"]
        per_block = (10 + 2 * t["mlp_ratio"]) * hidden * tokens * value * samples
        if not trains:
            continue
        if cfg.gradient_checkpointing:
            activations += depth * hidden * tokens * value * samples + per_block
        else:
            activations += depth * per_block
    activations = int(activations)
    dec_t, enc_t = config.transformer("decoder"), config.transformer("encoder")
    f_dec = _transformer_flops(dec, tokens, dec_t["hidden_size"], dec_t["depth"])
    f_enc = _transformer_flops(enc, tokens, enc_t["hidden_size"], enc_t["depth"])
    train_factor = 4.0 if cfg.gradient_checkpointing else 3.0   # forward + backward (+ recomputation)
    step = 3 * B * f_dec * train_factor + B * f_enc * (train_factor if cfg.train_encoder else 1.0) \
        + 2 * B * f_dec + B * f_enc                                # + the reference's forward
    times = flow_times(cfg.sample_steps, config.schedule)[0]
    window = cfg_window(config.cfg_interval)
    guided = sum(1 for t in times.tolist() if config.cfg != 1.0 and (window is None or window[0] <= t <= window[1]))
    evals = cfg.sample_steps + guided
    refresh = cfg.refresh_size * (f_enc + 2 * evals * f_dec)
    refreshes = math.ceil(cfg.steps / cfg.refresh_every) if cfg.refresh_every else 1
    total = cfg.steps * step + refreshes * refresh
    return {"parameters": n, "encoder_parameters": enc, "decoder_parameters": dec,
            "weights_bytes": int(weights), "activation_bytes": activations, "total_bytes": int(weights) + activations,
            "tokens_per_sample": tokens, "step_flops": step, "refresh_flops": refresh, "refreshes": refreshes,
            "total_flops": total, "assumed_tflops": tflops, "gpu_hours": total / (tflops * 1e12) / 3600}


def _size(n: float) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


def _count(n: float, unit: str, scales=((1e18, "E"), (1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))) -> str:
    for scale, prefix in scales:
        if n >= scale:
            return f"{n / scale:.3g} {prefix}{unit}"
    return f"{n:.3g} {unit}"


def describe(est: dict) -> str:
    """One paragraph for a reader: memory, compute and GPU-hours of an estimate."""
    hours = est["gpu_hours"]
    return (f"{est['parameters']:,} parameters; "
            f"estimated memory per GPU {_size(est['total_bytes'])} (weights, gradients and AdamW "
            f"{_size(est['weights_bytes'])} + activations {_size(est['activation_bytes'])}); compute "
            f"{_count(est['total_flops'], 'FLOP')} ({_count(est['step_flops'], 'FLOP')} a step, "
            f"{_count(est['refresh_flops'], 'FLOP')} a buffer refresh × {est['refreshes']}) ≈ "
            f"{hours:.3g} GPU-hours at {est['assumed_tflops']:.0f} TFLOP/s sustained")
