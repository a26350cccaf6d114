"""A blinded human 2AFC study: which reconstruction is closer to the reference?

A study lives in one folder::

    <study_dir>/pairs/<family>/{ref,p0,p1}/<id>.png   the pairs, BAPPS layout (written once from a TwoAFCSet)
    <study_dir>/pairs/<family>/judge/<id>.npy          fraction of raters preferring p1 — updated after every answer,
                                                       so the folder is a BAPPS-compatible 2AFC set at any moment
    <study_dir>/pairs/pairs.csv                        per-pair metadata (e.g. codec_p0, codec_p1, bpp)
    <study_dir>/answers.csv                            one row per answer: rater, pair, side shown, choice, timing

Each rater sees the pairs in their own random order, and for every pair p0/p1 are put left/right at random
(blinded: nothing on screen says which codec is which). Every answer is appended and flushed to disk at once, so an
interrupted session resumes where it stopped — :class:`HumanStudy` skips what the rater already answered. A mis-click
is taken back with :meth:`HumanStudy.undo` (the rater's last answer leaves ``answers.csv`` and the pair is asked again).

Timing: ``seconds`` runs from the moment the pair was put on screen. The widget starts the clock of the first pair
only when the rater presses *Start* (:meth:`HumanStudy.start_clock`), so loading the notebook is not counted.
"""

from __future__ import annotations

import csv
import hashlib
import os
import time
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from vlic.data.twoafc import TwoAFCSet, read_bapps, write_bapps

ANSWER_COLUMNS = ["rater", "family", "id", "left", "choice", "chosen", "seconds", "answered_at"]


@dataclass(frozen=True)
class Trial:
    """One pair as a rater sees it: ``left`` says whether p0 or p1 is on the left."""

    pair: int
    family: str
    id: str
    left: str
    ref: np.ndarray
    left_image: np.ndarray
    right_image: np.ndarray
    shown_at: float


def _stable_seed(*parts: object) -> int:
    return int.from_bytes(hashlib.sha256("|".join(map(str, parts)).encode()).digest()[:8], "little")


def read_answers(study_dir: str | Path) -> pd.DataFrame:
    path = Path(study_dir) / "answers.csv"
    if not path.is_file():
        return pd.DataFrame(columns=ANSWER_COLUMNS)
    return pd.read_csv(path, dtype={"rater": str, "family": str, "id": str})


