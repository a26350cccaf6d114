"""Synthetic degradations of clean photos, the inputs of the low-level (LL) vision tasks.

Every function takes an (H, W, 3) uint8 RGB photo, its severity parameters and a numpy ``Generator`` (used only by
the random ones) and returns a uint8 photo of the same shape; the clean photo is never modified, so it stays the
ground truth. :func:`degrade` applies one named degradation with severities from params, seeded.

Models (pixel values x ∈ [0, 1]):

* ``noise`` — additive white Gaussian noise, σ in 8-bit levels;
* ``gaussian_blur`` — isotropic Gaussian point-spread function (PSF), σ in pixels;
* ``motion_blur`` — a straight-line PSF of ``length`` pixels at ``angle`` degrees (:func:`motion_kernel`);
* ``rain`` — sparse random drops smeared along a direction into streaks (motion-blurred impulses), added with
  ``intensity`` and clipped (the additive rain-streak model of Yang et al. 2017);
* ``haze`` — atmospheric scattering I = J·t + A·(1 − t), t = exp(−β·d), with a depth proxy d ∈ [0, 1]
  (:func:`depth_proxy`: far at the top of the frame and in bright, low-saturation regions — the dark-channel
  prior's observation, used here to *make* haze);
* ``low_light`` — y = gain · x^γ plus Gaussian noise (σ in levels) on the darkened signal;
* ``jpeg`` — Pillow JPEG at ``quality``, decoded back.
"""

from __future__ import annotations

import inspect
import io
from typing import Callable

import numpy as np
from PIL import Image
from scipy import ndimage


def as_unit_float(img: np.ndarray) -> np.ndarray:
    if not isinstance(img, np.ndarray) or img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB photo, got {getattr(img, 'shape', '?')} "
                         f"{getattr(img, 'dtype', type(img).__name__)}")
    return img.astype(np.float64) / 255.0


def from_unit_float(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x * 255.0), 0, 255).astype(np.uint8)


def gaussian_kernel(sigma: float) -> np.ndarray:
    """Normalised 2-D Gaussian PSF of standard deviation ``sigma`` px, radius ⌈3σ⌉."""
    r = max(1, int(np.ceil(3 * sigma)))
    y, x = np.mgrid[-r : r + 1, -r : r + 1]
    k = np.exp(-(x**2 + y**2) / (2 * sigma**2))
    return k / k.sum()


def motion_kernel(length: float, angle: float) -> np.ndarray:
    """Normalised straight-line PSF ``length`` px long at ``angle`` degrees (anti-aliased by supersampling)."""
    if length < 1:
        raise ValueError(f"motion blur length must be ≥ 1 px, got {length}")
    size = int(np.ceil(length)) | 1
    k = np.zeros((size, size))
    c = (size - 1) / 2
    a = np.deg2rad(angle)
    for s in np.linspace(-(length - 1) / 2, (length - 1) / 2, 8 * size):
        y, x = c - s * np.sin(a), c + s * np.cos(a)
        y0, x0 = int(np.floor(y)), int(np.floor(x))
        fy, fx = y - y0, x - x0
        for dy, dx, w in ((0, 0, (1 - fy) * (1 - fx)), (0, 1, (1 - fy) * fx), (1, 0, fy * (1 - fx)), (1, 1, fy * fx)):
            if 0 <= y0 + dy < size and 0 <= x0 + dx < size:
                k[y0 + dy, x0 + dx] += w
    return k / k.sum()


