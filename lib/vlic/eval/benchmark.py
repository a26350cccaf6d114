"""The study's one rate–distortion harness (chapter 02's pre-trained codecs, chapter 05's comparison of every codec):
every codec on the same held-out photos, as real files — bits per pixel from the bytes written, pixels from decoding
those bytes, metrics from :func:`score_reconstructions`.

* **learned** codecs (:func:`learned_reconstructions`): a ``.vlic`` bitstream per photo, decoded with given noise
  seeds (the codec's own path: entropy decoding, latent decoder, tiled sampling);
* **classical** codecs (:func:`baseline_reconstructions`): JPEG/WebP/AVIF at the highest quality whose file fits a
  target bpp (:class:`vlic.codec.baselines.BaselineCodec`). When even the lowest quality overshoots — Pillow's
  codecs cannot go below ≈ 0.1 bpp on 512-px photos — the row keeps the nearest achievable rate and says
  ``matched = False``; it is never presented as matched;
* **downscale-then-code** (``<codec>-ds``): the standard way a classical codec reaches very low rates — Lanczos
  downscale by the largest factor of ``scales`` at which the codec fits the budget (bits counted over the
  *full-resolution* pixels), code, decode, Lanczos upscale back. A different codec, named as such.

Rows are plain dicts (one per codec × rate point × photo × seed) and reconstructions are kept by the same key, so
metrics, patches and figures all come from the same decoded pixels.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
from PIL import Image
from tqdm.auto import tqdm

from vlic.fetch import hub_checkpoints
from vlic.images import to_pixels, to_tensor

DOWNSCALES = (1.0, 0.75, 0.5, 0.375, 0.25, 0.1875, 0.125)


@dataclass
class Reconstructions:
    """Decoded photos by key ``(codec, rate_point, photo, seed)`` and one row of facts per key; for learned codecs
    also the deterministic mean head's reconstruction μ by ``(codec, rate_point, photo)`` (same file, no sampling)."""

    rows: list[dict] = field(default_factory=list)
    pixels: dict[tuple, np.ndarray] = field(default_factory=dict)
    mean_heads: dict[tuple, np.ndarray] = field(default_factory=dict)

    def add(self, row: dict, px: np.ndarray) -> None:
        key = (row["codec"], row["rate_point"], row["photo"], row["seed"])
        if key in self.pixels:
            raise ValueError(f"reconstruction {key} added twice")
        self.rows.append(row)
        self.pixels[key] = px

    def extend(self, other: "Reconstructions") -> None:
        for row in other.rows:
            self.add(row, other.pixels[(row["codec"], row["rate_point"], row["photo"], row["seed"])])
        self.mean_heads |= other.mean_heads


def learned_reconstructions(codecs: list[tuple[str, str, object]], photos: dict[str, np.ndarray],
                            steps: int | Sequence[int], seeds: tuple[int, ...], progress: bool = False) -> Reconstructions:
    """``codecs``: (name, rate point, :class:`~vlic.codec.image_codec.ImageCodec`) triples. Each photo is compressed
    once per codec into a real bitstream, entropy-decoded once, and sampled once per step count and seed. ``steps``
    an int: the system is called ``name``; a sequence: each step count is its own system, ``"<name> (<steps> steps)"``. Rows also carry the file's ideal bits
    (the prior's cross-entropy) and the times: ``encode_seconds``, ``entropy_decode_seconds`` (range decoding +
    latent decoder, once per file) and ``decode_seconds`` (sampling only)."""
    single = isinstance(steps, (int, np.integer))
    step_list = (int(steps),) if single else tuple(int(s) for s in steps)
    out = Reconstructions()
    for name, rate_point, codec in codecs:
        for photo, px in tqdm(photos.items(), desc=name, disable=not progress):
            z = codec.compress(px)
            t0 = time.perf_counter()
            c, features, mean = codec.decode_condition(z.data, photo)
            entropy_seconds = time.perf_counter() - t0
            mu = codec.mean_pixels(c, mean)   # None: the codec has no mean head (FlowMo)
            if mu is not None:
                out.mean_heads[(name, rate_point, photo)] = mu
            for s in step_list:
                for seed in seeds:
                    t0 = time.perf_counter()
                    rec = codec.sample(c, features, mean, steps=s, seed=seed)
                    out.add({"codec": name if single else f"{name} ({s} steps)", "family": "learned",
                             "rate_point": rate_point, "photo": photo, "seed": int(seed), "steps": s, "bpp": z.bpp,
                             "bytes": z.bytes, "target_bpp": np.nan, "matched": True, "quality": np.nan, "scale": 1.0,
                             "ideal_bits": z.ideal_bits, "bits_over_ideal": z.payload_bits / max(z.ideal_bits, 1e-9),
                             "encode_seconds": z.seconds, "entropy_decode_seconds": entropy_seconds,
                             "decode_seconds": time.perf_counter() - t0}, rec)
    return out


