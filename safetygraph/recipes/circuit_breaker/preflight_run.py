"""A build's preflight: ``preflight_rows`` over a stream of batches, rendered in worker processes when
there are many rows, with a cache by row bytes so the stage-2 step and its gate render each row once.
"""

from __future__ import annotations

import json
import logging
import os
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from safetygraph.recipes.circuit_breaker.preflight import (
    PREFLIGHT_SCHEMA,
    ChatTokenizer,
    preflight_rows,
)
from safetygraph.sources.thresholds import Thresholds

PREFLIGHT_VERSION = "2"  # bump when preflight_rows changes what it reports
PREFLIGHT_BATCH_ROWS = 2_000
PARALLEL_MIN_ROWS = 20_000  # below this, starting worker processes costs more than it saves
SLICE_ROWS = 50_000  # rows serialised, hashed and looked up in the cache at a time


@dataclass(frozen=True)
class PreflightSetup:
    """What a preflight renders with: the chat tokenizer (folder or repo id), a chat template
    replacing its own, the reference encoder's target and the length limit. Picklable: worker
    processes load their own tokenizer from it."""

    tokenizer: str
    chat_template: str | None = None
    target: str | None = None
    max_seq_length: int = 2048

    @classmethod
    def from_thresholds(cls, thresholds: Thresholds) -> PreflightSetup:
        """The profile's preflight: its chat tokenizer (``preflight_tokenizer``, with
        ``preflight_chat_template`` replacing its template when given), the reference encoder of
        ``preflight_target`` (``llama3``, ``mistral-v3``, ...; none when unset) and
        ``max_seq_length``. Repo-relative paths are resolved against the repository."""
        from safetygraph.core.paths import resolve_repo_path

        template, target = thresholds.preflight_chat_template, thresholds.preflight_target
        return cls(
            tokenizer=resolve_repo_path(thresholds.preflight_tokenizer),
            chat_template=resolve_repo_path(template) if template else None,
            target=target or None,
            max_seq_length=thresholds.max_seq_length,
        )

    def load(self) -> tuple[ChatTokenizer, list]:
        from safetygraph.recipes.circuit_breaker.references import reference_for

        tok = ChatTokenizer.load(self.tokenizer, template_file=self.chat_template)
        return tok, [reference_for(self.target)] if self.target else []

    def fingerprint(self) -> str:
        """Changes when anything that decides a row's report changes: the settings, the
        tokenizer's files and the template file (by content), the preflight's version."""
        import hashlib

        h = hashlib.sha256(
            json.dumps([PREFLIGHT_VERSION, self.target, self.max_seq_length]).encode()
        )
        folder = Path(self.tokenizer)
        files = [
            folder / n for n in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja")
        ]
        files += [Path(self.chat_template)] if self.chat_template else []
        for f in files:
            h.update(f.name.encode())
            h.update(f.read_bytes() if f.is_file() else self.tokenizer.encode())
        return h.hexdigest()[:32]


_WORKER: dict[str, Any] = {}


def _worker_init(setup: PreflightSetup) -> None:
    _WORKER["tok"], _WORKER["refs"] = setup.load()
    _WORKER["limit"] = setup.max_seq_length


def _worker_rows(lines: list[bytes]) -> bytes:
    rows = [json.loads(line) for line in lines]
    report = preflight_rows(rows, _WORKER["tok"], _WORKER["limit"], _WORKER["refs"])
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, report.schema) as writer:
        writer.write_table(report)
    return sink.getvalue().to_pybytes()


def _from_ipc(data: bytes) -> pa.Table:
    return pa.ipc.open_stream(data).read_all()


