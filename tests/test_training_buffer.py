"""Preference buffer: FIFO capacity, sampling, and concurrent judging that never blocks on a filled buffer."""

from __future__ import annotations

import threading
import time

import pytest

from vlic.training.buffer import Candidate, Judgement, OnlinePreferenceCollector, PreferenceBuffer, PreferencePair


def _pair(k):
    return PreferencePair(original=k, winner=f"w{k}", loser=f"l{k}", rating=1.0, meta={"k": k})


def test_fifo_capacity_and_eviction():
    buf = PreferenceBuffer(capacity=3)
    for k in range(5):
        buf.add(_pair(k))
    assert len(buf) == 3 and buf.added == 5 and buf.evicted == 2
    assert sorted(p.original for p in buf.sample(3)) == [2, 3, 4]


def test_sampling_is_seeded_and_falls_back_to_replacement():
    a, b = PreferenceBuffer(10, seed=7), PreferenceBuffer(10, seed=7)
    for k in range(10):
        a.add(_pair(k)), b.add(_pair(k))
    assert [p.original for p in a.sample(4)] == [p.original for p in b.sample(4)]
    assert len(a.sample(25)) == 25
    with pytest.raises(RuntimeError, match="empty"):
        PreferenceBuffer(2).sample(1)
    with pytest.raises(ValueError, match="capacity"):
        PreferenceBuffer(0)


def judge_by_sum(c: Candidate) -> Judgement:
    """Toy judge: the reconstruction closer to the original wins; equal distance is a tie; negative input fails."""
    if c.original < 0:
        raise ConnectionError("server went away")
    da, db = abs(c.a - c.original), abs(c.b - c.original)
    if da == db:
        return Judgement(None, "tie", calls=2)
    return Judgement("a" if da < db else "b", rating=float(db - da), calls=2)


def test_collector_accepts_orders_and_counts_discards():
    buf = PreferenceBuffer(100)
    with OnlinePreferenceCollector(buf, judge_by_sum, workers=3) as col:
        col.submit([Candidate(10, 9, 15, {"i": 0}), Candidate(10, 20, 11, {"i": 1}),
                    Candidate(10, 8, 12, {"i": 2}), Candidate(-1, 0, 0, {"i": 3})])
        col.drain(timeout=10)
    s = col.stats
    assert (s.submitted, s.judged, s.accepted) == (4, 4, 2)
    assert s.discarded == {"tie": 1, "failure": 1}
    assert s.judge_calls == 2 * 3 + 1
    winners = {p.meta["i"]: (p.winner, p.loser) for p in buf.sample(2)}
    assert winners == {0: (9, 15), 1: (11, 20)}
    assert any(r["reason"] and "ConnectionError" in r["reason"] for r in col.log)
    assert s.acceptance_rate == 0.5


def test_trainer_does_not_wait_on_a_slow_judge_once_the_buffer_has_pairs():
    release = threading.Event()

    def slow_judge(c: Candidate) -> Judgement:
        if c.meta["slow"]:
            release.wait(5)
        return Judgement("a")

    buf = PreferenceBuffer(10)
    col = OnlinePreferenceCollector(buf, slow_judge, workers=2)
    col.submit([Candidate(0, 0, 1, {"slow": False})])
    assert buf.wait_until(1, timeout=5)
    col.submit([Candidate(0, 0, 1, {"slow": True}) for _ in range(4)])
    start = time.perf_counter()
    batches = [buf.sample(2) for _ in range(50)]  # training steps proceed while 4 verdicts are outstanding
    assert time.perf_counter() - start < 1.0 and len(batches) == 50
    assert col.pending >= 3
    release.set()
    col.drain(timeout=10)
    col.close()
    assert col.stats.accepted == 5


def test_buffer_and_collector_state_round_trip_and_inline_judging():
    buf = PreferenceBuffer(4, seed=3)
    col = OnlinePreferenceCollector(buf, judge_by_sum, workers=0)   # inline: judged inside submit
    col.submit([Candidate(10, 9, 15, {"i": i}) for i in range(6)] + [Candidate(10, 5, 15, {"i": 9})])
    assert col.pending == 0 and col.stats.judged == 7 and len(buf) == 4 and buf.evicted == 2  # the last is a tie
    state, cstate = buf.state_dict(), col.state_dict()
    again = PreferenceBuffer(4, seed=99)
    again.load_state_dict(state)
    col2 = OnlinePreferenceCollector(again, judge_by_sum, workers=0)
    col2.load_state_dict(cstate)
    assert [p.meta for p in again.sample(3)] == [p.meta for p in buf.sample(3)]   # same pairs, same RNG
    assert col2.stats.as_dict() == col.stats.as_dict() and col2.log == col.log
    with pytest.raises(ValueError, match="capacity"):
        PreferenceBuffer(5).load_state_dict(state)


def test_staged_batches_enter_the_buffer_in_submission_order_whatever_the_thread_timing():
    def jittery(c: Candidate) -> Judgement:
        time.sleep(0.02 * ((7 * c.meta["i"]) % 5))   # later candidates often finish first
        return judge_by_sum(c)

    cands = [Candidate(10, 10 - (i % 3), 12 + (i % 4), {"i": i}) for i in range(12)] + [Candidate(-1, 0, 0, {"i": 99})]
    orders = []
    for workers in (0, 4):
        buf = PreferenceBuffer(100)
        with OnlinePreferenceCollector(buf, jittery, workers=workers) as col:
            batch = col.submit_batch(cands)
            assert col.staged_batches == [batch]
            if workers:
                assert len(buf) == 0                   # nothing enters before the merge, judged or not
            waited = col.merge(batch)
            assert waited >= 0 and col.staged_batches == []
            with pytest.raises(KeyError, match="staged"):
                col.merge(batch)
        orders.append([p.meta["i"] for p in buf.state_dict()["pairs"]])
        assert col.stats.judged == 13 and col.stats.discarded == {"tie": 1, "failure": 1}
    assert orders[0] == orders[1] == [0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11]   # candidate 8 is a tie (2 = 2)


def test_judged_but_unmerged_pairs_survive_a_state_round_trip():
    buf = PreferenceBuffer(10)
    col = OnlinePreferenceCollector(buf, judge_by_sum, workers=2)
    batch = col.submit_batch([Candidate(10, 9, 15, {"i": i}) for i in range(3)])
    col.drain(timeout=10)
    state = col.state_dict()
    col.close()
    buf2 = PreferenceBuffer(10)
    col2 = OnlinePreferenceCollector(buf2, judge_by_sum, workers=0)
    col2.load_state_dict(state)
    assert len(buf2) == 0 and col2.staged_batches == [batch]
    col2.merge(batch)
    assert [p.meta["i"] for p in buf2.state_dict()["pairs"]] == [0, 1, 2]
    assert col2.submit_batch([Candidate(10, 9, 15, {"i": 3})]) == batch + 1   # batch ids continue
