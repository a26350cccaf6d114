"""Judging a post-trained decoder against the pre-trained one on the same bitstreams (chapter 04's held-out test).

:func:`~vlic.eval.decoder_comparison.compare_on_same_bitstream` cuts aligned patches from both decoders'
reconstructions of the same bits with the same noise; :func:`score_comparison` asks the training reward and each
referee which of the two is closer to the original and turns the answers into per-patch scores of the post-trained
decoder (1 win, 0 loss, ½ no verdict); :func:`win_rates` gives each judge's win-rate with a bootstrap interval that
resamples patches (all noise seeds of a patch together). Chapters 03 and 04 and the seed studies all score this way.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from vlic.eval.decoder_comparison import PairedPatches
from vlic.eval.winrate import WinRate, scores_from_preferences, win_rate
from vlic.judges.cache import VerdictCache
from vlic.judges.ensemble import run_judge
from vlic.judges.factory import VLMSettings, make_judge


def score_comparison(paired: PairedPatches, reward, referee_names: Sequence[str], vlm: VLMSettings | None = None,
                     cache: VerdictCache | None = None, seeds: int = 3, orders: int = 2, system: str = "dpo",
                     other: str = "pretrained") -> pd.DataFrame:
    """One row per patch (``paired.rows``) with the score of ``system`` (shown as A against ``other`` as B) by
    ``reward`` (column ``training_judge``, with the vote's reason; ``None``: no such column) and by each referee (one
    column each)."""
    out = pd.DataFrame(paired.rows)
    if reward is not None:
        vote = reward.vote(paired.original, paired.recon[system], paired.recon[other])
        out["training_judge"] = scores_from_preferences(vote.label, "a")
        out["training_judge_reason"] = [r or "kept" for r in vote.reason]
    for name in referee_names:
        run = run_judge(make_judge(name, vlm), paired.original, paired.recon[system], paired.recon[other],
                        seeds=seeds, orders=orders, cache=cache)
        out[name] = scores_from_preferences(run.pairs()["verdict"], "a")
    return out


def win_rates(scored: pd.DataFrame, judges: Sequence[str], n_boot: int = 2000, seed: int = 0) -> dict[str, WinRate]:
    """Each judge column's win-rate, 95 % bootstrap interval over patches (column ``patch``)."""
    return {name: win_rate(scored[name], scored["patch"], n_boot=n_boot, seed=seed) for name in judges}


def winrate_row(rates: dict[str, WinRate], digits: int = 4) -> dict[str, float]:
    """``{judge: win-rate, judge_ci_low: …, judge_ci_high: …}`` — the columns of one run in a table of runs."""
    row = {}
    for name, w in rates.items():
        row.update({name: round(w.winrate, digits), f"{name}_ci_low": round(w.ci_low, digits),
                    f"{name}_ci_high": round(w.ci_high, digits)})
    return row
