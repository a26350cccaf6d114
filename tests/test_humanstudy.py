"""The human 2AFC study driven by simulated raters: blinding, saving at once, resuming, Elo, judge agreement."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from vlic.data.twoafc import TwoAFCSet, read_bapps
from vlic.eval.elo import elo_ratings
from vlic.eval.human_study import HumanStudy, codec_comparisons, judge_human_agreement, read_answers, simulate_rater


def _pairs(n=12) -> TwoAFCSet:
    """Pairs comparing codec 'good' (small error) and 'bad' (large error) in random p0/p1 order."""
    rng = np.random.default_rng(0)
    ref, p0, p1, rows = [], [], [], []
    for k in range(n):
        img = rng.integers(40, 200, (8, 8, 3), dtype=np.uint8)
        good = (img.astype(int) + 3).clip(0, 255).astype(np.uint8)
        bad = (img.astype(int) + 60).clip(0, 255).astype(np.uint8)
        flip = k % 2 == 1
        ref.append(img), p0.append(bad if flip else good), p1.append(good if flip else bad)
        rows.append({"codec_p0": "bad" if flip else "good", "codec_p1": "good" if flip else "bad"})
    meta = pd.DataFrame(rows)
    ids = [f"{k:06d}" for k in range(n)]
    meta.insert(0, "id", ids)
    meta.insert(0, "family", "good-vs-bad")
    return TwoAFCSet(ref, p0, p1, np.full(n, np.nan), ["good-vs-bad"] * n, ids, meta)


def simulated_rater(study, accuracy, rng, stop_after=None):
    return simulate_rater(study, accuracy, seed=int(rng.integers(0, 2**31)), limit=stop_after)


def test_answers_are_saved_at_once_and_the_session_resumes(tmp_path):
    rng = np.random.default_rng(1)
    study = HumanStudy(tmp_path, "ann", pairs=_pairs())
    assert simulated_rater(study, 1.0, rng, stop_after=5) == 5
    assert len(read_answers(tmp_path)) == 5          # on disk before the session ends
    del study                                          # "the browser tab was closed"
    resumed = HumanStudy(tmp_path, "ann")              # no pairs needed: the folder has them
    assert (resumed.answered, resumed.remaining) == (5, 7)
    first_five = set(read_answers(tmp_path)["id"])
    assert resumed.next_trial().id not in first_five
    simulated_rater(resumed, 1.0, rng)
    answers = read_answers(tmp_path)
    assert len(answers) == 12 and answers["id"].is_unique
    assert resumed.next_trial() is None
    with pytest.raises(RuntimeError, match="answered all 12"):
        resumed.answer("left")


def test_blinding_randomises_sides_and_order_per_rater(tmp_path):
    def session(rater):
        study = HumanStudy(tmp_path, rater, pairs=_pairs(40))
        sides, order = [], []
        while (t := study.next_trial()) is not None:
            sides.append(t.left), order.append(t.id), study.answer("left")
        return sides, order

    sides_a, order_a = session("ann")
    sides_b, order_b = session("bob")
    assert 8 <= sides_a.count("p0") <= 32             # both sides used, about half each
    assert order_a != sorted(order_a) and order_a != order_b and sides_a != sides_b
    assert session("ann") == ([], [])                  # a finished rater is not asked again


def test_bapps_compatible_judge_files_hold_the_human_fraction(tmp_path):
    rng = np.random.default_rng(2)
    for rater in ("ann", "bob", "cy"):
        simulated_rater(HumanStudy(tmp_path, rater, pairs=_pairs()), 1.0, rng)
    bapps = read_bapps(tmp_path / "pairs")
    good_is_p1 = (bapps.meta["codec_p1"] == "good").to_numpy()
    assert np.array_equal(bapps.human, good_is_p1.astype(float))  # perfect raters: 0 or 1 everywhere


def test_elo_and_judge_agreement_from_simulated_answers(tmp_path):
    rng = np.random.default_rng(3)
    for rater in ("ann", "bob"):
        simulated_rater(HumanStudy(tmp_path, rater, pairs=_pairs()), 0.9, rng)
    comps = codec_comparisons(tmp_path)
    assert len(comps) == 24
    elo = elo_ratings(comps)
    assert elo["good"] > elo["bad"] + 100
    pairs = read_bapps(tmp_path / "pairs")
    oracle = {(f, i): (1.0 if c == "good" else -1.0) for f, i, c in zip(pairs.family, pairs.ids, pairs.meta["codec_p1"])}
    contrarian = {k: -v for k, v in oracle.items()}
    agree = judge_human_agreement(tmp_path, oracle)
    assert agree["pairs"] == 12 and agree["agreement"] > 0.75
    assert judge_human_agreement(tmp_path, contrarian)["agreement"] == pytest.approx(1 - agree["agreement"])
    failed = dict(oracle)
    failed[next(iter(failed))] = float("nan")
    assert judge_human_agreement(tmp_path, failed)["failed"] == 1


def test_bad_input(tmp_path):
    with pytest.raises(ValueError, match="rater id"):
        HumanStudy(tmp_path, " ", pairs=_pairs())
    with pytest.raises(FileNotFoundError, match="has no pairs yet"):
        HumanStudy(tmp_path / "new", "ann")
    s = HumanStudy(tmp_path, "ann", pairs=_pairs())
    with pytest.raises(ValueError, match="'left' or 'right'"):
        s.answer("p0")


def test_widget_buttons_and_keys_record_answers(tmp_path):
    from vlic.widgets.human_study import HumanStudyWidget

    seen = []
    widget = HumanStudyWidget(HumanStudy(tmp_path, "kim", pairs=_pairs(3)), display=32, on_answer=seen.append)
    widget.start_button.click()                        # the first pair (and its clock) appears on Start
    assert bytes(widget.ref.value[:4]) == b"\x89PNG"
    widget.left_button.click()
    widget.handle_key({"type": "keydown", "key": "ArrowRight"})
    widget.handle_key({"type": "keydown", "key": "x"})  # ignored
    widget.handle_key({"type": "keydown", "key": "1"})
    assert [r["choice"] for r in seen] == ["left", "right", "left"]
    assert widget.left_button.disabled and "Done" in widget.status.value and widget.ref.value == b""
    assert len(read_answers(tmp_path)) == 3


@pytest.mark.slow
def test_explore_notebook_runs_headless_with_simulated_raters(tmp_path, repo):
    import papermill as pm

    from vlic.data.twoafc import write_bapps

    write_bapps(_pairs(6), tmp_path / "pairs_src")
    study = tmp_path / "study"
    pm.execute_notebook(
        str(repo / "notebooks" / "explore_human_study.ipynb"), str(tmp_path / "out.ipynb"), cwd=str(repo),
        kernel_name="python3", progress_bar=False,
        parameters={"pairs_dir": str(tmp_path / "pairs_src"), "study_dir": str(study), "rater": "nobody",
                    "interactive": False, "simulate_raters": 2, "simulated_accuracy": 1.0,
                    "judges_to_compare": "psnr,lpips_vgg", "cache_path": str(tmp_path / "v.sqlite")},
    )
    answers = read_answers(study)
    assert len(answers) == 12 and set(answers["rater"]) == {"sim-1", "sim-2"}
    assert (study / "elo.png").is_file() and (study / "agreement.png").is_file()
