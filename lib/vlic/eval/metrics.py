"""Quality metrics for the evaluation chapter: full-reference metrics on whole photos, no-reference metrics (NIQE,
BRISQUE) on whole photos, distribution metrics (FD/KID on EfficientNet-Lite0 features; FID, KID, FD-DINO) on
patches — and, for every metric that cannot run here, the reason, never a made-up number.

**Which MS-SSIM.** The evaluation uses :func:`vlic.codec.quality.ms_ssim` (its torch core, in float32): the standard five-scale MS-SSIM of
Wang et al. (2003) with an 11-px Gaussian window, which is what the literature reports on whole photos (it drops
scales only for images under 161 px, i.e. in the tiny smoke run). The judge ``ms_ssim`` in
:mod:`vlic.judges.metric` is a *different, deliberate* variant — three scales, 7-px window — because it compares
32–64 px patches, where five scales do not fit; its numbers also key the persistent verdict cache and the DPO
reward, so it is left as it is. Both call ``piq.multi_scale_ssim``; they differ only in window and scales.

**Directions.** :data:`HIGHER_IS_BETTER` says which way each metric points; BD-rate and the figures use it.

**Distribution metrics on patches (HiFiC's FID/256 convention).** Each photo is cut into non-overlapping
``size``-px patches and once more on the grid shifted by half a patch (:func:`hifid_patches`); the patches of all
photos form one set, and the reconstructions' patches (same positions) the other. ``fd_effnet`` / ``kid_effnet`` use
the 1280-d pooled EfficientNet-Lite0 feature of each patch, resized (bicubic) to ``input_size``² (:func:`effnet_features`).
Intervals resample patch positions (paired, the same positions in both sets). A resample repeats patches, which
inflates a Fréchet distance (fewer distinct samples), so the percentile interval is shifted back by the bootstrap's
bias estimate (mean of the resamples − value): a bias-corrected percentile bootstrap. With a few hundred patches
the Fréchet distance itself is biased upwards too, so compare codecs with each other at equal patch count, not with
published FIDs.

**Offline only.** EfficientNet-Lite0, NIQE and BRISQUE load their parameters from installed packages
(:mod:`vlic.perception`; :data:`SOURCES` says which). LPIPS and DISTS need backbone weights in the torch hub cache (:func:`vlic.judges.metric.availability`);
FID and KID need ``torch-fidelity``'s Inception weights; FD-DINO needs a DINOv2 hub checkout and its weights. None
of them is ever downloaded here: :func:`status` returns the reason, which the chapter writes into the results.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from vlic.codec.quality import ms_ssim_torch, psnr
from vlic.fetch import hub_checkpoints, hub_dir
from vlic.images import to_tensor
from vlic.judges.metric import METRICS
from vlic.perception import SOURCES as PERCEPTION_SOURCES

# full-reference metrics on whole photos: name → (label, higher is better), read off the judges' registry (one list
# of metrics in the project): similarities and PSNR point up, distances down
FULL_REFERENCE = {name: (spec.label + (" (dB)" if spec.kind == "psnr" else ""), spec.kind != "distance")
                  for name, spec in METRICS.items()}
# no-reference metrics of single photos (lower is better)
NO_REFERENCE = {"niqe": "NIQE", "brisque": "BRISQUE"}
# distribution metrics on sets of patches (lower is better)
DISTRIBUTION = {"fd_effnet": "FD-EffNet", "kid_effnet": "KID-EffNet", "fid": "FID", "kid": "KID", "fd_dino": "FD-DINO"}
HIGHER_IS_BETTER = ({k: v[1] for k, v in FULL_REFERENCE.items()} | {k: False for k in NO_REFERENCE}
                    | {k: False for k in DISTRIBUTION})
LABELS = {k: v[0] for k, v in FULL_REFERENCE.items()} | dict(NO_REFERENCE) | dict(DISTRIBUTION)
# where each model comes from (the judges' registry for full-reference metrics)
SOURCES = ({k: spec.source for k, spec in METRICS.items()} | {
    "niqe": PERCEPTION_SOURCES["niqe"], "brisque": PERCEPTION_SOURCES["brisque"],
    "fd_effnet": PERCEPTION_SOURCES["effnet_lite0"], "kid_effnet": PERCEPTION_SOURCES["effnet_lite0"],
    "fid": "torch-fidelity's Inception-v3 weights from the torch hub cache (never downloaded here)",
    "kid": "torch-fidelity's Inception-v3 weights from the torch hub cache (never downloaded here)",
    "fd_dino": "DINOv2 ViT-L/14 checkout and weights from the torch hub cache (never downloaded here)",
})

INCEPTION_WEIGHTS = "weights-inception-2015-12-05-6726825d.pth"   # torch-fidelity's FID Inception
DINO_REPO = "facebookresearch_dinov2_main"
DINO_WEIGHTS = "dinov2_vitl14_pretrain.pth"                       # FD-DINO: DINOv2 ViT-L/14 (Stein et al. 2023)


def availability(name: str) -> str | None:
    """None when metric ``name`` can run on this machine without a download, else the reason (one line)."""
    if name in FULL_REFERENCE:
        from vlic.judges.metric import availability as judge_availability

        return judge_availability(name)
    if name in NO_REFERENCE:
        from vlic.perception import availability as perception_availability

        return perception_availability(name)
    if name in ("fd_effnet", "kid_effnet"):
        from vlic.perception import availability as perception_availability

        return perception_availability("effnet_lite0")
    if name in ("fid", "kid"):
        try:
            import torch_fidelity  # noqa: F401
        except ImportError:
            return (f"{LABELS[name]} not available offline: torchmetrics' {LABELS[name]} needs the torch-fidelity "
                    "package (not installed) and its Inception weights")
        if not (hub_checkpoints() / INCEPTION_WEIGHTS).is_file():
            return (f"{LABELS[name]} not available offline: Inception weights {INCEPTION_WEIGHTS} are not in "
                    f"{hub_dir() / 'checkpoints'} (never downloaded at run time)")
        return None
    if name == "fd_dino":
        missing = [str(p) for p in (hub_dir() / DINO_REPO, hub_checkpoints() / DINO_WEIGHTS) if not p.exists()]
        if missing:
            return f"FD-DINO not available offline: DINOv2 ({', '.join(missing)}) is not cached (never downloaded)"
        return None
    return f"unknown metric '{name}'; known: {', '.join([*FULL_REFERENCE, *NO_REFERENCE, *DISTRIBUTION])}"


def _runnable(names: Sequence[str], known, kind: str) -> list[str]:
    """``names`` as a list if every one is a known ``kind`` metric that can run here; else one error saying why not."""
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown {kind} metrics {unknown}; known: {', '.join(known)}")
    blocked = {n: availability(n) for n in names if availability(n)}
    if blocked:
        raise RuntimeError("; ".join(blocked.values()))
    return list(names)


class FullReference:
    """Full-reference metrics of whole photos, in their natural units (PSNR in dB, similarities, distances)."""

    def __init__(self, names: Sequence[str]):
        self.names = _runnable(names, FULL_REFERENCE, "full-reference")
        self._fns: dict[str, Callable] = {}

    def _fn(self, name: str) -> Callable:
        if name not in self._fns:
            import piq

            from vlic.judges.metric import _build

            if name in ("ssim", "haarpsi", "fsim", "vsi"):
                f = getattr(piq, name)
                self._fns[name] = lambda x, y, f=f: f(x, y, data_range=1.0, reduction="none")
            else:  # distances, exactly as the judges compute them
                self._fns[name] = _build(name)
        return self._fns[name]

    def __call__(self, ref: np.ndarray, x: np.ndarray) -> dict[str, float]:
        import torch

        if ref.shape != x.shape:
            raise ValueError(f"reference {ref.shape} and reconstruction {x.shape} differ in shape")
        out = {}
        tr, tx = to_tensor(ref, "unit"), to_tensor(x, "unit")
        for name in self.names:
            if name == "psnr":
                out[name] = psnr(ref, x)
            elif name == "ms_ssim":  # = vlic.codec.quality.ms_ssim, in float32 (10× faster, equal to ~1e-6)
                kernel = 11 if min(ref.shape[:2]) >= 11 else 3
                out[name] = float(ms_ssim_torch(tr, tx, kernel)[0])
            else:
                with torch.inference_mode():
                    out[name] = float(self._fn(name)(tx, tr).flatten()[0])
        return out


class NoReference:
    """No-reference metrics (NIQE, BRISQUE) of whole photos; lower is better."""

    def __init__(self, names: Sequence[str]):
        self.names = _runnable(names, NO_REFERENCE, "no-reference")

    def __call__(self, x: np.ndarray) -> dict[str, float]:
        from vlic.perception.brisque import brisque
        from vlic.perception.niqe import niqe

        fns = {"niqe": niqe, "brisque": brisque}
        return {n: fns[n](np.asarray(x, np.uint8)) for n in self.names}


# ---- distribution metrics -------------------------------------------------------------------------------------------

def frechet_distance(f1: np.ndarray, f2: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (N, D): ‖μ₁−μ₂‖² + Tr(Σ₁+Σ₂−2(Σ₁Σ₂)^½).
    The trace of the square root is computed from the eigenvalues of Σ₁Σ₂ (real, ≥ 0 up to round-off)."""
    f1, f2 = np.asarray(f1, np.float64), np.asarray(f2, np.float64)
    if f1.ndim != 2 or f2.ndim != 2 or f1.shape[1] != f2.shape[1] or min(len(f1), len(f2)) < 2:
        raise ValueError(f"feature sets must be (N ≥ 2, D) with equal D, got {f1.shape} and {f2.shape}")
    mu1, mu2 = f1.mean(0), f2.mean(0)
    (n1, d), n2 = f1.shape, len(f2)
    if min(n1, n2) < d:
        # fewer samples than dimensions: with centred X₁, X₂, the non-zero eigenvalues of Σ₁Σ₂ are the squared
        # singular values of X₁X₂ᵀ/√((n₁−1)(n₂−1)), so Tr(Σ₁Σ₂)^½ is its nuclear norm — exact, and n×n, not D×D
        x1, x2 = f1 - mu1, f2 - mu2
        tr_sqrt = float(np.linalg.svd(x1 @ x2.T, compute_uv=False).sum() / np.sqrt((n1 - 1) * (n2 - 1)))
        tr1, tr2 = (x1**2).sum() / (n1 - 1), (x2**2).sum() / (n2 - 1)
        return float(((mu1 - mu2) ** 2).sum() + tr1 + tr2 - 2 * tr_sqrt)
    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    eig = np.linalg.eigvals(np.atleast_2d(s1) @ np.atleast_2d(s2))
    tr_sqrt = float(np.sqrt(np.clip(eig.real, 0, None)).sum())
    return float(((mu1 - mu2) ** 2).sum() + np.trace(np.atleast_2d(s1)) + np.trace(np.atleast_2d(s2)) - 2 * tr_sqrt)


