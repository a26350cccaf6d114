"""Train/holdout split **by image** and deterministic random crops.

The split is by whole photograph: no crop of a holdout photo is ever seen in training. Crops are drawn with a
seeded ``numpy`` generator, so the same parameters give the same crops on every machine.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class Split:
    train: tuple[str, ...]
    holdout: tuple[str, ...]

    def __post_init__(self) -> None:
        overlap = set(self.train) & set(self.holdout)
        if overlap:
            raise ValueError(f"split puts {sorted(overlap)} in both train and holdout")


def split_by_image(names: list[str], holdout: list[str]) -> Split:
    """Hold out the named photos; every other photo is training data. Order follows ``names``."""
    unknown = sorted(set(holdout) - set(names))
    if unknown:
        raise ValueError(f"holdout images {unknown} are not among the available photos {sorted(names)}")
    held = [n for n in names if n in set(holdout)]
    train = [n for n in names if n not in set(held)]
    if not train:
        raise ValueError("the split leaves no training photo")
    if not held:
        raise ValueError("the split leaves no holdout photo")
    return Split(train=tuple(train), holdout=tuple(held))


@dataclass(frozen=True)
class Crops:
    """``pixels``: (N, S, S, 3) uint8; ``image``: (N,) index into ``names``; ``box``: (N, 2) top-left (y, x)."""

    pixels: np.ndarray
    image: np.ndarray
    box: np.ndarray
    names: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.pixels.shape[0])

    def save(self, path) -> None:
        np.savez_compressed(path, pixels=self.pixels, image=self.image, box=self.box, names=np.array(self.names))

    @classmethod
    def load(cls, path) -> "Crops":
        with np.load(path, allow_pickle=False) as z:
            return cls(z["pixels"], z["image"], z["box"], tuple(str(n) for n in z["names"]))


def crop_boxes(crops: Crops, photos: Sequence[str]) -> dict[str, list[tuple[int, int]]]:
    """Top-left corners (y, x) of ``crops`` per photo — to cut the same regions again from reconstructions."""
    return {n: [tuple(int(v) for v in crops.box[i]) for i in range(len(crops)) if crops.names[crops.image[i]] == n]
            for n in photos}


def cut_patches(px: np.ndarray, boxes: list[tuple[int, int]], size: int) -> list[np.ndarray]:
    """``size``-pixel patches at top-left ``boxes`` (y, x); a box outside the photo is an error."""
    H, W = px.shape[:2]
    out = []
    for y, x in boxes:
        if y < 0 or x < 0 or y + size > H or x + size > W:
            raise ValueError(f"patch box ({y}, {x}) of size {size} is outside the {W}×{H} photo")
        out.append(px[y : y + size, x : x + size])
    return out


def random_crops(images: dict[str, np.ndarray], size: int, per_image: int, seed: int) -> Crops:
    """``per_image`` crops of ``size``×``size`` from each image (in name order), positions drawn uniformly."""
    if size < 1 or per_image < 0:
        raise ValueError(f"crop size must be ≥ 1 and crops per image ≥ 0, got {size} and {per_image}")
    rng = np.random.default_rng(seed)
    names = tuple(sorted(images))
    pixels, index, boxes = [], [], []
    for i, name in enumerate(names):
        img = images[name]
        h, w = img.shape[:2]
        if h < size or w < size:
            raise ValueError(f"image '{name}' ({w}×{h}) is smaller than the crop size {size}")
        ys = rng.integers(0, h - size + 1, per_image)
        xs = rng.integers(0, w - size + 1, per_image)
        for y, x in zip(ys, xs):
            pixels.append(img[y : y + size, x : x + size])
            index.append(i)
            boxes.append((y, x))
    if not pixels:
        return Crops(np.zeros((0, size, size, 3), np.uint8), np.zeros(0, np.int64), np.zeros((0, 2), np.int64), names)
    return Crops(np.stack(pixels).astype(np.uint8), np.array(index, np.int64), np.array(boxes, np.int64), names)


def crop_statistics(crops: Crops) -> list[dict]:
    """Per-crop luminance mean/std and mean gradient magnitude (a proxy for texture and so for bits)."""
    rows = []
    for k in range(len(crops)):
        c = crops.pixels[k].astype(np.float64) / 255.0
        lum = 0.299 * c[..., 0] + 0.587 * c[..., 1] + 0.114 * c[..., 2]
        gy, gx = np.gradient(lum)
        rows.append(
            {
                "image": crops.names[int(crops.image[k])],
                "luminance_mean": float(lum.mean()),
                "luminance_std": float(lum.std()),
                "gradient_mean": float(np.hypot(gx, gy).mean()),
            }
        )
    return rows
