"""The explore notebooks' widgets driven headless, as a person would in JupyterLab: change a control, press a key, undo.

What the browser shows is checked on the widgets' own payloads: the pair is a decodable, non-blank PNG after every
control change; the verdict table lists the setting's seeds/orders with the whole rationale; "accepted pairs only"
steps through accepted pairs; a key event writes an answer to disk, undo takes it back, Done clears the pair.
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from PIL import Image

pytest.importorskip("ipywidgets")

from vlic.data.twoafc import TwoAFCSet  # noqa: E402
from vlic.eval.human_study import HumanStudy, read_answers  # noqa: E402
from vlic.judges.ensemble import run_judge  # noqa: E402
from vlic.judges.factory import make_judge  # noqa: E402
from vlic.judges.reward_variants import Roles, parse_variant  # noqa: E402


def _png(data: bytes) -> np.ndarray:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def _not_blank(data: bytes) -> bool:
    px = _png(data)
    return px.std() > 10 and (px < 200).mean() > 0.1  # a white figure with a title only would fail both


def _pairs(n: int = 10) -> TwoAFCSet:
    """Noise pairs: A (p0) is cleaner for pairs 0–6, B (p1) for the rest, except pairs 4 and 9 whose A and B are the
    same image (every judge ties, so a unanimous reward discards them)."""
    rng = np.random.default_rng(0)
    refs, p0, p1, human = [], [], [], []
    for k in range(n):
        ref = rng.integers(30, 225, (32, 32, 3), dtype=np.uint8)
        clean = (ref + rng.normal(0, 3, ref.shape)).clip(0, 255).astype(np.uint8)
        noisy = (ref + rng.normal(0, 25, ref.shape)).clip(0, 255).astype(np.uint8)
        if k in (4, 9):
            clean = noisy
        a_better = k < 7
        refs.append(ref), p0.append(clean if a_better else noisy), p1.append(noisy if a_better else clean)
        human.append(0.5 if k in (4, 9) else 0.0 if a_better else 1.0)
    ids = [f"{k:03d}" for k in range(n)]
    return TwoAFCSet(refs, p0, p1, np.array(human), ["noise"] * n, ids, pd.DataFrame({"family": "noise", "id": ids}))


def _drawn(data: bytes) -> bool:
    """A figure with something plotted: enough non-white pixels in more than one colour."""
    px = _png(data).reshape(-1, 3)
    ink = px[(px < 230).any(axis=1)]
    return len(ink) > 0.01 * len(px) and len(np.unique(ink // 32, axis=0)) > 3


ROLES = Roles(vlm="sim_vlm(psnr)", lpips="ms_ssim", majority=("vlm", "lpips", "psnr"))


COMBINATIONS = ["unanimous", "vlm", "lpips", "majority"]


@pytest.fixture(scope="module")
def explorer_inputs():
    from vlic.judges.reward_variants import grid
    from vlic.widgets.reward_figures import summary_table

    s = _pairs()
    runs = {j: run_judge(make_judge(j), s.ref, s.p0, s.p1, seeds=6, orders=2)
            for j in ("sim_vlm(psnr)", "ms_ssim", "psnr")}
    variants = grid(COMBINATIONS, [1, 2, 3], [1, 2], ROLES, [ROLES.vlm], direct=False)
    return s, runs, summary_table(variants, runs, s, n_boot=50)


@pytest.fixture()
def explorer(explorer_inputs):
    from vlic.widgets.reward_explorer import RewardExplorer

    s, runs, table = explorer_inputs
    return RewardExplorer(s, runs, ROLES, COMBINATIONS, 3, display_px=96, table=table)


def test_every_control_change_sends_a_non_blank_pair_png(explorer):
    assert _not_blank(explorer.pair_image.value)
    changes = [("w_combo", "vlm"), ("w_combo", "lpips"), ("w_combo", "majority"), ("w_seeds", 3), ("w_orders", 1),
               ("w_zoom", 4), ("w_pair", 5), ("w_only", True), ("w_combo", "unanimous"), ("w_only", False)]
    for name, value in changes:
        before = explorer.pair_image.value
        setattr(getattr(explorer, name), "value", value)
        assert _not_blank(explorer.pair_image.value), f"blank pair after {name} = {value}"
        assert "pair" in explorer.pair_title.value and "reward says" in explorer.pair_title.value
        if name in ("w_zoom", "w_pair"):
            assert explorer.pair_image.value != before
    h, w = _png(explorer.pair_image.value).shape[:2]
    assert w > 1.5 * h                                    # reference, A and B side by side


def test_verdict_table_follows_the_seeds_and_orders_setting(explorer):
    explorer.w_combo.value = "vlm"
    explorer.w_seeds.value, explorer.w_orders.value = 2, 1
    t = explorer.verdict_rows
    sim = t[t["judge"] == "sim_vlm(psnr)"]
    assert sorted(sim["seed"]) == [0, 1] and set(sim["shown"]) == {"A,B"} and sim["used"].all()
    assert not t[t["judge"] != "sim_vlm(psnr)"]["used"].any()      # not part of the "vlm" reward
    explorer.w_seeds.value, explorer.w_orders.value = 3, 2
    t = explorer.verdict_rows
    sim = t[t["judge"] == "sim_vlm(psnr)"]
    assert len(sim) == 6 and sorted(set(sim["seed"])) == [0, 1, 2] and set(sim["shown"]) == {"A,B", "B,A"}
    assert len(t[t["judge"] == "ms_ssim"]) == 1                       # a deterministic metric is asked once
    explorer.w_combo.value = "unanimous"
    t = explorer.verdict_rows
    assert t[t["judge"] == "ms_ssim"]["used"].all() and not t[t["judge"] == "psnr"]["used"].any()
    assert list(t["judge"].drop_duplicates())[:2] == ["sim_vlm(psnr)", "ms_ssim"]  # the reward's judges first


def test_verdict_table_undoes_the_shown_order_and_keeps_the_whole_rationale(explorer):
    from vlic.widgets.verdicts import _prefers

    assert (_prefers(5.0, 1), _prefers(-5.0, 1), _prefers(-2.0, 0), _prefers(3.0, 0)) == ("A", "B", "A", "B")
    assert _prefers(0.0, 1) == "tie" and _prefers(float("nan"), 0) == "failed"
    explorer.w_seeds.value = 3
    t = explorer.verdict_rows
    swapped = t[(t["shown"] == "B,A") & t["rating"].notna() & (t["rating"] != 0)]
    assert len(swapped) and all(p == ("A" if r > 0 else "B") for r, p in zip(swapped["rating"], swapped["prefers"]))
    text = t[t["judge"] == "sim_vlm(psnr)"]["rationale"].iloc[0]
    assert len(text) > 150 and text.startswith("SIMULATED judge") and "RATING" in text
    page = explorer.verdicts.value
    assert "pre-wrap" in page and "as shown" in page and "B,A" in page
    import html

    assert html.escape(text) in page                                     # whole, not cut to a column width


def test_accepted_pairs_only_steps_through_accepted_pairs_in_step_with_the_slider(explorer):
    explorer.w_combo.value = "unanimous"
    explorer.w_seeds.value, explorer.w_orders.value = 1, 1
    kept = [int(i) for i in np.flatnonzero(explorer.outcome.combination.kept)]
    assert 4 not in kept and 9 not in kept and len(kept) >= 6          # the two ties are discarded
    explorer.w_only.value = True
    assert [v for _, v in explorer.w_pair.options] == kept
    seen = []
    for k, i in enumerate(kept):
        explorer.w_pair.value = i                                        # one step of the slider
        seen.append(i)
        assert f"<b>pair {i}</b>" in explorer.pair_title.value
        assert f"accepted pair {k + 1} of {len(kept)}" in explorer.pair_title.value
        assert "discard" not in explorer.pair_title.value
    assert seen == kept and len(set(seen)) == len(seen)                 # every step shows a new pair
    discarded = next(i for i in range(10) if i not in kept)
    explorer.w_only.value = False
    explorer.w_pair.value = discarded
    explorer.w_only.value = True                                         # jumps to the next accepted pair
    assert explorer.w_pair.value == next((i for i in kept if i > discarded), kept[0])
    assert f"<b>pair {explorer.w_pair.value}</b>" in explorer.pair_title.value


def test_options_say_what_runs_and_summary_highlights_the_current_setting(explorer):
    from vlic.widgets.reward_figures import matches

    labels = dict((v, k) for k, v in explorer.w_combo.options)
    assert "MS-SSIM" in labels["lpips"] and "stand-in" in labels["lpips"]
    assert "simulated VLM (PSNR)" in labels["vlm"] and "not a real VLM" in labels["vlm"]
    first = explorer.summary_image.value
    assert _drawn(first)
    h, w = _png(first).shape[:2]
    assert w <= 1200 and h <= 600
    explorer.w_combo.value, explorer.w_seeds.value = "vlm", 3
    assert explorer.summary_image.value != first
    assert "n=3 both orders" in explorer.summary_text.value
    assert matches(explorer.table, explorer.variant()).sum() == 1
    explorer.w_combo.value = "lpips"
    assert explorer.w_seeds.disabled and matches(explorer.table, parse_variant("lpips:n3:o1", ROLES)).sum() == 1
    assert "deterministic" in explorer.summary_text.value


def test_summary_figure_is_a_sane_size_for_a_large_grid(explorer_inputs):
    from vlic.judges.reward_variants import grid
    from vlic.viz import figure_png
    from vlic.widgets.reward_figures import summary_figure

    s, runs, table = explorer_inputs
    variants = grid(COMBINATIONS, [1, 2, 3], [1, 2], ROLES, [ROLES.vlm], direct=False)
    assert len(table) == len(variants) == 19
    fig = summary_figure(table, highlight=variants[3])
    assert fig.get_size_inches()[1] <= 5 and all(t.get_fontsize() >= 8 for t in fig.axes[0].get_xticklabels())
    assert "current setting" in fig._suptitle.get_text()
    assert _drawn(figure_png(fig))


# --- the human study ---------------------------------------------------------------------------------------------------
def _study_pairs(n=3) -> TwoAFCSet:
    s = _pairs(n)
    return TwoAFCSet(s.ref, s.p0, s.p1, np.full(n, np.nan), s.family, s.ids, s.meta)


def test_keys_answer_only_after_start_and_land_on_disk(tmp_path):
    from vlic.widgets.human_study import HumanStudyWidget

    widget = HumanStudyWidget(HumanStudy(tmp_path, "kim", pairs=_study_pairs()), display=32)
    assert widget.keyboard is not None and widget.keyboard.prevent_default_action
    assert widget.keyboard.watched_events == ["keydown"] and widget.keyboard.source is widget.box
    assert widget.pair_box.layout.display == "none" and widget.ref.value == b""
    widget.handle_key({"type": "keydown", "key": "2"})                  # before Start: nothing recorded
    assert len(read_answers(tmp_path)) == 0
    widget.handle_key({"type": "keydown", "key": "Enter"})
    assert widget.started and _png(widget.ref.value).shape[0] >= 32
    widget.handle_key({"type": "keydown", "key": "2"})
    answers = read_answers(tmp_path)
    assert len(answers) == 1 and answers["choice"].tolist() == ["right"] and answers["rater"].tolist() == ["kim"]
    assert "pair 2 of 3" in widget.status.value


def test_undo_takes_back_the_last_answer_and_asks_again(tmp_path):
    from vlic.widgets.human_study import HumanStudyWidget

    widget = HumanStudyWidget(HumanStudy(tmp_path, "kim", pairs=_study_pairs()), display=32)
    assert widget.undo_button.disabled
    widget.start()
    first = widget.study.next_trial()
    widget.handle_key({"type": "keydown", "key": "1"})
    judge = tmp_path / "pairs" / first.family / "judge" / f"{first.id}.npy"
    assert judge.is_file() and len(read_answers(tmp_path)) == 1
    widget.handle_key({"type": "keydown", "key": "u"})
    assert len(read_answers(tmp_path)) == 0 and not judge.exists()
    assert widget.study.next_trial().id == first.id and widget.study.answered == 0
    assert "pair 1 of 3" in widget.status.value and "taken back" in widget.status.value
    widget.right_button.click()
    answers = read_answers(tmp_path)
    assert answers["id"].tolist() == [first.id] and answers["choice"].tolist() == ["right"]
    assert widget.undo() is not None and widget.undo() is None        # nothing more to take back


def test_done_clears_the_pair_and_undo_brings_it_back(tmp_path):
    from vlic.widgets.human_study import HumanStudyWidget

    seen = []
    widget = HumanStudyWidget(HumanStudy(tmp_path, "kim", pairs=_study_pairs()), display=32, on_answer=seen.append)
    widget.start_button.click()
    for key in ("ArrowLeft", "x", "l", "a"):                             # "x" is ignored
        widget.handle_key({"type": "keydown", "key": key})
    assert [r["choice"] for r in seen] == ["left", "right", "left"] and len(read_answers(tmp_path)) == 3
    assert "Done" in widget.status.value and "3 answers" in widget.status.value
    assert widget.pair_box.layout.display == "none" and widget.ref.value == widget.left.value == b""
    assert widget.left_button.disabled and not widget.undo_button.disabled
    widget.handle_key({"type": "keydown", "key": "Backspace"})
    assert widget.pair_box.layout.display != "none" and _not_blank(widget.left.value)
    assert "pair 3 of 3" in widget.status.value and len(read_answers(tmp_path)) == 2


def test_first_answer_time_starts_at_start_not_at_loading(tmp_path, monkeypatch):
    import vlic.eval.human_study as hs
    from vlic.widgets.human_study import HumanStudyWidget

    now = [100.0]
    monkeypatch.setattr(hs.time, "perf_counter", lambda: now[0])
    widget = HumanStudyWidget(HumanStudy(tmp_path, "kim", pairs=_study_pairs()), display=32)  # cell run at t=100
    now[0] = 130.0                                      # the widget loaded, the rater read the instructions
    widget.start()
    now[0] = 131.5
    widget.choose("left")
    now[0] = 140.0
    widget.choose("right")
    assert read_answers(tmp_path)["seconds"].tolist() == [1.5, 8.5]     # not 31.5: loading is not counted


def test_agreement_has_a_bootstrap_interval(tmp_path):
    from vlic.eval.human_study import judge_human_agreement, simulate_rater

    s = _study_pairs(10)
    for k, rater in enumerate(("ann", "bob", "cy")):
        simulate_rater(HumanStudy(tmp_path, rater, pairs=s), 0.8, seed=k)
    oracle = {(f, i): (-1.0 if k < 7 else 1.0) for k, (f, i) in enumerate(zip(s.family, s.ids))}
    a = judge_human_agreement(tmp_path, oracle, n_boot=300)
    assert a["pairs"] == 10 and a["ci_low"] <= a["agreement"] <= a["ci_high"] and a["ci_high"] - a["ci_low"] > 0
    assert judge_human_agreement(tmp_path / "none", oracle)["pairs"] == 0


def test_done_for_now_ends_the_session_at_any_time_and_the_results_follow_the_answers(tmp_path):
    """After two of five answers *Done for now* hides the pair and says what was saved; *Start* resumes at the next
    pair. A LiveResults panel wired to on_answer recounts after every answer and after Done, with the codecs' Elo and
    intervals (pairs comparing codecs: codec_p0 / codec_p1)."""
    import pandas as pd

    from vlic.widgets.human_study import HumanStudyWidget, LiveResults

    s = _study_pairs(5)
    meta = pd.DataFrame({"family": s.family, "id": s.ids, "codec_p0": ["vlic"] * 5, "codec_p1": ["jpeg"] * 5})
    pairs = TwoAFCSet(s.ref, s.p0, s.p1, s.human, s.family, s.ids, meta)
    study = HumanStudy(tmp_path, "kim", pairs=pairs)
    results = LiveResults(tmp_path, n_boot=50)
    assert "no answers yet" in results.box.value
    widget = HumanStudyWidget(study, display=32, on_answer=results.update)
    assert widget.done_button.disabled                                   # nothing to end before Start
    widget.start()
    assert not widget.done_button.disabled
    widget.choose("left")
    assert "1 answers" in results.box.value and "kim: 1" in results.box.value and "vlic" in results.box.value
    widget.choose("right")
    widget.done_button.click()
    assert widget.pair_box.layout.display == "none" and "Done for now" in widget.status.value
    assert "2 of 5 answered" in widget.status.value and len(read_answers(tmp_path)) == 2
    assert "2 answers" in results.box.value and "Elo (95 % bootstrap interval)" in results.box.value
    widget.handle_key({"type": "keydown", "key": "1"})                  # ended: keys answer nothing …
    assert len(read_answers(tmp_path)) == 2
    widget.handle_key({"type": "keydown", "key": "Enter"})              # … until Start
    assert "pair 3 of 5" in widget.status.value
    widget.choose("left")
    assert "3 answers" in results.box.value
