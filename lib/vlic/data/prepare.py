"""The ``data`` stage: raw collections → ``data/prepared/`` (split photos, fixed crops, split record).

Layout written::

    data/prepared/
      split.json               which photo is where, crop parameters, conversions applied while reading
      train/<name>.png         RGB uint8, longer side ≤ max_side
      holdout/<name>.png
      train_crops.npz          Crops (see vlic.data.splits) — training crops of train photos only
      holdout_crops.npz        evaluation crops of holdout photos only
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from vlic.data.collections import list_images
from vlic.data.splits import Crops, Split, random_crops, split_by_image
from vlic.images import load_rgb, resize_max_side, save_png


@dataclass(frozen=True)
class DataConfig:
    raw_dir: str = "data/raw"
    out_dir: str = "data/prepared"
    train_collections: tuple[str, ...] = ("packaged",)
    holdout_collections: tuple[str, ...] = ()
    holdout_images: tuple[str, ...] = ()
    max_side: int | None = 512
    crop_size: int = 32
    train_crops_per_image: int = 256
    holdout_crops_per_image: int = 16
    seed: int = 0


@dataclass
class Prepared:
    split: Split
    images: dict[str, np.ndarray]
    train_crops: Crops
    holdout_crops: Crops
    conversions: dict[str, list[str]] = field(default_factory=dict)
    collection_of: dict[str, str] = field(default_factory=dict)

    def summary(self) -> dict:
        """Figures for ``results/data.json`` (DVC metrics)."""
        px = {k: int(v.shape[0] * v.shape[1]) for k, v in self.images.items()}
        return {
            "n_train_images": len(self.split.train),
            "n_holdout_images": len(self.split.holdout),
            "n_train_crops": len(self.train_crops),
            "n_holdout_crops": len(self.holdout_crops),
            "train_megapixels": round(sum(px[n] for n in self.split.train) / 1e6, 4),
            "holdout_megapixels": round(sum(px[n] for n in self.split.holdout) / 1e6, 4),
            "crop_size": int(self.train_crops.pixels.shape[1]) if len(self.train_crops) else None,
            "n_converted_images": sum(1 for v in self.conversions.values() if v),
        }


def read_collections(cfg: DataConfig) -> tuple[dict[str, np.ndarray], dict[str, str], dict[str, list[str]]]:
    """Read every photo of the configured collections (resized to ``max_side``); names must be unique."""
    images: dict[str, np.ndarray] = {}
    collection_of: dict[str, str] = {}
    conversions: dict[str, list[str]] = {}
    for collection in (*cfg.train_collections, *cfg.holdout_collections):
        for name, path in tqdm(list_images(cfg.raw_dir, collection).items(), desc=f"read {collection}"):
            if name in images:
                raise ValueError(f"photo name '{name}' appears in both '{collection_of[name]}' and '{collection}'")
            loaded = load_rgb(path)
            images[name] = resize_max_side(loaded.pixels, cfg.max_side)
            collection_of[name] = collection
            notes = list(loaded.conversions)
            if images[name].shape != loaded.pixels.shape:
                notes.append(f"resized {loaded.width}×{loaded.height} → {images[name].shape[1]}×{images[name].shape[0]}")
            conversions[name] = notes
    return images, collection_of, conversions


def prepare(cfg: DataConfig) -> Prepared:
    """Read, split by image, crop, and write everything under ``cfg.out_dir``."""
    images, collection_of, conversions = read_collections(cfg)
    names = list(images)
    holdout = list(cfg.holdout_images) + [n for n in names if collection_of[n] in set(cfg.holdout_collections)]
    split = split_by_image(names, holdout)
    train_crops = random_crops({n: images[n] for n in split.train}, cfg.crop_size, cfg.train_crops_per_image, cfg.seed)
    holdout_crops = random_crops(
        {n: images[n] for n in split.holdout}, cfg.crop_size, cfg.holdout_crops_per_image, cfg.seed + 1
    )
    out = Path(cfg.out_dir)
    for part, members in (("train", split.train), ("holdout", split.holdout)):
        (out / part).mkdir(parents=True, exist_ok=True)
        for stale in (out / part).glob("*.png"):
            if stale.stem not in members:
                stale.unlink()
        for n in tqdm(members, desc=f"write {part}"):
            save_png(images[n], out / part / f"{n}.png")
    train_crops.save(out / "train_crops.npz")
    holdout_crops.save(out / "holdout_crops.npz")
    record = {
        "train": list(split.train),
        "holdout": list(split.holdout),
        "collection": collection_of,
        "size": {n: [int(images[n].shape[1]), int(images[n].shape[0])] for n in names},
        "conversions": conversions,
        "crop_size": cfg.crop_size,
        "train_crops_per_image": cfg.train_crops_per_image,
        "holdout_crops_per_image": cfg.holdout_crops_per_image,
        "seed": cfg.seed,
    }
    (out / "split.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return Prepared(split, images, train_crops, holdout_crops, conversions, collection_of)


def load_split(prepared_dir: str | Path) -> dict:
    """The split record written by :func:`prepare`."""
    path = Path(prepared_dir) / "split.json"
    if not path.is_file():
        raise FileNotFoundError(f"'{path}' not found: run the data stage first (`dvc repro data`)")
    return json.loads(path.read_text(encoding="utf-8"))


def load_photos(prepared_dir: str | Path, part: str) -> dict[str, np.ndarray]:
    """The prepared photos of ``part`` (``"train"`` or ``"holdout"``) by name, in name order, as uint8 RGB; an
    empty or missing folder is an error that says which stage makes it."""

    if part not in ("train", "holdout"):
        raise ValueError(f"part must be 'train' or 'holdout', got {part!r}")
    photos = {p.stem: load_rgb(p).pixels for p in sorted((Path(prepared_dir) / part).glob("*.png"))}
    if not photos:
        raise FileNotFoundError(f"no {part} photos under '{Path(prepared_dir) / part}': run the data stage first "
                                "(`dvc repro data`)")
    return photos
