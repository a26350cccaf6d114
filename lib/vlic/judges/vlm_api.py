"""A VLM judge behind any OpenAI-compatible chat-completions server (Gemini's OpenAI endpoint, vLLM, Ollama,
``transformers serve``), through the ``openai`` SDK.

Images travel as PNG data URLs. Requests run asynchronously with at most ``concurrency`` in flight. HTTP 429, 5xx
and timeouts are retried with exponential backoff (honouring ``Retry-After``) up to ``max_retries`` times, then
recorded as a ``transport`` failure (not cached; a rerun asks again). A missing key, a rejected key, an unknown
model, a server that cannot be reached or one that refuses (HTTP 4xx) each of the first requests raise one
:class:`~vlic.judges.base.JudgeUnavailable` naming the URL —
verdicts already received have been handed to ``on_verdict`` (the cache) by then.

The key is read from the environment variable *named* in the parameters and never enters the identity or the cache.
"""

from __future__ import annotations

import asyncio
import os
import random
import threading
import time
from typing import Any, Sequence

from vlic.judges.base import JudgeBase, JudgeError, JudgeUnavailable, OnVerdict, Query, Verdict
from vlic.judges.prompt import openai_messages, parse_rating, prompt_version, rationale

NO_KEY = "not-needed"  # placeholder for local servers that ignore the key
REJECTIONS_BEFORE_GIVING_UP = 5  # HTTP 4xx on every one of the first requests: stop with one error, not thousands


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
        temperature: float = 1.0,
        max_tokens: int | None = None,
        send_seed: bool = True,
        min_side: int = 0,
        price_in_per_mtok: float | None = None,
        price_out_per_mtok: float | None = None,
        extra_body: dict | None = None,
        reasoning: bool = True,
    ):
        if not model:
            raise JudgeError("the HTTP judge needs a model name (judges.vlm_model / --model)")
        if not base_url:
            raise JudgeError("the HTTP judge needs a base URL (judges.vlm_base_url / --base-url)")
        if api_key_env:
            key = os.environ.get(api_key_env, "")
            if not key:
                raise JudgeUnavailable(
                    f"environment variable {api_key_env} is empty or not set; it must hold the API key for {base_url}"
                )
        self._api_key_env = api_key_env
        self.model, self.base_url, self.name = model, base_url.rstrip("/") + "/", name
        self.concurrency = max(1, int(concurrency))
        self.max_retries, self.timeout_s, self.backoff_s = int(max_retries), float(timeout_s), float(backoff_s)
        self.temperature, self.max_tokens, self.send_seed = float(temperature), max_tokens, bool(send_seed)
        self.min_side = int(min_side)
        self.price_in, self.price_out = price_in_per_mtok, price_out_per_mtok
        self.extra_body = dict(extra_body or {})
        self.reasoning = bool(reasoning)   # False: the direct prompt (rating line only)
        self.calls = 0       # HTTP requests made (retries included)
        self.retries = 0

    def identity(self) -> dict[str, Any]:
        return {
            "backend": "openai-compatible", "model": self.model, "base_url": self.base_url.split("@")[-1],
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
        return AsyncOpenAI(
            api_key=key, base_url=self.base_url, max_retries=0, timeout=self.timeout_s,
            http_client=httpx.AsyncClient(limits=limits, timeout=self.timeout_s),
        )

    async def _run(self, queries: list[Query], on_verdict: OnVerdict | None) -> list[Verdict]:
        client = self._client()
        sem = asyncio.Semaphore(self.concurrency)
        out: list[Verdict | None] = [None] * len(queries)

        ready = asyncio.Semaphore(2 * self.concurrency)  # bodies encoded ahead of a free slot (bounded memory)
        state = {"answered": 0, "rejected": 0}
        give_up_after = min(REJECTIONS_BEFORE_GIVING_UP, len(queries))

        async def one(i: int) -> None:
            async with ready:
                body = self._body(queries[i])  # PNG encoding happens before taking a request slot
                async with sem:
                    v = await self._ask(client, body)
            if v.failure_kind == "error":
                state["rejected"] += 1
                if not state["answered"] and state["rejected"] >= give_up_after:  # every request is being refused
                    raise JudgeUnavailable(f"{self.base_url} rejected the first {state['rejected']} requests: {v.failure}")
            elif v.failure_kind is None or v.failure_kind == "parse":
                state["answered"] += 1
            out[i] = v
            if on_verdict:
                on_verdict(i, v)

        tasks = [asyncio.create_task(one(i)) for i in range(len(queries))]
        try:
            for fut in asyncio.as_completed(tasks):
                await fut  # the first JudgeUnavailable stops the run
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

    async def _ask(self, client, body: dict[str, Any]) -> Verdict:
        import openai
        from openai.types.chat import ChatCompletion

        last = ""
        t0 = time.perf_counter()
        for attempt in range(self.max_retries + 1):
            self.calls += 1
            retry_after = None
            try:
                # the SDK's low-level post: same auth, errors and response model as chat.completions.create, minus
                # its recursive request-typing pass over the (large, base64) body — ~10 ms of CPU per request
                resp = await client.post("/chat/completions", body=body, cast_to=ChatCompletion)
            except (openai.AuthenticationError, openai.PermissionDeniedError) as e:
                raise JudgeUnavailable(
                    f"{self.base_url} rejected the API key (HTTP {e.status_code}); check {self._api_key_env or 'the key'}"
                ) from None
            except openai.NotFoundError:
                raise JudgeUnavailable(f"{self.base_url}: model '{self.model}' or the chat-completions route was not found (HTTP 404)") from None
            except openai.APITimeoutError:
                last = f"timed out after {self.timeout_s:g} s"
            except openai.APIConnectionError as e:
                last = f"cannot connect ({e.__cause__ or e})"
                if attempt >= min(self.max_retries, 2):  # a dead server: fail fast, once, clearly
                    raise JudgeUnavailable(f"cannot reach the OpenAI-compatible server at {self.base_url}: {last}") from None
            except openai.APIStatusError as e:
                if e.status_code == 429 or e.status_code >= 500:
                    last = f"HTTP {e.status_code}"
                    retry_after = e.response.headers.get("retry-after")
                else:
                    return Verdict.failed(f"request rejected: HTTP {e.status_code} {str(e)[:200]}", "error",
                                          latency_s=time.perf_counter() - t0)
            else:
                return self._verdict(resp, time.perf_counter() - t0)
            if attempt < self.max_retries:
                self.retries += 1
                await asyncio.sleep(self._delay(attempt, retry_after))
        return Verdict.failed(f"no answer after {self.max_retries + 1} attempts (last: {last})", "transport",
                              latency_s=time.perf_counter() - t0)

    def _delay(self, attempt: int, retry_after: str | None) -> float:
        if retry_after:
            try:
                return min(60.0, max(0.0, float(retry_after)))
            except ValueError:
                pass
        return min(60.0, self.backoff_s * 2**attempt) * (0.5 + random.random() / 2)

    def _verdict(self, resp, latency: float) -> Verdict:
        choice = resp.choices[0] if resp.choices else None
        text = (choice.message.content or "") if choice is not None else ""
        usage = getattr(resp, "usage", None)
        tin = getattr(usage, "prompt_tokens", None) if usage else None
        tout = getattr(usage, "completion_tokens", None) if usage else None
        cost = None
        if self.price_in is not None and self.price_out is not None and tin is not None and tout is not None:
            cost = (tin * self.price_in + tout * self.price_out) / 1e6
        common = dict(text=text, rationale=rationale(text), latency_s=latency, tokens_in=tin, tokens_out=tout, cost_usd=cost)
        r = parse_rating(text)
        if r is None:
            why = "empty answer" if not text.strip() else "no 'RATING: r' with |r| ≤ 5 in the answer"
            if choice is not None and choice.finish_reason == "length":
                why += " (stopped at max_tokens)"
            return Verdict.failed(why, "parse", **common)
        return Verdict(rating=r, **common)
