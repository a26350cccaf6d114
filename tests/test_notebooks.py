"""Every pipeline notebook: clean when committed, wired into dvc.yaml (written from pipeline.yaml, every parameter
fed), and runs end to end.

The smoke run executes the chapters in dvc.yaml's stage order inside one temporary workspace, each with the tiny
parameters of ``tests/smoke_params/<notebook>.yaml`` (``{work}`` is replaced by the workspace path), so a later
chapter reads what the earlier ones wrote — the same chain as ``dvc repro``, in seconds.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml

from vlic.notebooks import parameter_names, problems
from vlic.pipeline import load, render

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
DVC = yaml.safe_load((REPO / "dvc.yaml").read_text())
PARAMS = yaml.safe_load((REPO / "params.yaml").read_text())
PIPELINE = yaml.safe_load((REPO / "pipeline.yaml").read_text())


def _stage_notebooks() -> list[tuple[str, str, Path]]:
    """(stage, cmd, notebook) in dvc.yaml order for stages that run a notebook."""
    out = []
    for name, stage in DVC["stages"].items():
        m = re.search(r"papermill\s.*?(notebooks/\S+\.ipynb)", stage["cmd"])
        if m:
            out.append((name, stage["cmd"], REPO / m.group(1)))
    return out


STAGES = _stage_notebooks()


def test_there_are_notebooks_and_stages():
    assert NOTEBOOKS, "no notebooks found"
    assert STAGES, "dvc.yaml runs no notebook"


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_notebook_is_clean(nb: Path):
    assert problems(nb, pipeline=not nb.name.startswith("explore")) == []


def test_dvc_yaml_is_what_pipeline_yaml_writes():
    assert (REPO / "dvc.yaml").read_text() == render(*load(REPO), root=REPO), \
        "dvc.yaml differs from pipeline.yaml + the notebooks' parameters cells: run `vlic pipeline write`"


@pytest.mark.parametrize("stage,cmd,nb", STAGES, ids=[s[0] for s in STAGES])
def test_stage_feeds_every_parameter_the_notebook_defines(stage, cmd, nb):
    declared = set(parameter_names(nb))
    passed = re.findall(r'-y\s+"(\w+):', cmd)
    assert passed, f"stage '{stage}' passes no parameters"
    assert len(passed) == len(set(passed)), f"stage '{stage}' passes a parameter twice"
    assert set(passed) <= declared, f"stage '{stage}' passes {sorted(set(passed) - declared)} unknown to {nb.name}"
    kept = set(PIPELINE["stages"][stage].get("keep_default") or [])
    assert set(passed) | kept == declared, f"stage '{stage}' feeds neither {sorted(declared - set(passed) - kept)}"
    assert not set(passed) & kept, f"stage '{stage}' feeds {sorted(set(passed) & kept)}, listed under keep_default"
    templated = set(re.findall(r"\$\{([\w.]+)\}", cmd))
    listed = set()
    for entry in DVC["stages"][stage].get("params", []):
        listed |= {entry} if isinstance(entry, str) else {k for d in [entry] for v in d.values() for k in v}
    assert templated == listed, f"stage '{stage}': templated {sorted(templated)} but params: lists {sorted(listed)}"
    for key in templated:  # every templated key exists in params.yaml
        node = PARAMS
        for part in key.split("."):
            assert part in node, f"stage '{stage}' uses ${{{key}}}, missing from params.yaml"
            node = node[part]


@pytest.mark.parametrize("stage,cmd,nb", STAGES, ids=[s[0] for s in STAGES])
def test_every_pipeline_notebook_has_smoke_params(stage, cmd, nb):
    path = REPO / "tests" / "smoke_params" / f"{nb.stem}.yaml"
    assert path.is_file(), f"add tiny parameters for {nb.name} in {path.relative_to(REPO)}"
    params = yaml.safe_load(path.read_text()) or {}
    assert set(params) <= set(parameter_names(nb)), f"{path.name} sets parameters {nb.name} does not define"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, packaged_raw) -> Path:
    work = tmp_path_factory.mktemp("smoke")
    shutil.copytree(packaged_raw, work / "data" / "raw")
    return work


@pytest.mark.slow
@pytest.mark.parametrize("stage,cmd,nb", STAGES, ids=[s[0] for s in STAGES])
def test_notebook_smoke_run(stage, cmd, nb, workspace):
    import papermill as pm

    raw = yaml.safe_load((REPO / "tests" / "smoke_params" / f"{nb.stem}.yaml").read_text()) or {}
    params = {k: v.format(work=workspace, repo=REPO) if isinstance(v, str) else v for k, v in raw.items()}
    out = workspace / "reports" / nb.name
    out.parent.mkdir(parents=True, exist_ok=True)
    pm.execute_notebook(str(nb), str(out), parameters=params, cwd=str(REPO), kernel_name="python3", progress_bar=False)
