"""The import graph of ``vlic``: which modules each module (or a notebook's code) imports, lazy imports inside
functions included. Two users: ``tests/test_layers.py`` (dependencies point down, no cycle) and
:mod:`vlic.pipeline` (a chapter's stage depends on exactly the library files its notebook imports, transitively)."""

from __future__ import annotations

import ast
from pathlib import Path

LIB = Path(__file__).resolve().parents[1]


def modules(lib: str | Path = LIB) -> dict[str, Path]:
    """Every module of the ``vlic`` package under ``lib``: dotted name → file (a package is its ``__init__.py``)."""
    lib = Path(lib)
    out = {}
    for path in sorted((lib / "vlic").rglob("*.py")):
        parts = path.relative_to(lib).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def imported(source: str, package: str, known: dict[str, Path], filename: str = "<code>") -> set[str]:
    """The vlic modules that ``source`` imports anywhere (``from a import b`` counts as ``a.b`` when that is a module,
    else ``a``); ``package`` resolves relative imports."""
    found = set()
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([node.module] if node.module else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t.startswith("vlic"):
                found.add(t)
    return found


def graph(lib: str | Path = LIB) -> dict[str, set[str]]:
    """Module → the other vlic modules it imports."""
    known = modules(lib)
    return {name: imported(path.read_text(encoding="utf-8"), name if path.name == "__init__.py" else
                           name.rpartition(".")[0], known, str(path)) - {name}
            for name, path in known.items()}


def closure(roots: set[str], lib: str | Path = LIB) -> set[str]:
    """``roots`` and every vlic module they import, transitively, with the packages whose ``__init__`` runs on the way."""
    g, seen, todo = graph(lib), set(), list(roots)
    while todo:
        m = todo.pop()
        if m in seen or m not in g:
            continue
        seen.add(m)
        todo += list(g[m])
        parts = m.split(".")
        todo += [".".join(parts[:k]) for k in range(1, len(parts))]
    return seen


def notebook_imports(path: str | Path, lib: str | Path = LIB) -> set[str]:
    """The vlic modules a notebook's code cells import directly."""
    import nbformat

    nb = nbformat.read(str(path), as_version=4)
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code" and not c.source.lstrip().startswith(("%", "!")))
    return imported(code, "vlic", modules(lib), str(path))


def library_files(path: str | Path, root: str | Path = ".", lib: str | Path = LIB) -> list[str]:
    """The library files a notebook runs (its vlic imports, transitively), as paths relative to ``root``, sorted."""
    known = modules(lib)
    files = {known[m] for m in closure(notebook_imports(path, lib), lib)}
    return sorted(str(f.resolve().relative_to(Path(root).resolve())) for f in files)