def kernel_distance(f1: np.ndarray, f2: np.ndarray, degree: int = 3, coef: float = 1.0) -> float:
    """KID: unbiased MMD² with the polynomial kernel k(x, y) = (xᵀy / D + coef)^degree (Bińkowski et al. 2018)."""
    f1, f2 = np.asarray(f1, np.float64), np.asarray(f2, np.float64)
    if f1.ndim != 2 or f2.ndim != 2 or f1.shape[1] != f2.shape[1] or min(len(f1), len(f2)) < 2:
        raise ValueError(f"feature sets must be (N ≥ 2, D) with equal D, got {f1.shape} and {f2.shape}")
    d = f1.shape[1]
    k11, k22, k12 = ((a @ b.T / d + coef) ** degree for a, b in ((f1, f1), (f2, f2), (f1, f2)))
    m, n = len(f1), len(f2)
    return float((k11.sum() - np.trace(k11)) / (m * (m - 1)) + (k22.sum() - np.trace(k22)) / (n * (n - 1))
                 - 2 * k12.mean())


def feature_batches(n: int, batch: int) -> list[tuple[int, int]]:
    """(start, stop) of the batches :func:`patch_features` runs: ``batch`` items each, the last one taking in a
    remainder of one. At 2 threads a batch of one runs other CPU kernels than a batch of two or more (EfficientNet-Lite0
    under the pinned numerics: features differ by ~1e-5), so no item's features depend on where the set happened to
    end. (At 1 thread, batches below 16 take other kernels than larger ones; a stage's thread count is part of its
    recipe, and the study computes these features at 2.)"""
    if batch < 2:
        raise ValueError(f"batch must be ≥ 2, got {batch}")
    starts = list(range(0, n, batch))
    if len(starts) > 1 and n - starts[-1] == 1:
        starts.pop()
    return [(s, e) for s, e in zip(starts, [*starts[1:], n])]


