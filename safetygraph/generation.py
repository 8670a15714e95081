"""Response generation: content-addressed requests and the backends that answer them.

A request is identified by what determines its answer (model id, sampling parameters, messages
including the system prompt) and nothing else, so the same request gets the same hash whatever
backend serves it. Backends:

- ``replay``: answers from recorded responses keyed by request hash (the offline demo, and re-use
  of earlier runs). A request with no recording is an error on its row, never a made-up answer.
- ``openai``: any OpenAI-compatible ``/v1/chat/completions`` server, asynchronous with a bounded
  number of requests in flight, back-off with jitter on 429/5xx/time-outs (honouring Retry-After);
  other 4xx answers are recorded on the row instead of failing the batch.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import pyarrow as pa

from . import duck
from .records import GENERATED_SCHEMA, canonical_json, conform, sha256_hex


@dataclass(frozen=True)
class GenerationConfig:
    """One way of answering prompts: which model, with which role prompt and sampling parameters."""

    role: str = "target"
    backend: str = "replay"
    model: str = "demo-target"
    system_prompt: str | None = None
    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 512
    seed: int = 0

    def params(self) -> dict[str, Any]:
        return {
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_tokens": self.max_tokens,
            "seed": self.seed,
        }

    @classmethod
    def from_dict(cls, role: str, body: dict[str, Any]) -> GenerationConfig:
        known = {k: v for k, v in body.items() if k in cls.__dataclass_fields__}
        return cls(role=role, **{k: v for k, v in known.items() if k != "role"})


def request_messages(
    messages: Sequence[dict[str, Any]], system_prompt: str | None
) -> list[dict[str, Any]]:
    """The chat messages sent for a conversation: its turns without null fields, system prompt first."""
    out = [{k: v for k, v in m.items() if v is not None} for m in messages]
    if system_prompt and not (out and out[0]["role"] == "system"):
        out.insert(0, {"role": "system", "content": system_prompt})
    return out


def request_hash(model: str, params: dict[str, Any], messages: Sequence[dict[str, Any]]) -> str:
    """Content address of a request: stable across processes, machines and Python versions."""
    return sha256_hex(
        canonical_json({"model": model, "params": params, "messages": list(messages)})
    )


@dataclass
class Request:
    request_hash: str
    messages: list[dict[str, Any]]


@dataclass
class Result:
    text: str | None = None
    error: str | None = None
    tokens_in: int = 0
    tokens_out: int = 0


class Backend(Protocol):
    name: str

    def complete(self, config: GenerationConfig, requests: Sequence[Request]) -> list[Result]: ...


class ReplayBackend:
    """Answers from recordings: JSONL files of ``{"request_hash": ..., "response": ...}``."""

    name = "replay"

    def __init__(self, recordings: Sequence[str]):
        self.recordings = list(recordings)

    def complete(self, config: GenerationConfig, requests: Sequence[Request]) -> list[Result]:
        if not requests:
            return []
        wanted = pa.table(
            {"request_hash": [r.request_hash for r in requests], "pos": list(range(len(requests)))}
        )
        con = duck.connect(wanted=wanted)
        if self.recordings:
            con.execute(
                "CREATE TABLE rec AS SELECT request_hash, any_value(response) AS response "
                "FROM read_json(?, format='newline_delimited', columns={request_hash: 'VARCHAR', response: 'VARCHAR'}) "
                "GROUP BY request_hash",
                [self.recordings],
            )
        else:
            con.execute("CREATE TABLE rec (request_hash VARCHAR, response VARCHAR)")
        found = (
            duck.query(
                con,
                "SELECT w.pos, r.response FROM wanted w LEFT JOIN rec r USING (request_hash) ORDER BY w.pos",
            )
            .column("response")
            .to_pylist()
        )
        return [
            Result(text=t)
            if t is not None
            else Result(
                error=f"replay: no recorded response for request {r.request_hash} (model {config.model})"
            )
            for r, t in zip(requests, found, strict=True)
        ]


class RetryableError(Exception):
    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


@dataclass
class OpenAIBackend:
    """Any OpenAI-compatible chat-completions server."""

    base_url: str
    api_key: str | None = None
    max_concurrency: int = 16
    timeout_s: float = 120.0
    max_retries: int = 6
    backoff_base_s: float = 0.5
    backoff_max_s: float = 60.0
    name: str = field(default="openai", init=False)

    def complete(self, config: GenerationConfig, requests: Sequence[Request]) -> list[Result]:
        if not requests:
            return []
        return asyncio.run(self._run(config, requests))

    async def _run(self, config: GenerationConfig, requests: Sequence[Request]) -> list[Result]:
        import aiohttp

        sem = asyncio.Semaphore(self.max_concurrency)
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        timeout = aiohttp.ClientTimeout(total=self.timeout_s)
        connector = aiohttp.TCPConnector(limit=self.max_concurrency)
        async with aiohttp.ClientSession(
            headers=headers, timeout=timeout, connector=connector
        ) as session:

            async def one(req: Request) -> Result:
                async with sem:
                    return await self._with_retries(session, config, req)

            return list(await asyncio.gather(*(one(r) for r in requests)))

    async def _with_retries(self, session: Any, config: GenerationConfig, req: Request) -> Result:
        import aiohttp

        url = self.base_url.rstrip("/") + "/chat/completions"
        body = {"model": config.model, "messages": req.messages, **config.params()}
        last = ""
        for attempt in range(self.max_retries + 1):
            try:
                async with session.post(url, json=body) as resp:
                    text = await resp.text()
                    if resp.status == 429 or resp.status >= 500:
                        ra = resp.headers.get("Retry-After")
                        raise RetryableError(
                            f"HTTP {resp.status}",
                            float(ra) if ra and ra.replace(".", "", 1).isdigit() else None,
                        )
                    if resp.status >= 400:
                        return Result(error=f"HTTP {resp.status}: {text[:500]}")
                    try:
                        payload = json.loads(text)
                        content = payload["choices"][0]["message"]["content"]
                    except (json.JSONDecodeError, KeyError, IndexError, TypeError) as exc:
                        raise RetryableError(
                            f"malformed response body ({type(exc).__name__})"
                        ) from exc
                    usage = payload.get("usage") or {}
                    return Result(
                        text=content,
                        tokens_in=int(usage.get("prompt_tokens", 0)),
                        tokens_out=int(usage.get("completion_tokens", 0)),
                    )
            except (TimeoutError, RetryableError, aiohttp.ClientError) as exc:
                last = f"{type(exc).__name__}: {exc}"
                if attempt == self.max_retries:
                    break
                delay = getattr(exc, "retry_after", None)
                if delay is None:
                    delay = min(
                        self.backoff_max_s, self.backoff_base_s * 2**attempt
                    ) * random.uniform(0.5, 1.0)
                await asyncio.sleep(delay)
        return Result(error=f"gave up after {self.max_retries + 1} attempts: {last}")


@dataclass
class GenerationStats:
    rows: int = 0
    passed_through: int = 0
    requested: int = 0
    generated: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    tokens_in: int = 0
    tokens_out: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["rows_per_second"] = round(self.requested / self.seconds, 2) if self.seconds else None
        return d


def generate(
    table: pa.Table, config: GenerationConfig, backend: Backend
) -> tuple[pa.Table, GenerationStats]:
    """Answer the rows that have no response; rows that carry a response pass through unchanged."""
    stats = GenerationStats(rows=table.num_rows)
    responses = table.column("response").to_pylist()
    need = [i for i, r in enumerate(responses) if r is None]
    stats.passed_through = table.num_rows - len(need)
    messages = table.column("messages").to_pylist()
    params = config.params()
    requests = []
    for i in need:
        msgs = request_messages(messages[i], config.system_prompt)
        requests.append(Request(request_hash(config.model, params, msgs), msgs))
    stats.requested = len(requests)
    started = time.perf_counter()
    results = backend.complete(config, requests)
    stats.seconds = time.perf_counter() - started

    n = table.num_rows
    gen_model: list[str | None] = [None] * n
    gen_backend: list[str | None] = ["source"] * n
    gen_params: list[str | None] = [None] * n
    req_hash: list[str | None] = [None] * n
    gen_error: list[str | None] = [None] * n
    metas = table.column("meta").to_pylist()
    for i in range(n):
        if responses[i] is not None and metas[i]:
            gen_model[i] = json.loads(metas[i]).get("response_model")
    params_json = canonical_json(params)
    for i, req, res in zip(need, requests, results, strict=True):
        gen_model[i], gen_backend[i], gen_params[i], req_hash[i] = (
            config.model,
            backend.name,
            params_json,
            req.request_hash,
        )
        stats.tokens_in += res.tokens_in
        stats.tokens_out += res.tokens_out
        if res.error is not None:
            gen_error[i] = res.error
            kind = res.error.split(":")[0]
            stats.errors[kind] = stats.errors.get(kind, 0) + 1
            continue
        stats.generated += 1
        responses[i] = res.text
        messages[i] = list(messages[i]) + [
            {
                "role": "assistant",
                "content": res.text,
                "tool_calls": None,
                "tool_call_id": None,
                "name": None,
            }
        ]
    out = table.set_column(
        table.schema.get_field_index("response"), "response", pa.array(responses, pa.string())
    )
    out = out.set_column(
        out.schema.get_field_index("messages"),
        "messages",
        pa.array(messages, table.schema.field("messages").type),
    )
    for name, values in (
        ("generation_model", gen_model),
        ("generation_backend", gen_backend),
        ("generation_params", gen_params),
        ("request_hash", req_hash),
        ("generation_error", gen_error),
    ):
        out = out.append_column(name, pa.array(values, pa.string()))
    return conform(out, GENERATED_SCHEMA), stats
