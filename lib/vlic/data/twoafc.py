"""Two-alternative forced choice (2AFC) sets: a reference, two candidates p0/p1, and — when known — the fraction of
human observers who preferred p1.

* :func:`read_bapps` / :func:`write_bapps` — the BAPPS layout of the LPIPS paper (Zhang et al., 2018)::

      <root>/<family>/ref/<id>.png  p0/<id>.png  p1/<id>.png  judge/<id>.npy   (judge = fraction preferring p1)

  plus an optional ``<root>/pairs.csv`` with extra per-pair columns (levels, codecs, bpp). Sets without ground
  truth simply have no ``judge/`` folder.
* :func:`severity_ladder` — offline pairs with ground truth by construction: one holdout crop, one distortion
  family at two strengths; the milder one is "preferred by all humans".
* :func:`compressed_pairs` — two reconstructions of the same image by two codecs at matched bpp; no ground truth,
  used for inter-judge agreement. Codecs plug in as a :data:`Reconstructor`.
* :func:`twoafc_credit` — BAPPS scoring (its intervals: :func:`vlic.stats.mean_ci`): a judge choosing p1 earns the human fraction that
  chose p1, choosing p0 earns the rest, a tie earns ½.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from vlic.data.distortions import FAMILIES, LADDERS, distort
from vlic.data.splits import Crops
from vlic.images import load_rgb, save_png

#: (image, target bits per pixel) → (reconstruction, achieved bits per pixel)
Reconstructor = Callable[[np.ndarray, float], tuple[np.ndarray, float]]


@dataclass
class TwoAFCSet:
    ref: list[np.ndarray]
    p0: list[np.ndarray]
    p1: list[np.ndarray]
    human: np.ndarray          # (N,) fraction of humans preferring p1; NaN = unknown
    family: list[str]
    ids: list[str]
    meta: pd.DataFrame         # (N rows) extra columns

    def __post_init__(self) -> None:
        n = len(self.ref)
        if not (len(self.p0) == len(self.p1) == len(self.family) == len(self.ids) == len(self.human) == len(self.meta) == n):
            raise ValueError("TwoAFCSet fields differ in length")
        for i in range(n):
            if not (self.ref[i].shape == self.p0[i].shape == self.p1[i].shape):
                raise ValueError(f"pair {self.family[i]}/{self.ids[i]}: ref {self.ref[i].shape}, p0 {self.p0[i].shape}, "
                                 f"p1 {self.p1[i].shape} differ in shape")

    def __len__(self) -> int:
        return len(self.ref)

    @property
    def has_ground_truth(self) -> bool:
        return bool(len(self)) and not np.isnan(self.human).all()

    def table(self) -> pd.DataFrame:
        """One row per pair: pair index, family, id, human and the meta columns."""
        t = pd.DataFrame({"pair": np.arange(len(self)), "family": self.family, "id": self.ids, "human": self.human})
        return pd.concat([t, self.meta.reset_index(drop=True).drop(columns=["family", "id"], errors="ignore")], axis=1)

    def subset(self, index: Sequence[int]) -> "TwoAFCSet":
        idx = list(index)
        return TwoAFCSet([self.ref[i] for i in idx], [self.p0[i] for i in idx], [self.p1[i] for i in idx],
                         self.human[idx], [self.family[i] for i in idx], [self.ids[i] for i in idx],
                         self.meta.iloc[idx].reset_index(drop=True))

    def limit(self, max_pairs: int | None, seed: int = 0) -> "TwoAFCSet":
        """At most ``max_pairs`` pairs, drawn without replacement (order kept); 0/None = all."""
        if not max_pairs or max_pairs >= len(self):
            return self
        pick = np.sort(np.random.default_rng(seed).choice(len(self), size=int(max_pairs), replace=False))
        return self.subset(pick)


# --- BAPPS reader/writer -------------------------------------------------------------------------------------------
def write_bapps(pairs: TwoAFCSet, root: str | Path) -> Path:
    """Write ``pairs`` in the BAPPS layout under ``root`` (+ ``pairs.csv`` with the meta columns)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for i in range(len(pairs)):
        fam, pid = pairs.family[i], pairs.ids[i]
        for part, img in (("ref", pairs.ref[i]), ("p0", pairs.p0[i]), ("p1", pairs.p1[i])):
            save_png(img, root / fam / part / f"{pid}.png")
        if not np.isnan(pairs.human[i]):
            (root / fam / "judge").mkdir(parents=True, exist_ok=True)
            np.save(root / fam / "judge" / f"{pid}.npy", np.array([pairs.human[i]], dtype=np.float32))
    pairs.table().drop(columns=["pair"]).to_csv(root / "pairs.csv", index=False)
    return root


