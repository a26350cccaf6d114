"""The online preference buffer of DPO post-training, filled by a judge running concurrently with training.

The trainer periodically samples candidate pairs from the current decoder (two reconstructions of one code) and
hands them to :class:`OnlinePreferenceCollector`, which judges them on a thread pool while the trainer keeps drawing
batches from a bounded FIFO :class:`PreferenceBuffer`. Ties, judge disagreements and failures are discarded and
counted.

Two ways for verdicts to reach the buffer:

* :meth:`~OnlinePreferenceCollector.submit` — each accepted pair enters the buffer the moment its verdict arrives
  (lowest latency; what the buffer holds at a given training step depends on thread timing);
* :meth:`~OnlinePreferenceCollector.submit_batch` + :meth:`~OnlinePreferenceCollector.merge` — a batch is judged in
  the background like the above, but its accepted pairs enter the buffer together, in submission order, when the
  trainer calls ``merge`` at a step it chose in advance. The buffer's contents at every step are then independent of
  timing and of the number of judge threads (``workers=0`` gives the same training run as ``workers=4``); the trainer
  waits only if the judge has not finished that batch by then, and the wait is measured.
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

Winner = Literal["a", "b"]


@dataclass(frozen=True)
class Candidate:
    """Two reconstructions ``a`` and ``b`` of ``original`` (any array/tensor type), with provenance; ``more`` holds
    further reconstructions of the same code, and then the pair is the best and the worst of all of them
    (:func:`round_robin`)."""

    original: Any
    a: Any
    b: Any
    meta: dict = field(default_factory=dict)
    more: tuple = ()


@dataclass(frozen=True)
class Judgement:
    """A judge's decision on a candidate: ``winner`` is None when the pair is discarded (``reason`` says why)."""

    winner: Winner | None
    reason: str | None = None   # e.g. "tie", "disagreement", "failure: …"
    rating: float | None = None
    calls: int = 1


@dataclass(frozen=True)
class PreferencePair:
    original: Any
    winner: Any
    loser: Any
    rating: float | None
    meta: dict


def round_robin(judge: Callable[[Candidate], Judgement], cand: Candidate) -> tuple[Judgement, Any, Any]:
    """Best-versus-worst of ``cand``'s reconstructions (``a``, ``b``, ``*more``) by the 2AFC ``judge``: every pair is
    judged once; a decisive verdict scores 1 for its winner, a discarded one ½ for each (Copeland's rule). The pair
    is the highest scorer against the lowest (the first in order on ties), accepted only when the judge's own verdict
    on those two was decisive and went that way — so the winner is the judge's choice, never inferred through third
    images. Returns (the verdict, winner, loser); the verdict counts every call, and its winner is ``"a"``."""
    samples = (cand.a, cand.b, *cand.more)
    k = len(samples)
    if k < 2:
        raise ValueError(f"a round robin needs at least two reconstructions, got {k}")
    score, direct, calls = [0.0] * k, {}, 0
    for i in range(k):
        for j in range(i + 1, k):
            v = judge(Candidate(cand.original, samples[i], samples[j], cand.meta))
            calls += v.calls
            if v.winner is None:
                score[i] += 0.5
                score[j] += 0.5
            else:
                score[i if v.winner == "a" else j] += 1
            direct[i, j] = v
    best = max(range(k), key=lambda i: (score[i], -i))
    worst = min(range(k), key=lambda i: (score[i], i))
    if best == worst:
        return Judgement(None, "tie: every reconstruction scored the same", None, calls), None, None
    lo, hi = min(best, worst), max(best, worst)
    v = direct[lo, hi]
    if v.winner is None:
        return Judgement(None, v.reason, None, calls), None, None
    if (lo if v.winner == "a" else hi) != best:
        return Judgement(None, "intransitive: the worst beat the best", None, calls), None, None
    rating = v.rating if v.rating is None or best == lo else -v.rating
    return Judgement("a", None, rating, calls), samples[best], samples[worst]


