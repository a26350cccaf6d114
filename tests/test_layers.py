"""The library's dependencies point down: a module imports only from its own package or from a lower layer, lazy
(function-level) imports included, and no two modules import each other, directly or around a cycle."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from vlic.modules import graph, imported, modules

LIB = Path(__file__).resolve().parents[1] / "lib"

# Lowest first. A module may import its own package and anything of a strictly lower layer; two packages of one layer
# must not import each other. A new top-level module or package needs a line here.
LAYERS = [
    {"vlic", "console", "numerics", "files", "fetch", "processes", "config", "stats", "viz", "modules"},
    {"images", "notebooks"},
    {"codec", "perception"},
    {"data"},
    {"judges"},
    {"eval"},
    {"lowlevel", "machine"},
    {"training"},
    {"widgets", "reproduce", "pipeline", "lab", "study_summary"},
    {"cli", "chapters"},
]
RANK = {name: i for i, layer in enumerate(LAYERS) for name in layer}


def _top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "vlic"


MODULES = modules(LIB)
GRAPH = graph(LIB)


def test_every_package_has_a_layer():
    missing = sorted({_top(m) for m in MODULES} - set(RANK))
    assert not missing, f"add these to LAYERS in {Path(__file__).name}: {missing}"


def test_imports_point_down():
    wrong = [f"{m} imports {d}" for m, deps in sorted(GRAPH.items()) for d in sorted(deps)
             if _top(m) != _top(d) and RANK.get(_top(d), 99) >= RANK.get(_top(m), -1)]
    assert not wrong, "imports that point up or sideways:\n" + "\n".join(wrong)


def test_no_import_cycle():
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


@pytest.mark.parametrize("layer", ["data", "codec", "judges", "perception"])
def test_lower_layers_import_no_evaluation_or_training(layer):
    wrong = [f"{m} imports {d}" for m, deps in GRAPH.items() if _top(m) == layer for d in deps
             if _top(d) in {"eval", "training", "machine", "lowlevel", "cli"}]
    assert not wrong, wrong


def test_the_checker_sees_lazy_and_relative_imports(tmp_path):
    pkg = tmp_path / "vlic" / "codec"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "x.py").write_text("def f():\n    from vlic.eval.metrics import psnr\n    from . import y\n")
    (pkg / "y.py").write_text("")
    mods = {"vlic.codec": pkg / "__init__.py", "vlic.codec.x": pkg / "x.py", "vlic.codec.y": pkg / "y.py",
            "vlic.eval.metrics": tmp_path / "m.py"}
    assert imported((pkg / "x.py").read_text(), "vlic.codec", mods) == {"vlic.eval.metrics", "vlic.codec.y"}


def test_every_vlic_import_names_something_that_exists():
    """Lazy imports included: a renamed module or function must not survive in an import inside a function body."""
    import importlib
    import importlib.util

    missing = []
    for name, path in sorted(MODULES.items()):
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.ImportFrom):
                continue
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([node.module] if node.module else []))
            if not base.startswith("vlic"):
                continue
            if base not in MODULES:
                missing.append(f"{name}:{node.lineno} imports from missing module {base}")
                continue
            module = importlib.import_module(base)
            for alias in node.names:
                if not hasattr(module, alias.name) and importlib.util.find_spec(f"{base}.{alias.name}") is None:
                    missing.append(f"{name}:{node.lineno} imports {alias.name} from {base}, which has no such name")
    assert not missing, "\n".join(missing)