def convolve(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Each channel of float image ``x`` convolved with ``kernel`` (edges reflected)."""
    return np.stack([ndimage.convolve(x[..., c], kernel, mode="reflect") for c in range(x.shape[2])], axis=-1)


def noise(img: np.ndarray, rng: np.random.Generator, sigma: float = 25.0) -> np.ndarray:
    return from_unit_float(as_unit_float(img) + (sigma / 255.0) * rng.standard_normal(img.shape))


def gaussian_blur(img: np.ndarray, rng: np.random.Generator, sigma: float = 2.0) -> np.ndarray:
    if sigma <= 0:
        return img.copy()
    return from_unit_float(convolve(as_unit_float(img), gaussian_kernel(sigma)))


def motion_blur(img: np.ndarray, rng: np.random.Generator, length: float = 9.0, angle: float = 30.0) -> np.ndarray:
    return from_unit_float(convolve(as_unit_float(img), motion_kernel(length, angle)))


def rain_layer(shape: tuple[int, int], rng: np.random.Generator, density: float, length: float,
               angle: float) -> np.ndarray:
    """Rain streaks in [0, 1] (H, W): drops (a ``density`` fraction of pixels) smeared along the rain direction."""
    drops = (rng.random(shape) < density).astype(np.float64) * rng.uniform(0.6, 1.0, shape)
    streaks = ndimage.convolve(drops, motion_kernel(length, angle), mode="wrap") * length
    return np.clip(streaks, 0, 1)


def rain(img: np.ndarray, rng: np.random.Generator, density: float = 0.01, length: float = 11.0,
         angle: float = 70.0, intensity: float = 0.7) -> np.ndarray:
    x = as_unit_float(img)
    layer = rain_layer(x.shape[:2], rng, density, length, angle)
    return from_unit_float(x + intensity * layer[..., None])


def depth_proxy(img: np.ndarray) -> np.ndarray:
    """A depth map in [0, 1] (1 = far) from the photo alone: the row position (top = far) averaged with how bright
    and colourless a smoothed pixel is (sky, distant haze). Only a proxy — the photos carry no depth."""
    x = as_unit_float(img)
    H = x.shape[0]
    rows = np.linspace(1.0, 0.0, H)[:, None] * np.ones(x.shape[:2])
    smooth = ndimage.uniform_filter(x, size=(9, 9, 1), mode="reflect")
    bright = smooth.min(axis=2)   # the dark channel of a small window: high where bright and unsaturated
    return np.clip(0.5 * rows + 0.5 * bright, 0.0, 1.0)


def haze(img: np.ndarray, rng: np.random.Generator, beta: float = 1.5, airlight: float = 0.9) -> np.ndarray:
    """I = J·t + A·(1 − t), t = exp(−β·d): β = 0 (transmission 1 everywhere) returns the photo unchanged."""
    x = as_unit_float(img)
    t = np.exp(-beta * depth_proxy(img))[..., None]
    return from_unit_float(x * t + airlight * (1 - t))


def transmission(img: np.ndarray, beta: float) -> np.ndarray:
    """The transmission map t = exp(−β·d) that :func:`haze` applies to ``img``."""
    return np.exp(-beta * depth_proxy(img))


def low_light(img: np.ndarray, rng: np.random.Generator, gamma: float = 2.0, gain: float = 0.5,
              sigma: float = 4.0) -> np.ndarray:
    x = gain * as_unit_float(img) ** gamma
    return from_unit_float(x + (sigma / 255.0) * rng.standard_normal(img.shape))


def jpeg(img: np.ndarray, rng: np.random.Generator, quality: int = 15) -> np.ndarray:
    as_unit_float(img)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=int(quality))
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"), dtype=np.uint8)


DEGRADATIONS: dict[str, Callable[..., np.ndarray]] = {
    "noise": noise, "gaussian_blur": gaussian_blur, "motion_blur": motion_blur, "rain": rain, "haze": haze,
    "low_light": low_light, "jpeg": jpeg,
}
RANDOM = {"noise", "rain", "low_light"}   # the degradations that draw random numbers


def degrade(img: np.ndarray, kind: str, seed: int = 0, **severity: float) -> np.ndarray:
    """``img`` degraded by ``kind`` with ``severity`` keyword parameters (defaults: each function's); the random
    draw depends on ``seed`` only."""
    if kind not in DEGRADATIONS:
        raise ValueError(f"unknown degradation '{kind}'; known: {', '.join(DEGRADATIONS)}")
    fn = DEGRADATIONS[kind]
    known = [p for p in inspect.signature(fn).parameters if p not in ("img", "rng")]
    unknown = sorted(set(severity) - set(known))
    if unknown:
        raise ValueError(f"degradation '{kind}' has no parameter(s) {unknown}; its parameters: {known}")
    return fn(img, np.random.default_rng(seed), **severity)
