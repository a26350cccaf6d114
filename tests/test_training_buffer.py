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


def test_round_robin_pairs_the_judges_best_with_its_worst_and_counts_every_call():
    from vlic.training.buffer import round_robin

    # original 10; reconstructions 13, 9, 16, 11: best 9 (3 wins), worst 16 (0 wins), judged directly: accepted
    verdict, win, lose = round_robin(judge_by_sum, Candidate(10, 13, 9, more=(16, 11)))
    assert (verdict.winner, win, lose) == ("a", 9, 16) and verdict.calls == 2 * 6
    assert verdict.rating == 5.0          # |16 − 10| − |9 − 10|: expressed for the returned order, winner first
    # two equally good reconstructions: nothing to learn
    verdict, win, lose = round_robin(judge_by_sum, Candidate(10, 12, 8))
    assert verdict.winner is None and verdict.reason.startswith("tie") and win is None
    # through the collector: the pair that enters the buffer is (best, worst), with provenance
    buf = PreferenceBuffer(10)
    with OnlinePreferenceCollector(buf, judge_by_sum, workers=0) as col:
        col.submit([Candidate(10, 13, 9, {"i": 0}, more=(16, 11))])
    (pair,) = buf.sample(1)
    assert (pair.winner, pair.loser, pair.meta) == (9, 16, {"i": 0})
    assert col.stats.judge_calls == 12 and col.stats.accepted == 1


def test_round_robin_refuses_an_intransitive_best_and_worst():
    from vlic.training.buffer import round_robin

    beats = {(0, 1), (1, 2), (2, 0)}        # rock, paper, scissors: everyone scores 1

    def cyclic(c: Candidate) -> Judgement:
        return Judgement("a" if (c.a, c.b) in beats else "b")

    verdict, _, _ = round_robin(cyclic, Candidate(None, 0, 1, more=(2,)))
    assert verdict.winner is None and verdict.reason.startswith("tie")
    beats2 = {(0, 1), (1, 2), (2, 0), (0, 3), (1, 3), (3, 2)}   # scores 0:2, 1:2, 2:1, 3:1 → best 0, worst 2; 2 beat 0

    def cyclic2(c: Candidate) -> Judgement:
        return Judgement("a" if (c.a, c.b) in beats2 else "b")

    verdict, _, _ = round_robin(cyclic2, Candidate(None, 0, 1, more=(2, 3)))
    assert verdict.winner is None and verdict.reason.startswith("intransitive")

    def undecided(c: Candidate) -> Judgement:       # 0 and 2 undecided: 0 scores 1.5, 1 scores 2, 2 scores 0.5
        if {c.a, c.b} == {0, 2}:
            return Judgement(None, "disagreement")
        return Judgement("a" if (c.a, c.b) in {(1, 0), (0, 2), (1, 2)} else "b")

    verdict, _, _ = round_robin(undecided, Candidate(None, 0, 1, more=(2,)))
    assert (verdict.winner, verdict.reason) == ("a", None)       # best 1, worst 2: decided directly
    verdict, _, _ = round_robin(lambda c: Judgement(None, "disagreement") if {c.a, c.b} == {1, 2} else
                                Judgement("a" if (c.a, c.b) in {(1, 0), (0, 2)} else "b"),
                                Candidate(None, 0, 1, more=(2,)))
    assert (verdict.winner, verdict.reason) == (None, "disagreement")   # best 1 (1.5), worst 2 (0.5): the judge's own discard
