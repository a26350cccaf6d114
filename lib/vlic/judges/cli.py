"""``vlic judge REF A B --judge NAME``: one 2AFC verdict from the command line (registered by :mod:`vlic.cli`)."""

from __future__ import annotations

import argparse

from vlic.console import UserError, print_json


def limits_text(timeout_s: float, max_retries: int, retry_budget_s: float) -> str:
    """What the HTTP judge's limits allow at most, in words (``vlic judge --help``, docs/limits.md)."""
    from vlic.judges.vlm_api import MAX_RESPONSE_BYTES, worst_case_seconds

    worst = worst_case_seconds(timeout_s, max_retries, retry_budget_s)
    return (f"api limits: a stalled or hostile server holds one query at most {worst:g} s per query (the smaller of "
            f"--retry-budget {retry_budget_s:g} s and {max_retries + 1} attempts of --timeout {timeout_s:g} s plus "
            f"backoff) and one request at most {timeout_s:g} s per request and "
            f"{MAX_RESPONSE_BYTES // 2**20} MiB of decoded body (about three times that in memory: the body, its joined copy, the parsed answer).")


def register(subparsers) -> None:
    from vlic.judges.factory import VLMSettings
    from vlic.judges.metric import METRICS

    d = VLMSettings()
    p = subparsers.add_parser(
        "judge",
        help="which of two images is closer to a reference, by a metric or a VLM (both orders, n seeds)",
        description=(
            "Judge whether A or B is closer to REF. NAME is a metric (" + ", ".join(METRICS) + ") or a VLM backend: "
            "'api' (any OpenAI-compatible server: --base-url, --model, --api-key-env) or 'local' (transformers; "
            "--model is a hub id in the local cache or a folder). Verdict V = sum over seeds of sign(r_AB - r_BA); "
            "negative = A closer. With the defaults, " + limits_text(d.timeout_s, d.max_retries, d.retry_budget_s)
        ),
    )
    p.add_argument("ref")
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--judge", required=True, metavar="NAME")
    p.add_argument("--base-url", default="", help="OpenAI-compatible base URL, e.g. http://localhost:8000/v1")
    p.add_argument("--model", default="", help="model name (api) or hub id / folder (local)")
    p.add_argument("--api-key-env", default="", metavar="VAR", help="NAME of the environment variable holding the key")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--orders", type=int, choices=(1, 2), default=2)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--min-side", type=int, default=0, help="upscale small images (nearest) to this short side for a VLM")
    p.add_argument("--no-send-seed", action="store_true", help="api: do not send the seed (servers that reject it)")
    p.add_argument("--timeout", type=float, default=d.timeout_s, metavar="S",
                   help=f"api: deadline of one request (default: {d.timeout_s:g})")
    p.add_argument("--max-retries", type=int, default=d.max_retries,
                   help=f"api: retries after HTTP 429/5xx or a timeout (default: {d.max_retries})")
    p.add_argument("--retry-budget", type=float, default=d.retry_budget_s, metavar="S",
                   help=f"api: time one query may take in all, retries included (default: {d.retry_budget_s:g})")
    p.add_argument("--breaker-failures", type=int, default=d.breaker_failures, metavar="N",
                   help=f"api: stop after N failed requests in a row (default: {d.breaker_failures})")
    p.add_argument("--cache", default=None, metavar="FILE.sqlite",
                   help="persistent verdict cache (default for api/local: the study's judges.cache from ./params.yaml "
                        "when run in the compendium, else none — said on stderr; metrics: none)")
    p.add_argument("--no-cache", action="store_true", help="do not read or write any verdict cache")
    p.add_argument("--json", action="store_true", help="print one JSON line")
    p.set_defaults(func=_judge)


def default_cache(params: str = "params.yaml") -> str | None:
    """The study's verdict cache (``judges.cache`` of ``params``) when ``params`` exists here, else None."""
    from pathlib import Path

    from vlic.config import ParamsError, load_params

    if not Path(params).is_file():
        return None
    try:
        value = (load_params(params).get("judges") or {}).get("cache")
    except (ParamsError, UnicodeDecodeError, OSError, AttributeError):
        return None
    return str(value) if value else None


