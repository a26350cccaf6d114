"""The Lab of `make lab` (vlic.lab): browsing an executed chapter must not change a DVC output. A report opens
read-only and a save that arrives anyway is refused; source notebooks are still saved (without outputs)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import nbformat
import pytest
from tornado.web import HTTPError

from vlic.lab import StudyContentsManager, is_study_output


@pytest.fixture()
def root(tmp_path) -> Path:
    for marker in ("dvc.yaml", "params.yaml"):
        (tmp_path / marker).write_text("")
    for folder in ("notebooks", "reports", "results"):
        (tmp_path / folder).mkdir()
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1.0", outputs=[
        nbformat.v4.new_output("stream", text="1.0\n")])])
    nbformat.write(nb, tmp_path / "reports" / "04.ipynb")
    nbformat.write(nb, tmp_path / "notebooks" / "04.ipynb")
    return tmp_path


def test_reports_and_results_are_study_outputs(root):
    assert is_study_output("reports/04.ipynb", root) and is_study_output("/results/figures/a.png", root)
    assert not is_study_output("notebooks/04.ipynb", root) and not is_study_output("", root)
    assert is_study_output("04.ipynb", root / "reports")            # a Lab started inside reports/
    other = root / "elsewhere" / "reports"                           # a reports/ folder outside a compendium root
    other.mkdir(parents=True)
    assert not is_study_output("elsewhere/reports/x.ipynb", root)


def test_saving_a_report_through_the_contents_manager_changes_nothing(root):
    cm = StudyContentsManager(root_dir=str(root))
    report = root / "reports" / "04.ipynb"
    before = report.read_bytes()
    model = asyncio.run(cm.get("reports/04.ipynb"))
    assert model["writable"] is False                                 # Lab opens it read-only: no autosave
    with pytest.raises(HTTPError) as e:
        asyncio.run(cm.save({"type": "notebook", "format": "json", "content": model["content"]}, "reports/04.ipynb"))
    assert e.value.status_code == 403 and "make study" in e.value.log_message
    assert report.read_bytes() == before
    source = asyncio.run(cm.get("notebooks/04.ipynb"))
    assert source["writable"] is True
    asyncio.run(cm.save({"type": "notebook", "format": "json", "content": source["content"]}, "notebooks/04.ipynb"))


def test_the_lab_target_uses_the_study_contents_manager():
    makefile = (Path(__file__).resolve().parents[1] / "Makefile").read_text()
    assert "--ServerApp.contents_manager_class=vlic.lab.StudyContentsManager" in makefile
