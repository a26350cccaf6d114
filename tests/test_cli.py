"""The `vlic` command line: help, data assembly, notebook hygiene; clean exit codes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[1]


def vlic(*args, cwd=REPO):
    return subprocess.run([sys.executable, "-m", "vlic.cli", *map(str, args)], cwd=cwd, capture_output=True, text=True)


def test_help_lists_the_commands():
    r = vlic("--help")
    assert r.returncode == 0
    for cmd in ("data", "params", "notebooks"):
        assert cmd in r.stdout


def test_download_without_network_is_one_line_exit_2(monkeypatch, tmp_path):
    from vlic.cli import main
    import vlic.data.download as dl

    monkeypatch.setitem(dl.DATASETS, "kodak", (dl.RemoteFile("http://127.0.0.1:9/k.png", "k.png", "0" * 64),))
    assert main(["data", "download", "kodak", str(tmp_path)]) == 2


def test_notebook_check_and_strip(tmp_path):
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["parameters"]})
    cell.outputs = [nbformat.v4.new_output("stream", text="1\n")]
    cell.execution_count = 3
    nb.cells = [cell]
    nb.metadata["kernelspec"] = {"name": "venv-kernel", "display_name": "x", "language": "python"}
    path = tmp_path / "01_x.ipynb"
    nbformat.write(nb, path)
    r = vlic("notebooks", "check", path)
    assert r.returncode == 1 and "outputs" in r.stdout and "venv-kernel" in r.stdout
    assert vlic("notebooks", "strip", path).returncode == 0
    assert vlic("notebooks", "check", path).returncode == 0
    assert vlic("notebooks", "strip", path).stdout == ""  # nothing left to strip


def test_data_assemble_writes_the_packaged_photos_and_outside_the_repo_needs_a_folder(tmp_path):
    r = vlic("data", "assemble", tmp_path / "raw")
    assert r.returncode == 0 and "assembled" in r.stdout, r.stderr
    assert any((tmp_path / "raw").rglob("*.png"))
    r = vlic("data", "assemble", cwd=tmp_path)
    assert r.returncode == 2 and "not the compendium's root" in r.stderr and r.stderr.count("\n") == 1
