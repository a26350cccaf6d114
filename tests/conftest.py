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
