"""The human 2AFC study as an ipywidgets app: reference on top, two blinded reconstructions below.

Keys: ``1``/``←``/``a`` = left is closer, ``2``/``→``/``l`` = right is closer, ``u``/``z``/``Backspace`` = undo the last
answer, ``Enter``/space = start. They are read through ``ipyevents`` while the mouse pointer is over the study (a blue
frame shows it): the key events are then captured before JupyterLab sees them (``stopPropagation`` +
``preventDefault``), so a ``2`` answers instead of turning a cell into a heading. With the pointer elsewhere keys go
to JupyterLab as usual; the buttons always work.

The first pair appears, and its clock starts, only when the rater presses *Start*: the first answer's time does not
include loading the notebook. Every answer goes straight to disk through :class:`vlic.eval.human_study.HumanStudy`; the
counter in the widget is the one to read (it follows every answer and undo). *Done for now* ends the session at any
time (the answers are already saved; *Start* resumes). :class:`LiveResults` is a panel that follows the answers:
pass its ``update`` as ``on_answer`` and it recounts the answers and the codecs' Elo after each one.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import ipywidgets as w
import numpy as np
from PIL import Image

from vlic.eval.human_study import HumanStudy
from vlic.widgets.keys import capture_keys, frame_css

LEFT_KEYS = {"1", "ArrowLeft", "a"}
RIGHT_KEYS = {"2", "ArrowRight", "l"}
UNDO_KEYS = {"u", "z", "Backspace"}
START_KEYS = {"Enter", " "}
STYLE = frame_css("vlic-study")   # the frame that says "keys go to the study now"


def png_bytes(img: np.ndarray, display: int) -> bytes:
    """PNG of ``img`` upscaled (nearest neighbour, so no smoothing hides artifacts) to about ``display`` px."""
    h, wd = img.shape[:2]
    scale = max(1, display // max(h, wd))
    pil = Image.fromarray(img)
    if scale > 1:
        pil = pil.resize((wd * scale, h * scale), Image.Resampling.NEAREST)
    buf = io.BytesIO()
    pil.save(buf, format="PNG")
    return buf.getvalue()


class HumanStudyWidget:
    """Shows the rater's next pair after *Start*; ``on_answer(row)`` is called after each answer is saved."""

    def __init__(self, study: HumanStudy, display: int = 256, on_answer: Callable[[dict], None] | None = None):
        self.study = study
        self.display = display
        self.on_answer = on_answer
        self.started = False
        self.ref = w.Image(format="png")
        self.left = w.Image(format="png")
        self.right = w.Image(format="png")
        self.start_button = w.Button(description="Start  [Enter]", button_style="primary")
        self.left_button = w.Button(description="◀ left is closer  [1]", layout=w.Layout(width="auto"))
        self.right_button = w.Button(description="right is closer ▶  [2]", layout=w.Layout(width="auto"))
        self.undo_button = w.Button(description="↶ undo last answer  [u]", layout=w.Layout(width="auto"))
        self.done_button = w.Button(description="Done for now", layout=w.Layout(width="auto"))
        self.start_button.on_click(lambda _: self.start())
        self.done_button.on_click(lambda _: self.finish())
        self.left_button.on_click(lambda _: self.choose("left"))
        self.right_button.on_click(lambda _: self.choose("right"))
        self.undo_button.on_click(lambda _: self.undo())
        self.status = w.HTML()
        self.caption = w.HTML(
            STYLE + "<b>Which reconstruction is closer to the reference?</b> Keys work while the mouse pointer is over "
            "this box (blue frame): 1 / ← = left, 2 / → = right, u = undo. Elsewhere the keys go to JupyterLab.")
        self.pair_box = w.VBox(
            [w.VBox([w.HTML("reference"), self.ref], layout=w.Layout(align_items="center")),
             w.HBox([w.VBox([self.left, self.left_button], layout=w.Layout(align_items="center")),
                     w.VBox([self.right, self.right_button], layout=w.Layout(align_items="center"))])],
            layout=w.Layout(align_items="center"))
        self.box = w.VBox([self.caption, self.start_button, self.pair_box, w.HBox([self.undo_button, self.done_button]),
                           self.status],
                          layout=w.Layout(align_items="center"))
        self.box.add_class("vlic-study")
        self.keyboard = capture_keys(self.box, self.handle_key)
        self._show()

    def handle_key(self, event: dict) -> None:
        key = event.get("key")
        if not self.started:
            if key in START_KEYS:
                self.start()
            return
        if key in LEFT_KEYS:
            self.choose("left")
        elif key in RIGHT_KEYS:
            self.choose("right")
        elif key in UNDO_KEYS:
            self.undo()

    def start(self) -> None:
        """Show the first pair and start its clock."""
        self.started = True
        self.study.start_clock()
        self._show()

    def finish(self) -> None:
        """End the session now: hide the pair (its clock stops mattering: it was not answered); *Start* resumes."""
        self.started = False
        self._show()
        if self.on_answer:
            self.on_answer(None)

    def choose(self, side: str) -> None:
        if not self.started or self.study.next_trial() is None:
            return
        row = self.study.answer(side)
        if self.on_answer:
            self.on_answer(row)
        self._show()

    def undo(self) -> dict | None:
        """Take back the rater's last answer and show that pair again."""
        row = self.study.undo()
        if row is not None:
            self.started = True
            self._show(undone=row)
        return row

    def _show(self, undone: dict | None = None) -> None:
        s = self.study
        self.undo_button.disabled = s.answered == 0
        self.start_button.layout.display = "none" if self.started else None
        trial = s.next_trial()
        where = f"answers saved to <code>{s.answers_path}</code>"
        if trial is None:
            self.done_button.disabled = True
            for img in (self.ref, self.left, self.right):
                img.value = b""
            self.pair_box.layout.display = "none"
            self.left_button.disabled = self.right_button.disabled = True
            self.status.value = (f"<b>Done</b> — all {s.total} pairs answered ({s.answered} answers saved for rater "
                                 f"'{s.rater}'). Thank you! ({where}; <i>u</i> takes back the last one)")
            return
        if not self.started:
            self.pair_box.layout.display = "none"
            self.done_button.disabled = True
            stopped = "<b>Done for now</b> — " if s.answered else ""
            self.status.value = (f"{stopped}rater '{s.rater}': {s.answered} of {s.total} answered, {s.remaining} to go "
                                 f"({where}). Press <b>Start</b> when ready — the timing starts then.")
            return
        self.done_button.disabled = False
        self.pair_box.layout.display = None
        self.left_button.disabled = self.right_button.disabled = False
        self.ref.value = png_bytes(trial.ref, self.display)
        self.left.value = png_bytes(trial.left_image, self.display)
        self.right.value = png_bytes(trial.right_image, self.display)
        s.start_clock()  # the images are on their way to the screen now
        note = " · last answer taken back" if undone is not None else ""
        self.status.value = f"pair {s.answered + 1} of {s.total} · rater '{s.rater}'{note} · {where}"

    def _ipython_display_(self):  # pragma: no cover - display in Jupyter
        from IPython.display import display

        display(self.box)


