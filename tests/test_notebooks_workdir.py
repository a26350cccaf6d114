"""Notebooks as a person opens them: from any working directory they work at the repository root, a missing study
output names the stage that writes it, and JupyterLab (``make lab``) saves tracked notebooks without outputs."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from vlic.notebooks import (find_repo_root, is_tracked_notebook, pre_save_hook, problems, study_output,
                            use_repo_root)

REPO = Path(__file__).resolve().parents[1]
ROOT_LINE = "from vlic.notebooks import use_repo_root; use_repo_root()"
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


def _fake_root(tmp_path: Path) -> Path:
    root = tmp_path / "compendium"
    (root / "notebooks").mkdir(parents=True)
    (root / "reports").mkdir()
    (root / "params.yaml").write_text("judges: {twoafc_dir: data/twoafc}\n")
    (root / "dvc.yaml").write_text(
        "stages:\n"
        "  validate_judges:\n"
        "    cmd: papermill notebooks/01_vlm_2afc_validation.ipynb reports/01_vlm_2afc_validation.ipynb\n"
        "    deps: [notebooks/01_vlm_2afc_validation.ipynb, lib/vlic/data/twoafc.py]\n"
        "    outs: [data/twoafc, {results/figures/x.png: {cache: false}}]\n")
    return root


def _dirty_notebook() -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    out = nbformat.v4.new_output("execute_result", {"text/plain": "2"}, execution_count=7)
    nb.cells = [nbformat.v4.new_code_cell("1 + 1", execution_count=7, outputs=[out])]
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def _first_statement_is_use_repo_root(function) -> bool:
    import ast
    import inspect
    import textwrap

    body = ast.parse(textwrap.dedent(inspect.getsource(function))).body[0].body
    body = [s for s in body if not isinstance(s, (ast.Import, ast.ImportFrom))
            and not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))]   # imports, docstring
    call = body[0].value if body and isinstance(body[0], (ast.Expr, ast.Assign)) else None
    if isinstance(call, ast.Call) and getattr(call.func, "id", None) == "open_chapter":   # the chapters' shared opening
        from vlic.chapters.parameters import open_chapter

        return _first_statement_is_use_repo_root(open_chapter)
    return isinstance(call, ast.Call) and getattr(call.func, "id", None) == "use_repo_root"


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_every_notebook_starts_its_first_code_cell_at_the_repo_root(nb):
    """Its first line is ``use_repo_root()`` — or, for a pipeline chapter, ``from vlic.chapters import <chapter>``
    followed by ``<chapter>.setup(globals())``, whose first statement is ``use_repo_root()`` or
    :func:`vlic.chapters.parameters.open_chapter`, whose first statement it is."""
    import importlib

    cells = [c for c in nbformat.read(str(nb), as_version=4).cells if c.cell_type == "code"]
    after_params = [c for c in cells if "parameters" not in c.metadata.get("tags", [])]
    first = after_params[0].source.splitlines()[0]
    chapter = re.fullmatch(r"from vlic\.chapters import (\w+)", first)
    if chapter:
        assert f"{chapter.group(1)}.setup(globals())" in after_params[0].source
        assert _first_statement_is_use_repo_root(importlib.import_module(f"vlic.chapters.{chapter.group(1)}").setup)
    else:
        assert first.startswith(ROOT_LINE)
    assert cells.index(after_params[0]) == (1 if len(after_params) < len(cells) else 0)


def test_root_is_found_from_any_working_directory(tmp_path, monkeypatch):
    root = _fake_root(tmp_path)
    deep = root / "notebooks" / "sub"
    deep.mkdir()
    monkeypatch.delenv("VLIC_ROOT", raising=False)
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    assert find_repo_root(deep) == root.resolve()
    assert find_repo_root(root) == root.resolve()
    # outside any compendium: the notebook Jupyter opened, then the folder the package is installed from
    elsewhere = tmp_path / "home"
    elsewhere.mkdir()
    monkeypatch.setenv("JPY_SESSION_NAME", str(root / "notebooks" / "explore_rewards.ipynb"))
    assert find_repo_root(elsewhere) == root.resolve()
    monkeypatch.delenv("JPY_SESSION_NAME")
    assert find_repo_root(elsewhere) == REPO.resolve()          # this checkout's lib/vlic


def test_use_repo_root_moves_the_kernel_and_relative_paths_follow(tmp_path, monkeypatch, capsys):
    root = _fake_root(tmp_path)
    monkeypatch.delenv("VLIC_ROOT", raising=False)
    monkeypatch.chdir(root / "notebooks")                         # where `jupyter lab notebooks/` put the kernel
    assert use_repo_root() == root.resolve()
    assert Path.cwd() == root.resolve() and Path("dvc.yaml").is_file()
    assert "repository root" in capsys.readouterr().out
    use_repo_root()
    assert capsys.readouterr().out == ""                          # silent when already there


def test_missing_study_output_names_the_stage_not_a_download(tmp_path, monkeypatch):
    root = _fake_root(tmp_path)
    monkeypatch.chdir(root)
    with pytest.raises(FileNotFoundError) as e:
        study_output("data/twoafc/severity_ladder")
    msg = str(e.value)
    assert "validate_judges" in msg and "make study" in msg and "01_vlm_2afc_validation.ipynb" in msg
    assert "download" not in msg.lower()
    with pytest.raises(FileNotFoundError, match="no stage of the study writes it"):
        study_output("data/elsewhere")
    (root / "data" / "twoafc" / "compressed").mkdir(parents=True)
    assert study_output("data/twoafc/compressed") == Path("data/twoafc/compressed")


def test_the_real_dvc_yaml_names_the_stage_of_the_explorers_inputs():
    with pytest.raises(FileNotFoundError, match=r"stage 'validate_judges'.*make study"):
        study_output(REPO / "data" / "twoafc" / "no_such_set", root=REPO)


def test_tracked_notebooks_are_saved_clean_by_jupyters_contents_manager(tmp_path):
    """The hook as `make lab` configures it (an import string), through jupyter_server's own save path."""
    pytest.importorskip("jupyter_server")
    from jupyter_server.services.contents.filemanager import FileContentsManager

    root = _fake_root(tmp_path)
    cm = FileContentsManager(root_dir=str(root), pre_save_hook="vlic.notebooks.pre_save_hook")
    for path in ("notebooks/explore_x.ipynb", "reports/01_x.ipynb"):
        cm.save({"type": "notebook", "format": "json", "content": _dirty_notebook()}, path)
    assert problems(root / "notebooks" / "explore_x.ipynb", pipeline=False) == []
    kept = nbformat.read(str(root / "reports" / "01_x.ipynb"), as_version=4)
    assert kept.cells[0].outputs and kept.cells[0].execution_count == 7   # executed chapters keep their outputs
    # a Lab started inside notebooks/ strips them too; a notebook that is not in the compendium is left alone
    cm_nb = FileContentsManager(root_dir=str(root / "notebooks"), pre_save_hook="vlic.notebooks.pre_save_hook")
    cm_nb.save({"type": "notebook", "format": "json", "content": _dirty_notebook()}, "other.ipynb")
    assert problems(root / "notebooks" / "other.ipynb", pipeline=False) == []
    assert not is_tracked_notebook("x.ipynb", tmp_path) and not is_tracked_notebook("notebooks/a.py", root)
    model = {"type": "file", "content": "text"}
    pre_save_hook(model=model, path="notebooks/a.txt", contents_manager=cm)
    assert model["content"] == "text"


def test_make_lab_roots_jupyter_at_the_repo_with_the_strip_hook():
    make = (REPO / "Makefile").read_text()
    recipe = re.search(r"^lab:.*\n\t(.+)$", make, flags=re.M).group(1)
    assert "jupyter lab" in recipe and '--ServerApp.root_dir="$(CURDIR)"' in recipe
    assert "--ContentsManager.pre_save_hook=vlic.notebooks.pre_save_hook" in recipe
    assert " notebooks/" not in recipe                            # not rooted in notebooks/ any more


def test_explore_notebooks_read_their_inputs_through_study_output():
    for name in ("explore_rewards.ipynb", "explore_human_study.ipynb"):
        src = "\n".join(c.source for c in nbformat.read(str(REPO / "notebooks" / name), as_version=4).cells)
        assert "read_bapps(study_output(pairs_dir))" in src, name
