"""The notebooks as files and as a place to work: committed notebooks stay clean (no outputs, one ``parameters`` cell,
a plain ``python3`` kernel, stripped on save in JupyterLab) and every notebook works from the repository root.

* :func:`use_repo_root` — the one line each notebook's first code cell calls: wherever Jupyter started the kernel
  (``notebooks/``, the root, a home folder), the notebook then reads and writes the paths of ``params.yaml``
  (``data/…``, ``results/…``) relative to the repository root, as ``dvc repro`` does.
* :func:`study_output` — an input the study writes (``data/twoafc/…``), or an error that names the DVC stage and
  ``make study`` instead of a misleading download hint.
* :func:`strip` / :func:`pre_save_hook` — outputs removed from the tracked notebooks (``notebooks/*.ipynb``), by hand
  (``make clean-notebooks``) or on every save in a JupyterLab started by ``make lab``; executed copies in
  ``reports/`` keep theirs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import nbformat

KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}
# a folder is the compendium's root when it has all of these
ROOT_MARKERS = ("dvc.yaml", "params.yaml", "notebooks")
# notebooks under these folders (relative to the root) are tracked sources: stripped on save
TRACKED_NOTEBOOK_DIRS = ("notebooks",)


def is_repo_root(folder: str | Path) -> bool:
    folder = Path(folder)
    return all((folder / m).exists() for m in ROOT_MARKERS)


def find_repo_root(start: str | Path | None = None) -> Path:
    """The compendium's root: the first folder with ``dvc.yaml``, ``params.yaml`` and ``notebooks/`` among ``start``
    (default: the working directory) and its parents, then the notebook Jupyter opened (``JPY_SESSION_NAME``), then
    the folder this package is installed from (an editable install lives in ``<root>/lib/vlic``)."""
    candidates: list[Path] = []
    if os.environ.get("VLIC_ROOT"):
        candidates.append(Path(os.environ["VLIC_ROOT"]))
    here = Path(start) if start is not None else Path.cwd()
    candidates += [here, *here.resolve().parents]
    session = os.environ.get("JPY_SESSION_NAME")  # the notebook's path, set by jupyter_server for its kernels
    if session and Path(session).is_absolute():
        candidates += list(Path(session).parents)
    candidates += list(Path(__file__).resolve().parents)
    for c in candidates:
        if is_repo_root(c):
            return c.resolve()
    raise FileNotFoundError(
        f"no vlic-compendium root (a folder with {', '.join(ROOT_MARKERS)}) above '{here.resolve()}' nor above the "
        f"installed package '{Path(__file__).resolve().parent}': start Jupyter inside the compendium (`make lab`) "
        f"or set VLIC_ROOT")


def use_repo_root(start: str | Path | None = None) -> Path:
    """Make the repository root the working directory (what ``dvc repro`` and the tests use) and return it.

    Every path in ``params.yaml`` and in the notebooks' parameters is relative to the root, so this is the first line
    of each notebook's first code cell; it prints where it moved only when it moved. Being every chapter's first line,
    it also checks the root's ``params.yaml`` — the values the stage was given — against the allowed ranges
    (:func:`vlic.config.check_params`): an out-of-range value stops the chapter with one line before any work."""
    from vlic.config import check_params, load_params

    root = find_repo_root(start)
    if Path.cwd().resolve() != root:
        print(f"working directory: {root} (the repository root; was {Path.cwd()})")
        os.chdir(root)
    check_params(load_params(root / "params.yaml"), "params.yaml")
    return root


def _writers(dvc_yaml: Path) -> list[tuple[str, str, str]]:
    """(stage, output path, notebook) for every declared output of dvc.yaml."""
    import yaml

    stages = (yaml.safe_load(dvc_yaml.read_text(encoding="utf-8")) or {}).get("stages", {})
    found = []
    for name, stage in stages.items():
        nb = next((str(d) for d in stage.get("deps", []) if str(d).endswith(".ipynb")), "")
        for key in ("outs", "metrics", "plots"):
            for out in stage.get(key, []) or []:
                path = next(iter(out)) if isinstance(out, dict) else str(out)
                found.append((name, path.rstrip("/"), nb))
    return found


def study_output(path: str | Path, root: str | Path | None = None) -> Path:
    """``path`` if it exists; otherwise an error saying which stage of the study writes it and how to run it.

    The explore notebooks read what ``make study`` wrote (``data/twoafc/severity_ladder`` …): a missing folder means
    the study has not run in this checkout (or its outputs were not pulled), not that a dataset must be downloaded.
    """
    p = Path(path)
    if p.exists():
        return p
    root = Path(root) if root is not None else find_repo_root()
    try:
        rel = (p if p.is_absolute() else (Path.cwd() / p)).resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        rel = None
    writers = [(s, o, nb) for s, o, nb in _writers(root / "dvc.yaml")
               if rel is not None and (rel == o or rel.startswith(o + "/"))] if (root / "dvc.yaml").is_file() else []
    if writers:
        stage, out, nb = writers[0]
        raise FileNotFoundError(
            f"'{path}' does not exist yet: DVC stage '{stage}' ({nb or 'see dvc.yaml'}) writes '{out}'. Run the study "
            f"first — `make study` (or `dvc repro {stage}`; `dvc pull` if a remote holds the outputs) — then rerun "
            f"this notebook.")
    raise FileNotFoundError(f"'{path}' does not exist (and no stage of the study writes it): point the parameter at "
                            f"an existing folder")


def problems(path: str | Path, pipeline: bool = True) -> list[str]:
    """What is wrong with a committed notebook (empty list when it is clean)."""
    nb = nbformat.read(str(path), as_version=4)
    found = []
    code = [c for c in nb.cells if c.cell_type == "code"]
    if any(c.get("outputs") or c.get("execution_count") is not None for c in code):
        found.append("has outputs or execution counts (run `make clean-notebooks`)")
    tagged = [c for c in code if "parameters" in c.get("metadata", {}).get("tags", [])]
    if pipeline and len(tagged) != 1:
        found.append(f"has {len(tagged)} cells tagged 'parameters', expected exactly 1")
    if tagged and code and code[0] is not tagged[0] and pipeline:
        found.append("the 'parameters' cell is not the first code cell")
    name = nb.metadata.get("kernelspec", {}).get("name")
    if name != "python3":
        found.append(f"kernelspec is '{name}', expected 'python3'")
    return found


def strip_notebook(nb: Any) -> Any:
    """Remove outputs, execution counts, papermill/widget metadata from a notebook (in place) and return it."""
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
        for key in ("collapsed", "scrolled"):
            cell.metadata.pop(key, None)
    nb.metadata.pop("papermill", None)
    nb.metadata.pop("widgets", None)
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.metadata["language_info"] = {"name": "python"}
    return nb


def strip(path: str | Path) -> bool:
    """Remove outputs, execution counts and papermill metadata in place; return whether the file changed."""
    path = Path(path)
    before = path.read_text(encoding="utf-8")
    nb = strip_notebook(nbformat.reads(before, as_version=4))
    after = nbformat.writes(nb) + "\n" if not nbformat.writes(nb).endswith("\n") else nbformat.writes(nb)
    if after != before:
        path.write_text(after, encoding="utf-8")
        return True
    return False


def is_tracked_notebook(api_path: str, server_root: str | Path | None = None) -> bool:
    """Whether a Jupyter path (relative to the server's root, ``/``-separated) is a committed source notebook:
    ``<compendium root>/notebooks/*.ipynb`` — checked on disk when the server's root folder is known, so a Lab
    started in ``notebooks/`` strips them too."""
    parts = Path(api_path.strip("/")).parts
    if not api_path.endswith(".ipynb") or ".ipynb_checkpoints" in parts:
        return False
    if server_root is not None:
        folder = (Path(server_root) / Path(*parts)).resolve().parent
        return folder.name in TRACKED_NOTEBOOK_DIRS and is_repo_root(folder.parent)
    return len(parts) == 2 and parts[0] in TRACKED_NOTEBOOK_DIRS


def pre_save_hook(model: dict, path: str, contents_manager: Any = None, **kwargs: Any) -> None:
    """Jupyter's ``ContentsManager.pre_save_hook``: a tracked notebook (``notebooks/*.ipynb``) is saved without outputs.

    ``make lab`` passes ``--ContentsManager.pre_save_hook=vlic.notebooks.pre_save_hook`` (server started at the
    root), so autosave never writes widget state or stale outputs into git; the open tab keeps its outputs until it
    is reloaded. Executed notebooks (``reports/``) and notebooks elsewhere are saved as they are.
    """
    if model.get("type") != "notebook" or not is_tracked_notebook(path, getattr(contents_manager, "root_dir", None)):
        return
    content = model.get("content")
    if content is None:
        return
    nb = nbformat.from_dict(content)
    model["content"] = strip_notebook(nb)


def parameter_defaults(path: str | Path) -> dict[str, Any]:
    """``name → default`` of the notebook's ``parameters`` cell, in the cell's order (defaults are Python literals;
    anything else is a ValueError naming the parameter)."""
    import ast

    nb = nbformat.read(str(path), as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code" and "parameters" in cell.get("metadata", {}).get("tags", []):
            out: dict[str, Any] = {}
            for node in ast.parse(cell.source).body:
                targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
                for t in targets:
                    if isinstance(t, ast.Name):
                        try:
                            out[t.id] = ast.literal_eval(node.value)
                        except ValueError:
                            raise ValueError(f"'{path}': parameter '{t.id}' is not a literal value") from None
            return out
    return {}


def parameter_names(path: str | Path) -> list[str]:
    """Names assigned at top level in the notebook's ``parameters`` cell."""
    return list(parameter_defaults(path))


def stage_parameters(stage: str, params: dict, dvc_yaml: str | Path = "dvc.yaml") -> dict:
    """The parameters the notebook of DVC stage ``stage`` receives from ``params`` (a loaded params.yaml):
    its ``-y "name: ${section.key}"`` arguments rendered as DVC renders them and parsed as papermill parses them.

    Scripts that must do exactly what a chapter does (e.g. ``accelerate launch -m vlic.training.dpo.launch``) read
    their parameters through this, so dvc.yaml stays the one place that maps params.yaml onto a chapter.
    """
    import re

    import yaml

    stages = (yaml.safe_load(Path(dvc_yaml).read_text(encoding="utf-8")) or {}).get("stages", {})
    if stage not in stages:
        raise KeyError(f"'{dvc_yaml}' has no stage '{stage}' (stages: {', '.join(stages)})")

    def value(match: re.Match) -> str:
        node: Any = params
        for part in match.group(1).split("."):
            if not isinstance(node, dict) or part not in node:
                raise KeyError(f"stage '{stage}' uses ${{{match.group(1)}}}, which the parameters do not define")
            node = node[part]
        if isinstance(node, bool):
            return "true" if node else "false"
        return str(node)

    from papermill.iorw import NoDatesSafeLoader  # what papermill's -y parses with

    out: dict = {}
    for arg in re.findall(r'-y\s+"([^"]*)"', stages[stage]["cmd"]):
        out.update(yaml.load(re.sub(r"\$\{([\w.]+)\}", value, arg), Loader=NoDatesSafeLoader) or {})
    return out


def write_metrics(path: str | Path, metrics: dict, **json_kwargs: Any) -> Path:
    """Write a chapter's results JSON (a DVC metrics file) with the numerics fingerprint it was computed under.

    ``metrics["numerics"]`` is :func:`vlic.numerics.fingerprint`; ``vlic results compare`` skips it (and timings)
    when it checks a rerun against the committed results.
    """
    import json

    from vlic.numerics import fingerprint

    path = Path(path)
    json_kwargs.setdefault("indent", 2)
    path.write_text(json.dumps({**metrics, "numerics": fingerprint()}, **json_kwargs) + "\n")
    return path


def json_tree(o: Any, digits: int = 5) -> Any:
    """A nested result (dicts, lists, tuples, numpy scalars) as JSON values for a results file: dict keys as strings,
    tuples as lists, floats rounded to ``digits`` and non-finite ones (NaN, ±inf) as ``None``, numpy integers and
    booleans as Python ones; anything else as it is."""
    import numpy as np

    if isinstance(o, dict):
        return {str(k): json_tree(v, digits) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [json_tree(v, digits) for v in o]
    if isinstance(o, (np.floating, float)):
        return None if not np.isfinite(o) else round(float(o), digits)
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.bool_):
        return bool(o)
    return o


def json_value(v: Any, digits: int = 5) -> Any:
    """A table cell as a JSON value for a results file: NaN → ``None``, floats (numpy's too) rounded to ``digits``,
    other numpy scalars as Python ones."""
    import numpy as np

    if isinstance(v, (float, np.floating)):
        return None if np.isnan(v) else round(float(v), digits)
    return v.item() if isinstance(v, np.generic) else v
