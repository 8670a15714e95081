"""Tables that move between steps as Parquet files, read and written in bounded record batches.

- :class:`StoredTable`: a Parquet file under the base URI, opened lazily. Its row count and schema
  come from the file footer; ``batches()`` streams it (at most ``batch_rows`` rows in memory);
  ``relation()`` hands it to DuckDB, which scans the file itself (counts, uniqueness, joins) without
  the table ever becoming Python or Arrow objects here; ``read()`` loads it whole, for the small
  tables (reports, splits of a few thousand rows) where that is simplest.
- :class:`TableStream`: what a streaming step returns: a schema and an iterator of batches, written
  by the IO manager batch by batch into one Parquet file (atomically: a temporary name, moved into
  place when complete). ``metadata`` is called with the written file (a ``StoredTable``) after the
  last batch, so a step can report figures that are only known once the stream has run (rows kept,
  duplicates removed, errors) or that DuckDB computes over the file it wrote.

Peak memory of a streaming step is bounded by ``batch_rows`` (configuration), not by the size of
the source: ``SAFETYGRAPH_BATCH_ROWS`` sets it (50,000 by default).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Iterator
from functools import cached_property
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from safetygraph.core.storage import Storage

DEFAULT_BATCH_ROWS = 50_000


def batch_rows_from_env() -> int:
    value = os.environ.get("SAFETYGRAPH_BATCH_ROWS", "")
    if not value:
        return DEFAULT_BATCH_ROWS
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"SAFETYGRAPH_BATCH_ROWS={value!r}: use a positive number of rows")
    return int(value)


class StoredTable:
    """A Parquet file under ``storage`` at ``parts``, read on demand."""

    def __init__(self, storage: Storage, parts: tuple[str, ...], batch_rows: int | None = None):
        self.storage = storage
        self.parts = tuple(parts)
        self.batch_rows = batch_rows or DEFAULT_BATCH_ROWS

    def __repr__(self) -> str:
        return f"StoredTable({self.uri})"

    @property
    def uri(self) -> str:
        return self.storage.uri(*self.parts)

    @property
    def path(self) -> str:
        return self.storage.path(*self.parts)

    def exists(self) -> bool:
        return self.storage.exists(*self.parts)

    @cached_property
    def _metadata(self) -> pq.FileMetaData:
        with self.storage.fs.open(self.path, "rb") as f:
            return pq.ParquetFile(f).metadata

    @property
    def num_rows(self) -> int:
        return self._metadata.num_rows

    @property
    def schema(self) -> pa.Schema:
        return self._metadata.schema.to_arrow_schema()

    @property
    def column_names(self) -> list[str]:
        return self.schema.names

    def batches(
        self, batch_rows: int | None = None, columns: list[str] | None = None
    ) -> Iterator[pa.Table]:
        """The rows in file order, at most ``batch_rows`` at a time, as tables (one chunk each)."""
        rows = batch_rows or self.batch_rows
        with self.storage.fs.open(self.path, "rb") as f:
            pf = pq.ParquetFile(f)
            if pf.metadata.num_rows == 0:
                yield pf.schema_arrow.empty_table().select(columns or pf.schema_arrow.names)
                return
            for batch in pf.iter_batches(batch_size=rows, columns=columns):
                yield pa.Table.from_batches([batch])

    def read(self, columns: list[str] | None = None) -> pa.Table:
        """The whole table (or some of its columns) in memory: for small tables only."""
        with self.storage.fs.open(self.path, "rb") as f:
            return pq.read_table(f, columns=columns)

    def relation(self, con: duckdb.DuckDBPyConnection, file_row_number: bool = False) -> str:
        """SQL text naming this file for DuckDB on ``con`` (``read_parquet(...)``, with the column
        ``file_row_number`` when asked); a remote base URI's filesystem is registered on the
        connection so DuckDB reads it through fsspec."""
        if self.storage.is_local:
            target = self.path
        else:
            fs = self.storage.fs
            with contextlib.suppress(duckdb.Error):  # already registered on this connection
                con.register_filesystem(fs)
            target = self.uri
        options = ", file_row_number = true" if file_row_number else ""
        return "read_parquet('" + target.replace("'", "''") + "'" + options + ")"


class TableStream:
    """A table produced batch by batch: ``schema`` and an iterable of tables or record batches
    (each cast to ``schema``). ``metadata(written)``, if given, is called with the written file
    once the stream is exhausted, and its figures are added to the output's metadata."""

    def __init__(
        self,
        schema: pa.Schema,
        batches: Iterable[pa.Table | pa.RecordBatch],
        metadata: Callable[[StoredTable], dict[str, Any]] | None = None,
    ):
        self.schema = schema
        self._batches = batches
        self._metadata = metadata
        self.rows = 0

    def __iter__(self) -> Iterator[pa.Table]:
        for batch in self._batches:
            table = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
            if table.schema != self.schema:
                table = table.select(self.schema.names).cast(self.schema)
            self.rows += table.num_rows
            yield table

    def metadata(self, written: StoredTable) -> dict[str, Any]:
        return self._metadata(written) if self._metadata else {}


