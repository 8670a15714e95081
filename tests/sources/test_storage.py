"""Atomic writes: a failed write leaves nothing under the final name."""

import os

import pyarrow as pa
import pytest

from safetygraph.core.storage import Storage, asset_parts


def test_write_is_atomic_and_failed_writes_leave_nothing(tmp_path):
    storage = Storage(str(tmp_path))
    storage.write_table(pa.table({"a": [1, 2]}), *asset_parts(["raw_samples"], "src"))
    assert storage.read_table("assets", "raw_samples", "src.parquet").num_rows == 2

    class Boom(Exception):
        pass

    with pytest.raises(Boom), storage._atomic("assets", "half.parquet") as (tmp, _final):
        with open(tmp, "wb") as f:
            f.write(b"partial")
        raise Boom
    assert os.listdir(tmp_path / "assets") == ["raw_samples"]
    assert not storage.exists("assets", "half.parquet")


def test_asset_paths():
    assert asset_parts(["audited"], "xstest") == ("assets", "audited", "xstest.parquet")
    assert asset_parts(["export"]) == ("assets", "export.parquet")


def test_streamed_assets_write_batch_by_batch_and_read_lazily(tmp_path):
    """An asset returning a TableStream is written batch by batch (the metadata callback sees the
    written file); an input annotated StoredTable gets the lazy handle (row count from the footer,
    batches of the configured size, DuckDB over the file), one annotated pa.Table the whole table;
    a stream that fails half-way leaves nothing under the asset's name."""
    from dagster import AssetExecutionContext, asset, materialize
    from safetygraph.location.resources.io_manager import ParquetIOManager

    from safetygraph.core import duck
    from safetygraph.core.tables import StoredTable, TableStream

    schema = pa.schema([("id", pa.int64()), ("text", pa.string())])
    seen: dict = {}

    @asset
    def numbers(context: AssetExecutionContext) -> TableStream:
        def batches():
            for start in range(0, 25, 10):
                ids = list(range(start, min(start + 10, 25)))
                yield pa.table({"id": ids, "text": [f"t{i}" for i in ids]}, schema=schema)

        return TableStream(schema, batches(), lambda written: {"written_rows": written.num_rows})

    @asset
    def lazy(numbers: StoredTable) -> pa.Table:
        seen["type"] = type(numbers)
        seen["rows"] = numbers.num_rows
        seen["batches"] = [b.num_rows for b in numbers.batches()]
        con = duck.connect()
        seen["sum"] = duck.one(con, f"SELECT sum(id) FROM {numbers.relation(con)}")[0]
        return pa.table({"n": [numbers.num_rows]})

    @asset
    def whole(numbers: pa.Table) -> pa.Table:
        seen["whole"] = type(numbers)
        return numbers.slice(0, 1)

    io = ParquetIOManager(base_uri=str(tmp_path), batch_rows=4)
    result = materialize([numbers, lazy, whole], resources={"io_manager": io})
    assert result.success
    meta = result.asset_materializations_for_node("numbers")[0].metadata
    assert meta["rows"].value == 25 and meta["written_rows"].value == 25
    assert seen["type"] is StoredTable and seen["rows"] == 25 and seen["sum"] == sum(range(25))
    assert seen["batches"] == [4, 4, 4, 4, 4, 4, 1]  # the IO manager's batch_rows
    assert seen["whole"] is pa.Table

    @asset(name="numbers")
    def broken() -> TableStream:
        def batches():
            yield pa.table({"id": [1], "text": ["a"]}, schema=schema)
            raise RuntimeError("source went away")

        return TableStream(schema, batches())

    storage = Storage(str(tmp_path / "other"))
    io = ParquetIOManager(base_uri=storage.base_uri)
    assert not materialize([broken], resources={"io_manager": io}, raise_on_error=False).success
    assert not storage.exists("assets", "numbers.parquet")
    assert storage.listdir("assets") == []
