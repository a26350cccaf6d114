"""Classical restorers (scikit-image / scipy): the reference points the learned task models must beat.

Each takes and returns an (H, W, 3) uint8 RGB photo. The deconvolutions are *non-blind*: they are given the PSF the
degradation used (an advantage no learned restorer here has), which makes them an optimistic reference.

* ``tv`` (Chambolle total variation), ``nl_means`` (non-local means, σ estimated from the image), ``wavelet``
  (BayesShrink) — denoising, also for JPEG artefacts and low-light noise;
* ``wiener`` (Wiener–Hunt, regularisation 0.02) and ``richardson_lucy`` — deblurring with the known PSF;
* ``median`` — a 5 × 5 median filter, the textbook rain-streak / impulse remover;
* ``dark_channel`` — He, Sun & Tang's dark-channel-prior dehazing (15-px dark channel, brightest 0.1 % for the
  airlight, ω = 0.95, t ≥ 0.1, guided-filter refinement left out);
* ``gamma`` — low-light enhancement by a global gamma that maps the mean luminance to 0.45.

:data:`FOR_TASK` names the restorer used as each degradation's classical reference.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from scipy import ndimage

from vlic.lowlevel.degradations import as_unit_float as _f
from vlic.lowlevel.degradations import from_unit_float as _u8
from vlic.lowlevel.degradations import gaussian_kernel, motion_kernel


def tv(img: np.ndarray, weight: float = 0.08) -> np.ndarray:
    from skimage.restoration import denoise_tv_chambolle

    return _u8(denoise_tv_chambolle(_f(img), weight=weight, channel_axis=-1))


def nl_means(img: np.ndarray, h_factor: float = 0.8) -> np.ndarray:
    from skimage.restoration import denoise_nl_means, estimate_sigma

    x = _f(img)
    sigma = float(np.mean(estimate_sigma(x, channel_axis=-1)))
    return _u8(denoise_nl_means(x, h=h_factor * sigma, sigma=sigma, patch_size=5, patch_distance=6,
                                fast_mode=True, channel_axis=-1))


def wavelet(img: np.ndarray) -> np.ndarray:
    from skimage.restoration import denoise_wavelet

    return _u8(denoise_wavelet(_f(img), method="BayesShrink", mode="soft", rescale_sigma=True, channel_axis=-1))


def _padded(fn: Callable, img: np.ndarray, psf: np.ndarray) -> np.ndarray:
    """``fn`` per channel on the photo padded by reflection (the deconvolutions assume a periodic or zero border,
    which rings at the edges otherwise), cropped back."""
    r = max(psf.shape)
    x = np.pad(_f(img), ((r, r), (r, r), (0, 0)), mode="reflect")
    out = np.stack([fn(x[..., c]) for c in range(3)], axis=-1)
    return _u8(out[r:-r, r:-r])


def wiener(img: np.ndarray, psf: np.ndarray, balance: float = 0.02) -> np.ndarray:
    from skimage.restoration import wiener as w

    return _padded(lambda ch: w(ch, psf, balance, clip=False), img, psf)


def richardson_lucy(img: np.ndarray, psf: np.ndarray, iterations: int = 15) -> np.ndarray:
    from skimage.restoration import richardson_lucy as rl

    return _padded(lambda ch: rl(np.clip(ch, 1e-4, 1), psf, num_iter=iterations, clip=True), img, psf)


def median(img: np.ndarray, size: int = 5) -> np.ndarray:
    return ndimage.median_filter(img, size=(size, size, 1), mode="reflect")


def dark_channel_prior(x: np.ndarray, patch: int = 15) -> np.ndarray:
    return ndimage.minimum_filter(x.min(axis=2), size=patch, mode="nearest")


def dark_channel(img: np.ndarray, patch: int = 15, omega: float = 0.95, t_min: float = 0.1) -> np.ndarray:
    x = _f(img)
    dark = dark_channel_prior(x, patch)
    n = max(1, dark.size // 1000)
    idx = np.argsort(dark.ravel())[-n:]
    airlight = x.reshape(-1, 3)[idx].max(axis=0).clip(1e-3, 1.0)
    t = 1 - omega * dark_channel_prior(x / airlight, patch)
    t = np.maximum(t, t_min)[..., None]
    return _u8((x - airlight) / t + airlight)


def gamma(img: np.ndarray, target_mean: float = 0.45) -> np.ndarray:
    x = _f(img)
    m = float(np.clip(x.mean(), 1e-3, 0.999))
    return _u8(x ** (np.log(target_mean) / np.log(m)))


RESTORERS: dict[str, Callable[..., np.ndarray]] = {
    "tv": tv, "nl_means": nl_means, "wavelet": wavelet, "wiener": wiener, "richardson_lucy": richardson_lucy,
    "median": median, "dark_channel": dark_channel, "gamma": gamma,
}
FOR_TASK = {"noise": "nl_means", "gaussian_blur": "wiener", "motion_blur": "richardson_lucy", "rain": "median",
            "haze": "dark_channel", "low_light": "gamma", "jpeg": "tv"}


def psf_of(task: str, severity: dict) -> np.ndarray | None:
    """The PSF a blur degradation used (None for the others)."""
    if task == "gaussian_blur":
        return gaussian_kernel(float(severity.get("sigma", 2.0)))
    if task == "motion_blur":
        return motion_kernel(float(severity.get("length", 9.0)), float(severity.get("angle", 30.0)))
    return None


def restore_classical(img: np.ndarray, task: str, severity: dict | None = None, name: str | None = None) -> np.ndarray:
    """``img`` (degraded by ``task`` with ``severity``) restored by ``name`` (default: :data:`FOR_TASK`)."""
    name = name or FOR_TASK.get(task)
    if name not in RESTORERS:
        raise ValueError(f"no classical restorer '{name}' for task '{task}'; known: {', '.join(RESTORERS)}")
    if name in ("wiener", "richardson_lucy"):
        psf = psf_of(task, severity or {})
        if psf is None:
            raise ValueError(f"{name} needs a blur PSF; task '{task}' has none")
        return RESTORERS[name](img, psf)
    return RESTORERS[name](img)
