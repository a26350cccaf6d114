"""The DPO reward: several judges' verdicts on "which reconstruction is closer to the original?", combined.

:class:`CombinedReward` applies any rule of :mod:`vlic.judges.combination` (single judge, unanimous vote, majority of
k, weighted sum of normalised ratings); :class:`UnanimousReward` is the paper's rule and the default. The rest of
this docstring describes the unanimous vote.

Each judge is asked through :func:`~vlic.judges.ensemble.run_judge` (both orders × ``seeds`` seeds, the paper's
protocol; one call for deterministic, antisymmetric metrics) and every verdict goes through the
:class:`~vlic.judges.cache.VerdictCache`. A pair is **kept** only when every judge strictly prefers the same
candidate; otherwise it is discarded as a ``tie`` (some judge has no preference), a ``disagreement`` or a
``failure`` (some judge gave no verdict) — the paper keeps only pairs on which the VLM and LPIPS agree.

Laptop profile: two offline metrics (default HaarPSI ∧ MS-SSIM, the pair chapter 01 finds most accurate and most in
agreement). Paper profile: ``vlm`` ∧ ``lpips_vgg``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from vlic.judges.base import Judge
from vlic.judges.cache import VerdictCache
from vlic.judges.combination import combine_judges
from vlic.judges.ensemble import run_judge
from vlic.training.buffer import Candidate, Judgement


@dataclass(frozen=True)
class VoteResult:
    """Per pair: ``label`` −1 (A preferred by every judge), +1 (B), 0 (discarded); ``reason`` None when kept."""

    label: np.ndarray
    reason: list[str | None]
    verdicts: dict[str, np.ndarray]   # each judge's combined verdict per pair (NaN = failed)
    calls: int                        # model calls made (cache misses), all judges
    score: np.ndarray | None = None   # the rule's graded value per pair (vlic.judges.combination)

    @property
    def kept(self) -> np.ndarray:
        return self.label != 0


class CombinedReward:
    """``reward.vote(refs, a, b)`` for a batch, or ``reward(candidate) -> Judgement`` for the online collector.

    Every judge is asked ``seeds`` seeds × ``orders`` orders per pair (metrics: once) through ``cache``; the verdicts
    are combined by ``rule`` (:func:`vlic.judges.combination.combine_judges`, with ``weights`` and ``margin`` for
    the weighted rule)."""

    def __init__(self, judges: Sequence[Judge], cache: VerdictCache | None = None, seeds: int = 3, orders: int = 2,
                 rule: str = "unanimous", weights: Sequence[float] | None = None, margin: float = 0.0,
                 name: str | None = None):
        if not judges:
            raise ValueError("the reward needs at least one judge")
        if rule == "single" and len(judges) != 1:
            raise ValueError(f"rule 'single' takes one judge, got {len(judges)}")
        self.judges = list(judges)
        self.cache = cache if cache is not None else VerdictCache(None)
        self.seeds, self.orders = int(seeds), int(orders)
        self.rule = rule
        self.weights = tuple(float(w) for w in weights) if weights else None
        self.margin = float(margin)
        self._name = name
        self._lock = threading.Lock()
        self.calls = 0

    @property
    def name(self) -> str:
        if self._name:
            return self._name
        names = [j.name for j in self.judges]
        if self.rule in ("unanimous", "single"):
            return " ∧ ".join(names)
        if self.rule == "majority":
            return f"majority({', '.join(names)})"
        w = self.weights or (1.0,) * len(names)
        return f"weighted({' + '.join(f'{x:g}·{n}' for x, n in zip(w, names))}; |score| ≥ {self.margin:g})"

    def vote(self, refs: Sequence[np.ndarray], a: Sequence[np.ndarray], b: Sequence[np.ndarray]) -> VoteResult:
        verdicts, strengths = {}, {}
        calls = 0
        for judge in self.judges:
            run = run_judge(judge, refs, a, b, seeds=self.seeds, orders=self.orders, cache=self.cache)
            pairs = run.pairs()
            verdicts[judge.name] = pairs["verdict"].to_numpy(dtype=float)
            strengths[judge.name] = pairs["strength"].to_numpy(dtype=float)
            calls += run.calls
        comb = combine_judges(self.rule, verdicts, strengths, self.weights, self.margin)
        with self._lock:
            self.calls += calls
        return VoteResult(comb.label, comb.reason, verdicts, calls, comb.score)

    def __call__(self, cand: Candidate) -> Judgement:
        res = self.vote([cand.original], [cand.a], [cand.b])
        rating = float(res.score[0]) if res.kept[0] else None
        winner = None if not res.kept[0] else ("a" if res.label[0] < 0 else "b")
        return Judgement(winner, res.reason[0], rating, calls=res.calls)


class UnanimousReward(CombinedReward):
    """The paper's reward: a pair is kept only when every judge strictly prefers the same candidate."""

    def __init__(self, judges: Sequence[Judge], cache: VerdictCache | None = None, seeds: int = 3, orders: int = 2):
        super().__init__(judges, cache, seeds, orders, rule="unanimous")
