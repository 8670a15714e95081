"""Any OpenAI-compatible chat-completions server (vLLM serve, SGLang, TGI, OpenRouter, OpenAI, Gemini).

Asynchronous with a bounded number of requests in flight, optional requests-per-minute and
tokens-per-minute limits, and exponential back-off with jitter on 429, 5xx, time-outs, dropped
connections and malformed bodies, honouring Retry-After. Another 4xx is a hard error recorded on its
row. Results stream back to the caller as they complete.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any

from .core import GenerationConfig, Request, Result, tool_calls_json


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop  # faster where installed (it comes with dagster-webserver)

        return uvloop.new_event_loop()
    except ImportError:
        return asyncio.new_event_loop()


async def _ready(
    done: asyncio.Queue, main: asyncio.Task, linger_s: float = 0.005
) -> list[tuple[int, Result]]:
    """Wait for at least one result (or the end of the run), linger a few milliseconds while the loop
    keeps serving requests, then take every result that is ready. Handing results over in batches
    keeps the hand-over off the per-request path."""
    items: list[tuple[int, Result]] = []
    if done.empty() and not main.done():
        getter = asyncio.ensure_future(done.get())
        await asyncio.wait({getter, main}, return_when=asyncio.FIRST_COMPLETED)
        if getter.done():
            items.append(getter.result())
        else:
            getter.cancel()
    if not main.done():
        await asyncio.wait({main}, timeout=linger_s)
    while not done.empty():
        items.append(done.get_nowait())
    return items


class _Retryable(Exception):
    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After as seconds: a number, or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


class RateLimiter:
    """Token buckets for requests and tokens per minute (either may be None: unlimited).

    Each bucket holds at most ``burst_s`` seconds' worth of its rate, so a run starts smoothly
    instead of spending a whole minute's quota at once.
    """

    def __init__(self, rpm: float | None, tpm: float | None, burst_s: float = 1.0):
        self.rpm, self.tpm = rpm, tpm
        self.req_cap = max(1.0, (rpm or 0) / 60 * burst_s)
        self.tok_cap = max(1.0, (tpm or 0) / 60 * burst_s)
        self.req, self.tok = self.req_cap, self.tok_cap
        self.last = time.monotonic()
        self.lock = asyncio.Lock()

    async def acquire(self, tokens: int) -> None:
        if not self.rpm and not self.tpm:
            return
        async with self.lock:
            while True:
                now = time.monotonic()
                dt, self.last = now - self.last, now
                if self.rpm:
                    self.req = min(self.req_cap, self.req + dt * self.rpm / 60)
                if self.tpm:
                    self.tok = min(self.tok_cap, self.tok + dt * self.tpm / 60)
                need_tok = min(tokens, self.tok_cap) if self.tpm else 0
                if (not self.rpm or self.req >= 1) and (not self.tpm or self.tok >= need_tok):
                    if self.rpm:
                        self.req -= 1
                    if self.tpm:
                        self.tok -= need_tok
                    return
                waits = []
                if self.rpm and self.req < 1:
                    waits.append((1 - self.req) * 60 / self.rpm)
                if self.tpm and self.tok < need_tok:
                    waits.append((need_tok - self.tok) * 60 / self.tpm)
                await asyncio.sleep(max(waits))


def estimate_tokens(messages: list[dict[str, Any]], max_tokens: int) -> int:
    """A rough upper bound for tokens-per-minute accounting: ~4 characters per token plus the answer."""
    return sum(len(str(m.get("content") or "")) for m in messages) // 4 + max_tokens


def _completion_result(resp: Any, raw: bytes) -> Result:
    """The Result of one HTTP answer; raises _Retryable on 429, 5xx or a malformed body."""
    if resp.status == 429 or resp.status >= 500:
        raise _Retryable(
            f"HTTP {resp.status}",
            parse_retry_after(resp.headers.get("Retry-After")),
        )
    if resp.status >= 400:
        return Result(
            error=f"HTTP {resp.status}: {raw[:500].decode('utf-8', 'replace')}",
            error_kind="http_4xx",
        )
    try:
        payload = json.loads(raw)
        message = payload["choices"][0]["message"]
        content = message.get("content")
        calls = tool_calls_json(message.get("tool_calls"))
        if content is None and calls is not None:
            content = ""
    except (
        json.JSONDecodeError,
        UnicodeDecodeError,
        KeyError,
        IndexError,
        TypeError,
        AttributeError,
    ) as exc:
        raise _Retryable(f"malformed response body ({type(exc).__name__})") from exc
    if not isinstance(content, str):
        raise _Retryable("malformed response body (content is not text)")
    usage = payload.get("usage") or {}
    return Result(
        text=content,
        tool_calls=calls,
        tokens_in=int(usage.get("prompt_tokens") or 0),
        tokens_out=int(usage.get("completion_tokens") or 0),
    )


def _retry_delay(exc: BaseException, attempt: int, base_s: float, max_s: float) -> float:
    """Seconds to wait before the next attempt: the server's Retry-After, else jittered back-off."""
    delay = getattr(exc, "retry_after", None)
    if delay is None:
        delay = min(max_s, base_s * 2**attempt) * random.uniform(0.5, 1.0)
    return delay


