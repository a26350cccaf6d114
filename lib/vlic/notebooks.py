"""Keeping committed notebooks clean: no outputs, one ``parameters`` cell, a plain ``python3`` kernel."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat

KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}


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


def strip(path: str | Path) -> bool:
    """Remove outputs, execution counts and papermill metadata in place; return whether the file changed."""
    path = Path(path)
    before = path.read_text(encoding="utf-8")
    nb = nbformat.reads(before, as_version=4)
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
    after = nbformat.writes(nb) + "\n" if not nbformat.writes(nb).endswith("\n") else nbformat.writes(nb)
    if after != before:
        path.write_text(after, encoding="utf-8")
        return True
    return False


def parameter_names(path: str | Path) -> list[str]:
    """Names assigned at top level in the notebook's ``parameters`` cell."""
    import ast

    nb = nbformat.read(str(path), as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code" and "parameters" in cell.get("metadata", {}).get("tags", []):
            tree = ast.parse(cell.source)
            names = []
            for node in tree.body:
                targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
                names += [t.id for t in targets if isinstance(t, ast.Name)]
            return names
    return []


def stage_parameters(stage: str, params: dict, dvc_yaml: str | Path = "dvc.yaml") -> dict:
    """The parameters the notebook of DVC stage ``stage`` receives from ``params`` (a loaded params.yaml):
    its ``-y "name: ${section.key}"`` arguments rendered as DVC renders them and parsed as papermill parses them.

    Scripts that must do exactly what a chapter does (e.g. ``accelerate launch -m vlic.training.dpo_launch``) read
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

    out: dict = {}
    for arg in re.findall(r'-y\s+"([^"]*)"', stages[stage]["cmd"]):
        out.update(yaml.safe_load(re.sub(r"\$\{([\w.]+)\}", value, arg)))
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
