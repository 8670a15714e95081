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
import pyarrow.compute as pc

from safetygraph.core import duck
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

    def add(self, other: GenerationStats) -> None:
        """Sum ``other`` (the statistics of another batch of the same run) into these."""
        for name in (
            "rows_in", "rows_out", "passed_through", "requests", "unique_requests", "cache_hits",
            "called", "generated", "tokens_in", "tokens_out", "chunks_written",
        ):  # fmt: skip
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.seconds += other.seconds
        for kind, n in other.errors.items():
            self.errors[kind] = self.errors.get(kind, 0) + n
        if other.estimated_cost is not None:
            self.estimated_cost = round((self.estimated_cost or 0.0) + other.estimated_cost, 6)

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
    retry_cached_errors: bool = True,
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
    # only the rows a config answers become Python objects; the rest pass through in Arrow
    work = _work_positions(table, any(c.answers == "attacks" for c in configs))
    rows = table.take(pa.array(work.positions, pa.int64())).to_pylist() if work.positions else []
    need = [i for i, r in enumerate(rows) if r["response"] is None]
    attacks = [i for i, r in enumerate(rows) if work.is_attack[i]]
    stats.passed_through = table.num_rows - len(need)
    first = next((c for c in configs if c.answers == "prompts"), None)

    # (row, config, sample, request, conversation answered); identical requests are sent once
    plan = _plan(rows, configs, need, attacks)
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
        _send(configs_by_role[role], reqs, backend_for, cache, chunk_size, tracker, results, stats)
    stats.seconds = time.perf_counter() - started

    out = _answered_rows(rows, plan, results, work.positions, first, stats)
    stats.rows_out = table.num_rows - len(need) + len(out)
    return _assemble(table, out), stats


def _plan(
    rows: list[dict[str, Any]],
    configs: Sequence[GenerationConfig],
    need: list[int],
    attacks: list[int],
) -> list[tuple[int, GenerationConfig, int, Request, list]]:
    """(row, config, sample, request, conversation answered) for each answer to generate."""
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
    return plan


def _send(
    config: GenerationConfig,
    reqs: list[Request],
    backend_for: Callable[[GenerationConfig], Backend],
    cache: RequestCache | None,
    chunk_size: int,
    tracker: _Progress,
    results: dict[str, Result],
    stats: GenerationStats,
) -> None:
    """None: puts each answer to ``reqs`` into ``results``, checkpointing chunks into the cache."""
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


def _answered_rows(
    rows: list[dict[str, Any]],
    plan: list[tuple[int, GenerationConfig, int, Request, list]],
    results: dict[str, Result],
    positions: list[int],
    first: GenerationConfig | None,
    stats: GenerationStats,
) -> list[dict[str, Any]]:
    """The generated rows, each row's answers in plan order (``stats`` counts them as it goes)."""
    by_row: dict[int, list[tuple[int, GenerationConfig, int, Request, list]]] = {}
    for entry in plan:
        by_row.setdefault(entry[0], []).append(entry)
    out: list[dict[str, Any]] = []
    cost = 0.0
    for i, r in enumerate(rows):
        for k, (_, config, sample, req, base) in enumerate(by_row.get(i, []), 1):
            res = results[req.request_hash]
            row = _answered_row(r, positions[i], k, config, sample, req, base, first)
            if res.ok:
                _add_answer(row, res, base)
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
    return out


def _answered_row(
    r: dict[str, Any],
    pos: int,
    k: int,
    config: GenerationConfig,
    sample: int,
    req: Request,
    base: list,
    first: GenerationConfig | None,
) -> dict[str, Any]:
    """A copy of row ``r`` for one (config, sample) answer, with its id and generation fields."""
    row = dict(r)
    row["__pos"], row["__sub"] = pos, k
    if not (config is first and sample == 0):
        row["id"] = _derived_id(r["id"], config.role, sample)
    if config.answers == "attacks":  # the shard step finds adversarial-safe candidates by it
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
    return row


def _add_answer(row: dict[str, Any], res: Result, base: list) -> None:
    """None: sets the row's response and appends the assistant turn of a successful result."""
    row["response"] = res.text or (f"[tool_calls] {res.tool_calls}" if res.tool_calls else "")
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


@dataclass
class _Work:
    positions: list[int]  # rows of the table a config answers, in table order
    is_attack: list[bool]  # per position: an attack row the attack configs answer anew


def _work_positions(table: pa.Table, with_attacks: bool) -> _Work:
    """Rows without a response, and (``with_attacks``) attack rows that end on the agent's turn."""
    narrow = table.select(["response", "tags", "messages"])
    con = duck.connect(t=narrow.append_column("__pos", pa.array(range(table.num_rows), pa.int64())))
    attack = (
        "list_contains(coalesce(tags, []), 'attack') AND len(messages) > 1 "
        "AND messages[len(messages)].role = 'assistant'"
        if with_attacks
        else "FALSE"
    )
    found = duck.query(
        con,
        f"SELECT __pos, {attack} AS a FROM t WHERE response IS NULL OR ({attack}) ORDER BY __pos",
    )
    return _Work(found.column("__pos").to_pylist(), found.column("a").to_pylist())


def _assemble(table: pa.Table, generated: list[dict[str, Any]]) -> pa.Table:
    """The rows that carry a response (as they are, marked as the source's answers) and the
    generated rows, in table order (a row's generated answers right after it)."""
    con = duck.connect(
        t=table.select(["response", "meta"]).append_column(
            "__pos", pa.array(range(table.num_rows), pa.int64())
        )
    )
    passed = duck.query(
        con,
        "SELECT __pos, json_extract_string(meta, '$.response_model') AS m FROM t "
        "WHERE response IS NOT NULL ORDER BY __pos",
    )
    keep = passed.column("__pos")
    through = table.take(keep) if len(keep) < table.num_rows else table
    through = through.drop_columns(
        [c for c in ("generation_model", "generation_backend") if c in through.column_names]
    )
    n = through.num_rows
    through = (
        through.append_column("generation_model", passed.column("m"))
        .append_column("generation_backend", pa.array(["source"] * n, pa.string()))
        .append_column("__pos", keep)
        .append_column("__sub", pa.array([0] * n, pa.int64()))
    )
    schema = GENERATED_SCHEMA.append(pa.field("__pos", pa.int64())).append(
        pa.field("__sub", pa.int64())
    )
    parts = [conform(through, schema)]
    if generated:
        parts.append(conform(pa.Table.from_pylist(generated, schema=schema), schema))
    out = pa.concat_tables(parts)
    if generated:
        order = pc.sort_indices(out, sort_keys=[("__pos", "ascending"), ("__sub", "ascending")])
        out = out.take(order)
    return out.drop_columns(["__pos", "__sub"])
