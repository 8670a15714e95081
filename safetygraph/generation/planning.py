"""What a source's generation step will do, decided before a request is sent: which rows need an
answer, which configs need a model server, and the rows of a recorded source held back unanswered.

``GenerationRun`` then streams the source batch by batch through ``generate`` and keeps the step's
figures (``GenerationStats`` and the recorded gaps) on the object: typed, not a dict."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from safetygraph.core import duck
from safetygraph.core.records import GENERATED_SCHEMA, conform
from safetygraph.core.tables import StoredTable, as_relation, table_batches

from .cache import RequestCache
from .core import Backend, GenerationConfig
from .runner import GenerationStats, generate

# backends that answer without a model server (recorded answers, local weights)
OFFLINE_BACKENDS = frozenset({"replay", "transformers", "vllm"})


def rows_without_response(table: pa.Table | StoredTable) -> int:
    """Rows whose ``response`` is null (a stored table is counted in place by DuckDB)."""
    con = duck.connect()
    try:
        rel = as_relation(con, table, "raw")
        return int(duck.one(con, f"SELECT count(*) FILTER (WHERE response IS NULL) FROM {rel}")[0])
    finally:
        con.close()


def error_summary(table: pa.Table | StoredTable, examples: int = 5) -> tuple[int, int, list[str]]:
    """(requests made, requests that failed, the first ``examples`` error messages) of a generated
    table: rows with a ``request_hash`` were sent, rows with a ``generation_error`` failed."""
    con = duck.connect()
    try:
        rel = as_relation(con, table, "g")
        requested, failed = duck.one(
            con, f"SELECT count(request_hash), count(generation_error) FROM {rel}"
        )
        first = duck.rows(
            con,
            f"SELECT generation_error FROM {rel} WHERE generation_error IS NOT NULL LIMIT {int(examples)}",
        )
        return int(requested), int(failed), [r[0] for r in first]
    finally:
        con.close()


@dataclass(frozen=True)
class GenerationPlan:
    """``prompt_only``: rows the step will answer; ``leave_gaps``: a recorded source's rows without a
    response pass through unanswered (unless the run asks to answer them)."""

    configs: tuple[GenerationConfig, ...]
    prompt_only: int
    leave_gaps: bool

    @classmethod
    def for_source(
        cls,
        raw: pa.Table | StoredTable,
        configs: Sequence[GenerationConfig],
        has_responses: bool,
        answer_recorded_gaps: bool = False,
    ) -> GenerationPlan:
        leave_gaps = has_responses and not answer_recorded_gaps
        return cls(tuple(configs), 0 if leave_gaps else rows_without_response(raw), leave_gaps)

    def needs_server(self) -> list[GenerationConfig]:
        """Configs that answer prompts through a model server."""
        return [
            c for c in self.configs if c.backend not in OFFLINE_BACKENDS and c.answers == "prompts"
        ]

    def missing_server(self, source: str, server_url: str | None) -> str | None:
        """Why the step cannot run (prompt-only rows, a config that needs a server, none set)."""
        need = self.needs_server()
        if not (self.prompt_only and need and not server_url):
            return None
        c = need[0]
        return (
            f"source '{source}': {self.prompt_only} prompt-only row(s) need an answer from "
            f"generation config '{c.role}' (backend {c.backend}, model {c.model}) and no model "
            "server is set: export SAFETYGRAPH_OPENAI_BASE_URL, or use a profile whose configs "
            "answer offline"
        )


@dataclass
class GenerationRun:
    """The plan run over a source, batch by batch (``batches()``); ``stats`` and ``gaps`` fill as
    the batches stream. ``options`` go to ``generate`` (chunk_size, progress_interval_s,
    retry_cached_errors); ``progress(k)`` returns the progress callback of batch ``k``."""

    plan: GenerationPlan
    backend_for: Callable[[GenerationConfig], Backend]
    cache: RequestCache | None = None
    batch_rows: int = 50_000
    progress: Callable[[int], Callable] | None = None
    options: dict = field(default_factory=dict)
    stats: GenerationStats = field(default_factory=GenerationStats)
    gaps: int = 0

    def batches(self, raw: pa.Table | StoredTable) -> Iterator[pa.Table]:
        for k, batch in enumerate(table_batches(raw, self.batch_rows), 1):
            held = batch.slice(0, 0)
            if self.plan.leave_gaps:
                missing = pc.is_null(batch.column("response"))
                held, batch = batch.filter(missing), batch.filter(pc.invert(missing))
                self.gaps += held.num_rows
            out, batch_stats = generate(
                batch,
                self.plan.configs,
                self.backend_for,
                cache=self.cache,
                progress=self.progress(k) if self.progress else None,
                **self.options,
            )
            self.stats.add(batch_stats)
            yield out
            if held.num_rows:
                yield conform(held, GENERATED_SCHEMA)
