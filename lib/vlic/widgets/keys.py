"""Keys for a widget, not for JupyterLab: while the mouse pointer is over ``box`` every key press goes to ``handler``
(through ``ipyevents``, default action prevented and propagation stopped), so JupyterLab's command-mode shortcuts
(``a``/``b`` insert a cell, ``dd`` deletes it, ``m`` makes it Markdown, ``2`` a heading) never fire from inside the
widget. ipyevents marks the box ``.ipyevents-watched`` meanwhile: :func:`frame_css` draws a blue frame then."""

from __future__ import annotations

from typing import Callable


def frame_css(cls: str) -> str:
    """A ``<style>`` for boxes of class ``cls``: a blue frame while they hold the keys."""
    return (f"<style>.{cls}{{border:3px solid transparent;border-radius:6px;padding:6px}}"
            f".{cls}.ipyevents-watched{{border-color:#3b82f6}}</style>")


def capture_keys(box, handler: Callable[[dict], None]):
    """Route key presses over ``box`` to ``handler(event)``; None when ipyevents is not installed (the widget's
    buttons and controls still work with the mouse)."""
    try:
        from ipyevents import Event
    except ImportError:
        return None
    ev = Event(source=box, watched_events=["keydown"], prevent_default_action=True)
    ev.on_dom_event(handler)
    return ev