def score_reconstructions(rec: Reconstructions, photos: dict[str, np.ndarray], full_reference: Callable,
                          no_reference: Callable | None = None) -> pd.DataFrame:
    """Every row of ``rec`` with its metrics: ``full_reference(original, reconstruction)`` and
    ``no_reference(reconstruction)`` (dicts of metric → value; e.g. :class:`vlic.eval.metrics.FullReference`). A
    reconstruction shared by two rows (a ``-ds`` codec whose full-size file fitted) is scored once."""
    memo, scored = {}, []
    for row in rec.rows:
        px = rec.pixels[(row["codec"], row["rate_point"], row["photo"], row["seed"])]
        if id(px) not in memo:
            memo[id(px)] = full_reference(photos[row["photo"]], px) | (no_reference(px) if no_reference else {})
        scored.append(dict(row, **memo[id(px)]))
    return pd.DataFrame(scored)


def score_mean_heads(rec: Reconstructions, photos: dict[str, np.ndarray], full_reference: Callable,
                     no_reference: Callable | None = None) -> pd.DataFrame:
    """The learned codecs' deterministic mean-head reconstructions μ (same files, no sampling), scored: one row per
    (codec, rate point, photo)."""
    return pd.DataFrame([{"codec": c, "rate_point": rp, "photo": p, **full_reference(photos[p], px),
                          **(no_reference(px) if no_reference else {})}
                         for (c, rp, p), px in rec.mean_heads.items()])


MEAN_HEAD_FAMILY = "learned, mean head μ"


def mean_head_rows(rec: Reconstructions, photos: dict[str, np.ndarray], full_reference: Callable,
                   no_reference: Callable | None = None) -> pd.DataFrame:
    """The mean heads μ as systems of their own, in the rows of :func:`score_reconstructions`: ``"<codec> μ"`` decodes
    the **same file** as ``<codec>`` (its bpp, bytes and encode/entropy-decode times) with the deterministic mean head
    instead of sampling (``steps`` 0, ``decode_seconds`` 0: μ comes out of the latent decoder). One row per (codec,
    rate point, photo); none for codecs without a mean head (FlowMo)."""
    files = {}
    for row in rec.rows:   # the file's facts, from its first decoded row (a step-count suffix is not part of the name)
        files.setdefault((row["codec"].split(" (")[0], row["rate_point"], row["photo"]), row)
    out = []
    for r in score_mean_heads(rec, photos, full_reference, no_reference).to_dict("records"):
        file_row = files.get((r["codec"], r["rate_point"], r["photo"]))
        if file_row is None:
            raise ValueError(f"mean head of {r['codec']}@{r['rate_point']} on '{r['photo']}' has no file row")
        out.append(file_row | r | {"codec": f"{r['codec']} μ", "family": MEAN_HEAD_FAMILY, "seed": 0, "steps": 0,
                                   "decode_seconds": 0.0})
    return pd.DataFrame(out)


def _resize(px: np.ndarray, width: int, height: int) -> np.ndarray:
    return np.asarray(Image.fromarray(px).resize((width, height), Image.Resampling.LANCZOS), dtype=np.uint8)


def downscaled_compress(codec, px: np.ndarray, bpp: float, scales: tuple[float, ...] = DOWNSCALES):
    """Downscale-then-code at the largest scale whose file fits ``bpp`` over the full-resolution pixel count.
    Returns (bytes, reconstruction at full size, scale, quality, met_target)."""
    H, W = px.shape[:2]
    for k, s in enumerate(scales):
        w, h = max(8, round(W * s)), max(8, round(H * s))
        small = px if (w, h) == (W, H) else _resize(px, w, h)
        # the budget in bits is fixed by the full-resolution image: bpp_small = bpp · (W·H) / (w·h)
        r = codec.compress(small, bpp=bpp * W * H / (w * h))
        if r.met_target or k == len(scales) - 1:
            rec = codec.decompress(r.data)
            rec = rec if (w, h) == (W, H) else _resize(rec, W, H)
            return r.data, rec, (w / W), r.quality, r.met_target
    raise AssertionError("unreachable")


