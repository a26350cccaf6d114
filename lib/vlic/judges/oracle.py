"""The judges of a training method's oracle check: the flipped judge — another judge's verdicts with the sign
reversed, the *anti-oracle* — and the coin — a preference that carries no information, the *null*.

A training method is believed only when it reaches a reward it can reach (the oracle: e.g. the deterministic
``psnr`` judge as the DPO reward must raise held-out PSNR) **and** the same method with the preference flipped moves
the other way (``flipped(psnr)``: prefer the reconstruction *further* from the original). The second half catches a
check that cannot fail — a sign error, a label swapped in the buffer, or a "gain" that comes from training at all
rather than from the preferences. ``flipped(<judge>)`` is accepted wherever a judge name is
(:func:`vlic.judges.factory.make_judge`); its verdicts are cached under their own identity.

The **coin** (judge name ``coin``) prefers one of the two images at random — a fair coin seeded by the images
themselves, so it is deterministic, antisymmetric (swapping A and B swaps its choice) and cacheable like a metric.
Training on its preferences measures what training does *with no preference at all*: how far the decoder drifts,
and in which direction a held-out metric then moves. That is the baseline an oracle's win-rate is read against.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from typing import Any, Sequence

from vlic.judges.base import Judge, JudgeBase, OnVerdict, Query, Verdict, image_digest

NAME = re.compile(r"^flipped\((.+)\)$")


def is_flipped(name: str) -> bool:
    return bool(NAME.match(name or ""))


def flipped_inner(name: str) -> str:
    """``"flipped(psnr)"`` → ``"psnr"``."""
    m = NAME.match(name or "")
    if not m:
        raise ValueError(f"'{name}' is not a flipped judge name (expected flipped(<judge>))")
    return m.group(1)


class FlippedJudge(JudgeBase):
    """``inner``'s ratings negated (failures pass through unchanged); same determinism and antisymmetry."""

    def __init__(self, inner: Judge):
        self.inner = inner
        self.name = f"flipped({inner.name})"
        self.deterministic = inner.deterministic
        self.antisymmetric = inner.antisymmetric

    def identity(self) -> dict[str, Any]:
        return {"backend": "flipped", "inner": self.inner.identity()}

    def judge_many(self, queries: Sequence[Query], on_verdict: OnVerdict | None = None) -> list[Verdict]:
        def flip(v: Verdict) -> Verdict:
            return v if v.rating is None else dataclasses.replace(v, rating=-v.rating, scores=v.scores[::-1])

        relay = None if on_verdict is None else (lambda i, v: on_verdict(i, flip(v)))
        return [flip(v) for v in self.inner.judge_many(queries, relay)]


COIN = "coin"


class CoinJudge(JudgeBase):
    """A fair coin per query, seeded by the images: rating −1 (A) or +1 (B), 0 when A and B are the same image."""

    name = COIN
    deterministic = True
    antisymmetric = True

    def identity(self) -> dict[str, Any]:
        return {"backend": "coin", "version": 1}

    def judge_many(self, queries: Sequence[Query], on_verdict: OnVerdict | None = None) -> list[Verdict]:
        out = []
        for i, q in enumerate(queries):
            da, db = image_digest(q.a, "a"), image_digest(q.b, "b")
            if da == db:
                rating = 0
            else:   # one toss for the unordered pair (and its reference): the same image wins in either order
                first, second = sorted((da, db))
                heads = hashlib.sha256(f"{image_digest(q.ref, 'ref')}{first}{second}".encode()).digest()[0] & 1
                winner = first if heads else second
                rating = -1 if winner == da else 1
            v = Verdict(rating=rating, text=f"coin: {'A' if rating < 0 else 'B' if rating > 0 else 'same image'}")
            if on_verdict is not None:
                on_verdict(i, v)
            out.append(v)
        return out

