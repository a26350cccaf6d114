"""Issue #18, items 7–9 (and the judge parts of 10): the HTTP judge against a hostile OpenAI-compatible server on
127.0.0.1 — slow bytes, silence, Retry-After: 3600, HTTP 500 forever, malformed answers, a server echoing the
credentials it receives. Every loop on either side is bounded."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from PIL import Image

from vlic.cli import main
from vlic.judges.base import JudgeUnavailable, Query
from vlic.judges.cache import VerdictCache
from vlic.judges.ensemble import run_judge
from vlic.judges.vlm_api import OpenAICompatibleJudge, redact

CANARY = "sk-canary-7f3a9c2e5b1d4f60a8e2"


def _completion(text: str) -> bytes:
    return json.dumps({"id": "x", "object": "chat.completion", "created": 0, "model": "m",
                       "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                    "finish_reason": "stop"}],
                       "usage": {"prompt_tokens": 10, "completion_tokens": 5}}).encode()


class Hostile:
    """A loopback server whose every reply is chosen by ``behave(n, handler) -> (status, headers, body)`` or done
    by the behaviour itself (slow bytes, silence). Handler threads never outlive ``close()`` by more than 0.5 s."""

    def __init__(self, behave):
        self.behave, self.requests, self.stop = behave, 0, threading.Event()
        self.lock = threading.Lock()
        host = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body leave at once (no 40 ms delayed-ACK stall per request)

            def log_message(self, *a):
                pass

            def do_POST(self):  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with host.lock:
                    host.requests += 1
                    n = host.requests
                out = host.behave(n, self)
                if out is None:
                    return
                status, headers, body = out
                self.send_response(status)
                for k, v in {"Content-Type": "application/json", "Content-Length": str(len(body)), **headers}.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

        class S(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 64

        self.server = S(("127.0.0.1", 0), H)
        self.server.handle_error = lambda *a: None
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()


def slow_bytes(host: Hostile):
    def behave(n, h):
        body = _completion("RATING: -3")
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        for i in range(min(len(body), 100)):  # one byte every 0.2 s: every single read is quick
            if host.stop.wait(0.2):
                return None
            try:
                h.wfile.write(body[i : i + 1])
                h.wfile.flush()
            except OSError:
                return None
        return None
    return behave


_SILENCE = threading.Event()


def _silent(h):
    """Read the request, never answer (bounded: 3 s, the client gives up first)."""
    _SILENCE.wait(3)
    return None


def _images(n: int = 1):
    rng = np.random.default_rng(0)
    refs = [rng.integers(0, 256, (16, 16, 3), dtype=np.uint8) for _ in range(n)]
    return refs, [np.clip(r.astype(int) + 2, 0, 255).astype(np.uint8) for r in refs], \
        [np.clip(r.astype(int) + 40, 0, 255).astype(np.uint8) for r in refs]


def _judge(url: str, **kw) -> OpenAICompatibleJudge:
    kw.setdefault("backoff_s", 0.01)
    return OpenAICompatibleJudge("m", url, **kw)


# --- 7. bounded time ------------------------------------------------------------------------------------------------

def test_slow_bytes_are_cut_by_the_request_deadline():
    refs, a, b = _images()
    host = Hostile(lambda n, h: None)
    host.behave = slow_bytes(host)
    with host:
        t0 = time.perf_counter()
        v = _judge(host.url, timeout_s=1.0, max_retries=1, retry_budget_s=10).judge(refs[0], a[0], b[0])
        took = time.perf_counter() - t0
    assert v.rating is None and v.failure_kind == "transport" and "timed out" in v.failure
    assert took < 5 and host.requests == 2


def test_a_silent_server_is_bounded_by_the_retry_budget():
    refs, a, b = _images()
    with Hostile(lambda n, h: _silent(h)) as host:
        t0 = time.perf_counter()
        v = _judge(host.url, timeout_s=0.5, max_retries=50, retry_budget_s=1.6).judge(refs[0], a[0], b[0])
        took = time.perf_counter() - t0
    assert v.failure_kind == "transport" and "retry budget" in v.failure
    assert took < 4 and host.requests <= 4


def test_retry_after_3600_ends_the_query_at_once():
    refs, a, b = _images()
    with Hostile(lambda n, h: (429, {"Retry-After": "3600"}, b'{"error": {"message": "slow down"}}')) as host:
        t0 = time.perf_counter()
        v = _judge(host.url, retry_budget_s=60).judge(refs[0], a[0], b[0])
        took = time.perf_counter() - t0
    assert v.failure_kind == "transport" and "asks to wait 3600 s" in v.failure and "retry budget" in v.failure
    assert took < 3 and host.requests == 1


def test_http_500_forever_opens_the_circuit_breaker(tmp_path):
    refs, a, b = _images(40)
    with Hostile(lambda n, h: (500, {"Retry-After": "0"}, b'{"error": {"message": "boom"}}')) as host:
        t0 = time.perf_counter()
        with pytest.raises(JudgeUnavailable, match=r"failed 10 requests in a row .*circuit breaker"):
            run_judge(_judge(host.url, concurrency=2, breaker_failures=10), refs, a, b, seeds=1, orders=1,
                      cache=VerdictCache(tmp_path / "v.sqlite"))
        took = time.perf_counter() - t0
    assert host.requests <= 12 and took < 10  # was: 40 queries → 240 requests, 130 s


def test_limits_are_parameters_and_flags(repo):
    import yaml

    from vlic.judges.factory import VLMSettings, make_judge

    for profile in ("params.yaml", "params/paper.yaml"):
        judges = yaml.safe_load((repo / profile).read_text())["judges"]
        assert {"vlm_timeout_s", "vlm_retry_budget_s", "vlm_breaker_failures"} <= set(judges), profile
    j = make_judge("vlm", VLMSettings(backend="api", model="m", base_url="http://127.0.0.1:9/v1", timeout_s=7,
                                       max_retries=2, retry_budget_s=30, breaker_failures=4))
    assert (j.timeout_s, j.max_retries, j.retry_budget_s, j.breaker_failures) == (7, 2, 30, 4)


# --- 8. malformed answers --------------------------------------------------------------------------------------------

MALFORMED = [
    (200, b'{"choices": [{"message": {"content": "RATING: -2"'),                     # truncated JSON
    (200, _completion("RATING: " + "9" * 5000)),                                    # a 5000-digit rating
    (200, b"<html><body>Service temporarily unavailable</body></html>"),           # HTML with status 200
    (200, b'{"choices": "nope"}'),
    (200, b'{"choices": []}'),
    (200, b'{"choices": [{"message": {"content": 5}}]}'),
    (200, b"[1, 2, 3]"),
    (200, _completion("A is closer.\nRATING: -4")),                                 # a good one
]


def test_each_malformed_response_is_one_recorded_failure_and_the_run_goes_on(tmp_path):
    refs, a, b = _images(len(MALFORMED))
    cache = VerdictCache(tmp_path / "v.sqlite")
    with Hostile(lambda n, h: (MALFORMED[(n - 1) % len(MALFORMED)][0], {}, MALFORMED[(n - 1) % len(MALFORMED)][1])) as host:
        run = run_judge(_judge(host.url, concurrency=1), refs, a, b, seeds=1, orders=1, cache=cache)
        assert host.requests == len(MALFORMED)
    kinds = [k if isinstance(k, str) else None for k in run.raw["failure_kind"]]
    assert kinds == ["transport", "parse", "transport", "transport", "transport", "transport", "transport", None]
    assert run.raw["rating"].tolist()[-1] == -4
    assert all("malformed response" in f for f, k in zip(run.raw["failure"], kinds) if k == "transport")
    assert len(cache) == 2  # the answer with a 5000-digit rating and the good one; empty choices is not kept for good


def test_a_huge_answer_is_stored_once_and_capped(tmp_path):
    refs, a, b = _images()
    cache_path = tmp_path / "v.sqlite"
    huge = "A is blurrier. " * 350_000 + "\nRATING: 2"  # ≈ 5 MB
    with Hostile(lambda n, h: (200, {}, _completion(huge))) as host:
        run = run_judge(_judge(host.url), refs, a, b, seeds=1, orders=2, cache=VerdictCache(cache_path))
    assert set(run.raw["rating"]) == {2}  # read from the whole answer, not the stored part
    size = sum(p.stat().st_size for p in tmp_path.iterdir() if p.name.startswith("v.sqlite"))
    assert size < 500_000, size  # was ≈ 10.5 MB per verdict (the answer stored as text and again as rationale)
    assert len(run.raw["text"].iloc[0]) < 25_000 and "more characters not stored" in run.raw["text"].iloc[0]


# --- 9. secrets ------------------------------------------------------------------------------------------------------

def _echo_auth(n, h):
    auth = h.headers.get("Authorization", "")
    if n % 2:
        return 400, {}, json.dumps({"error": {"message": f"bad request; you sent Authorization: {auth}"}}).encode()
    return 200, {}, _completion(f"Your header was {auth}. No rating.")


def test_a_canary_key_never_appears_in_output_failures_or_the_cache(tmp_path, monkeypatch, capsys, caplog):
    monkeypatch.setenv("VLIC_CANARY_KEY", CANARY)
    img = tmp_path / "r.png"
    Image.fromarray(_images()[0][0]).save(img)
    cache = tmp_path / "v.sqlite"
    with Hostile(_echo_auth) as host:
        code = main(["judge", str(img), str(img), str(img), "--judge", "api", "--base-url", host.url, "--model", "m",
                     "--api-key-env", "VLIC_CANARY_KEY", "--seeds", "2", "--cache", str(cache)])
        out = capsys.readouterr()
        code_json = main(["judge", str(img), str(img), str(img), "--judge", "api", "--base-url", host.url, "--model",
                          "m", "--api-key-env", "VLIC_CANARY_KEY", "--seeds", "2", "--json", "--no-cache"])
        out_json = capsys.readouterr()
        assert host.requests >= 4
    assert code in (1, 2) and code_json in (1, 2)
    text = out.out + out.err + out_json.out + out_json.err + caplog.text
    assert "Bearer ***" in text or "***" in text  # the echo was there, redacted
    assert CANARY not in text and CANARY[3:] not in text
    for p in tmp_path.iterdir():
        assert CANARY.encode() not in p.read_bytes(), p


def test_credentials_never_reach_the_http_logs(caplog, monkeypatch):
    import logging

    monkeypatch.setenv("VLIC_CANARY_KEY", CANARY)
    refs, a, b = _images()
    caplog.set_level(logging.DEBUG)
    with Hostile(_echo_auth) as host:
        url = host.url.replace("http://", f"http://user:{CANARY}@")
        _judge(url, api_key_env="VLIC_CANARY_KEY", concurrency=1).judge_many([Query(refs[0], a[0], b[0], seed=s)
                                                                               for s in range(3)])
    assert caplog.records and CANARY not in caplog.text


def test_credentials_in_the_base_url_are_not_printed(tmp_path, capsys):
    img = tmp_path / "r.png"
    Image.fromarray(_images()[0][0]).save(img)
    code = main(["judge", str(img), str(img), str(img), "--judge", "api", "--base-url",
                 f"http://user:{CANARY}@127.0.0.1:9/v1", "--model", "m", "--no-cache"])
    out = capsys.readouterr()
    assert code == 2 and "cannot reach" in out.err
    assert CANARY not in out.out + out.err and "user:***@" not in out.err and "***@127.0.0.1" in out.err


def test_redact_rules():
    s = (f"Authorization: Bearer {CANARY} url https://bob:hunter2pass@api.example.com/v1?key=AIzaSyA1234567890abcdef "
         f"and sk-proj-ABCDEFGHIJKLMNOPQRST and basic dXNlcjpwYXNzd29yZA==")
    r = redact(s, ("hunter2pass",))
    for secret in (CANARY, "hunter2pass", "AIzaSyA1234567890abcdef", "sk-proj-ABCDEFGHIJKLMNOPQRST", "dXNlcjpwYXNzd29yZA=="):
        assert secret not in r, r
    assert "api.example.com/v1" in r and redact("RATING: -3, A is sharper") == "RATING: -3, A is sharper"


# --- 10. the judge's cache by default ---------------------------------------------------------------------------------

def test_vlic_judge_uses_the_study_cache_or_says_it_does_not(tmp_path, monkeypatch, capsys):
    img = tmp_path / "r.png"
    Image.fromarray(_images()[0][0]).save(img)
    with Hostile(lambda n, h: (200, {}, _completion("RATING: 0"))) as host:
        args = ["judge", str(img), str(img), str(img), "--judge", "api", "--base-url", host.url, "--model", "m",
                "--seeds", "1", "--orders", "1"]
        monkeypatch.chdir(tmp_path)
        assert main(args) == 0
        assert "not cached" in capsys.readouterr().err
        (tmp_path / "params.yaml").write_text("judges:\n  cache: cache/study.sqlite\n")
        assert main(args) == 0 and main(args) == 0
        assert "not cached" not in capsys.readouterr().err
        assert host.requests == 2  # the third call was answered by the study's cache
    assert (tmp_path / "cache" / "study.sqlite").is_file()


# --- issue #25, items 3–6: bounded memory per response, no partial key leaks, one bad answer is one failure ---------

def _gzip_bomb(unpacked: int) -> bytes:
    import gzip

    return gzip.compress(b"\0" * unpacked, compresslevel=9)


def test_a_gzip_bomb_is_cut_at_the_cap_while_it_is_unpacked():
    import tracemalloc

    refs, a, b = _images()
    bomb = _gzip_bomb(64 * 2**20)  # 64 KiB on the wire, 64 MiB unpacked
    with Hostile(lambda n, h: (200, {"Content-Encoding": "gzip"}, bomb)) as host:
        judge = _judge(host.url, max_response_bytes=2**20, max_retries=0)
        judge.judge(refs[0], a[0], b[0])  # first call: the HTTP client's imports, not measured
        tracemalloc.start()
        try:
            v = judge.judge(refs[0], a[0], b[0])
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert v.rating is None and v.failure_kind == "transport", v.failure
    assert "malformed response" in v.failure and f"more than {2**20} bytes" in v.failure
    assert peak < 16 * 2**20, peak  # was: the whole body unpacked and joined (≥ 128 MiB here, 6 GiB for 6 MB on the wire)


def test_an_endless_body_is_cut_at_the_cap():
    refs, a, b = _images()
    sent = {"bytes": 0}

    def endless(n, h):
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        chunk = b"[" * 65536
        for _ in range(4096):  # bounded: 256 MiB, or until the client hangs up or the test ends
            if host.stop.is_set():
                return
            try:
                h.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                h.wfile.flush()
            except OSError:
                return
            sent["bytes"] += len(chunk)
        return

    host = Hostile(endless)
    with host:
        v = _judge(host.url, max_response_bytes=2**20, timeout_s=20, max_retries=0).judge(refs[0], a[0], b[0])
    assert v.failure_kind == "transport" and f"more than {2**20} bytes" in v.failure, v.failure
    assert v.latency_s < 5 and sent["bytes"] < 64 * 2**20  # was: read until the 20 s deadline, growing all along


def test_a_key_straddling_the_cut_of_an_error_text_never_leaks(monkeypatch):
    import base64
    from urllib.parse import quote

    monkeypatch.setenv("VLIC_CANARY_KEY", CANARY)
    key = CANARY
    windows = {key[i:i + 6] for i in range(len(key) - 5)}

    def echo_at_offset(n, h):  # odd requests: a 400 echoing the key after (n - 1) // 2 characters; even: an answer
        if n % 2 == 0:
            return 200, {}, _completion("RATING: 1")
        filler = "." * ((n - 1) // 2)
        return 400, {}, json.dumps({"error": {"message": f"{filler}{h.headers.get('Authorization', '')[7:]}"}}).encode()

    refs, a, b = _images()
    offsets = 240  # the key starts at every offset, before, across and after the 200-character cut
    with Hostile(echo_at_offset) as host:
        verdicts = _judge(host.url, api_key_env="VLIC_CANARY_KEY", concurrency=1).judge_many(
            [Query(refs[0], a[0], b[0], seed=s) for s in range(2 * offsets)])
        assert host.requests == 2 * offsets
    rejections = [v.failure for v in verdicts if v.failure_kind == "error"]
    assert len(rejections) == offsets and all("HTTP 400" in f for f in rejections)
    leaks = [(i, f) for i, f in enumerate(rejections) if any(w in f for w in windows)]
    assert not leaks, leaks[:2]
    # the key's other spellings are secrets too
    forms = (key.lower(), key.upper(), base64.b64encode(key.encode()).decode(), quote(key, safe=""),
             base64.urlsafe_b64encode(b"user:" + key.encode()).decode())
    text = redact(" | ".join(forms), (key,))
    assert all(f not in text for f in forms) and not any(w in text for w in windows), text


def test_deeply_nested_json_and_an_exponent_rating_are_recorded_failures(tmp_path):
    from vlic.judges.prompt import parse_rating

    answers = [(200, b"[" * 100_000), (200, _completion("RATING: 1e5000")), (200, _completion("RATING: -2"))]
    refs, a, b = _images(3)
    cache = VerdictCache(tmp_path / "v.sqlite")
    with Hostile(lambda n, h: (answers[n - 1][0], {}, answers[n - 1][1])) as host:
        run = run_judge(_judge(host.url, concurrency=1), refs, a, b, seeds=1, orders=1, cache=cache)
    kinds = [k if isinstance(k, str) else None for k in run.raw["failure_kind"]]
    assert kinds == ["transport", "parse", None], run.raw["failure"].tolist()
    assert "nested too deeply" in run.raw["failure"].iloc[0]
    assert np.isnan(run.raw["rating"].iloc[1]) and run.raw["rating"].iloc[2] == -2
    assert parse_rating("RATING: 1e5000") is None and parse_rating("RATING: 2E+1") is None
    assert parse_rating("RATING: 3") == 3 and parse_rating("RATING: -4e") == -4


def test_judge_help_states_the_worst_case_time_and_memory(capsys):
    from vlic.judges.factory import VLMSettings
    from vlic.judges.vlm_api import MAX_RESPONSE_BYTES, worst_case_seconds

    d = VLMSettings()
    assert worst_case_seconds(d.timeout_s, d.max_retries, d.retry_budget_s) == 600
    assert worst_case_seconds(10, 2, 600, backoff_s=1.0) == 10 * 3 + 1 + 2
    with pytest.raises(SystemExit):
        main(["judge", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "at most 600 s per query" in text and "120 s per request" in text
    assert f"{MAX_RESPONSE_BYTES // 2**20} MiB" in text
    # and the bound holds: a silent server, 3 attempts of 0.3 s (the query's own clock: not the client's imports)
    refs, a2, b2 = _images()
    with Hostile(lambda n, h: _silent(h)) as host:
        v = _judge(host.url, timeout_s=0.3, max_retries=2, retry_budget_s=100).judge(refs[0], a2[0], b2[0])
        assert host.requests == 3
    assert v.failure_kind == "transport" and 0.9 <= v.latency_s <= worst_case_seconds(0.3, 2, 100, backoff_s=0.01) + 0.3