def patch_features(feature_fn: Callable, patches: Sequence[np.ndarray], batch: int = 8) -> np.ndarray:
    """Features (N, D) of uint8 patches through ``feature_fn`` ((B, 3, H, W) float in [0, 1] → (B, D)). Batches of
    8: at 224 px, EfficientNet-Lite0 on 2 threads computed 248 patches in 3.6 s against 6.1 s in batches of 64 (whose
    activations leave the CPU caches), with the same features at that thread count (:func:`feature_batches`)."""
    import torch

    out = []
    with torch.inference_mode():
        for s, e in feature_batches(len(patches), batch):
            x = to_tensor(list(patches[s:e]), "unit")
            out.append(feature_fn(x).reshape(len(x), -1).double().cpu().numpy())
    return np.concatenate(out)


def hifid_patches(px: np.ndarray, size: int) -> list[np.ndarray]:
    """HiFiC's FID/256 patching at ``size``: the non-overlapping ``size``-px patches of the photo, then those of the
    grid shifted by ``size // 2`` in both directions (row-major, the unshifted grid first)."""
    H, W = px.shape[:2]
    if size < 2 or min(H, W) < size:
        raise ValueError(f"patch size {size} does not fit the {W}×{H} photo")
    out = []
    for off in (0, size // 2):
        out += [px[y : y + size, x : x + size] for y in range(off, H - size + 1, size)
                for x in range(off, W - size + 1, size)]
    return out


def pooled_hifid_patches(photos: Sequence[np.ndarray], size: int) -> list[np.ndarray]:
    """:func:`hifid_patches` of every photo, pooled into one set in photo order (a distribution metric's sample)."""
    return [q for px in photos for q in hifid_patches(px, size)]


def effnet_features(input_size: int = 224) -> Callable:
    """(B, 3, h, w) in [0, 1] → (B, 1280) pooled EfficientNet-Lite0 features, inputs resized (bicubic) to
    ``input_size``² first (0 = as they are)."""
    import torch.nn.functional as F

    from vlic.perception import effnet

    model = effnet.load()

    def fn(x):
        if input_size and x.shape[-2:] != (input_size, input_size):
            x = F.interpolate(x, size=(input_size, input_size), mode="bicubic", align_corners=False).clamp(0, 1)
        return model.pooled(x)

    return fn


def feature_network(name: str, input_size: int = 224) -> Callable:
    """The feature network of distribution metric ``name`` (raises with :func:`status`'s reason if absent);
    ``input_size`` only for the EfficientNet metrics."""
    reason = availability(name)
    if reason:
        raise RuntimeError(reason)
    import torch

    if name in ("fd_effnet", "kid_effnet"):
        return effnet_features(input_size)

    if name in ("fid", "kid"):
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

        net = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"],
                                          feature_extractor_weights_path=str(hub_checkpoints() / INCEPTION_WEIGHTS)).eval()
        return lambda x: net((x * 255).round().to(torch.uint8))[0]
    model = torch.hub.load(str(hub_dir() / DINO_REPO), "dinov2_vitl14", source="local", pretrained=False).eval()
    model.load_state_dict(torch.load(hub_checkpoints() / DINO_WEIGHTS, map_location="cpu"))
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)

    def dino(x):
        x = torch.nn.functional.interpolate(x, size=(224, 224), mode="bicubic", align_corners=False)
        return model((x - mean) / std)

    return dino


