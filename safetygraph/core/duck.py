"""DuckDB helpers: one place that knows how to get Arrow out of a query."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from typing import Any

import duckdb
import pyarrow as pa

# DuckDB scans an Arrow table one record batch per task: a table in one big chunk runs on one
# thread. Registered tables are re-chunked (zero-copy slices) so every thread gets work.
SCAN_CHUNK_ROWS = 8192


def chunked(table: pa.Table, rows: int = SCAN_CHUNK_ROWS) -> pa.Table:
    """``table`` as record batches of at most ``rows`` rows (no copy)."""
    if table.num_rows <= rows:
        return table
    return pa.Table.from_batches(table.to_batches(max_chunksize=rows), schema=table.schema)


def register(con: duckdb.DuckDBPyConnection, name: str, table: pa.Table) -> None:
    """Register ``table`` under ``name``, chunked for a parallel scan."""
    con.register(name, chunked(table))


def sql_literal(value: str) -> str:
    """``value`` as a single-quoted SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def memory_limit() -> str:
    """DuckDB's memory per connection (``SAFETYGRAPH_DUCKDB_MEMORY``, 2GB by default): past it,
    sorts, joins and aggregations spill to a temporary folder instead of growing the process."""
    return os.environ.get("SAFETYGRAPH_DUCKDB_MEMORY", "2GB")


def connect(**tables: pa.Table) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with the given Arrow tables registered by name."""
    con = duckdb.connect()
    con.execute("SET threads TO 2")
    con.execute("SET enable_progress_bar = false")
    con.execute(f"SET memory_limit = '{memory_limit()}'")
    spill = os.path.join(tempfile.gettempdir(), "safetygraph-duckdb")
    con.execute(f"SET temp_directory = {sql_literal(spill)}")
    for name, table in tables.items():
        register(con, name, table)
    return con


def query(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> pa.Table:
    """Run ``sql`` and return the result as an Arrow table (params bind ``?`` placeholders)."""
    return con.sql(sql, params=params or None).to_arrow_table()


def rows(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> list[tuple]:
    """All result rows as tuples (the result is consumed, so the connection is free again)."""
    return con.execute(sql, params or []).fetchall()


def one(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> tuple:
    """The single result row of ``sql``."""
    result = rows(con, sql, params)
    if len(result) != 1:
        raise ValueError(f"expected one row, got {len(result)}: {sql[:80]}")
    return result[0]


def stream(
    con: duckdb.DuckDBPyConnection, sql: str, batch_rows: int, params: list[Any] | None = None
) -> Iterator[pa.Table]:
    """The result of ``sql`` as tables of at most ``batch_rows`` rows, fetched as they are needed
    (the whole result never sits in Python memory). Nothing else may run on ``con`` until the
    stream is exhausted: give it a connection of its own."""
    relation = con.sql(sql, params=params or None)
    # DuckDB 2 names it to_arrow_reader; 1.x fetch_arrow_reader
    fetch = getattr(relation, "to_arrow_reader", None) or relation.fetch_arrow_reader
    reader = fetch(batch_rows)
    for batch in reader:
        yield pa.Table.from_batches([batch])
