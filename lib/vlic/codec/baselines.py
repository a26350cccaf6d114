"""JPEG, WebP and AVIF (Pillow) at a target bit rate — the classical codecs every RD figure compares against.

Each codec has one integer quality knob; :meth:`BaselineCodec.compress` searches it (bisection, the codecs' size is
monotone in quality up to small wiggles, which the search tolerates) for the highest quality whose file stays at or
below the target bits per pixel. When even the lowest quality overshoots (JPEG below ≈ 0.15 bpp on photos), it
returns the lowest quality and says so (``met_target = False``): the RD point then sits right of the target, honestly.
Same contract as the learned codec: ``compress`` → bytes and what they cost, ``decompress`` → pixels.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image

from vlic.codec.bitstream import CodedFile

FORMATS = {"jpeg": ("JPEG", 1, 95), "webp": ("WEBP", 0, 100), "avif": ("AVIF", 0, 100)}


@dataclass(frozen=True)
class BaselineResult(CodedFile):
    codec: str
    data: bytes
    width: int
    height: int
    quality: int
    target_bpp: float | None
    met_target: bool


class BaselineCodec:
    def __init__(self, name: str):
        if name not in FORMATS:
            raise ValueError(f"unknown baseline codec {name!r}; choose from {sorted(FORMATS)}")
        self.name = name
        self.format, self.q_min, self.q_max = FORMATS[name]
        if self.format not in Image.registered_extensions().values() and self.format != "AVIF":
            raise RuntimeError(f"this Pillow cannot write {self.format}")

    def encode(self, pixels: np.ndarray, quality: int) -> bytes:
        buf = io.BytesIO()
        kwargs = {"quality": int(quality)}
        if self.format == "JPEG":
            kwargs.update(optimize=True, subsampling="4:2:0")
        elif self.format == "WEBP":
            kwargs.update(method=4)
        elif self.format == "AVIF":
            kwargs.update(speed=8, subsampling="4:2:0")
        Image.fromarray(pixels, mode="RGB").save(buf, format=self.format, **kwargs)
        return buf.getvalue()

    def compress(self, pixels: np.ndarray, bpp: float | None = None, quality: int | None = None) -> BaselineResult:
        """At a fixed ``quality``, or the highest quality with bits per pixel ≤ ``bpp``."""
        if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] != 3:
            raise ValueError(f"expected an (H, W, 3) uint8 RGB array, got {pixels.shape} {pixels.dtype}")
        H, W = pixels.shape[:2]
        if (bpp is None) == (quality is None):
            raise ValueError("give exactly one of bpp= or quality=")
        if quality is not None:
            return BaselineResult(self.name, self.encode(pixels, quality), W, H, int(quality), None, True)
        budget = bpp * W * H / 8
        lo, hi = self.q_min, self.q_max
        best = None
        cache: dict[int, bytes] = {}

        def size(q: int) -> bytes:
            if q not in cache:
                cache[q] = self.encode(pixels, q)
            return cache[q]

        while lo <= hi:
            mid = (lo + hi) // 2
            if len(size(mid)) <= budget:
                best, lo = mid, mid + 1
            else:
                hi = mid - 1
        if best is None:
            return BaselineResult(self.name, size(self.q_min), W, H, self.q_min, float(bpp), False)
        return BaselineResult(self.name, size(best), W, H, best, float(bpp), True)

    def decompress(self, data: bytes) -> np.ndarray:
        with Image.open(io.BytesIO(data)) as im:
            return np.asarray(im.convert("RGB"), dtype=np.uint8)
