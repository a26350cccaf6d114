"""Distortion families with ordered strength ladders, for 2AFC pairs whose answer is known by construction.

Each family maps a level index (0 = mildest) to one strength; within a family a higher level is a strictly stronger
distortion of the same kind, and random parts (noise pattern, colour direction) are shared between levels of the same
image, so the stronger version is unambiguously further from the reference.
"""

from __future__ import annotations

import io
from typing import Callable

import numpy as np
from PIL import Image, ImageFilter

LADDERS: dict[str, tuple[float, ...]] = {
    "blur": (0.4, 0.7, 1.0, 1.5, 2.2, 3.0),          # Gaussian σ in pixels
    "noise": (3, 6, 10, 15, 22, 30),                 # additive Gaussian σ in 8-bit levels
    "jpeg": (90, 70, 50, 32, 20, 10),                # JPEG quality (lower = stronger)
    "colour": (3, 6, 10, 15, 22, 30),                # shift along a chroma direction, 8-bit levels
    "contrast": (0.92, 0.84, 0.75, 0.65, 0.55, 0.45),  # contrast factor about the mean (lower = stronger)
    "resample": (1.25, 1.5, 2.0, 2.5, 3.0, 4.0),     # box-downsample by this factor, bicubic back up
}

def _clip(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x), 0, 255).astype(np.uint8)


def blur(img: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    return np.asarray(Image.fromarray(img).filter(ImageFilter.GaussianBlur(radius=float(sigma))), dtype=np.uint8)


def noise(img: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    return _clip(img.astype(np.float64) + sigma * rng.standard_normal(img.shape))


def jpeg(img: np.ndarray, quality: float, rng: np.random.Generator) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=int(quality))
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"), dtype=np.uint8)


def colour(img: np.ndarray, amount: float, rng: np.random.Generator) -> np.ndarray:
    d = rng.standard_normal(3)
    d -= d.mean()  # orthogonal to grey: a hue/chroma cast, not a brightness change
    d /= np.linalg.norm(d) + 1e-12
    return _clip(img.astype(np.float64) + amount * d)


def contrast(img: np.ndarray, factor: float, rng: np.random.Generator) -> np.ndarray:
    x = img.astype(np.float64)
    return _clip(x.mean() + factor * (x - x.mean()))


def resample(img: np.ndarray, factor: float, rng: np.random.Generator) -> np.ndarray:
    h, w = img.shape[:2]
    small = Image.fromarray(img).resize((max(1, round(w / factor)), max(1, round(h / factor))), Image.Resampling.BOX)
    return np.asarray(small.resize((w, h), Image.Resampling.BICUBIC), dtype=np.uint8)


FAMILIES: dict[str, Callable[[np.ndarray, float, np.random.Generator], np.ndarray]] = {
    "blur": blur, "noise": noise, "jpeg": jpeg, "colour": colour, "contrast": contrast, "resample": resample,
}


def distort(img: np.ndarray, family: str, level: int, seed: int = 0) -> np.ndarray:
    """``img`` distorted by ``family`` at ladder ``level``; the random draw depends on ``seed`` only (not on level)."""
    if family not in FAMILIES:
        raise ValueError(f"unknown distortion family '{family}'; known: {', '.join(FAMILIES)}")
    ladder = LADDERS[family]
    if not 0 <= level < len(ladder):
        raise ValueError(f"level {level} outside the {family} ladder 0..{len(ladder) - 1}")
    return FAMILIES[family](img, ladder[level], np.random.default_rng(seed))