class LiveResults:
    """A panel that follows the answers: how many each rater gave and, when the pairs compare codecs, the codecs' Elo
    with 95 % bootstrap intervals (:func:`vlic.eval.elo.elo_bootstrap`). ``update`` redraws it (``on_answer``)."""

    def __init__(self, study_dir, n_boot: int = 300, seed: int = 0):
        self.study_dir, self.n_boot, self.seed = study_dir, n_boot, seed
        self.box = w.HTML()
        self.update()

    def update(self, _row: dict | None = None) -> None:
        import html

        from vlic.eval.elo import elo_bootstrap
        from vlic.eval.human_study import codec_comparisons, read_answers

        answers = read_answers(self.study_dir)
        if not len(answers):
            self.box.value = "<i>no answers yet</i>"
            return
        counts = answers.groupby("rater").size()
        parts = [f"<b>{len(answers)} answers</b> (" + ", ".join(f"{html.escape(str(r))}: {n}" for r, n in counts.items())
                 + ")"]
        try:
            elo = elo_bootstrap(codec_comparisons(self.study_dir), n_boot=self.n_boot, seed=self.seed)
        except ValueError as e:   # pairs without codec columns, or nothing to compare yet
            parts.append(f"Elo: {html.escape(str(e))}")
        else:
            rows = sorted(elo.items(), key=lambda kv: -kv[1]["elo"])
            parts.append("Elo (95 % bootstrap interval): " + "; ".join(
                f"{html.escape(p)} {r['elo']:.0f} [{r['ci_low']:.0f}, {r['ci_high']:.0f}]" for p, r in rows))
        self.box.value = "<br>".join(parts)

    def _ipython_display_(self):  # pragma: no cover - display in Jupyter
        from IPython.display import display

        display(self.box)