class PreferenceBuffer:
    """A thread-safe FIFO of at most ``capacity`` preference pairs (the oldest are evicted first).

    :meth:`state_dict` / :meth:`load_state_dict` carry the pairs, the counters and the sampling RNG, so a resumed
    training run draws the same batches as an uninterrupted one.
    """

    def __init__(self, capacity: int, seed: int = 0):
        if capacity < 1:
            raise ValueError(f"buffer capacity must be ≥ 1, got {capacity}")
        self.capacity = capacity
        self._pairs: deque[PreferencePair] = deque(maxlen=capacity)
        self._lock = threading.Lock()
        self._not_empty = threading.Condition(self._lock)
        self._rng = random.Random(seed)
        self.added = 0
        self.evicted = 0

    def __len__(self) -> int:
        with self._lock:
            return len(self._pairs)

    def add(self, pair: PreferencePair) -> None:
        with self._not_empty:
            if len(self._pairs) == self.capacity:
                self.evicted += 1
            self._pairs.append(pair)
            self.added += 1
            self._not_empty.notify_all()

    def wait_until(self, n: int, timeout: float | None = None) -> bool:
        """Block until the buffer holds at least ``n`` pairs (or the timeout passes); return whether it does."""
        with self._not_empty:
            return self._not_empty.wait_for(lambda: len(self._pairs) >= min(n, self.capacity), timeout)

    def sample(self, n: int) -> list[PreferencePair]:
        """``n`` pairs drawn uniformly (without replacement when the buffer holds enough, else with)."""
        with self._lock:
            if not self._pairs:
                raise RuntimeError("the preference buffer is empty: no pair has been accepted by the judge yet")
            pool = list(self._pairs)
        if n <= len(pool):
            return self._rng.sample(pool, n)
        return [self._rng.choice(pool) for _ in range(n)]

    def state_dict(self) -> dict:
        with self._lock:
            return {"capacity": self.capacity, "pairs": list(self._pairs), "added": self.added,
                    "evicted": self.evicted, "rng": self._rng.getstate()}

    def load_state_dict(self, state: dict) -> None:
        if state["capacity"] != self.capacity:
            raise ValueError(f"buffer state was saved with capacity {state['capacity']}, this buffer has {self.capacity}")
        with self._not_empty:
            self._pairs.clear()
            self._pairs.extend(state["pairs"])
            self.added, self.evicted = int(state["added"]), int(state["evicted"])
            self._rng.setstate(state["rng"])
            self._not_empty.notify_all()


@dataclass
class CollectorStats:
    submitted: int = 0
    judged: int = 0
    accepted: int = 0
    discarded: dict[str, int] = field(default_factory=dict)
    judge_calls: int = 0
    judge_seconds: float = 0.0

    @property
    def acceptance_rate(self) -> float:
        return self.accepted / self.judged if self.judged else float("nan")

    @classmethod
    def from_dict(cls, d: dict) -> "CollectorStats":
        return cls(int(d["submitted"]), int(d["judged"]), int(d["accepted"]), dict(d["discarded"]),
                   int(d["judge_calls"]), float(d["judge_seconds"]))

    def as_dict(self) -> dict:
        return {
            "submitted": self.submitted,
            "judged": self.judged,
            "accepted": self.accepted,
            "acceptance_rate": self.acceptance_rate,
            "discarded": dict(self.discarded),
            "judge_calls": self.judge_calls,
            "judge_seconds": round(self.judge_seconds, 3),
        }