class PreflightRun:
    """The preflight of a build, computed once: ``report(table)`` gives ``preflight_rows``' report
    for each row of ``table`` in order, from the cache where this setup already rendered the same
    row bytes (``storage`` under ``cache/preflight/<fingerprint>/``), rendering the rest in batches
    of ``PREFLIGHT_BATCH_ROWS`` (in ``workers`` processes when there are many), and adds them to the
    cache. The stage-2 step and the preflight gate share it: the gate re-renders nothing that the
    step rendered. Memory is bounded by the batch, not by the table."""

    def __init__(
        self, setup: PreflightSetup, storage: Any | None = None, workers: int | None = None
    ):
        self.setup = setup
        self.storage = storage
        self.workers = workers if workers is not None else (os.cpu_count() or 1)
        self._tok: tuple[ChatTokenizer, list] | None = None
        self._pool: Any = None
        self.rendered = 0
        self.from_cache = 0

    def loaded(self) -> tuple[ChatTokenizer, list]:
        if self._tok is None:
            self._tok = self.setup.load()
        return self._tok

    def _cache_parts(self) -> tuple[str, ...]:
        return ("cache", "preflight", self.setup.fingerprint())

    def _cached(self, keys: pa.Array) -> pa.Table | None:
        if self.storage is None:
            return None
        from safetygraph.core import duck

        parts = self._cache_parts()
        files = [f for f in self.storage.listdir(*parts) if f.endswith(".parquet")]
        if not files:
            return None
        con = duck.connect(k=pa.table({"key": keys}))
        found = []
        for name in files:  # a part at a time: only the rows asked for are kept
            part = self.storage.read_table(*parts, name)
            duck.register(con, "c", part)
            found.append(duck.query(con, "SELECT c.* FROM c SEMI JOIN k USING (key)"))
            con.unregister("c")
        return pa.concat_tables(found)

    def __enter__(self) -> PreflightRun:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the worker processes (a run used as a context manager does it on exit)."""
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def _workers_for(self, rows: int) -> Any:
        """The worker pool, started on the first call with enough rows to be worth it, kept for
        the next calls (a stream of batches pays the start-up once)."""
        if self._pool is None and rows >= PARALLEL_MIN_ROWS and self.workers > 1:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            self._pool = ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_worker_init,
                initargs=(self.setup,),
            )
        return self._pool

    def report(self, table: pa.Table, rows_expected: int | None = None) -> pa.Table:
        """The report of every row of ``table``, in order (see the class). ``rows_expected``: the
        rows of the whole stream ``table`` is a batch of, to decide on worker processes early."""
        if rows_expected is None:  # one whole table; a stream of batches sums its counts
            self.rendered = self.from_cache = 0
        pool = self._workers_for(rows_expected or table.num_rows)
        parts = [
            self._slice(table.slice(start, SLICE_ROWS), pool)
            for start in range(0, table.num_rows, SLICE_ROWS)
        ]
        if rows_expected is None:
            self.close()
        return pa.concat_tables(parts) if parts else PREFLIGHT_SCHEMA.empty_table()

    def _slice(self, part: pa.Table, pool: Any) -> pa.Table:
        import hashlib
        import uuid

        from safetygraph.core import duck
        from safetygraph.recipes.circuit_breaker.records import jsonl_bytes

        keyed = pa.schema([pa.field("key", pa.string()), *PREFLIGHT_SCHEMA])
        con = duck.connect(
            t=part.append_column("__pos", pa.array(range(part.num_rows), pa.int64()))
        )
        lines = jsonl_bytes(con, "t", order_by="__pos").split(b"\n")[:-1]
        con.close()
        keys = pa.array([hashlib.sha256(line).hexdigest() for line in lines], pa.string())
        cached = self._cached(keys)
        known = set(cached.column("key").to_pylist()) if cached is not None else set()
        todo = [i for i, k in enumerate(keys.to_pylist()) if k not in known]
        chunks = [
            todo[i : i + PREFLIGHT_BATCH_ROWS] for i in range(0, len(todo), PREFLIGHT_BATCH_ROWS)
        ]
        fresh: list[pa.Table] = []
        if pool is not None and len(chunks) > 1:
            work = [[lines[i] for i in c] for c in chunks]
            try:
                for chunk, data in zip(chunks, pool.map(_worker_rows, work), strict=True):
                    fresh.append(_keyed(_from_ipc(data), keys, chunk))
            except (BrokenProcessPool, RuntimeError, OSError) as exc:
                # workers that cannot start (a script without a __main__ guard, no fork/spawn):
                # the same rows rendered here instead
                logging.getLogger(__name__).warning(
                    f"preflight workers unavailable ({type(exc).__name__}: {exc}); rendering in process"
                )
                self.close()
                self.workers = 1
                fresh, pool = [], None
        if pool is None or len(chunks) <= 1:
            tok, refs = self.loaded() if todo else (None, [])
            for chunk in chunks:
                rows = [json.loads(lines[i]) for i in chunk]
                report = preflight_rows(rows, tok, self.setup.max_seq_length, refs)
                fresh.append(_keyed(report, keys, chunk))
        self.rendered += len(todo)
        self.from_cache += part.num_rows - len(todo)
        new = pa.concat_tables(fresh).cast(keyed) if fresh else keyed.empty_table()
        if self.storage is not None and new.num_rows:
            self.storage.write_table(new, *self._cache_parts(), f"{uuid.uuid4().hex}.parquet")
        every = pa.concat_tables([t.cast(keyed) for t in (cached, new) if t is not None])
        con = duck.connect(
            k=pa.table({"key": keys, "__pos": pa.array(range(len(keys)), pa.int64())}), r=every
        )
        return duck.query(
            con,
            f"SELECT {', '.join('r.' + n for n in PREFLIGHT_SCHEMA.names)} FROM k "
            "JOIN (SELECT DISTINCT ON (key) * FROM r) r USING (key) ORDER BY k.__pos",
        ).cast(PREFLIGHT_SCHEMA)


def _keyed(report: pa.Table, keys: pa.Array, chunk: list[int]) -> pa.Table:
    return report.add_column(0, "key", keys.take(pa.array(chunk, pa.int64())))