@dataclass
class OpenAIBackend:
    base_url: str
    api_key: str | None = None
    max_concurrency: int = 16
    timeout_s: float = 120.0
    max_retries: int = 6
    backoff_base_s: float = 0.5
    backoff_max_s: float = 60.0
    requests_per_minute: float | None = None
    tokens_per_minute: float | None = None
    ramp_s: float = 0.001  # delay between the starts of two workers
    name: str = field(default="openai", init=False)

    def stream(
        self, config: GenerationConfig, requests: Sequence[Request]
    ) -> Iterator[list[tuple[int, Result]]]:
        """Drives its own event loop from this generator: between two yields the loop runs until at
        least one result is ready, then hands over everything that is. One thread, no hand-off."""
        if not requests:
            return
        loop = _new_loop()
        try:
            done: asyncio.Queue = asyncio.Queue()
            main = loop.create_task(self._run(config, requests, done))
            while True:
                batch = loop.run_until_complete(_ready(done, main))
                if batch:
                    yield batch
                elif main.done():
                    break
            main.result()  # re-raise a failure of the run itself
        finally:
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _run(
        self, config: GenerationConfig, requests: Sequence[Request], out: asyncio.Queue
    ) -> None:
        import aiohttp

        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        limiter = RateLimiter(self.requests_per_minute, self.tokens_per_minute)
        timeout = aiohttp.ClientTimeout(total=self.timeout_s)
        connector = aiohttp.TCPConnector(
            limit=self.max_concurrency, limit_per_host=self.max_concurrency
        )
        url = self.base_url.rstrip("/") + "/chat/completions"
        pending = iter(enumerate(requests))

        async with aiohttp.ClientSession(
            headers=headers, timeout=timeout, connector=connector
        ) as session:

            async def worker(k: int) -> None:
                # Staggered start: workers that start together answer together and then contend for
                # this one thread in bursts; spread over a few milliseconds they stay spread.
                await asyncio.sleep(k * self.ramp_s)
                for (
                    i,
                    req,
                ) in pending:  # workers share one iterator: at most max_concurrency in flight
                    out.put_nowait((i, await self._one(session, url, config, req, limiter)))

            await asyncio.gather(
                *(worker(k) for k in range(min(self.max_concurrency, len(requests))))
            )

    async def _one(
        self, session: Any, url: str, config: GenerationConfig, req: Request, limiter: RateLimiter
    ) -> Result:
        import aiohttp

        body = json.dumps(
            {"model": config.model, "messages": req.messages, **(req.params or config.params())}
        ).encode()
        tokens = estimate_tokens(req.messages, config.max_tokens) if limiter.tpm else 0
        last = ""
        for attempt in range(self.max_retries + 1):
            await limiter.acquire(tokens)
            try:
                async with session.post(url, data=body) as resp:
                    return _completion_result(resp, await resp.read())
            except (TimeoutError, _Retryable, aiohttp.ClientError) as exc:
                last = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                if attempt == self.max_retries:
                    break
                await asyncio.sleep(
                    _retry_delay(exc, attempt, self.backoff_base_s, self.backoff_max_s)
                )
        return Result(
            error=f"gave up after {self.max_retries + 1} attempts: {last}",
            error_kind="retries_exhausted",
        )
