"""generate(): answer the prompt-only rows of a table with one or more generation configs.

Requests are deduplicated by hash, looked up in the request cache, and only the missing ones are sent
to a backend; answers are checkpointed into the cache every ``chunk_size`` results. Re-running an
unchanged table makes no calls; a run killed mid-way repeats at most the results not yet flushed.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import pyarrow as pa

from safetygraph.core.records import GENERATED_SCHEMA, canonical_json, conform

from .cache import RequestCache
from .core import Backend, GenerationConfig, Request, Result, request_hash, request_messages

Progress = Callable[[int, int, float], None]  # (done, total, elapsed seconds)


@dataclass
class GenerationStats:
    rows_in: int = 0
    rows_out: int = 0
    passed_through: int = 0
    requests: int = 0
    unique_requests: int = 0
    cache_hits: int = 0
    called: int = 0
    generated: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    tokens_in: int = 0
    tokens_out: int = 0
    seconds: float = 0.0
    estimated_cost: float | None = None
    chunks_written: int = 0

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["requests_per_second"] = round(self.called / self.seconds, 2) if self.seconds else None
        return d


class _Progress:
    def __init__(self, total: int, callback: Progress | None, interval_s: float):
        self.total, self.callback, self.interval = total, callback, interval_s
        self.done = 0
        self.started = self.last = time.monotonic()

    def add(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if self.callback and (now - self.last >= self.interval or self.done == self.total):
            self.last = now
            self.callback(self.done, self.total, now - self.started)


def format_progress(done: int, total: int, elapsed: float) -> str:
    rate = done / elapsed if elapsed > 0 else 0.0
    eta = (total - done) / rate if rate > 0 else float("inf")
    return f"generated {done}/{total} ({rate:.1f}/s, ETA {eta:.0f}s)"


def _derived_id(base: str, role: str, sample: int) -> str:
    return hashlib.sha256(f"{base}:{role}:{sample}".encode()).hexdigest()[:24]


def generate(
    table: pa.Table,
    configs: Sequence[GenerationConfig],
    backend_for: Callable[[GenerationConfig], Backend],
    cache: RequestCache | None = None,
    chunk_size: int = 256,
    progress: Progress | None = None,
    progress_interval_s: float = 10.0,
    retry_cached_errors: bool = False,
) -> tuple[pa.Table, GenerationStats]:
    """Rows with a response pass through; every other row is answered by each config (and sample).

    Configs with ``answers: attacks`` answer the rows of attack sources instead (tag ``attack``):
    the conversation up to the agent's final turn, with the row's tool schemas attached; each answer
    is a new row (the attack row itself passes through).

    The first prompt config's first sample keeps the row's id; other (config, sample) answers get
    ids derived from it, so each stays stable across runs.
    """
    if not configs:
        raise ValueError("generate() needs at least one generation config")
    stats = GenerationStats(rows_in=table.num_rows)
    rows = table.to_pylist()
    need = [i for i, r in enumerate(rows) if r["response"] is None]
    attacks = [
        i
        for i, r in enumerate(rows)
        if "attack" in (r["tags"] or [])
        and len(r["messages"]) > 1
        and r["messages"][-1]["role"] == "assistant"
    ]
    stats.passed_through = table.num_rows - len(need)
    first = next((c for c in configs if c.answers == "prompts"), None)

    # (row, config, sample, request, conversation answered); identical requests are sent once
    plan: list[tuple[int, GenerationConfig, int, Request, list]] = []
    for config in configs:
        for sample in range(config.samples):
            for i in need if config.answers == "prompts" else attacks:
                base = (
                    rows[i]["messages"] if config.answers == "prompts" else rows[i]["messages"][:-1]
                )
                params = config.params(sample)
                if config.answers == "attacks" and rows[i]["tools"]:
                    params["tools"] = json.loads(rows[i]["tools"])
                msgs = request_messages(base, config.system_prompt)
                plan.append(
                    (
                        i,
                        config,
                        sample,
                        Request(request_hash(config.model, params, msgs), msgs, params),
                        base,
                    )
                )
    stats.requests = len(plan)
    unique: dict[str, tuple[GenerationConfig, int, Request]] = {}
    for _, config, sample, req, _ in plan:
        unique.setdefault(req.request_hash, (config, sample, req))
    stats.unique_requests = len(unique)

    results: dict[str, Result] = (
        cache.lookup(unique, include_errors=not retry_cached_errors) if cache else {}
    )
    stats.cache_hits = len(results)
    missing: dict[tuple[str, int], list[Request]] = {}
    configs_by_role = {c.role: c for c in configs}
    for h, (config, sample, req) in unique.items():
        if h not in results:
            missing.setdefault((config.role, sample), []).append(req)

    started = time.perf_counter()
    tracker = _Progress(sum(len(v) for v in missing.values()), progress, progress_interval_s)
    for (role, _sample), reqs in missing.items():
        config = configs_by_role[role]
        backend = backend_for(config)
        buffer: list[tuple[Request, Result]] = []
        for batch in backend.stream(config, reqs):
            for idx, res in batch:
                results[reqs[idx].request_hash] = res
                buffer.append((reqs[idx], res))
            stats.called += len(batch)
            tracker.add(len(batch))
            while cache and len(buffer) >= chunk_size:  # chunks of exactly chunk_size results
                cache.write_chunk(config, backend.name, buffer[:chunk_size])
                stats.chunks_written += 1
                buffer = buffer[chunk_size:]
        if cache and buffer:
            cache.write_chunk(config, backend.name, buffer)
            stats.chunks_written += 1
    stats.seconds = time.perf_counter() - started

    by_row: dict[int, list[tuple[int, GenerationConfig, int, Request, list]]] = {}
    for entry in plan:
        by_row.setdefault(entry[0], []).append(entry)
    out: list[dict[str, Any]] = []
    cost = 0.0
    for i, r in enumerate(rows):
        if r["response"] is not None:
            meta = json.loads(r["meta"]) if r["meta"] else {}
            out.append(
                {
                    **r,
                    "generation_model": meta.get("response_model"),
                    "generation_backend": "source",
                }
            )
        for _, config, sample, req, base in by_row.get(i, []):
            res = results[req.request_hash]
            row = dict(r)
            if not (config is first and sample == 0):
                row["id"] = _derived_id(r["id"], config.role, sample)
            if (
                config.answers == "attacks"
            ):  # the shard step finds adversarial-safe candidates by it
                row["tags"] = [*(r["tags"] or []), "adversarial_candidate"]
            row.update(
                response=None,
                messages=base,
                generation_model=config.model,
                generation_backend=config.backend,
                generation_role=config.role,
                generation_params=canonical_json({**req.params, "sample": sample}),
                request_hash=req.request_hash,
            )
            if res.ok:
                row["response"] = res.text or (
                    f"[tool_calls] {res.tool_calls}" if res.tool_calls else ""
                )
                row["messages"] = [
                    *base,
                    {
                        "role": "assistant",
                        "content": res.text if (res.text or not res.tool_calls) else None,
                        "tool_calls": res.tool_calls,
                        "tool_call_id": None,
                        "name": None,
                    },
                ]
                stats.generated += 1
            else:
                row["generation_error"] = res.error
                kind = res.error_kind or "error"
                stats.errors[kind] = stats.errors.get(kind, 0) + 1
            stats.tokens_in += res.tokens_in
            stats.tokens_out += res.tokens_out
            c = config.cost(res.tokens_in, res.tokens_out)
            if c is not None:
                cost += c
                stats.estimated_cost = round(cost, 6)
            out.append(row)
    stats.rows_out = len(out)
    return conform(pa.Table.from_pylist(out, schema=GENERATED_SCHEMA), GENERATED_SCHEMA), stats
