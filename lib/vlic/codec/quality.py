"""How close a reconstruction is to its original: PSNR and MS-SSIM on uint8 RGB arrays, and a differentiable
MS-SSIM loss that adapts its number of scales to small training crops."""

from __future__ import annotations

import numpy as np
import torch

from vlic.images import to_tensor

_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)  # Wang et al. 2003


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def _scales(size: int, kernel: int) -> int:
    n = 1
    while n < 5 and size >= (kernel - 1) * 2 ** n + 1:
        n += 1
    return n


def ms_ssim_torch(x: torch.Tensor, y: torch.Tensor, kernel: int = 11) -> torch.Tensor:
    """MS-SSIM of images in [0, 1] (B, 3, H, W), with as many of the 5 standard scales as the size allows."""
    import piq

    n = _scales(min(x.shape[-2:]), kernel)
    w = torch.tensor(_WEIGHTS[:n], dtype=x.dtype, device=x.device)
    return piq.multi_scale_ssim(x, y, data_range=1.0, kernel_size=kernel, scale_weights=w / w.sum(), reduction="none")


def ms_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """MS-SSIM of two uint8 RGB arrays (standard 5 scales when the image is ≥ 161 px, fewer for smaller ones)."""
    ta, tb = to_tensor(a, "unit", torch.float64), to_tensor(b, "unit", torch.float64)
    kernel = 11 if min(a.shape[:2]) >= 11 else 3
    return float(ms_ssim_torch(ta, tb, kernel)[0])
