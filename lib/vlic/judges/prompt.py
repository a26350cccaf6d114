"""The VLM prompt of the paper's protocol and :func:`parse_rating`, which reads the model's final ``RATING: r``.

The model sees the original and two reconstructions (A, B). It is asked to describe the content, list the
artifacts of each reconstruction, weigh what people look at first (faces, text, salient objects), and to end with
``RATING: r`` where r ∈ [−5, 5], negative when A is closer to the original. Changing the wording changes
:data:`PROMPT_VERSION`, which is part of every cached verdict's key.

The **direct** variant (``reasoning=False``, chapter 03's ablation) drops steps 1–4: the model is asked for the
rating line only, with no description or artifact list first. Its version is :data:`DIRECT_PROMPT_VERSION`.
"""

from __future__ import annotations

import base64
import io
import re

import numpy as np
from PIL import Image

PROMPT_VERSION = "vlic-2afc-v1"

INSTRUCTIONS = (
    "You are an expert in image quality assessment. Below are three images: the ORIGINAL, followed by two "
    "compressed or distorted RECONSTRUCTIONS of it, A and B.\n\n"
    "1. Briefly describe the content of the original image.\n"
    "2. List the visible artifacts of reconstruction A compared to the original (blur, noise, blocking, ringing, "
    "colour shifts, lost or hallucinated detail, changed textures).\n"
    "3. Do the same for reconstruction B.\n"
    "4. Weigh the differences as a human observer would: changes to faces, text and other salient content matter "
    "more than changes to background texture.\n"
    "5. Decide which reconstruction is perceptually closer to the original.\n\n"
    "End your answer with one line of the form `RATING: r`, where r is an integer from -5 to 5: negative if A is "
    "closer to the original, positive if B is closer, 0 if they are equally close; the magnitude says how strong "
    "the preference is (5 = overwhelming)."
)

DIRECT_PROMPT_VERSION = PROMPT_VERSION + "-direct"

DIRECT_INSTRUCTIONS = (
    "You are an expert in image quality assessment. Below are three images: the ORIGINAL, followed by two "
    "compressed or distorted RECONSTRUCTIONS of it, A and B. Decide which reconstruction is perceptually closer "
    "to the original, as a human observer would judge it.\n\n"
    "Answer with exactly one line of the form `RATING: r` and nothing else, where r is an integer from -5 to 5: "
    "negative if A is closer to the original, positive if B is closer, 0 if they are equally close; the magnitude "
    "says how strong the preference is (5 = overwhelming)."
)

#: the message parts in order: ("text", str) or ("image", index into (original, A, B))
LAYOUT: tuple[tuple[str, object], ...] = (
    ("text", INSTRUCTIONS),
    ("text", "ORIGINAL:"),
    ("image", 0),
    ("text", "Reconstruction A:"),
    ("image", 1),
    ("text", "Reconstruction B:"),
    ("image", 2),
    ("text", "Now give your analysis and end with `RATING: r`."),
)
DIRECT_LAYOUT: tuple[tuple[str, object], ...] = (
    ("text", DIRECT_INSTRUCTIONS), *LAYOUT[1:-1], ("text", "Now answer with the single line `RATING: r`."),
)


def prompt_version(reasoning: bool = True) -> str:
    """The version string of the prompt with (default) or without the reasoning steps."""
    return PROMPT_VERSION if reasoning else DIRECT_PROMPT_VERSION


def layout(reasoning: bool = True) -> tuple[tuple[str, object], ...]:
    return LAYOUT if reasoning else DIRECT_LAYOUT

