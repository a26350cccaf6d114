"""Retrieval: can a decoded patch still find its own original among many similar ones?

The gallery is every original patch of the image set (a grid of ``size``-px patches per image, so neighbouring
patches of the same photo are the hardest distractors); each decoded patch at the same position is a query, its
one relevant item is the original patch it came from. Embeddings: the 1280-d pooled EfficientNet-Lite0 feature
(:func:`vlic.eval.metrics.effnet_features`), unit-normalised, ranked by cosine similarity.

* ``recall1`` — 1 when the query's nearest gallery item is its own original;
* ``ap`` — average precision of the query; with one relevant item it is 1 / rank, so its mean is the mAP (= MRR).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def availability() -> str | None:
    from vlic.perception import effnet

    return effnet.availability()


def grid_boxes(height: int, width: int, size: int, per_image: int) -> list[tuple[int, int]]:
    """Top-left corners (y, x) of up to ``per_image`` non-overlapping ``size``-px patches, evenly spread over the
    image (row-major)."""
    if min(height, width) < size:
        raise ValueError(f"retrieval patch size {size} does not fit a {width}×{height} image")
    boxes = [(y, x) for y in range(0, height - size + 1, size) for x in range(0, width - size + 1, size)]
    if per_image and len(boxes) > per_image:
        keep = np.linspace(0, len(boxes) - 1, per_image).round().astype(int)
        boxes = [boxes[k] for k in keep]
    return boxes


def embed(patches: Sequence[np.ndarray], input_size: int = 96) -> np.ndarray:
    """Unit-normalised pooled EfficientNet-Lite0 features (N, 1280) of uint8 patches."""
    from vlic.eval.metrics import effnet_features, patch_features

    f = patch_features(effnet_features(input_size), list(patches))
    return f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)


def ranks(gallery: np.ndarray, queries: np.ndarray, relevant: Sequence[int]) -> np.ndarray:
    """1-based rank of each query's relevant gallery item by cosine similarity (ties count against the query)."""
    relevant = np.asarray(relevant, dtype=int)
    if len(queries) != len(relevant):
        raise ValueError(f"{len(queries)} queries but {len(relevant)} relevant indices")
    sim = queries @ gallery.T
    own = sim[np.arange(len(queries)), relevant]
    return 1 + (sim >= own[:, None]).sum(axis=1) - 1


def scores(gallery: np.ndarray, queries: np.ndarray, relevant: Sequence[int]) -> dict[str, np.ndarray]:
    """Per-query ``recall1`` and ``ap`` (one relevant item each)."""
    r = ranks(gallery, queries, relevant)
    return {"recall1": (r == 1).astype(float), "ap": 1.0 / r}
