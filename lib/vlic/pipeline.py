"""dvc.yaml, generated from ``pipeline.yaml``: one declaration per chapter, the stage commands and ``params:`` lists
written from it (``vlic pipeline write``; ``tests/test_notebooks.py`` checks dvc.yaml is exactly what it writes).

A chapter stage in ``pipeline.yaml`` names its notebook, the params.yaml ``sections`` its parameters come from, and
its data/model ``deps`` and its ``outs``/``metrics``/``plots`` as DVC spells them; the library files it runs are
derived from its imports. Every parameter of the notebook's ``parameters`` cell is
fed, in the cell's order, by

* ``feed: {name: ${section.key}}`` — another key of params.yaml (e.g. ``prepared_dir: ${data.out_dir}``), or
  ``feed: {name: value}`` — a fixed value (``results_dir: results``);
* otherwise the first of ``sections`` whose params.yaml section has a key of the same name (``dpo.steps``);
* ``keep_default: [name]`` — deliberately none: the notebook's own default (which the executed report shows).

A parameter fed by none of these is an error, as is a ``feed`` or ``keep_default`` the notebook does not define.
Each is passed as ``-y "name: ${section.key}"`` so papermill reads it as YAML: numbers and booleans keep their type
(DVC writes booleans as ``true``/``false``), and a parameter whose notebook default is a string is quoted
(``'${...}'``) so that ``0`` or ``yes`` stay strings. The values land in the executed report's injected-parameters
cell under ``reports/``. A stage with a ``cmd`` instead of a ``notebook`` is copied as it is.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from vlic.modules import library_files
from vlic.notebooks import parameter_defaults

HEADER = """\
# GENERATED from pipeline.yaml by `vlic pipeline write` — edit pipeline.yaml (or a notebook's parameters cell), then
# run `vlic pipeline write`; tests/test_notebooks.py fails while this file differs from what it writes.
# Each chapter stage runs one notebook with papermill; its parameters come from params.yaml through DVC templating,
# each passed with `-y "name: value"` so YAML types (ints, floats, booleans) arrive intact.
"""
REFERENCE = re.compile(r"^\$\{([\w.]+)\}$")
STAGE_KEYS = ("notebook", "sections", "feed", "keep_default", "deps", "outs", "metrics", "plots")


class PipelineError(ValueError):
    """pipeline.yaml does not describe a stage the notebooks and params.yaml can run."""


def _lookup(params: dict, dotted: str) -> Any:
    node: Any = params
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(dotted)
        node = node[part]
    return node


def feeds(stage: str, decl: dict, params: dict, root: Path) -> list[tuple[str, str, bool]]:
    """``(name, source, quoted)`` for every notebook parameter the stage passes: ``source`` is ``${section.key}`` or a
    fixed value; ``quoted`` when the notebook's default is a string."""
    unknown = sorted(set(decl) - set(STAGE_KEYS))
    if unknown:
        raise PipelineError(f"stage '{stage}': unknown keys {unknown} (known: {', '.join(STAGE_KEYS)})")
    try:
        defaults = parameter_defaults(root / decl["notebook"])
    except (OSError, ValueError) as e:
        raise PipelineError(f"stage '{stage}': {e}") from None
    if not defaults:
        raise PipelineError(f"stage '{stage}': {decl['notebook']} has no cell tagged 'parameters'")
    feed, keep = dict(decl.get("feed") or {}), list(decl.get("keep_default") or [])
    strays = sorted((set(feed) | set(keep)) - set(defaults))
    if strays:
        raise PipelineError(f"stage '{stage}': feed/keep_default name {strays}, which {decl['notebook']} does not define")
    out = []
    for name, default in defaults.items():
        if name in keep:
            continue
        if name in feed:
            source = str(feed[name])
        else:
            section = next((s for s in decl.get("sections", []) if name in (params.get(s) or {})), None)
            if section is None:
                raise PipelineError(
                    f"stage '{stage}': notebook parameter '{name}' is fed by nothing — add '{name}' to one of the "
                    f"params.yaml sections {decl.get('sections', [])}, map it under feed:, or list it under keep_default:")
            source = f"${{{section}.{name}}}"
        ref = REFERENCE.match(source)
        if ref:
            try:
                _lookup(params, ref.group(1))
            except KeyError:
                raise PipelineError(f"stage '{stage}': parameter '{name}' reads {source}, which params.yaml lacks") from None
        out.append((name, source, isinstance(default, str)))
    return out


def stage(name: str, decl: dict, params: dict, root: Path, chapter_deps: list[str] = ()) -> dict:
    """The DVC stage (a dict in dvc.yaml's shape) declared by ``decl``; a chapter depends on its notebook, then on
    ``chapter_deps`` and every library file its notebook imports (transitively, lazy imports included:
    :func:`vlic.modules.library_files` — never listed by hand), then on its own ``deps``, and writes its executed
    report."""
    if "notebook" not in decl:
        return dict(decl)
    nb = decl["notebook"]
    report = "reports/" + Path(nb).name
    fed = feeds(name, decl, params, root)
    declared_lib = [d for d in decl.get("deps", []) if isinstance(d, str) and d.startswith("lib/vlic")]
    if declared_lib:
        raise PipelineError(f"stage '{name}': library deps {declared_lib} are derived from {nb}'s imports — remove them "
                            "from pipeline.yaml")
    library = library_files(root / nb, root, root / "lib") if (root / "lib" / "vlic").is_dir() else []
    args = [f'-y "{n}: \'{s}\'"' if quoted else f'-y "{n}: {s}"' for n, s, quoted in fed]
    keys = [m.group(1) for _, s, _ in fed if (m := REFERENCE.match(s))]
    out: dict[str, Any] = {"cmd": "\n".join([f"papermill --log-output --cwd . {nb} {report}", *args]),
                           "deps": [nb, *dict.fromkeys([*chapter_deps, *library]), *decl.get("deps", [])],
                           "params": list(dict.fromkeys(keys)),
                           "outs": [report, *decl.get("outs", [])]}
    out.update({k: decl[k] for k in ("metrics", "plots") if decl.get(k)})
    return out