def write_stream(storage: Storage, stream: TableStream, *parts: str) -> str:
    """Write ``stream`` to ``parts`` as one Parquet file, batch by batch, atomically."""
    with (
        storage.open_atomic(*parts) as f,
        pq.ParquetWriter(f, stream.schema, compression="zstd") as writer,
    ):
        for table in stream:
            if table.num_rows:
                writer.write_table(table)
    return storage.path(*parts)


def as_relation(con: duckdb.DuckDBPyConnection, table: pa.Table | StoredTable, name: str) -> str:
    """SQL naming ``table`` on ``con``: a stored file is scanned in place (``read_parquet``), an
    in-memory table is registered as ``name``."""
    if isinstance(table, StoredTable):
        return table.relation(con)
    con.register(name, table)
    return name


def table_batches(table: pa.Table | StoredTable, batch_rows: int) -> Iterator[pa.Table]:
    """``table`` in batches of at most ``batch_rows`` rows (streamed from the file if stored)."""
    if isinstance(table, StoredTable):
        yield from table.batches(batch_rows)
        return
    if table.num_rows == 0:
        yield table
        return
    for batch in table.to_batches(max_chunksize=batch_rows):
        yield pa.Table.from_batches([batch])


def narrow(table: pa.Table | StoredTable, columns: list[str]) -> pa.Table | StoredTable:
    """What a DuckDB query over ``columns`` needs: an Arrow table's columns (registered without
    the rest), or the stored table itself (DuckDB reads only the columns a query names)."""
    return table.select(columns) if isinstance(table, pa.Table) else table


def read_columns(table: pa.Table | StoredTable, columns: list[str]) -> pa.Table:
    """Only ``columns`` of ``table`` (from a stored file, only those columns are read)."""
    return table.read(columns) if isinstance(table, StoredTable) else table.select(columns)


def register(con: duckdb.DuckDBPyConnection, name: str, table: pa.Table | StoredTable) -> None:
    """``table`` under ``name`` on ``con``: a view over the stored file, or the Arrow table."""
    if isinstance(table, StoredTable):
        con.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT * FROM {table.relation(con)}")
    else:
        from safetygraph.core import duck

        duck.register(con, name, table)


def unregister(con: duckdb.DuckDBPyConnection, name: str) -> None:
    con.execute(f"DROP VIEW IF EXISTS {name}")
    with contextlib.suppress(duckdb.Error):
        con.unregister(name)


def connect(**tables: pa.Table | StoredTable) -> duckdb.DuckDBPyConnection:
    """``duck.connect`` with stored tables as views over their files and Arrow tables registered."""
    from safetygraph.core import duck

    con = duck.connect()
    for name, table in tables.items():
        register(con, name, table)
    return con


def read_all(table: pa.Table | StoredTable) -> pa.Table:
    """The whole table in memory (a stored one read from its file): for small tables only."""
    return table.read() if isinstance(table, StoredTable) else table
