"""The flipped judge: another judge's verdicts with the sign reversed — the *anti-oracle* of a training method's
oracle check.

A training method is believed only when it reaches a reward it can reach (the oracle: e.g. the deterministic
``psnr`` judge as the DPO reward must raise held-out PSNR) **and** the same method with the preference flipped moves
the other way (``flipped(psnr)``: prefer the reconstruction *further* from the original). The second half catches a
check that cannot fail — a sign error, a label swapped in the buffer, or a "gain" that comes from training at all
rather than from the preferences. ``flipped(<judge>)`` is accepted wherever a judge name is
(:func:`vlic.judges.factory.make_judge`); its verdicts are cached under their own identity.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Sequence

from vlic.judges.base import Judge, JudgeBase, OnVerdict, Query, Verdict

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
