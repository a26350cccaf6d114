"""Reading images into RGB ``uint8`` arrays, with every conversion made explicit.

Photographs arrive in many shapes: grayscale, palette, RGBA, 16-bit PNGs, CMYK JPEGs, EXIF-rotated phone pictures.
The study works on 8-bit RGB. :func:`load_rgb` converts, and returns *what it did* so callers can say so.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError


class ImageReadError(ValueError):
    """An input file is not a readable image (the message names the file and the problem)."""


@dataclass(frozen=True)
class LoadedImage:
    """An RGB ``uint8`` array of shape (H, W, 3) and the conversions applied to reach it."""

    pixels: np.ndarray
    source_mode: str
    conversions: tuple[str, ...] = field(default=())

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])


def _to_rgb(im: Image.Image) -> tuple[Image.Image, list[str]]:
    notes: list[str] = []
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16-bit (or 32-bit integer) grayscale: scale the full range down to 8 bits.
        a = np.asarray(im, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") or a.max() > 255 else 255.0
        a = np.clip(np.round(a / top * 255.0), 0, 255).astype(np.uint8)
        notes.append(f"{mode} → 8-bit (divided by {int(top)}/255)")
        im, mode = Image.fromarray(a, mode="L"), "L"
    if mode == "F":
        a = np.asarray(im, dtype=np.float64)
        lo, hi = float(a.min()), float(a.max())
        a = np.zeros_like(a) if hi <= lo else (a - lo) / (hi - lo)
        notes.append("float image → 8-bit (min–max scaled)")
        im, mode = Image.fromarray(np.round(a * 255).astype(np.uint8), mode="L"), "L"
    if mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
        notes.append(f"palette → {im.mode}")
        mode = im.mode
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = im.convert("RGBA")
        alpha = np.asarray(rgba)[..., 3]
        if alpha.min() < 255:
            white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            im = Image.alpha_composite(white, rgba).convert("RGB")
            notes.append(f"{mode} → RGB (composited on white; alpha dropped)")
        else:
            im = rgba.convert("RGB")
            notes.append(f"{mode} → RGB (alpha was fully opaque)")
        mode = "RGB"
    if mode in ("L", "1"):
        im = im.convert("RGB")
        notes.append(f"{'bilevel' if mode == '1' else 'grayscale'} → RGB (channel replicated)")
        mode = "RGB"
    if mode == "RGB" and im.getbands() == ("R", "G", "B"):
        return im, notes
    converted = im.convert("RGB")
    notes.append(f"{mode} → RGB")
    return converted, notes


DEFAULT_MAX_PIXELS = 89_478_485  # PIL.Image.MAX_IMAGE_PIXELS's default: above it an image is a likely bomb


def _source_notes(im: Image.Image) -> list[str]:
    """Conversions Pillow makes silently while decoding (call before ``load``): 16-bit colour, extra frames."""
    notes = []
    for t in getattr(im, "tile", None) or []:
        args = t[3] if len(t) > 3 else None
        raw = args if isinstance(args, str) else (args[0] if isinstance(args, tuple) and args and isinstance(args[0], str) else "")
        if im.mode in ("RGB", "RGBA") and ";16" in raw:
            notes.append(f"16-bit {im.mode} → 8-bit (Pillow keeps the high byte)")
            break
    frames = int(getattr(im, "n_frames", 1) or 1)
    if frames > 1:
        notes.append(f"first frame of {frames} kept ({frames - 1} dropped)")
    return notes


def load_rgb(path: str | Path, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> LoadedImage:
    """Read ``path`` as an RGB ``uint8`` array, applying EXIF orientation, and report each conversion.

    Raises :class:`ImageReadError` naming the file when it is missing, empty, truncated or not an image, or when it
    has more than ``max_pixels`` pixels (checked from the header, before decoding; ``None``/0: no limit).
    """
    path = Path(path)
    if not path.exists():
        raise ImageReadError(f"image '{path}' does not exist")
    if path.is_dir():
        raise ImageReadError(f"image '{path}' is a directory, expected an image file")
    if path.stat().st_size == 0:
        raise ImageReadError(f"image '{path}' is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None  # our own limit below, before decoding
            try:
                im = Image.open(path)
            finally:
                Image.MAX_IMAGE_PIXELS = saved
        with im:
            w, h = im.size
            if max_pixels and w * h > max_pixels:
                raise ImageReadError(f"image '{path}' has {w}×{h} = {w * h:,} pixels, more than the limit of "
                                     f"{max_pixels:,} (raise it with --max-pixels N; 0 = no limit)")
            notes: list[str] = _source_notes(im)
            im.load()
            source_mode = im.mode
            if _has_rotation(im):
                notes.append("EXIF orientation applied")
            im2 = ImageOps.exif_transpose(im) or im
            rgb, more = _to_rgb(im2)
            pixels = np.array(rgb, dtype=np.uint8)
    except UnidentifiedImageError:
        raise ImageReadError(f"image '{path}' is not in a format Pillow can read") from None
    except ImageReadError:
        raise
    except Image.DecompressionBombError as e:
        raise ImageReadError(f"image '{path}': {e}") from None
    except MemoryError:
        raise ImageReadError(f"image '{path}' does not fit in memory") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:  # truncated or corrupt data
        raise ImageReadError(f"image '{path}' is corrupt or truncated ({e})") from None
    if pixels.ndim != 3 or pixels.shape[2] != 3 or min(pixels.shape[:2]) < 1:
        raise ImageReadError(f"image '{path}' has an unusable shape {pixels.shape}")
    return LoadedImage(pixels=pixels, source_mode=source_mode, conversions=tuple(notes + more))


def _has_rotation(im: Image.Image) -> bool:
    try:
        return im.getexif().get(0x0112, 1) not in (1, None)
    except Exception:  # a broken EXIF block is not worth failing the read for
        return False


def png_encode(pixels: np.ndarray) -> bytes:
    """An (H, W, 3) ``uint8`` array as PNG bytes (deterministic for the same pixels)."""
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] != 3:
        raise ValueError(f"expected (H, W, 3) uint8 pixels, got {pixels.shape} {pixels.dtype}")
    buf = io.BytesIO()
    Image.fromarray(pixels, mode="RGB").save(buf, format="PNG", optimize=False, compress_level=6)
    return buf.getvalue()


def save_png(pixels: np.ndarray, path: str | Path) -> Path:
    """Write an (H, W, 3) ``uint8`` array as PNG, atomically (an existing file is replaced whole or not at all)."""
    from vlic.files import atomic_write_bytes

    path = Path(path)
    try:
        data = png_encode(pixels)
    except ValueError as e:
        raise ValueError(f"save_png('{path}'): {e}") from None
    return atomic_write_bytes(path, data)


def resize_max_side(pixels: np.ndarray, max_side: int | None) -> np.ndarray:
    """Downscale (Lanczos, aspect kept) so that the longer side is at most ``max_side``; never upscale."""
    if not max_side:
        return pixels
    h, w = pixels.shape[:2]
    if max(h, w) <= max_side:
        return pixels
    s = max_side / max(h, w)
    size = (max(1, round(w * s)), max(1, round(h * s)))
    return np.asarray(Image.fromarray(pixels).resize(size, Image.Resampling.LANCZOS), dtype=np.uint8)


# Pixels ⇄ tensors, in one place. Two value ranges: "signed" [-1, 1] (the codecs and their training) and "unit"
# [0, 1] (metrics and perception networks). torch is imported lazily: the CLI's reading of images must stay fast.
_SCALE = {"signed": (127.5, 1.0), "unit": (255.0, 0.0)}


def to_tensor(pixels, value_range: str = "signed", dtype=None):
    """uint8 RGB pixels (H, W, 3), or a batch (N, H, W, 3) / a list of equal-sized images, → a float tensor
    (1|N, 3, H, W) in ``value_range`` (float32 unless ``dtype``)."""
    import torch

    a = np.stack(pixels) if isinstance(pixels, (list, tuple)) else pixels
    if a.dtype != np.uint8 or a.ndim not in (3, 4) or a.shape[-1] != 3:
        raise ValueError(f"expected (H, W, 3) or (N, H, W, 3) uint8 RGB pixels, got {a.shape} {a.dtype}")
    scale, shift = _SCALE[value_range]
    # C-contiguous first: the tensor's memory layout (and so the kernels a network runs on it, and their last bits)
    # must not depend on how the caller's array happens to be laid out (a slice, a transposed view, np.stack of them)
    a = np.ascontiguousarray(a, dtype=np.uint8)
    t = torch.from_numpy(a if a.flags.writeable else a.copy())  # a read-only array (np.asarray of a PIL image) too
    t = (t.permute(2, 0, 1)[None] if t.ndim == 3 else t.permute(0, 3, 1, 2)).to(dtype or torch.float32)
    return t / scale - shift if shift else t / scale


def to_pixels(x, value_range: str = "signed") -> np.ndarray:
    """A tensor (3, H, W) or (N, 3, H, W) in ``value_range`` → uint8 pixels (H, W, 3) or (N, H, W, 3), clamped and
    rounded."""
    import torch

    scale, shift = _SCALE[value_range]
    x = x.detach().float().cpu()
    lo = -1.0 if shift else 0.0
    u = ((x.clamp(lo, 1) + shift) * scale).round().to(torch.uint8)
    return np.ascontiguousarray(u.movedim(-3, -1).numpy())
