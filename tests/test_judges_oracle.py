"""The oracle check's judges: flipped(<judge>), the anti-oracle — every rating negated, failures kept, its own
identity — and the coin, the null — a fair, deterministic, antisymmetric coin per pair."""

from __future__ import annotations

import numpy as np

from vlic.judges.base import Query
from vlic.judges.cache import VerdictCache
from vlic.judges.ensemble import run_judge
from vlic.judges.factory import availability, make_judge


def test_flipped_psnr_prefers_the_further_reconstruction():
    rng = np.random.default_rng(0)
    ref = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    near = np.clip(ref.astype(int) + 2, 0, 255).astype(np.uint8)
    far = np.clip(ref.astype(int) + 40, 0, 255).astype(np.uint8)
    plain, flipped = make_judge("psnr"), make_judge("flipped(psnr)")
    a, b = plain.judge(ref, near, far), flipped.judge(ref, near, far)
    assert a.rating < 0 and b.rating == -a.rating and b.scores == a.scores[::-1]
    assert flipped.name == "flipped(psnr)" and flipped.deterministic and flipped.antisymmetric
    assert flipped.identity() != plain.identity() and availability("flipped(psnr)") is None
    seen = []
    flipped.judge_many([Query(ref, near, far)], on_verdict=lambda i, v: seen.append(v.rating))
    assert seen == [-a.rating]


def test_flipped_verdicts_are_cached_apart_from_the_plain_judge(tmp_path):
    rng = np.random.default_rng(1)
    ref = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    x = [np.clip(ref.astype(int) + d, 0, 255).astype(np.uint8) for d in (1, 30)]
    cache = VerdictCache(tmp_path / "v.sqlite")
    plain = run_judge(make_judge("psnr"), [ref], [x[0]], [x[1]], seeds=1, orders=1, cache=cache).pairs()
    flip = run_judge(make_judge("flipped(psnr)"), [ref], [x[0]], [x[1]], seeds=1, orders=1, cache=cache).pairs()
    assert plain["verdict"].iloc[0] == -flip["verdict"].iloc[0] != 0


def test_the_coin_is_fair_deterministic_and_antisymmetric_and_ignores_quality():
    """Over many pairs it picks A about half the time whatever the images' quality; asked again it answers the same;
    asked with A and B swapped it picks the same image; the same image twice is a tie."""
    rng = np.random.default_rng(2)
    coin = make_judge("coin")
    assert coin.deterministic and coin.antisymmetric and availability("coin") is None
    picks_a = []   # A is always the closer image: a judge of quality would pick it every time
    for _ in range(400):
        ref = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        near = np.clip(ref.astype(int) + rng.integers(1, 4), 0, 255).astype(np.uint8)
        far = np.clip(ref.astype(int) + 60, 0, 255).astype(np.uint8)
        v, again, swapped = coin.judge(ref, near, far), coin.judge(ref, near, far), coin.judge(ref, far, near)
        assert v.rating in (-1, 1) and again.rating == v.rating and swapped.rating == -v.rating
        picks_a.append(v.rating < 0)
    assert 0.42 < np.mean(picks_a) < 0.58
    assert coin.judge(ref, near, near).rating == 0


def test_oracle_verdict_needs_the_oracle_above_and_the_flipped_below_half_and_reports_the_null():
    import pandas as pd

    from vlic.training.dpo.seed_study import oracle_verdict

    def table(oracle, flipped, null=()):
        rows = [{"reward": "psnr", "winrate": w} for w in oracle]
        rows += [{"reward": "flipped(psnr)", "winrate": w} for w in flipped]
        rows += [{"reward": "coin", "winrate": w} for w in null]
        return pd.DataFrame(rows)

    ok = oracle_verdict(table([0.7, 0.6], [0.3, 0.2], [0.4, 0.5]))
    assert ok["passed"] and ok["oracle_winrate_mean"] == 0.65 and ok["null_winrate_mean"] == 0.45
    assert ok["run_count"] == 6
    assert not oracle_verdict(table([0.7, 0.45], [0.3, 0.2]))["passed"]        # one oracle run at or below ½
    assert not oracle_verdict(table([0.7, 0.6], [0.3, 0.55]))["passed"]        # one flipped run above ½
    assert "null_winrate_mean" not in oracle_verdict(table([0.7], [0.3]))