def baseline_reconstructions(photos: dict[str, np.ndarray], targets: dict[str, dict[str, float]],
                             codecs: tuple[str, ...], downscale: bool = True,
                             scales: tuple[float, ...] = DOWNSCALES) -> Reconstructions:
    """``targets``: rate point → photo → target bpp. For every classical codec and rate point: the codec as it is
    (matched or nearest achievable) and, if ``downscale``, its downscale-then-code variant ``<codec>-ds``."""
    from vlic.codec.baselines import BaselineCodec

    out = Reconstructions()
    for name in codecs:
        codec = BaselineCodec(name)
        for rate_point, per_photo in targets.items():
            for photo, px in photos.items():
                if photo not in per_photo:
                    raise KeyError(f"no target bpp for photo '{photo}' at rate point '{rate_point}'")
                target = float(per_photo[photo])
                n = px.shape[0] * px.shape[1]
                r = codec.compress(px, bpp=target)
                native = codec.decompress(r.data)
                out.add({"codec": name, "family": "classical", "rate_point": rate_point, "photo": photo, "seed": 0,
                         "bpp": r.bpp, "bytes": r.bytes, "target_bpp": target, "matched": bool(r.met_target),
                         "quality": r.quality, "scale": 1.0, "decode_seconds": np.nan}, native)
                if downscale:
                    if r.met_target and scales[0] == 1.0:  # full size fits: the same file (and the same pixels object)
                        data, rec, scale, q, met = r.data, native, 1.0, r.quality, True
                    else:
                        data, rec, scale, q, met = downscaled_compress(codec, px, target, scales)
                    out.add({"codec": f"{name}-ds", "family": "classical, downscale-then-code", "rate_point": rate_point,
                             "photo": photo, "seed": 0, "bpp": 8 * len(data) / n, "bytes": len(data),
                             "target_bpp": target, "matched": bool(met), "quality": q, "scale": round(scale, 4),
                             "decode_seconds": np.nan}, rec)
    return out


def compressai_availability(model: str) -> str | None:
    """None when CompressAI zoo model ``model`` (e.g. ``bmshj2018-hyperprior``) has weights in the torch hub cache,
    else why not. Weights are never downloaded here."""
    try:
        import compressai.zoo  # noqa: F401
    except ImportError:
        return f"CompressAI {model} not available offline: the compressai package is not installed"
    found = sorted(hub_checkpoints().glob(f"{model}-*.pth.tar"))
    if not found:
        return (f"CompressAI {model} not available offline: no {model}-*.pth.tar in the torch hub cache "
                "(never downloaded at run time)")
    return None


def compressai_reconstructions(model: str, qualities: tuple[int, ...], photos: dict[str, np.ndarray]) -> Reconstructions:
    """A cached CompressAI zoo model at each quality: real strings (bpp from their bytes), decoded pixels.
    Rate points are named ``q<quality>``; only qualities whose weights are cached are run."""
    import torch

    reason = compressai_availability(model)
    if reason:
        raise RuntimeError(reason)
    from compressai.zoo import image_models

    out = Reconstructions()
    ckpts = hub_checkpoints()
    for q in qualities:
        if not list(ckpts.glob(f"{model}-{q}-*.pth.tar")):
            continue
        net = image_models[model](quality=q, pretrained=True).eval()
        for photo, px in photos.items():
            H, W = px.shape[:2]
            x = to_tensor(px, "unit")
            p = 64
            xp = torch.nn.functional.pad(x, (0, (-W) % p, 0, (-H) % p), mode="replicate")
            with torch.inference_mode():
                enc = net.compress(xp)
                rec = net.decompress(enc["strings"], enc["shape"])["x_hat"][:, :, :H, :W]
            n_bytes = sum(len(s[0]) for s in enc["strings"])
            out.add({"codec": f"compressai-{model}", "family": "learned (CompressAI)", "rate_point": f"q{q}",
                     "photo": photo, "seed": 0, "bpp": 8 * n_bytes / (H * W), "bytes": n_bytes, "target_bpp": np.nan,
                     "matched": True, "quality": q, "scale": 1.0, "decode_seconds": np.nan},
                    to_pixels(rec[0], "unit"))
    return out


def learned_codecs(models_dir: str | Path, rate_points: Sequence[str], dpo_model: str | None = None
                   ) -> tuple[dict[str, tuple[str, str, object]], dict[str, str], str | None]:
    """The study's learned codecs as :func:`learned_reconstructions` takes them: ``vlic`` at every rate point whose
    checkpoint ``models/codec_<rate>.safetensors`` exists and, with ``dpo_model``, the post-trained ``vlic-dpo`` at its
    own rate point. Returns (codecs by key, what is missing and why, the DPO codec's rate point or None)."""
    from vlic.codec.families import image_codec, load  # either family: the laptop codec or FlowMo

    models = Path(models_dir)
    learned, missing = {}, {}
    for rp in rate_points:
        path = models / f"codec_{rp}.safetensors"
        if path.is_file():
            learned[f"vlic@{rp}"] = ("vlic", rp, image_codec(load(path)))
        else:
            missing[f"vlic@{rp}"] = f"{path} does not exist (run `dvc repro pretrain`)"
    dpo_rate = None
    if dpo_model:
        path = models / dpo_model
        if path.is_file():
            ck = load(path)
            dpo_rate = ck.rate
            learned["vlic-dpo"] = ("vlic-dpo", dpo_rate, image_codec(ck))
        else:
            missing["vlic-dpo"] = f"{path} does not exist (run `dvc repro dpo`)"
    return learned, missing, dpo_rate
