"""``vlic flowmo check`` and ``vlic models download``: FlowMo on the command line (``vlic compress | decompress``
load FlowMo checkpoints through :mod:`vlic.codec.families`).

``vlic flowmo check DIR [--json]`` recomputes a golden fixture (:mod:`vlic.codec.flowmo.check`) and exits 0 iff every
error is ≤ 1e-4, 1 otherwise; an incomplete fixture or unreadable weights end as one line and exit code 2.
``vlic models download flowmo_lo|flowmo_hi`` (:mod:`vlic.codec.flowmo.download`): offline → one line, exit code 2.
"""

from __future__ import annotations

import argparse

from vlic.console import UserError, print_json


def _flowmo_check(args: argparse.Namespace) -> int:
    from vlic.codec.flowmo.model import FlowMoWeightsError
    from vlic.codec.flowmo.check import FixtureError, check_fixture

    try:
        report = check_fixture(args.folder, args.tolerance)
    except (FixtureError, FlowMoWeightsError) as e:
        raise UserError(str(e)) from None
    if args.json:
        print_json(report)
    else:
        for name, err in report["max_abs_error"].items():
            print(f"{name:>22}: {err:.3g}" + ("" if err <= args.tolerance else f"  > {args.tolerance:g}"))
        print(f"{args.folder}: " + ("OK — this FlowMo computes what FlowMo's code computed" if report["ok"]
                                    else f"FAILED — some outputs differ by more than {args.tolerance:g}"))
    return 0 if report["ok"] else 1


def _models_download(args: argparse.Namespace) -> int:
    from vlic.codec.flowmo.download import download_model
    from vlic.fetch import DownloadError

    try:
        path, digest, recorded = download_model(args.name, args.dir, args.lock)
    except DownloadError as e:
        raise UserError(str(e)) from None
    if args.json:
        print_json({"model": args.name, "path": str(path), "sha256": digest, "lock": str(args.lock),
                    "recorded": recorded})
    else:
        how = f"recorded its sha256 in {args.lock} (commit it)" if recorded else f"sha256 matches {args.lock}"
        print(f"{path}: {digest[:12]}… — {how}; check the implementation with `vlic flowmo check tests/fixtures/flowmo`")
    return 0


def register(sub) -> None:
    """Add ``flowmo`` (and ``models``) to the ``vlic`` parser's subcommands."""
    from vlic.codec.flowmo.check import TOLERANCE

    fm = sub.add_parser("flowmo", help="the FlowMo-compatible autoencoder (the paper profile's base model)")
    fsub = fm.add_subparsers(dest="flowmo_command", required=True, metavar="ACTION")
    p = fsub.add_parser("check", help="recompute a golden FlowMo fixture; exit 0 iff every error ≤ 1e-4")
    p.add_argument("folder", metavar="DIR", help="fixture folder, e.g. tests/fixtures/flowmo")
    p.add_argument("--tolerance", type=float, default=TOLERANCE, help=f"largest accepted abs error (default {TOLERANCE:g})")
    p.add_argument("--json", action="store_true", help='one JSON line {"max_abs_error": {...}, "ok": …}')
    p.set_defaults(func=_flowmo_check)

    from vlic.codec.flowmo.download import DEFAULT_DIR, DEFAULT_LOCK, RELEASED_URLS

    models = sub.add_parser("models", help="released pre-trained models (needs network)")
    msub = models.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    p = msub.add_parser("download", help="download a released FlowMo checkpoint (resumable, sha256-locked)")
    p.add_argument("name", choices=sorted(RELEASED_URLS))
    p.add_argument("--dir", default=str(DEFAULT_DIR), help=f"where to put the .pth (default: {DEFAULT_DIR})")
    p.add_argument("--lock", default=str(DEFAULT_LOCK), help=f"sha256 lock file (default: {DEFAULT_LOCK})")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_models_download)
