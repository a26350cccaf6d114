"""OCR: is the text in a photograph still readable, and still the *same* text, after decoding?

A perceptual codec may draw plausible letters that were not there; the only fair test is against the **true**
string. :func:`render` writes known strings into a photograph (white letters with a black outline, DejaVu Sans
from matplotlib's own fonts, one line per font size), so every line's ground truth and box are known.
:class:`Reader` is PP-OCR (text detection + recognition) from ``rapidocr-onnxruntime``: ONNX models inside the
wheel, run by ``onnxruntime`` on the CPU; nothing is downloaded. :func:`line_texts` assigns each detected box to
the rendered line whose band holds its centre and joins them left to right.

**Character error rate** (:func:`cer`): Levenshtein distance / length of the truth, after removing whitespace on both
sides (the detector splits words into separate boxes, so spaces carry no information here); case-sensitive. It can
exceed 1 when the reader invents characters.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

FONT_FAMILY = "DejaVu Sans"
WORDS = ("ALPHA", "delta", "Kodak", "river", "STOP", "exit", "north", "Cafe", "orbit", "label", "quartz", "Vision",
         "metro", "GATE", "pixel", "signal", "Tokyo", "zebra", "harbor", "WIND")


def availability() -> str | None:
    """None when PP-OCR runs here, else why not."""
    try:
        import cv2
    except ImportError:
        return "OCR not available: OpenCV is not installed (`opencv-python-headless<5`)"
    try:
        import onnxruntime  # noqa: F401
        import rapidocr_onnxruntime  # noqa: F401
    except ImportError as e:
        return f"OCR not available: `rapidocr-onnxruntime` or `onnxruntime` is not installed ({e.name})"
    if int(cv2.__version__.split(".")[0]) >= 5:
        return f"OCR not available: rapidocr-onnxruntime 1.4 needs OpenCV 4 (found {cv2.__version__})"
    return None


@functools.lru_cache(maxsize=1)
def font_path() -> str:
    """The TrueType file of DejaVu Sans that ships with matplotlib."""
    from matplotlib import font_manager

    return font_manager.findfont(font_manager.FontProperties(family=FONT_FAMILY), fallback_to_default=False)


@dataclass(frozen=True)
class TextLine:
    text: str
    size: int                # font size in pixels
    box: tuple[int, int, int, int]   # (x0, y0, x1, y1) of the rendered glyphs


def strings(n: int, seed: int = 0) -> list[str]:
    """``n`` reproducible test strings: a word from :data:`WORDS` and a 2–4 digit number."""
    rng = np.random.default_rng(seed)
    return [f"{WORDS[int(rng.integers(len(WORDS)))]} {int(rng.integers(10, 10_000))}" for _ in range(n)]


def render(pixels: np.ndarray, texts: list[str], sizes: list[int], margin: int = 8,
           stroke: int | None = None) -> tuple[np.ndarray, list[TextLine]]:
    """``pixels`` with one line of text per (text, size), top to bottom, evenly spaced; returns the image and the
    lines (truth and box). White fill, black outline (``stroke`` px; default size / 8, at least 1)."""
    from PIL import Image, ImageDraw, ImageFont

    if len(texts) != len(sizes):
        raise ValueError(f"{len(texts)} texts but {len(sizes)} sizes")
    im = Image.fromarray(np.ascontiguousarray(pixels)).convert("RGB")
    draw = ImageDraw.Draw(im)
    H = im.height
    fonts = [ImageFont.truetype(font_path(), s) for s in sizes]
    heights = [s + 2 * max(1, s // 8) for s in sizes]
    gap = (H - 2 * margin - sum(heights)) / max(1, len(sizes) + 1)
    if gap < 0:
        raise ValueError(f"{len(sizes)} lines of sizes {sizes} do not fit a {H}-px-high image")
    lines, y = [], margin + gap
    for text, size, font, h in zip(texts, sizes, fonts, heights):
        sw = stroke if stroke is not None else max(1, size // 8)
        xy = (margin + sw, round(y))
        bbox = draw.textbbox(xy, text, font=font, stroke_width=sw)
        if bbox[2] > im.width - margin:
            raise ValueError(f"text '{text}' at {size} px is wider than the {im.width}-px image")
        draw.text(xy, text, font=font, fill=(255, 255, 255), stroke_width=sw, stroke_fill=(0, 0, 0))
        lines.append(TextLine(text, int(size), tuple(int(v) for v in bbox)))
        y += h + gap
    return np.asarray(im, dtype=np.uint8), lines


class Reader:
    """PP-OCR detection + recognition (``rapidocr-onnxruntime``), built once."""

    def __init__(self):
        reason = availability()
        if reason:
            raise RuntimeError(reason)
        from rapidocr_onnxruntime import RapidOCR

        self.engine = RapidOCR()

    def __call__(self, pixels: np.ndarray) -> list[tuple[tuple[float, float, float, float], str, float]]:
        """Detected text boxes ``((x0, y0, x1, y1), text, confidence)`` of a uint8 RGB image."""
        # RapidOCR reads numpy arrays as OpenCV's BGR
        result, _ = self.engine(np.ascontiguousarray(pixels[..., ::-1]))
        out = []
        for quad, text, conf in result or []:
            q = np.asarray(quad, dtype=float)
            out.append(((q[:, 0].min(), q[:, 1].min(), q[:, 0].max(), q[:, 1].max()), str(text), float(conf)))
        return out


@functools.lru_cache(maxsize=1)
def reader() -> Reader:
    return Reader()


def line_texts(detections, lines: list[TextLine]) -> list[str]:
    """The text read on each rendered line: detected boxes whose vertical centre falls in the line's band (its box,
    extended halfway to the neighbouring lines), joined left to right."""
    centres = [(ln.box[1] + ln.box[3]) / 2 for ln in lines]
    bounds = [-np.inf] + [(a + b) / 2 for a, b in zip(centres, centres[1:])] + [np.inf]
    found: list[list[tuple[float, str]]] = [[] for _ in lines]
    for (x0, y0, x1, y1), text, _ in detections:
        cy = (y0 + y1) / 2
        for k in range(len(lines)):
            if bounds[k] <= cy < bounds[k + 1]:
                found[k].append((x0, text))
                break
    return [" ".join(t for _, t in sorted(f)) for f in found]


def levenshtein(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def cer(predicted: str, truth: str) -> float:
    """Character error rate of ``predicted`` against ``truth`` (whitespace removed, case-sensitive)."""
    p, t = "".join(predicted.split()), "".join(truth.split())
    if not t:
        raise ValueError("cer: the true string is empty")
    return levenshtein(p, t) / len(t)