class _Dumper(yaml.SafeDumper):
    """Block lists indented under their key, as people write dvc.yaml."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        return super().increase_indent(flow, False)


def render(declaration: dict, params: dict, root: str | Path = ".") -> str:
    """dvc.yaml's text for ``declaration`` (a loaded pipeline.yaml) and ``params`` (a loaded params.yaml)."""
    root = Path(root)
    lines = [HEADER.rstrip("\n"), "stages:"]
    for name, decl in (declaration.get("stages") or {}).items():
        st = stage(name, decl, params, root, declaration.get("chapter_deps") or [])
        lines.append(f"  {name}:")
        cmd = st.pop("cmd")
        if "\n" in cmd:
            lines += ["    cmd: >-"] + [f"      {line}" for line in cmd.split("\n")]
        else:
            lines.append(f"    cmd: {cmd}")
        body = yaml.dump(st, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=120, allow_unicode=True)
        lines += ["    " + line for line in body.rstrip("\n").split("\n")]
    return "\n".join(lines) + "\n"


def load(root: str | Path = ".") -> tuple[dict, dict]:
    """``(pipeline.yaml, params.yaml)`` of the compendium at ``root``."""
    from vlic.config import load_params

    root = Path(root)
    path = root / "pipeline.yaml"
    if not path.is_file():
        raise PipelineError(f"'{path}' not found")
    return yaml.safe_load(path.read_text(encoding="utf-8")) or {}, load_params(root / "params.yaml")


def write(root: str | Path = ".", check: bool = False) -> bool:
    """Write ``root/dvc.yaml`` from ``root/pipeline.yaml`` (``check``: only compare); return whether it differed."""
    root = Path(root)
    text = render(*load(root), root=root)
    target = root / "dvc.yaml"
    changed = not target.is_file() or target.read_text(encoding="utf-8") != text
    if changed and not check:
        target.write_text(text, encoding="utf-8")
    return changed


def injected(dvc_yaml: str, params: dict) -> dict[str, dict[str, Any]]:
    """What papermill receives in every notebook stage of ``dvc_yaml`` (its text) under ``params``: the commands as DVC
    itself templates them (a scratch repository), their ``-y`` arguments read with papermill's own YAML loader."""
    import shlex
    import tempfile

    from dvc.repo import Repo
    from papermill.iorw import NoDatesSafeLoader

    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "dvc.yaml").write_text(dvc_yaml, encoding="utf-8")
        (Path(tmp) / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
        (Path(tmp) / ".dvc").mkdir()
        (Path(tmp) / ".dvc" / "config").write_text("[core]\n    no_scm = true\n", encoding="utf-8")
        repo = Repo(tmp)
        try:
            commands = {s.name: s.cmd for s in repo.index.stages}
        finally:
            repo.close()
    out = {}
    for name, cmd in commands.items():
        words = shlex.split(cmd)
        if words[0] == "papermill":
            values: dict[str, Any] = {}
            for flag, arg in zip(words, words[1:]):
                if flag == "-y":
                    values.update(yaml.load(arg, Loader=NoDatesSafeLoader) or {})
            out[name] = values
    return out


def differences(old: str, new: str, params: dict,
                fields: tuple[str, ...] = ("deps", "params", "outs", "metrics", "plots")) -> list[str]:
    """Where two dvc.yaml texts run different stages under ``params``: a notebook parameter injected with another
    name, value or Python type, or other entries of ``fields`` (``deps``, ``outs`` …, compared as sets)."""
    import json

    found = []
    a, b = injected(old, params), injected(new, params)
    for stage_name in sorted(set(a) | set(b)):
        x, y = a.get(stage_name), b.get(stage_name)
        if x is None or y is None:
            found.append(f"{stage_name}: only in the {'new' if x is None else 'old'} dvc.yaml")
            continue
        for key in sorted(set(x) | set(y)):
            vx, vy = x.get(key, "<not passed>"), y.get(key, "<not passed>")
            if vx != vy or type(vx) is not type(vy):
                found.append(f"{stage_name}: {key} = {vx!r} ({type(vx).__name__}) before, {vy!r} ({type(vy).__name__}) now")
    sa, sb = yaml.safe_load(old)["stages"], yaml.safe_load(new)["stages"]
    for stage_name in sorted(set(sa) & set(sb)):
        for field in fields:
            fx, fy = ({json.dumps(e, sort_keys=True) for e in (s[stage_name].get(field) or [])} for s in (sa, sb))
            if fx != fy:
                found.append(f"{stage_name}: {field} differ: before only {sorted(fx - fy)}, now only {sorted(fy - fx)}")
    return found
