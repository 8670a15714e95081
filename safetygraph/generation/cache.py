"""The request cache: every answered request, in durable Parquet chunks under the base URI.

A chunk is written atomically once it holds ``chunk_size`` results (and at the end of a run), so a
crash loses at most the results not yet flushed. Lookups read only the ``request_hash`` column and
filter set-wise; the files are plain Parquet, so DuckDB can query them directly:

    SELECT model, count(*), sum(tokens_out) FROM read_parquet('<base>/cache/requests/*.parquet') GROUP BY model
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Sequence

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
from pyarrow.fs import FSSpecHandler, PyFileSystem

from safetygraph.core.records import canonical_json
from safetygraph.core.storage import Storage

from .core import GenerationConfig, Request, Result

CACHE_PREFIX = ("cache", "requests")
CACHE_SCHEMA = pa.schema(
    [
        ("request_hash", pa.string()),
        ("model", pa.string()),
        ("params", pa.string()),
        ("messages", pa.string()),
        ("response", pa.string()),
        ("tool_calls", pa.string()),  # absent from older chunks: read as null
        ("error", pa.string()),
        ("error_kind", pa.string()),
        ("tokens_in", pa.int64()),
        ("tokens_out", pa.int64()),
        ("backend", pa.string()),
        ("created_at", pa.float64()),
    ]
)


class RequestCache:
    def __init__(self, storage: Storage):
        self.storage = storage

    def _files(self) -> list[str]:
        return [
            self.storage.path(*CACHE_PREFIX, n)
            for n in self.storage.listdir(*CACHE_PREFIX)
            if n.endswith(".parquet")
        ]

    def lookup(self, hashes: Iterable[str], include_errors: bool = True) -> dict[str, Result]:
        """Cached results for the given request hashes (the newest where a hash was cached twice)."""
        wanted = pa.array(sorted(set(hashes)), pa.string())
        files = self._files()
        if not files or len(wanted) == 0:
            return {}
        dataset = ds.dataset(
            files,
            schema=CACHE_SCHEMA,
            format="parquet",
            filesystem=PyFileSystem(FSSpecHandler(self.storage.fs)),
        )
        flt = pc.field("request_hash").isin(wanted)
        if not include_errors:
            flt = flt & pc.field("error").is_null()
        cols = [
            "request_hash",
            "response",
            "tool_calls",
            "error",
            "error_kind",
            "tokens_in",
            "tokens_out",
            "created_at",
        ]
        table = dataset.to_table(columns=cols, filter=flt).sort_by("created_at")
        out = {}
        for row in table.to_pylist():  # only the hits, newest last
            out[row["request_hash"]] = Result(
                text=row["response"],
                tool_calls=row["tool_calls"],
                error=row["error"],
                error_kind=row["error_kind"],
                tokens_in=row["tokens_in"] or 0,
                tokens_out=row["tokens_out"] or 0,
            )
        return out

    def write_chunk(
        self, config: GenerationConfig, backend: str, items: Sequence[tuple[Request, Result]]
    ) -> str | None:
        if not items:
            return None
        now = time.time()
        table = pa.Table.from_pylist(
            [
                {
                    "request_hash": req.request_hash,
                    "model": config.model,
                    "params": canonical_json(req.params),
                    "messages": canonical_json(req.messages),
                    "response": res.text,
                    "tool_calls": res.tool_calls,
                    "error": res.error,
                    "error_kind": res.error_kind,
                    "tokens_in": res.tokens_in,
                    "tokens_out": res.tokens_out,
                    "backend": backend,
                    "created_at": now,
                }
                for req, res in items
            ],
            schema=CACHE_SCHEMA,
        )
        name = f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime(now))}-{uuid.uuid4().hex[:12]}.parquet"
        return self.storage.write_table(table, *CACHE_PREFIX, name)
