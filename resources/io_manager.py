"""Parquet tables under one base URI (fsspec), one file per asset partition, written atomically.

Works when steps run in separate processes or pods: nothing is held in memory between steps.
A step that streams returns a ``TableStream`` (written batch by batch) and annotates its inputs as
``StoredTable`` (a lazy handle on the upstream file: batches, DuckDB scans, the footer's row count);
a step annotated ``pa.Table`` gets the whole table, for the small ones.
"""

from __future__ import annotations

import pyarrow as pa
from dagster import (
    AssetKey,
    ConfigurableIOManager,
    InputContext,
    OutputContext,
    PythonObjectDagsterType,
    make_python_type_usable_as_dagster_type,
)
from pydantic import Field

from safetygraph.core.storage import Storage, asset_parts
from safetygraph.core.tables import DEFAULT_BATCH_ROWS, StoredTable, TableStream, write_stream

# An input annotated ``StoredTable`` gets the lazy handle from this IO manager; the Dagster type
# also accepts a whole ``pa.Table``, which other IO managers (tests, in-memory runs) hand over; the
# code reading it goes through ``safetygraph.core.tables``' helpers, which take either.
StoredTableType = PythonObjectDagsterType(
    python_type=(StoredTable, pa.Table),
    name="StoredTable",
    description="A Parquet table read on demand (batches, DuckDB scans), or a whole Arrow table",
)
make_python_type_usable_as_dagster_type(StoredTable, StoredTableType)


class ParquetIOManager(ConfigurableIOManager):
    base_uri: str
    batch_rows: int = Field(
        default=DEFAULT_BATCH_ROWS,
        description="Rows per record batch in streaming steps: their peak memory scales with it",
    )

    @staticmethod
    def parts(key: AssetKey, partition: str | None = None) -> tuple[str, ...]:
        """Where an asset (partition) is stored under the base URI: the one rule, read by the
        IO manager and by ``stored_table`` (assets never build paths)."""
        return asset_parts(key.path, partition)

    def _parts(self, context: InputContext | OutputContext) -> tuple[str, ...]:
        partition = context.asset_partition_key if context.has_asset_partitions else None
        return self.parts(context.asset_key, partition)

    def handle_output(self, context: OutputContext, obj: pa.Table | TableStream) -> None:
        storage = Storage(self.base_uri)
        parts = self._parts(context)
        if isinstance(obj, TableStream):
            path = write_stream(storage, obj, *parts)
            rows = obj.rows
            extra = obj.metadata(StoredTable(storage, parts, self.batch_rows))
        elif isinstance(obj, pa.Table):
            path = storage.write_table(obj, *parts)
            rows, extra = obj.num_rows, {}
        else:
            raise TypeError(
                f"{context.asset_key.to_user_string()} returned {type(obj).__name__}; assets here "
                "return pyarrow Tables or TableStreams"
            )
        context.add_output_metadata({**extra, "rows": rows, "path": storage.uri(*parts)})
        # hand the batches' freed buffers back to the system: in-process runs keep one process for
        # every step, and the allocator would otherwise hold the largest step's high-water mark
        pa.default_memory_pool().release_unused()
        context.log.debug(f"wrote {rows} rows to {path}")

    def load_input(self, context: InputContext) -> pa.Table | StoredTable:
        storage = Storage(self.base_uri)
        parts = self._parts(context)
        if not storage.exists(*parts):
            raise FileNotFoundError(
                f"{context.asset_key.to_user_string()} has no stored data at {storage.uri(*parts)}; materialize it first"
            )
        handle = StoredTable(storage, parts, self.batch_rows)
        if context.dagster_type is StoredTableType:
            return handle
        return handle.read()


def stored_table(
    storage: Storage,
    key: AssetKey,
    partition: str | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
) -> StoredTable | None:
    """The stored table of an asset (partition) as the IO manager wrote it, or None when it was
    never materialized: for a step that reads the partitions its checks let through (the merge
    reads the ready sources' partitions, not every partition Dagster knows)."""
    parts = ParquetIOManager.parts(key, partition)
    return StoredTable(storage, parts, batch_rows) if storage.exists(*parts) else None