def distribution_metric(name: str, feature_fn: Callable, originals: Sequence[np.ndarray],
                        reconstructions: Sequence[np.ndarray]) -> float:
    """FID / FD-DINO (Fréchet distance) or KID between the features of original and reconstructed patches."""
    f_ref, f_rec = patch_features(feature_fn, originals), patch_features(feature_fn, reconstructions)
    return distance_of_features(name, f_ref, f_rec)


def distance_of_features(name: str, f_ref: np.ndarray, f_rec: np.ndarray) -> float:
    """KID-type metrics (``kid``, ``kid_effnet``): kernel distance; the others: Fréchet distance."""
    return kernel_distance(f_ref, f_rec) if name.startswith("kid") else frechet_distance(f_ref, f_rec)


class PairedGrams:
    """Gram matrices of paired feature sets, so that FD and KID of any resample of patch positions cost O(n²)–O(n³)
    in the number of patches n instead of O(n²·D) in the 1280 feature dimensions (:func:`frechet_distance` and
    :func:`kernel_distance` give the same numbers on the resampled rows; a test checks it)."""

    def __init__(self, f1: np.ndarray, f2: np.ndarray):
        f1, f2 = np.asarray(f1, np.float64), np.asarray(f2, np.float64)
        if f1.ndim != 2 or f1.shape != f2.shape or len(f1) < 2:
            raise ValueError(f"paired feature sets must be (N ≥ 2, D) of equal shape, got {f1.shape} and {f2.shape}")
        self.d = f1.shape[1]
        self.g11, self.g22, self.g12 = f1 @ f1.T, f2 @ f2.T, f1 @ f2.T

    def distance(self, name: str, idx: np.ndarray) -> float:
        return self.distances(name, [idx])[0]

    def distances(self, name: str, draws) -> list[float]:
        """:meth:`distance` of many resamples, under one BLAS thread limit (setting it costs milliseconds a time)."""
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1):   # small matrices: BLAS threads only fight over the cores (100× slower)
            return [self._distance(name, idx) for idx in draws]

    def _distance(self, name: str, idx: np.ndarray) -> float:
        g11, g22, g12 = (g[np.ix_(idx, idx)] for g in (self.g11, self.g22, self.g12))
        n = len(idx)
        if name.startswith("kid"):   # unbiased MMD² with k(x, y) = (xᵀy / D + 1)³, as kernel_distance
            k11, k22, k12 = ((g / self.d + 1.0) ** 3 for g in (g11, g22, g12))
            return float((k11.sum() - np.trace(k11)) / (n * (n - 1)) + (k22.sum() - np.trace(k22)) / (n * (n - 1))
                         - 2 * k12.mean())
        mean_sq = (g11.sum() + g22.sum() - 2 * g12.sum()) / n**2
        tr1 = (np.trace(g11) - g11.sum() / n) / (n - 1)
        tr2 = (np.trace(g22) - g22.sum() / n) / (n - 1)
        m = g12 - g12.mean(0, keepdims=True) - g12.mean(1, keepdims=True) + g12.mean()   # centred X₁X₂ᵀ
        tr_sqrt = float(np.sqrt(np.clip(np.linalg.eigvalsh(m @ m.T), 0, None)).sum() / (n - 1))
        return float(mean_sq + tr1 + tr2 - 2 * tr_sqrt)


