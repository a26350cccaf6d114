"""A chapter's parameters, picked by name from the notebook's namespace (its tagged ``parameters`` cell, after
papermill injected the stage's values), and the opening every chapter's ``setup`` shares (:func:`open_chapter`)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping


def pick(namespace: Mapping[str, Any], names: Iterable[str], chapter: str) -> dict[str, Any]:
    """``{name: namespace[name]}`` for each of ``names``, in their order; a name the namespace lacks is a one-line
    NameError naming it and the chapter (run the chapter's ``parameters`` cell first)."""
    out = {}
    for name in names:
        if name not in namespace:
            raise NameError(f"chapter {chapter} needs its parameter '{name}', which is not defined: run the chapter's "
                        f"parameters cell first")
        out[name] = namespace[name]
    return out


@dataclass(frozen=True)
class Opening:
    """What every chapter's set-up starts from: its parameters, its results and figures folders, and when it began."""

    params: dict[str, Any]
    results: Path
    figures: Path
    started: float     # time.perf_counter() when the chapter opened (its results' stage_seconds count from here)


def open_chapter(namespace: Mapping[str, Any], names: Iterable[str], chapter: str, *,
                 set_threads: bool = False) -> Opening:
    """The opening every chapter shares, in this order: paths relative to the repository root, the parameters
    (:func:`pick`), the figure style, ``results_dir`` and its ``figures`` folder created, and with ``set_threads``
    torch's thread count in this process from the ``threads`` parameter (0 = torch's default, all cores). Chapters
    whose ``threads`` is per worker process (02, 03) leave the notebook's own count alone."""
    from vlic import viz
    from vlic.notebooks import use_repo_root

    use_repo_root()  # paths are relative to the repository root
    params = pick(namespace, names, chapter)
    started = time.perf_counter()
    viz.setup()
    results = Path(params["results_dir"])
    figures = results / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    if set_threads and int(params["threads"]) > 0:
        import torch

        torch.set_num_threads(int(params["threads"]))
    return Opening(params, results, figures, started)