class HumanStudy:
    """A resumable session of one rater over the pairs of ``study_dir`` (created from ``pairs`` if new)."""

    def __init__(self, study_dir: str | Path, rater: str, pairs: TwoAFCSet | None = None, seed: int = 0):
        if not rater or not str(rater).strip():
            raise ValueError("a rater id is needed (any short name; it is stored with every answer)")
        self.dir = Path(study_dir)
        self.rater = str(rater).strip()
        self.pairs_dir = self.dir / "pairs"
        if not (self.pairs_dir / "pairs.csv").is_file():
            if pairs is None:
                raise FileNotFoundError(f"study folder '{self.dir}' has no pairs yet: pass the TwoAFCSet to start it")
            no_truth = TwoAFCSet(pairs.ref, pairs.p0, pairs.p1, np.full(len(pairs), np.nan), pairs.family, pairs.ids, pairs.meta)
            write_bapps(no_truth, self.pairs_dir)  # the study's own judge files hold the human answers only
        self.pairs = read_bapps(self.pairs_dir)
        self.answers_path = self.dir / "answers.csv"
        answered = read_answers(self.dir)
        mine = answered[answered["rater"] == self.rater]
        done = set(zip(mine["family"], mine["id"]))
        rng = np.random.default_rng(_stable_seed(seed, self.rater))
        order = rng.permutation(len(self.pairs))
        self.total = len(self.pairs)
        self.answered = len(done)
        self._queue = [int(i) for i in order if (self.pairs.family[i], self.pairs.ids[i]) not in done]
        self._current: Trial | None = None

    @property
    def remaining(self) -> int:
        return len(self._queue)

    def next_trial(self) -> Trial | None:
        """The next pair to show (the same one until it is answered); None when the rater is done."""
        if self._current is not None:
            return self._current
        if not self._queue:
            return None
        i = self._queue[0]
        left = "p0" if _stable_seed(self.rater, self.pairs.family[i], self.pairs.ids[i]) % 2 == 0 else "p1"
        l_img, r_img = (self.pairs.p0[i], self.pairs.p1[i]) if left == "p0" else (self.pairs.p1[i], self.pairs.p0[i])
        self._current = Trial(i, self.pairs.family[i], self.pairs.ids[i], left, self.pairs.ref[i], l_img, r_img, time.perf_counter())
        return self._current

    def start_clock(self) -> Trial | None:
        """Restart the timing of the pair on screen (call when it is really shown, e.g. after a Start button)."""
        trial = self.next_trial()
        if trial is not None:
            self._current = replace(trial, shown_at=time.perf_counter())
        return self._current

    def undo(self) -> dict | None:
        """Take back this rater's last answer: it leaves ``answers.csv`` (and the pair's judge file), and that pair is
        the next one asked again. Returns the removed row, or None when the rater has no answer to take back."""
        answers = read_answers(self.dir)
        mine = answers.index[answers["rater"] == self.rater]
        if not len(mine):
            return None
        last = int(mine[-1])
        row = answers.loc[last].to_dict()
        self._rewrite(answers.drop(index=last))
        self._update_judge(str(row["family"]), str(row["id"]))
        i = next(k for k in range(len(self.pairs)) if (self.pairs.family[k], self.pairs.ids[k]) == (row["family"], row["id"]))
        self._queue = [i] + [k for k in self._queue if k != i]
        self._current = None
        self.answered -= 1
        return row

    def answer(self, choice: str) -> dict:
        """Record that the rater found the ``"left"`` or ``"right"`` image closer to the reference."""
        if choice not in ("left", "right"):
            raise ValueError(f"choice must be 'left' or 'right', got {choice!r}")
        trial = self.next_trial()
        if trial is None:
            raise RuntimeError(f"rater '{self.rater}' has answered all {self.total} pairs")
        chosen = trial.left if choice == "left" else ("p1" if trial.left == "p0" else "p0")
        row = {
            "rater": self.rater,
            "family": trial.family,
            "id": trial.id,
            "left": trial.left,
            "choice": choice,
            "chosen": chosen,
            "seconds": round(time.perf_counter() - trial.shown_at, 3),
            "answered_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        self._append(row)
        self._update_judge(trial.family, trial.id)
        self._queue.pop(0)
        self._current = None
        self.answered += 1
        return row

    def _append(self, row: dict) -> None:
        new = not self.answers_path.is_file()
        with open(self.answers_path, "a", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=ANSWER_COLUMNS)
            if new:
                writer.writeheader()
            writer.writerow(row)
            f.flush()
            os.fsync(f.fileno())

    def _rewrite(self, answers: pd.DataFrame) -> None:
        tmp = self.answers_path.with_name(self.answers_path.name + ".tmp")
        answers[ANSWER_COLUMNS].to_csv(tmp, index=False)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, self.answers_path)

    def _update_judge(self, family: str, pid: str) -> None:
        answers = read_answers(self.dir)
        mine = answers[(answers["family"] == family) & (answers["id"] == pid)]
        path = self.pairs_dir / family / "judge" / f"{pid}.npy"
        if mine.empty:  # the only answer was taken back: no human judgement for this pair
            path.unlink(missing_ok=True)
            return
        frac = float((mine["chosen"] == "p1").mean())
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.stem + ".tmp.npy")
        np.save(tmp, np.array([frac], dtype=np.float32))
        os.replace(tmp, path)


