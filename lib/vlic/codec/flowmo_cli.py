"""``vlic flowmo check`` (and ``vlic models download``): FlowMo on the command line.

``vlic flowmo check DIR [--json]`` recomputes a golden fixture (:mod:`vlic.codec.flowmo_check`) and exits 0 iff every
error is ≤ 1e-4, 1 otherwise; an incomplete fixture or unreadable weights end as one line and exit code 2.
"""

from __future__ import annotations

import argparse


def _flowmo_check(args: argparse.Namespace) -> int:
    from vlic.cli import UserError, print_json
    from vlic.codec.flowmo import FlowMoWeightsError
    from vlic.codec.flowmo_check import FixtureError, check_fixture

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


def register(sub) -> None:
    """Add ``flowmo`` (and ``models``) to the ``vlic`` parser's subcommands."""
    from vlic.codec.flowmo_check import TOLERANCE

    fm = sub.add_parser("flowmo", help="the FlowMo-compatible autoencoder (the paper profile's base model)")
    fsub = fm.add_subparsers(dest="flowmo_command", required=True, metavar="ACTION")
    p = fsub.add_parser("check", help="recompute a golden FlowMo fixture; exit 0 iff every error ≤ 1e-4")
    p.add_argument("folder", metavar="DIR", help="fixture folder, e.g. tests/fixtures/flowmo")
    p.add_argument("--tolerance", type=float, default=TOLERANCE, help=f"largest accepted abs error (default {TOLERANCE:g})")
    p.add_argument("--json", action="store_true", help='one JSON line {"max_abs_error": {...}, "ok": …}')
    p.set_defaults(func=_flowmo_check)
