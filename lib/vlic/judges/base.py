"""The judge interface: a :class:`Query` (reference, A, B, seed) in, a :class:`Verdict` out.

Convention used everywhere: a **rating** is an integer in [−5, 5]; **negative means A** (the first candidate shown)
**is closer to the reference**, positive means B, 0 means "no difference". A verdict without a usable rating is a
failure record (``rating is None`` and ``failure`` says why) — never a silent 0.

A judge declares two properties that let the ensemble skip needless calls:

* ``deterministic`` — every seed gives the same answer (metrics), so one seed is asked;
* ``antisymmetric`` — ``rating(ref, B, A) == −rating(ref, A, B)`` exactly (metrics), so one order is asked.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Sequence, runtime_checkable

import numpy as np

RATING_MIN, RATING_MAX = -5, 5

#: failure kinds. ``parse``: the model answered but gave no usable rating (cached: asking again with the same seed
#: is the same experiment). ``transport``: no answer after retries (429/5xx/timeouts; not cached, a rerun retries).
#: ``error``: the request was rejected (e.g. HTTP 400; not cached).
FAILURE_KINDS = ("parse", "transport", "error")


class JudgeError(RuntimeError):
    """A judge cannot run as configured (bad parameters, unreadable input)."""


class JudgeUnavailable(JudgeError):
    """The judge's backend is not there: missing key, dead server, weights not available offline."""


@dataclass(frozen=True)
class Query:
    """One question to a judge: is ``a`` or ``b`` closer to ``ref``? Images are (H, W, 3) uint8 arrays."""

    ref: np.ndarray
    a: np.ndarray
    b: np.ndarray
    seed: int = 0

    def swapped(self) -> "Query":
        return Query(self.ref, self.b, self.a, self.seed)

    def content_key(self) -> str:
        """Content hash of the three images *in this order* and the seed (the judge's identity is added by the cache)."""
        h = hashlib.sha256()
        for name, img in (("ref", self.ref), ("a", self.a), ("b", self.b)):
            h.update(image_digest(img, name).encode())
        h.update(f"seed={int(self.seed)}".encode())
        return h.hexdigest()


def image_digest(img: np.ndarray, name: str = "image") -> str:
    """SHA-256 of an (H, W, 3) uint8 image's shape and bytes."""
    arr = np.asarray(img)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise JudgeError(f"{name} image must be (H, W, 3) uint8, got shape {arr.shape} dtype {arr.dtype}")
    h = hashlib.sha256(f"{arr.shape}".encode())
    h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()


@dataclass(frozen=True)
class Verdict:
    """One judge's answer to one :class:`Query` (one order, one seed)."""

    rating: int | None                  # [−5, 5], negative = A closer; None ⇔ failure
    failure: str | None = None          # why there is no usable rating
    failure_kind: str | None = None     # one of FAILURE_KINDS
    text: str = ""                      # the raw answer (VLM) or a one-line summary (metric)
    rationale: str = ""                 # the answer before its final RATING line (VLM)
    latency_s: float = 0.0              # wall time of the model call (batch time shared equally in a batch)
    tokens_in: int | None = None
    tokens_out: int | None = None
    cost_usd: float | None = None
    scores: tuple[float, ...] = ()      # metric judges: (distance(ref, A), distance(ref, B))
    cached: bool = field(default=False, compare=False)

    def __post_init__(self) -> None:
        if self.rating is None and not self.failure:
            raise ValueError("a Verdict without a rating must say why (failure=...)")
        if self.rating is not None and not (RATING_MIN <= self.rating <= RATING_MAX):
            raise ValueError(f"rating {self.rating} outside [{RATING_MIN}, {RATING_MAX}]")
        if self.failure_kind is not None and self.failure_kind not in FAILURE_KINDS:
            raise ValueError(f"failure_kind {self.failure_kind!r} not in {FAILURE_KINDS}")

    @property
    def ok(self) -> bool:
        return self.rating is not None

    @classmethod
    def failed(cls, why: str, kind: str, **kw: Any) -> "Verdict":
        return cls(rating=None, failure=why, failure_kind=kind, **kw)


OnVerdict = Callable[[int, Verdict], None]


@runtime_checkable
class Judge(Protocol):
    """What every backend provides."""

    name: str
    deterministic: bool
    antisymmetric: bool

    def identity(self) -> dict[str, Any]:
        """Everything that changes the answer (backend, model, prompt version, sampling settings) — never a key."""

    def judge_many(self, queries: Sequence[Query], on_verdict: OnVerdict | None = None) -> list[Verdict]:
        """Answer every query (in order); call ``on_verdict(i, verdict)`` as soon as each one arrives."""


class JudgeBase:
    """Shared conveniences: one-query :meth:`judge`, a readable ``repr``."""

    name: str = "judge"
    deterministic: bool = False
    antisymmetric: bool = False

    def identity(self) -> dict[str, Any]:  # pragma: no cover - overridden
        raise NotImplementedError

    def judge_many(self, queries: Sequence[Query], on_verdict: OnVerdict | None = None) -> list[Verdict]:  # pragma: no cover
        raise NotImplementedError

    def judge(self, ref: np.ndarray, a: np.ndarray, b: np.ndarray, seed: int = 0) -> Verdict:
        return self.judge_many([Query(ref, a, b, seed)])[0]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.identity()})"
