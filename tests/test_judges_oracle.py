"""flipped(<judge>): the anti-oracle of the DPO oracle check — every rating negated, failures kept, its own identity."""

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
