"""Image-level tags for tag guidance (Diff-ICMH's Tag Guidance Module, transposed to what installs offline): the
classes EfficientNet-Lite0 (:mod:`vlic.perception.effnet`) gives an image with probability above a threshold τ,
at most ``most`` of them, most probable first. Tags are ImageNet-1k class indices, coded in a ``.vlic`` file at
10 bits each (:mod:`vlic.codec.bitstream`). The paper profile's tagger (RAM++ in Diff-ICMH) would replace the
classifier; the container only sees indices.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

INPUT_SIZE = 224
DEFAULT_THRESHOLD = 0.1
DEFAULT_MOST = 5


def select(p: np.ndarray, threshold: float = DEFAULT_THRESHOLD, most: int = DEFAULT_MOST) -> list[int]:
    """The indices of ``p`` above ``threshold``, most probable first, at most ``most`` (possibly none)."""
    if not 0 <= threshold <= 1 or most < 0:
        raise ValueError(f"tag threshold {threshold} must be in [0, 1] and the count {most} ≥ 0")
    order = np.argsort(-np.asarray(p), kind="stable")[:most]
    return [int(i) for i in order if p[i] > threshold]


def image_tags(pixels: np.ndarray, threshold: float = DEFAULT_THRESHOLD, most: int = DEFAULT_MOST) -> list[int]:
    """The tags of one uint8 RGB image."""
    from vlic.perception.effnet import probabilities

    return select(probabilities([pixels])[0], threshold, most)


def tag_names(tags: Sequence[int]) -> list[str]:
    """Class names of tag indices (torchvision's ImageNet-1k list, shipped in the wheel)."""
    from vlic.perception.effnet import class_names

    names = class_names()
    return [names[int(t)] for t in tags]