def read_bapps(root: str | Path, families: Sequence[str] | None = None, max_per_family: int | None = None) -> TwoAFCSet:
    """Read a BAPPS-layout folder (every ``<family>/ref`` under ``root``, ids sorted)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"2AFC folder '{root}' does not exist (BAPPS val: `vlic data download bapps_2afc_val`)")
    found = sorted(p.parent.name for p in root.glob("*/ref") if p.is_dir())
    if families:
        missing = sorted(set(families) - set(found))
        if missing:
            raise FileNotFoundError(f"2AFC folder '{root}' has no families {missing}; it has {found}")
        found = [f for f in found if f in set(families)]
    if not found:
        raise FileNotFoundError(f"2AFC folder '{root}' has no <family>/ref/ folders (expected the BAPPS layout)")
    extra = pd.read_csv(root / "pairs.csv", dtype={"id": str}) if (root / "pairs.csv").is_file() else None
    ref, p0, p1, human, fams, ids = [], [], [], [], [], []
    for fam in found:
        stems = sorted(p.stem for p in (root / fam / "ref").glob("*.png"))
        if max_per_family:
            stems = stems[:max_per_family]
        for stem in stems:
            imgs = []
            for part in ("ref", "p0", "p1"):
                path = root / fam / part / f"{stem}.png"
                if not path.is_file():
                    raise FileNotFoundError(f"2AFC pair {fam}/{stem}: '{path}' is missing")
                imgs.append(load_rgb(path).pixels)
            j = root / fam / "judge" / f"{stem}.npy"
            h = float(np.load(j).ravel()[0]) if j.is_file() else np.nan
            if not (np.isnan(h) or 0.0 <= h <= 1.0):
                raise ValueError(f"2AFC judge file '{j}' holds {h}, expected a fraction in [0, 1]")
            ref.append(imgs[0]); p0.append(imgs[1]); p1.append(imgs[2])
            human.append(h); fams.append(fam); ids.append(stem)
    meta = pd.DataFrame({"family": fams, "id": ids})
    if extra is not None:
        extra = extra.drop(columns=["human"], errors="ignore")
        meta = meta.merge(extra, on=["family", "id"], how="left")
    return TwoAFCSet(ref, p0, p1, np.array(human, dtype=float), fams, ids, meta)


# --- offline severity-ladder set -----------------------------------------------------------------------------------
def severity_ladder(crops: Crops, families: Sequence[str] = tuple(FAMILIES), max_gap: int = 3, seed: int = 0) -> TwoAFCSet:
    """One pair per crop and family: the same distortion at two ladder levels (gap 1..``max_gap``, uniform), randomly
    assigned to p0/p1. ``human`` = 1 when p1 is the milder one, else 0."""
    unknown = sorted(set(families) - set(FAMILIES))
    if unknown:
        raise ValueError(f"unknown distortion families {unknown}; known: {', '.join(FAMILIES)}")
    rng = np.random.default_rng(seed)
    ref, p0, p1, human, fams, ids, rows = [], [], [], [], [], [], []
    for f_idx, fam in enumerate(families):
        n_levels = len(LADDERS[fam])
        for k in range(len(crops)):
            gap = int(rng.integers(1, min(max_gap, n_levels - 1) + 1))
            lo = int(rng.integers(0, n_levels - gap))
            hi = lo + gap
            img = crops.pixels[k]
            draw = int(rng.integers(0, 2**31))  # the same random pattern at both levels
            mild, strong = distort(img, fam, lo, draw), distort(img, fam, hi, draw)
            flip = bool(rng.integers(0, 2))     # flip: p1 is the milder one
            a, b = (strong, mild) if flip else (mild, strong)
            ref.append(img); p0.append(a); p1.append(b)
            human.append(1.0 if flip else 0.0); fams.append(fam); ids.append(f"{k:06d}")
            rows.append({"image": crops.names[int(crops.image[k])], "crop": k,
                         "level_p0": hi if flip else lo, "level_p1": lo if flip else hi, "gap": gap,
                         "strength_p0": LADDERS[fam][hi if flip else lo], "strength_p1": LADDERS[fam][lo if flip else hi]})
    meta = pd.DataFrame(rows)
    meta.insert(0, "id", ids)
    meta.insert(0, "family", fams)
    return TwoAFCSet(ref, p0, p1, np.array(human, dtype=float), fams, ids, meta)


# --- compressed-pair set -------------------------------------------------------------------------------------------
def pillow_reconstructor(fmt: str) -> Reconstructor:
    """A Pillow codec (``jpeg``, ``webp``, ``avif``; :class:`vlic.codec.baselines.BaselineCodec`) at the highest
    quality whose file stays within the target bpp (header included; the lowest quality when even that is larger —
    the achieved bpp is reported, never hidden)."""
    from vlic.codec.baselines import BaselineCodec

    codec = BaselineCodec(fmt.lower())

    def reconstruct(img: np.ndarray, target_bpp: float) -> tuple[np.ndarray, float]:
        result = codec.compress(img, bpp=float(target_bpp))
        return codec.decompress(result.data), result.bpp

    reconstruct.__name__ = f"pillow_{fmt.lower()}"
    return reconstruct


def compressed_pairs(
    images: dict[str, np.ndarray],
    crops: Crops,
    reconstructors: dict[str, Reconstructor],
    targets_bpp: Sequence[float],
    seed: int = 0,
) -> TwoAFCSet:
    """For each photo and target bpp, reconstruct the *whole photo* with every codec (so headers do not dominate
    the rate), then cut every holdout crop of that photo out of each reconstruction; each pair of codecs gives one
    2AFC pair per crop (random p0/p1 order). ``images`` must be the photos the crops were cut from."""
    if len(reconstructors) < 2:
        raise ValueError(f"compressed pairs need at least two codecs, got {list(reconstructors)}")
    rng = np.random.default_rng(seed)
    size = crops.pixels.shape[1]
    ref, p0, p1, fams, ids, rows = [], [], [], [], [], []
    for target in targets_bpp:
        for name_idx, name in enumerate(crops.names):
            members = np.flatnonzero(crops.image == name_idx)
            if not len(members):
                continue
            if name not in images:
                raise KeyError(f"crops come from photo '{name}', which is not among the images given {sorted(images)}")
            photo = images[name]
            recs = {}
            for codec, fn in reconstructors.items():
                rec, bpp = fn(photo, float(target))
                if rec.shape != photo.shape:
                    raise ValueError(f"codec '{codec}' returned shape {rec.shape} for photo '{name}' of shape {photo.shape}")
                recs[codec] = (rec, bpp)
            for k in members:
                y, x = (int(v) for v in crops.box[k])
                if not np.array_equal(photo[y : y + size, x : x + size], crops.pixels[k]):
                    raise ValueError(f"crop {k} is not the region ({y}, {x}) of photo '{name}': images and crops disagree")
                for c0, c1 in itertools.combinations(reconstructors, 2):
                    if rng.integers(0, 2):
                        c0, c1 = c1, c0
                    fam = f"{min(c0, c1)}-vs-{max(c0, c1)}"
                    ref.append(crops.pixels[k])
                    p0.append(recs[c0][0][y : y + size, x : x + size])
                    p1.append(recs[c1][0][y : y + size, x : x + size])
                    fams.append(fam)
                    ids.append(f"{int(k):06d}-{target:g}bpp")
                    rows.append({"image": name, "crop": int(k), "target_bpp": float(target), "codec_p0": c0,
                                 "codec_p1": c1, "bpp_p0": round(recs[c0][1], 4), "bpp_p1": round(recs[c1][1], 4)})
    meta = pd.DataFrame(rows)
    meta.insert(0, "id", ids)
    meta.insert(0, "family", fams)
    return TwoAFCSet(ref, p0, p1, np.full(len(ref), np.nan), fams, ids, meta)


# --- scoring -------------------------------------------------------------------------------------------------------
def twoafc_credit(preference: Sequence[float], human_p1: Sequence[float], failed_credit: float = 0.5) -> np.ndarray:
    """BAPPS credit per pair: preference < 0 (p0 chosen) earns 1 − h, > 0 earns h, a tie ½; h = fraction of humans
    preferring p1. A failed verdict (NaN) earns ``failed_credit`` (chance, ½, by default) — reported separately."""
    p = np.asarray(preference, dtype=float)
    h = np.asarray(human_p1, dtype=float)
    credit = np.where(p < 0, 1 - h, np.where(p > 0, h, 0.5))
    return np.where(np.isnan(p), failed_credit, credit)


def human_ceiling(human_p1: Sequence[float]) -> float:
    """Expected 2AFC score of a random human against the others: mean of h² + (1 − h)²."""
    h = np.asarray(human_p1, dtype=float)
    return float(np.mean(h**2 + (1 - h) ** 2))