class OnlinePreferenceCollector:
    """Judges candidates on ``workers`` threads and feeds accepted pairs into ``buffer``.

    ``judge(candidate) -> Judgement`` may be slow (an HTTP VLM) or fast (a metric); exceptions it raises are
    recorded as discarded pairs with reason ``"failure: <Type>"``, never lost silently and never fatal.
    ``workers=0`` judges inline in :meth:`submit` (no thread: deterministic, for tests and exact resumption).
    """

    def __init__(self, buffer: PreferenceBuffer, judge: Callable[[Candidate], Judgement], workers: int = 2):
        self.buffer = buffer
        self.judge = judge
        self.stats = CollectorStats()
        self.log: list[dict] = []   # one row per judged candidate: time, accepted, reason, meta
        self._lock = threading.Lock()
        self.workers = int(workers)
        self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="judge") if self.workers > 0 else None
        self._pending: set[Future] = set()
        self._staged: dict[int, list[PreferencePair | None]] = {}   # batch → one slot per candidate, in order
        self._batch_futures: dict[int, list[Future]] = {}
        self._next_batch = 0
        self._t0 = time.perf_counter()

    def submit(self, candidates: Iterable[Candidate]) -> int:
        """Queue candidates for judging without blocking; return how many were queued."""
        n = 0
        for cand in candidates:
            if self._pool is None:
                with self._lock:
                    self.stats.submitted += 1
                self._judge_one(cand)
                n += 1
                continue
            fut = self._pool.submit(self._judge_one, cand)
            with self._lock:
                self._pending.add(fut)
                self.stats.submitted += 1
            fut.add_done_callback(self._done)
            n += 1
        return n

    def submit_batch(self, candidates: Iterable[Candidate]) -> int:
        """Queue candidates for judging without blocking; their accepted pairs wait for :meth:`merge`. Returns the
        batch id."""
        cands = list(candidates)
        with self._lock:
            batch = self._next_batch
            self._next_batch += 1
            self._staged[batch] = [None] * len(cands)
            self._batch_futures[batch] = []
        for i, cand in enumerate(cands):
            with self._lock:
                self.stats.submitted += 1
            if self._pool is None:
                self._judge_one(cand, (batch, i))
                continue
            fut = self._pool.submit(self._judge_one, cand, (batch, i))
            with self._lock:
                self._pending.add(fut)
                self._batch_futures[batch].append(fut)
            fut.add_done_callback(self._done)
        return batch

    def merge(self, batch: int, timeout: float | None = None) -> float:
        """Wait until every candidate of ``batch`` is judged, then add its accepted pairs to the buffer in submission
        order. Returns the seconds spent waiting for the judge."""
        with self._lock:
            if batch not in self._staged:
                raise KeyError(f"no staged batch {batch} (already merged, or never submitted)")
            futures = list(self._batch_futures.pop(batch, []))
        start = time.perf_counter()
        for fut in futures:
            fut.result(timeout)   # _judge_one never raises: judge exceptions are recorded as failures
        waited = time.perf_counter() - start
        with self._lock:
            slots = self._staged.pop(batch)
        for pair in slots:
            if pair is not None:
                self.buffer.add(pair)
        return waited

    @property
    def staged_batches(self) -> list[int]:
        with self._lock:
            return sorted(self._staged)

    def _done(self, fut: Future) -> None:
        with self._lock:
            self._pending.discard(fut)

    def _judge_one(self, cand: Candidate, slot: tuple[int, int] | None = None) -> None:
        start = time.perf_counter()
        try:
            if cand.more:
                verdict, win, lose = round_robin(self.judge, cand)
            else:
                verdict = self.judge(cand)
                win, lose = (cand.a, cand.b) if verdict.winner == "a" else (cand.b, cand.a)
        except Exception as e:  # a judge failure is a recorded discard, not a crash of training
            verdict = Judgement(None, f"failure: {type(e).__name__}: {e}"[:200])
        elapsed = time.perf_counter() - start
        if verdict.winner is not None:
            pair = PreferencePair(cand.original, win, lose, verdict.rating, dict(cand.meta))
            if slot is None:
                self.buffer.add(pair)
            else:
                with self._lock:
                    self._staged[slot[0]][slot[1]] = pair
        with self._lock:
            s = self.stats
            s.judged += 1
            s.judge_calls += verdict.calls
            s.judge_seconds += elapsed
            if verdict.winner is not None:
                s.accepted += 1
            else:
                key = (verdict.reason or "discarded").split(":")[0]
                s.discarded[key] = s.discarded.get(key, 0) + 1
            self.log.append(
                {
                    "t": round(time.perf_counter() - self._t0, 4),
                    "accepted": verdict.winner is not None,
                    "reason": verdict.reason,
                    "rating": verdict.rating,
                    "calls": verdict.calls,
                    **{k: v for k, v in cand.meta.items() if isinstance(v, (int, float, str))},
                }
            )

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    def drain(self, timeout: float | None = None) -> None:
        """Wait until every queued candidate has been judged."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.pending:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"{self.pending} candidates still being judged after {timeout} s")
            time.sleep(0.01)

    def state_dict(self) -> dict:
        """Counters, log and judged-but-unmerged batches (call after :meth:`drain`: candidates still being judged
        are not part of the state)."""
        with self._lock:
            return {"stats": self.stats.as_dict(), "log": list(self.log), "elapsed": time.perf_counter() - self._t0,
                    "staged": {b: list(v) for b, v in self._staged.items()}, "next_batch": self._next_batch}

    def load_state_dict(self, state: dict) -> None:
        with self._lock:
            self.stats = CollectorStats.from_dict(state["stats"])
            self.log = list(state["log"])
            self._t0 = time.perf_counter() - float(state.get("elapsed", 0.0))
            self._staged = {int(b): list(v) for b, v in state.get("staged", {}).items()}
            self._batch_futures = {}
            self._next_batch = int(state.get("next_batch", 0))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=False)

    def __enter__(self) -> "OnlinePreferenceCollector":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
