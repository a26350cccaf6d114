"""Reward variants for chapter 03: which judges, which combination rule, how many seeds, one or both orders, which
prompt — parsed from a compact parameter string, and measured as judges on 2AFC sets.

**Tokens.** ``<combination>[:n<seeds>][:o<orders>][:direct]``, e.g. ``vlm:n1:o1`` or ``unanimous:n3:o2``. The
combinations are defined on two *roles* and a list:

* ``vlm`` — the VLM role alone (``rewards.vlm_judge``: ``vlm`` on the paper profile, on the laptop the simulated
  ``sim_vlm(haarpsi)``, see :mod:`vlic.judges.simulated`);
* ``lpips`` — the LPIPS role alone (``rewards.lpips_judge``: ``lpips_vgg``; on the laptop its offline stand-in);
* ``unanimous`` — both roles must agree (the paper's reward);
* ``weighted`` — weighted sum of both roles' normalised ratings, kept above a margin;
* ``majority`` — majority of the k judges of ``rewards.majority_judges`` (roles or judge names).

``:n`` and ``:o`` apply to stochastic judges (VLM, simulated VLM); deterministic, order-free metrics are asked once
whatever they say. ``:direct`` asks the real VLM without the reasoning part of the prompt; it has no meaning for a
metric or a simulated judge and is refused there.

**As judges** (:func:`variant_outcomes`, :func:`variant_table`): each judge is run once per set with enough seeds
for two independent *replicates* of the largest ensemble (seeds 0…n−1 and n…2n−1) and both orders; every variant is
then computed from those raw verdicts. Per variant: accuracy of the kept pairs against ground truth (BAPPS credit,
bootstrap CI), discard rate, **self-consistency** (the fraction of pairs on which replicate 2 — fresh seeds — gives
the same outcome, keep-A / keep-B / discard, as replicate 1; 1 by construction for deterministic variants), and
calls and model-seconds per accepted pair.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from vlic.data.twoafc import TwoAFCSet, twoafc_credit
from vlic.stats import mean_ci
from vlic.judges.combination import Combination, combine_judges
from vlic.judges.ensemble import JudgeRun, combine

COMBINATIONS = {"vlm": "single", "lpips": "single", "unanimous": "unanimous", "weighted": "weighted",
                "majority": "majority"}
_TOKEN = re.compile(r"^(?P<combo>[a-z]+)((?::n(?P<n>\d+))|(?::o(?P<o>[12]))|(?P<direct>:direct))*$")


@dataclass(frozen=True)
class Roles:
    vlm: str = "vlm"
    lpips: str = "lpips_vgg"
    majority: tuple[str, ...] = ("vlm", "lpips", "dists")
    weights: tuple[float, ...] = (0.5, 0.5)
    margin: float = 0.2

    def resolve(self, name: str) -> str:
        return {"vlm": self.vlm, "lpips": self.lpips}.get(name, name)


@dataclass(frozen=True)
class RewardVariant:
    token: str                     # as written in params, e.g. "unanimous:n3:o2"
    combination: str               # key of COMBINATIONS
    rule: str                      # vlic.judges.combination rule
    judges: tuple[str, ...]        # judge names (roles resolved)
    seeds: int = 3
    orders: int = 2
    reasoning: bool = True
    weights: tuple[float, ...] = ()
    margin: float = 0.0

    def with_vlm(self, vlm_judge: str, roles: Roles) -> "RewardVariant":
        """The same variant with another judge in the VLM role (e.g. the real ``vlm`` instead of the simulation)."""
        swap = tuple(vlm_judge if j == roles.vlm else j for j in self.judges)
        return replace(self, judges=swap)

    @property
    def stochastic(self) -> bool:
        return any(is_stochastic(j) for j in self.judges)

    @property
    def label(self) -> str:
        judges = ", ".join(self.judges)
        core = judges if self.rule == "single" else f"{self.combination}({judges})"
        if not self.stochastic:
            return core + " [deterministic]"
        return core + f" n={self.seeds} {'both orders' if self.orders == 2 else 'one order'}" + (
            "" if self.reasoning else " no-reasoning prompt")


def is_stochastic(judge: str) -> bool:
    return judge == "vlm" or judge.startswith("sim_vlm(")


def parse_variant(token: str, roles: Roles, seeds: int = 3, orders: int = 2) -> RewardVariant:
    """One token (module docstring) → :class:`RewardVariant`; a malformed token is an error that names it."""
    tok = token.strip()
    m = _TOKEN.match(tok)
    if not m or m.group("combo") not in COMBINATIONS:
        raise ValueError(f"reward variant '{token}' is malformed; expected <combination>[:n<seeds>][:o<1|2>][:direct] "
                         f"with a combination in {', '.join(COMBINATIONS)}")
    combo = m.group("combo")
    n = [int(x) for x in re.findall(r":n(\d+)", tok)]
    o = [int(x) for x in re.findall(r":o([12])", tok)]
    if len(n) > 1 or len(o) > 1:
        raise ValueError(f"reward variant '{token}' sets seeds or orders twice")
    n_seeds = n[0] if n else seeds
    if n_seeds < 1:
        raise ValueError(f"reward variant '{token}': seeds must be ≥ 1")
    judges = {"vlm": (roles.vlm,), "lpips": (roles.lpips,), "unanimous": (roles.vlm, roles.lpips),
              "weighted": (roles.vlm, roles.lpips),
              "majority": tuple(roles.resolve(j) for j in roles.majority)}[combo]
    if combo == "majority" and len(judges) < 3:
        raise ValueError(f"majority needs at least 3 judges, got {judges}")
    if len(set(judges)) != len(judges):
        raise ValueError(f"reward variant '{token}' uses a judge twice: {judges}")
    direct = bool(m.group("direct"))
    if direct and "vlm" not in judges:
        raise ValueError(f"reward variant '{token}': ':direct' (no reasoning) needs the real VLM, "
                         f"but its judges are {', '.join(judges)}")
    weights = tuple(roles.weights) if combo == "weighted" else ()
    if combo == "weighted" and len(weights) != 2:
        raise ValueError(f"weighted needs 2 weights (VLM role, LPIPS role), got {weights}")
    return RewardVariant(tok, combo, COMBINATIONS[combo], judges, n_seeds, o[0] if o else orders, not direct,
                         weights, roles.margin if combo == "weighted" else 0.0)


def parse_variants(tokens: Sequence[str], roles: Roles) -> list[RewardVariant]:
    out = [parse_variant(t, roles) for t in tokens]
    dup = {v.token for v in out if sum(w.token == v.token for w in out) > 1}
    if dup:
        raise ValueError(f"reward variants listed twice: {sorted(dup)}")
    return out


def grid(combinations: Sequence[str], seeds: Sequence[int], orders: Sequence[int], roles: Roles,
         vlm_judges: Sequence[str], direct: bool) -> list[RewardVariant]:
    """Every combination × seeds × orders (× prompt for a real VLM), for each judge put in the VLM role; variants
    without a stochastic judge appear once."""
    out, seen = [], set()
    for vj in vlm_judges:
        for combo in combinations:
            base = parse_variant(combo, roles).with_vlm(vj, roles)
            prompts = (True, False) if (direct and "vlm" in base.judges) else (True,)
            for n in (seeds if base.stochastic else (1,)):
                for o in (orders if base.stochastic else (1,)):
                    for reasoning in prompts:
                        tok = combo + (f":n{n}:o{o}" if base.stochastic else "") + ("" if reasoning else ":direct")
                        v = replace(base, token=tok if vj == roles.vlm else f"{tok}@{vj}", seeds=int(n), orders=int(o),
                                    reasoning=reasoning)
                        if (v.judges, v.seeds, v.orders, v.reasoning, v.combination) not in seen:
                            seen.add((v.judges, v.seeds, v.orders, v.reasoning, v.combination))
                            out.append(v)
    return out


# --- measuring variants as judges -------------------------------------------------------------------------------------
def judge_key(judge: str, reasoning: bool = True) -> str:
    """The raw-run key of a judge: the real VLM without reasoning is a different judge (different prompt)."""
    return judge if reasoning or judge != "vlm" else "vlm:direct"


def _subset(run: JudgeRun, seeds: int, orders: int, replicate: int) -> tuple[pd.DataFrame, int, int]:
    """The raw rows a variant with ``seeds`` seeds and ``orders`` orders uses, in replicate 0 or 1."""
    raw = run.raw
    n_seeds = 1 if run.n_seeds == 1 else seeds
    n_orders = 1 if run.n_orders == 1 else orders
    if run.n_seeds > 1:
        lo = replicate * n_seeds
        if lo + n_seeds > run.n_seeds:
            raise ValueError(f"{run.judge}: replicate {replicate} of {n_seeds} seeds needs {lo + n_seeds} seeds, "
                             f"the run has {run.n_seeds}")
        raw = raw[(raw["seed"] >= lo) & (raw["seed"] < lo + n_seeds)].assign(seed=lambda d: d["seed"] - lo)
    if n_orders == 1:
        raw = raw[raw["order"] == 0]
    return raw, n_seeds, n_orders


@dataclass
class Outcome:
    """A variant on one set, replicate 0 (and 1 when the variant is stochastic)."""

    variant: RewardVariant
    combination: Combination
    replicate: Combination | None
    calls_per_pair: float
    model_s_per_pair: float
    per_judge: dict[str, np.ndarray] = field(default_factory=dict)   # each judge's verdict (replicate 0)


def variant_outcome(variant: RewardVariant, runs: Mapping[str, JudgeRun]) -> Outcome:
    """Combine the raw runs (keyed by :func:`judge_key`) the way ``variant`` would ask and vote."""
    combos, calls, secs, per_judge = [], 0.0, 0.0, {}
    reps = (0, 1) if variant.stochastic else (0,)
    for rep in reps:
        verdicts, strengths = {}, {}
        for j in variant.judges:
            run = runs[judge_key(j, variant.reasoning)]
            raw, n_s, n_o = _subset(run, variant.seeds, variant.orders, rep)
            pairs = combine(raw, n_orders=n_o)
            verdicts[j] = pairs["verdict"].to_numpy(float)
            strengths[j] = pairs["strength"].to_numpy(float)
            if rep == 0:
                n_pairs = max(1, int(pairs.shape[0]))
                calls += len(raw) / n_pairs
                secs += float(raw["latency_s"].sum()) / n_pairs
                per_judge[j] = verdicts[j]
        combos.append(combine_judges(variant.rule, verdicts, strengths, variant.weights or None, variant.margin))
    return Outcome(variant, combos[0], combos[1] if len(combos) > 1 else None, calls, secs, per_judge)


def self_consistency(o: Outcome) -> float:
    """Fraction of pairs whose outcome (keep A / keep B / discard) replicate 2 reproduces; 1 if deterministic."""
    if o.replicate is None:
        return 1.0
    return float((o.combination.label == o.replicate.label).mean())


def variant_row(o: Outcome, s: TwoAFCSet, set_name: str, n_boot: int = 1000, seed: int = 0) -> dict:
    c = o.combination
    n = len(c.label)
    kept = c.kept
    row = {"variant": o.variant.token, "label": o.variant.label, "combination": o.variant.combination,
           "judges": ", ".join(o.variant.judges), "seeds": o.variant.seeds if o.variant.stochastic else np.nan,
           "orders": o.variant.orders if o.variant.stochastic else np.nan, "reasoning": o.variant.reasoning,
           "stochastic": o.variant.stochastic, "set": set_name, "n_pairs": n, "kept": int(kept.sum()),
           "discard_rate": float(1 - kept.mean()) if n else np.nan,
           "self_consistency": self_consistency(o),
           "calls_per_pair": o.calls_per_pair, "calls_per_accepted": o.calls_per_pair * n / max(1, int(kept.sum())),
           "model_s_per_accepted": o.model_s_per_pair * n / max(1, int(kept.sum())),
           **{f"discarded_{k.replace(' ', '_')}": v for k, v in c.discards().items()}}
    if s.has_ground_truth:
        acc, lo, hi = mean_ci(twoafc_credit(c.label[kept], s.human[kept]), n_boot=n_boot, seed=seed, drop_nan=True) if kept.any() \
            else (np.nan, np.nan, np.nan)
        allc, alo, ahi = mean_ci(twoafc_credit(np.where(kept, c.label, 0), s.human), n_boot=n_boot, seed=seed, drop_nan=True)
        row.update({"accuracy_kept": acc, "accuracy_kept_ci_low": lo, "accuracy_kept_ci_high": hi,
                    "credit_all": allc, "credit_all_ci_low": alo, "credit_all_ci_high": ahi})
    return row


def variant_table(variants: Sequence[RewardVariant], runs_by_set: Mapping[str, Mapping[str, JudgeRun]],
                  sets: Mapping[str, TwoAFCSet], n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """One row per variant × set (see :func:`variant_row`)."""
    rows = []
    for set_name, runs in runs_by_set.items():
        for v in variants:
            rows.append(variant_row(variant_outcome(v, runs), sets[set_name], set_name, n_boot, seed))
    return pd.DataFrame(rows)