def _judge(args: argparse.Namespace) -> int:
    from vlic.images import ImageReadError, load_rgb
    from vlic.judges.base import JudgeError
    from vlic.judges.cache import VerdictCache
    from vlic.judges.ensemble import run_judge
    from vlic.judges.factory import VLMSettings, make_judge
    from vlic.judges.vlm_api import redact
    import os
    import sys

    secrets = (os.environ.get(args.api_key_env, ""),) if args.api_key_env else ()

    try:
        ref, a, b = (load_rgb(p).pixels for p in (args.ref, args.a, args.b))
    except ImageReadError as e:
        raise UserError(str(e)) from None
    if not (ref.shape == a.shape == b.shape):
        raise UserError(f"images differ in size: {args.ref} {ref.shape[1]}×{ref.shape[0]}, {args.a} {a.shape[1]}×{a.shape[0]}, "
                        f"{args.b} {b.shape[1]}×{b.shape[0]}; a 2AFC judgment needs three images of one size")
    name = args.judge
    if name in ("api", "local"):
        vlm = VLMSettings(backend=name, model=args.model, base_url=args.base_url, api_key_env=args.api_key_env,
                          temperature=args.temperature, min_side=args.min_side,
                          send_seed=not args.no_send_seed, timeout_s=args.timeout, max_retries=args.max_retries,
                          retry_budget_s=args.retry_budget, breaker_failures=args.breaker_failures)
        name = "vlm"
    else:
        vlm = None
    # a model call costs money and time: VLM verdicts go to the study's cache unless told otherwise (metrics are cheap)
    paid = args.judge in ("api", "local")
    cache_path = None if args.no_cache else (args.cache if args.cache is not None else
                                             (default_cache() if paid else None))
    if paid and not cache_path:
        print("vlic judge: verdicts are not cached (no --cache and no params.yaml here); every call asks the judge "
              "again", file=sys.stderr)
    try:
        if args.seeds < 1:
            raise JudgeError(f"--seeds must be ≥ 1, got {args.seeds}")
        judge = make_judge(name, vlm)
        run = run_judge(judge, [ref], [a], [b], seeds=args.seeds, orders=args.orders, cache=VerdictCache(cache_path or None))
    except (JudgeError, ValueError, RuntimeError, OSError) as e:
        raise UserError(redact(str(e), secrets)) from None
    pair = run.pairs().iloc[0]
    verdict = None if pair["verdict"] != pair["verdict"] else int(pair["verdict"])
    side = None if verdict is None else ("A" if verdict < 0 else "B" if verdict > 0 else "tie")
    answers = [
        {"seed": int(r.seed), "order": "AB" if r.order == 0 else "BA",
         "rating": None if r.rating != r.rating else int(r.rating),
         "failure": redact(r.failure, secrets) if isinstance(r.failure, str) else None, "cached": bool(r.cached)}
        for r in run.raw.itertuples()
    ]
    if args.json:
        print_json({"judge": args.judge, "verdict": verdict, "closer": side, "seeds": run.n_seeds, "orders": run.n_orders,
                    "answers": answers, "calls": run.calls, "cache": cache_path,
                    "failure": redact(pair["failure"], secrets) if isinstance(pair["failure"], str) else None})
    else:
        if verdict is None:
            print(f"{args.judge}: no verdict — {redact(str(pair['failure']), secrets)}")
        else:
            what = {"A": f"A ({args.a}) is closer", "B": f"B ({args.b}) is closer", "tie": "no preference"}[side]
            print(f"{args.judge}: {what} — verdict {verdict:+d} over {run.n_seeds} seed(s) × {run.n_orders} order(s)")
        for x in answers:
            print(f"  seed {x['seed']} order {x['order']}: " + (f"RATING {x['rating']:+d}" if x["rating"] is not None else f"failed: {x['failure']}"))
    return 0 if verdict is not None else 1
