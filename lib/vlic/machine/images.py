"""The chapter's image set: photographs for the image-level tasks, and photographs with known text for OCR.

* **photos** — by name (``holdout`` = every held-out photo): first the study's held-out photos (``<prepared>/holdout``, never trained on), then its
  training photos (``<prepared>/train``: the learned codecs saw crops of these, and each row says so), then
  :data:`EXTRA` — photographs that ship in installed packages but are not in the study's raw data (skimage's
  ``camera``, never trained on), read from the package and scaled like the study's photos (longer side
  ``max_side``);
* **text images** — ``text:<photo>``: a centre crop of a photo, resized to ``text_size``, with one known string per
  font size written into it (:func:`vlic.machine.ocr.render`).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

# name → (package, path inside it): photographs outside the study's raw data
EXTRA = {"camera": ("skimage", "data/camera.png")}


@dataclass
class MachineImages:
    photos: dict[str, np.ndarray] = field(default_factory=dict)
    source: dict[str, str] = field(default_factory=dict)        # photo → "holdout" | "train" | "package <name>"
    text: dict[str, np.ndarray] = field(default_factory=dict)
    lines: dict[str, list] = field(default_factory=dict)        # text image → its TextLine list

    def all(self) -> dict[str, np.ndarray]:
        return self.photos | self.text

    def seen_in_training(self, name: str) -> bool:
        return self.source.get(name.removeprefix("text:")) == "train"


def _package_file(package: str, rel: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"photo source package `{package}` is not installed")
    path = Path(list(spec.submodule_search_locations)[0]) / rel
    if not path.is_file():
        raise FileNotFoundError(f"`{package}` has no {rel}")
    return path


def load_photo(name: str, prepared_dir: str | Path, max_side: int = 512) -> tuple[np.ndarray, str]:
    """One photo by name and where it came from (see the module docstring for the search order)."""
    from vlic.images import load_rgb, resize_max_side

    for split in ("holdout", "train"):
        path = Path(prepared_dir) / split / f"{name}.png"
        if path.is_file():
            return load_rgb(path).pixels, split
    if name in EXTRA:
        package, rel = EXTRA[name]
        return resize_max_side(load_rgb(_package_file(package, rel)).pixels, max_side), f"package {package}"
    raise FileNotFoundError(f"machine photo '{name}': not in {prepared_dir}/holdout, {prepared_dir}/train, nor among "
                            f"the packaged extras ({', '.join(EXTRA)})")


def expand(names: list[str], prepared_dir: str | Path) -> list[str]:
    """Photo names with the token ``holdout`` replaced by every held-out photo of ``prepared_dir`` (sorted), so a
    profile can say "all held-out photos" without naming them; duplicates dropped, order kept."""
    out = []
    for name in names:
        if name == "holdout":
            found = sorted(p.stem for p in (Path(prepared_dir) / "holdout").glob("*.png"))
            if not found:
                raise FileNotFoundError(f"no held-out photos under {prepared_dir}/holdout (run `dvc repro data`)")
            out += found
        else:
            out.append(name)
    return list(dict.fromkeys(out))


def centre_crop(pixels: np.ndarray, width: int, height: int) -> np.ndarray:
    """The largest centre crop of aspect ``width``:``height``, resized (Lanczos) to ``width`` × ``height``."""
    H, W = pixels.shape[:2]
    scale = min(W / width, H / height)
    w, h = round(width * scale), round(height * scale)
    x, y = (W - w) // 2, (H - h) // 2
    crop = Image.fromarray(pixels[y : y + h, x : x + w])
    return np.asarray(crop.resize((width, height), Image.Resampling.LANCZOS), dtype=np.uint8)


def build(prepared_dir: str | Path, photos: list[str], text_photos: list[str], text_sizes: list[int],
          text_size: tuple[int, int] = (384, 256), max_side: int = 512, seed: int = 0) -> MachineImages:
    """The image set: ``photos`` by name, and a text image per ``text_photos`` entry with one line per size."""
    from vlic.machine import ocr

    photos, text_photos = expand(photos, prepared_dir), expand(text_photos, prepared_dir)
    out = MachineImages()
    for name in photos:
        out.photos[name], out.source[name] = load_photo(name, prepared_dir, max_side)
    for k, name in enumerate(text_photos):
        if name not in out.photos:
            px, out.source[name] = load_photo(name, prepared_dir, max_side)
        else:
            px = out.photos[name]
        base = centre_crop(px, *text_size)
        img, lines = ocr.render(base, ocr.strings(len(text_sizes), seed=seed + k), list(text_sizes))
        out.text[f"text:{name}"], out.lines[f"text:{name}"] = img, lines
    return out