# RATING (any case, possibly wrapped in markdown such as **RATING**, `RATING`, ### RATING), then ':' or '=',
# whitespace (newlines included), optional markdown or brackets, an optional sign (+ - − –, maybe followed by a
# space), an integer that is not the start of a decimal number nor the mantissa of an exponent (``1e5000``).
_RATING = re.compile(
    r"(?<![A-Za-z])RATING(?![A-Za-z])[*_`~]*\s*[:=][\s*_`~\[\(\{\"']*([+\-\u2212\u2013]?)\s?(\d+)"
    r"(?![\d]|[.,]\d|[eE][+\-]?\d)",
    re.IGNORECASE,
)
# hidden reasoning some servers leave in the content (Qwen3/DeepSeek style); an unclosed block swallows the rest
_THOUGHTS = re.compile(r"<(think|thinking|reasoning)>.*?(</\1>|\Z)", re.IGNORECASE | re.DOTALL)


def strip_thoughts(text: str) -> str:
    """Remove ``<think>…</think>`` (and ``thinking``/``reasoning``) blocks; an unclosed block removes the rest."""
    return _THOUGHTS.sub("", text or "")


def _find_last(text: str) -> re.Match | None:
    last = None
    for m in _RATING.finditer(strip_thoughts(text)):
        last = m
    return last


def parse_rating(text: str | None) -> int | None:
    """The integer of the **last** ``RATING: r`` in ``text`` outside hidden thoughts; None if absent or |r| > 5.

    >>> parse_rating("A is blurrier.\\n**RATING:** +3")
    3
    >>> parse_rating("RATING = − 2") , parse_rating("RATING: 7"), parse_rating("my rating is 4")
    (-2, None, None)
    """
    if not text:
        return None
    m = _find_last(text)
    if m is None:
        return None
    value = int(m.group(2))
    if m.group(1) in ("-", "\u2212", "\u2013"):
        value = -value
    return value if -5 <= value <= 5 else None


def rationale(text: str) -> str:
    """The answer without hidden thoughts, up to its final RATING line (the model's reasoning for the reader)."""
    visible = strip_thoughts(text or "")
    m = None
    for m in _RATING.finditer(visible):
        pass
    return (visible[: m.start()] if m else visible).strip().rstrip("*_`#").strip()


def png_data_url(img: np.ndarray, min_side: int = 0) -> str:
    """An (H, W, 3) uint8 image as a ``data:image/png;base64,…`` URL (nearest-neighbour upscaled to ``min_side``)."""
    return "data:image/png;base64," + base64.b64encode(png_bytes(img, min_side)).decode("ascii")


def png_bytes(img: np.ndarray, min_side: int = 0) -> bytes:
    pil = upscaled(img, min_side)
    buf = io.BytesIO()
    pil.save(buf, format="PNG")
    return buf.getvalue()


def upscaled(img: np.ndarray, min_side: int = 0) -> Image.Image:
    """PIL image, enlarged by an integer factor with nearest-neighbour so its shorter side is ≥ ``min_side``.

    Integer nearest-neighbour keeps every artifact intact (each pixel becomes a block) — small 2AFC patches (64 px)
    are otherwise tiny next to the VLM's native resolution.
    """
    pil = Image.fromarray(np.asarray(img, dtype=np.uint8), mode="RGB")
    short = min(pil.size)
    if min_side and short < min_side:
        k = -(-min_side // short)
        pil = pil.resize((pil.width * k, pil.height * k), Image.Resampling.NEAREST)
    return pil


def openai_messages(ref: np.ndarray, a: np.ndarray, b: np.ndarray, min_side: int = 0,
                    reasoning: bool = True) -> list[dict]:
    """The prompt as OpenAI chat messages: text parts and PNG data-URL image parts."""
    images = (ref, a, b)
    content = []
    for kind, value in layout(reasoning):
        if kind == "text":
            content.append({"type": "text", "text": value})
        else:
            content.append({"type": "image_url", "image_url": {"url": png_data_url(images[value], min_side)}})
    return [{"role": "user", "content": content}]


def processor_messages(reasoning: bool = True) -> list[dict]:
    """The prompt for a transformers processor's chat template (images passed separately, in order)."""
    content = [{"type": "text", "text": v} if k == "text" else {"type": "image"} for k, v in layout(reasoning)]
    return [{"role": "user", "content": content}]
