"""The JupyterLab that ``make lab`` starts: the study's outputs open read-only.

``reports/`` (the executed chapters) and ``results/`` are outputs of DVC stages. Opening one in Lab must not change
it, yet Lab autosaves every open notebook it may write — re-serialised (kernel display name, ``1.0`` → ``1``, a
trailing newline), enough for ``dvc status`` to report a changed output and for the next ``make study`` to rerun the
stage. :class:`StudyContentsManager` is Jupyter's default contents manager with two changes for files under those
folders of the compendium root: their models say ``writable: false`` (Lab then opens them read-only and never
autosaves them), and a save that arrives anyway is refused with a one-line reason. ``notebooks/*.ipynb`` keep
:func:`vlic.notebooks.pre_save_hook` (saved without outputs). To edit an executed chapter, copy it out of
``reports/`` first ("Save As" elsewhere).
"""

from __future__ import annotations

from pathlib import Path

from jupyter_server.services.contents.largefilemanager import AsyncLargeFileManager
from tornado.web import HTTPError

from vlic.notebooks import is_repo_root

OUTPUT_DIRS = ("reports", "results")


def is_study_output(api_path: str, server_root: str | Path) -> bool:
    """Whether a Jupyter path (relative to the server's root) lies under ``reports/`` or ``results/`` of the
    compendium root (checked on disk, so a Lab started in a subfolder protects them too)."""
    parts = Path(api_path.strip("/")).parts
    if not parts:
        return False
    target = (Path(server_root) / Path(*parts)).resolve()
    for folder in [target, *target.parents]:
        if folder.name in OUTPUT_DIRS and is_repo_root(folder.parent):
            return True
    return False


class StudyContentsManager(AsyncLargeFileManager):
    """Jupyter's contents manager; the study's outputs (``reports/``, ``results/``) read-only."""

    async def get(self, path, content=True, type=None, format=None, **kwargs):
        model = await super().get(path, content=content, type=type, format=format, **kwargs)
        if is_study_output(path, self.root_dir):
            model["writable"] = False
        return model

    async def save(self, model, path=""):
        if is_study_output(path, self.root_dir):
            raise HTTPError(403, f"'{path}' is an output of `make study` (read-only here): save a copy elsewhere to edit it")
        return await super().save(model, path)