def distribution_interval(name: str, f_ref: np.ndarray, f_rec: np.ndarray, n_boot: int = 100, seed: int = 0,
                          level: float = 0.95) -> dict[str, float]:
    """Value of distribution metric ``name`` on paired feature sets (row i of both = the same patch position) and a
    bias-corrected percentile bootstrap interval that resamples positions (the same draw for both sets)."""
    if len(f_ref) != len(f_rec):
        raise ValueError(f"paired feature sets differ in length: {len(f_ref)} and {len(f_rec)}")
    value = distance_of_features(name, f_ref, f_rec)
    out = {"value": value, "n": len(f_ref)}
    if n_boot > 0:
        grams, rng = PairedGrams(f_ref, f_rec), np.random.default_rng(seed)
        boots = [grams.distance(name, rng.integers(0, len(f_ref), len(f_ref))) for _ in range(n_boot)]
        out |= _bias_corrected_interval(value, boots, level)
    return out


def _bias_corrected_interval(value: float, boots: Sequence[float], level: float) -> dict[str, float]:
    """Percentile interval of bootstrap values shifted by the bootstrap bias estimate (mean(boots) − value)."""
    bias = float(np.mean(boots)) - value
    return {"ci_low": float(np.quantile(boots, (1 - level) / 2)) - bias,
            "ci_high": float(np.quantile(boots, (1 + level) / 2)) - bias}


def distribution_difference(name: str, f_ref: np.ndarray, f_a: np.ndarray, f_b: np.ndarray, n_boot: int = 100,
                            seed: int = 0, level: float = 0.95) -> dict[str, float]:
    """metric(ref, a) − metric(ref, b) for three paired feature sets (the same patch positions), with a bias-corrected
    percentile bootstrap interval from one draw of positions shared by all three: negative = ``a`` closer to the
    originals."""
    f_ref, f_a, f_b = (np.asarray(f, np.float64) for f in (f_ref, f_a, f_b))
    if not len(f_ref) == len(f_a) == len(f_b):
        raise ValueError(f"paired feature sets differ in length: {len(f_ref)}, {len(f_a)}, {len(f_b)}")
    out = {"delta": distance_of_features(name, f_ref, f_a) - distance_of_features(name, f_ref, f_b), "n": len(f_ref)}
    if n_boot > 0:
        ga, gb, rng = PairedGrams(f_ref, f_a), PairedGrams(f_ref, f_b), np.random.default_rng(seed)
        boots = [ga.distance(name, i) - gb.distance(name, i)
                 for i in (rng.integers(0, len(f_ref), len(f_ref)) for _ in range(n_boot))]
        out |= _bias_corrected_interval(out["delta"], boots, level)
    return out
