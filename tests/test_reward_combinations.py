"""Reward combinations (single, unanimous, majority, weighted), the simulated stochastic judge, the direct prompt."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vlic.judges.base import JudgeError, Query
from vlic.judges.combination import combine_judges
from vlic.judges.ensemble import run_judge
from vlic.judges.factory import availability, make_judge
from vlic.judges.prompt import DIRECT_PROMPT_VERSION, PROMPT_VERSION, openai_messages, parse_rating
from vlic.judges.simulated import SimulatedVLMJudge, SimulationSettings
from vlic.training.buffer import Candidate
from vlic.training.reward import CombinedReward, UnanimousReward

N = float("nan")

# (rule, verdicts per judge, strengths per judge, weights, margin) → (labels, reasons)
TABLE = [
    ("single", {"x": [-3, 0, 2, N]}, None, None, 0.0,
     [-1, 0, 1, 0], [None, "tie", None, "failure"]),
    ("unanimous", {"x": [-1, -1, 1, 0, N, 2], "y": [-2, 1, 3, -1, -1, N]}, None, None, 0.0,
     [-1, 0, 1, 0, 0, 0], [None, "disagreement", None, "tie", "failure", "failure"]),
    # failure is reported before tie, tie before disagreement
    ("unanimous", {"x": [0, N], "y": [N, 0], "z": [1, -1]}, None, None, 0.0,
     [0, 0], ["failure", "failure"]),
    ("majority", {"x": [-1, -1, 1, 0, N, N], "y": [-1, 1, 1, 0, -1, N], "z": [1, 1, 0, -1, -1, N]}, None, None, 0.0,
     [-1, 1, 1, 0, -1, 0], [None, None, None, "no majority", None, "failure"]),
    # k = 4: two against two is no majority; 3 of 4 is one; a failed judge is an abstention
    ("majority", {"a": [-1, -1, -1], "b": [-1, -1, 1], "c": [1, -1, N], "d": [1, 1, N]}, None, None, 0.0,
     [0, -1, 0], ["no majority", None, "no majority"]),
    # weighted: strengths in [-5, 5] / 5, weights 3:1, margin 0.3
    ("weighted", {"x": [-1, -1, 1, 1, 1], "y": [1, 1, -1, -1, N]},
     {"x": [-5, -1, 5, 1, 1], "y": [5, 5, -2, -3, 1]}, [3, 1], 0.3,
     [-1, 0, 1, 0, 0], [None, "below margin", None, "tie", "failure"]),
]


@pytest.mark.parametrize("rule,verdicts,strengths,weights,margin,labels,reasons", TABLE)
def test_combination_table(rule, verdicts, strengths, weights, margin, labels, reasons):
    c = combine_judges(rule, verdicts, strengths, weights, margin)
    assert c.label.tolist() == labels
    assert c.reason == reasons
    assert c.n_kept == sum(r is None for r in reasons)


def test_weighted_score_is_the_normalised_weighted_mean():
    c = combine_judges("weighted", {"x": [-1], "y": [1]}, {"x": [-5], "y": [5]}, [3, 1], 0.0)
    assert c.score[0] == pytest.approx((3 * -1 + 1 * 1) / 4)   # −0.5
    c = combine_judges("majority", {"x": [1], "y": [1], "z": [-1]})
    assert c.score[0] == pytest.approx(1 / 3)


@pytest.mark.parametrize("kwargs,match", [
    (dict(rule="nope", verdicts={"x": [1]}), "unknown reward rule"),
    (dict(rule="single", verdicts={"x": [1], "y": [1]}), "exactly one judge"),
    (dict(rule="weighted", verdicts={"x": [1]}), "graded strength"),
    (dict(rule="weighted", verdicts={"x": [1]}, strengths={"x": [1]}, weights=[-1]), "non-negative"),
    (dict(rule="weighted", verdicts={"x": [1]}, strengths={"x": [1]}, margin=2), "margin"),
    (dict(rule="unanimous", verdicts={"x": [1, 1], "y": [1]}), "different numbers of pairs"),
    (dict(rule="unanimous", verdicts={}), "at least one judge"),
])
def test_bad_combination_input_is_a_clear_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        combine_judges(**kwargs)


def _pair(seed=0, gap=40):
    rng = np.random.default_rng(seed)
    ref = rng.integers(30, 220, (32, 32, 3), dtype=np.uint8)
    close = (ref.astype(int) + rng.integers(-4, 5, ref.shape)).clip(0, 255).astype(np.uint8)
    far = (ref.astype(int) + rng.integers(-gap, gap + 1, ref.shape)).clip(0, 255).astype(np.uint8)
    return ref, close, far


class _Fixed:
    """A deterministic, antisymmetric fake judge with scripted ratings per call."""

    deterministic = True
    antisymmetric = True

    def __init__(self, name, ratings):
        self.name, self.ratings = name, list(ratings)

    def identity(self):
        return {"fake": self.name, "ratings": self.ratings}

    def judge_many(self, queries, on_verdict=None):
        from vlic.judges.base import Verdict

        out = []
        for i, _ in enumerate(queries):
            r = self.ratings[i % len(self.ratings)]
            out.append(Verdict(rating=r) if r is not None else Verdict.failed("scripted", "parse"))
            if on_verdict:
                on_verdict(i, out[-1])
        return out


def test_unanimous_reward_is_the_combined_unanimous_rule_and_keeps_its_name():
    ref, a, b = _pair()
    judges = [_Fixed("x", [-2]), _Fixed("y", [-4])]
    u = UnanimousReward(judges)
    assert u.name == "x ∧ y" and u.rule == "unanimous"
    j = u(Candidate(ref, a, b))
    assert (j.winner, j.reason, j.rating) == ("a", None, -1.0)   # mean verdict of ±1 metric votes
    j = UnanimousReward([_Fixed("x", [-2]), _Fixed("y", [3])])(Candidate(ref, a, b))
    assert (j.winner, j.reason, j.rating) == (None, "disagreement", None)


def test_combined_rewards_on_real_metrics_pick_the_closer_candidate():
    ref, close, far = _pair()
    judges = [make_judge("psnr"), make_judge("ssim"), make_judge("haarpsi")]
    for rule, js in (("single", judges[:1]), ("unanimous", judges[:2]), ("majority", judges), ("weighted", judges[:2])):
        r = CombinedReward(js, rule=rule, weights=[1, 1] if rule == "weighted" else None, margin=0.1)
        assert r(Candidate(ref, close, far)).winner == "a", rule
        assert r(Candidate(ref, far, close)).winner == "b", rule
    assert CombinedReward(judges, rule="majority").name == "majority(psnr, ssim, haarpsi)"


# --- the simulated judge ------------------------------------------------------------------------------------------
def test_simulated_judge_is_reproducible_seed_dependent_and_labelled():
    ref, close, far = _pair(gap=6)
    sim = make_judge("sim_vlm(psnr)", sim=SimulationSettings(sensitivity=1.0, noise=1.0, lapse=0, parse_failure=0))
    assert isinstance(sim, SimulatedVLMJudge) and sim.name == "sim_vlm(psnr)"
    assert not sim.deterministic and not sim.antisymmetric
    v1 = [sim.judge(ref, close, far, seed=s).rating for s in range(40)]
    assert v1 == [sim.judge(ref, close, far, seed=s).rating for s in range(40)]     # same query, same answer
    assert len(set(v1)) > 2                                                           # seeds differ
    v = sim.judge(ref, close, far, seed=0)
    assert "SIMULATED" in v.rationale and parse_rating(v.text) == v.rating
    assert availability("sim_vlm(psnr)") is None
    assert "not available offline" in (availability("sim_vlm(lpips_vgg)") or "not available offline")
    with pytest.raises(JudgeError, match="sim_vlm"):
        make_judge("sim_vlm(nope)")
    with pytest.raises(JudgeError, match="probability"):
        SimulationSettings(lapse=1.5)


def test_simulated_position_bias_is_cancelled_by_the_order_swap():
    """Identical candidates: δ = 0, so one order shows only the bias (A first preferred); both orders cancel it."""
    ref, a, _ = _pair()
    sim = SimulatedVLMJudge("psnr", SimulationSettings(position_bias=2.0, noise=0.3, lapse=0, parse_failure=0))
    one = run_judge(sim, [ref] * 20, [a] * 20, [a.copy()] * 20, seeds=3, orders=1).pairs()
    both = run_judge(sim, [ref] * 20, [a] * 20, [a.copy()] * 20, seeds=3, orders=2).pairs()
    assert (one["preference"] < 0).all()                 # always "A", the first shown
    assert both["preference"].abs().mean() < 0.5        # mostly ties once the order is swapped


def test_simulated_noise_model_numbers():
    """The documented model: y = sensitivity·δ + bias + noise·ε, rating = −round(5·tanh(y))."""
    sim = SimulatedVLMJudge("psnr", SimulationSettings(sensitivity=4.0, noise=0.0, position_bias=0.0, lapse=0,
                                                        parse_failure=0))
    q = Query(*_pair()[:2], _pair()[2])
    assert sim.answer(q, 1.0, 2.0).rating == -round(5 * math.tanh(4 * 0.5))   # δ = +0.5: A closer → −5
    assert sim.answer(q, 2.0, 1.0).rating == 5
    assert sim.answer(q, 1.0, 1.0).rating == 0
    assert sim.answer(q, 1.0, 1.1).rating == -round(5 * math.tanh(4 * 0.1 / 1.1))
    failing = SimulatedVLMJudge("psnr", SimulationSettings(parse_failure=1.0))
    v = failing.answer(q, 1.0, 2.0)
    assert v.rating is None and v.failure_kind == "parse"


# --- the prompt without reasoning ---------------------------------------------------------------------------------
def test_direct_prompt_has_its_own_version_and_no_reasoning_steps():
    ref, a, b = _pair()
    full = openai_messages(ref, a, b)[0]["content"]
    direct = openai_messages(ref, a, b, reasoning=False)[0]["content"]
    assert DIRECT_PROMPT_VERSION != PROMPT_VERSION
    assert sum(p["type"] == "image_url" for p in direct) == 3
    assert "List the visible artifacts" in full[0]["text"] and "List the visible artifacts" not in direct[0]["text"]
    assert "RATING: r" in direct[0]["text"]


def test_http_judge_sends_the_direct_prompt_and_caches_it_separately(tmp_path):
    from vlic.judges.cache import VerdictCache
    from vlic.judges.factory import VLMSettings
    from vlic.judges.testing import StubServer

    ref, close, far = _pair()
    with StubServer() as server:
        cache = VerdictCache(tmp_path / "v.sqlite")
        for reasoning in (True, False):
            judge = make_judge("vlm", VLMSettings(backend="api", model="stub", base_url=server.base_url,
                                                  reasoning=reasoning))
            run = run_judge(judge, [ref], [close], [far], seeds=1, orders=2, cache=cache)
            assert run.calls == 2 and run.pairs()["preference"].tolist() == [-1.0]
            text = server.last_payload["messages"][0]["content"][0]["text"]
            assert ("List the visible artifacts" in text) == reasoning
            assert judge.identity()["prompt"] == (PROMPT_VERSION if reasoning else DIRECT_PROMPT_VERSION)


@pytest.mark.slow
def test_explore_rewards_notebook_runs_headless(tmp_path, repo):
    import papermill as pm
    import pandas as pd

    from vlic.data.twoafc import TwoAFCSet, write_bapps

    refs, p0, p1, human = [], [], [], []
    for k in range(8):
        ref, close, far = _pair(seed=k)
        flip = k % 2 == 1
        refs.append(ref), p0.append(far if flip else close), p1.append(close if flip else far)
        human.append(1.0 if flip else 0.0)
    ids = [f"{k:06d}" for k in range(8)]
    meta = pd.DataFrame({"family": "noise", "id": ids})
    write_bapps(TwoAFCSet(refs, p0, p1, np.array(human), ["noise"] * 8, ids, meta), tmp_path / "pairs")
    pm.execute_notebook(
        str(repo / "notebooks" / "explore_rewards.ipynb"), str(tmp_path / "out.ipynb"), cwd=str(repo),
        kernel_name="python3", progress_bar=False,
        parameters={"pairs_dir": str(tmp_path / "pairs"), "out_dir": str(tmp_path / "out"),
                    "cache_path": str(tmp_path / "v.sqlite"), "interactive": False, "max_seeds": 2,
                    "lpips_judge": "ssim", "combinations": "unanimous,vlm,majority"},
    )
    table = pd.read_csv(tmp_path / "out" / "rewards_summary.csv")
    assert (tmp_path / "out" / "rewards_summary.png").is_file()
    assert set(table["combination"]) == {"unanimous", "vlm", "majority"}
    assert (table["accuracy_kept"].dropna() >= 0.5).all()      # easy pairs: every reward mostly right
    # "every combination at a glance" is a picture in the executed notebook, not the text "<Figure size … Axes>"
    import nbformat

    outputs = [o for c in nbformat.read(tmp_path / "out.ipynb", 4).cells for o in c.get("outputs", [])]
    assert any("image/png" in o.get("data", {}) for o in outputs)
    assert not any("<Figure size" in str(o.get("data", {}).get("text/plain", "")) for o in outputs)


def _explorer():
    """A reward explorer over four easy pairs (simulated VLM on PSNR, SSIM, HaarPSI; unanimous and majority)."""
    from vlic.data.twoafc import TwoAFCSet
    import pandas as pd

    from vlic.judges.reward_variants import Roles
    from vlic.widgets.reward_explorer import RewardExplorer

    refs, p0, p1 = zip(*[_pair(seed=k) for k in range(4)])
    ids = [str(k) for k in range(4)]
    s = TwoAFCSet(list(refs), list(p0), list(p1), np.zeros(4), ["x"] * 4, ids, pd.DataFrame({"family": "x", "id": ids}))
    roles = Roles(vlm="sim_vlm(psnr)", lpips="ssim", majority=("vlm", "lpips", "haarpsi"))
    runs = {j: run_judge(make_judge(j), s.ref, s.p0, s.p1, seeds=4, orders=2) for j in ("sim_vlm(psnr)", "ssim", "haarpsi")}
    return RewardExplorer(s, runs, roles, ["unanimous", "majority"], 2), refs


def test_reward_explorer_widget_builds_and_switches(tmp_path):
    pytest.importorskip("ipywidgets")
    from vlic.widgets.reward_explorer import zoom

    ex, refs = _explorer()
    assert ex.variant().token == "unanimous:n1:o2"
    ex.w_combo.value, ex.w_seeds.value, ex.w_orders.value = "majority", 2, 1
    assert ex.variant().token == "majority:n2:o1" and ex.outcome.variant.rule == "majority"
    assert zoom(refs[0], 4).shape == refs[0].shape and np.array_equal(zoom(refs[0], 1), refs[0])


def test_reward_explorer_keeps_keys_away_from_jupyterlab_and_uses_them(tmp_path):
    """Over the explorer every key is captured (ipyevents, default action prevented): ←/→ step through the pairs,
    ↑/↓ zoom, and a/b/d/m — JupyterLab's insert/delete/convert-cell shortcuts — change nothing."""
    pytest.importorskip("ipyevents")
    ex, _ = _explorer()
    kb = ex.keyboard
    assert kb is not None and kb.source is ex.box and kb.watched_events == ["keydown"] and kb.prevent_default_action
    assert "vlic-explorer" in ex.box._dom_classes
    state = lambda: (ex.w_pair.value, ex.w_zoom.value, ex.w_combo.value, ex.w_only.value)   # noqa: E731
    before = state()
    for key in ("a", "b", "d", "d", "m", "y", "x"):
        ex.handle_key({"type": "keydown", "key": key})
    assert state() == before
    ex.handle_key({"type": "keydown", "key": "ArrowRight"})
    ex.handle_key({"type": "keydown", "key": "ArrowRight"})
    assert ex.w_pair.value == 2 and "pair 2" in ex.pair_title.value
    ex.handle_key({"type": "keydown", "key": "ArrowLeft"})
    ex.handle_key({"type": "keydown", "key": "ArrowUp"})
    assert ex.w_pair.value == 1 and ex.w_zoom.value == 2
    ex.handle_key({"type": "keydown", "key": "ArrowDown"})
    ex.handle_key({"type": "keydown", "key": "ArrowDown"})
    assert ex.w_zoom.value == 1                                         # not below the slider's minimum