def codec_comparisons(study_dir: str | Path) -> list[tuple[str, str, float]]:
    """Every answer as an Elo comparison ``(codec_p0, codec_p1, score_p0)`` (needs codec columns in pairs.csv)."""
    meta = pd.read_csv(Path(study_dir) / "pairs" / "pairs.csv", dtype={"id": str})
    if not {"codec_p0", "codec_p1"} <= set(meta.columns):
        raise ValueError(f"'{study_dir}/pairs/pairs.csv' has no codec_p0/codec_p1 columns: the pairs do not compare codecs")
    merged = read_answers(study_dir).merge(meta[["family", "id", "codec_p0", "codec_p1"]], on=["family", "id"], how="left")
    return [(r.codec_p0, r.codec_p1, 1.0 if r.chosen == "p0" else 0.0) for r in merged.itertuples()]


def judge_human_agreement(study_dir: str | Path, judge_preference: dict[tuple[str, str], float], n_boot: int = 1000,
                          seed: int = 0) -> dict:
    """How often a judge picks what the raters picked, BAPPS-style (credit = fraction of raters agreeing), with a 95 %
    percentile bootstrap interval over pairs (``ci_low``, ``ci_high``).

    ``judge_preference[(family, id)]`` < 0 means the judge prefers p0, > 0 p1, 0 a tie (½ credit), NaN a failure
    (excluded and counted).
    """
    from vlic.stats import mean_ci

    answers = read_answers(study_dir)
    nan = float("nan")
    if answers.empty:
        return {"pairs": 0, "agreement": nan, "ci_low": nan, "ci_high": nan, "failed": 0}
    human = answers.assign(p1=answers["chosen"] == "p1").groupby(["family", "id"])["p1"].mean()
    credits, failed = [], 0
    for key, h in human.items():
        p = judge_preference.get(key, np.nan)
        if p is None or np.isnan(p):
            failed += 1
            continue
        credits.append(h if p > 0 else (1 - h) if p < 0 else 0.5)
    mean, lo, hi = mean_ci(credits, n_boot=n_boot, seed=seed, drop_nan=True) if credits else (nan, nan, nan)
    return {"pairs": len(credits), "agreement": mean, "ci_low": lo, "ci_high": hi, "failed": failed}


def simulate_rater(study: HumanStudy, accuracy: float, seed: int = 0, limit: int | None = None) -> int:
    """Answer like a noisy observer (for demos and tests — never mixed with real answers unlabelled).

    Picks the side with the smaller mean absolute error to the reference with probability ``accuracy``.
    Use a rater id that says it is simulated (e.g. ``"sim-1"``). Returns the number of answers given.
    """
    rng = np.random.default_rng(seed)
    n = 0
    while (trial := study.next_trial()) is not None and (limit is None or n < limit):
        err_l = np.abs(trial.left_image.astype(np.int16) - trial.ref).mean()
        err_r = np.abs(trial.right_image.astype(np.int16) - trial.ref).mean()
        better = "left" if err_l <= err_r else "right"
        study.answer(better if rng.random() < accuracy else ("right" if better == "left" else "left"))
        n += 1
    return n


def judge_preferences(pairs: TwoAFCSet, judge_name: str, cache_path: str | None = None, seeds: int = 1,
                      orders: int = 2) -> dict[tuple[str, str], float]:
    """A judge's combined preference per pair (< 0: p0 closer, > 0: p1, NaN: failed), through the verdict cache."""
    from vlic.judges.cache import VerdictCache
    from vlic.judges.ensemble import combine, run_judge
    from vlic.judges.factory import make_judge

    judge = make_judge(judge_name)
    run = run_judge(judge, pairs.ref, pairs.p0, pairs.p1, seeds=seeds, orders=orders, cache=VerdictCache(cache_path))
    pref = combine(run.raw, run.n_orders)["preference"].to_numpy()
    return {(f, i): float(p) for f, i, p in zip(pairs.family, pairs.ids, pref)}
