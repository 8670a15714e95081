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
