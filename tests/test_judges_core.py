"""Metric judges, the distance→rating mapping, the ensemble protocol, the unanimous vote and the verdict cache."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from vlic.judges.base import JudgeBase, JudgeUnavailable, Query, Verdict
from vlic.judges.cache import VerdictCache
from vlic.judges.ensemble import agreement, combine, order_consistency, run_judge, unanimous_vote
from vlic.judges.factory import VLMSettings, availability, make_judge
from vlic.judges.metric import MetricJudge, rating_from_distances


@pytest.mark.parametrize(
    "d_a,d_b,r",
    [(1.0, 1.0, 0), (0.0, 0.0, 0), (0.1, 1.0, -5), (1.0, 0.1, 5), (0.5, 1.0, -3), (0.99, 1.0, -1), (0.8, 1.0, -1),
     (0.7, 1.0, -2), (1.0, 0.0, 5), (2.0, 1.0, 3)],
)
def test_rating_from_distances(d_a, d_b, r):
    assert rating_from_distances(d_a, d_b) == r


def test_metric_judge_known_values():
    ref = np.full((32, 32, 3), 100, np.uint8)
    a = ref + np.uint8(2)
    b = ref + np.uint8(4)
    v = MetricJudge("psnr").judge(ref, a, b)
    assert v.scores == pytest.approx(((2 / 255) ** 2, (4 / 255) ** 2))  # MSE
    assert v.rating == -4  # δ = (4 − 16)/16 = −0.75 → round(3.75) = 4
    assert MetricJudge("psnr").judge(ref, b, a).rating == 4


@pytest.mark.parametrize("name", ["ssim", "ms_ssim", "haarpsi", "gmsd", "ms_gmsd", "mdsi"])
def test_classical_metrics_prefer_the_milder_noise(name):
    rng = np.random.default_rng(0)
    ref = rng.integers(40, 216, (32, 32, 3)).astype(np.uint8)
    noise = rng.standard_normal(ref.shape)
    a = np.clip(ref + 4 * noise, 0, 255).astype(np.uint8)
    b = np.clip(ref + 25 * noise, 0, 255).astype(np.uint8)
    assert MetricJudge(name).judge(ref, a, b).rating < 0


def test_learned_metrics_without_weights_say_not_available_offline(monkeypatch, tmp_path):
    monkeypatch.setattr("vlic.judges.metric.hub_checkpoints", lambda: tmp_path)
    for name in ("lpips_alex", "lpips_vgg", "dists"):
        assert "not available offline" in availability(name)
        with pytest.raises(JudgeUnavailable, match="not available offline"):
            MetricJudge(name)
    assert availability("vlm", VLMSettings()) == "not configured"
    assert availability("haarpsi") is None


class ScriptedJudge(JudgeBase):
    """Answers from a function of (pair id encoded in ref[0,0,0], seed, order); counts calls; can die mid-run."""

    name = "scripted"

    def __init__(self, answer, die_after=None):
        self.answer, self.die_after, self.calls = answer, die_after, 0

    def identity(self):
        return {"backend": "scripted"}

    def judge_many(self, queries, on_verdict=None):
        out = []
        for i, q in enumerate(queries):
            if self.die_after is not None and self.calls >= self.die_after:
                raise KeyboardInterrupt("killed")
            self.calls += 1
            order = int(q.a[0, 0, 0] != 1)  # candidate "A" carries a 1 in its first pixel
            r = self.answer(int(q.ref[0, 0, 0]), q.seed, order)
            v = Verdict(rating=r) if r is not None else Verdict.failed("no RATING", "parse")
            out.append(v)
            if on_verdict:
                on_verdict(i, v)
        return out


def _pairs(n):
    refs = [np.full((2, 2, 3), p, np.uint8) for p in range(n)]
    a = [np.full((2, 2, 3), 1, np.uint8) for _ in range(n)]
    b = [np.full((2, 2, 3), 2, np.uint8) for _ in range(n)]
    return refs, a, b


def test_order_swap_and_seed_sum_follow_the_paper():
    # pair 0: always prefers A in both orders → V = −3. pair 1: position bias (always prefers the first shown)
    # → r_AB − r_BA = 0 each seed → V = 0. pair 2: seed 0 fails to parse → V over 2 seeds.
    # pair 3: r_AB = −2, r_BA = −1 (A slightly better seen from both sides) → sign(−1) per seed.
    def answer(pair, seed, order):
        if pair == 0:
            return -3 if order == 0 else 3
        if pair == 1:
            return -4
        if pair == 2:
            return None if seed == 0 else (2 if order == 0 else -2)
        return -2 if order == 0 else -1

    run = run_judge(ScriptedJudge(answer), *_pairs(4), seeds=3, orders=2)
    pairs = run.pairs()
    assert pairs["verdict"].tolist() == [-3.0, 0.0, 2.0, -3.0]
    assert pairs["n_valid_seeds"].tolist() == [3, 3, 2, 3]
    assert pairs["n_consistent"].tolist() == [3, 0, 2, 0]
    one_seed = run.pairs(seeds=1)["verdict"].to_numpy()
    assert one_seed[[0, 1, 3]].tolist() == [-1.0, 0.0, -1.0] and np.isnan(one_seed[2])
    assert order_consistency(run.raw) == pytest.approx(5 / 11)
    only_failures = run_judge(ScriptedJudge(lambda p, s, o: None), *_pairs(1), seeds=2)
    assert np.isnan(only_failures.pairs()["verdict"][0]) and only_failures.pairs()["failure"][0] == "no RATING"


def test_deterministic_antisymmetric_judges_are_asked_once():
    run = run_judge(MetricJudge("psnr"), *_pairs(3), seeds=3, orders=2)
    assert (run.n_seeds, run.n_orders, run.calls) == (1, 1, 3)


def test_cache_resumes_an_interrupted_run_and_then_makes_zero_calls(tmp_path):
    path = tmp_path / "v.sqlite"
    answer = lambda pair, seed, order: -1 if order == 0 else 1  # noqa: E731
    with pytest.raises(KeyboardInterrupt):
        run_judge(ScriptedJudge(answer, die_after=7), *_pairs(5), seeds=2, cache=VerdictCache(path))
    assert len(VerdictCache(path)) == 7  # each verdict committed as it arrived
    resumed = ScriptedJudge(answer)
    run = run_judge(resumed, *_pairs(5), seeds=2, cache=VerdictCache(path))
    assert resumed.calls == 20 - 7 and run.cache_hits == 7
    again = ScriptedJudge(answer)
    run = run_judge(again, *_pairs(5), seeds=2, cache=VerdictCache(path))
    assert again.calls == 0 and run.calls == 0 and run.pairs()["verdict"].tolist() == [-2.0] * 5
    # a different seed count reuses the seeds already asked
    more = ScriptedJudge(answer)
    run_judge(more, *_pairs(5), seeds=3, cache=VerdictCache(path))
    assert more.calls == 10


def test_cache_key_depends_on_images_order_seed_and_identity():
    from vlic.judges.cache import verdict_key

    ref, a, b = (np.full((2, 2, 3), v, np.uint8) for v in (0, 1, 2))
    q = Query(ref, a, b, 0)
    keys = {verdict_key({"m": 1}, q), verdict_key({"m": 1}, q.swapped()), verdict_key({"m": 1}, Query(ref, a, b, 1)),
            verdict_key({"m": 2}, q), verdict_key({"m": 1}, Query(ref, a, b.copy() + 1, 0))}
    assert len(keys) == 5
    assert verdict_key({"m": 1}, q) == verdict_key({"m": 1}, Query(ref.copy(), a.copy(), b.copy(), 0))


def test_unanimous_vote_and_agreement():
    v = unanimous_vote([-2, 1, 3, 0, np.nan, -1], [-1, 2, -3, 1, 1, np.nan])
    assert v.keep.tolist() == [True, True, False, False, False, False]
    assert v.label.tolist() == [-1, 1, 0, 0, 0, 0]
    assert (v.n_kept, v.n_disagree, v.n_tie, v.n_failed, v.n_discarded) == (2, 1, 1, 2, 4)
    ag = agreement([-1, -1, 1, 1, np.nan], [-1, 1, 1, 1, 1])
    assert ag["n"] == 4 and ag["agreement"] == 0.75
    assert ag["kappa"] == pytest.approx((0.75 - (0.5 * 0.25 + 0.5 * 0.75)) / (1 - 0.5))


def test_make_judge_names_unknown_judges():
    from vlic.judges.base import JudgeError

    with pytest.raises(JudgeError, match="unknown judge 'nope'"):
        make_judge("nope")
    with pytest.raises(JudgeError, match="not configured"):
        make_judge("vlm", VLMSettings())


def test_combine_on_a_hand_table():
    raw = pd.DataFrame({"pair": [0, 0], "seed": [0, 0], "order": [0, 1], "rating": [1.0, -5.0], "failure": [None, None]})
    assert combine(raw)["verdict"].tolist() == [1.0]


def test_lpips_code_path_on_a_random_backbone(monkeypatch):
    """The LPIPS judge's plumbing (scaling to [−1, 1], batching, rating) with the package's linear layers on a randomly
    initialised AlexNet — the real backbone weights are not on this machine and are never downloaded."""
    import functools

    import lpips

    monkeypatch.setattr("vlic.judges.metric.availability", lambda name: None)
    monkeypatch.setattr(lpips, "LPIPS", functools.partial(lpips.LPIPS, pnet_rand=True))
    rng = np.random.default_rng(0)
    ref = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    v = MetricJudge("lpips_alex").judge(ref, ref, 255 - ref)
    assert v.scores[0] == pytest.approx(0.0, abs=1e-6) and v.scores[1] > 0 and v.rating == -5


def test_vlm_settings_from_a_chapters_parameters_are_typed():
    from vlic.judges.factory import VLMSettings

    v = VLMSettings.from_params({"vlm_backend": "api", "vlm_temperature": "3e-05", "vlm_concurrency": "4",
                                 "vlm_send_seed": "false", "vlm_timeout_s": 30, "vlm_breaker_failures": "7",
                                 "not_vlm": 1, "vlm_unknown": 2})
    assert v.backend == "api" and v.temperature == 3e-05 and v.concurrency == 4 and v.send_seed is False
    assert v.timeout_s == 30.0 and isinstance(v.timeout_s, float) and v.breaker_failures == 7
    assert VLMSettings.from_params({}) == VLMSettings()
