"""Parquet tables under one base URI (fsspec), one file per asset partition, written atomically.

Works when steps run in separate processes or pods: nothing is held in memory between steps.
"""

from __future__ import annotations

import pyarrow as pa
from dagster import ConfigurableIOManager, InputContext, OutputContext

from safetygraph.core.storage import Storage, asset_parts


class ParquetIOManager(ConfigurableIOManager):
    base_uri: str

    def _parts(self, context: InputContext | OutputContext) -> tuple[str, ...]:
        partition = context.asset_partition_key if context.has_asset_partitions else None
        return asset_parts(context.asset_key.path, partition)

    def handle_output(self, context: OutputContext, obj: pa.Table) -> None:
        if not isinstance(obj, pa.Table):
            raise TypeError(
                f"{context.asset_key.to_user_string()} returned {type(obj).__name__}; assets here return pyarrow Tables"
            )
        storage = Storage(self.base_uri)
        path = storage.write_table(obj, *self._parts(context))
        context.add_output_metadata(
            {"rows": obj.num_rows, "path": storage.uri(*self._parts(context))}
        )
        context.log.debug(f"wrote {obj.num_rows} rows to {path}")

    def load_input(self, context: InputContext) -> pa.Table:
        storage = Storage(self.base_uri)
        parts = self._parts(context)
        if not storage.exists(*parts):
            raise FileNotFoundError(
                f"{context.asset_key.to_user_string()} has no stored data at {storage.uri(*parts)}; materialize it first"
            )
        return storage.read_table(*parts)
