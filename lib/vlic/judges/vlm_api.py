"""A VLM judge behind any OpenAI-compatible chat-completions server (Gemini's OpenAI endpoint, vLLM, Ollama,
``transformers serve``), through the ``openai`` SDK.

Images travel as PNG data URLs. Requests run asynchronously with at most ``concurrency`` in flight.

Time is bounded three ways. Each request has a **deadline** (``timeout_s``, the whole request — a server trickling
one byte at a time cannot hold it longer). HTTP 429, 5xx and timeouts are retried with exponential backoff
(honouring ``Retry-After`` only while it fits) up to ``max_retries`` times and within a **retry budget** per query
(``retry_budget_s``, backoff included), then recorded as a ``transport`` failure (not cached; a rerun asks again).
A **circuit breaker** stops the run with one :class:`~vlic.judges.base.JudgeUnavailable` when ``breaker_failures``
requests in a row failed (timeouts, 5xx, malformed answers) — a dead or broken server costs a bounded number of
requests, not hours. A missing key, a rejected key, an unknown model, a server that cannot be reached or one that
refuses (HTTP 4xx) each of the first requests also raise one :class:`JudgeUnavailable` naming the URL — verdicts
already received have been handed to ``on_verdict`` (the cache) by then.

Memory is bounded too: every response body (answers and error pages alike) is capped at ``max_response_bytes``
(:data:`MAX_RESPONSE_BYTES`) **as it arrives, after decoding** (:func:`capped_transport` unpacks gzip/deflate itself,
a chunk at a time) — a gzip bomb or a body that never ends stops at the cap. So one request costs at most
``timeout_s`` seconds and about three times the cap in memory (the body, its joined copy, the parsed answer); one query at most :func:`worst_case_seconds`.

A malformed response (not JSON, JSON nested too deeply, HTML with status 200, ``choices`` missing, empty or of the
wrong type, a body over the cap) is one recorded ``transport`` failure of that query — never cached, never a
traceback, the run goes on. Stored answers are capped at :data:`MAX_ANSWER_CHARS`.

The key is read from the environment variable *named* in the parameters and never enters the identity or the cache;
:func:`redact` removes it — in any letter case, base64- or URL-encoded — and any bearer token or ``user:password@``
in a URL from every message, failure reason and stored text, always before a text is cut.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import random
import re
import threading
import time
import zlib
from typing import Any, Sequence
from urllib.parse import quote, quote_plus

from vlic.judges.base import JudgeBase, JudgeError, JudgeUnavailable, OnVerdict, Query, Verdict
from vlic.judges.prompt import openai_messages, parse_rating, prompt_version, rationale

NO_KEY = "not-needed"  # placeholder for local servers that ignore the key
REJECTIONS_BEFORE_GIVING_UP = 5  # HTTP 4xx on every one of the first requests: stop with one error, not thousands
MAX_ANSWER_CHARS = 20_000  # longer answers are stored cut (with a note); the rating is read from the whole answer
MAX_RESPONSE_BYTES = 8 * 2**20  # a larger response body (after decoding) is a malformed response, cut as it arrives
MAX_ERROR_CHARS = 200  # of a rejection's error text kept in the failure reason (after redaction)

_BEARER = re.compile(r"(?i)\b(bearer|basic|token)(\s+|%20)[A-Za-z0-9._~+/=-]{4,}")
_URL_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^\s/@:]*:[^\s/@]*@")
_KEY_PARAM = re.compile(r"(?i)\b(api[_-]?key|key|token|access_token)=([^\s&\"']{4,})")
_KEY_LIKE = re.compile(r"\b(sk|rk|pk|AIza|ghp|gho|xox[abp])[-_A-Za-z0-9]{12,}")


def _spellings(secret: str) -> list[str]:
    """The forms in which ``secret`` may come back: itself, URL-encoded, and its base64 at each of the three byte
    alignments (the part that depends on the secret alone), longest first."""
    forms = {secret, quote(secret, safe=""), quote_plus(secret)}
    raw = secret.encode("utf-8")
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        forms.add(encode(raw).decode("ascii"))
        for shift in range(3):  # inside a longer base64 text (user:key, a JSON blob) the key's bytes fall anywhere
            enc = encode(b"\0" * shift + raw).decode("ascii")
            core = enc[4 if shift else 0: len(enc) - 4]  # groups made of the secret's bytes only
            if len(core) >= 8:
                forms.add(core)
    return sorted(forms, key=len, reverse=True)


def redact(text: str, secrets: Sequence[str] = ()) -> str:
    """``text`` with every secret value (in any letter case, URL-encoded or base64-encoded), bearer/basic token,
    ``user:password@`` of a URL, ``key=…`` query parameter and key-shaped string (``sk-…``, ``AIza…``) replaced by
    ``***``. Redact before cutting a text: a cut can leave most of a secret that no rule recognises any more."""
    if not text:
        return text
    out = str(text)
    for s in secrets:
        if s and len(s) >= 4:
            for form in _spellings(s):
                out = re.sub(re.escape(form), "***", out, flags=re.IGNORECASE)
    out = _BEARER.sub(lambda m: f"{m.group(1)} ***", out)
    out = _URL_CREDENTIALS.sub(lambda m: f"{m.group(1)}***@", out)
    out = _KEY_PARAM.sub(lambda m: f"{m.group(1)}=***", out)
    return _KEY_LIKE.sub("***", out)


def cap(text: str, limit: int = MAX_ANSWER_CHARS) -> str:
    """``text`` cut to ``limit`` characters, saying how much was dropped."""
    if text is None or len(text) <= limit:
        return text
    return text[:limit] + f"\n[… {len(text) - limit} more characters not stored]"


class RedactingFilter(logging.Filter):
    """A logging filter that passes every record through :func:`redact` (installed on the HTTP client's loggers)."""

    def __init__(self, secrets: Sequence[str] = ()):
        super().__init__()
        self.secrets = tuple(secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string is not ours to fix
            return True
        clean = redact(message, self.secrets)
        if clean != message:
            record.msg, record.args = clean, None
        return True


_LOG_FILTERS: dict[str, RedactingFilter] = {}


def protect_logs(secrets: Sequence[str] = ()) -> None:
    """Redact secrets (and bearer tokens, URL credentials) in what ``openai``, ``httpx`` and ``httpcore`` log."""
    for name in ("openai", "openai._base_client", "httpx", "httpcore"):
        f = _LOG_FILTERS.get(name)
        if f is None:
            f = _LOG_FILTERS[name] = RedactingFilter()
            logging.getLogger(name).addFilter(f)
        f.secrets = tuple(dict.fromkeys((*f.secrets, *[s for s in secrets if s])))


class MalformedResponse(ValueError):
    """A response that is not a chat completion, or a body over the cap (one-line reason)."""


def worst_case_seconds(timeout_s: float, max_retries: int, retry_budget_s: float, backoff_s: float = 1.0) -> float:
    """The longest one query can take: its attempts (each cut at ``timeout_s``) and the waits between them
    (exponential backoff, at most 60 s each), all within ``retry_budget_s``."""
    attempts = (max_retries + 1) * timeout_s + sum(min(60.0, backoff_s * 2**a) for a in range(max_retries))
    return min(float(retry_budget_s), attempts)


class _CappedBody:
    """An HTTP response body decoded here (identity, gzip, deflate) and cut at ``limit`` bytes as it arrives."""

    def __init__(self, raw, encoding: str, limit: int):
        self.raw, self.limit = raw, int(limit)
        encoding = encoding.strip().lower()
        if encoding in ("", "identity"):
            self.decoder = None
        elif encoding in ("gzip", "x-gzip", "deflate"):
            self.decoder = zlib.decompressobj(zlib.MAX_WBITS | 32)  # gzip or zlib header, detected
        else:
            raise MalformedResponse(f"unsupported Content-Encoding {encoding!r} (asked for gzip, deflate or none)")

    def _over(self, total: int) -> MalformedResponse:
        return MalformedResponse(f"body is more than {self.limit} bytes (decoded); stopped reading at {total}")

    async def __aiter__(self):
        total = 0
        async for chunk in self.raw:
            while chunk:
                if self.decoder is None:
                    out, chunk = chunk, b""
                else:
                    try:  # never unpack more than the room left (+1 to notice the overflow)
                        out = self.decoder.decompress(chunk, self.limit - total + 1)
                    except zlib.error as e:
                        raise MalformedResponse(f"body is not valid gzip/deflate ({e})") from None
                    chunk = self.decoder.unconsumed_tail
                total += len(out)
                if total > self.limit:
                    raise self._over(total)
                if out:
                    yield out
                if self.decoder is not None and not out and chunk:
                    break  # no progress possible (cannot happen with room ≥ 1; guards the loop)
        if self.decoder is not None:
            out = self.decoder.flush()
            if total + len(out) > self.limit:
                raise self._over(total + len(out))
            if out:
                yield out

    async def aclose(self) -> None:
        await self.raw.aclose()


def capped_transport(inner, limit: int):
    """``inner`` (an ``httpx`` async transport) asking for gzip/deflate only and handing on bodies decoded and cut at
    ``limit`` bytes (:class:`MalformedResponse` beyond): httpx's own decoding, which unpacks a whole body before
    anything can look at its size, never runs."""
    import httpx

    class CappedStream(httpx.AsyncByteStream):
        def __init__(self, body: _CappedBody):
            self.body = body

        def __aiter__(self):
            return self.body.__aiter__()

        async def aclose(self) -> None:
            await self.body.aclose()

    class CappedTransport(httpx.AsyncBaseTransport):
        def __init__(self, inner: httpx.AsyncBaseTransport):
            self.inner = inner

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            request.headers["Accept-Encoding"] = "gzip, deflate"
            response = await self.inner.handle_async_request(request)
            try:
                body = _CappedBody(response.stream, response.headers.get("content-encoding", ""), limit)
            except MalformedResponse:
                await response.aclose()
                raise
            headers = [(k, v) for k, v in response.headers.multi_items()
                       if k.lower() not in ("content-encoding", "content-length")]
            return httpx.Response(response.status_code, headers=headers, stream=CappedStream(body), request=request,
                                  extensions=response.extensions)

        async def aclose(self) -> None:
            await self.inner.aclose()

    return CappedTransport(inner)


class OpenAICompatibleJudge(JudgeBase):
    deterministic = False
    antisymmetric = False

    def __init__(
        self,
        model: str,
        base_url: str,
        api_key_env: str = "",
        *,
        name: str = "vlm",
        concurrency: int = 8,
        max_retries: int = 5,
        timeout_s: float = 120.0,
        backoff_s: float = 1.0,
        retry_budget_s: float = 600.0,
        breaker_failures: int = 20,
        temperature: float = 1.0,
        max_tokens: int | None = None,
        send_seed: bool = True,
        min_side: int = 0,
        price_in_per_mtok: float | None = None,
        price_out_per_mtok: float | None = None,
        extra_body: dict | None = None,
        reasoning: bool = True,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
    ):
        if not model:
            raise JudgeError("the HTTP judge needs a model name (judges.vlm_model / --model)")
        if not base_url:
            raise JudgeError("the HTTP judge needs a base URL (judges.vlm_base_url / --base-url)")
        shown = redact(base_url)
        if api_key_env:
            key = os.environ.get(api_key_env, "")
            if not key:
                raise JudgeUnavailable(
                    f"environment variable {api_key_env} is empty or not set; it must hold the API key for {shown}"
                )
        for what, value, low in (("timeout_s", timeout_s, 0), ("retry_budget_s", retry_budget_s, 0),
                                 ("backoff_s", backoff_s, -1)):
            if not (isinstance(value, (int, float)) and float(value) > low and float(value) < float("inf")):
                raise JudgeError(f"HTTP judge: {what} must be a finite number > {max(low, 0)}, got {value!r}")
        if int(max_retries) < 0 or int(breaker_failures) < 1:
            raise JudgeError(f"HTTP judge: max_retries ≥ 0 and breaker_failures ≥ 1, got {max_retries}, {breaker_failures}")
        self._api_key_env = api_key_env
        self.model, self.base_url, self.name = model, base_url.rstrip("/") + "/", name
        self.shown_url = redact(self.base_url)
        protect_logs(self._secrets() + tuple(m.group(0) for m in _URL_CREDENTIALS.finditer(self.base_url)))
        self.concurrency = max(1, int(concurrency))
        self.max_retries, self.timeout_s, self.backoff_s = int(max_retries), float(timeout_s), float(backoff_s)
        self.retry_budget_s, self.breaker_failures = float(retry_budget_s), int(breaker_failures)
        self._failures_in_a_row = 0
        self.temperature, self.max_tokens, self.send_seed = float(temperature), max_tokens, bool(send_seed)
        self.min_side = int(min_side)
        self.price_in, self.price_out = price_in_per_mtok, price_out_per_mtok
        self.extra_body = dict(extra_body or {})
        self.reasoning = bool(reasoning)   # False: the direct prompt (rating line only)
        self.max_response_bytes = int(max_response_bytes)
        self.calls = 0       # HTTP requests made (retries included)
        self.retries = 0

    def identity(self) -> dict[str, Any]:
        return {
            "backend": "openai-compatible", "model": self.model, "base_url": _URL_CREDENTIALS.sub(r"\1", self.base_url),
            "prompt": prompt_version(self.reasoning), "temperature": self.temperature, "max_tokens": self.max_tokens,
            "send_seed": self.send_seed, "min_side": self.min_side, "extra_body": self.extra_body,
        }

    # --- the synchronous face -------------------------------------------------------------------------------
    def judge_many(self, queries: Sequence[Query], on_verdict: OnVerdict | None = None) -> list[Verdict]:
        if not queries:
            return []
        coro_factory = lambda: self._run(list(queries), on_verdict)  # noqa: E731
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(coro_factory())
        # inside a running loop (Jupyter): run on a private loop in a worker thread
        box: dict[str, Any] = {}

        def work() -> None:
            try:
                box["out"] = asyncio.run(coro_factory())
            except BaseException as e:  # re-raised in the caller's thread
                box["err"] = e

        t = threading.Thread(target=work, name="vlic-http-judge")
        t.start()
        t.join()
        if "err" in box:
            raise box["err"]
        return box["out"]

    # --- the asynchronous core ------------------------------------------------------------------------------
    def _client(self):
        import httpx
        from openai import AsyncOpenAI

        key = os.environ.get(self._api_key_env, "") if self._api_key_env else NO_KEY
        limits = httpx.Limits(max_connections=self.concurrency + 4, max_keepalive_connections=self.concurrency + 4)
        transport = capped_transport(httpx.AsyncHTTPTransport(limits=limits), self.max_response_bytes)
        return AsyncOpenAI(
            api_key=key, base_url=self.base_url, max_retries=0, timeout=self.timeout_s,
            http_client=httpx.AsyncClient(limits=limits, timeout=self.timeout_s, transport=transport),
        )

    def _secrets(self) -> tuple[str, ...]:
        key = os.environ.get(self._api_key_env, "") if self._api_key_env else ""
        return (key,) if key else ()

    def _redact(self, text: str) -> str:
        return redact(text, self._secrets())

    async def _run(self, queries: list[Query], on_verdict: OnVerdict | None) -> list[Verdict]:
        client = self._client()
        sem = asyncio.Semaphore(self.concurrency)
        out: list[Verdict | None] = [None] * len(queries)

        ready = asyncio.Semaphore(2 * self.concurrency)  # bodies encoded ahead of a free slot (bounded memory)
        state = {"answered": 0, "rejected": 0}
        give_up_after = min(REJECTIONS_BEFORE_GIVING_UP, len(queries))
        self._failures_in_a_row = 0

        async def one(i: int) -> None:
            async with ready:
                body = self._body(queries[i])  # PNG encoding happens before taking a request slot
                async with sem:
                    v = await self._ask(client, body)
            if v.failure_kind == "error":
                state["rejected"] += 1
                if not state["answered"] and state["rejected"] >= give_up_after:  # every request is being refused
                    raise JudgeUnavailable(f"{self.shown_url} rejected the first {state['rejected']} requests: {v.failure}")
            elif v.failure_kind is None or v.failure_kind == "parse":
                state["answered"] += 1
            out[i] = v
            if on_verdict:
                on_verdict(i, v)

        tasks = [asyncio.create_task(one(i)) for i in range(len(queries))]
        try:
            for fut in asyncio.as_completed(tasks):
                await fut  # the first JudgeUnavailable stops the run
        except JudgeUnavailable as e:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise JudgeUnavailable(self._redact(str(e))) from None
        except BaseException:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        finally:
            await client.close()
        return [v for v in out if v is not None]

    def _body(self, q: Query) -> dict[str, Any]:
        body: dict[str, Any] = dict(
            model=self.model, messages=openai_messages(q.ref, q.a, q.b, self.min_side, self.reasoning), temperature=self.temperature,
        )
        if self.max_tokens:
            body["max_tokens"] = int(self.max_tokens)
        if self.send_seed:
            body["seed"] = int(q.seed)
        body.update(self.extra_body)
        return body

    def _failed_attempt(self, last: str) -> None:
        """Count a failed request for the circuit breaker; open it (stop the run) after too many in a row."""
        self._failures_in_a_row += 1
        if self._failures_in_a_row >= self.breaker_failures:
            raise JudgeUnavailable(
                f"{self.shown_url} failed {self._failures_in_a_row} requests in a row (last: {self._redact(last)}); "
                f"stopping (circuit breaker, judges.vlm_breaker_failures = {self.breaker_failures}); answers received "
                f"so far are kept")

    async def _ask(self, client, body: dict[str, Any]) -> Verdict:
        import httpx
        import openai

        last = ""
        t0 = time.perf_counter()
        budget_end = t0 + self.retry_budget_s
        for attempt in range(self.max_retries + 1):
            if self._failures_in_a_row >= self.breaker_failures:  # another query opened the breaker meanwhile
                raise JudgeUnavailable(f"{self.shown_url}: circuit breaker open")
            remaining = budget_end - time.perf_counter()
            if remaining <= 0:
                last += f"; retry budget of {self.retry_budget_s:g} s used up"
                break
            self.calls += 1
            retry_after = None
            deadline = min(self.timeout_s, remaining)
            try:
                # the SDK's low-level post with the raw response: same auth and HTTP errors as chat.completions.create,
                # minus its request-typing pass over the (large, base64) body, and the body is parsed here, defensively
                resp = await asyncio.wait_for(client.post("/chat/completions", body=body, cast_to=httpx.Response),
                                              timeout=deadline)
                raw = resp.content if hasattr(resp, "content") else b""
            except MalformedResponse as e:  # the body broke the cap (or its encoding) while it arrived
                why = self._redact(f"malformed response: {e}")
                self._failed_attempt(why)
                return Verdict.failed(why, "transport", latency_s=time.perf_counter() - t0)
            except (openai.AuthenticationError, openai.PermissionDeniedError) as e:
                raise JudgeUnavailable(
                    f"{self.shown_url} rejected the API key (HTTP {e.status_code}); check {self._api_key_env or 'the key'}"
                ) from None
            except openai.NotFoundError:
                raise JudgeUnavailable(f"{self.shown_url}: model '{self.model}' or the chat-completions route was not found (HTTP 404)") from None
            except (openai.APITimeoutError, asyncio.TimeoutError, TimeoutError):
                last = f"timed out after {deadline:g} s"
            except openai.APIConnectionError as e:
                if isinstance(e.__cause__, MalformedResponse):  # SDKs that wrap every transport exception
                    why = self._redact(f"malformed response: {e.__cause__}")
                    self._failed_attempt(why)
                    return Verdict.failed(why, "transport", latency_s=time.perf_counter() - t0)
                last = self._redact(f"cannot connect ({e.__cause__ or e})")
                if attempt >= min(self.max_retries, 2):  # a dead server: fail fast, once, clearly
                    raise JudgeUnavailable(f"cannot reach the OpenAI-compatible server at {self.shown_url}: {last}") from None
            except openai.APIStatusError as e:
                if e.status_code == 429 or e.status_code >= 500:
                    last = f"HTTP {e.status_code}"
                    retry_after = e.response.headers.get("retry-after")
                else:
                    self._failures_in_a_row = 0  # the server is alive and answering
                    reason = self._redact(str(e))[:MAX_ERROR_CHARS]  # redact first: a cut can split the key
                    return Verdict.failed(f"request rejected: HTTP {e.status_code} {reason}", "error",
                                          latency_s=time.perf_counter() - t0)
            else:
                try:
                    v = self._verdict(raw, time.perf_counter() - t0)
                except MalformedResponse as e:
                    why = self._redact(f"malformed response: {e}")
                    self._failed_attempt(why)
                    return Verdict.failed(why, "transport", latency_s=time.perf_counter() - t0)
                self._failures_in_a_row = 0
                return v
            self._failed_attempt(last)
            if attempt < self.max_retries:
                delay = self._delay(attempt, retry_after)
                if time.perf_counter() + delay >= budget_end:
                    last += (f"; the server asks to wait {delay:g} s" if retry_after else f"; next wait {delay:.3g} s") \
                        + f", beyond the retry budget of {self.retry_budget_s:g} s"
                    break
                self.retries += 1
                await asyncio.sleep(delay)
        return Verdict.failed(f"no answer after {attempt + 1} attempt(s) (last: {last})", "transport",
                              latency_s=time.perf_counter() - t0)

    def _delay(self, attempt: int, retry_after: str | None) -> float:
        if retry_after:
            try:
                value = float(retry_after)
                if value == value:  # not NaN
                    return max(0.0, value)  # honoured in full when it fits the retry budget, else the query stops
            except ValueError:
                pass
        return min(60.0, self.backoff_s * 2**attempt) * (0.5 + random.random() / 2)

    def _verdict(self, raw: bytes, latency: float) -> Verdict:
        """A chat-completion body → :class:`Verdict`; :class:`MalformedResponse` when it is not one."""
        if len(raw) > self.max_response_bytes:
            raise MalformedResponse(f"body is more than {self.max_response_bytes} bytes ({len(raw)})")
        try:
            obj = json.loads(raw)
        except RecursionError:
            raise MalformedResponse(f"JSON nested too deeply ({len(raw)} bytes)") from None
        except (ValueError, UnicodeDecodeError):
            head = raw[:60].decode("utf-8", "replace").replace("\n", " ")
            raise MalformedResponse(f"not JSON ({len(raw)} bytes starting {head!r})") from None
        if not isinstance(obj, dict):
            raise MalformedResponse(f"a JSON {type(obj).__name__}, expected an object")
        choices = obj.get("choices")
        if not isinstance(choices, list) or not choices:
            raise MalformedResponse(f"'choices' is {'empty' if choices == [] else repr(choices)[:40]}, expected a list "
                                    f"with one answer")
        choice = choices[0]
        message = choice.get("message") if isinstance(choice, dict) else None
        content = message.get("content") if isinstance(message, dict) else None
        if content is not None and not isinstance(content, str):
            if isinstance(content, list):  # content parts
                content = "".join(p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
            else:
                raise MalformedResponse(f"message content is a {type(content).__name__}, expected text")
        if not isinstance(message, dict):
            raise MalformedResponse("choices[0] has no message")
        text = self._redact(content or "")
        usage = obj.get("usage") if isinstance(obj.get("usage"), dict) else {}
        tin, tout = usage.get("prompt_tokens"), usage.get("completion_tokens")
        tin = tin if isinstance(tin, int) and not isinstance(tin, bool) and 0 <= tin < 2**62 else None
        tout = tout if isinstance(tout, int) and not isinstance(tout, bool) and 0 <= tout < 2**62 else None
        cost = None
        if self.price_in is not None and self.price_out is not None and tin is not None and tout is not None:
            cost = (tin * self.price_in + tout * self.price_out) / 1e6
        try:
            r = parse_rating(text)
            why_text = rationale(text)
        except ValueError:  # a rating with thousands of digits (int() refuses it): not a rating in [−5, 5]
            r, why_text = None, ""
        common = dict(text=cap(text), rationale=cap(why_text), latency_s=latency, tokens_in=tin, tokens_out=tout,
                      cost_usd=cost)
        if r is None:
            why = "empty answer" if not text.strip() else "no 'RATING: r' with |r| ≤ 5 in the answer"
            if isinstance(choice, dict) and choice.get("finish_reason") == "length":
                why += " (stopped at max_tokens)"
            return Verdict.failed(why, "parse", **common)
        return Verdict(rating=r, **common)
