"""The steering files: per trait, the seed's format (``seed/<trait>.jsonl``: question, positive,
neutral) and the CAA paper's (``caa/<trait>.jsonl``: question, answer_matching_behavior,
answer_not_matching_behavior), each also as Parquet, ``stats.json`` and a manifest, under
``steering/<build_id>/`` (``core.builds``)."""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any

import pyarrow as pa

from safetygraph.core import duck
from safetygraph.core.builds import copy_formats, new_build_id, publish
from safetygraph.core.duck import sql_literal
from safetygraph.core.storage import Storage
from safetygraph.recipes.steering.pairs import files_sql

STEERING_ROOT = "steering"


def write_files(
    storage: Storage, pairs: dict[str, pa.Table], stats: dict[str, Any]
) -> dict[str, Any]:
    """``pairs``: the kept pairs of each trait."""
    build_id = new_build_id({t: p.num_rows for t, p in pairs.items()} | {"stats": stats})
    con = duck.connect(t=pa.concat_tables(list(pairs.values())))
    with tempfile.TemporaryDirectory(prefix="safetygraph-steering-") as tmp:
        files = []
        for fmt, sql in files_sql("t").items():
            os.makedirs(os.path.join(tmp, fmt), exist_ok=True)
            for trait, table in pairs.items():
                per_trait = sql.replace("FROM t ", f"FROM t WHERE trait = {sql_literal(trait)} ")
                files += copy_formats(con, per_trait, tmp, f"{fmt}/{trait}", table.num_rows)
        local = os.path.join(tmp, "stats.json")
        with open(local, "w") as f:
            json.dump(stats, f, indent=2)
        files.append(("stats.json", local, None))
        return publish(storage, STEERING_ROOT, build_id, files, {"traits": list(pairs)})
