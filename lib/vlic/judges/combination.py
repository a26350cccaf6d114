"""Reward combinations: several judges' verdicts on the same pairs → one label per pair, or a discard with a reason.

Inputs per judge and pair: the combined ``verdict`` V (Σ of per-seed votes, see :func:`vlic.judges.ensemble.combine`;
negative = A preferred, NaN = no verdict) and, for the weighted rule, the graded ``strength`` (mean of
(r_AB − r_BA)/2 over seeds, in [−5, 5]). Output: ``label`` −1 (A), +1 (B) or 0 (discarded) and ``reason``
(None when kept). The rules:

* ``single`` — one judge; kept when its verdict is strict (discards: ``tie``, ``failure``);
* ``unanimous`` — every judge strictly prefers the same side (the paper's reward: VLM ∧ LPIPS); discards:
  ``failure`` (some judge gave no verdict) before ``tie`` (some judge has no preference) before ``disagreement``;
* ``majority`` — more than half of the k judges prefer the same side; a failed or undecided judge counts as an
  abstention, which cannot help reach the majority (discards: ``no majority``; ``failure`` when every judge failed);
* ``weighted`` — score = Σ_j w_j · strength_j / 5 / Σ_j w_j ∈ [−1, 1] (every rating normalised to [−1, 1]); kept
  when |score| ≥ ``margin`` and score ≠ 0 (discards: ``failure`` when any judge failed — nothing is imputed —
  ``tie`` when the score is 0, ``below margin``).

``score`` is the rule's graded value in the judges' convention (negative = A): the mean verdict for ``unanimous``
(what :class:`~vlic.training.reward.UnanimousReward` has always reported), the verdict for ``single``,
(n_B − n_A)/k for ``majority``, the weighted score for ``weighted``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

RULES = ("single", "unanimous", "majority", "weighted")


@dataclass(frozen=True)
class Combination:
    label: np.ndarray             # (pairs,) −1 / +1 kept, 0 discarded
    reason: list[str | None]      # None when kept
    score: np.ndarray             # (pairs,) graded value, NaN when undefined

    @property
    def kept(self) -> np.ndarray:
        return self.label != 0

    @property
    def n_kept(self) -> int:
        return int(self.kept.sum())

    def discards(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.reason:
            if r is not None:
                out[r] = out.get(r, 0) + 1
        return out


def _stack(values: Mapping[str, Sequence[float]]) -> np.ndarray:
    arrays = [np.asarray(v, dtype=float) for v in values.values()]
    if not arrays:
        raise ValueError("a reward combination needs at least one judge")
    n = {a.shape for a in arrays}
    if len(n) != 1 or len(arrays[0].shape) != 1:
        raise ValueError(f"judges rated different numbers of pairs: {dict(zip(values, [a.shape for a in arrays]))}")
    return np.stack(arrays, axis=1)


def combine_judges(rule: str, verdicts: Mapping[str, Sequence[float]],
                   strengths: Mapping[str, Sequence[float]] | None = None,
                   weights: Sequence[float] | None = None, margin: float = 0.0) -> Combination:
    """Apply ``rule`` (one of :data:`RULES`) to per-judge verdicts; see the module docstring."""
    if rule not in RULES:
        raise ValueError(f"unknown reward rule '{rule}'; expected one of {', '.join(RULES)}")
    v = _stack(verdicts)
    prefs = np.sign(v)                                   # NaN stays NaN
    n_pairs, k = prefs.shape
    failed = np.isnan(prefs)
    if rule == "single":
        if k != 1:
            raise ValueError(f"rule 'single' takes exactly one judge, got {k}: {', '.join(verdicts)}")
        p = prefs[:, 0]
        reason = ["failure" if np.isnan(x) else ("tie" if x == 0 else None) for x in p]
        label = np.where(np.isnan(p), 0, p).astype(int)
        return Combination(label, reason, v[:, 0].copy())
    if rule == "unanimous":
        reason = []
        for row, f in zip(prefs, failed):
            if f.any():
                reason.append("failure")
            elif (row == 0).any():
                reason.append("tie")
            elif (row > 0).all() or (row < 0).all():
                reason.append(None)
            else:
                reason.append("disagreement")
        label = np.array([int(row[0]) if r is None else 0 for row, r in zip(prefs, reason)], dtype=int)
        with np.errstate(all="ignore"):
            score = np.where(failed.any(axis=1), np.nan, np.nanmean(np.where(failed, 0, v), axis=1))
        return Combination(label, reason, score)
    if rule == "majority":
        n_a = np.nansum(prefs < 0, axis=1)
        n_b = np.nansum(prefs > 0, axis=1)
        label = np.where(n_a > k / 2, -1, np.where(n_b > k / 2, 1, 0)).astype(int)
        reason = [None if lab else ("failure" if f.all() else "no majority") for lab, f in zip(label, failed)]
        return Combination(label, reason, (n_b - n_a) / k)
    # weighted
    if strengths is None:
        raise ValueError("rule 'weighted' needs each judge's graded strength")
    if list(strengths) != list(verdicts):
        raise ValueError(f"strengths are given for {list(strengths)}, verdicts for {list(verdicts)}")
    s = _stack(strengths) / 5.0
    w = np.ones(k) if weights is None or len(weights) == 0 else np.asarray(weights, dtype=float)
    if w.shape != (k,) or (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"weights must be {k} non-negative numbers with a positive sum, got {list(np.atleast_1d(w))}")
    if not 0 <= margin <= 1:
        raise ValueError(f"margin must be in [0, 1] (scores are normalised), got {margin}")
    any_failed = failed | np.isnan(s)
    score = np.where(any_failed.any(axis=1), np.nan, (np.nan_to_num(s) * w).sum(axis=1) / w.sum())
    reason = []
    for x in score:
        if np.isnan(x):
            reason.append("failure")
        elif abs(x) < 1e-9:          # exact cancellation up to rounding (0.2·3 − 0.6·1)
            reason.append("tie")
        elif abs(x) < margin:
            reason.append("below margin")
        else:
            reason.append(None)
    label = np.array([int(np.sign(x)) if r is None else 0 for x, r in zip(score, reason)], dtype=int)
    return Combination(label, reason, score)
