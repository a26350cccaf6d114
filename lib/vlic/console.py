"""What every ``vlic`` subcommand shares: the one-line user error (exit code 2) and one-line JSON output.

A leaf module, so the subcommands of :mod:`vlic.codec.cli`, :mod:`vlic.judges.cli` and :mod:`vlic.cli` import it
without importing each other.
"""

from __future__ import annotations

import json


class UserError(Exception):
    """An error caused by the input or the environment, reported as one line with exit code 2."""


def print_json(obj) -> None:
    """One JSON line on stdout (for ``--json`` flags)."""
    print(json.dumps(obj, sort_keys=True))
