"""Did a rerun reproduce the committed study? Compare every number of two sets of results JSON files.

The study's results (``results/*.json``) hold its numbers and, beside them, measurements of the run itself (wall
seconds, waits, throughput) that no rerun repeats. :func:`compare` walks two JSON trees and reports each number that
differs, skipping keys that name a record of the run (:data:`VOLATILE`: times, call and cache-hit counts, the step
a run resumed from) and the numerics fingerprint. ``vlic results compare``
runs it for the working tree against the committed files (``git show REV:path``); CI runs it after the study.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

# keys (any depth) whose values are records of the run, not results of the study: times, how many model calls this
# run made and how many the cache answered (the persistent verdict cache answers the rest, so a warm cache makes
# fewer), and the step a run resumed from (a resumed run computes the same numbers as an uninterrupted one)
VOLATILE = re.compile(r"(second|seconds|_s$|_s_per_|time|wait|elapsed|throughput|per_s|rate_hz|speed|numerics|"
                      r"calls_this_run|calls_made|judge_calls|cache_hits|resumed_from)", re.I)


@dataclass
class Comparison:
    compared: int = 0
    differ: list[tuple[str, object, object]] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # present on one side only

    @property
    def identical(self) -> bool:
        return not self.differ and not self.missing


def _walk(obj, prefix: str = ""):
    if isinstance(obj, dict):
        for k, v in obj.items():
            if VOLATILE.search(str(k)):
                continue
            yield from _walk(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _walk(v, f"{prefix}[{i}]")
    else:
        yield prefix, obj


def compare(a, b, where: str = "", out: Comparison | None = None) -> Comparison:
    """Leaves of ``a`` vs ``b`` (numbers bit for bit, NaN equal to NaN; strings and booleans exactly)."""
    out = out or Comparison()
    la, lb = dict(_walk(a)), dict(_walk(b))
    for key in sorted(la.keys() | lb.keys()):
        name = f"{where}:{key}" if where else key
        if key not in la or key not in lb:
            out.missing.append(name)
            continue
        x, y = la[key], lb[key]
        out.compared += 1
        both_nan = isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y)
        if not both_nan and (x != y or type(x) is not type(y)):
            out.differ.append((name, x, y))
    return out


def committed_json(path: str | Path, rev: str = "HEAD", repo: str | Path = ".") -> object | None:
    """``path`` as committed at ``rev`` (None when git does not have it)."""
    res = subprocess.run(["git", "-C", str(repo), "show", f"{rev}:{Path(path).as_posix()}"],
                         capture_output=True, text=True)
    return json.loads(res.stdout) if res.returncode == 0 else None


def compare_with_committed(paths: list[str | Path], rev: str = "HEAD", repo: str | Path = ".") -> Comparison:
    out = Comparison()
    for p in paths:
        old = committed_json(p, rev, repo)
        new_path = Path(repo) / p
        if old is None or not new_path.is_file():
            out.missing.append(f"{p} (not in {rev})" if old is None else f"{p} (not in the working tree)")
            continue
        compare(old, json.loads(new_path.read_text()), where=str(p), out=out)
    return out
