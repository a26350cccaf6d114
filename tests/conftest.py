"""Shared fixtures: the repository root, a temporary workspace with the packaged raw data assembled."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Pinned numerics (vlic.numerics) before anything imports torch; the venv's start-up hook normally did this already.
from vlic import numerics

numerics.pin()

REPO = Path(__file__).resolve().parents[1]


def synthetic_photo(h: int, w: int, seed: int = 0):
    """A smooth synthetic 'photo' with some texture (deterministic); tests import it (``from conftest import ...``)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    base = np.stack([np.sin(6 * xx + 1), np.cos(5 * yy), np.sin(4 * (xx + yy))], -1) * 90 + 128
    return np.clip(base + rng.normal(0, 12, (h, w, 3)), 0, 255).astype(np.uint8)

# Tests never reach a model hub: a test that needs downloaded weights must skip with a reason.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
# Every figure a smoke run saves must be readable as a slide (vlic.viz.save refuses it otherwise)
os.environ.setdefault("VLIC_STRICT_FIGURES", "1")


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def packaged_raw(tmp_path_factory) -> Path:
    """A ``data/raw`` folder with the packaged photos assembled (once per test session)."""
    from vlic.data.packaged import assemble

    raw = tmp_path_factory.mktemp("raw") / "data" / "raw"
    assemble(raw)
    return raw


@pytest.fixture(scope="session")
def tiny_pretrained(tmp_path_factory):
    """A tiny codec pre-trained for 3 steps on two synthetic photos: ``{"ck": Checkpoint, "images": [...]}`` — the
    starting point of the fine-tuning tests (SC loss, tag guidance)."""
    from vlic.codec.autoencoder import CodecConfig
    from vlic.training.pretrain import PretrainConfig, pretrain

    cfg = CodecConfig(fsq_levels=(5, 3), downsample=8, patch=4, encoder_width=8, cond_channels=4, flow_widths=(8, 8),
                      tile=32, prior_dim=16, prior_layers=1, prior_heads=2, prior_block=8)
    images = [synthetic_photo(64, 80, 1), synthetic_photo(72, 64, 2)]
    r = pretrain(cfg, PretrainConfig(steps=3, batch_size=2, prior_steps=2, prior_batch=2, log_every=1), images,
                 tmp_path_factory.mktemp("tiny_codec") / "codec.safetensors", rate="tiny", progress=False)
    return {"ck": r.checkpoint, "images": images}
